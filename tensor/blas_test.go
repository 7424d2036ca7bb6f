package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
)

var (
	naiveGemm = testutil.NaiveGemm
	randSlice = testutil.RandFloats
)

func TestGemmMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []struct{ m, n, k int }{{1, 1, 1}, {3, 5, 7}, {17, 9, 33}, {64, 300, 40}, {300, 64, 50}, {5, 4, 0}}
	for _, tc := range cases {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				name := fmt.Sprintf("%dx%dx%d/%v%v", tc.m, tc.n, tc.k, ta, tb)
				t.Run(name, func(t *testing.T) {
					m, n, k := tc.m, tc.n, tc.k
					lda, ldb := k+2, n+1
					ar, br := m, k
					if ta {
						lda, ar = m+2, k
					}
					if tb {
						ldb, br = k+1, n
					}
					a := randSlice(r, max(ar*lda, 1))
					b := randSlice(r, max(br*ldb, 1))
					ldc := n + 3
					c := randSlice(r, m*ldc)
					want := append([]float32(nil), c...)
					naiveGemm(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 0.25, want, ldc)
					for _, threads := range []int{1, 2, 3} {
						SetThreads(threads)
						got := append([]float32(nil), c...)
						Gemm(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 0.25, got, ldc)
						for i := range got {
							if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) {
								t.Fatalf("threads=%d: c[%d]=%g want %g", threads, i, got[i], want[i])
							}
						}
					}
					SetThreads(2)
				})
			}
		}
	}
}

func TestGemmPanicsOnShortSlice(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Gemm accepted a too-short slice")
		}
	}()
	Gemm(false, false, 4, 4, 4, 1, make([]float32, 15), 4, make([]float32, 16), 4, 0, make([]float32, 16), 4)
}

// BenchmarkSgemm reports GFLOP/s of one square product on all threads.
func BenchmarkSgemm(b *testing.B) {
	for _, s := range []int{256, 1024} {
		b.Run(fmt.Sprint(s), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			x, y, z := randSlice(r, s*s), randSlice(r, s*s), make([]float32, s*s)
			for i := 0; i < b.N; i++ {
				Gemm(false, false, s, s, s, 1, x, s, y, s, 0, z, s)
			}
			b.ReportMetric(2*float64(s*s*s)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
