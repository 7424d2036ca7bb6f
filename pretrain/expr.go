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

// ExprData is the pooled spots × genes matrix the expression tasks train on
// (see BuildExprData).
type ExprData struct {
	X      []float32 // N × G log-normalised expression of the highly variable genes (encoder input)
	Counts []float32 // N × G raw counts of the same genes (the NB likelihood); may be nil for "masked"
	N, G   int
	Batch  []int // section (batch) index of each spot, in [0, NBatch)
	NBatch int

	Genes    []string // optional: the G gene symbols
	Sections []string // optional: the name of each batch index
	SpotIDs  []string // optional: the id of each spot within its section
}

// Validate checks that the parts of d agree; counts are required when
// needCounts is set.
func (d *ExprData) Validate(needCounts bool) error {
	switch {
	case d == nil:
		return fmt.Errorf("pretrain: no expression data")
	case d.N < 1 || d.G < 1:
		return fmt.Errorf("pretrain: expression data is %d spots × %d genes", d.N, d.G)
	case len(d.X) != d.N*d.G:
		return fmt.Errorf("pretrain: expression matrix has %d values, want %d × %d", len(d.X), d.N, d.G)
	case needCounts && len(d.Counts) != d.N*d.G:
		return fmt.Errorf("pretrain: the NB-VAE needs raw counts: count matrix has %d values, want %d × %d", len(d.Counts), d.N, d.G)
	case len(d.Batch) != d.N:
		return fmt.Errorf("pretrain: %d batch labels for %d spots", len(d.Batch), d.N)
	case d.NBatch < 1:
		return fmt.Errorf("pretrain: NBatch = %d, want ≥ 1", d.NBatch)
	}
	for i, b := range d.Batch {
		if b < 0 || b >= d.NBatch {
			return fmt.Errorf("pretrain: spot %d has batch %d outside [0, %d)", i, b, d.NBatch)
		}
	}
	for i, v := range d.X {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("pretrain: expression matrix holds %g at spot %d, gene %d", v, i/d.G, i%d.G)
		}
	}
	if needCounts {
		for i, v := range d.Counts {
			if !(v >= 0) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("pretrain: count matrix holds %g at spot %d, gene %d (counts must be finite and ≥ 0)", v, i/d.G, i%d.G)
			}
		}
	}
	return nil
}

// ExprConfig configures TrainExpression. Zero values take the defaults
// noted.
type ExprConfig struct {
	// Task is "nbvae" (default: the batch-aware variational autoencoder
	// with a negative-binomial likelihood, scVI-style) or "masked"
	// (masked-gene prediction).
	Task    string
	Latent  int     // latent width (default 32)
	Hidden  int     // hidden width of encoder and decoder (default 256)
	Dropout float64 // encoder dropout (default 0.1; <0 = none)
	Norm    string  // "layer" (default) or "batch"
	// MaskFrac (masked): each spot hides a fraction of its genes drawn
	// uniformly from [MaskFrac/2, MaskFrac] (default 0.3, i.e. 15–30 %).
	MaskFrac float64
	// KLWarmup (nbvae): fraction of Loop.Steps over which the weight of
	// the KL term rises linearly from 0 to 1 (default 0.5; <0 = no warm-up).
	KLWarmup float64
	// KLWeight (nbvae) is the final weight of the KL term (default 1, the
	// ELBO; larger values press the latent harder towards the prior and
	// so away from information the decoder gets from the section covariate).
	KLWeight float64
	// HeldOut is the fraction of spots kept out of training to measure the
	// held-out loss (default 0.05, at most 2,000 spots; <0 = none).
	HeldOut float64
	Loop    LoopConfig
}

// DefaultExprConfig returns the documented defaults (NB-VAE, 2,000 steps of
// 256 spots).
func DefaultExprConfig() ExprConfig {
	loop := DefaultLoop()
	loop.Steps, loop.Batch, loop.CheckpointEvery, loop.LogEvery = 2000, 256, 500, 100
	return ExprConfig{Task: "nbvae", Latent: 32, Hidden: 256, Dropout: 0.1, Norm: "layer",
		MaskFrac: 0.3, KLWarmup: 0.5, KLWeight: 1, HeldOut: 0.05, Loop: loop}
}

func (c ExprConfig) withDefaults() ExprConfig {
	d := DefaultExprConfig()
	if c.Task == "" {
		c.Task = d.Task
	}
	if c.Latent == 0 {
		c.Latent = d.Latent
	}
	if c.Hidden == 0 {
		c.Hidden = d.Hidden
	}
	if c.Dropout == 0 {
		c.Dropout = d.Dropout
	}
	if c.Norm == "" {
		c.Norm = d.Norm
	}
	if c.MaskFrac == 0 {
		c.MaskFrac = d.MaskFrac
	}
	if c.KLWarmup == 0 {
		c.KLWarmup = d.KLWarmup
	}
	if c.KLWeight == 0 {
		c.KLWeight = d.KLWeight
	}
	if c.HeldOut == 0 {
		c.HeldOut = d.HeldOut
	}
	c.Loop = c.Loop.withDefaults()
	return c
}

func (c ExprConfig) validate() error {
	switch {
	case c.Task != "nbvae" && c.Task != "masked":
		return fmt.Errorf("pretrain: expression task %q: want \"nbvae\" or \"masked\"", c.Task)
	case c.Task == "masked" && !(c.MaskFrac > 0 && c.MaskFrac < 1):
		return fmt.Errorf("pretrain: MaskFrac = %g, want a fraction in (0, 1)", c.MaskFrac)
	case c.Task == "nbvae" && !(c.KLWeight > 0):
		return fmt.Errorf("pretrain: KLWeight = %g, want a positive weight", c.KLWeight)
	case c.HeldOut >= 0.5:
		return fmt.Errorf("pretrain: HeldOut = %g, want a fraction below 0.5", c.HeldOut)
	}
	return nil
}

// TrainExpression pretrains an expression encoder on d with the task
// cfg.Task and returns it with the loss history. The NB-VAE encoder's Embed
// returns the posterior mean. Checkpoints, resume, loss.csv/png and NaN
// detection come from Run (cfg.Loop.Dir).
func TrainExpression(ctx context.Context, d *ExprData, cfg ExprConfig, prog progress.Reporter) (*models.ExprEncoder, *History, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	t, err := newExprTask(d, cfg)
	if err != nil {
		return nil, nil, err
	}
	hist, err := Run(ctx, t, cfg.Loop, prog)
	if err != nil {
		return nil, hist, err
	}
	return t.enc, hist, nil
}

// exprTask is the masked-gene or NB-VAE objective over an ExprData.
type exprTask struct {
	cfg   ExprConfig
	d     *ExprData
	enc   *models.ExprEncoder
	dec   *models.GeneDecoder // masked
	nb    *models.NBDecoder   // nbvae
	train []int               // spots used for training
	held  []int               // spots for the held-out loss
	lib   []float32           // per-spot library size (sum of Counts over the G genes, at least 1)
}

func newExprTask(d *ExprData, cfg ExprConfig) (*exprTask, error) {
	vae := cfg.Task == "nbvae"
	if err := d.Validate(vae); err != nil {
		return nil, err
	}
	// Weights and the held-out split come from their own streams of the
	// seed, so the loop's stream only drives batches, masks and noise.
	rng := rand.New(rand.NewPCG(cfg.Loop.Seed, 0xe4c0de))
	enc, err := models.NewExprEncoder(models.ExprEncoderConfig{
		Genes: d.G, Hidden: cfg.Hidden, Latent: cfg.Latent, Dropout: cfg.Dropout, Norm: cfg.Norm,
		Variational: vae, MaskInput: !vae,
	}, rng)
	if err != nil {
		return nil, err
	}
	t := &exprTask{cfg: cfg, d: d, enc: enc}
	if vae {
		t.nb = models.NewNBDecoder(cfg.Latent, cfg.Hidden, d.G, d.NBatch, cfg.Norm, rng)
		t.lib = make([]float32, d.N)
		for i := range t.lib {
			var s float64
			for _, c := range d.Counts[i*d.G : (i+1)*d.G] {
				s += float64(c)
			}
			t.lib[i] = float32(max(s, 1))
		}
	} else {
		t.dec = models.NewGeneDecoder(cfg.Latent, cfg.Hidden, d.G, cfg.Norm, rng)
	}
	split := rand.New(rand.NewPCG(cfg.Loop.Seed, 0x4e1d0))
	perm := split.Perm(d.N)
	nHeld := 0
	if cfg.HeldOut > 0 {
		nHeld = min(int(math.Round(cfg.HeldOut*float64(d.N))), 2000)
	}
	if d.N-nHeld < 2 {
		return nil, fmt.Errorf("pretrain: %d spots leave too few for training after holding out %d", d.N, nHeld)
	}
	t.held = perm[:nHeld]
	t.train = perm[nHeld:]
	return t, nil
}

// NamedParams returns encoder ("enc.*") and decoder ("dec.*") parameters.
func (t *exprTask) NamedParams() map[string]*nn.Var {
	m := map[string]*nn.Var{}
	nn.AddPrefixed(m, "enc", t.enc.NamedParams())
	var dec map[string]*nn.Var
	if t.nb != nil {
		dec = t.nb.NamedParams()
	} else {
		dec = t.dec.NamedParams()
	}
	nn.AddPrefixed(m, "dec", dec)
	return m
}

// Buffers returns the BatchNorm running statistics of encoder and decoder.
func (t *exprTask) Buffers() map[string]*tensor.Tensor {
	m := map[string]*tensor.Tensor{}
	nn.AddPrefixed(m, "enc", t.enc.Buffers())
	var dec map[string]*tensor.Tensor
	if t.nb != nil {
		dec = t.nb.Buffers()
	} else {
		dec = t.dec.Buffers()
	}
	nn.AddPrefixed(m, "dec", dec)
	return m
}

// Step draws a batch of training spots and returns the task's loss.
func (t *exprTask) Step(ctx context.Context, step int, rng *rand.Rand) (*nn.Var, map[string]float64, error) {
	idx := sampleDistinct(rng, t.train, min(t.cfg.Loop.Batch, len(t.train)))
	if t.nb != nil {
		w := t.cfg.KLWeight
		if warm := t.cfg.KLWarmup * float64(t.cfg.Loop.Steps); warm > 0 {
			w *= min(1, float64(step)/warm)
		}
		return t.vaeLoss(idx, w, true, rng)
	}
	return t.maskedLoss(idx, true, rng)
}

// HeldOut measures the loss on the held-out spots in eval mode with masks
// (masked) drawn from a fixed seed and the posterior mean as latent
// (nbvae), with the final KL weight.
func (t *exprTask) HeldOut(ctx context.Context) (map[string]float64, error) {
	if len(t.held) == 0 {
		return map[string]float64{}, nil
	}
	rng := rand.New(rand.NewPCG(t.cfg.Loop.Seed, 0x0d0e1d))
	var terms map[string]float64
	nn.NoGrad(func() {
		const chunk = 512
		sums := map[string]float64{}
		for lo := 0; lo < len(t.held); lo += chunk {
			idx := t.held[lo:min(lo+chunk, len(t.held))]
			var loss *nn.Var
			var tm map[string]float64
			if t.nb != nil {
				loss, tm, _ = t.vaeLoss(idx, t.cfg.KLWeight, false, rng)
			} else {
				loss, tm, _ = t.maskedLoss(idx, false, rng)
			}
			tm["total"] = float64(loss.Value.Data[0])
			for k, v := range tm {
				sums[k] += v * float64(len(idx))
			}
		}
		terms = map[string]float64{}
		for k, v := range sums {
			terms[k] = v / float64(len(t.held))
		}
	})
	return terms, nil
}

// gather copies rows idx of the n × g matrix m into a new (len(idx), g) tensor.
func gather(m []float32, g int, idx []int) *tensor.Tensor {
	out := tensor.New(len(idx), g)
	for r, i := range idx {
		copy(out.Data[r*g:(r+1)*g], m[i*g:(i+1)*g])
	}
	return out
}

// maskedLoss hides 15–30 % (by default) of each spot's genes, encodes the
// rest with the mask indicator and scores the reconstruction of the hidden
// genes only.
func (t *exprTask) maskedLoss(idx []int, train bool, rng *rand.Rand) (*nn.Var, map[string]float64, error) {
	g := t.d.G
	x := gather(t.d.X, g, idx)
	mask := tensor.New(len(idx), g)
	in := x.Clone()
	hi := t.cfg.MaskFrac
	for r := range idx {
		f := hi/2 + hi/2*rng.Float64()
		for j := 0; j < g; j++ {
			if rng.Float64() < f {
				mask.Data[r*g+j] = 1
				in.Data[r*g+j] = 0
			}
		}
	}
	z, _ := t.enc.Forward(nn.Const(in), nn.Const(mask), train, rng)
	pred := t.dec.Forward(z, train)
	loss := nn.MaskedMSE(pred, nn.Const(x), mask.Data)
	v := float64(loss.Value.Data[0])
	return loss, map[string]float64{"masked_mse": v}, nil
}

// vaeLoss is scVI's loss, the negative ELBO per spot: NB NLL (summed over
// genes) + klWeight × KL(q(z|x) ‖ N(0, I)) (summed over latent dimensions),
// averaged over the spots. While training z is sampled by
// reparameterisation; otherwise z = mu.
func (t *exprTask) vaeLoss(idx []int, klWeight float64, train bool, rng *rand.Rand) (*nn.Var, map[string]float64, error) {
	g := t.d.G
	x := nn.Const(gather(t.d.X, g, idx))
	counts := gather(t.d.Counts, g, idx)
	lib := tensor.New(len(idx), 1)
	batch := make([]int, len(idx))
	for r, i := range idx {
		lib.Data[r] = t.lib[i]
		batch[r] = t.d.Batch[i]
	}
	mu, logvar := t.enc.Forward(x, nil, train, rng)
	z := mu
	if train {
		eps := tensor.New(mu.Value.Shape...)
		for i := range eps.Data {
			eps.Data[i] = float32(rng.NormFloat64())
		}
		z = nn.Add(mu, nn.Mul(nn.Exp(nn.Scale(logvar, 0.5)), nn.Const(eps)))
	}
	share, theta := t.nb.Forward(z, nn.Const(models.OneHot(batch, t.d.NBatch)), train)
	mean := nn.Mul(share, nn.Const(lib))
	nll := nn.NegBinomialNLL(mean, theta, counts)
	kl := nn.GaussianKL(mu, logvar)
	loss := nn.Add(nll, nn.Scale(kl, float32(klWeight)))
	terms := map[string]float64{
		"nb_nll": float64(nll.Value.Data[0]),
		"kl":     float64(kl.Value.Data[0]),
	}
	return loss, terms, nil
}

// sampleDistinct returns k distinct elements of pool drawn uniformly by a
// partial Fisher–Yates shuffle that touches only O(k) entries.
func sampleDistinct(rng *rand.Rand, pool []int, k int) []int {
	swapped := make(map[int]int, 2*k)
	at := func(i int) int {
		if v, ok := swapped[i]; ok {
			return v
		}
		return i
	}
	out := make([]int, k)
	n := len(pool)
	for i := 0; i < k; i++ {
		j := i + rng.IntN(n-i)
		vi, vj := at(i), at(j)
		out[i] = pool[vj]
		swapped[j] = vi
	}
	return out
}
