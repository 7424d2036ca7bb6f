package classify

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

// FitConfig is the training loop shared by the engine-based heads (MLP here,
// the gated fusion module in package fuse): AdamW on class-weighted
// cross-entropy, mini-batches, early stopping on a stratified validation
// split. Zero fields take the defaults noted.
type FitConfig struct {
	LR          float64 // AdamW learning rate (default 3e-3)
	WeightDecay float64 // AdamW decoupled weight decay (default 1e-2)
	Batch       int     // mini-batch size (default 64)
	MaxEpochs   int     // upper bound on epochs (default 200)
	// Patience stops training after this many epochs without a lower
	// validation loss; the weights of the best epoch are restored
	// (default 20).
	Patience int
	// MinSteps is the number of optimizer steps before the validation loss
	// is tracked: with few labels an epoch is a single step, and the
	// noisy validation loss of a barely trained head would otherwise stop
	// training at once (default 150). Without a validation split training
	// also runs at least MinSteps steps.
	MinSteps int
	// ValFrac is the stratified fraction of the labelled spots held out
	// for early stopping (default 0.2; classes with one spot are never
	// held out). When nothing can be held out, training runs NoValEpochs.
	ValFrac     float64
	NoValEpochs int // epochs without a validation split (default 50)
	// NoClassWeights turns off balanced class weights
	// (n / (classes present · count), as scikit-learn's "balanced").
	NoClassWeights bool
}

func (c FitConfig) withDefaults() FitConfig {
	if c.LR == 0 {
		c.LR = 3e-3
	}
	if c.WeightDecay == 0 {
		c.WeightDecay = 1e-2
	}
	if c.Batch == 0 {
		c.Batch = 64
	}
	if c.MaxEpochs == 0 {
		c.MaxEpochs = 200
	}
	if c.Patience == 0 {
		c.Patience = 20
	}
	if c.MinSteps == 0 {
		c.MinSteps = 150
	}
	if c.ValFrac == 0 {
		c.ValFrac = 0.2
	}
	if c.NoValEpochs == 0 {
		c.NoValEpochs = 50
	}
	return c
}

// BalancedWeights returns per-class weights n / (present · count_c) for
// labels y in [0, k); classes absent from y get weight 0.
func BalancedWeights(y []int, k int) []float32 {
	count := make([]int, k)
	for _, c := range y {
		count[c]++
	}
	present := 0
	for _, n := range count {
		if n > 0 {
			present++
		}
	}
	w := make([]float32, k)
	for c, n := range count {
		if n > 0 {
			w[c] = float32(float64(len(y)) / float64(present*n))
		}
	}
	return w
}

// LossFunc builds the mean loss over the rows idx (positions into the
// training set), in training mode or not.
type LossFunc func(idx []int, train bool) *nn.Var

// Fit trains params by minimising loss over n labelled rows with labels y:
// a stratified validation split (seeded by rng) is held out, each epoch
// visits the training rows in a fresh random order in mini-batches, and
// training stops when the validation loss has not improved for
// cfg.Patience epochs (counted once cfg.MinSteps steps are done); the best
// epoch's weights are restored. It returns
// the number of epochs of the kept weights. A non-finite loss is an error.
func Fit(ctx context.Context, params []*nn.Var, n int, y []int, loss LossFunc, cfg FitConfig, rng *rand.Rand) (int, error) {
	cfg = cfg.withDefaults()
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	train, val := ValidationSplit(all, y, cfg.ValFrac, rng.Uint64())
	perEpoch := (len(train) + cfg.Batch - 1) / cfg.Batch
	minEpochs := (cfg.MinSteps + perEpoch - 1) / perEpoch
	epochs := max(cfg.MaxEpochs, minEpochs+cfg.Patience)
	if len(val) == 0 {
		epochs = max(cfg.NoValEpochs, minEpochs)
	}
	opt := nn.NewAdamW(cfg.LR, cfg.WeightDecay)
	best := math.Inf(1)
	bestEpoch, since := 0, 0
	var snapshot [][]float32
	order := slices.Clone(train)
	for epoch := 1; epoch <= epochs; epoch++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for lo := 0; lo < len(order); lo += cfg.Batch {
			batch := order[lo:min(lo+cfg.Batch, len(order))]
			l := loss(batch, true)
			if v := l.Item(); math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return 0, fmt.Errorf("classify: training loss is %v at epoch %d (learning rate %g too high, or non-finite features?)", v, epoch, cfg.LR)
			}
			nn.ZeroGrad(params)
			l.BackwardRelease()
			opt.Step(params)
		}
		if len(val) == 0 || epoch < minEpochs {
			bestEpoch = epoch
			continue
		}
		v := float64(loss(val, false).Item())
		if math.IsNaN(v) {
			return 0, fmt.Errorf("classify: validation loss is NaN at epoch %d", epoch)
		}
		if v < best-1e-6 {
			best, bestEpoch, since = v, epoch, 0
			snapshot = snapshot[:0]
			for _, p := range params {
				snapshot = append(snapshot, slices.Clone(p.Value.Data))
			}
		} else if since++; since >= cfg.Patience {
			break
		}
	}
	if snapshot != nil {
		for i, p := range params {
			copy(p.Value.Data, snapshot[i])
		}
	}
	nn.ZeroGrad(params)
	return bestEpoch, nil
}

// Standardizer z-scores features with statistics fitted on training rows.
type Standardizer struct {
	Mean, Scale []float32
}

// FitStandardizer computes per-column mean and population sd of the n × d
// matrix x (constant columns get scale 1).
func FitStandardizer(x []float32, n, d int) Standardizer {
	s := Standardizer{Mean: make([]float32, d), Scale: make([]float32, d)}
	for j := 0; j < d; j++ {
		var m, ss float64
		for i := 0; i < n; i++ {
			m += float64(x[i*d+j])
		}
		m /= float64(n)
		for i := 0; i < n; i++ {
			v := float64(x[i*d+j]) - m
			ss += v * v
		}
		sd := math.Sqrt(ss / float64(n))
		if sd < 1e-8 {
			sd = 1
		}
		s.Mean[j], s.Scale[j] = float32(m), float32(sd)
	}
	return s
}

// Apply returns the standardised copy of x (rows of len(Mean) values).
func (s Standardizer) Apply(x []float32) []float32 {
	d := len(s.Mean)
	out := make([]float32, len(x))
	for i := range x {
		j := i % d
		out[i] = (x[i] - s.Mean[j]) / s.Scale[j]
	}
	return out
}

// MLPConfig configures the MLP head. Zero fields take the defaults noted.
type MLPConfig struct {
	Hidden  int     // hidden width (default 64)
	Dropout float64 // dropout after the hidden layer (default 0.2; negative = none)
	Fit     FitConfig
}

// MLP is a one-hidden-layer perceptron head: standardise, Linear, ReLU,
// dropout, Linear. Classes absent from training are never predicted.
type MLP struct {
	K, D, Hidden int
	Std          Standardizer
	L1, L2       *nn.LinearLayer
	Present      []bool
	Epochs       int // epochs of the kept weights
	dropout      float64
}

// Params returns the trainable parameters.
func (m *MLP) Params() []*nn.Var { return []*nn.Var{m.L1.W, m.L1.B, m.L2.W, m.L2.B} }

func (m *MLP) forward(x *nn.Var, train bool, rng *rand.Rand) *nn.Var {
	h := nn.ReLU(m.L1.Forward(x))
	h = nn.Dropout(h, m.dropout, rng, train)
	return m.L2.Forward(h)
}

// rows gathers rows idx of the n × d matrix x into a constant [len(idx), d].
func rows(x []float32, d int, idx []int) *nn.Var {
	t := tensor.New(len(idx), d)
	for r, i := range idx {
		copy(t.Data[r*d:(r+1)*d], x[i*d:(i+1)*d])
	}
	return nn.Const(t)
}

// TrainMLP fits an MLP head on the n × d features x with labels y in
// [0, k), seeded by seed (initialisation, validation split, batches,
// dropout).
func TrainMLP(ctx context.Context, x []float32, n, d int, y []int, k int, cfg MLPConfig, seed uint64) (*MLP, error) {
	if n <= 0 || d <= 0 || len(x) != n*d || len(y) != n {
		return nil, fmt.Errorf("classify: MLP got %d values and %d labels for %d × %d", len(x), len(y), n, d)
	}
	for i, c := range y {
		if c < 0 || c >= k {
			return nil, fmt.Errorf("classify: MLP label %d of row %d outside [0, %d)", c, i, k)
		}
	}
	if cfg.Hidden == 0 {
		cfg.Hidden = 64
	}
	switch {
	case cfg.Dropout == 0:
		cfg.Dropout = 0.2
	case cfg.Dropout < 0:
		cfg.Dropout = 0
	}
	rng := rand.New(rand.NewPCG(seed, 0x6d6c70))
	m := &MLP{K: k, D: d, Hidden: cfg.Hidden, Std: FitStandardizer(x, n, d), dropout: cfg.Dropout,
		L1: nn.NewLinear(d, cfg.Hidden, true, rng), L2: nn.NewLinear(cfg.Hidden, k, true, rng),
		Present: make([]bool, k)}
	for _, c := range y {
		m.Present[c] = true
	}
	xs := m.Std.Apply(x)
	var weights []float32
	if !cfg.Fit.NoClassWeights {
		weights = BalancedWeights(y, k)
	}
	loss := func(idx []int, train bool) *nn.Var {
		return nn.CrossEntropy(m.forward(rows(xs, d, idx), train, rng), labelsOf(y, idx), weights)
	}
	epochs, err := Fit(ctx, m.Params(), n, y, loss, cfg.Fit, rng)
	if err != nil {
		return nil, err
	}
	m.Epochs = epochs
	return m, nil
}

func labelsOf(y, idx []int) []int {
	out := make([]int, len(idx))
	for i, j := range idx {
		out[i] = y[j]
	}
	return out
}

// PredictProba returns n × K class probabilities (absent classes get 0).
func (m *MLP) PredictProba(x []float32, n int) ([]float32, error) {
	if len(x) != n*m.D {
		return nil, fmt.Errorf("classify: MLP predicts on %d values, want %d × %d", len(x), n, m.D)
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	logits := m.forward(rows(m.Std.Apply(x), m.D, all), false, nil).Value.Data
	return MaskedSoftmax(logits, n, m.K, m.Present), nil
}

// Predict returns the most probable class of each row.
func (m *MLP) Predict(x []float32, n int) ([]int, error) {
	p, err := m.PredictProba(x, n)
	if err != nil {
		return nil, err
	}
	return ArgmaxRows(p, n, m.K), nil
}

// MaskedSoftmax turns n × k logits into probabilities over the present
// classes (others get 0).
func MaskedSoftmax(logits []float32, n, k int, present []bool) []float32 {
	p := make([]float32, n*k)
	for i := 0; i < n; i++ {
		row := logits[i*k : (i+1)*k]
		mx := math.Inf(-1)
		for c, v := range row {
			if present[c] {
				mx = math.Max(mx, float64(v))
			}
		}
		var s float64
		for c, v := range row {
			if present[c] {
				e := math.Exp(float64(v) - mx)
				p[i*k+c] = float32(e)
				s += e
			}
		}
		for c := range row {
			p[i*k+c] = float32(float64(p[i*k+c]) / s)
		}
	}
	return p
}

// ArgmaxRows returns the index of the largest entry of each row of the
// n × k matrix p (lowest index on ties).
func ArgmaxRows(p []float32, n, k int) []int {
	out := make([]int, n)
	for i := 0; i < n; i++ {
		best := 0
		for c := 1; c < k; c++ {
			if p[i*k+c] > p[i*k+best] {
				best = c
			}
		}
		out[i] = best
	}
	return out
}
