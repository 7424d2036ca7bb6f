package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/spotfuse/spotfuse/tensor"
)

// ReLU returns max(x, 0).
func ReLU(x *Var) *Var {
	X := x.Value.Data
	out := newUninit(x.Value.Shape...)
	Y := out.Data
	parallelFor(len(X), func(lo, hi int) {
		y := Y[lo:hi]
		for i, a := range X[lo:hi] {
			y[i] = relu32(a)
		}
	})
	v := newPooledVar(out, x)
	if v.requiresGrad {
		v.backward = func() {
			G := v.Grad.Data
			gx, fresh := x.gradFresh()
			parallelFor(len(X), func(lo, hi int) {
				g, y, d := G[lo:hi], Y[lo:hi], gx[lo:hi]
				if fresh {
					for i := range d {
						d[i] = passIfPositive(y[i], g[i])
					}
					return
				}
				for i := range d {
					d[i] += passIfPositive(y[i], g[i])
				}
			})
		}
	}
	return v
}

// GELU is the exact (erf) Gaussian error linear unit, torch's default:
// x·Φ(x).
func GELU(x *Var) *Var {
	return unary(x, func(a float32) float32 {
		return float32(0.5 * float64(a) * (1 + math.Erf(float64(a)/math.Sqrt2)))
	}, func(a, _ float32) float32 {
		x := float64(a)
		cdf := 0.5 * (1 + math.Erf(x/math.Sqrt2))
		pdf := math.Exp(-0.5*x*x) / math.Sqrt(2*math.Pi)
		return float32(cdf + x*pdf)
	})
}

// Sigmoid returns 1/(1+e^−x).
func Sigmoid(x *Var) *Var {
	return unary(x, sigmoid, func(_, y float32) float32 { return y * (1 - y) })
}

func sigmoid(a float32) float32 {
	if a >= 0 {
		return float32(1 / (1 + math.Exp(-float64(a))))
	}
	e := math.Exp(float64(a))
	return float32(e / (1 + e))
}

// Tanh returns tanh(x).
func Tanh(x *Var) *Var {
	return unary(x, func(a float32) float32 { return float32(math.Tanh(float64(a))) },
		func(_, y float32) float32 { return 1 - y*y })
}

// Exp returns e^x.
func Exp(x *Var) *Var {
	return unary(x, func(a float32) float32 { return float32(math.Exp(float64(a))) },
		func(_, y float32) float32 { return y })
}

// Log returns ln(x).
func Log(x *Var) *Var {
	return unary(x, func(a float32) float32 { return float32(math.Log(float64(a))) },
		func(a, _ float32) float32 { return 1 / a })
}

// Softplus returns ln(1+e^x), computed stably.
func Softplus(x *Var) *Var {
	return unary(x, softplus, func(a, _ float32) float32 { return sigmoid(a) })
}

func softplus(a float32) float32 {
	x := float64(a)
	if x > 0 {
		return float32(x + math.Log1p(math.Exp(-x)))
	}
	return float32(math.Log1p(math.Exp(x)))
}

// Dropout zeroes each element with probability p and scales the rest by
// 1/(1−p) when train is true (inverted dropout, like torch); otherwise it
// returns x unchanged. The mask is drawn from rng in element order.
func Dropout(x *Var, p float64, rng *rand.Rand, train bool) *Var {
	if !train || p == 0 {
		return x
	}
	if p < 0 || p >= 1 {
		panic(fmt.Sprintf("nn: Dropout probability %g", p))
	}
	scale := float32(1 / (1 - p))
	mask := make([]float32, x.Value.Size())
	for i := range mask {
		if rng.Float64() >= p {
			mask[i] = scale
		}
	}
	out := tensor.New(x.Value.Shape...)
	for i, a := range x.Value.Data {
		out.Data[i] = a * mask[i]
	}
	v := newVar(out, x)
	if v.requiresGrad {
		v.backward = func() {
			gx := x.grad()
			for i, g := range v.Grad.Data {
				gx[i] += g * mask[i]
			}
		}
	}
	return v
}

// Softmax normalises the last axis of x to probabilities.
func Softmax(x *Var) *Var {
	return lastAxis(x, softmaxRow, func(dx, y, g []float32) {
		var dot float32
		for i := range y {
			dot += y[i] * g[i]
		}
		for i := range y {
			dx[i] += y[i] * (g[i] - dot)
		}
	})
}

func softmaxRow(y, x []float32) {
	m := rowMax(x)
	var s float32
	for i, a := range x {
		e := float32(math.Exp(float64(a - m)))
		y[i] = e
		s += e
	}
	inv := 1 / s
	for i := range y {
		y[i] *= inv
	}
}

// rowMax returns the largest element of x (−Inf when empty, NaN when any
// is NaN).
func rowMax(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, a := range x {
		m = max(m, a)
	}
	return m
}

// logSoftmaxRow writes log-softmax of x into y.
func logSoftmaxRow(y, x []float32) {
	m := rowMax(x)
	var s float64
	for _, a := range x {
		s += math.Exp(float64(a - m))
	}
	lse := m + float32(math.Log(s))
	for i, a := range x {
		y[i] = a - lse
	}
}

// LogSoftmax returns log(softmax(x)) over the last axis, computed stably.
func LogSoftmax(x *Var) *Var {
	return lastAxis(x, logSoftmaxRow, func(dx, y, g []float32) {
		var s float32
		for _, a := range g {
			s += a
		}
		for i := range y {
			dx[i] += g[i] - float32(math.Exp(float64(y[i])))*s
		}
	})
}

// lastAxis applies fwd(y, x) to each row of x's last axis and, in the
// backward pass, accumulates bwd(dx, y, g) for each row of the output y,
// its gradient g and x's gradient dx. Rows run in parallel.
func lastAxis(x *Var, fwd func(y, x []float32), bwd func(dx, y, g []float32)) *Var {
	shape := x.Value.Shape
	n := shape[len(shape)-1]
	rows := x.Value.Size() / n
	out := tensor.New(shape...)
	X, Y := x.Value.Data, out.Data
	tensor.For(rows, 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			fwd(Y[r*n:(r+1)*n], X[r*n:(r+1)*n])
		}
	})
	v := newVar(out, x)
	if v.requiresGrad {
		v.backward = func() {
			G, gx := v.Grad.Data, x.grad()
			tensor.For(rows, 64, func(lo, hi int) {
				for r := lo; r < hi; r++ {
					bwd(gx[r*n:(r+1)*n], Y[r*n:(r+1)*n], G[r*n:(r+1)*n])
				}
			})
		}
	}
	return v
}

// L2Normalize scales each row (last axis) of x to unit Euclidean norm
// (norms are clamped below at 1e-12, like torch.nn.functional.normalize).
func L2Normalize(x *Var) *Var {
	shape := x.Value.Shape
	n := shape[len(shape)-1]
	rows := x.Value.Size() / n
	out := tensor.New(shape...)
	norms := make([]float32, rows)
	X, Y := x.Value.Data, out.Data
	for r := 0; r < rows; r++ {
		var s float64
		for _, a := range X[r*n : (r+1)*n] {
			s += float64(a) * float64(a)
		}
		nr := float32(math.Max(math.Sqrt(s), 1e-12))
		norms[r] = nr
		for i, a := range X[r*n : (r+1)*n] {
			Y[r*n+i] = a / nr
		}
	}
	v := newVar(out, x)
	if v.requiresGrad {
		v.backward = func() {
			G, gx := v.Grad.Data, x.grad()
			for r := 0; r < rows; r++ {
				y, g := Y[r*n:(r+1)*n], G[r*n:(r+1)*n]
				var dot float32
				for i := range y {
					dot += y[i] * g[i]
				}
				for i := range y {
					gx[r*n+i] += (g[i] - y[i]*dot) / norms[r]
				}
			}
		}
	}
	return v
}
