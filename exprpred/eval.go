package exprpred

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/spotfuse/spotfuse/models"
	"github.com/spotfuse/spotfuse/patch"
	"github.com/spotfuse/spotfuse/pretrain"
	"github.com/spotfuse/spotfuse/progress"
	"github.com/spotfuse/spotfuse/section"
	"github.com/spotfuse/spotfuse/study"
)

// Methods evaluated by Evaluate.
const (
	MethodMean       = "mean"       // the training mean of every gene (constant)
	MethodStats      = "stats"      // ridge on colour/texture statistics
	MethodRandom     = "random"     // ridge on a randomly initialised image encoder
	MethodPretrained = "pretrained" // ridge on the self-supervised image encoder
	MethodRetrieval  = "retrieval"  // BLEEP-like top-k retrieval through the cross-modal embedding
)

// Config is one expression-from-H&E evaluation. Zero fields take the
// defaults noted (see DefaultConfig).
type Config struct {
	DataDir string
	// Sections are the HER2ST sections with an image used for training and
	// testing. Default A1, B4, C2, C3, C4, C5, C6: A2 is left out because
	// its image registration is approximate (±half a spot; the data README
	// says not to use its patches for supervision).
	Sections []string
	// Test lists the held-out sections, one fold each: the fold trains on
	// the other Sections. Default: every one of Sections (leave one out).
	Test []string
	// GenePool are the sections whose spots select the HVG and pretrain
	// the expression encoder (retrieval). Default: the HER2ST sections
	// without an image, so no evaluated spot takes part.
	GenePool []string
	HVG      int // highly variable genes predicted (default 1000)
	Top      int // most variable genes of the second summary (default 50)
	// PatchSize and Context cut the patches (defaults 32 and 1).
	PatchSize int
	Context   float64
	// Image encoder: Width, Depth (models defaults), ImageSteps (default
	// 300) and ImageBatch (default 64) of self-supervised pretraining on
	// the fold's training patches with all three pretext tasks.
	Width, Depth, ImageSteps, ImageBatch int
	ExprSteps                            int // expression pretraining steps (default 500)
	CrossSteps                           int // cross-modal alignment steps (default 500)
	K                                    int // retrieval neighbours (default 50)
	// Lambdas are the ridge penalties tried; the one with the best mean
	// per-gene correlation on the last training section (trained on the
	// others) is refitted on all training sections.
	Lambdas []float64
	Methods []string // default: all
	Seed    uint64
	// ImageEncoder, when set, replaces the per-fold image pretraining: the
	// same (already pretrained) encoder embeds every fold. If it was
	// pretrained on patches of the held-out sections too, that is
	// transductive self-supervision (no expression, no labels) and must be
	// reported as such.
	ImageEncoder *models.ImageEncoder
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	c := Config{}
	c.fill()
	return c
}

var imageSections = []string{"A1", "A2", "B4", "C2", "C3", "C4", "C5", "C6"}

func (c *Config) fill() {
	if c.DataDir == "" {
		c.DataDir = "../shared/data/her2st"
	}
	if c.Sections == nil {
		c.Sections = []string{"A1", "B4", "C2", "C3", "C4", "C5", "C6"}
	}
	if c.Test == nil {
		c.Test = slices.Clone(c.Sections)
	}
	if c.GenePool == nil {
		for _, s := range study.HER2STSections() {
			if !slices.Contains(imageSections, s) {
				c.GenePool = append(c.GenePool, s)
			}
		}
	}
	if c.HVG == 0 {
		c.HVG = 1000
	}
	if c.Top == 0 {
		c.Top = 50
	}
	if c.PatchSize == 0 {
		c.PatchSize = 32
	}
	if c.Context == 0 {
		c.Context = 1
	}
	if c.ImageSteps == 0 {
		c.ImageSteps = 300
	}
	if c.ImageBatch == 0 {
		c.ImageBatch = 64
	}
	if c.ExprSteps == 0 {
		c.ExprSteps = 500
	}
	if c.CrossSteps == 0 {
		c.CrossSteps = 500
	}
	if c.K == 0 {
		c.K = 50
	}
	if c.Lambdas == nil {
		c.Lambdas = []float64{1e-3, 1e-2, 0.1, 1, 10}
	}
	if c.Methods == nil {
		c.Methods = []string{MethodMean, MethodStats, MethodRandom, MethodPretrained, MethodRetrieval}
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
}

// Row is the result of one method on one held-out section.
type Row struct {
	Test, Method string
	Score
	MSE     float64
	Spots   int
	Seconds float64
}

// data is what every fold shares.
type data struct {
	cfg     Config
	genes   []string
	x       map[string][]float32 // section → spots-with-patch × G
	patches map[string][][]uint8 // section → spots with a patch
	expr    *models.ExprEncoder  // pretrained on the gene pool (retrieval)
}

// Evaluate runs the leave-one-section-out evaluation of cfg and returns one
// row per (held-out section, method); rows are also passed to emit (may be
// nil) as they are produced.
func Evaluate(ctx context.Context, cfg Config, prog progress.Reporter, emit func(Row)) ([]Row, error) {
	cfg.fill()
	prog = progress.Or(prog)
	for _, t := range cfg.Test {
		if !slices.Contains(cfg.Sections, t) {
			return nil, fmt.Errorf("exprpred: test section %s is not among the sections %v", t, cfg.Sections)
		}
	}
	if len(cfg.Sections) < 3 {
		return nil, fmt.Errorf("exprpred: need ≥ 3 sections (train, validation, test), got %v", cfg.Sections)
	}
	d, err := load(ctx, cfg, prog)
	if err != nil {
		return nil, err
	}
	var out []Row
	for _, test := range cfg.Test {
		rows, err := d.fold(ctx, test, prog)
		if err != nil {
			return out, err
		}
		for _, r := range rows {
			if emit != nil {
				emit(r)
			}
		}
		out = append(out, rows...)
	}
	return out, nil
}

func load(ctx context.Context, cfg Config, prog progress.Reporter) (*data, error) {
	names := slices.Clone(cfg.Sections)
	for _, s := range cfg.GenePool {
		if !slices.Contains(names, s) {
			names = append(names, s)
		}
	}
	t0 := time.Now()
	secs, err := section.ReadHER2ST(ctx, cfg.DataDir, names, 2, prog)
	if err != nil {
		return nil, err
	}
	ex, err := study.BuildExpression(secs, cfg.GenePool, cfg.HVG)
	if err != nil {
		return nil, err
	}
	g := len(ex.Genes)
	slog.Info("exprpred: genes selected", "hvg", g, "pool", len(cfg.GenePool), "seconds", time.Since(t0).Seconds())
	d := &data{cfg: cfg, genes: ex.Genes, x: map[string][]float32{}, patches: map[string][][]uint8{}}
	for _, s := range secs[:len(cfg.Sections)] {
		set, err := patch.Extract(ctx, s, patch.Options{Size: cfg.PatchSize, Context: cfg.Context})
		if err != nil {
			return nil, err
		}
		for i, p := range set.Pix {
			if p != nil {
				d.patches[s.Name] = append(d.patches[s.Name], p)
				d.x[s.Name] = append(d.x[s.Name], ex.X[s.Name][i*g:(i+1)*g]...)
			}
		}
		slog.Info("exprpred: patches", "section", s.Name, "spots", len(d.patches[s.Name]), "of", s.NumSpots())
	}
	if slices.Contains(cfg.Methods, MethodRetrieval) {
		var px []float32
		var batch []int
		for bi, name := range cfg.GenePool {
			px = append(px, ex.X[name]...)
			for range len(ex.X[name]) / g {
				batch = append(batch, bi)
			}
		}
		loop := pretrain.DefaultLoop()
		loop.Steps, loop.Batch, loop.Seed, loop.LogEvery = cfg.ExprSteps, 256, cfg.Seed, max(10, cfg.ExprSteps/5)
		t0 := time.Now()
		d.expr, _, err = pretrain.TrainExpression(ctx, &pretrain.ExprData{X: px, N: len(batch), G: g, Batch: batch,
			NBatch: len(cfg.GenePool), Genes: ex.Genes, Sections: cfg.GenePool},
			pretrain.ExprConfig{Task: "masked", Loop: loop}, prog)
		if err != nil {
			return nil, err
		}
		slog.Info("exprpred: expression encoder pretrained", "spots", len(batch), "seconds", time.Since(t0).Seconds())
	}
	return d, nil
}

// fold evaluates every method with test held out.
func (d *data) fold(ctx context.Context, test string, prog progress.Reporter) ([]Row, error) {
	cfg := d.cfg
	g := len(d.genes)
	var train []string
	for _, s := range cfg.Sections {
		if s != test {
			train = append(train, s)
		}
	}
	// Training rows; the last training section validates the ridge penalty.
	var trPatches [][]uint8
	var trX []float32
	var fit, val []int
	for si, s := range train {
		for _, p := range d.patches[s] {
			if si == len(train)-1 {
				val = append(val, len(trPatches))
			} else {
				fit = append(fit, len(trPatches))
			}
			trPatches = append(trPatches, p)
		}
		trX = append(trX, d.x[s]...)
	}
	teP, teX := d.patches[test], d.x[test]
	nTe, nTr := len(teP), len(trPatches)
	slog.Info("exprpred: fold", "test", test, "train", train, "train spots", nTr, "test spots", nTe)

	var rows []Row
	score := func(method string, pred []float32, start time.Time) {
		pcc := GenePearson(pred, teX, nTe, g)
		r := Row{Test: test, Method: method, Score: Summarize(pcc, teX, nTe, g, cfg.Top), MSE: MSE(pred, teX),
			Spots: nTe, Seconds: time.Since(start).Seconds()}
		slog.Info("exprpred: result", "test", test, "method", method, "pcc_all", r.MeanAll, "pcc_top", r.MeanTop, "mse", r.MSE, "seconds", r.Seconds)
		rows = append(rows, r)
	}
	ridge := func(method string, embed func([][]uint8) ([]float32, int), start time.Time) error {
		xtr, dd := embed(trPatches)
		r, err := FitRidgeCV(xtr, dd, trX, g, fit, val, cfg.Lambdas)
		if err != nil {
			return fmt.Errorf("exprpred: %s, test %s: %w", method, test, err)
		}
		xte, _ := embed(teP)
		slog.Debug("exprpred: ridge penalty", "method", method, "lambda", r.Lambda)
		score(method, r.Predict(xte, nTe), start)
		return nil
	}
	has := func(m string) bool { return slices.Contains(cfg.Methods, m) }
	if has(MethodMean) {
		start := time.Now()
		mean := make([]float32, g)
		for i := range nTr {
			for j := range g {
				mean[j] += trX[i*g+j] / float32(nTr)
			}
		}
		pred := make([]float32, nTe*g)
		for i := range nTe {
			copy(pred[i*g:(i+1)*g], mean)
		}
		score(MethodMean, pred, start)
	}
	if has(MethodStats) {
		start := time.Now()
		if err := ridge(MethodStats, func(p [][]uint8) ([]float32, int) { return colourStats(p, cfg.PatchSize) }, start); err != nil {
			return rows, err
		}
	}
	encCfg := models.ImageEncoderConfig{Width: cfg.Width, Depth: cfg.Depth}
	encCfg.Mean, encCfg.Std = models.ChannelStats(trPatches)
	if has(MethodRandom) {
		start := time.Now()
		enc := models.NewImageEncoder(encCfg, rand.New(rand.NewPCG(cfg.Seed, 0x1a6e)))
		pretrain.RecalibrateBN(enc, trPatches, cfg.PatchSize, cfg.ImageBatch)
		if err := ridge(MethodRandom, func(p [][]uint8) ([]float32, int) { return enc.Embed(p, cfg.PatchSize) }, start); err != nil {
			return rows, err
		}
	}
	if !has(MethodPretrained) && !has(MethodRetrieval) {
		return rows, nil
	}
	start := time.Now()
	enc := cfg.ImageEncoder
	if enc == nil {
		loop := pretrain.DefaultLoop()
		loop.Steps, loop.Batch, loop.Seed, loop.LogEvery = cfg.ImageSteps, cfg.ImageBatch, cfg.Seed, max(10, cfg.ImageSteps/5)
		var err error
		enc, _, err = pretrain.TrainImage(ctx, trPatches, cfg.PatchSize, nil,
			pretrain.ImageConfig{Encoder: encCfg, Tasks: map[string]float64{"inpaint": 1, "colorize": 1, "contrastive": 1}, Loop: loop}, prog)
		if err != nil {
			return rows, err
		}
		slog.Info("exprpred: image encoder pretrained", "test", test, "seconds", time.Since(start).Seconds())
	}
	if has(MethodPretrained) {
		if err := ridge(MethodPretrained, func(p [][]uint8) ([]float32, int) { return enc.Embed(p, cfg.PatchSize) }, start); err != nil {
			return rows, err
		}
	}
	if has(MethodRetrieval) {
		start := time.Now()
		cd := &pretrain.CrossData{Patches: trPatches, Size: cfg.PatchSize, X: trX, N: nTr, G: g,
			Row: make([]int, nTr), Col: make([]int, nTr), Section: make([]int, nTr)}
		cc := pretrain.DefaultCrossConfig()
		cc.Loop.Steps, cc.Loop.Seed, cc.Loop.LogEvery = cfg.CrossSteps, cfg.Seed, max(10, cfg.CrossSteps/5)
		cm, _, err := pretrain.TrainCross(ctx, enc, d.expr, cd, cc, prog)
		if err != nil {
			return rows, err
		}
		imgTr, _ := enc.Embed(trPatches, cfg.PatchSize)
		exTr, _ := d.expr.Embed(trX, nTr, nil)
		_, keys, dim, err := cm.EmbedFeatures(imgTr, exTr, nTr, nil)
		if err != nil {
			return rows, err
		}
		imgTe, _ := enc.Embed(teP, cfg.PatchSize)
		// The query side never sees the held-out expression.
		query, _, _, err := cm.EmbedFeatures(imgTe, make([]float32, nTe*d.expr.Dim()), nTe, nil)
		if err != nil {
			return rows, err
		}
		pred, err := Retrieve(query, nTe, keys, nTr, dim, trX, g, cfg.K)
		if err != nil {
			return rows, err
		}
		score(MethodRetrieval, pred, start)
	}
	return rows, nil
}

// colourStats is patch.ColourTextureStats over a set of patches.
func colourStats(patches [][]uint8, size int) ([]float32, int) {
	var out []float32
	d := 0
	for _, p := range patches {
		f, err := patch.ColourTextureStats(p, size)
		if err != nil {
			panic(err) // patches come from patch.Extract with this size
		}
		d = len(f)
		out = append(out, f...)
	}
	return out, d
}

// WriteCSV writes rows as CSV with a header.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"test", "method", "pcc_all", "pcc_top", "top", "genes", "undefined", "mse", "spots", "seconds"})
	f := func(v float64) string {
		if math.IsNaN(v) {
			return "NA"
		}
		return strconv.FormatFloat(v, 'f', 4, 64)
	}
	for _, r := range rows {
		cw.Write([]string{r.Test, r.Method, f(r.MeanAll), f(r.MeanTop), strconv.Itoa(r.Top), strconv.Itoa(r.Genes),
			strconv.Itoa(r.Undefined), f(r.MSE), strconv.Itoa(r.Spots), strconv.FormatFloat(r.Seconds, 'f', 1, 64)})
	}
	cw.Flush()
	return cw.Error()
}
