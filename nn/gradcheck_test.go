package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spotfuse/spotfuse/tensor"
)

// randT returns a tensor with N(0,1) values.
func randT(r *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(r.NormFloat64())
	}
	return t
}

// awayFromZero pushes values out of (−m, m) so kinks (ReLU, max) are not
// crossed by the finite-difference step.
func awayFromZero(t *tensor.Tensor, m float32) *tensor.Tensor {
	for i, v := range t.Data {
		if v >= 0 && v < m {
			t.Data[i] = v + m
		} else if v < 0 && v > -m {
			t.Data[i] = v - m
		}
	}
	return t
}

func positive(t *tensor.Tensor) *tensor.Tensor {
	for i, v := range t.Data {
		t.Data[i] = float32(math.Abs(float64(v))) + 0.5
	}
	return t
}

// projection is the scalar L = Σ out·r evaluated in float64.
func projection(out *tensor.Tensor, r []float64) float64 {
	var s float64
	for i, v := range out.Data {
		s += float64(v) * r[i]
	}
	return s
}

// checkGrads compares the analytic gradients of L = Σ f()·r with respect to
// every input against central finite differences.
func checkGrads(t *testing.T, inputs []*Var, f func() *Var) {
	t.Helper()
	r := rand.New(rand.NewPCG(99, 7))
	out := f()
	proj := make([]float64, out.Value.Size())
	seed := tensor.New(out.Value.Shape...)
	for i := range proj {
		proj[i] = r.NormFloat64()
		seed.Data[i] = float32(proj[i])
	}
	for _, in := range inputs {
		in.Grad = nil
	}
	out.BackwardFrom(seed)
	const eps = 3e-3
	for k, in := range inputs {
		if in.Grad == nil {
			t.Fatalf("input %d got no gradient", k)
		}
		for i := range in.Value.Data {
			orig := in.Value.Data[i]
			in.Value.Data[i] = orig + eps
			var lp, lm float64
			NoGrad(func() { lp = projection(f().Value, proj) })
			in.Value.Data[i] = orig - eps
			NoGrad(func() { lm = projection(f().Value, proj) })
			in.Value.Data[i] = orig
			num := (lp - lm) / (2 * eps)
			got := float64(in.Grad.Data[i])
			if math.Abs(got-num) > 5e-3+2e-2*math.Max(math.Abs(got), math.Abs(num)) {
				t.Fatalf("input %d (shape %v) element %d: analytic %.6g, numeric %.6g", k, in.Value.Shape, i, got, num)
			}
		}
	}
}

func TestGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	p := func(shape ...int) *Var { return Param(randT(r, shape...)) }
	pz := func(shape ...int) *Var { return Param(awayFromZero(randT(r, shape...), 0.05)) }
	pp := func(shape ...int) *Var { return Param(positive(randT(r, shape...))) }

	type tc struct {
		name   string
		inputs []*Var
		f      func(in []*Var) *Var
	}
	mask := []float32{1, 0, 1, 1, 0, 1, 2, 1, 0, 1, 1, 1}
	counts := tensor.FromSlice([]float32{0, 1, 3, 0, 7, 2, 1, 0, 0, 12, 4, 1}, 3, 4)
	attnMask := tensor.New(3, 4)
	attnMask.Data[3] = float32(math.Inf(-1))
	attnMask.Data[6] = -1e9
	mha := NewMultiHeadAttention(4, 2, r)
	mhaIn := []*Var{p(2, 3, 4), p(2, 4, 4), p(2, 4, 4)}
	for _, v := range Params(mha) {
		mhaIn = append(mhaIn, v)
	}
	bnStats := func(c int) (*tensor.Tensor, *tensor.Tensor) {
		return tensor.Full(0.2, c), tensor.Full(1.5, c)
	}
	cases := []tc{
		{"Add", []*Var{p(2, 3), p(2, 3)}, func(in []*Var) *Var { return Add(in[0], in[1]) }},
		{"AddBias", []*Var{p(4, 3), p(3)}, func(in []*Var) *Var { return Add(in[0], in[1]) }},
		{"AddBiasLeft", []*Var{p(3), p(4, 3)}, func(in []*Var) *Var { return Add(in[0], in[1]) }},
		{"AddGeneral", []*Var{p(2, 3, 1), p(1, 4)}, func(in []*Var) *Var { return Add(in[0], in[1]) }},
		{"SubChannel", []*Var{p(2, 3, 2, 2), p(1, 3, 1, 1)}, func(in []*Var) *Var { return Sub(in[0], in[1]) }},
		{"Mul", []*Var{p(2, 5), p(5)}, func(in []*Var) *Var { return Mul(in[0], in[1]) }},
		{"Div", []*Var{p(3, 2), pp(3, 2)}, func(in []*Var) *Var { return Div(in[0], in[1]) }},
		{"Scale", []*Var{p(3, 2)}, func(in []*Var) *Var { return AddScalar(Scale(in[0], -1.5), 2) }},
		{"Sum", []*Var{p(3, 2)}, func(in []*Var) *Var { return Sum(in[0]) }},
		{"Mean", []*Var{p(3, 2)}, func(in []*Var) *Var { return Mean(in[0]) }},
		{"SumAxis", []*Var{p(2, 3, 4)}, func(in []*Var) *Var { return SumAxis(in[0], 1) }},
		{"MeanAxis", []*Var{p(2, 3, 4)}, func(in []*Var) *Var { return MeanAxis(in[0], -1) }},
		{"Reshape", []*Var{p(2, 6)}, func(in []*Var) *Var { return Reshape(in[0], 3, -1) }},
		{"Permute", []*Var{p(2, 3, 4)}, func(in []*Var) *Var { return Permute(in[0], 2, 0, 1) }},
		{"Transpose2D", []*Var{p(2, 3)}, func(in []*Var) *Var { return Transpose2D(in[0]) }},
		{"Concat", []*Var{p(2, 1, 3), p(2, 2, 3)}, func(in []*Var) *Var { return Concat(1, in[0], in[1]) }},
		{"Slice", []*Var{p(2, 5, 2)}, func(in []*Var) *Var { return Slice(in[0], 1, 1, 4) }},
		{"MatMul", []*Var{p(2, 3, 4), p(4, 5)}, func(in []*Var) *Var { return MatMul(in[0], in[1]) }},
		{"BatchMatMul", []*Var{p(2, 3, 4), p(2, 4, 5)}, func(in []*Var) *Var { return BatchMatMul(in[0], in[1], false) }},
		{"BatchMatMulT", []*Var{p(2, 3, 4), p(2, 5, 4)}, func(in []*Var) *Var { return BatchMatMul(in[0], in[1], true) }},
		{"Linear", []*Var{p(2, 3, 4), p(5, 4), p(5)}, func(in []*Var) *Var { return Linear(in[0], in[1], in[2]) }},
		{"LinearNoBias", []*Var{p(3, 4), p(2, 4)}, func(in []*Var) *Var { return Linear(in[0], in[1], nil) }},
		{"ReLU", []*Var{pz(3, 4)}, func(in []*Var) *Var { return ReLU(in[0]) }},
		{"GELU", []*Var{p(3, 4)}, func(in []*Var) *Var { return GELU(in[0]) }},
		{"Sigmoid", []*Var{p(3, 4)}, func(in []*Var) *Var { return Sigmoid(in[0]) }},
		{"Tanh", []*Var{p(3, 4)}, func(in []*Var) *Var { return Tanh(in[0]) }},
		{"Exp", []*Var{p(3, 4)}, func(in []*Var) *Var { return Exp(in[0]) }},
		{"Log", []*Var{pp(3, 4)}, func(in []*Var) *Var { return Log(in[0]) }},
		{"Softplus", []*Var{p(3, 4)}, func(in []*Var) *Var { return Softplus(in[0]) }},
		{"Dropout", []*Var{p(4, 5)}, func(in []*Var) *Var {
			return Dropout(in[0], 0.3, rand.New(rand.NewPCG(5, 5)), true)
		}},
		{"Softmax", []*Var{p(3, 5)}, func(in []*Var) *Var { return Softmax(in[0]) }},
		{"LogSoftmax", []*Var{p(3, 5)}, func(in []*Var) *Var { return LogSoftmax(in[0]) }},
		{"L2Normalize", []*Var{p(3, 5)}, func(in []*Var) *Var { return L2Normalize(in[0]) }},
		{"Conv2d", []*Var{p(2, 3, 5, 5), p(4, 3, 3, 3), p(4)}, func(in []*Var) *Var { return Conv2d(in[0], in[1], in[2], 1, 1) }},
		{"Conv2dStride2", []*Var{p(2, 2, 6, 5), p(3, 2, 3, 3)}, func(in []*Var) *Var { return Conv2d(in[0], in[1], nil, 2, 1) }},
		{"Conv2d1x1", []*Var{p(2, 3, 4, 4), p(5, 3, 1, 1), p(5)}, func(in []*Var) *Var { return Conv2d(in[0], in[1], in[2], 1, 0) }},
		{"Conv2dStride2Wide", []*Var{p(1, 1, 5, 19), p(2, 1, 3, 3)}, func(in []*Var) *Var { return Conv2d(in[0], in[1], nil, 2, 1) }},
		{"Conv2dStride3", []*Var{p(1, 2, 7, 8), p(2, 2, 3, 3)}, func(in []*Var) *Var { return Conv2d(in[0], in[1], nil, 3, 1) }},
		{"Conv2d1x1Stride2", []*Var{p(2, 3, 5, 6), p(2, 3, 1, 1)}, func(in []*Var) *Var { return Conv2d(in[0], in[1], nil, 2, 0) }},
		{"Conv2d7x7Stride2", []*Var{p(1, 2, 9, 8), p(2, 2, 7, 7)}, func(in []*Var) *Var { return Conv2d(in[0], in[1], nil, 2, 3) }},
		// Inputs used twice: the second backward must accumulate into the
		// gradient the first one assigned.
		{"SharedInputConvs", []*Var{p(2, 3, 6, 6), p(2, 3, 3, 3), p(2, 3, 1, 1), p(2, 3, 3, 3)}, func(in []*Var) *Var {
			a := Add(Conv2d(in[0], in[1], nil, 2, 1), Conv2d(in[0], in[2], nil, 2, 0))
			return Add(a, Slice(Slice(Conv2d(in[0], in[3], nil, 1, 1), 2, 0, 3), 3, 0, 3))
		}},
		{"SharedInputActs", []*Var{pz(3, 2, 2, 2), p(2), p(2)}, func(in []*Var) *Var {
			m, v := bnStats(2)
			bn := BatchNormReLU(in[0], in[1], in[2], m, v, 0.1, 1e-5, true)
			return Add(Add(ReLU(in[0]), bn), Add(ReLU(in[0]), in[0]))
		}},
		{"Conv2dRect", []*Var{p(1, 2, 5, 6), p(2, 2, 2, 3)}, func(in []*Var) *Var { return Conv2d(in[0], in[1], nil, 1, 0) }},
		{"ConvTranspose2d", []*Var{p(2, 3, 3, 3), p(3, 2, 4, 4), p(2)}, func(in []*Var) *Var { return ConvTranspose2d(in[0], in[1], in[2], 2, 1) }},
		{"MaxPool2d", []*Var{p(2, 2, 4, 6)}, func(in []*Var) *Var { return MaxPool2d(in[0], 2, 2) }},
		{"MaxPool2dOverlap", []*Var{p(1, 2, 5, 5)}, func(in []*Var) *Var { return MaxPool2d(in[0], 3, 2) }},
		{"MaxPool2dPad", []*Var{p(1, 2, 6, 5)}, func(in []*Var) *Var { return MaxPool2dPad(in[0], 3, 2, 1) }},
		{"AvgPool2d", []*Var{p(2, 2, 4, 6)}, func(in []*Var) *Var { return AvgPool2d(in[0], 2, 2) }},
		{"GlobalAvgPool", []*Var{p(2, 3, 3, 2)}, func(in []*Var) *Var { return GlobalAvgPool(in[0]) }},
		{"Upsample2x", []*Var{p(2, 2, 2, 3)}, func(in []*Var) *Var { return Upsample2x(in[0]) }},
		{"BatchNorm2dTrain", []*Var{p(3, 2, 2, 3), p(2), p(2)}, func(in []*Var) *Var {
			m, v := bnStats(2)
			return BatchNorm(in[0], in[1], in[2], m, v, 0.1, 1e-5, true)
		}},
		{"BatchNorm2dEval", []*Var{p(3, 2, 2, 3), p(2), p(2)}, func(in []*Var) *Var {
			m, v := bnStats(2)
			return BatchNorm(in[0], in[1], in[2], m, v, 0.1, 1e-5, false)
		}},
		{"BatchNorm1dTrain", []*Var{p(5, 3), p(3), p(3)}, func(in []*Var) *Var {
			m, v := bnStats(3)
			return BatchNorm(in[0], in[1], in[2], m, v, 0.1, 1e-5, true)
		}},
		{"BatchNormReLUTrain", []*Var{p(3, 2, 2, 2), p(2), p(2)}, func(in []*Var) *Var {
			m, v := bnStats(2)
			return BatchNormReLU(in[0], in[1], in[2], m, v, 0.1, 1e-5, true)
		}},
		{"BatchNormReLUEval", []*Var{p(3, 2, 2, 2), p(2), p(2)}, func(in []*Var) *Var {
			m, v := bnStats(2)
			return BatchNormReLU(in[0], in[1], in[2], m, v, 0.1, 1e-5, false)
		}},
		{"LayerNorm", []*Var{p(3, 5), p(5), p(5)}, func(in []*Var) *Var { return LayerNorm(in[0], in[1], in[2], 1e-5) }},
		{"CrossEntropy", []*Var{p(4, 3)}, func(in []*Var) *Var { return CrossEntropy(in[0], []int{0, 2, 1, 2}, nil) }},
		{"CrossEntropyWeighted", []*Var{p(4, 3)}, func(in []*Var) *Var {
			return CrossEntropy(in[0], []int{0, 2, -1, 2}, []float32{0.5, 1, 2})
		}},
		{"MSE", []*Var{p(3, 4), p(3, 4)}, func(in []*Var) *Var { return MSE(in[0], in[1]) }},
		{"MaskedMSE", []*Var{p(3, 4), p(3, 4)}, func(in []*Var) *Var { return MaskedMSE(in[0], in[1], mask) }},
		{"InfoNCE", []*Var{p(4, 3), p(4, 3)}, func(in []*Var) *Var { return InfoNCE(in[0], in[1], 0.5) }},
		{"NegBinomialNLL", []*Var{pp(3, 4), pp(3, 4)}, func(in []*Var) *Var { return NegBinomialNLL(in[0], in[1], counts) }},
		{"NegBinomialNLLGene", []*Var{pp(3, 4), pp(4)}, func(in []*Var) *Var { return NegBinomialNLL(in[0], in[1], counts) }},
		{"GaussianKL", []*Var{p(3, 4), p(3, 4)}, func(in []*Var) *Var { return GaussianKL(in[0], in[1]) }},
		{"MultiHeadAttention", mhaIn, func(in []*Var) *Var { return mha.Forward(in[0], in[1], in[2], attnMask) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkGrads(t, c.inputs, func() *Var { return c.f(c.inputs) })
		})
	}
}

// TestConvGrouping checks Conv2d with every image grouping: one image per
// GEMM, groups with a remainder, and the whole batch in one GEMM, on 1 and 2
// threads (parallel groups vs parallel GEMMs).
func TestConvGrouping(t *testing.T) {
	defer func(m, th int) { minGemmCols = m; tensor.SetThreads(th) }(minGemmCols, tensor.Threads())
	for _, cols := range []int{1, 32, 1 << 20} { // P = 16: G = 1, 2, N
		for _, th := range []int{1, 2} {
			t.Run(fmt.Sprintf("cols%d/threads%d", cols, th), func(t *testing.T) {
				minGemmCols = cols
				tensor.SetThreads(th)
				r := rand.New(rand.NewPCG(4, 4))
				in := []*Var{Param(randT(r, 5, 2, 4, 4)), Param(randT(r, 3, 2, 3, 3)), Param(randT(r, 3))}
				checkGrads(t, in, func() *Var { return Conv2d(in[0], in[1], in[2], 1, 1) })
				in1 := []*Var{Param(randT(r, 5, 2, 4, 4)), Param(randT(r, 3, 2, 1, 1))}
				checkGrads(t, in1, func() *Var { return Conv2d(in1[0], in1[1], nil, 1, 0) })
				in2 := []*Var{Param(randT(r, 3, 2, 7, 6)), Param(randT(r, 3, 2, 3, 3))}
				checkGrads(t, in2, func() *Var { return Conv2d(in2[0], in2[1], nil, 2, 1) })
			})
		}
	}
}

// TestConvLoweringPaths checks convolutions through both lowerings: strided
// row copies, and the gather table used for narrow outputs.
func TestConvLoweringPaths(t *testing.T) {
	defer func(n int) { narrowWidth = n }(narrowWidth)
	cases := []struct {
		x, w        []int
		stride, pad int
	}{
		{[]int{2, 3, 5, 5}, []int{4, 3, 3, 3}, 1, 1},
		{[]int{2, 2, 6, 5}, []int{3, 2, 3, 3}, 2, 1},
		{[]int{1, 1, 5, 19}, []int{2, 1, 3, 3}, 2, 1},
		{[]int{1, 2, 7, 8}, []int{2, 2, 3, 3}, 3, 1},
		{[]int{2, 3, 5, 6}, []int{2, 3, 1, 1}, 2, 0},
		{[]int{1, 2, 9, 8}, []int{2, 2, 7, 7}, 2, 3},
		{[]int{1, 2, 5, 6}, []int{2, 2, 2, 3}, 1, 0},
		{[]int{1, 1, 4, 69}, []int{1, 1, 3, 3}, 2, 1}, // several 16-lane chunks per row
		{[]int{1, 1, 3, 37}, []int{1, 1, 3, 3}, 1, 1},
	}
	for _, narrow := range []int{0, 1 << 20} {
		for i, c := range cases {
			t.Run(fmt.Sprintf("narrow%d/%d", narrow, i), func(t *testing.T) {
				narrowWidth = narrow
				r := rand.New(rand.NewPCG(uint64(i), 9))
				in := []*Var{Param(randT(r, c.x...)), Param(randT(r, c.w...))}
				checkGrads(t, in, func() *Var { return Conv2d(in[0], in[1], nil, c.stride, c.pad) })
				tin := []*Var{Param(randT(r, c.x[0], c.w[0], 3, 4)), Param(randT(r, c.w[0], c.x[1], c.w[2], c.w[3]))}
				if c.pad < c.w[2] && c.pad < c.w[3] {
					checkGrads(t, tin, func() *Var { return ConvTranspose2d(tin[0], tin[1], nil, c.stride, c.pad) })
				}
			})
		}
	}
}

// TestGradientsThreads repeats a parallel op's check with several thread
// counts so the split paths are exercised.
func TestGradientsThreads(t *testing.T) {
	defer tensor.SetThreads(tensor.Threads())
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			tensor.SetThreads(n)
			r := rand.New(rand.NewPCG(3, 3))
			in := []*Var{Param(randT(r, 5, 2, 4, 4)), Param(randT(r, 3, 2, 3, 3))}
			checkGrads(t, in, func() *Var { return Conv2d(in[0], in[1], nil, 1, 1) })
			// One group of narrow outputs split by channel (not centred).
			in2 := []*Var{Param(randT(r, 5, 3, 6, 6)), Param(randT(r, 2, 3, 3, 3))}
			checkGrads(t, in2, func() *Var { return Conv2d(in2[0], in2[1], nil, 2, 1) })
		})
	}
}
