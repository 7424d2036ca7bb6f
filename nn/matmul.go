package nn

import (
	"fmt"

	"github.com/spotfuse/spotfuse/tensor"
)

// MatMul multiplies a [..., k] by b [k, n] giving [..., n]; a's leading
// dimensions are flattened into the rows of one GEMM.
func MatMul(a, b *Var) *Var {
	as, bs := a.Value.Shape, b.Value.Shape
	if len(as) < 1 || len(bs) != 2 || as[len(as)-1] != bs[0] {
		panic(fmt.Sprintf("nn: MatMul shapes %v and %v", as, bs))
	}
	k, n := bs[0], bs[1]
	m := a.Value.Size() / k
	shape := append(append([]int(nil), as[:len(as)-1]...), n)
	out := tensor.New(shape...)
	tensor.Gemm(false, false, m, n, k, 1, a.Value.Data, k, b.Value.Data, n, 0, out.Data, n)
	v := newVar(out, a, b)
	if v.requiresGrad {
		v.backward = func() {
			G := v.Grad.Data
			if a.needs() { // dA = G·Bᵀ
				tensor.Gemm(false, true, m, k, n, 1, G, n, b.Value.Data, n, 1, a.grad(), k)
			}
			if b.needs() { // dB = Aᵀ·G
				tensor.Gemm(true, false, k, n, m, 1, a.Value.Data, k, G, n, 1, b.grad(), n)
			}
		}
	}
	return v
}

// BatchMatMul multiplies a [B, m, k] by b [B, k, n] (or, with transB, by
// b [B, n, k] transposed) giving [B, m, n].
func BatchMatMul(a, b *Var, transB bool) *Var {
	as, bs := a.Value.Shape, b.Value.Shape
	if len(as) != 3 || len(bs) != 3 || as[0] != bs[0] {
		panic(fmt.Sprintf("nn: BatchMatMul shapes %v and %v", as, bs))
	}
	nb, m, k := as[0], as[1], as[2]
	n := bs[2]
	ldb := n
	if transB {
		n, ldb = bs[1], k
		if bs[2] != k {
			panic(fmt.Sprintf("nn: BatchMatMul shapes %v and %vᵀ", as, bs))
		}
	} else if bs[1] != k {
		panic(fmt.Sprintf("nn: BatchMatMul shapes %v and %v", as, bs))
	}
	out := tensor.New(nb, m, n)
	A, B, O := a.Value.Data, b.Value.Data, out.Data
	sa, sbb, so := m*k, k*n, m*n
	tensor.For(nb, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			tensor.GemmSerial(false, transB, m, n, k, 1, A[i*sa:], k, B[i*sbb:], ldb, 0, O[i*so:], n)
		}
	})
	v := newVar(out, a, b)
	if v.requiresGrad {
		v.backward = func() {
			G := v.Grad.Data
			ga, gb := a.gradIfNeeded(), b.gradIfNeeded()
			tensor.For(nb, 1, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					g := G[i*so:]
					if ga != nil { // dA = G·op(B)ᵀ
						tensor.GemmSerial(false, !transB, m, k, n, 1, g, n, B[i*sbb:], ldb, 1, ga[i*sa:], k)
					}
					if gb != nil {
						if transB { // B is [n,k]: dB = Gᵀ·A
							tensor.GemmSerial(true, false, n, k, m, 1, g, n, A[i*sa:], k, 1, gb[i*sbb:], k)
						} else { // dB = Aᵀ·G
							tensor.GemmSerial(true, false, k, n, m, 1, A[i*sa:], k, g, n, 1, gb[i*sbb:], n)
						}
					}
				}
			})
		}
	}
	return v
}

// Linear returns x·wᵀ + b for x [..., in], w [out, in] (torch layout) and
// b [out] (may be nil).
func Linear(x, w, b *Var) *Var {
	xs, ws := x.Value.Shape, w.Value.Shape
	if len(ws) != 2 || len(xs) < 1 || xs[len(xs)-1] != ws[1] {
		panic(fmt.Sprintf("nn: Linear input %v with weight %v", xs, ws))
	}
	in, nout := ws[1], ws[0]
	if b != nil && (b.Value.Size() != nout) {
		panic(fmt.Sprintf("nn: Linear bias %v for %d outputs", b.Value.Shape, nout))
	}
	m := x.Value.Size() / in
	shape := append(append([]int(nil), xs[:len(xs)-1]...), nout)
	out := tensor.New(shape...)
	O := out.Data
	if b != nil {
		for i := 0; i < m; i++ {
			copy(O[i*nout:(i+1)*nout], b.Value.Data)
		}
	}
	tensor.Gemm(false, true, m, nout, in, 1, x.Value.Data, in, w.Value.Data, in, 1, O, nout)
	v := newVar(out, x, w, b)
	if v.requiresGrad {
		v.backward = func() {
			G := v.Grad.Data
			if x.needs() { // dX = G·W
				tensor.Gemm(false, false, m, in, nout, 1, G, nout, w.Value.Data, in, 1, x.grad(), in)
			}
			if w.needs() { // dW = Gᵀ·X
				tensor.Gemm(true, false, nout, in, m, 1, G, nout, x.Value.Data, in, 1, w.grad(), in)
			}
			if b.needs() {
				gb := b.grad()
				for i := 0; i < m; i++ {
					for j, g := range G[i*nout : (i+1)*nout] {
						gb[j] += g
					}
				}
			}
		}
	}
	return v
}
