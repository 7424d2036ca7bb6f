package study

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spotfuse/spotfuse/fuse"
	"github.com/spotfuse/spotfuse/models"
	"github.com/spotfuse/spotfuse/patch"
	"github.com/spotfuse/spotfuse/pretrain"
	"github.com/spotfuse/spotfuse/progress"
	"github.com/spotfuse/spotfuse/report"
	"github.com/spotfuse/spotfuse/section"
)

// Results is what Run produced.
type Results struct {
	Config  *Config
	Classes []string
	// Rows holds every run, including those found in an earlier,
	// interrupted results.csv of the same study.
	Rows    []*Row
	Summary []Summary
	OOF     []*OOF
	// Paths of the outputs.
	ResultsCSV, SummaryCSV, Report string
	// Stages lists the wall time of each stage, in order.
	Stages []Stage
}

// Stage is the wall time of one step of Run.
type Stage struct {
	Name    string
	Seconds float64
}

// labelOrder is the HER2ST label order used for class indices; other labels
// follow alphabetically.
var labelOrder = []string{"invasive cancer", "cancer in situ", "immune infiltrate", "breast glands",
	"connective tissue", "adipose tissue", "undetermined"}

// classesOf returns the labels of the sections, minus exclude, in
// labelOrder then alphabetical order.
func classesOf(secs []*section.Section, exclude []string) []string {
	seen := map[string]bool{}
	for _, s := range secs {
		for _, l := range s.Labels {
			if l != "" && !slices.Contains(exclude, l) {
				seen[l] = true
			}
		}
	}
	var cls []string
	for _, l := range labelOrder {
		if seen[l] {
			cls = append(cls, l)
			delete(seen, l)
		}
	}
	var rest []string
	for l := range seen {
		rest = append(rest, l)
	}
	sort.Strings(rest)
	return append(cls, rest...)
}

// newTarget returns the evaluation view of a labelled section.
func newTarget(s *section.Section, classes []string) (*Target, error) {
	t := &Target{Name: s.Name, Sec: s, Y: make([]int, s.NumSpots())}
	n := 0
	for i := range t.Y {
		t.Y[i] = -1
		if s.Labels != nil {
			if c := slices.Index(classes, s.Labels[i]); c >= 0 {
				t.Y[i] = c
				n++
			}
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("study: section %s (%s) has no spot labelled with one of %v", s.Name, s.Source, classes)
	}
	return t, nil
}

// union returns the names of the lists in first-seen order.
func union(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, s := range l {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// runner carries the state of one Run.
type runner struct {
	cfg     *Config
	prog    progress.Reporter
	secs    map[string]*section.Section
	classes []string
	targets []*Target // KFold
	loso    []*Target
	expr    *exprData
	// patches of the target sections (nil entries for spots without one).
	patches map[string][][]uint8
	pool    *pretrain.PatchPool
	sets    []*FeatureSet
	stages  []Stage
	start   time.Time
}

func (r *runner) stage(name string) {
	now := time.Now()
	if len(r.stages) > 0 {
		r.stages[len(r.stages)-1].Seconds = now.Sub(r.start).Seconds()
	}
	r.start = now
	if name != "" {
		r.stages = append(r.stages, Stage{Name: name})
		slog.Info("study: "+name, "study", r.cfg.Name)
	}
}

// Run executes the study described by cfg: it reads the sections, builds
// the feature sets (baselines, random and pretrained encoders, fusions),
// evaluates them, and writes results.csv (row by row), summary.csv and
// report.html to cfg.Out. A results.csv left by an interrupted run of the
// same study is continued: finished runs are not repeated.
func Run(ctx context.Context, cfg *Config, prog progress.Reporter) (*Results, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("study: config: %w", err)
	}
	r := &runner{cfg: cfg, prog: progress.Or(prog), secs: map[string]*section.Section{}}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("study: %w", err)
	}
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	if err := r.features(ctx); err != nil {
		return nil, err
	}
	res, err := r.evaluate(ctx)
	r.stage("")
	if res != nil {
		res.Stages = r.stages
	}
	return res, err
}

// load reads the sections and builds the labels, expression and patches.
func (r *runner) load(ctx context.Context) error {
	cfg := r.cfg
	if fi, err := os.Stat(cfg.DataDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("study: data directory %s not found (set data_dir in the config or --data)", cfg.DataDir)
	}
	r.stage("reading sections")
	names := union(cfg.Targets, cfg.LOSO, cfg.PretrainImages, cfg.PretrainExpr)
	secs, err := section.ReadHER2ST(ctx, cfg.DataDir, names, 2, r.prog)
	if err != nil {
		return err
	}
	for _, s := range secs {
		r.secs[s.Name] = s
	}
	var labelled []*section.Section
	for _, n := range union(cfg.Targets, cfg.LOSO) {
		labelled = append(labelled, r.secs[n])
	}
	r.classes = classesOf(labelled, cfg.ExcludeLabels)
	if len(r.classes) < 2 {
		return fmt.Errorf("study: the evaluated sections have %d classes (%v) after excluding %v; need ≥ 2", len(r.classes), r.classes, cfg.ExcludeLabels)
	}
	for _, n := range cfg.Targets {
		t, err := newTarget(r.secs[n], r.classes)
		if err != nil {
			return err
		}
		if r.secs[n].Image == nil {
			return fmt.Errorf("study: target section %s has no H&E image (targets need one; use \"loso\" for expression-only sections)", n)
		}
		r.targets = append(r.targets, t)
	}
	for _, n := range cfg.LOSO {
		t, err := newTarget(r.secs[n], r.classes)
		if err != nil {
			return err
		}
		r.loso = append(r.loso, t)
	}

	r.stage("expression: matching genes, HVG, log-normalisation")
	r.expr, err = buildExpression(secs, cfg.PretrainExpr, cfg.HVG)
	if err != nil {
		return err
	}
	slog.Info("study: expression", "genes", len(r.expr.Genes), "sections", len(secs))

	r.stage("patches")
	popt := patch.Options{Size: cfg.Patch.Size, Context: cfg.Patch.Context}
	var imgSecs []*section.Section
	for _, n := range cfg.PretrainImages {
		imgSecs = append(imgSecs, r.secs[n])
	}
	r.patches = map[string][][]uint8{}
	if len(imgSecs) > 0 {
		r.pool, err = pretrain.CollectPatches(ctx, imgSecs, popt, 0, cfg.Pretrain.Seeds[0])
		if err != nil {
			return err
		}
		for i, si := range r.pool.Section {
			name := imgSecs[si].Name
			if slices.Contains(cfg.Targets, name) {
				if r.patches[name] == nil {
					r.patches[name] = make([][]uint8, r.secs[name].NumSpots())
				}
				r.patches[name][r.pool.Spot[i]] = r.pool.Pix[i]
			}
		}
	}
	for _, t := range r.targets {
		if r.patches[t.Name] != nil {
			continue
		}
		set, err := patch.Extract(ctx, t.Sec, popt)
		if err != nil {
			return err
		}
		r.patches[t.Name] = set.Pix
	}
	// Spots without a patch are left out of every setting so all settings
	// are scored on the same spots.
	for _, t := range r.targets {
		dropped := 0
		for i, p := range r.patches[t.Name] {
			if p == nil && t.Y[i] >= 0 {
				t.Y[i] = -1
				dropped++
			}
		}
		if dropped > 0 {
			slog.Warn("study: labelled spots without an image patch are not evaluated", "section", t.Name, "spots", dropped)
		}
	}
	return nil
}

// targetPatches returns the patches of t's spots, substituting a grey patch
// for spots without one (they are never scored).
func (r *runner) targetPatches(t *Target) [][]uint8 {
	size := r.cfg.Patch.Size
	grey := make([]uint8, size*size*3)
	for i := range grey {
		grey[i] = 128
	}
	ps := slices.Clone(r.patches[t.Name])
	for i, p := range ps {
		if p == nil {
			ps[i] = grey
		}
	}
	return ps
}

// blocksOf builds a per-section block map from fn.
func blocksOf(ts []*Target, fn func(t *Target) ([]float32, int)) map[string][]fuse.Block {
	m := map[string][]fuse.Block{}
	for _, t := range ts {
		x, d := fn(t)
		m[t.Name] = []fuse.Block{{X: x, D: d}}
	}
	return m
}

// exprEmbedder and imageEmbedder turn a section's inputs into embeddings.
type (
	exprEmbedder  func(x []float32, n int) ([]float32, int)
	imageEmbedder func(patches [][]uint8) ([]float32, int)
)

// features builds every feature set of the grid.
func (r *runner) features(ctx context.Context) error {
	cfg := r.cfg
	all := append(slices.Clone(r.targets), r.loso...)
	has := func(b string) bool { return slices.Contains(cfg.Baselines, b) }
	heads := cfg.Heads

	if has("majority") {
		r.sets = append(r.sets, &FeatureSet{Setting: "majority", Modality: "none", Features: "majority", Fusion: "none",
			Blocks: blocksOf(all, func(t *Target) ([]float32, int) { return make([]float32, len(t.Y)), 1 }),
			Heads:  []string{"majority"}})
	}
	if has("pca") {
		r.stage("expression PCA")
		p, err := fitPCA(r.expr.Pool.X, r.expr.Pool.N, r.expr.Pool.G, cfg.PCA)
		if err != nil {
			return err
		}
		r.sets = append(r.sets, &FeatureSet{Setting: "expr-pca", Modality: "expr", Features: "pca", Fusion: "none",
			Blocks: blocksOf(all, func(t *Target) ([]float32, int) { return p.transform(r.expr.X[t.Name], len(t.Y)), p.K }),
			Heads:  heads})
	}
	if has("stats") && len(r.targets) > 0 {
		r.stage("image colour/texture statistics")
		blocks := map[string][]fuse.Block{}
		for _, t := range r.targets {
			x, d, err := colourTextureStats(r.targetPatches(t), cfg.Patch.Size)
			if err != nil {
				return fmt.Errorf("section %s: %w", t.Name, err)
			}
			blocks[t.Name] = []fuse.Block{{X: x, D: d}}
		}
		r.sets = append(r.sets, &FeatureSet{Setting: "image-stats", Modality: "image", Features: "stats", Fusion: "none",
			Blocks: blocks, Heads: heads})
	}
	for _, pseed := range cfg.Pretrain.Seeds {
		if has("random") {
			r.stage(fmt.Sprintf("random encoders (seed %d)", pseed))
			img, err := r.randomImage(pseed)
			if err != nil {
				return err
			}
			expr, err := r.randomExpr(pseed)
			if err != nil {
				return err
			}
			r.addEncoderSets("random", "", pseed, img, expr)
		}
		if !cfg.Pretrain.Image.Off || !cfg.Pretrain.Expr.Off {
			var (
				expr    exprEmbedder
				exprEnc *models.ExprEncoder
			)
			if !cfg.Pretrain.Expr.Off {
				r.stage(fmt.Sprintf("pretraining the expression encoder (seed %d)", pseed))
				var err error
				expr, exprEnc, err = r.pretrainExpr(ctx, pseed)
				if err != nil {
					return err
				}
			}
			var (
				img    imageEmbedder
				imgEnc *models.ImageEncoder
			)
			tasks := enabledTasks(cfg.Pretrain.Image.Tasks)
			if !cfg.Pretrain.Image.Off && r.pool != nil {
				r.stage(fmt.Sprintf("pretraining the image encoder on %s (seed %d)", strings.Join(tasks, "+"), pseed))
				var err error
				img, imgEnc, err = r.pretrainImage(ctx, cfg.Pretrain.Image.Tasks, pseed)
				if err != nil {
					return err
				}
			}
			r.addEncoderSets("pretrained", strings.Join(tasks, "+"), pseed, img, expr)
			if !cfg.Pretrain.Cross.Off && imgEnc != nil && exprEnc != nil && len(r.targets) > 0 {
				r.stage(fmt.Sprintf("cross-modal alignment of the pretrained encoders (seed %d)", pseed))
				ci, ce, err := r.pretrainCross(ctx, imgEnc, exprEnc, pseed)
				if err != nil {
					return err
				}
				r.addEncoderSets("cross", strings.Join(tasks, "+"), pseed, ci, ce)
			}
			if cfg.TaskAblation && img != nil && len(tasks) > 1 {
				for _, task := range tasks {
					r.stage(fmt.Sprintf("pretraining the image encoder on %s alone (seed %d)", task, pseed))
					one, _, err := r.pretrainImage(ctx, map[string]float64{task: cfg.Pretrain.Image.Tasks[task]}, pseed)
					if err != nil {
						return err
					}
					r.addImageSet("image-pretrained-"+task, "pretrained", task, pseed, one)
				}
			}
		}
	}
	return nil
}

// enabledTasks lists the tasks with positive weight in pretrain.ImageTasks order.
func enabledTasks(w map[string]float64) []string {
	var out []string
	for _, t := range pretrain.ImageTasks {
		if w[t] > 0 {
			out = append(out, t)
		}
	}
	return out
}

func (r *runner) addImageSet(setting, features, pretext string, pseed uint64, img imageEmbedder) {
	r.sets = append(r.sets, &FeatureSet{Setting: setting, Modality: "image", Features: features, Pretext: pretext,
		Fusion: "none", PSeed: pseed, Heads: r.cfg.Heads,
		Blocks: blocksOf(r.targets, func(t *Target) ([]float32, int) { return img(r.targetPatches(t)) })})
}

// addEncoderSets adds the image-only, expression-only and fused settings of
// one pair of encoders (either may be nil).
func (r *runner) addEncoderSets(features, pretext string, pseed uint64, img imageEmbedder, expr exprEmbedder) {
	cfg := r.cfg
	all := append(slices.Clone(r.targets), r.loso...)
	var exprBlocks, imgBlocks map[string][]fuse.Block
	if expr != nil {
		exprBlocks = blocksOf(all, func(t *Target) ([]float32, int) { return expr(r.expr.X[t.Name], len(t.Y)) })
		r.sets = append(r.sets, &FeatureSet{Setting: "expr-" + features, Modality: "expr", Features: features,
			Fusion: "none", PSeed: pseed, Heads: cfg.Heads, Blocks: exprBlocks})
	}
	if img != nil {
		imgBlocks = blocksOf(r.targets, func(t *Target) ([]float32, int) { return img(r.targetPatches(t)) })
		r.sets = append(r.sets, &FeatureSet{Setting: "image-" + features, Modality: "image", Features: features,
			Pretext: pretext, Fusion: "none", PSeed: pseed, Heads: cfg.Heads, Blocks: imgBlocks})
	}
	if img == nil || expr == nil {
		return
	}
	contexts := []bool{false}
	if cfg.Context {
		contexts = append(contexts, true)
	}
	for _, withCtx := range contexts {
		suffix := ""
		if withCtx {
			suffix = "-context"
		}
		// Fused blocks per target: [image, expression], each optionally with
		// the neighbourhood mean appended.
		fused := map[string][]fuse.Block{}
		for _, t := range r.targets {
			bs := []fuse.Block{imgBlocks[t.Name][0], exprBlocks[t.Name][0]}
			if withCtx {
				row, col := make([]int, len(t.Y)), make([]int, len(t.Y))
				for i, sp := range t.Sec.Spots {
					row[i], col[i] = sp.Row, sp.Col
				}
				nb, err := fuse.Neighbours(row, col, fuse.AutoGrid)
				if err != nil {
					slog.Warn("study: no neighbourhood context", "section", t.Name, "err", err)
					continue
				}
				for bi, b := range bs {
					x, _ := fuse.Context(b.X, len(t.Y), b.D, nb)
					bs[bi] = fuse.Block{X: x, D: 2 * b.D}
				}
			}
			fused[t.Name] = bs
		}
		for _, f := range cfg.Fusions {
			set := &FeatureSet{Setting: "fused-" + f + "-" + features + suffix, Modality: "fused", Features: features,
				Pretext: pretext, Fusion: f, Context: withCtx, PSeed: pseed}
			switch f {
			case "concat":
				set.Heads = cfg.Heads
				set.Blocks = map[string][]fuse.Block{}
				for name, bs := range fused {
					x, d, err := fuse.Concat(bs...)
					if err != nil {
						slog.Warn("study: concat fusion failed", "section", name, "err", err)
						continue
					}
					set.Blocks[name] = []fuse.Block{{X: x, D: d}}
				}
			case "gated":
				set.Heads = []string{"gated"}
				set.Blocks = fused
			}
			r.sets = append(r.sets, set)
		}
	}
}

// imageEncoderConfig is the encoder architecture of the study, with the
// channel statistics of its pretraining patches.
func (r *runner) imageEncoderConfig() models.ImageEncoderConfig {
	var pix [][]uint8
	if r.pool != nil {
		pix = r.pool.Pix
	}
	return r.cfg.ImageEncoder(pix)
}

// ImageEncoder returns the image encoder architecture the config asks for
// (width, depth, pooling; default pooling "stages"), normalised with the
// channel statistics of patches when there are any.
func (c *Config) ImageEncoder(patches [][]uint8) models.ImageEncoderConfig {
	ec := models.ImageEncoderConfig{Width: c.Pretrain.Image.Width, Depth: c.Pretrain.Image.Depth, Pool: c.Pretrain.Image.Pool}
	if ec.Pool == "" {
		ec.Pool = models.PoolStages
	}
	if len(patches) > 0 {
		ec.Mean, ec.Std = models.ChannelStats(patches)
	}
	return ec
}

// randomImage returns an untrained image encoder's embedder; its BatchNorm
// running statistics are estimated on the pretraining patches (no weight
// is trained) so that eval-mode activations are on a sensible scale.
func (r *runner) randomImage(pseed uint64) (imageEmbedder, error) {
	if len(r.targets) == 0 {
		return nil, nil
	}
	enc := models.NewImageEncoder(r.imageEncoderConfig(), rand.New(rand.NewPCG(pseed, 0x1a6e)))
	if r.pool != nil {
		pretrain.RecalibrateBN(enc, r.pool.Pix, r.cfg.Patch.Size, r.cfg.Pretrain.Image.Batch)
	}
	size := r.cfg.Patch.Size
	return func(p [][]uint8) ([]float32, int) { return enc.Embed(p, size) }, nil
}

// pretrainImage trains an image encoder on the pool with the given tasks.
// Checkpoints go to Out/pretrain/image-<tasks>-seed<seed>, so an
// interrupted study resumes its pretraining.
func (r *runner) pretrainImage(ctx context.Context, tasks map[string]float64, pseed uint64) (imageEmbedder, *models.ImageEncoder, error) {
	im := r.cfg.Pretrain.Image
	train, held := r.pool.SplitHeld(0.05, pseed)
	dir := filepath.Join(r.cfg.Out, "pretrain", fmt.Sprintf("image-%s-seed%d", strings.Join(enabledTasks(tasks), "+"), pseed))
	loop := pretrain.DefaultLoop()
	loop.Steps, loop.Batch, loop.LR, loop.WeightDecay, loop.Seed, loop.Dir = im.Steps, im.Batch, im.LR, im.WeightDecay, pseed, dir
	loop.CheckpointEvery = max(50, im.Steps/5)
	loop.LogEvery = max(10, im.Steps/10)
	enc, hist, err := pretrain.TrainImage(ctx, r.pool.Select(train), r.cfg.Patch.Size, r.pool.Select(held),
		pretrain.ImageConfig{Encoder: r.imageEncoderConfig(), Tasks: tasks, Loop: loop}, r.prog)
	if err != nil {
		return nil, nil, err
	}
	logHistory("image "+strings.Join(enabledTasks(tasks), "+"), hist)
	size := r.cfg.Patch.Size
	return func(p [][]uint8) ([]float32, int) { return enc.Embed(p, size) }, enc, nil
}

func logHistory(what string, h *pretrain.History) {
	if h == nil || len(h.Steps) == 0 {
		return
	}
	first, last := h.Loss["total"][0], h.Loss["total"][len(h.Loss["total"])-1]
	slog.Info("study: pretrained", "encoder", what, "steps", h.Steps[len(h.Steps)-1], "loss_first", first, "loss_last", last, "seconds", h.Seconds)
}

// evaluate runs the grid, then writes summary.csv and report.html.
func (r *runner) evaluate(ctx context.Context) (*Results, error) {
	cfg := r.cfg
	r.stage("evaluating")
	res := &Results{Config: cfg, Classes: r.classes,
		ResultsCSV: filepath.Join(cfg.Out, "results.csv"),
		SummaryCSV: filepath.Join(cfg.Out, "summary.csv"),
		Report:     filepath.Join(cfg.Out, "report.html")}
	rf, prev, err := CreateResults(res.ResultsCSV, r.classes)
	if err != nil {
		return nil, err
	}
	defer rf.Close()
	done := map[string]bool{}
	for _, row := range prev {
		if row.Study == cfg.Name {
			done[row.Key()] = true
		}
	}
	if len(done) > 0 {
		slog.Info("study: continuing an earlier run", "results", res.ResultsCSV, "finished_runs", len(done))
	}
	d := &Design{Study: cfg.Name, Classes: r.classes, KFold: r.targets, LOSO: r.loso, Sets: r.sets,
		Fractions: cfg.Fractions, LOSOFractions: cfg.LOSOFractions, Folds: cfg.Folds, Seeds: cfg.Seeds,
		MapFraction: cfg.MapFraction, Workers: cfg.Workers, Cluster: true, SectionStandardize: !cfg.LOSORaw}
	out, err := Evaluate(ctx, d, rf, done, r.prog)
	if err != nil {
		return nil, err
	}
	for _, row := range prev {
		if row.Study == cfg.Name {
			res.Rows = append(res.Rows, row)
		}
	}
	res.Rows = append(res.Rows, out.Rows...)
	res.OOF = out.OOF
	// Rows were appended as runs ended; rewrite them in a canonical order
	// so the same study gives the same results.csv (and summary) twice.
	settings := make([]string, len(r.sets))
	for i, s := range r.sets {
		settings[i] = s.Setting
	}
	SortRows(res.Rows, settings)
	var others []*Row
	for _, row := range prev {
		if row.Study != cfg.Name {
			others = append(others, row)
		}
	}
	if err := rf.Rewrite(append(others, res.Rows...)); err != nil {
		return nil, err
	}

	r.stage("summary and report")
	res.Summary = Summarize(res.Rows, r.classes)
	if err := writeSummary(res.SummaryCSV, res.Summary, r.classes); err != nil {
		return nil, err
	}
	if err := report.Write(res.Report, r.buildReport(res)); err != nil {
		return res, err
	}
	return res, nil
}
