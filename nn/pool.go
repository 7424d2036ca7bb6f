package nn

import (
	"fmt"
	"sync"

	"github.com/spotfuse/spotfuse/internal/floatpool"
	"github.com/spotfuse/spotfuse/tensor"
)

// MaxPool2d takes the maximum over k×k windows with the given stride
// (no padding) of x [N,C,H,W].
func MaxPool2d(x *Var, k, stride int) *Var { return MaxPool2dPad(x, k, stride, 0) }

// MaxPool2dPad is MaxPool2d with implicit −Inf padding of pad on every side
// (torch's MaxPool2d(k, stride, padding); ResNet's stem uses 3, 2, 1).
func MaxPool2dPad(x *Var, k, stride, pad int) *Var {
	xs := x.Value.Shape
	if len(xs) != 4 || k < 1 || stride < 1 || pad < 0 || 2*pad > k || xs[2]+2*pad < k || xs[3]+2*pad < k {
		panic(fmt.Sprintf("nn: MaxPool2d(%d,%d,pad %d) of %v", k, stride, pad, xs))
	}
	planes, h, w := xs[0]*xs[1], xs[2], xs[3]
	oh, ow := (h+2*pad-k)/stride+1, (w+2*pad-k)/stride+1
	out := newUninit(xs[0], xs[1], oh, ow)
	X, Y := x.Value.Data, out.Data
	// The window maxima, separably: across each row's window columns, then
	// across the window's rows. With a gradient to come, the position of
	// each maximum is kept too: the first in row-major order (the first
	// NaN if any), as torch does.
	var arg []int32
	if GradEnabled() && x.requiresGrad {
		arg = make([]int32, out.Size())
	}
	// ResNet's 3×3, stride-2, pad-1 pooling of even-sized maps runs in
	// AVX-512 (kernels_amd64.s), the first maximum and its position found
	// the same way.
	simd := useAVX512 && k == 3 && stride == 2 && pad == 1 && h%2 == 0 && w%2 == 0 && w >= 2
	var idxPool sync.Pool
	return planewise(x, out, planes, func(p int) {
		xp, yp := X[p*h*w:(p+1)*h*w], Y[p*oh*ow:(p+1)*oh*ow]
		hm := getBuf(h * ow)
		defer putBuf(hm)
		if simd {
			hi, _ := idxPool.Get().([]int32)
			if hi == nil {
				hi = make([]int32, h*ow+oh*ow)
			}
			defer idxPool.Put(hi)
			ap := hi[h*ow:]
			if arg != nil {
				ap = arg[p*oh*ow : (p+1)*oh*ow]
			}
			for i := 0; i < h; i++ {
				maxRowS2AVX(&hm[i*ow], &hi[i*ow], &xp[i*w], ow)
			}
			for oi := 0; oi < oh; oi++ {
				r0 := max(2*oi-1, 0)
				maxColsAVX(&yp[oi*ow], &ap[oi*ow], &hm[0], &hi[0], ow, w, r0, min(2*oi+2, h)-r0)
			}
			return
		}
		if arg == nil {
			for i := 0; i < h; i++ {
				row, hr := xp[i*w:(i+1)*w], hm[i*ow:(i+1)*ow]
				for oj := range hr {
					j0, j1 := max(oj*stride-pad, 0), min(oj*stride-pad+k, w)
					m := row[j0]
					for _, v := range row[j0+1 : j1] {
						m = max(m, v)
					}
					hr[oj] = m
				}
			}
			for oi := 0; oi < oh; oi++ {
				i0, i1 := max(oi*stride-pad, 0), min(oi*stride-pad+k, h)
				yr := yp[oi*ow : (oi+1)*ow]
				copy(yr, hm[i0*ow:(i0+1)*ow])
				for ii := i0 + 1; ii < i1; ii++ {
					for oj, v := range hm[ii*ow : (ii+1)*ow] {
						yr[oj] = max(yr[oj], v)
					}
				}
			}
			return
		}
		hi := make([]int32, h*ow) // column of each row maximum
		for i := 0; i < h; i++ {
			row := xp[i*w : (i+1)*w]
			for oj := 0; oj < ow; oj++ {
				j0, j1 := max(oj*stride-pad, 0), min(oj*stride-pad+k, w)
				m := row[j0]
				for _, v := range row[j0+1 : j1] {
					m = max(m, v)
				}
				hm[i*ow+oj], hi[i*ow+oj] = m, int32(firstAt(row, j0, j1, 1, m))
			}
		}
		ap := arg[p*oh*ow : (p+1)*oh*ow]
		for oi := 0; oi < oh; oi++ {
			i0, i1 := max(oi*stride-pad, 0), min(oi*stride-pad+k, h)
			for oj := 0; oj < ow; oj++ {
				m := hm[i0*ow+oj]
				for ii := i0 + 1; ii < i1; ii++ {
					m = max(m, hm[ii*ow+oj])
				}
				at := firstAt(hm[oj:], i0, i1, ow, m)
				yp[oi*ow+oj] = m
				ap[oi*ow+oj] = int32(at*w) + hi[at*ow+oj]
			}
		}
	}, func(p int, G, gx []float32) {
		ap, gp, g := arg[p*oh*ow:(p+1)*oh*ow], gx[p*h*w:(p+1)*h*w], G[p*oh*ow:(p+1)*oh*ow]
		for o, at := range ap {
			gp[at] += g[o]
		}
	})
}

// firstAt returns the first index i in [lo, hi) with s[i·stride] == m, or
// holding a NaN when m is NaN; m is the maximum of those values. The scan
// runs backwards with conditional moves (a forward scan with a running
// maximum mispredicted a branch every other value).
func firstAt(s []float32, lo, hi, stride int, m float32) int {
	at := lo
	if m != m {
		for i := hi - 1; i >= lo; i-- {
			if v := s[i*stride]; v != v {
				at = i
			}
		}
		return at
	}
	for i := hi - 1; i >= lo; i-- {
		if s[i*stride] == m {
			at = i
		}
	}
	return at
}

// AvgPool2d averages over k×k windows with the given stride (no padding)
// of x [N,C,H,W].
func AvgPool2d(x *Var, k, stride int) *Var {
	xs := x.Value.Shape
	if len(xs) != 4 || k < 1 || stride < 1 || xs[2] < k || xs[3] < k {
		panic(fmt.Sprintf("nn: AvgPool2d(%d,%d) of %v", k, stride, xs))
	}
	planes, h, w := xs[0]*xs[1], xs[2], xs[3]
	oh, ow := (h-k)/stride+1, (w-k)/stride+1
	out := tensor.New(xs[0], xs[1], oh, ow)
	X, Y := x.Value.Data, out.Data
	inv := 1 / float32(k*k)
	return planewise(x, out, planes, func(p int) {
		xp := X[p*h*w:]
		for oi := 0; oi < oh; oi++ {
			for oj := 0; oj < ow; oj++ {
				var s float32
				for ki := 0; ki < k; ki++ {
					for _, a := range xp[(oi*stride+ki)*w+oj*stride : (oi*stride+ki)*w+oj*stride+k] {
						s += a
					}
				}
				Y[p*oh*ow+oi*ow+oj] = s * inv
			}
		}
	}, func(p int, G, gx []float32) {
		gp := gx[p*h*w:]
		for oi := 0; oi < oh; oi++ {
			for oj := 0; oj < ow; oj++ {
				g := G[p*oh*ow+oi*ow+oj] * inv
				for ki := 0; ki < k; ki++ {
					row := gp[(oi*stride+ki)*w+oj*stride : (oi*stride+ki)*w+oj*stride+k]
					for j := range row {
						row[j] += g
					}
				}
			}
		}
	})
}

// GlobalAvgPool averages each channel of x [N,C,H,W] giving [N,C].
func GlobalAvgPool(x *Var) *Var {
	xs := x.Value.Shape
	if len(xs) != 4 {
		panic(fmt.Sprintf("nn: GlobalAvgPool of %v", xs))
	}
	planes, hw := xs[0]*xs[1], xs[2]*xs[3]
	out := tensor.New(xs[0], xs[1])
	X, Y := x.Value.Data, out.Data
	inv := 1 / float32(hw)
	return planewise(x, out, planes, func(p int) {
		var s float32
		for _, a := range X[p*hw : (p+1)*hw] {
			s += a
		}
		Y[p] = s * inv
	}, func(p int, G, gx []float32) {
		g := G[p] * inv
		row := gx[p*hw : (p+1)*hw]
		for j := range row {
			row[j] += g
		}
	})
}

// Upsample2x doubles the height and width of x [N,C,H,W] by nearest-neighbour
// repetition (torch's Upsample(scale_factor=2, mode="nearest")).
func Upsample2x(x *Var) *Var {
	xs := x.Value.Shape
	if len(xs) != 4 {
		panic(fmt.Sprintf("nn: Upsample2x of %v", xs))
	}
	planes, h, w := xs[0]*xs[1], xs[2], xs[3]
	out := newUninit(xs[0], xs[1], 2*h, 2*w)
	X, Y := x.Value.Data, out.Data
	return planewise(x, out, planes, func(p int) {
		for i := 0; i < 2*h; i++ {
			src := X[p*h*w+(i/2)*w : p*h*w+(i/2+1)*w]
			dst := Y[p*4*h*w+i*2*w : p*4*h*w+(i+1)*2*w]
			for j, a := range src {
				dst[2*j], dst[2*j+1] = a, a
			}
		}
	}, func(p int, G, gx []float32) {
		for i := 0; i < 2*h; i++ {
			src := G[p*4*h*w+i*2*w : p*4*h*w+(i+1)*2*w]
			dst := gx[p*h*w+(i/2)*w : p*h*w+(i/2+1)*w]
			for j := range dst {
				dst[j] += src[2*j] + src[2*j+1]
			}
		}
	})
}

// planewise fills out from x by running fwd(p) for each of the planes
// (the N·C images of an [N,C,H,W] tensor) in parallel, and returns its
// Var. The backward pass runs bwd(p, G, gx) for each plane in parallel,
// with G the output's gradient and gx the gradient of x to accumulate into.
func planewise(x *Var, out *tensor.Tensor, planes int, fwd func(p int), bwd func(p int, G, gx []float32)) *Var {
	tensor.For(planes, 16, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			fwd(p)
		}
	})
	v := newPooledVar(out, x)
	if v.requiresGrad {
		v.backward = func() {
			G, gx := v.Grad.Data, x.grad()
			tensor.For(planes, 16, func(lo, hi int) {
				for p := lo; p < hi; p++ {
					bwd(p, G, gx)
				}
			})
		}
	}
	return v
}

// bufPool keeps float32 buffers by length (im2col matrices, partial
// gradients, op outputs, gradients of intermediate results), so that
// steady-state training reuses memory instead of allocating and zeroing it
// anew; it keeps at most 256 MB.
var bufPool = floatpool.New(256 << 20)

func getBuf(n int) []float32 { return bufPool.Get(n) }

func putBuf(s []float32) { bufPool.Put(s) }

// newUninit returns a tensor whose contents are undefined (a recycled
// buffer), for op outputs that assign every element.
func newUninit(shape ...int) *tensor.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return tensor.FromSlice(getBuf(n), shape...)
}
