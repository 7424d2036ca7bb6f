package tensor

import (
	"fmt"

	"github.com/spotfuse/spotfuse/sgemm"
)

// product runs one GEMM on the calling goroutine: sgemm's AVX-512 kernels
// when the CPU has them, else the compiled-in BLAS.
func product(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if sgemm.Available() {
		sgemm.Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Backend names the code behind Gemm: "sgemm (AVX-512)" followed by the
// compiled-in BLAS it falls back to, or that BLAS alone.
func Backend() string {
	if sgemm.Available() {
		return "sgemm (AVX-512), fallback " + blasName()
	}
	return blasName()
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, where
// op(X) is X or Xᵀ. op(A) is m×k, op(B) is k×n and C is m×n; lda, ldb and ldc
// are the row strides of the stored A, B and C. Large products are split into
// row (or column) blocks of C computed concurrently by Threads() workers; each
// element of C is always computed by one worker over the whole k, so the result
// does not depend on the split.
func Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	const minFlopsPerWorker = 1 << 21
	flops := 2 * m * n * k
	w := Threads()
	if f := flops / minFlopsPerWorker; f < w {
		w = f
	}
	if w <= 1 {
		product(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if m >= n {
		// Split the rows of C (and of op(A)).
		Parallel(m, max(8, m/w), func(_, lo, hi int) {
			var as []float32
			if transA {
				as = a[lo:]
			} else {
				as = a[lo*lda:]
			}
			product(transA, transB, hi-lo, n, k, alpha, as, lda, b, ldb, beta, c[lo*ldc:], ldc)
		})
		return
	}
	// Split the columns of C (and of op(B)).
	Parallel(n, max(16, n/w), func(_, lo, hi int) {
		var bs []float32
		if transB {
			bs = b[lo*ldb:]
		} else {
			bs = b[lo:]
		}
		product(transA, transB, m, hi-lo, k, alpha, a, lda, bs, ldb, beta, c[lo:], ldc)
	})
}

// GemmSerial is Gemm on the calling goroutine only; use it inside work that
// is already parallel (for example one image of a batched convolution).
func GemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	product(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// checkGemm panics if a slice is too short for its matrix: the cgo backend
// would otherwise read or write out of bounds.
func checkGemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("tensor.Gemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	check := func(name string, s []float32, rows, cols, ld int) {
		if ld < max(1, cols) {
			panic(fmt.Sprintf("tensor.Gemm: ld%s=%d < %d columns", name, ld, cols))
		}
		if rows > 0 && cols > 0 && len(s) < (rows-1)*ld+cols {
			panic(fmt.Sprintf("tensor.Gemm: %s has %d values, needs %d×%d with stride %d", name, len(s), rows, cols, ld))
		}
	}
	check("a", a, ar, ac, lda)
	check("b", b, br, bc, ldb)
	check("c", c, m, n, ldc)
}
