package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/spotfuse/spotfuse/sgemm"
)

func BenchmarkCmpGemm(b *testing.B) {
	shapes := [][3]int{{32, 27, 4096}, {64, 288, 1024}, {128, 576, 256}, {256, 1152, 256}, {27, 4096, 32}, {288, 1024, 64}, {576, 256, 128}, {1152, 256, 256}}
	r := rand.New(rand.NewPCG(1, 2))
	for _, sh := range shapes {
		m, n, k := sh[0], sh[1], sh[2]
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}} {
			ar, br := m, k
			lda, ldb := k, n
			if tr[0] {
				ar, lda = k, m
			}
			if tr[1] {
				br, ldb = n, k
			}
			x, y, z := randSlice(r, ar*lda), randSlice(r, br*ldb), make([]float32, m*n)
			fl := 2 * float64(m*n*k)
			for _, eng := range []string{"openblas", "native"} {
				b.Run(fmt.Sprintf("%dx%dx%d/t%v%v/%s", m, n, k, tr[0], tr[1], eng), func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						if eng == "native" {
							sgemm.Gemm(tr[0], tr[1], m, n, k, 1, x, lda, y, ldb, 0, z, n)
						} else {
							gemm(tr[0], tr[1], m, n, k, 1, x, lda, y, ldb, 0, z, n)
						}
					}
					b.ReportMetric(fl*float64(b.N)/b.Elapsed().Seconds()/1e9, "GF/s")
				})
			}
		}
	}
}
