package nn

import (
	"sync"

	"github.com/spotfuse/spotfuse/sgemm"
)

// Weight gradients dW = dY·colᵀ sum over output pixels, the contiguous
// dimension of both dY and the column matrix, so a product through packed
// panels transposes both. The column matrix is the larger one (c·kh·kw
// rows against o): instead of writing it (im2col) and then transposing it
// into sgemm's panels, colT gathers the panels straight from the images,
// 32 columns (channel, tap) of one output pixel at a time, with masked
// AVX-512 gathers for the pixels whose window crosses the border. The
// forward products that do not go through packPanels (outputs narrower
// than 32 pixels, grouped images) gather their panels the same way, 32
// pixels of one (channel, tap) at a time (packCols): conv4's 16→8 layer
// and resnet18's 16×16 and 8×8 stages measured 9–13 % faster than im2col
// followed by a copying pack; layers with rows of 16 pixels or more
// gained nothing (packPanels stays faster there).

// useGatherGrad enables the gathered weight gradient (tests compare it
// with im2col and a transposing product).
var useGatherGrad = true

// gatherGrad reports whether the weight gradient of geometry g goes
// through colT: not when im2col is the identity (x is then its own column
// matrix) or when dotWeightGrad takes it.
func (g convGeom) gatherGrad(o int) bool {
	return useGatherGrad && sgemm.Available() && !g.identity() && !dotWeightGrad(o, g.rows())
}

// useGatherForward enables gatherForward (tests compare it with im2col).
var useGatherForward = true

// gatherForward reports whether a forward product outside the panel path
// gathers its column matrix straight into sgemm's panels (packCols).
func (g convGeom) gatherForward() bool {
	return useGatherForward && sgemm.Available() && !g.identity()
}

// colT is the sgemm.BPacker of the transposed column matrix of a group of
// images: its row q is output pixel q (of image q/P), its column r row r
// of im2col.
type colT struct {
	x    []float32 // the group's images
	base []int32   // per output pixel: offset in x of its window's top-left corner (may lie outside)
	cls  []int32   // per output pixel: its border class
	offs []int32   // per column, then 32 zeros: offset of (channel, tap) from a window's corner
	tap  [][2]int  // per column: (ki, kj)
	taps []int32   // per column: ki·kw + kj
	// pmask[32-pixel panel·kh·kw + tap] has the lanes (pixels) where the
	// tap reads inside the image, for packCols.
	pmask []uint32
	yr    [][2]int // per row class: the kernel rows [lo, hi) inside the image
	xr    [][2]int // per column class: the kernel columns inside
	mask  []uint32 // per border class: the lanes of the panel being packed
	kk    int      // taps per channel (kh·kw)
	// With af, x holds the source of an unstored BatchNorm output and pack
	// maps each gathered value by its channel's affine map (lsc, lsh: the
	// panel's lanes).
	af       *channelAffine
	lsc, lsh []float32
}

// colTTables holds the pixel tables of a geometry for a group size,
// computed once.
var colTTables sync.Map // struct{convGeom; nb int} -> *colT

// newColT returns the packer of images x (nb of them, as in the group
// tables of g), or with af of the unstored images af maps x to.
func (g convGeom) newColT(x []float32, nb int, af *channelAffine) *colT {
	key := struct {
		g  convGeom
		nb int
	}{g, nb}
	if t, ok := colTTables.Load(key); ok {
		return t.(*colT).with(x, af)
	}
	ranges := func(n, size, k int) ([][2]int, []int) {
		var rs [][2]int
		cls := make([]int, n)
		for o := range n {
			top := o*g.stride - g.pad
			r := [2]int{max(0, -top), min(k, size-top)}
			id := -1
			for i, q := range rs {
				if q == r {
					id = i
				}
			}
			if id < 0 {
				id = len(rs)
				rs = append(rs, r)
			}
			cls[o] = id
		}
		return rs, cls
	}
	t := &colT{}
	var yc, xc []int
	t.yr, yc = ranges(g.oh, g.h, g.kh)
	t.xr, xc = ranges(g.ow, g.w, g.kw)
	P, in := g.cols(), g.c*g.h*g.w
	t.base, t.cls = make([]int32, nb*P+32), make([]int32, nb*P)
	for i := range nb {
		for oi := range g.oh {
			for oj := range g.ow {
				q := i*P + oi*g.ow + oj
				t.base[q] = int32(i*in + (oi*g.stride-g.pad)*g.w + oj*g.stride - g.pad)
				t.cls[q] = int32(yc[oi]*len(t.xr) + xc[oj])
			}
		}
	}
	K, kk := g.rows(), g.kh*g.kw
	t.kk = kk
	t.offs, t.tap, t.taps = make([]int32, K+32), make([][2]int, K), make([]int32, K)
	for r := range K {
		ci, tp := r/kk, r%kk
		ki, kj := tp/g.kw, tp%g.kw
		t.offs[r] = int32((ci*g.h+ki)*g.w + kj)
		t.tap[r] = [2]int{ki, kj}
		t.taps[r] = int32(tp)
	}
	panels := (nb*P + 31) / 32
	t.pmask = make([]uint32, panels*kk)
	for q := range nb * P {
		yr, xr := t.yr[int(t.cls[q])/len(t.xr)], t.xr[int(t.cls[q])%len(t.xr)]
		for ki := yr[0]; ki < yr[1]; ki++ {
			for kj := xr[0]; kj < xr[1]; kj++ {
				t.pmask[q/32*kk+ki*g.kw+kj] |= 1 << (q % 32)
			}
		}
	}
	colTTables.Store(key, t)
	return t.with(x, af)
}

// with returns a packer of x (mapped by af) sharing t's tables.
func (t *colT) with(x []float32, af *channelAffine) *colT {
	c := *t
	c.x, c.af = x, af
	c.mask = make([]uint32, len(c.yr)*len(c.xr))
	if af != nil {
		c.lsc, c.lsh = make([]float32, 32), make([]float32, 32)
	}
	return &c
}

// pack is the sgemm.BPacker: rows [pc, pc+kb) (pixels), columns [jc,
// jc+nb).
func (t *colT) pack(dst []float32, pc, jc, kb, nb int) {
	for jr := 0; jr < nb; jr += 32 {
		lanes := min(32, nb-jr)
		for y, yr := range t.yr {
			for x, xr := range t.xr {
				var m uint32
				for l := range lanes {
					tp := t.tap[jc+jr+l]
					if tp[0] >= yr[0] && tp[0] < yr[1] && tp[1] >= xr[0] && tp[1] < xr[1] {
						m |= 1 << l
					}
				}
				t.mask[y*len(t.xr)+x] = m
			}
		}
		relu := false
		if t.af != nil { // the lanes' channel maps
			for l := range 32 {
				t.lsc[l], t.lsh[l] = 0, 0
				if l < lanes {
					ci := (jc + jr + l) / t.kk
					t.lsc[l], t.lsh[l] = t.af.scale[ci], t.af.shift[ci]
				}
			}
			relu = t.af.relu
		}
		gatherCols(dst[jr*kb:(jr+32)*kb], t.x, t.base[pc:pc+kb], t.cls[pc:pc+kb], t.mask, t.offs[jc+jr:jc+jr+32], t.lsc, t.lsh, relu)
	}
}

// packCols is the sgemm.BPacker of the column matrix itself (the
// forward product W·col): rows [pc, pc+kb) (channel, tap), columns
// (pixels) [jc, jc+nb), jc a multiple of 32.
func (t *colT) packCols(dst []float32, pc, jc, kb, nb int) {
	kk := t.kk
	for jr := 0; jr < nb; jr += 32 {
		q := jc + jr
		gatherCols(dst[jr*kb:(jr+32)*kb], t.x, t.offs[pc:pc+kb], t.taps[pc:pc+kb], t.pmask[q/32*kk:(q/32+1)*kk], t.base[q:q+32], nil, nil, false)
	}
}

// gatherCols writes, for every pixel q, the 32 values x[base[q]+offs[l]]
// of the lanes l set in mask[cls[q]] (zeros elsewhere) to dst[32q:], each
// then mapped to ReLU?(v·sc[l] + sh[l]) when sc is not nil (affineInto's
// values: an unstored BatchNorm output). The tables come from newColT,
// which sets only lanes that read inside x.
func gatherCols(dst, x []float32, base, cls []int32, mask []uint32, offs []int32, sc, sh []float32, relu bool) {
	n := len(base)
	dst, cls, offs = dst[:32*n], cls[:n], offs[:32]
	if useAVX512 && n > 0 {
		var psc, psh *float32
		mode := 0
		if sc != nil {
			psc, psh, mode = &sc[:32][0], &sh[:32][0], 1
			if relu {
				mode = 2
			}
		}
		gatherColsAVX(&dst[0], &x[0], &base[0], &cls[0], &mask[0], &offs[0], n, psc, psh, mode)
		return
	}
	for q, b := range base {
		m := mask[cls[q]]
		row := dst[32*q : 32*q+32]
		for l, off := range offs {
			row[l] = 0
			if m&(1<<l) == 0 {
				continue
			}
			row[l] = x[int(b)+int(off)]
			if sc != nil {
				affineIntoGo(row[l:l+1], row[l:l+1], sc[l], sh[l], relu)
			}
		}
	}
}
