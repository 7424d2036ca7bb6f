// Package sgemm is spotfuse's own single-precision matrix product for CPUs
// with AVX-512: operands are packed into panels (blocked for the L1 and L2
// caches) and multiplied by an assembly micro-kernel that keeps a 12×32
// tile of C in registers. On the convolution shapes of the image encoders
// it is faster than OpenBLAS 0.3.21's SkylakeX kernels (bench/RESULTS.md);
// tensor.Gemm uses it when Available.
//
// Every element of C is accumulated over k in the same order whatever the
// shapes of the surrounding blocks, so results do not depend on how a
// caller splits C between goroutines.
package sgemm

import (
	"sync"

	"github.com/spotfuse/spotfuse/internal/floatpool"
)

const (
	nr    = 32      // columns of a micro-tile (two 16-lane vectors of packed B)
	maxKC = 512     // deepest packed block; deeper products are split evenly
	bBlk  = 1 << 18 // values of B packed at once (1 MiB, kept in L2)
	mc    = 144     // rows of A packed at once (twelve 12-row panels)
)

// Available reports whether the micro-kernels can run on this CPU and build.
func Available() bool { return haveKernel }

type scratch struct{ a, b, tile []float32 }

var scratchPool = sync.Pool{New: func() any {
	return &scratch{
		a:    make([]float32, mc*maxKC),
		b:    make([]float32, bBlk+256*maxKC),
		tile: make([]float32, 12*nr),
	}
}}

// split divides n into the fewest blocks of at most max, of equal size
// rounded up to a multiple of q; it returns the block size.
func split(n, max, q int) int {
	blocks := (n + max - 1) / max
	b := (n + blocks - 1) / blocks
	return (b + q - 1) / q * q
}

// panelHeight returns the height (12 or 8) of the row panel starting at
// row i of an mb-row block: 12-row panels, with the last 16 rows of a
// block whose size leaves 4 modulo 12 taken as two 8-row panels, so that
// the 32, 64, 128 and 256 channels of convolutions need no edge panel.
func panelHeight(i, mb int) int {
	left := mb - i
	if left <= 8 || left == 16 || (left%12 == 4 && left <= 16) {
		return 8
	}
	return 12
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices on
// the calling goroutine, with the argument conventions of tensor.Gemm (the
// caller has checked the sizes). It panics unless Available.
func Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if !haveKernel {
		panic("sgemm: no micro-kernel on this machine")
	}
	if m == 0 || n == 0 {
		return
	}
	if beta != 0 && beta != 1 || k == 0 || alpha == 0 {
		Scale(m, n, beta, c, ldc)
		if k == 0 || alpha == 0 {
			return
		}
		beta = 1
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	kc := split(k, maxKC, 1)
	nc := split(n, max(nr, bBlk/kc/nr*nr), nr)
	for jc := 0; jc < n; jc += nc {
		nb := min(nc, n-jc)
		for pc := 0; pc < k; pc += kc {
			kb := min(kc, k-pc)
			packB(s.b, transB, b, ldb, pc, jc, kb, nb)
			acc := beta != 0 || pc > 0
			for ic := 0; ic < m; ic += mc {
				mb := min(mc, m-ic)
				packA(s.a, transA, a, lda, ic, pc, mb, kb, alpha)
				macro(s.a, s.b, mb, nb, kb, c[ic*ldc+jc:], ldc, acc, s.tile)
			}
		}
	}
}

// macro multiplies a packed block of A (mb rows, packA's layout) by a
// packed block of B (nb columns, packB's layout) over depth kb into C
// (at the block's first element), adding to C when acc is set.
func macro(ap, bp []float32, mb, nb, kb int, c []float32, ldc int, acc bool, tile []float32) {
	for ir := 0; ir < mb; {
		h := panelHeight(ir, mb)
		a := &ap[ir*kb]
		kern := kernel12x32
		if h == 8 {
			kern = kernel8x32
		}
		for jr := 0; jr < nb; jr += nr {
			b := &bp[jr*kb]
			ci := ir*ldc + jr
			if ir+h <= mb && jr+nr <= nb {
				kern(kb, a, b, &c[ci], ldc, acc)
				continue
			}
			// An edge tile: computed whole, the valid part kept.
			kern(kb, a, b, &tile[0], nr, false)
			rows, cols := min(h, mb-ir), min(nr, nb-jr)
			for i := 0; i < rows; i++ {
				dst, src := c[ci+i*ldc:ci+i*ldc+cols], tile[i*nr:i*nr+cols]
				if acc {
					for j, v := range src {
						dst[j] += v
					}
				} else {
					copy(dst, src)
				}
			}
		}
		ir += h
	}
}

// PackedA is alpha·op(A) packed once, for products with several B that
// supply their own packing (a convolution's images).
type PackedA struct {
	m, k, kc, mPad int
	data           []float32
}

// PackA packs alpha·op(A) (m×k, row-major, lda apart) for Mul. It panics
// unless Available.
func PackA(transA bool, m, k int, alpha float32, a []float32, lda int) *PackedA {
	if !haveKernel {
		panic("sgemm: no micro-kernel on this machine")
	}
	pa := &PackedA{m: m, k: k, kc: split(max(k, 1), maxKC, 1)}
	for ic := 0; ic < m; ic += mc {
		mb := min(mc, m-ic)
		for ir := 0; ir < mb; ir += panelHeight(ir, mb) {
			pa.mPad += panelHeight(ir, mb)
		}
	}
	pa.data = getPacked(pa.mPad * k)
	for pc := 0; pc < k; pc += pa.kc {
		kb := min(pa.kc, k-pc)
		for ic := 0; ic < m; ic += mc {
			packA(pa.data[pc*pa.mPad+ic*kb:], transA, a, lda, ic, pc, min(mc, m-ic), kb, alpha)
		}
	}
	return pa
}

// Release hands pa's memory back for reuse by a later PackA; pa must not
// be used afterwards.
func (pa *PackedA) Release() {
	putPacked(pa.data)
	pa.data = nil
}

// packedPool keeps released PackA buffers by size (at most 64 MB
// bytes), so that convolutions packing their weights on every call do not
// allocate them anew.
var packedPool = floatpool.New(64 << 20)

func getPacked(n int) []float32 { return packedPool.Get(n) }

func putPacked(s []float32) { packedPool.Put(s) }

// A BPacker writes op(B)[pc:pc+kb, jc:jc+nb] into dst in micro-panels of
// 32 columns: the value of row pc+p and column jc+jr+j (jr a multiple of
// 32, j < 32) at dst[jr·kb + 32p + j]. Values of the last panel past nb
// are zero on entry and must stay zero.
type BPacker func(dst []float32, pc, jc, kb, nb int)

// Mul computes C = A·B + beta·C (beta 0 or 1) for an n-column B given by
// its packer, on the calling goroutine. Column blocks start at multiples
// of align (at most 256), so a packer can rely on a period of its layout.
func (pa *PackedA) Mul(n, align int, pack BPacker, beta float32, c []float32, ldc int) {
	m, k := pa.m, pa.k
	if m == 0 || n == 0 {
		return
	}
	if beta != 0 && beta != 1 || align < 1 || align > 256 {
		panic("sgemm: Mul with beta other than 0 or 1, or align outside [1, 256]")
	}
	if len(c) < (m-1)*ldc+n {
		panic("sgemm: C too short")
	}
	if k == 0 {
		if beta == 0 {
			for i := 0; i < m; i++ {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	q := nr * align / gcd(nr, align)
	nc := split(n, max(q, bBlk/pa.kc/q*q), q)
	for jc := 0; jc < n; jc += nc {
		nb := min(nc, n-jc)
		for pc := 0; pc < k; pc += pa.kc {
			kb := min(pa.kc, k-pc)
			bp := s.b[:(nb+nr-1)/nr*nr*kb]
			if last := nb / nr * nr; last < nb {
				clear(bp[last*kb:])
			}
			pack(bp, pc, jc, kb, nb)
			acc := beta != 0 || pc > 0
			for ic := 0; ic < m; ic += mc {
				macro(pa.data[pc*pa.mPad+ic*kb:], bp, min(mc, m-ic), nb, kb, c[ic*ldc+jc:], ldc, acc, s.tile)
			}
		}
	}
}

// MulRows is Mul with B a stored row-major k×n matrix b (ldb apart).
func (pa *PackedA) MulRows(n int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	pa.Mul(n, 1, func(dst []float32, pc, jc, kb, nb int) {
		packB(dst, false, b, ldb, pc, jc, kb, nb)
	}, beta, c, ldc)
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Scale sets the m×n matrix C (rows ldc apart) to beta·C, to zeros when
// beta is 0 (whatever C held, NaN included), as BLAS does.
func Scale(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// packA writes alpha·op(A)[ic:ic+mb, pc:pc+kb] as row panels of the
// heights panelHeight gives: the panel of rows [ir, ir+h) is at ap[ir·kb:],
// ap[ir·kb + p·h + i], zero past the last row.
func packA(ap []float32, transA bool, a []float32, lda, ic, pc, mb, kb int, alpha float32) {
	for ir := 0; ir < mb; {
		h := panelHeight(ir, mb)
		panel := ap[ir*kb : (ir+h)*kb]
		rows := min(h, mb-ir)
		if rows < h {
			clear(panel)
		}
		if transA { // op(A)[i, p] = a[p·lda + i]: h contiguous values per p
			_ = a[(pc+kb-1)*lda+ic+ir+rows-1]
			copyBlock(&panel[0], h, &a[pc*lda+ic+ir], lda, kb, rows)
		} else { // op(A)[i, p] = a[i·lda + p]: 16×16 transposes
			_ = a[(ic+ir+rows-1)*lda+pc+kb-1]
			p := 0
			for ; p+16 <= kb; p += 16 {
				transpose16(&panel[p*h], h, &a[(ic+ir)*lda+pc+p], lda, rows, 1<<h-1)
			}
			for i := 0; i < rows; i++ {
				src := a[(ic+ir+i)*lda+pc+p : (ic+ir+i)*lda+pc+kb]
				for q, v := range src {
					panel[(p+q)*h+i] = v
				}
			}
		}
		if alpha != 1 {
			for i := range panel {
				panel[i] *= alpha
			}
		}
		ir += h
	}
}

// packB writes op(B)[pc:pc+kb, jc:jc+nb] as micro-panels of nr columns,
// bp[jr·kb + p·nr + j] for the panel of columns [jr, jr+nr), zero past the
// last column.
func packB(bp []float32, transB bool, b []float32, ldb, pc, jc, kb, nb int) {
	if last := nb / nr * nr; last < nb {
		clear(bp[last*kb : (last+nr)*kb])
	}
	for jr := 0; jr < nb; jr += nr {
		cols := min(nr, nb-jr)
		panel := bp[jr*kb : (jr+nr)*kb]
		if !transB { // op(B)[p, j] = b[p·ldb + j]: nr contiguous values per p
			_ = b[(pc+kb-1)*ldb+jc+jr+cols-1]
			copyBlock(&panel[0], nr, &b[pc*ldb+jc+jr], ldb, kb, cols)
			continue
		}
		// op(B)[p, j] = b[j·ldb + p]: 16×16 transposes, two per 16 values of p
		_ = b[(jc+jr+cols-1)*ldb+pc+kb-1]
		p := 0
		for ; p+16 <= kb; p += 16 {
			for half := 0; half < nr && half < cols; half += 16 {
				transpose16(&panel[p*nr+half], nr, &b[(jc+jr+half)*ldb+pc+p], ldb, min(16, cols-half), 0xFFFF)
			}
		}
		for j := 0; j < cols; j++ {
			src := b[(jc+jr+j)*ldb+pc+p : (jc+jr+j)*ldb+pc+kb]
			for q, v := range src {
				panel[(p+q)*nr+j] = v
			}
		}
	}
}
