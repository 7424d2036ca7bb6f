package nn

import (
	"fmt"
	"sync"

	"github.com/spotfuse/spotfuse/sgemm"
	"github.com/spotfuse/spotfuse/tensor"
)

// convGeom is the geometry of a 2-D convolution over one image.
type convGeom struct {
	c, h, w     int // input channels and size
	kh, kw      int
	stride, pad int
	oh, ow      int // output size
}

func newConvGeom(c, h, w, kh, kw, stride, pad int) convGeom {
	g := convGeom{c: c, h: h, w: w, kh: kh, kw: kw, stride: stride, pad: pad}
	g.oh = (h+2*pad-kh)/stride + 1
	g.ow = (w+2*pad-kw)/stride + 1
	return g
}

// rows is the number of rows of the column matrix (c·kh·kw), cols its columns (oh·ow).
func (g convGeom) rows() int { return g.c * g.kh * g.kw }
func (g convGeom) cols() int { return g.oh * g.ow }

// identity reports whether im2col is the identity (1×1, stride 1, no padding).
func (g convGeom) identity() bool {
	return g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0
}

// narrow outputs (deep layers on small images) have rows of a few pixels,
// where per-row bookkeeping costs more than the copy: their column matrices
// are gathered through a precomputed index table instead (AVX-512 gathers,
// a whole group of images at once). Width 8 joined them once the input
// gradient came lazily from BatchNorm (switching 8 to the table inside one
// process, 15 times each way: resnet18 training 1.02–1.06×, conv4
// 1.02×); for width 16 the row copies stay faster (0.97–1.00×).
var narrowWidth = 16

// gatherTable returns, for a narrow geometry, the input offset of every
// column-matrix element (−1 for padding), computed once per geometry.
func (g convGeom) gatherTable() []int32 {
	if t, ok := gatherTables.Load(g); ok {
		return t.([]int32)
	}
	P := g.cols()
	t := make([]int32, g.rows()*P)
	r := 0
	for ci := 0; ci < g.c; ci++ {
		for ki := 0; ki < g.kh; ki++ {
			for kj := 0; kj < g.kw; kj++ {
				for oi := 0; oi < g.oh; oi++ {
					for oj := 0; oj < g.ow; oj++ {
						ii, jj := oi*g.stride-g.pad+ki, oj*g.stride-g.pad+kj
						off := int32(-1)
						if ii >= 0 && ii < g.h && jj >= 0 && jj < g.w {
							off = int32((ci*g.h+ii)*g.w + jj)
						}
						t[r*P+oi*g.ow+oj] = off
					}
				}
				r++
			}
		}
	}
	gatherTables.Store(g, t)
	return t
}

var gatherTables sync.Map // convGeom -> []int32

// groupTable is gatherTable for nb images lowered side by side (rows of
// nb·P columns, image j's input nb·c·h·w values after the first's).
func (g convGeom) groupTable(nb int) []int32 {
	if nb == 1 {
		return g.gatherTable()
	}
	type key struct {
		g  convGeom
		nb int
	}
	if t, ok := groupTables.Load(key{g, nb}); ok {
		return t.([]int32)
	}
	one := g.gatherTable()
	K, P, in := g.rows(), g.cols(), int32(g.c*g.h*g.w)
	t := make([]int32, K*nb*P)
	for r := 0; r < K; r++ {
		for j := 0; j < nb; j++ {
			for q, off := range one[r*P : (r+1)*P] {
				if off >= 0 {
					off += int32(j) * in
				}
				t[(r*nb+j)*P+q] = off
			}
		}
	}
	groupTables.Store(key{g, nb}, t)
	return t
}

var groupTables sync.Map // {convGeom, nb} -> []int32

// im2col writes the column matrix of image x [c,h,w] into col [c·kh·kw, oh·ow]
// whose rows are ld apart: col[(ci,ki,kj)·ld + (oi,oj)] = x[ci, oi·s−p+ki, oj·s−p+kj]
// (0 outside the image). Each row is a block of strided input rows
// (stridedRows: one assembly call per row of the column matrix).
func (g convGeom) im2col(col []float32, ld int, x []float32) {
	P := g.cols()
	if g.ow < narrowWidth {
		t := g.gatherTable()
		x = x[:g.c*g.h*g.w] // the table's offsets are below this
		if ld == P {
			gatherIdx(col[:g.rows()*P], x, t)
			return
		}
		for r := 0; r < g.rows(); r++ {
			gatherIdx(col[r*ld:r*ld+P], x, t[r*P:(r+1)*P])
		}
		return
	}
	r := 0
	for ci := 0; ci < g.c; ci++ {
		plane := x[ci*g.h*g.w : (ci+1)*g.h*g.w]
		for ki := 0; ki < g.kh; ki++ {
			// Output rows [ilo, ihi) read input rows inside the image.
			ilo, ihi := validRange(g.oh, g.h, g.stride, ki-g.pad)
			for kj := 0; kj < g.kw; kj++ {
				dst := col[r*ld : r*ld+P]
				r++
				jlo, jhi := validRange(g.ow, g.w, g.stride, kj-g.pad)
				if ilo >= ihi || jlo >= jhi {
					clear(dst)
					continue
				}
				clear(dst[:ilo*g.ow])
				clear(dst[ihi*g.ow:])
				if jlo > 0 || jhi < g.ow { // at most pad columns on each side
					for oi := ilo; oi < ihi; oi++ {
						row := dst[oi*g.ow : (oi+1)*g.ow]
						for j := range jlo {
							row[j] = 0
						}
						for j := jhi; j < len(row); j++ {
							row[j] = 0
						}
					}
				}
				src := plane[(ilo*g.stride-g.pad+ki)*g.w+jlo*g.stride-g.pad+kj:]
				stridedRows(dst[ilo*g.ow+jlo:], g.ow, src, g.stride*g.w, g.stride, ihi-ilo, jhi-jlo)
			}
		}
	}
}

// col2im accumulates the column matrix col (rows ld apart) back into image
// dx [c,h,w] (the adjoint of im2col); with assign, dx's old contents are
// ignored.
func (g convGeom) col2im(dx, col []float32, ld int, assign bool) {
	P := g.cols()
	if g.ow < narrowWidth && ld == P {
		g.col2imTable(dx, col, 1, assign, false)
		return
	}
	center := -1 // a kernel offset whose column-matrix rows are whole planes
	if assign && g.sameCenter() {
		center = g.kh/2*g.kw + g.kw/2
		for ci := 0; ci < g.c; ci++ {
			r := ci*g.kh*g.kw + center
			copy(dx[ci*P:(ci+1)*P], col[r*ld:r*ld+P])
		}
	} else if assign {
		clear(dx[:g.c*g.h*g.w])
	}
	r := 0
	for ci := 0; ci < g.c; ci++ {
		plane := dx[ci*g.h*g.w : (ci+1)*g.h*g.w]
		for ki := 0; ki < g.kh; ki++ {
			ilo, ihi := validRange(g.oh, g.h, g.stride, ki-g.pad)
			for kj := 0; kj < g.kw; kj++ {
				src := col[r*ld : r*ld+P]
				r++
				if ki*g.kw+kj == center {
					continue
				}
				jlo, jhi := validRange(g.ow, g.w, g.stride, kj-g.pad)
				if ilo >= ihi || jlo >= jhi {
					continue
				}
				d := plane[(ilo*g.stride-g.pad+ki)*g.w+jlo*g.stride-g.pad+kj:]
				stridedRowsAdd(d, g.stride*g.w, src[ilo*g.ow+jlo:], g.ow, g.stride, ihi-ilo, jhi-jlo)
			}
		}
	}
}

// col2imTable is col2im for narrow outputs, through the index table of nb
// images lowered side by side (dx holds the nb images, col has rows of nb·P
// values): one AVX-512 scatter-add per row. With assign and a centred
// kernel (sameCenter), the centre's rows, which cover every pixel once,
// are copied first and left out of the scatter instead of clearing dx.
// With par, channels are split between workers (a channel's rows of col
// write only that channel's planes).
func (g convGeom) col2imTable(dx, col []float32, nb int, assign, par bool) {
	t, P, in, row := g.groupTable(nb), g.cols(), g.c*g.h*g.w, nb*g.cols()
	kk, hw := g.kh*g.kw, g.h*g.w
	center := -1
	if assign && g.sameCenter() {
		center = g.kh/2*g.kw + g.kw/2
	}
	if !par && center < 0 {
		if assign {
			clear(dx[:nb*in])
		}
		scatterAddIdx(dx, col, t, row)
		return
	}
	channels := func(lo, hi int) {
		for ci := lo; ci < hi; ci++ {
			c0, c1 := ci*kk*row, (ci+1)*kk*row
			if center < 0 {
				if assign {
					for j := 0; j < nb; j++ {
						clear(dx[j*in+ci*hw : j*in+(ci+1)*hw])
					}
				}
				scatterAddIdx(dx, col[c0:c1], t[c0:c1], row)
				continue
			}
			r := ci*kk + center
			for j := 0; j < nb; j++ {
				copy(dx[j*in+ci*P:j*in+(ci+1)*P], col[r*row+j*P:r*row+(j+1)*P])
			}
			if center > 0 {
				scatterAddIdx(dx, col[c0:r*row], t[c0:r*row], row)
			}
			if center < kk-1 {
				scatterAddIdx(dx, col[(r+1)*row:c1], t[(r+1)*row:c1], row)
			}
		}
	}
	forIf(par, g.c, 1, channels)
}

// sameCenter reports whether the convolution keeps the image size with a
// centred odd kernel (stride 1, pad = k/2): then the kernel's centre maps
// every output pixel onto the input pixel at the same place, and its rows
// of the column matrix are whole input planes.
func (g convGeom) sameCenter() bool {
	return g.stride == 1 && g.kh == g.kw && g.kh%2 == 1 && g.pad == g.kh/2
}

// forIf runs fn over [0, n) with tensor.For when par is set, else in one
// call on this goroutine (work already inside a parallel loop).
func forIf(par bool, n, minPer int, fn func(lo, hi int)) {
	if par {
		tensor.For(n, minPer, fn)
	} else if n > 0 {
		fn(0, n)
	}
}

// validRange returns the output indices [lo, hi) in [0, n) for which
// o·stride + shift falls inside [0, size).
func validRange(n, size, stride, shift int) (int, int) {
	lo := 0
	if shift < 0 {
		lo = (-shift + stride - 1) / stride
	}
	hi := 0
	if size-1-shift >= 0 {
		hi = (size-1-shift)/stride + 1
	}
	return min(lo, n), min(hi, n)
}

// dotWeightGrad reports whether the weight gradient dY·colᵀ of a
// convolution with o output channels and K = c·kh·kw goes through
// sgemm.DotNT: BLAS runs a product only K (27 for a first layer on RGB)
// columns wide at ~13 GFLOP/s; with DotNT conv4's training step measured
// 1.02–1.11× faster.
func dotWeightGrad(o, K int) bool {
	return useDotNT && sgemm.Available() && o >= 4 && K >= 4 && K <= 64
}

// useDotNT enables dotWeightGrad (tests compare both paths).
var useDotNT = true

// minGemmCols is the smallest GEMM width worth one call: convolutions with
// small outputs (deep layers) lower several images side by side.
var minGemmCols = 256

// Conv2d convolves x [N,C,H,W] with w [O,C,KH,KW] (torch layout) and adds
// b [O] (may be nil), with the given stride and zero padding.
//
// Images are lowered to column matrices and multiplied by the weights
// with one GEMM per group of images; a group holds one image unless the
// output map is smaller than minGemmCols pixels, then enough images to
// fill it. Groups are processed in parallel (one serial GEMM each) when
// there are enough of them, otherwise one after another with a parallel
// GEMM. With sgemm, the column matrix is never written whole: its panels
// are gathered from the images inside the product (packPanels, colT);
// im2col is the path of the other backends.
func Conv2d(x, w, b *Var, stride, pad int) *Var { return conv2d(x, w, b, stride, pad, nil, false) }

// epilogue is a per-output-channel affine map (and ReLU) applied to a
// convolution's output while it is still in cache: inference-mode
// BatchNorm folded into the convolution.
type epilogue struct {
	scale, shift []float32
	relu         bool
}

// apply maps y (one output channel's values) in place.
func (e *epilogue) apply(y []float32, oc int) {
	affineInto(y, y, e.scale[oc], e.shift[oc], e.relu)
}

// applyPlanes maps every channel plane (P values each) of one image's
// output y in place; a nil epilogue does nothing.
func (e *epilogue) applyPlanes(y []float32, P int) {
	if e == nil {
		return
	}
	for oc := range e.scale {
		e.apply(y[oc*P:(oc+1)*P], oc)
	}
}

// fillBias sets every channel plane (P values) of one image's output y to
// its bias and returns the GEMM beta that keeps it (1), or 0 without bias.
func fillBias(y, bias []float32, P int) float32 {
	if bias == nil {
		return 0
	}
	for oc, bv := range bias {
		fill(y[oc*P:(oc+1)*P], bv)
	}
	return 1
}

// conv2d is Conv2d with an epilogue (inference) and, with stats, the
// per-plane statistics of its output for the BatchNorm that follows
// (planeStats), computed while each image's output is in cache.
func conv2d(x, w, b *Var, stride, pad int, ep *epilogue, stats bool) *Var {
	xs, ws := x.Value.Shape, w.Value.Shape
	if len(xs) != 4 || len(ws) != 4 || xs[1] != ws[1] {
		panic(fmt.Sprintf("nn: Conv2d input %v with weight %v", xs, ws))
	}
	if stride < 1 || pad < 0 {
		panic(fmt.Sprintf("nn: Conv2d stride %d pad %d", stride, pad))
	}
	n, o := xs[0], ws[0]
	g := newConvGeom(xs[1], xs[2], xs[3], ws[2], ws[3], stride, pad)
	if g.oh < 1 || g.ow < 1 {
		panic(fmt.Sprintf("nn: Conv2d kernel %v larger than padded input %v", ws, xs))
	}
	if b != nil && b.Value.Size() != o {
		panic(fmt.Sprintf("nn: Conv2d bias %v for %d channels", b.Value.Shape, o))
	}
	if g.shiftConv() {
		if x.deferred != nil {
			panic("nn: an unstored BatchNorm output reaches a tap-by-tap convolution") // ConvBNChain stores those
		}
		return shiftConv2d(g, x, w, b, ep)
	}
	K, P := g.rows(), g.cols()
	inSz, outSz := g.c*g.h*g.w, o*P
	G := min(n, max(1, (minGemmCols+P-1)/P)) // images per group
	groups := (n + G - 1) / G
	out := newUninit(n, o, g.oh, g.ow)
	X, W, Y := x.Value.Data, w.Value.Data, out.Data
	var st []float64 // planeStats of the output, when asked for and worth it
	if stats && ownPlanes(P) && groups >= tensor.Threads() {
		st = make([]float64, 3*n*o)
	}

	// images returns images [i0, i1) of x's value and a function to call
	// when done with them: x's own data, or for a BatchNorm output left
	// unstored (x.deferred), the images computed into a buffer.
	images := func(i0, i1 int) ([]float32, func()) {
		if x.deferred == nil {
			return X[i0*inSz : i1*inSz], func() {}
		}
		b := getBuf((i1 - i0) * inSz)
		return x.deferred.images(b, i0, i1), func() { putBuf(b) }
	}
	// lower writes the column matrix of the nb images xs into col (ld =
	// nb·P), or returns xs itself when that is the column matrix.
	lower := func(col, xs []float32, nb int, par bool) []float32 {
		if nb == 1 && g.identity() {
			return xs
		}
		if nb > 1 && g.ow < narrowWidth {
			// Narrow outputs: one gather over the group's images.
			t := g.groupTable(nb)
			forIf(par, K, 8, func(lo, hi int) {
				gatherIdx(col[lo*nb*P:hi*nb*P], xs, t[lo*nb*P:hi*nb*P])
			})
			return col[:K*nb*P]
		}
		each := func(lo, hi int) {
			for j := lo; j < hi; j++ {
				g.im2col(col[j*P:], nb*P, xs[j*inSz:(j+1)*inSz])
			}
		}
		forIf(par, nb, 1, each)
		return col[:K*nb*P]
	}
	gemm := func(par bool) func(bool, bool, int, int, int, float32, []float32, int, []float32, int, float32, []float32, int) {
		if par {
			return tensor.Gemm
		}
		return tensor.GemmSerial
	}
	// Run fn over the groups: in parallel (serial GEMMs, groups claimed
	// as workers free up) when there are enough groups, else in order with
	// parallel kernels inside.
	overGroups := func(fn func(grp int, par bool)) {
		if groups >= tensor.Threads() {
			tensor.For(groups, 1, func(lo, hi int) {
				for grp := lo; grp < hi; grp++ {
					fn(grp, false)
				}
			})
			return
		}
		for grp := 0; grp < groups; grp++ {
			fn(grp, true)
		}
	}
	var bias []float32
	if b != nil {
		bias = b.Value.Data
	}
	if g.panelConv(n) {
		panelConvForward(g, n, o, images, W, Y, bias, ep, st)
	} else {
		// With serial groups, the weights are packed for sgemm once.
		var pw *sgemm.PackedA
		if sgemm.Available() && groups >= tensor.Threads() {
			pw = sgemm.PackA(false, o, K, 1, W, K)
			defer pw.Release()
		}
		gemmW := func(par bool, cols int, c []float32, beta float32, y []float32) {
			if pw != nil && !par {
				pw.MulRows(cols, c, cols, beta, y, cols)
				return
			}
			gemm(par)(false, false, o, cols, K, 1, W, K, c, cols, beta, y, cols)
		}
		overGroups(func(grp int, par bool) {
			i0, i1 := grp*G, min(n, (grp+1)*G)
			nb := i1 - i0
			xs, done := images(i0, i1)
			defer done()
			// mul computes cols columns of W·col into y.
			var mul func(cols int, beta float32, y []float32)
			if pw != nil && !par && g.gatherForward() {
				pk := g.newColT(xs, nb, nil)
				mul = func(cols int, beta float32, y []float32) { pw.Mul(cols, 1, pk.packCols, beta, y, cols) }
			} else {
				col := getBuf(K * G * P)
				defer putBuf(col)
				c := lower(col, xs, nb, par)
				mul = func(cols int, beta float32, y []float32) { gemmW(par, cols, c, beta, y) }
			}
			if nb == 1 {
				yi := Y[i0*outSz : i1*outSz]
				mul(P, fillBias(yi, bias, P), yi)
				ep.applyPlanes(yi, P)
				planeStatsOf(st, yi, i0, o, P)
				return
			}
			tmp := getBuf(o * G * P)
			defer putBuf(tmp)
			mul(nb*P, 0, tmp[:o*nb*P])
			forIf(par, nb, 1, func(lo, hi int) {
				scatterGroup(Y[(i0+lo)*outSz:(i0+hi)*outSz], tmp[lo*P:], o, hi-lo, nb*P, P, bias, ep)
				for i := i0 + lo; i < i0+hi; i++ {
					planeStatsOf(st, Y[i*outSz:(i+1)*outSz], i, o, P)
				}
			})
		})
	}
	v := newConvVar(out, x, w, b, ep)
	v.planeStats = st
	if v.requiresGrad {
		v.lazyOK = b == nil // the bias gradient needs dY whole
		v.backward = func() {
			lazy := v.lazy
			var Gd []float32
			if lazy == nil {
				Gd = v.Grad.Data
			}
			var gx []float32
			fresh := false
			if x.needs() {
				gx, fresh = x.gradFresh()
			}
			par := groups < tensor.Threads()
			// x's whole gradient is written here, one group of images at a
			// time: a BatchNorm that produced x takes its sums from each
			// group while it is in cache.
			sums := x.planeGrad
			if gx == nil || !fresh || x.uses != 1 || par {
				sums = nil
			}
			// The weight gradient is summed per chunk of groups (fixed
			// chunks, claimed by whichever worker is free), then over the
			// chunks in order: the result does not depend on the schedule.
			bounds := []int{0, groups}
			if groups >= tensor.Threads() {
				bounds = gradChunks(groups, o*K)
			}
			chunks := len(bounds) - 1
			// With serial groups, Wᵀ is packed for sgemm once.
			var pwT *sgemm.PackedA
			if gx != nil && !par && sgemm.Available() {
				pwT = sgemm.PackA(true, K, o, 1, W, K)
				defer pwT.Release()
			}
			// dataGrad computes cols columns of Wᵀ·dY into out.
			dataGrad := func(cols int, dy []float32, beta float32, out []float32) {
				if pwT != nil {
					pwT.MulRows(cols, dy, cols, beta, out, cols)
					return
				}
				gemm(par)(true, false, K, cols, o, 1, W, K, dy, cols, beta, out, cols)
			}
			// parts[ch] is chunk ch's weight gradient; unset[ch] says it
			// holds nothing yet (its first product assigns instead of
			// adding, so no buffer is cleared first).
			var parts [][]float32
			var unset []bool
			if w.needs() {
				parts, unset = make([][]float32, chunks), make([]bool, chunks)
				if chunks == 1 {
					parts[0], unset[0] = w.gradFresh()
				}
			}
			backGroup := func(ch, grp int) {
				i0, i1 := grp*G, min(n, (grp+1)*G)
				nb := i1 - i0
				// dY of the group as [o, nb·P].
				var dy []float32
				switch {
				case lazy != nil: // computed here, into a buffer still in cache
					dy = getBuf(o * G * P)[:o*nb*P]
					defer putBuf(dy[:o*G*P])
					forIf(par, nb, 1, func(lo, hi int) { lazy.fill(dy[lo*P:], nb*P, i0+lo, i0+hi) })
				case nb == 1:
					dy = Gd[i0*outSz : i1*outSz]
				default:
					dy = getBuf(o * G * P)[:o*nb*P]
					defer putBuf(dy[:o*G*P])
					images := func(lo, hi int) {
						for j := lo; j < hi; j++ {
							for oc := 0; oc < o; oc++ {
								copy(dy[oc*nb*P+j*P:oc*nb*P+(j+1)*P], Gd[(i0+j)*outSz+oc*P:(i0+j)*outSz+(oc+1)*P])
							}
						}
					}
					forIf(par, nb, 1, images)
				}
				if parts != nil { // dW += dY·colᵀ
					if parts[ch] == nil {
						parts[ch], unset[ch] = getBuf(o*K), true
					}
					beta := float32(1)
					if unset[ch] {
						beta = 0
					}
					if !par && g.gatherGrad(o) {
						// An unstored input is mapped as it is gathered.
						src, af := X, x.deferred
						if af != nil {
							src = af.src
						}
						pa := sgemm.PackA(false, o, nb*P, 1, dy, nb*P)
						pa.Mul(K, 1, g.newColT(src[i0*inSz:i1*inSz], nb, af).pack, beta, parts[ch], K)
						pa.Release()
					} else {
						xs, done := images(i0, i1)
						defer done()
						col := getBuf(K * G * P)
						defer putBuf(col)
						c := lower(col, xs, nb, par)
						if !par && dotWeightGrad(o, K) {
							if unset[ch] {
								clear(parts[ch])
							}
							sgemm.DotNT(o, K, nb*P, dy, nb*P, c, nb*P, parts[ch], K)
						} else {
							gemm(par)(false, true, o, K, nb*P, 1, dy, nb*P, c, nb*P, beta, parts[ch], K)
						}
					}
					unset[ch] = false
				}
				if gx != nil { // dcol = Wᵀ·dY, then col2im
					if sums != nil {
						defer func() {
							for i := i0; i < i1; i++ {
								sums.fill(i, gx[i*inSz:(i+1)*inSz])
							}
						}()
					}
					if nb == 1 && g.identity() {
						beta := float32(1)
						if fresh {
							beta = 0
						}
						dataGrad(P, dy, beta, gx[i0*inSz:i1*inSz])
						return
					}
					dcol := getBuf(K * G * P)
					defer putBuf(dcol)
					dataGrad(nb*P, dy, 0, dcol)
					if g.ow < narrowWidth { // one scatter over the group's images
						g.col2imTable(gx[i0*inSz:i1*inSz], dcol, nb, fresh, par)
						return
					}
					for j := 0; j < nb; j++ {
						g.col2im(gx[(i0+j)*inSz:(i0+j+1)*inSz], dcol[j*P:], nb*P, fresh)
					}
				}
			}
			tensor.Each(chunks, func(ch int) {
				for grp := bounds[ch]; grp < bounds[ch+1]; grp++ {
					backGroup(ch, grp)
				}
			})
			if sums != nil {
				sums.ready = true
			}
			if chunks > 1 && parts != nil {
				addParts(w, parts)
			}
			if b.needs() {
				addBiasGrad(b.grad(), Gd, n, o, P)
			}
		}
	}
	return v
}

// newConvVar is newPooledVar for a convolution's output, which may carry
// an epilogue (folded BatchNorm) only outside a recorded graph.
func newConvVar(out *tensor.Tensor, x, w, b *Var, ep *epilogue) *Var {
	v := newPooledVar(out, x, w, b)
	if ep != nil && v.requiresGrad {
		panic("nn: conv2d epilogue in a recorded graph")
	}
	return v
}

// addBiasGrad adds to gb [o] the sums of every output channel's planes of
// the gradient g [n, o, P].
func addBiasGrad(gb, g []float32, n, o, P int) {
	for i := 0; i < n; i++ {
		for oc := 0; oc < o; oc++ {
			gb[oc] += float32(sum32(g[(i*o+oc)*P : (i*o+oc+1)*P]))
		}
	}
}

// ConvTranspose2d is the transposed convolution (the gradient of Conv2d with
// respect to its input) of x [N,Cin,H,W] with w [Cin,Cout,KH,KW] (torch
// layout) plus b [Cout] (may be nil). The output is
// [N, Cout, (H−1)·stride − 2·pad + KH, (W−1)·stride − 2·pad + KW].
func ConvTranspose2d(x, w, b *Var, stride, pad int) *Var {
	xs, ws := x.Value.Shape, w.Value.Shape
	if len(xs) != 4 || len(ws) != 4 || xs[1] != ws[0] {
		panic(fmt.Sprintf("nn: ConvTranspose2d input %v with weight %v", xs, ws))
	}
	if stride < 1 || pad < 0 {
		panic(fmt.Sprintf("nn: ConvTranspose2d stride %d pad %d", stride, pad))
	}
	n, cin, cout := xs[0], ws[0], ws[1]
	oh := (xs[2]-1)*stride - 2*pad + ws[2]
	ow := (xs[3]-1)*stride - 2*pad + ws[3]
	if oh < 1 || ow < 1 {
		panic(fmt.Sprintf("nn: ConvTranspose2d output size %dx%d", oh, ow))
	}
	// The geometry of the forward convolution whose input gradient this is.
	g := newConvGeom(cout, oh, ow, ws[2], ws[3], stride, pad)
	K, P := g.rows(), g.cols() // K = cout·kh·kw, P = H·W
	if g.oh != xs[2] || g.ow != xs[3] {
		panic(fmt.Sprintf("nn: ConvTranspose2d geometry mismatch for input %v", xs))
	}
	if b != nil && b.Value.Size() != cout {
		panic(fmt.Sprintf("nn: ConvTranspose2d bias %v for %d channels", b.Value.Shape, cout))
	}
	inSz, outSz := cin*P, cout*oh*ow
	out := tensor.New(n, cout, oh, ow)
	X, W, Y := x.Value.Data, w.Value.Data, out.Data
	tensor.For(n, 1, func(lo, hi int) {
		col := getBuf(K * P)
		defer putBuf(col)
		for i := lo; i < hi; i++ {
			yi := Y[i*outSz : (i+1)*outSz]
			// col = Wᵀ·x  ([K, cin]·[cin, P])
			tensor.GemmSerial(true, false, K, P, cin, 1, W, K, X[i*inSz:], P, 0, col, P)
			g.col2im(yi, col, P, false)
			if b != nil {
				for oc, bv := range b.Value.Data {
					for j := range yi[oc*oh*ow : (oc+1)*oh*ow] {
						yi[oc*oh*ow+j] += bv
					}
				}
			}
		}
	})
	v := newVar(out, x, w, b)
	if v.requiresGrad {
		v.backward = func() {
			G := v.Grad.Data
			gx := x.gradIfNeeded()
			nw := tensor.Workers(n, 1)
			var parts [][]float32
			if w.needs() {
				parts = make([][]float32, nw)
			}
			tensor.Parallel(n, 1, func(wk, lo, hi int) {
				col := getBuf(K * P)
				defer putBuf(col)
				var dw []float32
				if parts != nil {
					dw = getBuf(cin * K)
					clear(dw)
					parts[wk] = dw
				}
				for i := lo; i < hi; i++ {
					g.im2col(col, P, G[i*outSz:(i+1)*outSz])
					if gx != nil { // dx = W·im2col(dY)
						tensor.GemmSerial(false, false, cin, P, K, 1, W, K, col, P, 1, gx[i*inSz:], P)
					}
					if dw != nil { // dW += x·im2col(dY)ᵀ
						tensor.GemmSerial(false, true, cin, K, P, 1, X[i*inSz:], P, col, P, 1, dw, K)
					}
				}
			})
			if parts != nil {
				addParts(w, parts)
			}
			if b.needs() {
				gb := b.grad()
				plane := oh * ow
				for i := 0; i < n; i++ {
					for oc := 0; oc < cout; oc++ {
						var s float32
						for _, a := range G[i*outSz+oc*plane : i*outSz+(oc+1)*plane] {
							s += a
						}
						gb[oc] += s
					}
				}
			}
		}
	}
	return v
}

func fill(s []float32, v float32) {
	for i := range s {
		s[i] = v
	}
}

// gradChunks splits a convolution's groups into the fixed chunks whose
// weight gradients ([o·K] each, size values) are summed separately, and
// returns their bounds (chunk ch is groups [b[ch], b[ch+1])). Chunks
// shrink, each the remaining groups over twice the workers, down to
// single groups, so that workers taking them in order as they free up
// finish together (equal chunks left one worker idle for up to a chunk:
// 3–6 % of conv4's backward); with large gradients the smallest chunk grows
// until the partial sums fit in about 8 MB.
func gradChunks(groups, size int) []int {
	t := tensor.Threads()
	most := max(2*t, (2<<20)/size) // chunks whose partial sums fit
	for least := 1; ; least++ {
		b := []int{0}
		for lo := 0; lo < groups; {
			lo = min(groups, lo+max(least, (groups-lo+2*t-1)/(2*t)))
			b = append(b, lo)
		}
		if len(b)-1 <= most || least >= groups {
			return b
		}
	}
}

// addParts adds the partial weight gradients parts (nil where a chunk had
// none) into w's gradient, in order (elements in parallel; a fresh
// gradient takes the first part as it is), and returns their buffers to
// the pool.
func addParts(w *Var, parts [][]float32) {
	gw, fresh := w.gradFresh()
	tensor.For(len(gw), elemChunk/4, func(lo, hi int) {
		d := gw[lo:hi]
		first := fresh
		for _, p := range parts {
			switch {
			case p == nil:
			case first:
				copy(d, p[lo:hi])
				first = false
			default:
				stridedRowsAdd(d, 0, p[lo:hi], 0, 1, 1, len(d))
			}
		}
		if first { // no part at all
			clear(d)
		}
	})
	for _, p := range parts {
		putBuf(p)
	}
}
