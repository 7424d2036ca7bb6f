package sgemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/spotfuse/spotfuse/internal/testutil"
)

// naive is the reference product (float64 accumulation) on a copy of c.
func naive(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float32 {
	out := append([]float32(nil), c...)
	testutil.NaiveGemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, out, ldc)
	return out
}

var randSlice = testutil.RandFloats

// TestGemm compares the packed product with a float64 reference over all
// transpose combinations, edge tiles in every dimension, several k blocks,
// padded leading dimensions, alpha and beta.
func TestGemm(t *testing.T) {
	if !Available() {
		t.Skip("no AVX-512 micro-kernel here")
	}
	r := rand.New(rand.NewPCG(1, 1))
	shapes := [][3]int{{1, 1, 1}, {12, 32, 1}, {13, 33, 7}, {11, 31, 300}, {64, 1024, 288}, {25, 70, 513}, {130, 40, 64}, {7, 1600, 5}}
	for _, sh := range shapes {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			for _, ab := range [][2]float32{{1, 0}, {1, 1}, {0.5, -2}} {
				m, n, k := sh[0], sh[1], sh[2]
				name := fmt.Sprintf("%dx%dx%d/tA=%v,tB=%v/alpha=%v,beta=%v", m, n, k, tr[0], tr[1], ab[0], ab[1])
				lda, ldb, ldc := k+3, n+1, n+5
				if tr[0] {
					lda = m + 2
				}
				if tr[1] {
					ldb = k + 4
				}
				ar, br := m, k
				if tr[0] {
					ar = k
				}
				if tr[1] {
					br = n
				}
				a, b, c := randSlice(r, ar*lda), randSlice(r, br*ldb), randSlice(r, m*ldc)
				want := naive(tr[0], tr[1], m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
				Gemm(tr[0], tr[1], m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
				for i := range c {
					tol := 1e-5 * math.Sqrt(float64(k)) * (1 + math.Abs(float64(want[i])))
					if math.Abs(float64(c[i]-want[i])) > tol {
						t.Fatalf("%s: c[%d] = %v, want %v", name, i, c[i], want[i])
					}
				}
			}
		}
	}
}

// TestPackedMul checks PackA + Mul (B supplied by a packer, here packB of
// a stored matrix) against the reference, with column alignments that
// change the block boundaries.
func TestPackedMul(t *testing.T) {
	if !Available() {
		t.Skip("no AVX-512 micro-kernel here")
	}
	r := rand.New(rand.NewPCG(2, 2))
	for _, sh := range [][3]int{{1, 1, 1}, {64, 1024, 288}, {32, 4096, 27}, {13, 45, 1100}, {256, 64, 1152}, {150, 3000, 40}} {
		for _, align := range []int{1, 24, 64, 256} {
			for _, beta := range []float32{0, 1} {
				m, n, k := sh[0], sh[1], sh[2]
				for _, transA := range []bool{false, true} {
					lda := k + 1
					ar := m
					if transA {
						lda, ar = m+2, k
					}
					a, b, c := randSlice(r, ar*lda), randSlice(r, k*n), randSlice(r, m*n)
					want := naive(transA, false, m, n, k, 0.5, a, lda, b, n, beta, c, n)
					c2 := append([]float32(nil), c...)
					pa := PackA(transA, m, k, 0.5, a, lda)
					pa.Mul(n, align, func(dst []float32, pc, jc, kb, nb int) {
						if jc%align != 0 {
							t.Fatalf("block at column %d, not a multiple of %d", jc, align)
						}
						packB(dst, false, b, n, pc, jc, kb, nb)
					}, beta, c, n)
					for i := range c {
						if math.Abs(float64(c[i]-want[i])) > 1e-5*math.Sqrt(float64(k))*(1+math.Abs(float64(want[i]))) {
							t.Fatalf("%v align %d beta %v transA %v: c[%d] = %v, want %v", sh, align, beta, transA, i, c[i], want[i])
						}
					}
					// MulRows packs the same stored B itself: the same bits.
					pa.MulRows(n, b, n, beta, c2, n)
					for i := range c {
						if c2[i] != c[i] {
							t.Fatalf("%v beta %v transA %v: MulRows c[%d] = %v, Mul %v", sh, beta, transA, i, c2[i], c[i])
						}
					}
					pa.Release()
				}
			}
		}
	}
}

// TestDotNT compares DotNT with the reference on shapes with edge blocks
// in both dimensions and k around the 16-lane chunks.
func TestDotNT(t *testing.T) {
	if !Available() {
		t.Skip("no AVX-512 micro-kernel here")
	}
	r := rand.New(rand.NewPCG(3, 3))
	for _, sh := range [][3]int{{4, 4, 1}, {4, 4, 16}, {5, 7, 17}, {32, 27, 4096}, {13, 6, 100}, {64, 31, 33}} {
		m, n, k := sh[0], sh[1], sh[2]
		lda, ldb, ldc := k+3, k+1, n+2
		a, b, c := randSlice(r, m*lda), randSlice(r, n*ldb), randSlice(r, m*ldc)
		want := naive(false, true, m, n, k, 1, a, lda, b, ldb, 1, c, ldc)
		DotNT(m, n, k, a, lda, b, ldb, c, ldc)
		for i := range c {
			if math.Abs(float64(c[i]-want[i])) > 1e-5*math.Sqrt(float64(k))*(1+math.Abs(float64(want[i]))) {
				t.Fatalf("%v: c[%d] = %v, want %v", sh, i, c[i], want[i])
			}
		}
	}
}

// TestTranspose16 checks the 16×16 block transpose with short row counts
// and store masks against the definition.
func TestTranspose16(t *testing.T) {
	if !Available() {
		t.Skip("no AVX-512 kernels here")
	}
	src := make([]float32, 16*20)
	for i := range src {
		src[i] = float32(i + 1)
	}
	for _, nrows := range []int{1, 5, 12, 16} {
		for _, mask := range []int{0xFFFF, 0x0FFF, 0xFF} {
			dst := make([]float32, 16*19+1)
			for i := range dst {
				dst[i] = -1
			}
			transpose16(&dst[0], 19, &src[0], 20, nrows, mask)
			for c := 0; c < 19; c++ {
				for r := 0; r < 19; r++ {
					if c*19+r >= len(dst) {
						continue
					}
					got := dst[c*19+r]
					want := float32(-1)
					if c < 16 && r < 16 && mask>>r&1 == 1 {
						want = 0
						if r < nrows {
							want = src[r*20+c]
						}
					}
					if got != want {
						t.Fatalf("nrows %d mask %#x: dst[%d][%d] = %v, want %v", nrows, mask, c, r, got, want)
					}
				}
			}
		}
	}
}

// TestPeakGFLOPS checks that the FMA loop runs and reports a plausible
// rate (between 1 and 10,000 GFLOP/s per thread).
func TestPeakGFLOPS(t *testing.T) {
	if !Available() {
		t.Skip("no AVX-512 kernels here")
	}
	if g := PeakGFLOPS(1, 20*time.Millisecond); g < 1 || g > 1e4 {
		t.Fatalf("peak %v GFLOP/s", g)
	}
}
