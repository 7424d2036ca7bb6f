package nn

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/spotfuse/spotfuse/tensor"
)

// tinyNet exercises the parallel kernels: conv, batch norm, pooling, dropout,
// linear, attention-free.
type tinyNet struct {
	c1, c2 *Conv2dLayer
	bn     *BatchNormLayer
	fc     *LinearLayer
}

func newTinyNet(rng *rand.Rand) *tinyNet {
	return &tinyNet{
		c1: NewConv2d(3, 8, 3, 1, 1, false, rng),
		bn: NewBatchNorm2d(8),
		c2: NewConv2d(8, 16, 3, 2, 1, true, rng),
		fc: NewLinear(16, 4, true, rng),
	}
}

func (m *tinyNet) forward(x *Var, rng *rand.Rand) *Var {
	h := m.bn.ForwardReLU(m.c1.Forward(x), true)
	h = GELU(m.c2.Forward(MaxPool2d(h, 2, 2)))
	h = Dropout(GlobalAvgPool(h), 0.2, rng, true)
	return m.fc.Forward(h)
}

func (m *tinyNet) NamedParams() map[string]*Var {
	out := map[string]*Var{}
	AddPrefixed(out, "c1", m.c1.NamedParams())
	AddPrefixed(out, "bn", m.bn.NamedParams())
	AddPrefixed(out, "c2", m.c2.NamedParams())
	AddPrefixed(out, "fc", m.fc.NamedParams())
	return out
}

func (m *tinyNet) NamedBuffers() map[string]*tensor.Tensor {
	out := map[string]*tensor.Tensor{}
	AddPrefixed(out, "bn", m.bn.NamedBuffers())
	return out
}

// trainTiny trains for a few steps from seed and returns the saved weights.
func trainTiny(t *testing.T, seed uint64, release bool) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	m := newTinyNet(rng)
	params := Params(m)
	opt := NewAdamW(1e-2, 1e-2)
	for step := 0; step < 4; step++ {
		x := randT(rng, 6, 3, 12, 12)
		y := []int{0, 1, 2, 3, 1, 2}
		ZeroGrad(params)
		loss := CrossEntropy(m.forward(Const(x), rng), y, nil)
		if release {
			loss.BackwardRelease()
		} else {
			loss.Backward()
		}
		ClipGradNorm(params, 1)
		opt.LR = 1e-2 * CosineWarmup(step, 4, 1)
		opt.Step(params)
	}
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := SaveSafetensors(path, StateDict(m), nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTrainingIsDeterministic checks that the same seed and thread count
// give bit-identical weights (also when the intermediate values are
// recycled by BackwardRelease, whatever the order in which workers claimed
// the work), and that a different seed does not.
func TestTrainingIsDeterministic(t *testing.T) {
	defer tensor.SetThreads(tensor.Threads())
	for _, threads := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(threads), func(t *testing.T) {
			tensor.SetThreads(threads)
			a := trainTiny(t, 7, false)
			for i := 0; i < 3; i++ {
				if !bytes.Equal(a, trainTiny(t, 7, i%2 == 0)) {
					t.Fatalf("run %d with the same seed differs", i+2)
				}
			}
			if bytes.Equal(a, trainTiny(t, 8, false)) {
				t.Fatal("runs with different seeds agree: the test cannot detect anything")
			}
		})
	}
}

// TestBackwardRelease checks that BackwardRelease gives the gradients of
// Backward, empties the intermediate values it recycled and keeps the
// root's and the leaves'.
func TestBackwardRelease(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1))
	m := newTinyNet(rng)
	params := Params(m)
	x := randT(rng, 4, 3, 10, 10)
	y := []int{0, 1, 2, 3}
	grads := func(release bool) ([][]float32, *Var, *Var, *Var) {
		ZeroGrad(params)
		in := Const(x)
		h := m.c1.Forward(in)
		loss := CrossEntropy(m.fc.Forward(GlobalAvgPool(m.c2.Forward(ReLU(h)))), y, nil)
		if release {
			loss.BackwardRelease()
		} else {
			loss.Backward()
		}
		var out [][]float32
		for _, p := range params {
			if p.Grad != nil {
				out = append(out, append([]float32(nil), p.Grad.Data...))
			}
		}
		return out, in, h, loss
	}
	want, _, _, _ := grads(false)
	got, in, h, loss := grads(true)
	if len(got) != len(want) || len(want) < 4 {
		t.Fatalf("%d gradients with BackwardRelease, %d with Backward", len(got), len(want))
	}
	for i := range want {
		for j := range want[i] {
			if want[i][j] != got[i][j] {
				t.Fatalf("param %d grad %d: %v with BackwardRelease, %v with Backward", i, j, got[i][j], want[i][j])
			}
		}
	}
	if h.Value != nil {
		t.Error("the convolution's output was not released")
	}
	if loss.Value == nil || in.Value == nil || len(in.Value.Data) != x.Size() || m.c1.W.Value == nil {
		t.Error("the root, the input or a parameter lost its value")
	}
	// A root that shares its parent's memory keeps it.
	a := Param(randT(rng, 1))
	r := Reshape(ReLU(a), 1)
	r.BackwardRelease()
	if len(r.Value.Data) != 1 {
		t.Error("the root's memory was recycled through its parent")
	}
}

// TestLazyGradSameBits checks that BatchNorm handing its input gradient to
// the convolution before it (lazyGrad) gives bit for bit the gradients of
// writing it out, for wide and narrow maps, one and several image groups,
// with and without ReLU, and that a convolution output read twice is not
// handed over.
func TestLazyGradSameBits(t *testing.T) {
	defer func(s bool) { useLazyGrad = s }(useLazyGrad)
	defer func(m int) { shiftMaxPixels = m }(shiftMaxPixels)
	shiftMaxPixels = 0 // 4×4 maps through im2col, which takes lazy gradients
	defer tensor.SetThreads(tensor.Threads())
	for _, threads := range []int{1, 2} {
		for _, size := range []int{4, 16} {
			tensor.SetThreads(threads)
			net := twoConvBlocks(uint64(size), size, 8)
			run := func(lazy, shared bool) [][]float32 {
				useLazyGrad = lazy
				if shared { // z read by a second op: no hand-over
					return net(func(z, h *Var) *Var { return Mean(z) })
				}
				return net(nil)
			}
			for _, shared := range []bool{false, true} {
				want := run(false, shared)
				before := lazyHandOvers.Load()
				got := run(true, shared)
				// Two BatchNorms follow convolutions; with z read twice only
				// the second hands over.
				if n, wantN := lazyHandOvers.Load()-before, map[bool]int64{false: 2, true: 1}[shared]; n != wantN {
					t.Fatalf("threads %d size %d shared %v: %d hand-overs, want %d", threads, size, shared, n, wantN)
				}
				sameGrads(t, fmt.Sprintf("threads %d size %d shared %v, lazily and written out", threads, size, shared), want, got)
			}
		}
	}
}

// twoConvBlocks builds conv 3→8 (stride 1) → BatchNorm+ReLU → conv 8→c2
// (stride 2) → BatchNorm on 6 images of size×size, and returns a function
// that runs it forward and backward from the mean square of its output
// (plus second(z, h) of the first convolution's output z and the first
// block's h, when second is not nil) and returns every parameter's
// gradient, the input's included.
func twoConvBlocks(seed uint64, size, c2 int) func(second func(z, h *Var) *Var) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 4))
	conv1, conv2 := NewConv2d(3, 8, 3, 1, 1, false, rng), NewConv2d(8, c2, 3, 2, 1, false, rng)
	b1, b2 := NewBatchNorm2d(8), NewBatchNorm2d(c2)
	x := Param(randT(rng, 6, 3, size, size))
	params := []*Var{x, conv1.W, conv2.W, b1.Gamma, b1.Beta, b2.Gamma, b2.Beta}
	return func(second func(z, h *Var) *Var) [][]float32 {
		for _, p := range params {
			p.ZeroGrad()
		}
		z := conv1.Forward(x)
		h := b1.ForwardReLU(z, true)
		out := b2.Forward(conv2.Forward(h), true)
		loss := Mean(Mul(out, out))
		if second != nil {
			loss = Add(loss, second(z, h))
		}
		loss.Backward()
		var g [][]float32
		for _, p := range params {
			g = append(g, append([]float32(nil), p.Grad.Data...))
		}
		return g
	}
}

// sameGrads fails t unless the gradients want and got have the same bits.
func sameGrads(t *testing.T, what string, want, got [][]float32) {
	t.Helper()
	for i := range want {
		for j := range want[i] {
			if want[i][j] != got[i][j] {
				t.Fatalf("%s: param %d grad %d differs: %v and %v", what, i, j, want[i][j], got[i][j])
			}
		}
	}
}

// TestFree checks that Free empties an op's result and its gradient, and
// leaves a leaf's value alone.
func TestFree(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 1))
	x := Param(randT(rng, 2, 3))
	y := ReLU(x)
	Sum(y).Backward()
	y.Free()
	if y.Value != nil || y.Grad != nil {
		t.Error("Free left the result's value or gradient")
	}
	x.Free()
	if x.Value == nil || len(x.Value.Data) != 6 || x.Grad != nil {
		t.Error("Free on a leaf must drop its gradient and keep its value")
	}
}

// TestPlaneGradSameBits checks that a BatchNorm whose output a convolution
// alone reads takes its gradient sums from that convolution (planeGrad)
// with bit for bit the gradients of summing them itself, for one and two
// threads; and that it does not when the planes are small (they share AVX
// lanes) or when its output has a second reader.
func TestPlaneGradSameBits(t *testing.T) {
	defer func(s bool) { usePlaneGrad = s }(usePlaneGrad)
	defer tensor.SetThreads(tensor.Threads())
	for _, threads := range []int{1, 2} {
		for _, size := range []int{8, 24} {
			for _, shared := range []bool{false, true} {
				tensor.SetThreads(threads)
				net := twoConvBlocks(uint64(size)+100, size, 6)
				run := func(on bool) [][]float32 {
					usePlaneGrad = on
					if shared { // h read by a second op: the BatchNorm sums itself
						return net(func(z, h *Var) *Var { return Mean(h) })
					}
					return net(nil)
				}
				want := run(false)
				before := planeGradTaken.Load()
				got := run(true)
				// Only b1 feeds a convolution; its planes (size²) must fill
				// their own lanes (sumMin values, with AVX-512), h have one
				// reader and c2 run its groups of images on one worker each.
				P := (size / 2) * (size / 2)
				G := min(6, (minGemmCols+P-1)/P)
				groups := (6 + G - 1) / G
				wantN := int64(0)
				if (!useAVX512 || size*size >= sumMin) && !shared && groups >= threads {
					wantN = 1
				}
				if n := planeGradTaken.Load() - before; n != wantN {
					t.Fatalf("threads %d size %d shared %v: sums taken %d times, want %d", threads, size, shared, n, wantN)
				}
				sameGrads(t, fmt.Sprintf("threads %d size %d shared %v, with the convolution's sums and without", threads, size, shared), want, got)
			}
		}
	}
}

// TestPlaneStatsSameBits checks that a BatchNorm after a convolution in
// ConvBN, which takes its statistics from the convolution (planeStats),
// gives bit for bit the outputs, running statistics and gradients of the
// two ops run apart, on planes large enough (12×12 and more) and small
// (8×8, which share the lanes), one and two threads, with and without
// ReLU.
func TestPlaneStatsSameBits(t *testing.T) {
	defer tensor.SetThreads(tensor.Threads())
	for _, threads := range []int{1, 2} {
		for _, size := range []int{8, 12, 32} {
			for _, relu := range []bool{false, true} {
				tensor.SetThreads(threads)
				run := func(fused bool) (y, rm, rv, gx []float32, stats bool) {
					rng := rand.New(rand.NewPCG(uint64(size), 6))
					conv, bn := NewConv2d(3, 5, 3, 1, 1, false, rng), NewBatchNorm2d(5)
					x := Param(randT(rng, 4, 3, size, size))
					// A mean far from zero against the spread: the shifts matter.
					for i := range x.Value.Data {
						x.Value.Data[i] += 40
					}
					var out *Var
					if fused {
						out = ConvBN(x, conv, bn, true, relu)
						stats = out.parents[0].planeStats != nil
					} else if relu {
						out = bn.ForwardReLU(conv.Forward(x), true)
					} else {
						out = bn.Forward(conv.Forward(x), true)
					}
					Sum(Mul(out, out)).Backward()
					return out.Value.Data, bn.RunningMean.Data, bn.RunningVar.Data, x.Grad.Data, stats
				}
				y0, m0, v0, g0, _ := run(false)
				y1, m1, v1, g1, stats := run(true)
				// Statistics come with planes that fill their own lanes, from
				// a convolution whose groups of images each take one worker.
				P := size * size
				G := min(4, (minGemmCols+P-1)/P) // images per group
				groups := (4 + G - 1) / G
				if want := ownPlanes(P) && groups >= threads; stats != want {
					t.Fatalf("threads %d size %d: statistics from the convolution %v, want %v", threads, size, stats, want)
				}
				for name, pair := range map[string][2][]float32{"y": {y0, y1}, "running mean": {m0, m1}, "running var": {v0, v1}, "dx": {g0, g1}} {
					for j := range pair[0] {
						if pair[0][j] != pair[1][j] {
							t.Fatalf("threads %d size %d relu %v: %s[%d] = %v in ConvBN, %v apart", threads, size, relu, name, j, pair[1][j], pair[0][j])
						}
					}
				}
			}
		}
	}
}

// TestBatchNormPlaneStats checks BatchNorm's batch statistics on planes
// summed one at a time, each shifted by its own first value (planeStatsOf,
// combinePlanes), against a float64 reference, with a mean 1,000 times the
// spread and first values that differ from plane to plane.
func TestBatchNormPlaneStats(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	n, c, hw := 3, 2, 16*16
	x := randT(rng, n, c, 16, 16)
	for i := range x.Data {
		x.Data[i] = 1000 + x.Data[i] + float32(i%7)
	}
	rm, rv := tensor.New(c), tensor.Full(1, c)
	BatchNorm(Const(x), nil, nil, rm, rv, 1, 1e-5, true)
	for ch := 0; ch < c; ch++ {
		var s float64
		for i := 0; i < n; i++ {
			for _, v := range x.Data[(i*c+ch)*hw : (i*c+ch+1)*hw] {
				s += float64(v)
			}
		}
		mu := s / float64(n*hw)
		var ss float64
		for i := 0; i < n; i++ {
			for _, v := range x.Data[(i*c+ch)*hw : (i*c+ch+1)*hw] {
				ss += (float64(v) - mu) * (float64(v) - mu)
			}
		}
		vr := ss / float64(n*hw-1) // momentum 1: the running values are the batch's
		if math.Abs(float64(rm.Data[ch])-mu) > 1e-6*mu || math.Abs(float64(rv.Data[ch])-vr) > 1e-5*vr {
			t.Fatalf("channel %d: mean %v var %v, want %v %v", ch, rm.Data[ch], rv.Data[ch], mu, vr)
		}
	}
}
