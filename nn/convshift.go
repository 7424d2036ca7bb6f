package nn

import (
	"sync"

	"github.com/spotfuse/spotfuse/sgemm"
	"github.com/spotfuse/spotfuse/tensor"
)

// Convolutions that keep a small map's size (stride 1, a centred odd
// kernel: resnet18's 4×4 and 2×2 stages) are computed tap by tap instead
// of through a column matrix. On such maps most of the column matrix is
// padding: a 3×3 kernel on a 2×2 map reads inside the map for 16 of its
// 36 (tap, pixel) pairs, on a 4×4 map for 100 of 144, and im2col multiplies
// the zeros too. Here the activations are laid out pixel-major, [C, P, N]
// (column p·N + n), so that for every tap the output pixels where it reads
// inside the map form runs of whole map rows (or pieces of rows) whose
// input pixels are the same run shifted: each run is one matrix product of
// the tap's weights [O, C] with a block of columns, and no zero is
// multiplied.

// shiftMaxPixels is the largest map (h·w) convolved tap by tap; 0 turns
// the path off (tests compare it with im2col).
var shiftMaxPixels = 16

// shiftConv reports whether the convolution goes tap by tap.
func (g convGeom) shiftConv() bool {
	return g.sameCenter() && g.kh > 1 && g.h*g.w <= shiftMaxPixels
}

// shiftRun is a run of n output pixels from q0 whose input pixels for a
// tap are the run shifted by shift pixels.
type shiftRun struct{ q0, n, shift int }

// tapRuns returns tap (ki, kj)'s runs: one when the tap reads whole map
// rows, else one per row.
func (g convGeom) tapRuns(ki, kj int) []shiftRun {
	di, dj := ki-g.pad, kj-g.pad
	ilo, ihi := max(0, -di), min(g.h, g.h-di)
	jlo, jhi := max(0, -dj), min(g.w, g.w-dj)
	if ilo >= ihi || jlo >= jhi {
		return nil
	}
	shift := di*g.w + dj
	if jlo == 0 && jhi == g.w {
		return []shiftRun{{ilo * g.w, (ihi - ilo) * g.w, shift}}
	}
	runs := make([]shiftRun, 0, ihi-ilo)
	for i := ilo; i < ihi; i++ {
		runs = append(runs, shiftRun{i*g.w + jlo, jhi - jlo, shift})
	}
	return runs
}

// tapOrder lists the taps centre first: the centre reads inside the map
// at every pixel, so its product assigns the whole output and the others
// add to it.
func (g convGeom) tapOrder() []int {
	kk := g.kh * g.kw
	center := g.kh/2*g.kw + g.kw/2
	order := []int{center}
	for t := range kk {
		if t != center {
			order = append(order, t)
		}
	}
	return order
}

// toPixelMajor writes x [n, c, P] into dst as [c, P, n].
func toPixelMajor(dst, x []float32, n, c, P int) {
	tensor.For(c, 1, func(lo, hi int) {
		for ci := lo; ci < hi; ci++ {
			d := dst[ci*P*n : (ci+1)*P*n]
			for i := 0; i < n; i++ {
				src := x[(i*c+ci)*P : (i*c+ci+1)*P]
				for p, v := range src {
					d[p*n+i] = v
				}
			}
		}
	})
}

// fromPixelMajor writes src [c, P, n] into dst as [n, c, P], adding to dst
// unless assign.
func fromPixelMajor(dst, src []float32, n, c, P int, assign bool) {
	tensor.For(n, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			for ci := 0; ci < c; ci++ {
				d := dst[(i*c+ci)*P : (i*c+ci+1)*P]
				s := src[ci*P*n+i:]
				if assign {
					for p := range d {
						d[p] = s[p*n]
					}
				} else {
					for p := range d {
						d[p] += s[p*n]
					}
				}
			}
		}
	})
}

// tapProducts computes, for the taps in tapOrder, C = Σ_t op(A_t)·B over
// the tap's runs, for the m rows of C: with fwd, C[:, run] += op(A_t) ·
// B[:, run + shift] (the forward pass), else C[:, run + shift] += op(A_t) ·
// B[:, run] (the input gradient). A_t is tap t's [o, c] matrix of wt
// (transposed with transA), k its inner size; columns are pixel-major
// over n images. The centre tap, first, assigns C. Rows of C are split
// between the workers; each packs its rows of a tap's weights once for all
// the tap's runs.
func (g convGeom) tapProducts(m, k, n int, wt []float32, transA bool, b, c []float32, fwd bool) {
	ld, size := g.cols()*n, m*k
	order := g.tapOrder()
	tensor.For(m, 48, func(lo, hi int) {
		for _, t := range order {
			beta := float32(1)
			if t == order[0] {
				beta = 0
			}
			a, lda := wt[t*size+lo*k:], k
			if transA { // tap t's matrix stored [k, m]
				a, lda = wt[t*size+lo:], m
			}
			var pa *sgemm.PackedA
			if sgemm.Available() {
				pa = sgemm.PackA(transA, hi-lo, k, 1, a, lda)
			}
			for _, r := range g.tapRuns(t/g.kw, t%g.kw) {
				bc, cc := (r.q0+r.shift)*n, r.q0*n
				if !fwd {
					bc, cc = cc, bc
				}
				cs := c[lo*ld+cc:]
				if pa == nil {
					tensor.GemmSerial(transA, false, hi-lo, r.n*n, k, 1, a, lda, b[bc:], ld, beta, cs, ld)
					continue
				}
				pa.MulRows(r.n*n, b[bc:], ld, beta, cs, ld)
			}
			if pa != nil {
				pa.Release()
			}
		}
	})
}

// tapMajor writes the weights w [o, c, kk] into dst as kk matrices [o, c]
// (AVX-512 gathers through tapTable).
func tapMajor(dst, w []float32, o, c, kk int) {
	tab := tapTable(c, kk)
	tensor.For(o, 1, func(lo, hi int) {
		for oc := lo; oc < hi; oc++ {
			src := w[oc*c*kk : (oc+1)*c*kk] // in L1 while every tap reads it
			for t := range kk {
				gatherIdx(dst[(t*o+oc)*c:(t*o+oc+1)*c], src, tab[t*c:(t+1)*c])
			}
		}
	})
}

// fromTapMajor is tapMajor's inverse: it writes kk matrices src [o, c]
// into dst [o, c, kk], adding to dst unless assign.
func fromTapMajor(dst, src []float32, o, c, kk int, assign bool) {
	tab := tapTable(c, kk)
	tensor.For(o, 1, func(lo, hi int) {
		for oc := lo; oc < hi; oc++ {
			d := dst[oc*c*kk : (oc+1)*c*kk]
			if assign { // the taps cover every element once
				clear(d)
			}
			for t := range kk {
				scatterAddIdx(d, src[(t*o+oc)*c:(t*o+oc+1)*c], tab[t*c:(t+1)*c], c)
			}
		}
	})
}

// tapTable returns the offsets of tap t's weights inside one output
// channel's [c, kk] block, ci·kk + t at t·c + ci.
func tapTable(c, kk int) []int32 {
	key := [2]int{c, kk}
	if t, ok := tapTables.Load(key); ok {
		return t.([]int32)
	}
	tab := make([]int32, kk*c)
	for t := range kk {
		for ci := range c {
			tab[t*c+ci] = int32(ci*kk + t)
		}
	}
	tapTables.Store(key, tab)
	return tab
}

var tapTables sync.Map // [2]int{c, kk} -> []int32

// shiftConv2d is conv2d for geometries where shiftConv holds. The
// activations and the weights are laid out pixel-major and tap-major once
// per call; the backward pass reuses them.
func shiftConv2d(g convGeom, x, w, b *Var, ep *epilogue) *Var {
	n, o, c := x.Value.Shape[0], w.Value.Shape[0], g.c
	P, kk := g.cols(), g.kh*g.kw
	ld := P * n // row length of the pixel-major matrices
	xp, wt := getBuf(c*ld), getBuf(kk*o*c)
	toPixelMajor(xp, x.Value.Data, n, c, P)
	tapMajor(wt, w.Value.Data, o, c, kk)
	yp := getBuf(o * ld)
	g.tapProducts(o, c, n, wt, false, xp, yp, true)
	out := newUninit(n, o, g.oh, g.ow)
	Y := out.Data
	fromPixelMajor(Y, yp, n, o, P, true)
	putBuf(yp)
	if b != nil || ep != nil {
		tensor.For(n, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				yi := Y[i*o*P : (i+1)*o*P]
				if b != nil {
					for oc, bv := range b.Value.Data {
						addConst(yi[oc*P:(oc+1)*P], bv)
					}
				}
				ep.applyPlanes(yi, P)
			}
		})
	}
	v := newConvVar(out, x, w, b, ep)
	if !v.requiresGrad {
		putBuf(xp)
		putBuf(wt)
		return v
	}
	v.backward = func() {
		defer putBuf(xp)
		defer putBuf(wt)
		G := v.Grad.Data
		gp := getBuf(o * ld)
		defer putBuf(gp)
		toPixelMajor(gp, G, n, o, P)
		if w.needs() { // dW_t = Σ over runs of dY[:, run] · X[:, run + shift]ᵀ
			dwt := getBuf(kk * o * c)
			defer putBuf(dwt)
			tensor.For(kk, 1, func(lo, hi int) {
				for t := lo; t < hi; t++ {
					beta := float32(0)
					runs := g.tapRuns(t/g.kw, t%g.kw)
					if len(runs) == 0 {
						clear(dwt[t*o*c : (t+1)*o*c])
					}
					for _, r := range runs {
						tensor.GemmSerial(false, true, o, c, r.n*n, 1, gp[r.q0*n:], ld, xp[(r.q0+r.shift)*n:], ld, beta, dwt[t*o*c:], c)
						beta = 1
					}
				}
			})
			gw, fresh := w.gradFresh()
			fromTapMajor(gw, dwt, o, c, kk, fresh)
		}
		if x.needs() { // dX[:, run + shift] += W_tᵀ · dY[:, run]
			dxp := getBuf(c * ld)
			defer putBuf(dxp)
			g.tapProducts(c, o, n, wt, true, gp, dxp, false)
			gx, fresh := x.gradFresh()
			fromPixelMajor(gx, dxp, n, c, P, fresh)
		}
		if b.needs() {
			addBiasGrad(b.grad(), G, n, o, P)
		}
	}
	return v
}

// addConst adds v to every element of s.
func addConst(s []float32, v float32) {
	for i := range s {
		s[i] += v
	}
}
