package nn

import (
	"fmt"

	"github.com/spotfuse/spotfuse/tensor"
)

// elemChunk is the smallest number of elements worth a goroutine.
const elemChunk = 1 << 15

// parallelFor runs fn over [0, n) in contiguous blocks on tensor.Threads() workers (tensor.For).
func parallelFor(n int, fn func(lo, hi int)) {
	tensor.For(n, elemChunk, func(lo, hi int) { fn(lo, hi) })
}

// broadcast describes how two shapes combine under numpy broadcasting.
type broadcast struct {
	shape []int
	kind  int     // 0: same shape; 1: b repeats over a's leading dims; 2: a repeats over b's; 3: general
	ai    []int32 // general case: element offsets of a and b for each output element
	bi    []int32
}

func newBroadcast(a, b []int) (*broadcast, error) {
	if tensor.SameShape(a, b) {
		return &broadcast{shape: append([]int(nil), a...)}, nil
	}
	if isSuffix(b, a) {
		return &broadcast{shape: append([]int(nil), a...), kind: 1}, nil
	}
	if isSuffix(a, b) {
		return &broadcast{shape: append([]int(nil), b...), kind: 2}, nil
	}
	nd := max(len(a), len(b))
	shape := make([]int, nd)
	pa, pb := pad(a, nd), pad(b, nd)
	for i := range shape {
		switch {
		case pa[i] == pb[i], pb[i] == 1:
			shape[i] = pa[i]
		case pa[i] == 1:
			shape[i] = pb[i]
		default:
			return nil, fmt.Errorf("nn: shapes %v and %v do not broadcast", a, b)
		}
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	bc := &broadcast{shape: shape, kind: 3, ai: make([]int32, n), bi: make([]int32, n)}
	sa, sb := bstrides(pa), bstrides(pb)
	idx := make([]int, nd)
	for o := 0; o < n; o++ {
		var oa, ob int
		for d := 0; d < nd; d++ {
			oa += idx[d] * sa[d]
			ob += idx[d] * sb[d]
		}
		bc.ai[o], bc.bi[o] = int32(oa), int32(ob)
		for d := nd - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return bc, nil
}

func isSuffix(s, of []int) bool {
	if len(s) > len(of) {
		return false
	}
	return tensor.SameShape(s, of[len(of)-len(s):])
}

func pad(s []int, nd int) []int {
	out := make([]int, nd)
	for i := range out {
		out[i] = 1
	}
	copy(out[nd-len(s):], s)
	return out
}

// bstrides returns row-major strides with 0 for size-1 (broadcast) dims.
func bstrides(s []int) []int {
	st := make([]int, len(s))
	acc := 1
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != 1 {
			st[i] = acc
		}
		acc *= s[i]
	}
	return st
}

// binaryOp runs f(out, a, b) elementwise under broadcasting, and the backward
// with per-element partial derivatives da = ∂out/∂a, db = ∂out/∂b given as
// functions of (a, b, out) values.
func binaryOp(a, b *Var, f func(x, y float32) float32, da, db func(x, y, z float32) float32) *Var {
	bc, err := newBroadcast(a.Value.Shape, b.Value.Shape)
	if err != nil {
		panic(err)
	}
	out := tensor.New(bc.shape...)
	A, B, O := a.Value.Data, b.Value.Data, out.Data
	na, nb := len(A), len(B)
	at := func(o int) (int, int) {
		switch bc.kind {
		case 0:
			return o, o
		case 1:
			return o, o % nb
		case 2:
			return o % na, o
		}
		return int(bc.ai[o]), int(bc.bi[o])
	}
	parallelFor(len(O), func(lo, hi int) {
		for o := lo; o < hi; o++ {
			i, j := at(o)
			O[o] = f(A[i], B[j])
		}
	})
	v := newVar(out, a, b)
	if v.requiresGrad {
		v.backward = func() {
			G := v.Grad.Data
			// Broadcast inputs receive sums over the repeated elements; done
			// serially in output order so the sum order is fixed.
			if a.needs() {
				ga := a.grad()
				if bc.kind == 0 || bc.kind == 1 {
					parallelFor(len(O), func(lo, hi int) {
						for o := lo; o < hi; o++ {
							i, j := at(o)
							ga[i] += G[o] * da(A[i], B[j], O[o])
						}
					})
				} else {
					for o := range O {
						i, j := at(o)
						ga[i] += G[o] * da(A[i], B[j], O[o])
					}
				}
			}
			if b.needs() {
				gb := b.grad()
				if bc.kind == 0 || bc.kind == 2 {
					parallelFor(len(O), func(lo, hi int) {
						for o := lo; o < hi; o++ {
							i, j := at(o)
							gb[j] += G[o] * db(A[i], B[j], O[o])
						}
					})
				} else {
					for o := range O {
						i, j := at(o)
						gb[j] += G[o] * db(A[i], B[j], O[o])
					}
				}
			}
		}
	}
	return v
}

// Add returns a + b with numpy broadcasting.
func Add(a, b *Var) *Var {
	if tensor.SameShape(a.Value.Shape, b.Value.Shape) {
		return addSame(a, b)
	}
	return binaryOp(a, b, func(x, y float32) float32 { return x + y },
		func(_, _, _ float32) float32 { return 1 }, func(_, _, _ float32) float32 { return 1 })
}

// Sub returns a − b with numpy broadcasting.
func Sub(a, b *Var) *Var {
	return binaryOp(a, b, func(x, y float32) float32 { return x - y },
		func(_, _, _ float32) float32 { return 1 }, func(_, _, _ float32) float32 { return -1 })
}

// Mul returns a ⊙ b (elementwise) with numpy broadcasting.
func Mul(a, b *Var) *Var {
	return binaryOp(a, b, func(x, y float32) float32 { return x * y },
		func(_, y, _ float32) float32 { return y }, func(x, _, _ float32) float32 { return x })
}

// Div returns a / b (elementwise) with numpy broadcasting.
func Div(a, b *Var) *Var {
	return binaryOp(a, b, func(x, y float32) float32 { return x / y },
		func(_, y, _ float32) float32 { return 1 / y }, func(_, y, z float32) float32 { return -z / y })
}

// unary applies f elementwise; df gives ∂out/∂x from (x, out).
func unary(x *Var, f func(float32) float32, df func(x, y float32) float32) *Var {
	X := x.Value.Data
	out := tensor.New(x.Value.Shape...)
	Y := out.Data
	parallelFor(len(X), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			Y[i] = f(X[i])
		}
	})
	v := newVar(out, x)
	if v.requiresGrad {
		v.backward = func() {
			G, gx := v.Grad.Data, x.grad()
			parallelFor(len(X), func(lo, hi int) {
				for i := lo; i < hi; i++ {
					gx[i] += G[i] * df(X[i], Y[i])
				}
			})
		}
	}
	return v
}

// Scale returns s·x.
func Scale(x *Var, s float32) *Var {
	return unary(x, func(a float32) float32 { return a * s }, func(_, _ float32) float32 { return s })
}

// AddScalar returns x + s.
func AddScalar(x *Var, s float32) *Var {
	return unary(x, func(a float32) float32 { return a + s }, func(_, _ float32) float32 { return 1 })
}

// Neg returns −x.
func Neg(x *Var) *Var { return Scale(x, -1) }

// Sum returns the sum of all elements as a scalar of shape [1].
func Sum(x *Var) *Var {
	var s float64
	for _, a := range x.Value.Data {
		s += float64(a)
	}
	v := newVar(tensor.FromSlice([]float32{float32(s)}, 1), x)
	if v.requiresGrad {
		v.backward = func() {
			g, gx := v.Grad.Data[0], x.grad()
			for i := range gx {
				gx[i] += g
			}
		}
	}
	return v
}

// Mean returns the mean of all elements as a scalar of shape [1].
func Mean(x *Var) *Var { return Scale(Sum(x), 1/float32(x.Value.Size())) }

// SumAxis sums over one axis, removing it.
func SumAxis(x *Var, axis int) *Var {
	outer, n, inner, shape := splitAxis(x.Value.Shape, axis)
	out := tensor.New(shape...)
	X, Y := x.Value.Data, out.Data
	for o := 0; o < outer; o++ {
		for k := 0; k < n; k++ {
			src := X[(o*n+k)*inner : (o*n+k+1)*inner]
			dst := Y[o*inner : (o+1)*inner]
			for i, a := range src {
				dst[i] += a
			}
		}
	}
	v := newVar(out, x)
	if v.requiresGrad {
		v.backward = func() {
			G, gx := v.Grad.Data, x.grad()
			for o := 0; o < outer; o++ {
				for k := 0; k < n; k++ {
					dst := gx[(o*n+k)*inner : (o*n+k+1)*inner]
					for i, g := range G[o*inner : (o+1)*inner] {
						dst[i] += g
					}
				}
			}
		}
	}
	return v
}

// MeanAxis averages over one axis, removing it.
func MeanAxis(x *Var, axis int) *Var {
	return Scale(SumAxis(x, axis), 1/float32(x.Value.Shape[normAxis(axis, len(x.Value.Shape))]))
}

func normAxis(axis, nd int) int {
	if axis < 0 {
		axis += nd
	}
	if axis < 0 || axis >= nd {
		panic(fmt.Sprintf("nn: axis %d out of range for %d dims", axis, nd))
	}
	return axis
}

// splitAxis views shape as [outer, n, inner] around axis and returns the
// shape with the axis removed.
func splitAxis(shape []int, axis int) (outer, n, inner int, rest []int) {
	axis = normAxis(axis, len(shape))
	outer, inner = 1, 1
	for _, d := range shape[:axis] {
		outer *= d
	}
	for _, d := range shape[axis+1:] {
		inner *= d
	}
	rest = append(append([]int(nil), shape[:axis]...), shape[axis+1:]...)
	return outer, shape[axis], inner, rest
}

// Reshape returns x with a new shape (one dimension may be -1); the value is
// shared, the gradient is reshaped back.
func Reshape(x *Var, shape ...int) *Var {
	out := x.Value.Reshape(shape...)
	v := newVar(out, x)
	if v.requiresGrad {
		v.backward = func() {
			gx := x.grad()
			for i, g := range v.Grad.Data {
				gx[i] += g
			}
		}
	}
	return v
}

// Permute reorders the axes of x: out.Shape[i] = x.Shape[perm[i]].
func Permute(x *Var, perm ...int) *Var {
	shape := x.Value.Shape
	nd := len(shape)
	if len(perm) != nd {
		panic(fmt.Sprintf("nn: Permute %v of a %d-dim tensor", perm, nd))
	}
	outShape := make([]int, nd)
	for i, p := range perm {
		outShape[i] = shape[p]
	}
	inStr := bstridesFull(shape)
	// Stride in x of each output axis.
	str := make([]int, nd)
	for i, p := range perm {
		str[i] = inStr[p]
	}
	out := tensor.New(outShape...)
	offsets := permOffsets(outShape, str)
	X, Y := x.Value.Data, out.Data
	for o, off := range offsets {
		Y[o] = X[off]
	}
	v := newVar(out, x)
	if v.requiresGrad {
		v.backward = func() {
			gx := x.grad()
			for o, off := range offsets {
				gx[off] += v.Grad.Data[o]
			}
		}
	}
	return v
}

func bstridesFull(s []int) []int {
	st := make([]int, len(s))
	acc := 1
	for i := len(s) - 1; i >= 0; i-- {
		st[i] = acc
		acc *= s[i]
	}
	return st
}

func permOffsets(shape, str []int) []int32 {
	n := 1
	for _, d := range shape {
		n *= d
	}
	offs := make([]int32, n)
	idx := make([]int, len(shape))
	off := 0
	for o := 0; o < n; o++ {
		offs[o] = int32(off)
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d]++
			off += str[d]
			if idx[d] < shape[d] {
				break
			}
			off -= str[d] * shape[d]
			idx[d] = 0
		}
	}
	return offs
}

// Transpose2D returns the transpose of a matrix [m, n] -> [n, m].
func Transpose2D(x *Var) *Var {
	if len(x.Value.Shape) != 2 {
		panic(fmt.Sprintf("nn: Transpose2D of shape %v", x.Value.Shape))
	}
	return Permute(x, 1, 0)
}

// Concat joins xs along axis; all other dimensions must match.
func Concat(axis int, xs ...*Var) *Var {
	if len(xs) == 0 {
		panic("nn: Concat of nothing")
	}
	first := xs[0].Value.Shape
	axis = normAxis(axis, len(first))
	shape := append([]int(nil), first...)
	shape[axis] = 0
	for _, x := range xs {
		s := x.Value.Shape
		if len(s) != len(first) {
			panic(fmt.Sprintf("nn: Concat shapes %v and %v", first, s))
		}
		for d := range s {
			if d != axis && s[d] != first[d] {
				panic(fmt.Sprintf("nn: Concat shapes %v and %v along axis %d", first, s, axis))
			}
		}
		shape[axis] += s[axis]
	}
	outer, inner := 1, 1
	for _, d := range first[:axis] {
		outer *= d
	}
	for _, d := range first[axis+1:] {
		inner *= d
	}
	out := tensor.New(shape...)
	rowOut := shape[axis] * inner
	off := 0
	offs := make([]int, len(xs))
	for k, x := range xs {
		offs[k] = off
		w := x.Value.Shape[axis] * inner
		for o := 0; o < outer; o++ {
			copy(out.Data[o*rowOut+off:o*rowOut+off+w], x.Value.Data[o*w:(o+1)*w])
		}
		off += w
	}
	v := newVar(out, xs...)
	if v.requiresGrad {
		v.backward = func() {
			for k, x := range xs {
				if !x.needs() {
					continue
				}
				gx := x.grad()
				w := x.Value.Shape[axis] * inner
				for o := 0; o < outer; o++ {
					src := v.Grad.Data[o*rowOut+offs[k] : o*rowOut+offs[k]+w]
					dst := gx[o*w : (o+1)*w]
					for i, g := range src {
						dst[i] += g
					}
				}
			}
		}
	}
	return v
}

// Slice returns x restricted to [from, to) along axis.
func Slice(x *Var, axis, from, to int) *Var {
	shape := x.Value.Shape
	axis = normAxis(axis, len(shape))
	if from < 0 || to > shape[axis] || from > to {
		panic(fmt.Sprintf("nn: Slice [%d,%d) of axis %d with size %d", from, to, axis, shape[axis]))
	}
	outer, n, inner, _ := splitAxis(shape, axis)
	outShape := append([]int(nil), shape...)
	outShape[axis] = to - from
	out := tensor.New(outShape...)
	w := (to - from) * inner
	for o := 0; o < outer; o++ {
		copy(out.Data[o*w:(o+1)*w], x.Value.Data[(o*n+from)*inner:(o*n+to)*inner])
	}
	v := newVar(out, x)
	if v.requiresGrad {
		v.backward = func() {
			gx := x.grad()
			for o := 0; o < outer; o++ {
				dst := gx[(o*n+from)*inner : (o*n+to)*inner]
				for i, g := range v.Grad.Data[o*w : (o+1)*w] {
					dst[i] += g
				}
			}
		}
	}
	return v
}

// addSame is Add for equal shapes (residual connections): a plain loop
// forward, and the gradient passed through to both inputs.
func addSame(a, b *Var) *Var {
	A, B := a.Value.Data, b.Value.Data
	out := newUninit(a.Value.Shape...)
	O := out.Data
	parallelFor(len(O), func(lo, hi int) {
		o, y := O[lo:hi], B[lo:hi]
		for i, x := range A[lo:hi] {
			o[i] = x + y[i]
		}
	})
	v := newPooledVar(out, a, b)
	if v.requiresGrad {
		v.backward = func() {
			for _, p := range []*Var{a, b} {
				if !p.needs() {
					continue
				}
				g, fresh := p.gradFresh()
				parallelFor(len(g), func(lo, hi int) {
					d, s := g[lo:hi], v.Grad.Data[lo:hi]
					if fresh {
						copy(d, s)
						return
					}
					for i, x := range s {
						d[i] += x
					}
				})
			}
		}
	}
	return v
}
