package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spotfuse/spotfuse/atomicfile"
	"github.com/spotfuse/spotfuse/models"
	"github.com/spotfuse/spotfuse/patch"
	"github.com/spotfuse/spotfuse/pretrain"
	"github.com/spotfuse/spotfuse/progress"
	"github.com/spotfuse/spotfuse/section"
	"github.com/spotfuse/spotfuse/tensor"
)

func init() {
	pretrainCmd.AddCommand(newPretrainExprCmd(), newPretrainCrossCmd())
}

// loopFlags are the training-loop flags of pretrain expr and pretrain cross.
type loopFlags struct {
	steps, batch, ckptEvery, logEvery, threads int
	lr, wd, warmup, clip                       float64
	seed                                       uint64
	resume                                     bool
}

func (f *loopFlags) register(cmd *cobra.Command, d pretrain.LoopConfig) {
	f.registerLoop(cmd, d, "spots")
	cmd.Flags().BoolVar(&f.resume, "resume", false, "continue from the checkpoint in --out")
}

// registerLoop registers the optimisation flags (not --resume) with
// defaults from d; unit names what one batch holds.
func (f *loopFlags) registerLoop(cmd *cobra.Command, d pretrain.LoopConfig, unit string) {
	fl := cmd.Flags()
	fl.IntVar(&f.steps, "steps", d.Steps, "optimizer steps")
	fl.IntVar(&f.batch, "batch", d.Batch, unit+" per step")
	fl.Float64Var(&f.lr, "lr", d.LR, "peak learning rate (AdamW, cosine schedule)")
	fl.Float64Var(&f.wd, "weight-decay", d.WeightDecay, "AdamW weight decay")
	fl.Float64Var(&f.warmup, "warmup", d.Warmup, "fraction of steps with linear warm-up")
	fl.Float64Var(&f.clip, "clip", d.ClipNorm, "max gradient norm (0 = off)")
	fl.IntVar(&f.ckptEvery, "checkpoint-every", d.CheckpointEvery, "steps between checkpoints")
	fl.IntVar(&f.logEvery, "log-every", d.LogEvery, "steps between log lines and held-out evaluations")
	fl.Uint64Var(&f.seed, "seed", 1, "random seed")
	fl.IntVar(&f.threads, "threads", 0, "worker threads (0 = all CPUs); results are bit-identical for a given count")
}

// config is the loop configuration of the flags, writing to dir.
func (f *loopFlags) config(dir string) pretrain.LoopConfig {
	return pretrain.LoopConfig{Steps: f.steps, Batch: f.batch, CheckpointEvery: f.ckptEvery, LogEvery: f.logEvery,
		LR: f.lr, WeightDecay: f.wd, Warmup: f.warmup, ClipNorm: f.clip, Seed: f.seed, Dir: dir}
}

// loop returns the loop configuration writing to dir, after checking that
// dir holds no checkpoint unless resuming.
func (f *loopFlags) loop(dir string) (pretrain.LoopConfig, error) {
	if dir == "" {
		return pretrain.LoopConfig{}, errors.New("--out is required")
	}
	ckpt := filepath.Join(dir, pretrain.CheckpointFile)
	if _, err := os.Stat(ckpt); err == nil && !f.resume {
		return pretrain.LoopConfig{}, fmt.Errorf("%s exists: pass --resume to continue that run, or choose an empty --out", ckpt)
	}
	if f.threads > 0 {
		tensor.SetThreads(f.threads)
	}
	return f.config(dir), nil
}

func newPretrainExprCmd() *cobra.Command {
	var lf loopFlags
	var data, sections, task, norm, out string
	var hvg, latent, hidden int
	var maskFrac, klWarmup, klWeight, held, dropout float64
	d := pretrain.DefaultExprConfig()
	cmd := &cobra.Command{
		Use:   "expr",
		Short: "Pretrain the expression encoder (NB-VAE or masked-gene prediction) on pooled sections",
		Long: `Pool the spots of --sections (all 36 HER2ST sections by default), select --hvg highly
variable genes among the genes they share (seurat_v3 on raw counts, one batch per section),
log-normalise (counts / library × 10⁴, log1p) and pretrain the expression encoder:

  nbvae   a variational autoencoder whose decoder sees the section as a one-hot covariate
          and models the raw counts with a negative binomial (scVI), so that the latent
          carries biology rather than batch; the embedding is the posterior mean.
  masked  hide 15–30 % of each spot's genes and reconstruct them (loss on hidden genes).

Writes to --out: checkpoint.safetensors (resumable with --resume), loss.csv, loss.png,
encoder.safetensors (weights, configuration and the gene list), genes.txt and
embeddings.tsv (section, spot, one column per latent dimension, for every spot).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loop, err := lf.loop(out)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			prog := progress.ForTerminal()
			start := time.Now()
			names := splitList(sections)
			if len(names) == 0 {
				return errors.New("--sections: empty")
			}
			secs, err := section.ReadHER2ST(ctx, data, names, 2, prog)
			if err != nil {
				return err
			}
			ed, err := pretrain.BuildExprData(secs, pretrain.ExprDataOptions{HVG: hvg})
			if err != nil {
				return err
			}
			slog.Info("expression data", "sections", len(secs), "spots", ed.N, "genes", ed.G, "seconds", time.Since(start).Seconds())
			cfg := pretrain.ExprConfig{Task: task, Latent: latent, Hidden: hidden, Dropout: dropout, Norm: norm,
				MaskFrac: maskFrac, KLWarmup: klWarmup, KLWeight: klWeight, HeldOut: held, Loop: loop}
			enc, hist, err := pretrain.TrainExpression(ctx, ed, cfg, prog)
			if err != nil {
				return err
			}
			if err := writeExprOutputs(out, enc, ed, task); err != nil {
				return err
			}
			for _, t := range slices.Sorted(maps.Keys(hist.HeldOut)) {
				slog.Info("held-out loss", "term", t, "before", hist.FirstHeldOut(t), "after", hist.LastHeldOut(t))
			}
			slog.Info("pretrained", "out", out, "task", task, "spots", ed.N, "genes", ed.G, "train_seconds", hist.Seconds,
				"wall_seconds", time.Since(start).Seconds(), "threads", tensor.Threads())
			return nil
		},
	}
	lf.register(cmd, d.Loop)
	fl := cmd.Flags()
	fl.StringVar(&data, "data", "../shared/data/her2st", "her2st directory (counts/, spots/, …)")
	fl.StringVar(&sections, "sections", strings.Join(section.HER2STSections, ","), "comma-separated sections to pool")
	fl.StringVar(&task, "task", d.Task, "pretext task: nbvae or masked")
	fl.IntVar(&hvg, "hvg", 2000, "highly variable genes")
	fl.IntVar(&latent, "latent", d.Latent, "latent width")
	fl.IntVar(&hidden, "hidden", d.Hidden, "hidden width")
	fl.Float64Var(&dropout, "dropout", d.Dropout, "encoder dropout")
	fl.StringVar(&norm, "norm", d.Norm, "normalisation layer: layer or batch")
	fl.Float64Var(&maskFrac, "mask", d.MaskFrac, "masked: hide a fraction in [mask/2, mask] of each spot's genes")
	fl.Float64Var(&klWarmup, "kl-warmup", d.KLWarmup, "nbvae: fraction of steps over which the KL weight rises to 1")
	fl.Float64Var(&klWeight, "kl-weight", d.KLWeight, "nbvae: final weight of the KL term (1 = ELBO)")
	fl.Float64Var(&held, "held", d.HeldOut, "fraction of spots held out for the held-out loss")
	fl.StringVar(&out, "out", "", "output directory (required)")
	return cmd
}

// writeExprOutputs writes encoder.safetensors, genes.txt and embeddings.tsv.
func writeExprOutputs(out string, enc *models.ExprEncoder, ed *pretrain.ExprData, task string) error {
	genes, err := json.Marshal(ed.Genes)
	if err != nil {
		return err
	}
	secs, _ := json.Marshal(ed.Sections)
	if err := enc.Save(filepath.Join(out, "encoder.safetensors"), map[string]string{
		"genes": string(genes), "task": task, "sections": string(secs),
		"normalisation": "log1p(count / library × 1e4), library = all genes of the section"}); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(out, "genes.txt"), []byte(strings.Join(ed.Genes, "\n")+"\n")); err != nil {
		return err
	}
	emb, d := enc.Embed(ed.X, ed.N, ed.Batch)
	path := filepath.Join(out, "embeddings.tsv")
	if err := atomicfile.Write(path, func(w io.Writer) error {
		return writeTable(w, ed.N, func(i int) []string { return []string{ed.Sections[ed.Batch[i]], ed.SpotIDs[i]} },
			[]string{"section", "spot"}, []embBlock{{"e", emb, d}})
	}); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// embBlock is one embedding written as columns prefix0 … prefix(d-1).
type embBlock struct {
	prefix string
	x      []float32
	d      int
}

// writeTable writes a TSV with the key columns and the embedding blocks.
func writeTable(w io.Writer, n int, key func(i int) []string, keyNames []string, blocks []embBlock) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(strings.Join(keyNames, "\t"))
	for _, b := range blocks {
		for j := 0; j < b.d; j++ {
			fmt.Fprintf(bw, "\t%s%d", b.prefix, j)
		}
	}
	bw.WriteByte('\n')
	for i := 0; i < n; i++ {
		bw.WriteString(strings.Join(key(i), "\t"))
		for _, b := range blocks {
			for _, v := range b.x[i*b.d : (i+1)*b.d] {
				bw.WriteByte('\t')
				bw.WriteString(strconv.FormatFloat(float64(v), 'g', 7, 32))
			}
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

func newPretrainCrossCmd() *cobra.Command {
	var lf loopFlags
	var data, sections, heldOut, imgPath, exprPath, genesPath, out string
	var size, shared, hidden, heads int
	var temp float64
	var ctxAttn, learnTemp, ftImage, ftExpr, secNorm bool
	d := pretrain.DefaultCrossConfig()
	cmd := &cobra.Command{
		Use:   "cross",
		Short: "Align image and expression embeddings of the same spot (CLIP) on sections with both",
		Long: `Embed the spot patches of --sections with the image encoder (--image-encoder, from
'pretrain image') and their expression with the expression encoder (--expr-encoder, from
'pretrain expr'; its genes are used), and train projection heads to a shared space with a
symmetric InfoNCE loss, optionally with attention over each spot's array neighbours
(--context). Encoders are frozen unless --finetune-image/--finetune-expr. Spots of
--held-out sections are not trained on: they give the held-out loss and image→expression
retrieval accuracy (top-1/top-5 against chance 1/n, 5/n).

Writes to --out: checkpoint.safetensors, loss.csv, loss.png, cross.safetensors (heads and
encoders), embeddings.tsv (section, spot, held_out, img0…, expr0… in the shared space) and
retrieval.tsv (per section, over all its spots and over its interior spots, those with every
array neighbour present).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loop, err := lf.loop(out)
			if err != nil {
				return err
			}
			if imgPath == "" || exprPath == "" {
				return errors.New("--image-encoder and --expr-encoder are required")
			}
			img, err := models.LoadImageEncoder(imgPath)
			if err != nil {
				return err
			}
			expr, meta, err := models.LoadExprEncoder(exprPath)
			if err != nil {
				return err
			}
			var genes []string
			if genesPath != "" {
				b, err := os.ReadFile(genesPath)
				if err != nil {
					return err
				}
				genes = strings.Fields(string(b))
				if len(genes) != expr.Config.Genes {
					return fmt.Errorf("%s lists %d genes but the expression encoder %s takes %d", genesPath, len(genes), exprPath, expr.Config.Genes)
				}
			} else if err := json.Unmarshal([]byte(meta["genes"]), &genes); err != nil || len(genes) != expr.Config.Genes {
				return fmt.Errorf("%s: no gene list for its %d inputs in the metadata (was it written by 'pretrain expr'? else pass --genes)", exprPath, expr.Config.Genes)
			}
			ctx := cmd.Context()
			prog := progress.ForTerminal()
			start := time.Now()
			names := splitList(sections)
			secs, err := section.ReadHER2ST(ctx, data, names, 2, prog)
			if err != nil {
				return err
			}
			cd, pool, err := pretrain.BuildCrossData(ctx, secs, genes, patch.Options{Size: size, Progress: prog})
			if err != nil {
				return err
			}
			cfg := d
			cfg.Loop = loop
			cfg.Model.Shared, cfg.Model.Hidden, cfg.Model.Heads = shared, hidden, heads
			cfg.Model.Context, cfg.Model.Temperature, cfg.Model.LearnTemperature = ctxAttn, temp, learnTemp
			cfg.FineTuneImage, cfg.FineTuneExpr = ftImage, ftExpr
			cfg.Model.SectionNorm = secNorm
			held := map[int]bool{}
			for _, h := range splitList(heldOut) {
				i := slices.Index(names, h)
				if i < 0 {
					return fmt.Errorf("--held-out %s is not one of --sections", h)
				}
				cfg.HeldOutSections = append(cfg.HeldOutSections, i)
				held[i] = true
			}
			slog.Info("cross-modal data", "sections", len(secs), "spots", cd.N, "genes", cd.G, "seconds", time.Since(start).Seconds())
			m, hist, err := pretrain.TrainCross(ctx, img, expr, cd, cfg, prog)
			if err != nil {
				return err
			}
			if err := m.Save(filepath.Join(out, "cross.safetensors")); err != nil {
				return err
			}
			zi, ze, dim, err := pretrain.CrossEmbed(m, cd)
			if err != nil {
				return err
			}
			path := filepath.Join(out, "embeddings.tsv")
			if err := atomicfile.Write(path, func(w io.Writer) error {
				return writeTable(w, cd.N, func(i int) []string {
					s := pool.Section[i]
					return []string{secs[s].Name, secs[s].Spots[pool.Spot[i]].ID, strconv.FormatBool(held[s])}
				}, []string{"section", "spot", "held_out"}, []embBlock{{"img", zi, dim}, {"expr", ze, dim}})
			}); err != nil {
				return fmt.Errorf("writing %s: %w", path, err)
			}
			// Retrieval within each section (the candidates are that section's
			// spots), over all spots and over the interior spots only (all
			// array neighbours present): with --context these share one
			// neighbourhood layout, so the layout cannot be what matches.
			nb, err := models.GridNeighbours(cd.Row, cd.Col, cd.Section)
			if err != nil {
				return err
			}
			var rows []string
			for s := range secs {
				var all, interior []int
				full := 0
				for i, v := range cd.Section {
					if v == s {
						all = append(all, i)
						full = max(full, len(nbPresent(nb, i)))
					}
				}
				for _, i := range all {
					if len(nbPresent(nb, i)) == full {
						interior = append(interior, i)
					}
				}
				for _, set := range []struct {
					name string
					idx  []int
				}{{"all", all}, {"interior", interior}} {
					if len(set.idx) < 5 {
						continue
					}
					acc, err := pretrain.Retrieval(tensor.GatherRows(zi, dim, set.idx), tensor.GatherRows(ze, dim, set.idx), len(set.idx), dim, 1, 5)
					if err != nil {
						return err
					}
					n := float64(len(set.idx))
					rows = append(rows, fmt.Sprintf("%s\t%t\t%s\t%d\t%.4f\t%.4f\t%.4f\t%.4f", secs[s].Name, held[s], set.name, len(set.idx), acc[0], acc[1], 1/n, 5/n))
					slog.Info("retrieval image→expression", "section", secs[s].Name, "held_out", held[s], "spots", set.name, "n", len(set.idx),
						"top1", acc[0], "top5", acc[1], "chance_top1", 1/n, "chance_top5", 5/n)
				}
			}
			text := "section\theld_out\tspots\tn\ttop1\ttop5\tchance_top1\tchance_top5\n" + strings.Join(rows, "\n") + "\n"
			if err := atomicfile.WriteFile(filepath.Join(out, "retrieval.tsv"), []byte(text)); err != nil {
				return err
			}
			slog.Info("pretrained", "out", out, "spots", cd.N, "train_seconds", hist.Seconds, "wall_seconds", time.Since(start).Seconds())
			return nil
		},
	}
	lf.register(cmd, d.Loop)
	fl := cmd.Flags()
	fl.StringVar(&data, "data", "../shared/data/her2st", "her2st directory (counts/, spots/, images/, scalefactors)")
	fl.StringVar(&sections, "sections", her2stImageSections, "comma-separated sections with image and counts")
	fl.StringVar(&heldOut, "held-out", "C6", "comma-separated sections kept out of training (held-out loss, retrieval)")
	fl.StringVar(&imgPath, "image-encoder", "", "image encoder (encoder.safetensors of 'pretrain image'; required)")
	fl.StringVar(&exprPath, "expr-encoder", "", "expression encoder (encoder.safetensors of 'pretrain expr'; required)")
	fl.StringVar(&genesPath, "genes", "", "gene list of the expression encoder, one per line (default: from its metadata)")
	fl.IntVar(&size, "size", 64, "patch side in pixels (as the image encoder was trained)")
	fl.IntVar(&shared, "shared", d.Model.Shared, "width of the shared space")
	fl.IntVar(&hidden, "hidden", d.Model.Hidden, "hidden width of the projection heads")
	fl.BoolVar(&ctxAttn, "context", false, "attend over each spot's array neighbours")
	fl.IntVar(&heads, "heads", d.Model.Heads, "attention heads (with --context)")
	fl.Float64Var(&temp, "temperature", d.Model.Temperature, "InfoNCE temperature (initial value with --learn-temperature)")
	fl.BoolVar(&learnTemp, "learn-temperature", false, "learn the temperature")
	fl.BoolVar(&secNorm, "section-norm", false, "standardise both embeddings within each section before the heads (needs frozen encoders)")
	fl.BoolVar(&ftImage, "finetune-image", false, "fine-tune the image encoder (slow)")
	fl.BoolVar(&ftExpr, "finetune-expr", false, "fine-tune the expression encoder")
	fl.StringVar(&out, "out", "", "output directory (required)")
	return cmd
}

// nbPresent returns the neighbour rows of spot i.
func nbPresent(nb *models.Neighbourhood, i int) []int {
	var out []int
	for _, j := range nb.Idx[i*nb.K : (i+1)*nb.K] {
		if j >= 0 {
			out = append(out, j)
		}
	}
	return out
}
