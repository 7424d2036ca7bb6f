package models

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

// ExprEncoderConfig configures the expression encoder, an MLP from G
// log-normalised highly variable genes to a small latent. Zero values take
// the defaults noted.
type ExprEncoderConfig struct {
	Genes   int     // G, the input width (required)
	Hidden  int     // hidden width (default 256)
	Latent  int     // latent width (default 32)
	Dropout float64 // dropout after the hidden layer while training (default 0.1; <0 = none)
	Norm    string  // "layer" (default) or "batch": normalisation after the first layer
	// Variational adds a log-variance head (the NB-VAE's q(z|x));
	// Embed then returns the posterior mean.
	Variational bool
	// MaskInput gives the encoder a second input: a per-gene indicator of
	// which genes were hidden (the masked-gene task). Embed passes no mask.
	MaskInput bool
}

// WithDefaults fills zero fields with the documented defaults.
func (c ExprEncoderConfig) WithDefaults() ExprEncoderConfig {
	if c.Hidden == 0 {
		c.Hidden = 256
	}
	if c.Latent == 0 {
		c.Latent = 32
	}
	if c.Dropout == 0 {
		c.Dropout = 0.1
	}
	if c.Norm == "" {
		c.Norm = "layer"
	}
	return c
}

// Validate reports a configuration that cannot be built.
func (c ExprEncoderConfig) Validate() error {
	switch {
	case c.Genes < 1:
		return fmt.Errorf("models: expression encoder needs Genes ≥ 1, got %d", c.Genes)
	case c.Hidden < 1 || c.Latent < 1:
		return fmt.Errorf("models: expression encoder widths hidden %d, latent %d must be ≥ 1", c.Hidden, c.Latent)
	case c.Dropout >= 1:
		return fmt.Errorf("models: expression encoder dropout %g must be < 1", c.Dropout)
	case c.Norm != "layer" && c.Norm != "batch":
		return fmt.Errorf("models: expression encoder norm %q: want \"layer\" or \"batch\"", c.Norm)
	}
	return nil
}

// dense is a fully connected layer y = x·Wᵀ + b with W [out, in] (torch
// layout) and PyTorch's default initialisation.
type dense struct {
	W, B *nn.Var // B is nil for a layer without bias
}

func newDense(in, out int, bias bool, rng *rand.Rand) *dense {
	w := tensor.New(out, in)
	torchUniform(w, in, rng)
	d := &dense{W: nn.Param(w)}
	if bias {
		b := tensor.New(out)
		torchUniform(b, in, rng)
		d.B = nn.Param(b)
	}
	return d
}

func (d *dense) forward(x *nn.Var) *nn.Var { return nn.Linear(x, d.W, d.B) }

func (d *dense) params(m map[string]*nn.Var, prefix string) {
	m[prefix+"weight"] = d.W
	if d.B != nil {
		m[prefix+"bias"] = d.B
	}
}

// norm1d is LayerNorm or BatchNorm1d (running statistics as buffers) over
// the feature axis of [N, D].
type norm1d struct {
	Gamma, Beta     *nn.Var
	RunMean, RunVar *tensor.Tensor // nil for LayerNorm
}

func newNorm1d(kind string, d int) *norm1d {
	n := &norm1d{Gamma: nn.Param(tensor.Full(1, d)), Beta: nn.Param(tensor.New(d))}
	if kind == "batch" {
		n.RunMean, n.RunVar = tensor.New(d), tensor.Full(1, d)
	}
	return n
}

func (n *norm1d) forward(x *nn.Var, train bool) *nn.Var {
	if n.RunMean != nil {
		return nn.BatchNorm(x, n.Gamma, n.Beta, n.RunMean, n.RunVar, 0.1, 1e-5, train)
	}
	return nn.LayerNorm(x, n.Gamma, n.Beta, 1e-5)
}

func (n *norm1d) params(m map[string]*nn.Var, prefix string) {
	m[prefix+"weight"] = n.Gamma
	m[prefix+"bias"] = n.Beta
}

func (n *norm1d) buffers(m map[string]*tensor.Tensor, prefix string) {
	if n.RunMean != nil {
		m[prefix+"running_mean"] = n.RunMean
		m[prefix+"running_var"] = n.RunVar
	}
}

// ExprEncoder maps log-normalised expression (N, G) to a latent (N, Latent):
// Linear → Norm → ReLU → Dropout → Linear (mu) [and Linear (logvar)].
type ExprEncoder struct {
	Config ExprEncoderConfig
	in     *dense // G → Hidden
	maskIn *dense // G → Hidden, no bias; nil unless Config.MaskInput
	norm   *norm1d
	mu     *dense // Hidden → Latent
	logvar *dense // Hidden → Latent; nil unless Config.Variational
}

// NewExprEncoder builds an encoder with weights drawn from rng; cfg is
// completed with defaults and validated.
func NewExprEncoder(cfg ExprEncoderConfig, rng *rand.Rand) (*ExprEncoder, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &ExprEncoder{
		Config: cfg,
		in:     newDense(cfg.Genes, cfg.Hidden, true, rng),
		norm:   newNorm1d(cfg.Norm, cfg.Hidden),
		mu:     newDense(cfg.Hidden, cfg.Latent, true, rng),
	}
	if cfg.MaskInput {
		e.maskIn = newDense(cfg.Genes, cfg.Hidden, false, rng)
	}
	if cfg.Variational {
		e.logvar = newDense(cfg.Hidden, cfg.Latent, true, rng)
	}
	return e, nil
}

// Dim returns the latent width.
func (e *ExprEncoder) Dim() int { return e.Config.Latent }

// Forward encodes x (N, G). mask (N, G; 1 = hidden gene) may be nil; it is
// used only when the encoder was built with MaskInput. logvar is nil unless
// the encoder is variational. rng drives dropout while training.
func (e *ExprEncoder) Forward(x, mask *nn.Var, train bool, rng *rand.Rand) (mu, logvar *nn.Var) {
	h := e.in.forward(x)
	if e.maskIn != nil && mask != nil {
		h = nn.Add(h, e.maskIn.forward(mask))
	}
	h = nn.ReLU(e.norm.forward(h, train))
	h = nn.Dropout(h, max(e.Config.Dropout, 0), rng, train)
	mu = e.mu.forward(h)
	if e.logvar != nil {
		logvar = e.logvar.forward(h)
	}
	return mu, logvar
}

// exprEmbedBatch is how many rows Embed encodes at a time.
const exprEmbedBatch = 1024

// Embed returns the latent of each of the n rows of x (n × G row-major,
// log-normalised like the training data) in eval mode without building a
// graph: the posterior mean for a variational encoder. batch is accepted
// for symmetry with the pipeline contract and may be nil: the encoder does
// not see the section (only the NB-VAE decoder does). It panics if x does
// not hold n × G values (a programming error).
func (e *ExprEncoder) Embed(x []float32, n int, batch []int) ([]float32, int) {
	g, d := e.Config.Genes, e.Config.Latent
	if len(x) != n*g {
		panic(fmt.Sprintf("models: ExprEncoder.Embed: %d values for %d rows of %d genes", len(x), n, g))
	}
	out := make([]float32, n*d)
	nn.NoGrad(func() {
		for lo := 0; lo < n; lo += exprEmbedBatch {
			hi := min(lo+exprEmbedBatch, n)
			xb := nn.Const(tensor.FromSlice(x[lo*g:hi*g], hi-lo, g))
			mu, _ := e.Forward(xb, nil, false, nil)
			copy(out[lo*d:hi*d], mu.Value.Data)
		}
	})
	return out, d
}

// NamedParams returns the trainable parameters by stable name ("in.weight",
// "norm.weight", "mu.bias", ...).
func (e *ExprEncoder) NamedParams() map[string]*nn.Var {
	m := map[string]*nn.Var{}
	e.in.params(m, "in.")
	if e.maskIn != nil {
		e.maskIn.params(m, "mask_in.")
	}
	e.norm.params(m, "norm.")
	e.mu.params(m, "mu.")
	if e.logvar != nil {
		e.logvar.params(m, "logvar.")
	}
	return m
}

// Buffers returns the BatchNorm running statistics (empty with LayerNorm).
func (e *ExprEncoder) Buffers() map[string]*tensor.Tensor {
	m := map[string]*tensor.Tensor{}
	e.norm.buffers(m, "norm.")
	return m
}

// Tensors returns every parameter and buffer by name, for saving.
func (e *ExprEncoder) Tensors() map[string]*tensor.Tensor {
	m := e.Buffers()
	for k, v := range e.NamedParams() {
		m[k] = v.Value
	}
	return m
}

// Save writes the encoder (weights, running statistics and its
// configuration as metadata) to a safetensors file, atomically.
func (e *ExprEncoder) Save(path string, meta map[string]string) error {
	cfg, err := json.Marshal(e.Config)
	if err != nil {
		return err
	}
	m := map[string]string{}
	for k, v := range meta {
		m[k] = v
	}
	m["spotfuse.model"] = "expr-encoder"
	m["config"] = string(cfg)
	return nn.SaveSafetensors(path, e.Tensors(), m)
}

// LoadExprEncoder reads an encoder written by Save and returns it with the
// file's metadata.
func LoadExprEncoder(path string) (*ExprEncoder, map[string]string, error) {
	ts, meta, err := nn.LoadSafetensors(path)
	if err != nil {
		return nil, nil, err
	}
	if meta["spotfuse.model"] != "expr-encoder" {
		return nil, nil, fmt.Errorf("models: %s: not an expression encoder (spotfuse.model = %q)", path, meta["spotfuse.model"])
	}
	var cfg ExprEncoderConfig
	if err := json.Unmarshal([]byte(meta["config"]), &cfg); err != nil {
		return nil, nil, fmt.Errorf("models: %s: bad config metadata: %v", path, err)
	}
	e, err := NewExprEncoder(cfg, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return nil, nil, fmt.Errorf("models: %s: %v", path, err)
	}
	if err := LoadTensors(e.Tensors(), ts); err != nil {
		return nil, nil, fmt.Errorf("models: %s: %v", path, err)
	}
	return e, meta, nil
}

// GeneDecoder reconstructs log-normalised expression (N, G) from a latent
// (the masked-gene task): Linear → Norm → ReLU → Linear.
type GeneDecoder struct {
	hid  *dense
	norm *norm1d
	out  *dense
}

// NewGeneDecoder builds a latent → hidden → genes decoder.
func NewGeneDecoder(latent, hidden, genes int, norm string, rng *rand.Rand) *GeneDecoder {
	return &GeneDecoder{
		hid:  newDense(latent, hidden, true, rng),
		norm: newNorm1d(norm, hidden),
		out:  newDense(hidden, genes, true, rng),
	}
}

// Forward decodes z (N, Latent) to (N, G).
func (d *GeneDecoder) Forward(z *nn.Var, train bool) *nn.Var {
	return d.out.forward(nn.ReLU(d.norm.forward(d.hid.forward(z), train)))
}

// NamedParams returns the trainable parameters by stable name.
func (d *GeneDecoder) NamedParams() map[string]*nn.Var {
	m := map[string]*nn.Var{}
	d.hid.params(m, "hid.")
	d.norm.params(m, "norm.")
	d.out.params(m, "out.")
	return m
}

// Buffers returns the BatchNorm running statistics (empty with LayerNorm).
func (d *GeneDecoder) Buffers() map[string]*tensor.Tensor {
	m := map[string]*tensor.Tensor{}
	d.norm.buffers(m, "norm.")
	return m
}

// NBDecoder is the generative half of the NB-VAE (scVI's decoder): from a
// latent z and the section as a one-hot covariate s it gives each gene's
// expected share of a spot's library, softmax(Linear(ReLU(Norm(W·[z; s])))),
// and a learned per-gene inverse dispersion θ = exp(log θ). The NB mean is
// share × library size.
type NBDecoder struct {
	NBatch   int
	dec      GeneDecoder // hid: Latent → Hidden, norm, out: Hidden → G
	cov      *dense      // NBatch → Hidden, no bias (the one-hot covariate); nil when NBatch = 0
	logTheta *nn.Var
}

// NewNBDecoder builds the decoder for nBatch sections (0 = no covariate).
func NewNBDecoder(latent, hidden, genes, nBatch int, norm string, rng *rand.Rand) *NBDecoder {
	d := &NBDecoder{
		NBatch:   nBatch,
		dec:      *NewGeneDecoder(latent, hidden, genes, norm, rng),
		logTheta: nn.Param(tensor.New(genes)),
	}
	if nBatch > 0 {
		d.cov = newDense(nBatch, hidden, false, rng)
	}
	return d
}

// Forward returns the per-gene library shares (N, G; rows sum to 1) and θ
// (G). onehot (N, NBatch) may be nil when the decoder has no covariate.
func (d *NBDecoder) Forward(z, onehot *nn.Var, train bool) (share, theta *nn.Var) {
	h := d.dec.hid.forward(z)
	if d.cov != nil && onehot != nil {
		h = nn.Add(h, d.cov.forward(onehot))
	}
	h = nn.ReLU(d.dec.norm.forward(h, train))
	return nn.Softmax(d.dec.out.forward(h)), nn.Exp(d.logTheta)
}

// NamedParams returns the trainable parameters by stable name.
func (d *NBDecoder) NamedParams() map[string]*nn.Var {
	m := d.dec.NamedParams()
	m["log_theta"] = d.logTheta
	if d.cov != nil {
		d.cov.params(m, "cov.")
	}
	return m
}

// Buffers returns the BatchNorm running statistics (empty with LayerNorm).
func (d *NBDecoder) Buffers() map[string]*tensor.Tensor { return d.dec.Buffers() }

// OneHot returns the (len(idx), k) one-hot matrix of idx.
func OneHot(idx []int, k int) *tensor.Tensor {
	t := tensor.New(len(idx), k)
	for i, c := range idx {
		t.Data[i*k+c] = 1
	}
	return t
}
