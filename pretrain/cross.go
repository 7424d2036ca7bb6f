package pretrain

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/spotfuse/spotfuse/models"
	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/progress"
	"github.com/spotfuse/spotfuse/tensor"
)

// CrossData holds the spots that have both an H&E patch and expression.
type CrossData struct {
	Patches [][]uint8 // N patches, HWC RGB of side Size
	Size    int
	X       []float32 // N × G log-normalised expression, as the expression encoder was trained on
	N, G    int
	Batch   []int // batch index of each spot for the expression encoder (optional; unused by its Embed)
	// Row and Col are array coordinates (for the spatial context);
	// Section is each spot's section: neighbours never cross sections and
	// CrossConfig.HeldOutSections selects spots by it.
	Row, Col []int
	Section  []int
}

// Validate checks that the parts of d agree.
func (d *CrossData) Validate() error {
	switch {
	case d == nil:
		return fmt.Errorf("pretrain: no cross-modal data")
	case d.N < 2 || d.G < 1:
		return fmt.Errorf("pretrain: cross-modal data is %d spots × %d genes, want at least 2 spots", d.N, d.G)
	case len(d.Patches) != d.N:
		return fmt.Errorf("pretrain: %d patches for %d spots", len(d.Patches), d.N)
	case len(d.X) != d.N*d.G:
		return fmt.Errorf("pretrain: cross-modal expression matrix has %d values, want %d × %d", len(d.X), d.N, d.G)
	case len(d.Row) != d.N || len(d.Col) != d.N || len(d.Section) != d.N:
		return fmt.Errorf("pretrain: %d spots but %d rows, %d cols and %d sections", d.N, len(d.Row), len(d.Col), len(d.Section))
	}
	for i, p := range d.Patches {
		if len(p) != 3*d.Size*d.Size {
			return fmt.Errorf("pretrain: patch %d has %d bytes, want %d×%d RGB", i, len(p), d.Size, d.Size)
		}
	}
	return nil
}

// CrossConfig configures TrainCross. Zero values take the defaults noted.
type CrossConfig struct {
	// Model sets the heads (shared width, context attention, temperature);
	// ImageDim and ExprDim are taken from the encoders.
	Model models.CrossConfig
	// FineTuneImage and FineTuneExpr train the encoders with the heads;
	// by default they are frozen and their embeddings computed once.
	FineTuneImage, FineTuneExpr bool
	// HeldOutSections are values of CrossData.Section kept out of training
	// and used for the held-out loss.
	HeldOutSections []int
	Loop            LoopConfig
}

// DefaultCrossConfig returns the documented defaults: frozen encoders, 200
// steps of 256 spots, no context. The heads overfit the few thousand paired
// spots of a typical study quickly: on HER2ST (7 training sections, C6
// held out) the held-out loss was lowest after 50–150 steps.
func DefaultCrossConfig() CrossConfig {
	loop := DefaultLoop()
	loop.Steps, loop.Batch, loop.CheckpointEvery, loop.LogEvery = 200, 256, 100, 25
	return CrossConfig{Model: models.CrossConfig{}.WithDefaults(), Loop: loop}
}

// maxLogScale caps the learned inverse temperature at 100, as CLIP does.
var maxLogScale = float32(math.Log(100))

// TrainCross aligns img and expr embeddings of the same spot with a
// symmetric InfoNCE (CLIP) loss over the spots of a batch and returns the
// cross-modal model (holding both encoders) and the loss history. The
// encoders are fine-tuned in place only when asked.
func TrainCross(ctx context.Context, img *models.ImageEncoder, expr *models.ExprEncoder, d *CrossData, cfg CrossConfig, prog progress.Reporter) (*models.CrossModel, *History, error) {
	t, err := newCrossTask(img, expr, d, cfg)
	if err != nil {
		return nil, nil, err
	}
	hist, err := Run(ctx, t, t.cfg.Loop, prog)
	if err != nil {
		return nil, hist, err
	}
	return t.m, hist, nil
}

type crossTask struct {
	cfg       CrossConfig
	d         *CrossData
	m         *models.CrossModel
	imgFeat   []float32 // frozen image embeddings (nil when fine-tuned)
	exprFeat  []float32 // frozen expression embeddings (nil when fine-tuned)
	nb        *models.Neighbourhood
	train     []int
	held      []int
	heldBatch int
}

func newCrossTask(img *models.ImageEncoder, expr *models.ExprEncoder, d *CrossData, cfg CrossConfig) (*crossTask, error) {
	if img == nil || expr == nil {
		return nil, fmt.Errorf("pretrain: cross-modal training needs an image and an expression encoder")
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if expr.Config.Genes != d.G {
		return nil, fmt.Errorf("pretrain: the expression encoder takes %d genes, the data has %d", expr.Config.Genes, d.G)
	}
	cfg.Loop = cfg.Loop.withDefaults()
	mc := cfg.Model
	mc.ImageDim, mc.ExprDim = img.Dim(), expr.Dim()
	m, err := models.NewCrossModel(mc, img, expr, rand.New(rand.NewPCG(cfg.Loop.Seed, 0xc1055)))
	if err != nil {
		return nil, err
	}
	cfg.Model = m.Config
	if m.Config.SectionNorm && (cfg.FineTuneImage || cfg.FineTuneExpr) {
		return nil, fmt.Errorf("pretrain: per-section feature standardisation (SectionNorm) needs frozen encoders")
	}
	t := &crossTask{cfg: cfg, d: d, m: m}
	heldOut := map[int]bool{}
	for _, s := range cfg.HeldOutSections {
		heldOut[s] = true
	}
	for i, s := range d.Section {
		if heldOut[s] {
			t.held = append(t.held, i)
		} else {
			t.train = append(t.train, i)
		}
	}
	if len(t.train) < 2 {
		return nil, fmt.Errorf("pretrain: cross-modal training has %d spots outside the held-out sections, want at least 2", len(t.train))
	}
	if m.Config.Context {
		if t.nb, err = models.GridNeighbours(d.Row, d.Col, d.Section); err != nil {
			return nil, fmt.Errorf("pretrain: %w", err)
		}
	}
	if !cfg.FineTuneImage {
		t.imgFeat, _ = img.Embed(d.Patches, d.Size)
	}
	if !cfg.FineTuneExpr {
		t.exprFeat, _ = expr.Embed(d.X, d.N, d.Batch)
	}
	if m.Config.SectionNorm {
		t.imgFeat = models.StandardizeBySection(t.imgFeat, d.N, mc.ImageDim, d.Section)
		t.exprFeat = models.StandardizeBySection(t.exprFeat, d.N, mc.ExprDim, d.Section)
	}
	t.heldBatch = min(cfg.Loop.Batch, len(t.held))
	return t, nil
}

// NamedParams returns the heads' parameters and, when fine-tuned, the
// encoders'.
func (t *crossTask) NamedParams() map[string]*nn.Var {
	p := t.m.HeadParams()
	if t.cfg.FineTuneImage {
		nn.AddPrefixed(p, "image", t.m.Image.NamedParams())
	}
	if t.cfg.FineTuneExpr {
		nn.AddPrefixed(p, "expr", t.m.Expr.NamedParams())
	}
	return p
}

// Buffers returns the running statistics of the fine-tuned encoders.
func (t *crossTask) Buffers() map[string]*tensor.Tensor {
	b := map[string]*tensor.Tensor{}
	if t.cfg.FineTuneImage {
		nn.AddPrefixed(b, "image", t.m.Image.Buffers())
	}
	if t.cfg.FineTuneExpr {
		nn.AddPrefixed(b, "expr", t.m.Expr.Buffers())
	}
	return b
}

// Step draws a batch of training spots and returns the CLIP loss.
func (t *crossTask) Step(ctx context.Context, step int, rng *rand.Rand) (*nn.Var, map[string]float64, error) {
	idx := sampleDistinct(rng, t.train, min(t.cfg.Loop.Batch, len(t.train)))
	loss := t.loss(idx, true, rng)
	return loss, map[string]float64{"infonce": float64(loss.Value.Data[0])}, nil
}

// HeldOut returns the mean CLIP loss over fixed batches of the held-out
// spots (in order), in eval mode.
func (t *crossTask) HeldOut(ctx context.Context) (map[string]float64, error) {
	if t.heldBatch < 2 {
		return map[string]float64{}, nil
	}
	var sum float64
	var n int
	nn.NoGrad(func() {
		for lo := 0; lo+t.heldBatch <= len(t.held); lo += t.heldBatch {
			sum += float64(t.loss(t.held[lo:lo+t.heldBatch], false, nil).Value.Data[0])
			n++
		}
	})
	v := sum / float64(n)
	return map[string]float64{"infonce": v, "total": v}, nil
}

// loss is the symmetric InfoNCE between the image and expression
// embeddings of the spots idx.
func (t *crossTask) loss(idx []int, train bool, rng *rand.Rand) *nn.Var {
	rows, tok := idx, models.Tokens{B: len(idx), T: 1}
	if t.nb != nil {
		rows, tok = t.nb.Tokens(idx, t.m.Config.Shared)
	}
	var img, expr *nn.Var
	if t.imgFeat != nil {
		img = nn.Const(models.GatherRows(t.imgFeat, t.m.Config.ImageDim, rows))
	} else {
		patches := make([][]uint8, len(rows))
		for r, i := range rows {
			patches[r] = t.d.Patches[i]
		}
		img = t.m.Image.Forward(nn.Const(t.m.Image.Input(patches, t.d.Size)), train)
	}
	if t.exprFeat != nil {
		expr = nn.Const(models.GatherRows(t.exprFeat, t.m.Config.ExprDim, rows))
	} else {
		expr, _ = t.m.Expr.Forward(nn.Const(models.GatherRows(t.d.X, t.d.G, rows)), nil, train, rng)
	}
	zi, ze := t.m.Forward(img, expr, tok)
	return clipLoss(zi, ze, t.m.LogScale(), t.m.Config.LearnTemperature)
}

// clipLoss is CLIP's symmetric cross-entropy over the cosine similarities
// of rows of a and b scaled by exp(logScale) (capped at 100 when learned).
func clipLoss(a, b, logScale *nn.Var, learned bool) *nn.Var {
	n := a.Value.Shape[0]
	logits := nn.MatMul(nn.L2Normalize(a), nn.Transpose2D(nn.L2Normalize(b)))
	if learned {
		if logScale.Value.Data[0] > maxLogScale {
			logScale.Value.Data[0] = maxLogScale
		}
		logits = nn.Mul(logits, nn.Exp(logScale))
	} else {
		logits = nn.Scale(logits, float32(math.Exp(float64(logScale.Value.Data[0]))))
	}
	target := make([]int, n)
	for i := range target {
		target[i] = i
	}
	return nn.Scale(nn.Add(nn.CrossEntropy(logits, target, nil), nn.CrossEntropy(nn.Transpose2D(logits), target, nil)), 0.5)
}

// CrossEmbed maps the spots of d to the shared space with m (its encoders
// in eval mode) and returns the L2-normalised image and expression
// embeddings (N × dim each).
func CrossEmbed(m *models.CrossModel, d *CrossData) (img, expr []float32, dim int, err error) {
	if err := d.Validate(); err != nil {
		return nil, nil, 0, err
	}
	var nb *models.Neighbourhood
	if m.Config.Context {
		if nb, err = models.GridNeighbours(d.Row, d.Col, d.Section); err != nil {
			return nil, nil, 0, fmt.Errorf("pretrain: %w", err)
		}
	}
	return m.Embed(d.Patches, d.Size, d.X, d.N, d.Section, nb)
}

// Retrieval measures cross-modal retrieval: for each of the n rows of
// query it ranks the n rows of keys by cosine similarity and reports, for
// each k in ks, the fraction of rows whose own key (same row) is among the
// top k. Ties count against the query. Chance level is k/n.
func Retrieval(query, keys []float32, n, d int, ks ...int) ([]float64, error) {
	if n < 1 || len(query) != n*d || len(keys) != n*d {
		return nil, fmt.Errorf("pretrain: retrieval: %d query and %d key values for %d rows of width %d", len(query), len(keys), n, d)
	}
	q, k := tensor.UnitRows(query, n, d), tensor.UnitRows(keys, n, d)
	sim := make([]float32, n*n)
	tensor.Gemm(false, true, n, n, d, 1, q, d, k, d, 0, sim, n)
	rank := make([]int, n) // keys scoring at least as high as the true one, excluding it
	for i := 0; i < n; i++ {
		row := sim[i*n : (i+1)*n]
		for j, s := range row {
			if j != i && s >= row[i] {
				rank[i]++
			}
		}
	}
	out := make([]float64, len(ks))
	for c, kk := range ks {
		hits := 0
		for _, r := range rank {
			if r < kk {
				hits++
			}
		}
		out[c] = float64(hits) / float64(n)
	}
	return out, nil
}
