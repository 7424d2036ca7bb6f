package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spotfuse/spotfuse/classify"
	"github.com/spotfuse/spotfuse/models"
	"github.com/spotfuse/spotfuse/patch"
	"github.com/spotfuse/spotfuse/preprocess"
	"github.com/spotfuse/spotfuse/pretrain"
	"github.com/spotfuse/spotfuse/progress"
	"github.com/spotfuse/spotfuse/section"
	"github.com/spotfuse/spotfuse/study"
)

// trainOptions are the settings of spotfuse train beyond the study config.
type trainOptions struct {
	Section      string  // HER2ST name in cfg.DataDir, or a path in any supported format
	Labels       string  // labels file for a path section
	LabelColumn  string  // h5ad obs column of the labels
	ExprFeatures string  // classify.FeatEncoder or classify.FeatPCA
	C            float64 // logistic-regression inverse L2 strength
	MaxMissing   float64 // bundle's refusal threshold for missing genes
	NoImage      bool    // train the expression head only
	Center       bool    // centre features per section (Meta.SectionCenter)
	From         string  // reuse the genes, normalisation and encoders of this bundle; fit new heads only
	CV           int     // folds of a cross-validation of the heads on the training section (0 = none)
	Version      string
}

func init() {
	var configPath, data, out string
	opt := trainOptions{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a model bundle on a labelled section (pretraining as configured + heads on all labels)",
		Long: `train builds one model bundle directory (bundle.json + weights.safetensors, see
package classify) from a labelled section:

  1. the genes: the highly variable genes of the config's pretrain_expr pool
     (HER2ST sections in data_dir, matched by symbol with the training section),
     log1p(count / total · 1e4);
  2. the expression features: the expression encoder pretrained on the pool
     (pretrain.expr; "off": true = random init) or, with --expr-features pca,
     the pool's leading principal components (config "pca");
  3. the image encoder (when the training section has an image): pretrained on
     the spot patches of pretrain_images (pretrain.image; "off": true = random
     init with BatchNorm statistics from those patches), patch.size pixels,
     crop side = spot diameter × patch.context;
  4. one logistic-regression head per modality (expression, image, fused =
     image ⊕ expression) on every labelled spot (exclude_labels left out),
     on features centred per section (--section-center, default on: each
     section's features minus their mean over that section, a label-free
     correction of section and patient shifts; prediction therefore expects
     a whole section, not a handful of spots).

The config is a study config (spotfuse study); its targets[0] is the training
section unless --section is given. A --section that is not a HER2ST name is
read as a path (h5ad, Space Ranger or legacy ST; --labels/--label-column).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := study.Default()
			if configPath != "" {
				var err error
				if cfg, err = study.Load(configPath); err != nil {
					return err
				}
			}
			if data != "" {
				cfg.DataDir = data
			}
			opt := opt // the flag values stay untouched
			if opt.Section == "" {
				opt.Section = cfg.Targets[0]
			}
			if out == "" {
				return fmt.Errorf("train: --out is required (the bundle directory to write)")
			}
			opt.Version = version
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			start := time.Now()
			b, cv, err := trainBundle(ctx, cfg, opt, progress.ForTerminal())
			if err != nil {
				return err
			}
			for _, s := range cv {
				fmt.Fprintf(cmd.OutOrStdout(), "%d-fold CV on %s, %s head: %d spots, accuracy %.3f, balanced accuracy %.3f, macro-F1 %.3f\n",
					s.Folds, opt.Section, s.Modality, s.Spots, s.Accuracy, s.Balanced, s.MacroF1)
			}
			if err := classify.SaveBundle(out, b); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bundle %s: %d genes, classes %v, heads %v, trained on %s in %s\n",
				out, len(b.Meta.Genes), b.Meta.Classes, headNames(b), strings.Join(b.Meta.TrainedOn, ","), time.Since(start).Round(time.Second))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&configPath, "config", "", "study config JSON (default: the documented study defaults)")
	fl.StringVar(&data, "data", "", "HER2ST data directory (overrides the config's data_dir)")
	fl.StringVar(&out, "out", "", "bundle directory to write (replaced atomically)")
	fl.StringVar(&opt.Section, "section", "", "training section: a HER2ST name (default: the config's targets[0]) or a path")
	fl.StringVar(&opt.Labels, "labels", "", "labels CSV/TSV for a path --section")
	fl.StringVar(&opt.LabelColumn, "label-column", "label", "h5ad obs column holding the labels")
	fl.StringVar(&opt.ExprFeatures, "expr-features", classify.FeatEncoder, "expression features: encoder or pca")
	fl.Float64Var(&opt.C, "C", 1, "inverse L2 strength of the logistic-regression heads")
	fl.Float64Var(&opt.MaxMissing, "max-missing", 0.2, "largest fraction of the bundle's genes a section may lack before prediction from expression is refused")
	fl.BoolVar(&opt.NoImage, "no-image", false, "train the expression head only")
	fl.BoolVar(&opt.Center, "section-center", true, "centre each section's features on their own mean before the heads (label-free correction of section shifts; predict whole sections)")
	fl.StringVar(&opt.From, "from", "", "reuse the genes and encoders of this bundle and fit new heads only (no pretraining)")
	fl.IntVar(&opt.CV, "cv", 0, "also report a stratified k-fold cross-validation of each head on the training section (0 = off)")
	root.AddCommand(cmd)
}

func headNames(b *classify.Bundle) []string {
	var out []string
	for _, m := range []string{classify.ModFused, classify.ModExpr, classify.ModImage} {
		if b.Heads[m] != nil {
			out = append(out, m)
		}
	}
	return out
}

// openSection reads name as a HER2ST section of dir when it is one, else as
// a path in any supported format.
func openSection(dir, name string, opt section.Options) (*section.Section, error) {
	if !strings.ContainsAny(name, `/\.`) {
		if p := section.HER2ST(dir, name); fileExists(p) {
			return section.ReadLegacyST(p, opt)
		}
		return nil, fmt.Errorf("section %s: not found as %s (set --data) and not a path", name, section.HER2ST(dir, name))
	}
	return section.Open(name, opt)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// trainBundle runs the whole training of a bundle (see the train command).
// With opt.CV > 1 it also cross-validates the heads on the training section.
func trainBundle(ctx context.Context, cfg *study.Config, opt trainOptions, prog progress.Reporter) (*classify.Bundle, []classify.CVScore, error) {
	prog = progress.Or(prog)
	train, err := openSection(cfg.DataDir, opt.Section, section.Options{Labels: opt.Labels, LabelColumn: opt.LabelColumn})
	if err != nil {
		return nil, nil, err
	}
	if train.Labels == nil {
		return nil, nil, fmt.Errorf("train: section %s (%s) has no labels", train.Name, train.Source)
	}
	classes := study.Classes([]*section.Section{train}, cfg.ExcludeLabels)
	if len(classes) < 2 {
		return nil, nil, fmt.Errorf("train: section %s has %d classes %v after excluding %v; need ≥ 2", train.Name, len(classes), classes, cfg.ExcludeLabels)
	}
	if opt.From != "" {
		return refitHeads(ctx, train, classes, opt, prog)
	}

	// The expression pool (HVG + expression pretraining) and the image pool.
	pool := slices.DeleteFunc(slices.Clone(cfg.PretrainExpr), func(s string) bool { return s == train.Name })
	var poolSecs []*section.Section
	if len(pool) > 0 {
		if poolSecs, err = section.ReadHER2ST(ctx, cfg.DataDir, pool, 2, prog); err != nil {
			return nil, nil, err
		}
	}
	secs := append([]*section.Section{train}, poolSecs...)
	poolNames := append([]string{train.Name}, pool...)
	if !slices.Contains(cfg.PretrainExpr, train.Name) {
		poolNames = pool
		if len(poolNames) == 0 {
			poolNames = []string{train.Name}
		}
	}
	t0 := time.Now()
	ex, err := study.BuildExpression(secs, poolNames, cfg.HVG)
	if err != nil {
		return nil, nil, err
	}
	g := len(ex.Genes)
	slog.Info("train: genes", "hvg", g, "pool sections", len(poolNames), "seconds", time.Since(t0).Seconds())
	var x []float32
	n := 0
	var batch []int
	for bi, name := range poolNames {
		x = append(x, ex.X[name]...)
		for range len(ex.X[name]) / g {
			batch = append(batch, bi)
		}
		n += len(ex.X[name]) / g
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	b := &classify.Bundle{Meta: classify.Meta{
		Format: classify.BundleFormat, Version: classify.BundleVersion, SpotfuseVersion: opt.Version,
		Classes: classes, Genes: ex.Genes, Config: raw, SectionCenter: opt.Center,
		Normalization: classify.Normalization{TargetSum: 1e4, Log1p: true, MaxMissing: opt.MaxMissing,
			HVG: fmt.Sprintf("%d highly variable genes of the %d pool sections %s (study.BuildExpression: genes shared by the pool, batch-aware Seurat v3 on raw counts)",
				g, len(poolNames), strings.Join(poolNames, ","))},
	}}
	pseed := cfg.Pretrain.Seeds[0]
	ep := cfg.Pretrain.Expr
	switch opt.ExprFeatures {
	case classify.FeatPCA:
		k := min(cfg.PCA, n, g)
		_, comp, _, err := preprocess.PCA(x, n, g, k)
		if err != nil {
			return nil, nil, err
		}
		b.PCAMean, b.PCAComponents = columnMeans(x, n, g), comp
		b.Meta.Expression = classify.ExprSpec{Features: classify.FeatPCA, Components: k}
	case classify.FeatEncoder:
		var enc *models.ExprEncoder
		if ep.Off {
			enc, err = models.NewExprEncoder(models.ExprEncoderConfig{Genes: g, Hidden: ep.Hidden, Latent: ep.Latent},
				rand.New(rand.NewPCG(pseed, 0xe4a7d)))
		} else {
			loop := pretrain.DefaultLoop()
			loop.Steps, loop.Batch, loop.LR, loop.WeightDecay, loop.Seed = ep.Steps, ep.Batch, ep.LR, ep.WeightDecay, pseed
			loop.LogEvery = max(10, ep.Steps/10)
			d := &pretrain.ExprData{X: x, N: n, G: g, Batch: batch, NBatch: len(poolNames), Genes: ex.Genes, Sections: poolNames}
			if ep.Task == "nbvae" {
				for _, name := range poolNames {
					d.Counts = append(d.Counts, ex.Counts[name]...)
				}
			}
			t0 := time.Now()
			enc, _, err = pretrain.TrainExpression(ctx, d, pretrain.ExprConfig{Task: ep.Task, Latent: ep.Latent, Hidden: ep.Hidden,
				MaskFrac: ep.MaskFrac, Loop: loop}, prog)
			slog.Info("train: expression encoder pretrained", "task", ep.Task, "steps", ep.Steps, "spots", n, "seconds", time.Since(t0).Seconds())
		}
		if err != nil {
			return nil, nil, err
		}
		cfgE := enc.Config
		b.Expr = enc
		b.Meta.Expression = classify.ExprSpec{Features: classify.FeatEncoder, Encoder: &cfgE, Pretrained: !ep.Off}
	default:
		return nil, nil, fmt.Errorf("train: --expr-features %q: want %s or %s", opt.ExprFeatures, classify.FeatEncoder, classify.FeatPCA)
	}

	if train.Image != nil && !opt.NoImage {
		enc, err := trainImageEncoder(ctx, cfg, train, poolSecs, prog)
		if err != nil {
			return nil, nil, err
		}
		ip := cfg.Pretrain.Image
		b.Image = enc
		b.Meta.Image = &classify.ImageSpec{PatchSize: cfg.Patch.Size, Context: cfg.Patch.Context,
			Convention: classify.PatchConvention,
			Encoder:    enc.Config, Pretrained: !ip.Off}
	} else if train.Image == nil {
		slog.Info("train: the training section has no image; the bundle has an expression head only", "section", train.Name)
	}
	return fitHeads(ctx, b, train, opt, prog)
}

// fitHeads fits the heads of b on train and, with opt.CV > 1,
// cross-validates them.
func fitHeads(ctx context.Context, b *classify.Bundle, train *section.Section, opt trainOptions, prog progress.Reporter) (*classify.Bundle, []classify.CVScore, error) {
	hopt := classify.HeadOptions{C: opt.C}
	f, err := b.FitHeads(ctx, train, hopt, prog)
	if err != nil {
		return nil, nil, err
	}
	var cv []classify.CVScore
	if opt.CV > 1 {
		if cv, err = b.CrossValidate(ctx, train, f, opt.CV, 1, hopt); err != nil {
			return nil, nil, err
		}
	}
	return b, cv, nil
}

// refitHeads fits new heads on train with the genes and encoders of the
// bundle opt.From (its classes are replaced by classes).
func refitHeads(ctx context.Context, train *section.Section, classes []string, opt trainOptions, prog progress.Reporter) (*classify.Bundle, []classify.CVScore, error) {
	b, err := classify.LoadBundle(opt.From)
	if err != nil {
		return nil, nil, err
	}
	b.Meta.Classes, b.Meta.SectionCenter, b.Meta.SpotfuseVersion = classes, opt.Center, opt.Version
	b.Meta.Normalization.MaxMissing = opt.MaxMissing
	if opt.NoImage {
		b.Image, b.Meta.Image = nil, nil
	}
	return fitHeads(ctx, b, train, opt, prog)
}

// trainImageEncoder pretrains (or randomly initialises) the image encoder on
// the spot patches of cfg.PretrainImages, as the study does.
func trainImageEncoder(ctx context.Context, cfg *study.Config, train *section.Section, loaded []*section.Section, prog progress.Reporter) (*models.ImageEncoder, error) {
	ip := cfg.Pretrain.Image
	pseed := cfg.Pretrain.Seeds[0]
	byName := map[string]*section.Section{train.Name: train}
	for _, s := range loaded {
		byName[s.Name] = s
	}
	var imgSecs []*section.Section
	for _, name := range cfg.PretrainImages {
		s := byName[name]
		if s == nil {
			var err error
			if s, err = section.ReadLegacyST(section.HER2ST(cfg.DataDir, name), section.Options{}); err != nil {
				return nil, err
			}
		}
		imgSecs = append(imgSecs, s)
	}
	if len(imgSecs) == 0 {
		imgSecs = []*section.Section{train}
	}
	popt := patch.Options{Size: cfg.Patch.Size, Context: cfg.Patch.Context}
	t0 := time.Now()
	pp, err := pretrain.CollectPatches(ctx, imgSecs, popt, 0, pseed)
	if err != nil {
		return nil, err
	}
	slog.Info("train: image patches", "patches", len(pp.Pix), "sections", len(imgSecs), "seconds", time.Since(t0).Seconds())
	ec := cfg.ImageEncoder(pp.Pix)
	if ip.Off {
		enc := models.NewImageEncoder(ec, rand.New(rand.NewPCG(pseed, 0x1a6e)))
		pretrain.RecalibrateBN(enc, pp.Pix, cfg.Patch.Size, ip.Batch)
		return enc, nil
	}
	tr, held := pp.SplitHeld(0.05, pseed)
	loop := pretrain.DefaultLoop()
	loop.Steps, loop.Batch, loop.LR, loop.WeightDecay, loop.Seed = ip.Steps, ip.Batch, ip.LR, ip.WeightDecay, pseed
	loop.LogEvery = max(10, ip.Steps/10)
	t0 = time.Now()
	enc, _, err := pretrain.TrainImage(ctx, pp.Select(tr), cfg.Patch.Size, pp.Select(held),
		pretrain.ImageConfig{Encoder: ec, Tasks: ip.Tasks, Loop: loop}, prog)
	if err != nil {
		return nil, err
	}
	slog.Info("train: image encoder pretrained", "steps", ip.Steps, "seconds", time.Since(t0).Seconds())
	return enc, nil
}

// columnMeans returns the mean of each column of the n × d matrix x.
func columnMeans(x []float32, n, d int) []float32 {
	sum := make([]float64, d)
	for i := range n {
		for j, v := range x[i*d : (i+1)*d] {
			sum[j] += float64(v)
		}
	}
	out := make([]float32, d)
	for j, s := range sum {
		out[j] = float32(s / float64(n))
	}
	return out
}
