package nn

import (
	"fmt"

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

// im2col writes the column matrix of image x [c,h,w] into col [c·kh·kw, oh·ow]:
// col[(ci,ki,kj), (oi,oj)] = x[ci, oi·s−p+ki, oj·s−p+kj] (0 outside).
func (g convGeom) im2col(col, x []float32) {
	P := g.cols()
	r := 0
	for ci := 0; ci < g.c; ci++ {
		xc := x[ci*g.h*g.w : (ci+1)*g.h*g.w]
		for ki := 0; ki < g.kh; ki++ {
			for kj := 0; kj < g.kw; kj++ {
				dst := col[r*P : (r+1)*P]
				r++
				// Output columns oj with 0 <= oj·s−p+kj < w.
				jlo, jhi := validRange(g.ow, g.w, g.stride, kj-g.pad)
				for oi := 0; oi < g.oh; oi++ {
					row := dst[oi*g.ow : (oi+1)*g.ow]
					ii := oi*g.stride - g.pad + ki
					if ii < 0 || ii >= g.h || jlo >= jhi {
						clear(row)
						continue
					}
					clear(row[:jlo])
					clear(row[jhi:])
					src := xc[ii*g.w:]
					off := jlo*g.stride + kj - g.pad
					d := row[jlo:jhi]
					switch g.stride {
					case 1:
						copy(d, src[off:off+len(d)])
					case 2:
						s := src[off : off+2*len(d)-1]
						for j := range d {
							d[j] = s[2*j]
						}
					default:
						s := src[off : off+g.stride*(len(d)-1)+1]
						for j := range d {
							d[j] = s[g.stride*j]
						}
					}
				}
			}
		}
	}
}

// col2im accumulates the column matrix col back into image dx [c,h,w]
// (the adjoint of im2col).
func (g convGeom) col2im(dx, col []float32) {
	P := g.cols()
	r := 0
	for ci := 0; ci < g.c; ci++ {
		xc := dx[ci*g.h*g.w : (ci+1)*g.h*g.w]
		for ki := 0; ki < g.kh; ki++ {
			for kj := 0; kj < g.kw; kj++ {
				src := col[r*P : (r+1)*P]
				r++
				jlo, jhi := validRange(g.ow, g.w, g.stride, kj-g.pad)
				for oi := 0; oi < g.oh; oi++ {
					ii := oi*g.stride - g.pad + ki
					if ii < 0 || ii >= g.h || jlo >= jhi {
						continue
					}
					row := src[oi*g.ow : (oi+1)*g.ow]
					dst := xc[ii*g.w:]
					off := jlo*g.stride + kj - g.pad
					r := row[jlo:jhi]
					switch g.stride {
					case 1:
						d := dst[off : off+len(r)]
						for j, v := range r {
							d[j] += v
						}
					case 2:
						d := dst[off : off+2*len(r)-1]
						for j, v := range r {
							d[2*j] += v
						}
					default:
						d := dst[off : off+g.stride*(len(r)-1)+1]
						for j, v := range r {
							d[g.stride*j] += v
						}
					}
				}
			}
		}
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

// Conv2d convolves x [N,C,H,W] with w [O,C,KH,KW] (torch layout) and adds
// b [O] (may be nil), with the given stride and zero padding. Each image is
// lowered to a column matrix (im2col) and multiplied by the weights with one
// GEMM; images are processed in parallel.
func Conv2d(x, w, b *Var, stride, pad int) *Var {
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
	K, P := g.rows(), g.cols()
	inSz, outSz := g.c*g.h*g.w, o*P
	out := tensor.New(n, o, g.oh, g.ow)
	X, W, Y := x.Value.Data, w.Value.Data, out.Data
	tensor.Parallel(n, 1, func(_, lo, hi int) {
		var col []float32
		if !g.identity() {
			col = getBuf(K * P)
			defer putBuf(col)
		}
		for i := lo; i < hi; i++ {
			xi, yi := X[i*inSz:(i+1)*inSz], Y[i*outSz:(i+1)*outSz]
			c := xi
			if col != nil {
				g.im2col(col, xi)
				c = col
			}
			beta := float32(0)
			if b != nil {
				for oc, bv := range b.Value.Data {
					fill(yi[oc*P:(oc+1)*P], bv)
				}
				beta = 1
			}
			tensor.GemmSerial(false, false, o, P, K, 1, W, K, c, P, beta, yi, P)
		}
	})
	v := newVar(out, x, w, b)
	if v.requiresGrad {
		v.backward = func() {
			G := v.Grad.Data
			var gx []float32
			if x.needs() {
				gx = x.grad()
			}
			nw := tensor.Workers(n, 1)
			var parts [][]float32
			if w.needs() {
				parts = make([][]float32, nw)
			}
			tensor.Parallel(n, 1, func(wk, lo, hi int) {
				var col, dcol, dw []float32
				if !g.identity() {
					col, dcol = getBuf(K*P), getBuf(K*P)
					defer putBuf(col)
					defer putBuf(dcol)
				}
				if parts != nil {
					dw = getBuf(o * K)
					clear(dw)
					parts[wk] = dw
				}
				for i := lo; i < hi; i++ {
					xi, gi := X[i*inSz:(i+1)*inSz], G[i*outSz:(i+1)*outSz]
					if dw != nil { // dW += dY·colᵀ
						c := xi
						if col != nil {
							g.im2col(col, xi)
							c = col
						}
						tensor.GemmSerial(false, true, o, K, P, 1, gi, P, c, P, 1, dw, K)
					}
					if gx != nil { // dcol = Wᵀ·dY, then col2im
						gxi := gx[i*inSz : (i+1)*inSz]
						if dcol == nil {
							tensor.GemmSerial(true, false, K, P, o, 1, W, K, gi, P, 1, gxi, P)
						} else {
							tensor.GemmSerial(true, false, K, P, o, 1, W, K, gi, P, 0, dcol, P)
							g.col2im(gxi, dcol)
						}
					}
				}
			})
			if parts != nil {
				gw := w.grad()
				for _, p := range parts {
					if p == nil {
						continue
					}
					for j, a := range p {
						gw[j] += a
					}
					putBuf(p)
				}
			}
			if b.needs() {
				gb := b.grad()
				for i := 0; i < n; i++ {
					for oc := 0; oc < o; oc++ {
						var s float32
						for _, a := range G[i*outSz+oc*P : i*outSz+(oc+1)*P] {
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
	tensor.Parallel(n, 1, func(_, lo, hi int) {
		col := getBuf(K * P)
		defer putBuf(col)
		for i := lo; i < hi; i++ {
			yi := Y[i*outSz : (i+1)*outSz]
			// col = Wᵀ·x  ([K, cin]·[cin, P])
			tensor.GemmSerial(true, false, K, P, cin, 1, W, K, X[i*inSz:], P, 0, col, P)
			g.col2im(yi, col)
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
			var gx []float32
			if x.needs() {
				gx = x.grad()
			}
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
					g.im2col(col, G[i*outSz:(i+1)*outSz])
					if gx != nil { // dx = W·im2col(dY)
						tensor.GemmSerial(false, false, cin, P, K, 1, W, K, col, P, 1, gx[i*inSz:], P)
					}
					if dw != nil { // dW += x·im2col(dY)ᵀ
						tensor.GemmSerial(false, true, cin, K, P, 1, X[i*inSz:], P, col, P, 1, dw, K)
					}
				}
			})
			if parts != nil {
				gw := w.grad()
				for _, p := range parts {
					if p == nil {
						continue
					}
					for j, a := range p {
						gw[j] += a
					}
					putBuf(p)
				}
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
