package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/spotfuse/spotfuse/tensor"
)

// Module is anything with named trainable parameters. Names are stable and
// dot-separated like torch state_dict keys ("enc.conv1.weight").
type Module interface {
	NamedParams() map[string]*Var
}

// Buffered is a Module that also has non-trainable state to save (BatchNorm
// running statistics).
type Buffered interface {
	NamedBuffers() map[string]*tensor.Tensor
}

// Params returns m's parameters sorted by name (a deterministic order for
// optimizers).
func Params(m Module) []*Var {
	named := m.NamedParams()
	names := make([]string, 0, len(named))
	for k := range named {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]*Var, len(names))
	for i, k := range names {
		out[i] = named[k]
	}
	return out
}

// AddPrefixed copies src into dst with keys prefix+"."+key (composition of
// modules' NamedParams or NamedBuffers).
func AddPrefixed[T any](dst map[string]T, prefix string, src map[string]T) {
	for k, v := range src {
		if prefix != "" {
			k = prefix + "." + k
		}
		dst[k] = v
	}
}

// StateDict returns the values of m's parameters and buffers by name (the
// tensors themselves, not copies), ready for SaveSafetensors.
func StateDict(m Module) map[string]*tensor.Tensor {
	out := map[string]*tensor.Tensor{}
	for k, v := range m.NamedParams() {
		out[k] = v.Value
	}
	if b, ok := m.(Buffered); ok {
		for k, v := range b.NamedBuffers() {
			out[k] = v
		}
	}
	return out
}

// LoadStateDict copies tensors into m's parameters and buffers. Every name
// must be present with the right shape and no extra names are allowed.
func LoadStateDict(m Module, tensors map[string]*tensor.Tensor) error {
	want := StateDict(m)
	for k, dst := range want {
		src, ok := tensors[k]
		if !ok {
			return fmt.Errorf("nn: state dict has no tensor %q", k)
		}
		if !tensor.SameShape(src.Shape, dst.Shape) {
			return fmt.Errorf("nn: tensor %q has shape %v, model expects %v", k, src.Shape, dst.Shape)
		}
	}
	for k := range tensors {
		if _, ok := want[k]; !ok {
			return fmt.Errorf("nn: state dict has unexpected tensor %q", k)
		}
	}
	for k, dst := range want {
		copy(dst.Data, tensors[k].Data)
	}
	return nil
}

// LinearLayer is a fully connected layer y = x·Wᵀ + b, W [out, in].
type LinearLayer struct {
	W, B *Var // B is nil without bias
}

// NewLinear initialises like torch.nn.Linear: W and B ~ U(−1/√in, 1/√in).
func NewLinear(in, out int, bias bool, rng *rand.Rand) *LinearLayer {
	l := &LinearLayer{}
	l.W, l.B = torchInit([]int{out, in}, in, bias, rng)
	return l
}

// Forward applies the layer to x [..., in].
func (l *LinearLayer) Forward(x *Var) *Var { return Linear(x, l.W, l.B) }

// NamedParams returns "weight" and, with bias, "bias".
func (l *LinearLayer) NamedParams() map[string]*Var {
	return weightBias(l.W, l.B)
}

// Conv2dLayer is a 2-D convolution layer, W [out, in, k, k].
type Conv2dLayer struct {
	W, B        *Var // B is nil without bias
	Stride, Pad int
}

// NewConv2d initialises like torch.nn.Conv2d: W and B ~ U(−1/√fan_in, 1/√fan_in).
func NewConv2d(in, out, k, stride, pad int, bias bool, rng *rand.Rand) *Conv2dLayer {
	c := &Conv2dLayer{Stride: stride, Pad: pad}
	c.W, c.B = torchInit([]int{out, in, k, k}, in*k*k, bias, rng)
	return c
}

// torchInit returns a weight of shape wShape (its first dimension the
// outputs) and, with bias, a bias, initialised like torch's Linear and
// Conv2d: the weight Kaiming-uniform with a = √5, the bias
// U(−1/√fanIn, 1/√fanIn), drawn from rng in that order.
func torchInit(wShape []int, fanIn int, bias bool, rng *rand.Rand) (w, b *Var) {
	w = Param(tensor.New(wShape...))
	KaimingUniform(w.Value, math.Sqrt(5), rng)
	if bias {
		b = Param(tensor.New(wShape[0]))
		bound := 1 / math.Sqrt(float64(fanIn))
		Uniform(b.Value, -bound, bound, rng)
	}
	return w, b
}

// weightBias names a layer's parameters "weight" and, unless b is nil,
// "bias".
func weightBias(w, b *Var) map[string]*Var {
	m := map[string]*Var{"weight": w}
	if b != nil {
		m["bias"] = b
	}
	return m
}

// Forward applies the convolution to x [N, in, H, W].
func (c *Conv2dLayer) Forward(x *Var) *Var { return Conv2d(x, c.W, c.B, c.Stride, c.Pad) }

// NamedParams returns "weight" and, with bias, "bias".
func (c *Conv2dLayer) NamedParams() map[string]*Var {
	return weightBias(c.W, c.B)
}

// BatchNormLayer is BatchNorm1d ([N,C] or [N,C,L]) and BatchNorm2d ([N,C,H,W]):
// per-channel normalisation with learnable scale and shift and running
// statistics for evaluation.
type BatchNormLayer struct {
	Gamma, Beta             *Var
	RunningMean, RunningVar *tensor.Tensor
	Momentum, Eps           float32
}

// NewBatchNorm returns a BatchNorm over c channels with torch's defaults
// (γ=1, β=0, running mean 0 and variance 1, momentum 0.1, eps 1e-5).
func NewBatchNorm(c int) *BatchNormLayer {
	return &BatchNormLayer{
		Gamma: Param(tensor.Full(1, c)), Beta: Param(tensor.New(c)),
		RunningMean: tensor.New(c), RunningVar: tensor.Full(1, c),
		Momentum: 0.1, Eps: 1e-5,
	}
}

// NewBatchNorm2d and NewBatchNorm1d are NewBatchNorm, named like torch.
func NewBatchNorm2d(c int) *BatchNormLayer { return NewBatchNorm(c) }
func NewBatchNorm1d(c int) *BatchNormLayer { return NewBatchNorm(c) }

// Forward normalises x with batch statistics when train is true (updating
// the running statistics) and with the running statistics otherwise.
func (b *BatchNormLayer) Forward(x *Var, train bool) *Var {
	return BatchNorm(x, b.Gamma, b.Beta, b.RunningMean, b.RunningVar, b.Momentum, b.Eps, train)
}

// ForwardReLU is ReLU(b.Forward(x, train)) fused into one pass.
func (b *BatchNormLayer) ForwardReLU(x *Var, train bool) *Var {
	return BatchNormReLU(x, b.Gamma, b.Beta, b.RunningMean, b.RunningVar, b.Momentum, b.Eps, train)
}

// NamedParams returns "weight" (γ) and "bias" (β), as in torch.
func (b *BatchNormLayer) NamedParams() map[string]*Var {
	return map[string]*Var{"weight": b.Gamma, "bias": b.Beta}
}

// NamedBuffers returns "running_mean" and "running_var", as in torch.
func (b *BatchNormLayer) NamedBuffers() map[string]*tensor.Tensor {
	return map[string]*tensor.Tensor{"running_mean": b.RunningMean, "running_var": b.RunningVar}
}

// ConvBN applies conv, then bn, then (with relu) ReLU. When no gradient is
// recorded (inside NoGrad, or with no trainable input) and train is false,
// the BatchNorm is folded into the convolution and applied to each output
// block while it is still in cache; otherwise it is exactly
// bn.Forward(conv.Forward(x), train) (or ForwardReLU).
func ConvBN(x *Var, conv *Conv2dLayer, bn *BatchNormLayer, train, relu bool) *Var {
	if train || convBNRecorded(x, conv, bn) {
		// In training the convolution also computes the statistics of its
		// output planes for the BatchNorm, while they are in cache.
		z := conv2d(x, conv.W, conv.B, conv.Stride, conv.Pad, nil, train && usePlaneStats)
		if relu {
			return bn.ForwardReLU(z, train)
		}
		return bn.Forward(z, train)
	}
	// y = γ·(conv − μ)/σ + β = a·conv + (β − a·μ), a = γ/σ.
	c := bn.RunningMean.Size()
	ep := &epilogue{scale: make([]float32, c), shift: make([]float32, c), relu: relu}
	for i := range c {
		a := bn.Gamma.Value.Data[i] / float32(math.Sqrt(float64(bn.RunningVar.Data[i])+float64(bn.Eps)))
		ep.scale[i] = a
		ep.shift[i] = bn.Beta.Value.Data[i] - a*bn.RunningMean.Data[i]
	}
	return conv2d(x, conv.W, conv.B, conv.Stride, conv.Pad, ep, false)
}

// convBNRecorded reports whether ConvBN(x, conv, bn, ...) records a graph
// (a gradient flows to an input or a parameter).
func convBNRecorded(x *Var, conv *Conv2dLayer, bn *BatchNormLayer) bool {
	return GradEnabled() && (x.requiresGrad || conv.W.requiresGrad || bn.Gamma.requiresGrad ||
		bn.Beta.requiresGrad || (conv.B != nil && conv.B.requiresGrad))
}

// ConvBNChain applies ConvBN(x, convs[i], bns[i], train, relu) for each
// block in turn. In training, the BatchNorm outputs between blocks are not
// stored: each BatchNorm hands its per-channel map to the next
// convolution, which applies it to one group of images at a time as it
// lowers them, forward and backward, while they are in cache. That saves
// writing each intermediate activation and reading it back (conv4: 59 MB
// a step of batch 64); the values are the same. A block whose convolution
// goes tap by tap (small maps) gets its input stored.
func ConvBNChain(x *Var, convs []*Conv2dLayer, bns []*BatchNormLayer, train, relu bool) *Var {
	if len(convs) != len(bns) {
		panic(fmt.Sprintf("nn: ConvBNChain of %d convolutions and %d BatchNorms", len(convs), len(bns)))
	}
	for i, conv := range convs {
		bn := bns[i]
		if i == len(convs)-1 || !(train || convBNRecorded(x, conv, bn)) || !useUnstored {
			x = ConvBN(x, conv, bn, train, relu)
			continue
		}
		z := conv2d(x, conv.W, conv.B, conv.Stride, conv.Pad, nil, train && usePlaneStats)
		next, zs := convs[i+1], z.Value.Shape
		ns := next.W.Value.Shape
		g := newConvGeom(zs[1], zs[2], zs[3], ns[2], ns[3], next.Stride, next.Pad)
		x = batchNorm(z, bn.Gamma, bn.Beta, bn.RunningMean, bn.RunningVar, bn.Momentum, bn.Eps, train, relu, !g.shiftConv())
	}
	return x
}

// useUnstored lets ConvBNChain leave its BatchNorm outputs unstored (tests
// compare both paths).
var useUnstored = true

// usePlaneStats lets ConvBN's convolution compute the BatchNorm's
// statistics (benchmarks switch it off to measure it).
var usePlaneStats = true

// LayerNormLayer normalises the last axis with learnable scale and shift.
type LayerNormLayer struct {
	Gamma, Beta *Var
	Eps         float32
}

// NewLayerNorm returns a LayerNorm over d features (γ=1, β=0, eps 1e-5).
func NewLayerNorm(d int) *LayerNormLayer {
	return &LayerNormLayer{Gamma: Param(tensor.Full(1, d)), Beta: Param(tensor.New(d)), Eps: 1e-5}
}

// Forward normalises x [..., d].
func (l *LayerNormLayer) Forward(x *Var) *Var { return LayerNorm(x, l.Gamma, l.Beta, l.Eps) }

// NamedParams returns "weight" and "bias".
func (l *LayerNormLayer) NamedParams() map[string]*Var {
	return map[string]*Var{"weight": l.Gamma, "bias": l.Beta}
}

// MultiHeadAttention is scaled dot-product attention with Heads heads over
// model width D (torch.nn.MultiheadAttention with batch_first=True).
type MultiHeadAttention struct {
	Q, K, V, Out *LinearLayer
	Heads        int
}

// NewMultiHeadAttention initialises like torch: the input projections with
// Xavier-uniform weights (over the stacked [3D, D] matrix) and zero biases,
// the output projection like Linear with a zero bias.
func NewMultiHeadAttention(dModel, heads int, rng *rand.Rand) *MultiHeadAttention {
	if heads < 1 || dModel%heads != 0 {
		panic(fmt.Sprintf("nn: MultiHeadAttention width %d with %d heads", dModel, heads))
	}
	inProj := tensor.New(3*dModel, dModel)
	XavierUniform(inProj, 1, rng)
	proj := func(i int) *LinearLayer {
		w := tensor.FromSlice(append([]float32(nil), inProj.Data[i*dModel*dModel:(i+1)*dModel*dModel]...), dModel, dModel)
		return &LinearLayer{W: Param(w), B: Param(tensor.New(dModel))}
	}
	m := &MultiHeadAttention{Q: proj(0), K: proj(1), V: proj(2), Heads: heads}
	m.Out = NewLinear(dModel, dModel, true, rng)
	m.Out.B.Value.Zero()
	return m
}

// Forward attends from q [B, Lq, D] to k, v [B, Lk, D]. mask, if not nil,
// is added to the attention scores before the softmax: shape [Lq, Lk] or
// [B, Lq, Lk], with −Inf (or a large negative value) where attention is not
// allowed. It returns [B, Lq, D].
func (m *MultiHeadAttention) Forward(q, k, v *Var, mask *tensor.Tensor) *Var {
	qs, ks := q.Value.Shape, k.Value.Shape
	if len(qs) != 3 || len(ks) != 3 || qs[0] != ks[0] || qs[2] != ks[2] || !tensor.SameShape(ks, v.Value.Shape) {
		panic(fmt.Sprintf("nn: MultiHeadAttention q %v k %v v %v", qs, ks, v.Value.Shape))
	}
	b, lq, lk, d := qs[0], qs[1], ks[1], qs[2]
	h, dh := m.Heads, qs[2]/m.Heads
	split := func(x *Var, l int) *Var { // [B, L, D] -> [B·H, L, dh]
		return Reshape(Permute(Reshape(x, b, l, h, dh), 0, 2, 1, 3), b*h, l, dh)
	}
	Q := split(m.Q.Forward(q), lq)
	K := split(m.K.Forward(k), lk)
	V := split(m.V.Forward(v), lk)
	scores := Scale(BatchMatMul(Q, K, true), float32(1/math.Sqrt(float64(dh))))
	if mask != nil {
		ms := mask.Shape
		switch {
		case tensor.SameShape(ms, []int{lq, lk}):
		case tensor.SameShape(ms, []int{b, lq, lk}):
			mask = mask.Reshape(b, 1, lq, lk)
		default:
			panic(fmt.Sprintf("nn: MultiHeadAttention mask %v for %d×%d scores", ms, lq, lk))
		}
		scores = Reshape(Add(Reshape(scores, b, h, lq, lk), Const(mask)), b*h, lq, lk)
	}
	ctx := BatchMatMul(Softmax(scores), V, false) // [B·H, Lq, dh]
	ctx = Reshape(Permute(Reshape(ctx, b, h, lq, dh), 0, 2, 1, 3), b, lq, d)
	return m.Out.Forward(ctx)
}

// NamedParams returns the projections as q_proj, k_proj, v_proj, out_proj.
func (m *MultiHeadAttention) NamedParams() map[string]*Var {
	out := map[string]*Var{}
	AddPrefixed(out, "q_proj", m.Q.NamedParams())
	AddPrefixed(out, "k_proj", m.K.NamedParams())
	AddPrefixed(out, "v_proj", m.V.NamedParams())
	AddPrefixed(out, "out_proj", m.Out.NamedParams())
	return out
}
