package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spotfuse/spotfuse/atomicfile"
	"github.com/spotfuse/spotfuse/metrics"
	"github.com/spotfuse/spotfuse/models"
	"github.com/spotfuse/spotfuse/patch"
	"github.com/spotfuse/spotfuse/pretrain"
	"github.com/spotfuse/spotfuse/progress"
	"github.com/spotfuse/spotfuse/section"
	"github.com/spotfuse/spotfuse/tensor"
)

// pretrainCmd groups the self-supervised pretraining commands; the
// expression and cross-modal commands add themselves to it.
var pretrainCmd = &cobra.Command{
	Use:   "pretrain",
	Short: "Self-supervised pretraining of the encoders on unlabelled spots",
}

func init() {
	root.AddCommand(pretrainCmd)
	pretrainCmd.AddCommand(newPretrainImageCmd(), newPretrainProbeCmd())
}

// imageFlags are the flags shared by pretrain image and pretrain probe.
type imageFlags struct {
	data, sections, tasks, arch string
	pool                        string
	context, hed, maskFrac      float64
	maskBlocks                  int
	size, width, depth, tiles   int
	held                        float64
	loopFlags                   // optimisation flags; --resume only for pretrain image
}

// her2stImageSections are the HER2ST sections with an H&E image.
const her2stImageSections = "A1,A2,B4,C2,C3,C4,C5,C6"

// imageDefaults are the defaults that differ between pretrain image
// (pretrain.DefaultImageConfig at 64 pixels) and pretrain probe (the demo
// scale: 32 pixels, Width 16, 300 steps of 32 patches).
type imageDefaults struct {
	size, width, steps, batch int
}

func (f *imageFlags) register(cmd *cobra.Command, def imageDefaults) {
	d := pretrain.DefaultLoop()
	dc := pretrain.DefaultImageConfig()
	fl := cmd.Flags()
	fl.StringVar(&f.data, "data", "../shared/data/her2st", "her2st directory (counts/, spots/, images/, scalefactors)")
	fl.StringVar(&f.sections, "sections", her2stImageSections, "comma-separated sections whose spot patches train the encoder")
	fl.StringVar(&f.tasks, "tasks", "inpaint=1,colorize=1,contrastive=1", "pretext tasks and weights: inpaint, colorize, contrastive")
	fl.StringVar(&f.arch, "arch", "conv4", "encoder architecture: conv4 or resnet")
	fl.IntVar(&f.width, "width", def.width, "channels of the first encoder block (the last block has width·2^(depth-1))")
	fl.IntVar(&f.depth, "depth", 4, "encoder blocks")
	fl.IntVar(&f.size, "size", def.size, "patch side in pixels")
	fl.Float64Var(&f.context, "context", 2, "patch crop side in spot diameters (1 = the spot's bounding square, 2 adds half a diameter around it)")
	fl.StringVar(&f.pool, "pool", dc.Encoder.Pool, "embedding pooling: avg (last block) or stages (every block, concatenated)")
	fl.Float64Var(&f.hed, "hed-jitter", patch.DefaultAugment().HEDSigma, "contrastive views: H&E stain scale jitter (stain shift = a fifth of it)")
	fl.IntVar(&f.maskBlocks, "mask-blocks", dc.MaskBlocks, "inpainting: at most this many square blocks hidden per patch")
	fl.Float64Var(&f.maskFrac, "mask-frac", dc.MaskFrac, "inpainting: block side as a fraction of the patch side")
	fl.IntVar(&f.tiles, "tiles", 0, "extra tissue tiles between spots per section (training only)")
	fl.Float64Var(&f.held, "held", 0.1, "fraction of spot patches held out for the held-out loss")
	d.Steps, d.Batch = def.steps, def.batch
	f.registerLoop(cmd, d, "patches")
}

// config builds the image pretraining configuration from the flags.
func (f *imageFlags) config(tasks map[string]float64, dir string) pretrain.ImageConfig {
	aug := patch.DefaultAugment()
	aug.HEDSigma, aug.HEDBias = f.hed, f.hed/5
	return pretrain.ImageConfig{
		Augment: &aug, MaskBlocks: f.maskBlocks, MaskFrac: f.maskFrac,
		Encoder: models.ImageEncoderConfig{Arch: f.arch, Width: f.width, Depth: f.depth, Pool: f.pool},
		Tasks:   tasks,
		Loop:    f.loopFlags.config(dir),
	}
}

// parseTasks reads "inpaint=1,colorize=0.5" (a bare name means weight 1).
func parseTasks(s string) (map[string]float64, error) {
	m := map[string]float64{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, found := strings.Cut(part, "=")
		weight := 1.0
		if found {
			v, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
			if err != nil {
				return nil, fmt.Errorf("--tasks: %q: weight %q is not a number", part, w)
			}
			weight = v
		}
		m[strings.TrimSpace(name)] = weight
	}
	if len(m) == 0 {
		return nil, errors.New("--tasks: empty")
	}
	return m, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// loadPool reads the sections and extracts their patches.
func (f *imageFlags) loadPool(ctx context.Context, prog progress.Reporter) ([]*section.Section, *pretrain.PatchPool, error) {
	names := splitList(f.sections)
	if len(names) == 0 {
		return nil, nil, errors.New("--sections: empty")
	}
	secs, err := section.ReadHER2ST(ctx, f.data, names, 2, prog)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range secs {
		if s.Image == nil {
			return nil, nil, fmt.Errorf("section %s (%s) has no H&E image; image sections of her2st are %s", s.Name, s.Source, her2stImageSections)
		}
	}
	start := time.Now()
	pool, err := pretrain.CollectPatches(ctx, secs, patch.Options{Size: f.size, Context: f.context, Progress: prog}, f.tiles, f.seed)
	if err != nil {
		return nil, nil, err
	}
	slog.Info("patches", "sections", len(secs), "patches", len(pool.Pix), "size", f.size, "seconds", time.Since(start).Seconds())
	return secs, pool, nil
}

func newPretrainImageCmd() *cobra.Command {
	var f imageFlags
	var out string
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Pretrain the image encoder with inpainting, colorization and/or contrastive learning",
		Long: `Pretrain the image encoder on the spot patches (and optional tissue tiles) of the
given sections with the chosen pretext tasks, holding out a fraction of the spots for the
held-out loss. Writes to --out: checkpoint.safetensors (resumable with --resume),
loss.csv, loss.png, encoder.safetensors and embeddings.tsv (section, spot, one column
per embedding dimension, for every spot with a patch).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := f.loop(out); err != nil { // --out given, no stray checkpoint, threads
				return err
			}
			tasks, err := parseTasks(f.tasks)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			prog := progress.ForTerminal()
			secs, pool, err := f.loadPool(ctx, prog)
			if err != nil {
				return err
			}
			train, held := pool.SplitHeld(f.held, f.seed)
			cfg := f.config(tasks, out)
			start := time.Now()
			enc, hist, err := pretrain.TrainImage(ctx, pool.Select(train), f.size, pool.Select(held), cfg, prog)
			if err != nil {
				return err
			}
			wall := time.Since(start).Seconds()
			if err := enc.Save(filepath.Join(out, "encoder.safetensors")); err != nil {
				return err
			}
			var spots []int
			for i := range pool.Pix {
				if !pool.IsTile(i) {
					spots = append(spots, i)
				}
			}
			emb, d := enc.Embed(pool.Select(spots), f.size)
			embPath := filepath.Join(out, "embeddings.tsv")
			if err := atomicfile.Write(embPath, func(w io.Writer) error {
				return writeEmbeddings(w, secs, pool, spots, emb, d)
			}); err != nil {
				return fmt.Errorf("writing %s: %w", embPath, err)
			}
			for _, t := range append([]string{"total"}, pretrain.ImageTasks...) {
				if _, ok := hist.HeldOut[t]; ok {
					slog.Info("held-out loss", "task", t, "before", hist.FirstHeldOut(t), "after", hist.LastHeldOut(t))
				}
			}
			imgs := float64(len(hist.Steps)*min(cfg.Loop.Batch, len(train))) / hist.Seconds
			slog.Info("pretrained", "out", out, "train_patches", len(train), "held_out", len(held), "dim", d,
				"train_seconds", hist.Seconds, "wall_seconds", wall, "images_per_second", imgs, "threads", tensor.Threads())
			return nil
		},
	}
	d := pretrain.DefaultLoop()
	f.register(cmd, imageDefaults{size: 64, width: 32, steps: d.Steps, batch: d.Batch})
	cmd.Flags().StringVar(&out, "out", "", "output directory (required)")
	cmd.Flags().BoolVar(&f.resume, "resume", false, "continue from the checkpoint in --out")
	return cmd
}

// writeEmbeddings writes a TSV: section, spot, e0 … e(d-1).
func writeEmbeddings(w io.Writer, secs []*section.Section, pool *pretrain.PatchPool, idx []int, emb []float32, d int) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("section\tspot")
	for j := 0; j < d; j++ {
		fmt.Fprintf(bw, "\te%d", j)
	}
	bw.WriteByte('\n')
	for r, i := range idx {
		sec := secs[pool.Section[i]]
		bw.WriteString(sec.Name + "\t" + sec.Spots[pool.Spot[i]].ID)
		for _, v := range emb[r*d : (r+1)*d] {
			bw.WriteByte('\t')
			bw.WriteString(strconv.FormatFloat(float64(v), 'g', 7, 32))
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// probeVariants maps a probe variant to its pretext tasks; "random" is an
// untrained encoder and "stats" the colour/texture statistics baseline.
// The probe command also accepts "stats+<variant>": that variant's
// embedding concatenated with the statistics (a separate variant, never a
// replacement for the embedding alone).
var probeVariants = map[string]map[string]float64{
	"inpaint":     {pretrain.TaskInpaint: 1},
	"colorize":    {pretrain.TaskColorize: 1},
	"contrastive": {pretrain.TaskContrastive: 1},
	"combined":    {pretrain.TaskInpaint: 1, pretrain.TaskColorize: 1, pretrain.TaskContrastive: 1},
	"random":      nil,
	"stats":       nil,
}

func newPretrainProbeCmd() *cobra.Command {
	var f imageFlags
	var out, variants, labelSection string
	var frac float64
	var seeds int
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Compare image pretext tasks by a linear probe on frozen embeddings of a labelled section",
		Long: `For each variant (a pretext task alone, all combined, a randomly initialised encoder with
BatchNorm statistics from the patches, colour/texture statistics), pretrain on the spot
patches of --sections (each variant in --out/<variant>, resumable), embed the spots of
--label-section and fit a multinomial logistic regression on a stratified --frac of its
labelled spots ("undetermined" excluded), scoring balanced accuracy on the rest, for
--seeds label draws. Writes --out/probe.tsv and prints mean ± sd.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			if f.threads > 0 {
				tensor.SetThreads(f.threads)
			}
			ctx := cmd.Context()
			prog := progress.ForTerminal()
			secs, pool, err := f.loadPool(ctx, prog)
			if err != nil {
				return err
			}
			li := -1
			for i, s := range secs {
				if s.Name == labelSection {
					li = i
				}
			}
			if li < 0 || secs[li].Labels == nil {
				return fmt.Errorf("--label-section %s must be one of --sections and have labels", labelSection)
			}
			var probeIdx, y []int
			classes := map[string]int{}
			for i := range pool.Pix {
				if pool.Section[i] != li || pool.IsTile(i) {
					continue
				}
				l := secs[li].Labels[pool.Spot[i]]
				if l == "" || l == "undetermined" {
					continue
				}
				c, ok := classes[l]
				if !ok {
					c = len(classes)
					classes[l] = c
				}
				probeIdx = append(probeIdx, i)
				y = append(y, c)
			}
			seedList := make([]uint64, seeds)
			for i := range seedList {
				seedList[i] = uint64(i + 1)
			}
			train, held := pool.SplitHeld(f.held, f.seed)
			probePatches := pool.Select(probeIdx)
			type feats struct {
				x    []float32
				d    int
				info string // held-out loss before/after and train seconds
			}
			cache := map[string]feats{}
			embed := func(v string) (feats, error) {
				if c, ok := cache[v]; ok {
					return c, nil
				}
				tasks, ok := probeVariants[v]
				if !ok {
					return feats{}, fmt.Errorf("--variants: unknown variant %q", v)
				}
				var x []float32
				var d int
				var err error
				row := ""
				switch v {
				case "stats":
					x, d, err = colourTextureStats(probePatches, f.size)
					if err != nil {
						return feats{}, err
					}
					row += "\t\t\t"
				case "random":
					cfg := f.config(nil, "")
					enc := models.NewImageEncoder(cfg.Encoder, randFor(f.seed))
					enc.Config.Mean, enc.Config.Std = models.ChannelStats(pool.Select(train))
					pretrain.RecalibrateBN(enc, pool.Select(train), f.size, f.batch)
					x, d = enc.Embed(probePatches, f.size)
					row += "\t\t\t"
				default:
					cfg := f.config(tasks, filepath.Join(out, v))
					enc, hist, err := pretrain.TrainImage(ctx, pool.Select(train), f.size, pool.Select(held), cfg, prog)
					if err != nil {
						return feats{}, fmt.Errorf("variant %s: %w", v, err)
					}
					x, d = enc.Embed(probePatches, f.size)
					row += fmt.Sprintf("\t%.5g\t%.5g\t%.1f", hist.FirstHeldOut("total"), hist.LastHeldOut("total"), hist.Seconds)
				}
				c := feats{x, d, row}
				cache[v] = c
				return c, nil
			}
			var rowsOut []string
			for _, v := range splitList(variants) {
				// "stats+<variant>" probes the pretrained embedding
				// concatenated with the colour/texture statistics.
				var parts []string
				if base, ok := strings.CutPrefix(v, "stats+"); ok && base != "stats" {
					parts = []string{"stats", base}
				} else {
					parts = []string{v}
				}
				var x []float32
				var d int
				row := v
				var fs []feats
				for _, p := range parts {
					c, err := embed(p)
					if err != nil {
						return err
					}
					fs = append(fs, c)
					d += c.d
				}
				if len(fs) == 1 {
					x, row = fs[0].x, v+fs[0].info
				} else {
					x = make([]float32, 0, len(probeIdx)*d)
					for i := range probeIdx {
						for _, c := range fs {
							x = append(x, c.x[i*c.d:(i+1)*c.d]...)
						}
					}
					row = v + fs[1].info
				}
				accs, err := pretrain.LinearProbe(x, len(probeIdx), d, y, frac, seedList)
				if err != nil {
					return fmt.Errorf("variant %s: %w", v, err)
				}
				m, sd := metrics.MeanSD(accs)
				slog.Info("probe", "variant", v, "balanced_accuracy", fmt.Sprintf("%.3f ± %.3f", m, sd), "dim", d)
				row += fmt.Sprintf("\t%d\t%.4f\t%.4f", d, m, sd)
				for _, a := range accs {
					row += fmt.Sprintf("\t%.4f", a)
				}
				rowsOut = append(rowsOut, row)
			}
			header := "variant\theldout_before\theldout_after\ttrain_seconds\tdim\tbalanced_accuracy_mean\tbalanced_accuracy_sd"
			for _, s := range seedList {
				header += fmt.Sprintf("\tseed%d", s)
			}
			text := header + "\n" + strings.Join(rowsOut, "\n") + "\n"
			if err := atomicfile.WriteFile(filepath.Join(out, "probe.tsv"), []byte(text)); err != nil {
				return err
			}
			fmt.Print(text)
			return nil
		},
	}
	f.register(cmd, imageDefaults{size: 32, width: 16, steps: 300, batch: 32})
	fl := cmd.Flags()
	fl.StringVar(&out, "out", "", "output directory (required)")
	fl.StringVar(&variants, "variants", "random,stats,inpaint,colorize,contrastive,combined", "variants to compare")
	fl.StringVar(&labelSection, "label-section", "A1", "labelled section whose spots are probed")
	fl.Float64Var(&frac, "frac", 0.1, "fraction of labelled spots used to fit the probe (stratified)")
	fl.IntVar(&seeds, "seeds", 5, "label draws (seeds 1..n)")
	return cmd
}

func randFor(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x1a6e_5eed)) }

// colourTextureStats is the hand-crafted image baseline of the probe
// (patch.ColourTextureStats per patch).
func colourTextureStats(patches [][]uint8, size int) ([]float32, int, error) {
	d := len(patch.StatsNames)
	out := make([]float32, 0, len(patches)*d)
	for _, p := range patches {
		f, err := patch.ColourTextureStats(p, size)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, f...)
	}
	return out, d, nil
}
