package nn

import (
	"github.com/spotfuse/spotfuse/sgemm"
	"github.com/spotfuse/spotfuse/tensor"
)

// Convolutions whose output rows tile the 32-column panels of sgemm's
// micro-kernel (output width a multiple of 32; 8 or 16 when panelNarrow) skip the column
// matrix: the weights are packed once per call and each image's panels are
// gathered straight from the image (packPanels) inside the product.

// usePanelConv enables the panel path (tests compare it with im2col).
var usePanelConv = true

// panelConv reports whether the forward convolution of n images of
// geometry g goes through packPanels and sgemm.
func (g convGeom) panelConv(n int) bool {
	if !usePanelConv || !sgemm.Available() || n < tensor.Threads() || g.cols() < 32 {
		return false
	}
	return g.ow%32 == 0 || (panelNarrow && (g.ow == 8 || g.ow == 16))
}

// panelNarrow enables the panel path for output widths 8 and 16 too: off,
// since measured slower there than grouping images for BLAS (conv4's
// 16→8 layer 0.78×, its 32→16 layer 1.04×); tests still cover it.
var panelNarrow = false

// panelAlign is the period, in output pixels, of the panel layout.
func (g convGeom) panelAlign() int { return max(g.ow, 32) }

// packPanels is the sgemm.BPacker of image x [c,h,w]: rows [pc, pc+kb) of
// its column matrix (im2col), output pixels [jc, jc+nb), in 32-pixel
// panels. jc and nb are multiples of the output width.
func (g convGeom) packPanels(dst, x []float32, pc, jc, kb, nb int) {
	ow, s := g.ow, g.stride
	oiStart, nrows := jc/ow, nb/ow
	// A group is a set of output rows oi = oiStart + r0 + rstep·t
	// (t < T) whose pixels [ojOff, ojOff+L) land in panel t·pstep + pOff
	// at lane laneOff.
	type group struct{ r0, rstep, T, pstep, pOff, laneOff, ojOff, L int }
	var groups []group
	if ow%32 == 0 {
		segs := ow / 32
		for seg := 0; seg < segs; seg++ {
			groups = append(groups, group{0, 1, nrows, segs, seg, 0, seg * 32, 32})
		}
	} else {
		per := 32 / ow
		for r := 0; r < per && r < nrows; r++ {
			groups = append(groups, group{r, per, (nrows - r + per - 1) / per, 1, 0, r * ow, 0, ow})
		}
	}
	pstride := 32 * kb // distance between panels
	for pp := 0; pp < kb; pp++ {
		p := pc + pp
		ci, kk := p/(g.kh*g.kw), p%(g.kh*g.kw)
		ki, kj := kk/g.kw, kk%g.kw
		ilo, ihi := validRange(g.oh, g.h, s, ki-g.pad)
		jlo, jhi := validRange(ow, g.w, s, kj-g.pad)
		plane := x[ci*g.h*g.w : (ci+1)*g.h*g.w]
		for _, gr := range groups {
			jl := min(max(jlo-gr.ojOff, 0), gr.L)
			jh := min(max(jhi-gr.ojOff, 0), gr.L)
			first := oiStart + gr.r0 // output row of t = 0
			tA := min(max(0, ceilDiv(ilo-first, gr.rstep)), gr.T)
			tB := min(max(tA, ceilDiv(ihi-first, gr.rstep)), gr.T)
			if jl >= jh {
				tA, tB = 0, 0
			}
			partial := jl > 0 || jh < gr.L
			for t := 0; t < gr.T; t++ {
				inside := t >= tA && t < tB
				if inside && !partial {
					t = tB - 1
					continue
				}
				o := (t*gr.pstep+gr.pOff)*pstride + pp*32 + gr.laneOff
				lanes := dst[o : o+gr.L]
				if !inside {
					clear(lanes)
					continue
				}
				for j := range jl {
					lanes[j] = 0
				}
				for j := jh; j < len(lanes); j++ {
					lanes[j] = 0
				}
			}
			if tA >= tB {
				continue
			}
			oi := first + gr.rstep*tA
			o := (tA*gr.pstep+gr.pOff)*pstride + pp*32 + gr.laneOff + jl
			src := plane[(oi*s-g.pad+ki)*g.w+(gr.ojOff+jl)*s-g.pad+kj:]
			stridedRows(dst[o:], gr.pstep*pstride, src, gr.rstep*s*g.w, s, tB-tA, jh-jl)
		}
	}
}

// ceilDiv is ⌈a/b⌉ for b > 0 and any a.
func ceilDiv(a, b int) int {
	if a <= 0 {
		return -((-a) / b)
	}
	return (a + b - 1) / b
}

// panelConvForward computes y = conv(x, w) (+ bias, then the epilogue) for
// all n images through sgemm: groups of images whose output maps together
// fill minGemmCols columns (one image when its map is that large), one
// group per worker at a time.
// With st, it also writes the output's planeStats.
func panelConvForward(g convGeom, n, o int, images func(i0, i1 int) ([]float32, func()), W, Y, bias []float32, ep *epilogue, st []float64) {
	K, P := g.rows(), g.cols()
	inSz, outSz := g.c*g.h*g.w, o*P
	G := min(n, max(1, (minGemmCols+P-1)/P)) // images per group
	if G > 1 && P%32 != 0 {
		G = 1 // a panel must not straddle two images
	}
	groups := (n + G - 1) / G
	pa := sgemm.PackA(false, o, K, 1, W, K)
	defer pa.Release()
	align := g.panelAlign()
	if G > 1 {
		align = P
	}
	tensor.For(groups, 1, func(lo, hi int) {
		for grp := lo; grp < hi; grp++ {
			i0, i1 := grp*G, min(n, (grp+1)*G)
			nb := i1 - i0
			xs, done := images(i0, i1)
			pack := func(dst []float32, pc, jc, kb, cols int) {
				// Columns [jc, jc+cols) of the group: whole images (align).
				for j := jc / P; j < (jc+cols)/P; j++ {
					g.packPanels(dst[(j*P-jc)*kb:], xs[j*inSz:(j+1)*inSz], pc, 0, kb, P)
				}
			}
			if nb == 1 {
				yi := Y[i0*outSz : i1*outSz]
				pa.Mul(P, align, func(dst []float32, pc, jc, kb, cols int) {
					g.packPanels(dst, xs, pc, jc, kb, cols)
				}, fillBias(yi, bias, P), yi, P)
				done()
				ep.applyPlanes(yi, P)
				planeStatsOf(st, yi, i0, o, P)
				continue
			}
			tmp := getBuf(o * G * P)
			pa.Mul(nb*P, align, pack, 0, tmp[:o*nb*P], nb*P)
			done()
			scatterGroup(Y[i0*outSz:i1*outSz], tmp, o, nb, nb*P, P, bias, ep)
			putBuf(tmp)
			for i := i0; i < i1; i++ {
				planeStatsOf(st, Y[i*outSz:(i+1)*outSz], i, o, P)
			}
		}
	})
}

// scatterGroup moves nb images' columns of a group's product tmp (o rows
// ld apart, image j's P columns at j·P) to their outputs y [nb, o, P],
// adding bias and applying the epilogue.
func scatterGroup(y, tmp []float32, o, nb, ld, P int, bias []float32, ep *epilogue) {
	for j := 0; j < nb; j++ {
		yi := y[j*o*P : (j+1)*o*P]
		for oc := 0; oc < o; oc++ {
			src := tmp[oc*ld+j*P : oc*ld+(j+1)*P]
			dst := yi[oc*P : (oc+1)*P]
			if bias == nil {
				copy(dst, src)
			} else {
				for q, v := range src {
					dst[q] = v + bias[oc]
				}
			}
		}
		ep.applyPlanes(yi, P)
	}
}
