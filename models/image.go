package models

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

// ImageEncoderConfig describes an image encoder. The zero value is the
// default conv4 with Width 32 (D = 256).
type ImageEncoderConfig struct {
	// Arch is "conv4" (default): Depth blocks of 3×3 convolution (no bias)
	// + BatchNorm + ReLU, the first with stride 1 and the others with stride
	// 2; or "resnet": a conv-BN-ReLU stem followed by Depth-1 basic residual
	// blocks of stride 2 (two 3×3 conv-BN, 1×1 projection shortcut).
	Arch string `json:"arch"`
	// Width is the number of channels of the first block (default 32);
	// block i has Width·2^i channels, so D = Width·2^(Depth-1).
	Width int `json:"width"`
	// Depth is the number of blocks (default 4).
	Depth int `json:"depth"`
	// Mean and Std normalise each RGB channel (scaled to [0,1]) before the
	// first convolution. Zero Std means the defaults 0.5 and 0.25; training
	// sets them from the training patches (see ChannelStats).
	Mean [3]float32 `json:"mean"`
	Std  [3]float32 `json:"std"`
	// Pool selects how Embed summarises the feature maps: "avg" (or empty,
	// the default)
	// is the global average pool of the last block (D = FeatureDim);
	// "stages" concatenates the global average pools of every block's
	// output (D = Width·(2^Depth − 1)), so the embedding keeps the
	// colour and fine texture of the early blocks. Training (Forward,
	// FeatureMap) is the same for both.
	Pool string `json:"pool,omitempty"`
}

// Embedding pooling modes (ImageEncoderConfig.Pool).
const (
	PoolAvg    = "avg"
	PoolStages = "stages"
)

// WithDefaults fills zero fields with the documented defaults.
func (c ImageEncoderConfig) WithDefaults() ImageEncoderConfig {
	if c.Arch == "" {
		c.Arch = "conv4"
	}
	if c.Width == 0 {
		c.Width = 32
	}
	if c.Depth == 0 {
		c.Depth = 4
	}
	if c.Std == ([3]float32{}) {
		c.Mean = [3]float32{0.5, 0.5, 0.5}
		c.Std = [3]float32{0.25, 0.25, 0.25}
	}
	return c
}

// Validate reports a configuration that cannot be built.
func (c ImageEncoderConfig) Validate() error {
	switch {
	case c.Arch != "conv4" && c.Arch != "resnet":
		return fmt.Errorf("models: image encoder arch %q: want conv4 or resnet", c.Arch)
	case c.Width < 1 || c.Width > 1024:
		return fmt.Errorf("models: image encoder width %d: want 1..1024", c.Width)
	case c.Depth < 1 || c.Depth > 8:
		return fmt.Errorf("models: image encoder depth %d: want 1..8", c.Depth)
	case c.Pool != "" && c.Pool != PoolAvg && c.Pool != PoolStages:
		return fmt.Errorf("models: image encoder pool %q: want %s or %s", c.Pool, PoolAvg, PoolStages)
	}
	for i, s := range c.Std {
		if !(s > 0) || math.IsInf(float64(s), 0) || math.IsNaN(float64(c.Mean[i])) {
			return fmt.Errorf("models: image encoder normalisation of channel %d: mean %g, std %g", i, c.Mean[i], s)
		}
	}
	return nil
}

// Dim returns the embedding width D: FeatureDim for Pool "avg",
// Width·(2^Depth − 1) for Pool "stages".
func (c ImageEncoderConfig) Dim() int {
	if c.Pool == PoolStages {
		return c.Width * (1<<c.Depth - 1)
	}
	return c.FeatureDim()
}

// FeatureDim returns the channels of the last feature map,
// Width·2^(Depth-1).
func (c ImageEncoderConfig) FeatureDim() int { return c.Width << (c.Depth - 1) }

// Downsample returns the factor by which the feature map is smaller than
// the input: 2^(Depth-1).
func (c ImageEncoderConfig) Downsample() int { return 1 << (c.Depth - 1) }

// ImageEncoder maps N RGB patches [N,3,S,S] to N embeddings [N,D].
type ImageEncoder struct {
	Config ImageEncoderConfig
	stem   []*convBN  // conv4: all blocks; resnet: the stem only
	res    []*resUnit // resnet blocks
}

// NewImageEncoder builds an encoder with weights drawn from rng. cfg is
// completed with WithDefaults; it panics on an invalid configuration (call
// Validate first for user input).
func NewImageEncoder(cfg ImageEncoderConfig, rng *rand.Rand) *ImageEncoder {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	e := &ImageEncoder{Config: cfg}
	ch := func(i int) int { return cfg.Width << i }
	switch cfg.Arch {
	case "conv4":
		in := 3
		for i := 0; i < cfg.Depth; i++ {
			stride := 2
			if i == 0 {
				stride = 1
			}
			e.stem = append(e.stem, newConvBN(in, ch(i), 3, stride, rng))
			in = ch(i)
		}
	case "resnet":
		e.stem = []*convBN{newConvBN(3, ch(0), 3, 1, rng)}
		for i := 1; i < cfg.Depth; i++ {
			e.res = append(e.res, newResUnit(ch(i-1), ch(i), 2, rng))
		}
	}
	return e
}

// Dim returns the embedding width D of Embed.
func (e *ImageEncoder) Dim() int { return e.Config.Dim() }

// FeatureDim returns the channels of the last feature map (the width of
// Forward's output).
func (e *ImageEncoder) FeatureDim() int { return e.Config.FeatureDim() }

// FeatureMap returns the last feature map [N, FeatureDim, S/f, S/f] (f =
// Config.Downsample()) of normalised input x [N,3,S,S]. train selects
// batch statistics (and updates the running ones) in BatchNorm.
func (e *ImageEncoder) FeatureMap(x *nn.Var, train bool) *nn.Var {
	maps := e.stageMaps(x, train)
	return maps[len(maps)-1]
}

// stageMaps returns the output of every block, first to last.
func (e *ImageEncoder) stageMaps(x *nn.Var, train bool) []*nn.Var {
	var out []*nn.Var
	for _, b := range e.stem {
		x = b.forwardReLU(x, train)
		out = append(out, x)
	}
	for _, r := range e.res {
		x = r.forward(x, train)
		out = append(out, x)
	}
	return out
}

// Forward returns the features [N,FeatureDim] of normalised input x
// [N,3,S,S] (global average pool of the last feature map) that the
// pretext heads train on.
func (e *ImageEncoder) Forward(x *nn.Var, train bool) *nn.Var {
	return nn.GlobalAvgPool(e.FeatureMap(x, train))
}

// embed returns the embeddings [N,Dim] of normalised input x as pooled by
// Config.Pool.
func (e *ImageEncoder) embed(x *nn.Var, train bool) *nn.Var {
	if e.Config.Pool != PoolStages {
		return e.Forward(x, train)
	}
	maps := e.stageMaps(x, train)
	pooled := make([]*nn.Var, len(maps))
	for i, m := range maps {
		pooled[i] = nn.GlobalAvgPool(m)
	}
	return nn.Concat(1, pooled...)
}

// Input converts patches (HWC RGB uint8 of side size) into the normalised
// input tensor [N,3,size,size].
func (e *ImageEncoder) Input(patches [][]uint8, size int) *tensor.Tensor {
	t := PatchTensor(patches, size)
	e.Normalize(t)
	return t
}

// Normalize maps a tensor [N,3,H,W] of RGB values in [0,1] to the encoder's
// input scale, in place.
func (e *ImageEncoder) Normalize(t *tensor.Tensor) {
	n, hw := t.Shape[0], t.Shape[2]*t.Shape[3]
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			m, s := e.Config.Mean[c], 1/e.Config.Std[c]
			p := t.Data[(i*3+c)*hw : (i*3+c+1)*hw]
			for j := range p {
				p[j] = (p[j] - m) * s
			}
		}
	}
}

// EmbedBatch is the number of patches Embed runs through the network at once.
const EmbedBatch = 128

// Embed returns the embeddings of patches (HWC RGB uint8 of side size) as a
// row-major n×d matrix (d = Dim, pooled as Config.Pool says), in eval mode
// (running BatchNorm statistics), without building a graph, EmbedBatch
// patches at a time.
func (e *ImageEncoder) Embed(patches [][]uint8, size int) (emb []float32, d int) {
	d = e.Dim()
	emb = make([]float32, 0, len(patches)*d)
	nn.NoGrad(func() {
		for lo := 0; lo < len(patches); lo += EmbedBatch {
			hi := min(lo+EmbedBatch, len(patches))
			out := e.embed(nn.Const(e.Input(patches[lo:hi], size)), false)
			emb = append(emb, out.Value.Data...)
		}
	})
	return emb, d
}

// NamedParams returns the trainable parameters by stable name.
func (e *ImageEncoder) NamedParams() map[string]*nn.Var {
	m := map[string]*nn.Var{}
	for i, b := range e.stem {
		b.params(m, e.blockName(i))
	}
	for i, r := range e.res {
		r.params(m, fmt.Sprintf("block%d.", i+1))
	}
	return m
}

// Buffers returns the BatchNorm running statistics by stable name.
func (e *ImageEncoder) Buffers() map[string]*tensor.Tensor {
	m := map[string]*tensor.Tensor{}
	for i, b := range e.stem {
		b.buffers(m, e.blockName(i))
	}
	for i, r := range e.res {
		r.buffers(m, fmt.Sprintf("block%d.", i+1))
	}
	return m
}

func (e *ImageEncoder) blockName(i int) string {
	if e.Config.Arch == "resnet" {
		return "stem."
	}
	return fmt.Sprintf("conv%d.", i+1)
}

// Tensors returns every parameter and buffer by name, for saving.
func (e *ImageEncoder) Tensors() map[string]*tensor.Tensor {
	m := e.Buffers()
	for k, v := range e.NamedParams() {
		m[k] = v.Value
	}
	return m
}

// Save writes the encoder (weights, running statistics and its
// configuration as metadata) to a safetensors file, atomically.
func (e *ImageEncoder) Save(path string) error {
	cfg, err := json.Marshal(e.Config)
	if err != nil {
		return err
	}
	return nn.SaveSafetensors(path, e.Tensors(), map[string]string{"spotfuse.model": "image-encoder", "config": string(cfg)})
}

// LoadImageEncoder reads an encoder written by Save.
func LoadImageEncoder(path string) (*ImageEncoder, error) {
	ts, meta, err := nn.LoadSafetensors(path)
	if err != nil {
		return nil, err
	}
	if meta["spotfuse.model"] != "image-encoder" {
		return nil, fmt.Errorf("models: %s: not an image encoder (spotfuse.model = %q)", path, meta["spotfuse.model"])
	}
	var cfg ImageEncoderConfig
	if err := json.Unmarshal([]byte(meta["config"]), &cfg); err != nil {
		return nil, fmt.Errorf("models: %s: bad config metadata: %v", path, err)
	}
	if err := cfg.WithDefaults().Validate(); err != nil {
		return nil, fmt.Errorf("models: %s: %v", path, err)
	}
	e := NewImageEncoder(cfg, rand.New(rand.NewPCG(0, 0)))
	if err := LoadTensors(e.Tensors(), ts); err != nil {
		return nil, fmt.Errorf("models: %s: %v", path, err)
	}
	return e, nil
}

// LoadTensors copies src into dst by name; every dst entry must be present
// in src with the same shape, and src may hold nothing else.
func LoadTensors(dst, src map[string]*tensor.Tensor) error {
	for k, d := range dst {
		s, ok := src[k]
		if !ok {
			return fmt.Errorf("tensor %q missing", k)
		}
		if !tensor.SameShape(s.Shape, d.Shape) {
			return fmt.Errorf("tensor %q has shape %v, want %v", k, s.Shape, d.Shape)
		}
		copy(d.Data, s.Data)
	}
	for k := range src {
		if _, ok := dst[k]; !ok {
			return fmt.Errorf("unexpected tensor %q", k)
		}
	}
	return nil
}

// PatchTensor converts patches (HWC RGB uint8 of side size) into a tensor
// [N,3,size,size] of values in [0,1]. It panics if a patch has the wrong
// length (a programming error: patch.Set guarantees it).
func PatchTensor(patches [][]uint8, size int) *tensor.Tensor {
	hw := size * size
	t := tensor.New(len(patches), 3, size, size)
	for i, p := range patches {
		if len(p) != 3*hw {
			panic(fmt.Sprintf("models: patch %d has %d bytes, want %d (%d×%d RGB)", i, len(p), 3*hw, size, size))
		}
		o := t.Data[i*3*hw : (i+1)*3*hw]
		for j := 0; j < hw; j++ {
			o[j] = float32(p[3*j]) / 255
			o[hw+j] = float32(p[3*j+1]) / 255
			o[2*hw+j] = float32(p[3*j+2]) / 255
		}
	}
	return t
}

// ChannelStats returns the per-channel mean and standard deviation of the
// RGB values (scaled to [0,1]) of patches, for ImageEncoderConfig.Mean/Std.
func ChannelStats(patches [][]uint8) (mean, std [3]float32) {
	var s, ss [3]float64
	n := 0.0
	for _, p := range patches {
		for j := 0; j+2 < len(p); j += 3 {
			for c := 0; c < 3; c++ {
				v := float64(p[j+c]) / 255
				s[c] += v
				ss[c] += v * v
			}
			n++
		}
	}
	if n == 0 {
		return [3]float32{0.5, 0.5, 0.5}, [3]float32{0.25, 0.25, 0.25}
	}
	for c := 0; c < 3; c++ {
		m := s[c] / n
		v := ss[c]/n - m*m
		mean[c] = float32(m)
		std[c] = float32(math.Sqrt(math.Max(v, 1e-6)))
	}
	return mean, std
}

// BNMomentum and BNEps are the BatchNorm settings of every model here
// (PyTorch's defaults).
const (
	BNMomentum = 0.1
	BNEps      = 1e-5
)

// convBN is a bias-free convolution followed by BatchNorm (and optionally
// ReLU, fused).
type convBN struct {
	w, gamma, beta  *nn.Var
	runMean, runVar *tensor.Tensor
	stride, pad     int
}

func newConvBN(in, out, k, stride int, rng *rand.Rand) *convBN {
	w := tensor.New(out, in, k, k)
	heUniform(w, in*k*k, rng)
	return &convBN{w: nn.Param(w), gamma: nn.Param(tensor.Full(1, out)), beta: nn.Param(tensor.New(out)),
		runMean: tensor.New(out), runVar: tensor.Full(1, out), stride: stride, pad: k / 2}
}

func (c *convBN) forward(x *nn.Var, train bool) *nn.Var {
	y := nn.Conv2d(x, c.w, nil, c.stride, c.pad)
	return nn.BatchNorm(y, c.gamma, c.beta, c.runMean, c.runVar, BNMomentum, BNEps, train)
}

func (c *convBN) forwardReLU(x *nn.Var, train bool) *nn.Var {
	y := nn.Conv2d(x, c.w, nil, c.stride, c.pad)
	return nn.BatchNormReLU(y, c.gamma, c.beta, c.runMean, c.runVar, BNMomentum, BNEps, train)
}

func (c *convBN) params(m map[string]*nn.Var, prefix string) {
	m[prefix+"weight"] = c.w
	m[prefix+"bn.weight"] = c.gamma
	m[prefix+"bn.bias"] = c.beta
}

func (c *convBN) buffers(m map[string]*tensor.Tensor, prefix string) {
	m[prefix+"bn.running_mean"] = c.runMean
	m[prefix+"bn.running_var"] = c.runVar
}

// resUnit is a basic residual block: relu(bn(conv(relu(bn(conv x)))) + proj x).
type resUnit struct {
	a, b, proj *convBN
}

func newResUnit(in, out, stride int, rng *rand.Rand) *resUnit {
	r := &resUnit{a: newConvBN(in, out, 3, stride, rng), b: newConvBN(out, out, 3, 1, rng)}
	if in != out || stride != 1 {
		r.proj = newConvBN(in, out, 1, stride, rng)
	}
	return r
}

func (r *resUnit) forward(x *nn.Var, train bool) *nn.Var {
	h := r.b.forward(r.a.forwardReLU(x, train), train)
	short := x
	if r.proj != nil {
		short = r.proj.forward(x, train)
	}
	return nn.ReLU(nn.Add(h, short))
}

func (r *resUnit) params(m map[string]*nn.Var, prefix string) {
	r.a.params(m, prefix+"conv1.")
	r.b.params(m, prefix+"conv2.")
	if r.proj != nil {
		r.proj.params(m, prefix+"proj.")
	}
}

func (r *resUnit) buffers(m map[string]*tensor.Tensor, prefix string) {
	r.a.buffers(m, prefix+"conv1.")
	r.b.buffers(m, prefix+"conv2.")
	if r.proj != nil {
		r.proj.buffers(m, prefix+"proj.")
	}
}

// heUniform fills t with U(-b, b), b = √(6/fanIn): He initialisation for
// layers followed by ReLU.
func heUniform(t *tensor.Tensor, fanIn int, rng *rand.Rand) {
	b := math.Sqrt(6 / float64(fanIn))
	for i := range t.Data {
		t.Data[i] = float32((2*rng.Float64() - 1) * b)
	}
}

// torchUniform fills t with U(-b, b), b = 1/√fanIn: PyTorch's default for
// Linear and Conv weights and biases.
func torchUniform(t *tensor.Tensor, fanIn int, rng *rand.Rand) {
	b := 1 / math.Sqrt(float64(fanIn))
	for i := range t.Data {
		t.Data[i] = float32((2*rng.Float64() - 1) * b)
	}
}
