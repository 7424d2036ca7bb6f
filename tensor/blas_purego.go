//go:build purego || !cgo

package tensor

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/spotfuse/spotfuse/sgemm"
)

// blasName names the compiled-in BLAS.
func blasName() string { return "purego (gonum)" }

// openblasCore is "": there is no OpenBLAS in this build.
func openblasCore() string { return "" }

var impl gonum.Implementation

func gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if transA {
		ta = blas.Trans
	}
	if transB {
		tb = blas.Trans
	}
	if k == 0 {
		// gonum requires non-empty a and b; C = beta·C.
		sgemm.Scale(m, n, beta, c, ldc)
		return
	}
	impl.Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
