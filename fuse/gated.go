package fuse

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/spotfuse/spotfuse/classify"
	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

// GatedConfig configures gated fusion. Zero fields take the defaults noted.
type GatedConfig struct {
	Width   int     // shared width every modality is projected to (default 32)
	Dropout float64 // dropout on the fused vector (default 0.1; negative = none)
	// Fit is the training loop (class-weighted cross-entropy, AdamW, early
	// stopping on a stratified validation split).
	Fit classify.FitConfig
}

// Gated is attention over modalities: each modality m is standardised and
// projected to a shared width, hₘ = tanh(Wₘxₘ + bₘ); a gate network reads
// all projections and gives per-spot softmax weights a = softmax(G[h₁…h_M]
// + c); the fused vector z = Σₘ aₘhₘ feeds a linear head. Everything is
// trained jointly on the labelled spots.
type Gated struct {
	K, Width int
	Dims     []int
	Std      []classify.Standardizer
	Proj     []*nn.LinearLayer
	Gate     *nn.LinearLayer
	Head     *nn.LinearLayer
	Present  []bool
	Epochs   int
	dropout  float64
}

// NewGated returns an untrained module for modalities of widths dims and k
// classes, initialised from rng (standardisation is the identity until
// TrainGated fits it).
func NewGated(dims []int, k int, cfg GatedConfig, rng *rand.Rand) *Gated {
	if cfg.Width == 0 {
		cfg.Width = 32
	}
	switch {
	case cfg.Dropout == 0:
		cfg.Dropout = 0.1
	case cfg.Dropout < 0:
		cfg.Dropout = 0
	}
	g := &Gated{K: k, Width: cfg.Width, Dims: append([]int(nil), dims...), dropout: cfg.Dropout, Present: make([]bool, k)}
	for _, d := range dims {
		g.Proj = append(g.Proj, nn.NewLinear(d, cfg.Width, true, rng))
		s := classify.Standardizer{Mean: make([]float32, d), Scale: make([]float32, d)}
		for j := range s.Scale {
			s.Scale[j] = 1
		}
		g.Std = append(g.Std, s)
	}
	g.Gate = nn.NewLinear(len(dims)*cfg.Width, len(dims), true, rng)
	g.Head = nn.NewLinear(cfg.Width, k, true, rng)
	for i := range g.Present {
		g.Present[i] = true
	}
	return g
}

// Params returns the trainable parameters in a fixed order.
func (g *Gated) Params() []*nn.Var {
	var ps []*nn.Var
	for _, p := range g.Proj {
		ps = append(ps, p.W, p.B)
	}
	return append(ps, g.Gate.W, g.Gate.B, g.Head.W, g.Head.B)
}

// Forward maps one [N, Dₘ] input per modality (already standardised) to
// logits [N, K] and gate weights [N, M].
func (g *Gated) Forward(xs []*nn.Var, train bool, rng *rand.Rand) (logits, weights *nn.Var) {
	hs := make([]*nn.Var, len(xs))
	for m, x := range xs {
		hs[m] = nn.Tanh(g.Proj[m].Forward(x))
	}
	weights = nn.Softmax(g.Gate.Forward(nn.Concat(1, hs...)))
	var z *nn.Var
	for m, h := range hs {
		term := nn.Mul(h, nn.Slice(weights, 1, m, m+1)) // [N, W] ⊙ [N, 1]
		if z == nil {
			z = term
		} else {
			z = nn.Add(z, term)
		}
	}
	z = nn.Dropout(z, g.dropout, rng, train)
	return g.Head.Forward(z), weights
}

// inputs gathers rows idx of every standardised block as constants.
func inputs(blocks []Block, idx []int) []*nn.Var {
	xs := make([]*nn.Var, len(blocks))
	for m, b := range blocks {
		t := tensor.New(len(idx), b.D)
		for r, i := range idx {
			copy(t.Data[r*b.D:(r+1)*b.D], b.X[i*b.D:(i+1)*b.D])
		}
		xs[m] = nn.Const(t)
	}
	return xs
}

// checkBlocks validates that blocks match g's widths and share a row count.
func (g *Gated) checkBlocks(blocks []Block) (int, error) {
	if len(blocks) != len(g.Dims) {
		return 0, fmt.Errorf("fuse: gated module has %d modalities, got %d blocks", len(g.Dims), len(blocks))
	}
	n := -1
	for m, b := range blocks {
		r, err := b.rows()
		if err != nil {
			return 0, err
		}
		if b.D != g.Dims[m] {
			return 0, fmt.Errorf("fuse: modality %d has width %d, the module expects %d", m, b.D, g.Dims[m])
		}
		if n >= 0 && r != n {
			return 0, fmt.Errorf("fuse: modality %d has %d rows, modality 0 has %d", m, r, n)
		}
		n = r
	}
	return n, nil
}

func (g *Gated) standardize(blocks []Block) []Block {
	out := make([]Block, len(blocks))
	for m, b := range blocks {
		out[m] = Block{X: g.Std[m].Apply(b.X), D: b.D}
	}
	return out
}

// TrainGated fits a gated fusion module on the labelled spots: blocks hold
// one modality each (same rows), y the classes in [0, k). Seeded by seed.
func TrainGated(ctx context.Context, blocks []Block, y []int, k int, cfg GatedConfig, seed uint64) (*Gated, error) {
	if len(blocks) < 2 {
		return nil, fmt.Errorf("fuse: gated fusion needs at least two modalities, got %d", len(blocks))
	}
	dims := make([]int, len(blocks))
	for m, b := range blocks {
		dims[m] = b.D
	}
	rng := rand.New(rand.NewPCG(seed, 0x6761746564))
	g := NewGated(dims, k, cfg, rng)
	n, err := g.checkBlocks(blocks)
	if err != nil {
		return nil, err
	}
	if len(y) != n || n == 0 {
		return nil, fmt.Errorf("fuse: %d labels for %d spots", len(y), n)
	}
	clear(g.Present)
	for i, c := range y {
		if c < 0 || c >= k {
			return nil, fmt.Errorf("fuse: label %d of spot %d outside [0, %d)", c, i, k)
		}
		g.Present[c] = true
	}
	for m, b := range blocks {
		g.Std[m] = classify.FitStandardizer(b.X, n, b.D)
	}
	zs := g.standardize(blocks)
	var weights []float32
	if !cfg.Fit.NoClassWeights {
		weights = classify.BalancedWeights(y, k)
	}
	loss := func(idx []int, train bool) *nn.Var {
		logits, _ := g.Forward(inputs(zs, idx), train, rng)
		t := make([]int, len(idx))
		for i, j := range idx {
			t[i] = y[j]
		}
		return nn.CrossEntropy(logits, t, weights)
	}
	g.Epochs, err = classify.Fit(ctx, g.Params(), n, y, loss, cfg.Fit, rng)
	if err != nil {
		return nil, fmt.Errorf("fuse: gated: %w", err)
	}
	return g, nil
}

// eval runs the module in evaluation mode on every row.
func (g *Gated) eval(blocks []Block) (logits, weights []float32, n int, err error) {
	n, err = g.checkBlocks(blocks)
	if err != nil {
		return nil, nil, 0, err
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	l, w := g.Forward(inputs(g.standardize(blocks), all), false, nil)
	return l.Value.Data, w.Value.Data, n, nil
}

// PredictProba returns n × K class probabilities (classes absent from
// training get 0).
func (g *Gated) PredictProba(blocks []Block) ([]float32, error) {
	logits, _, n, err := g.eval(blocks)
	if err != nil {
		return nil, err
	}
	return classify.MaskedSoftmax(logits, n, g.K, g.Present), nil
}

// Predict returns the most probable class of each spot.
func (g *Gated) Predict(blocks []Block) ([]int, error) {
	p, err := g.PredictProba(blocks)
	if err != nil {
		return nil, err
	}
	return classify.ArgmaxRows(p, len(p)/g.K, g.K), nil
}

// Weights returns the per-spot modality weights, n × M row-major (each row
// sums to 1), in the order of the blocks.
func (g *Gated) Weights(blocks []Block) ([]float32, error) {
	_, w, _, err := g.eval(blocks)
	return w, err
}
