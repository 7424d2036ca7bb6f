//go:build cgo && !purego

package tensor

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
char* openblas_get_corename(void);
char* openblas_get_config(void);
int blas_thread_shutdown_(void);
*/
import "C"

import "unsafe"

func init() {
	// Goroutines provide the parallelism (see the package doc); OpenBLAS
	// runs single-threaded inside each of them. Its worker threads, started
	// when the library loaded, are stopped: idle, they still spin in
	// sched_yield and took a fifth of the CPU time of a convolution (profiled).
	// With one thread OpenBLAS never starts them again.
	C.openblas_set_num_threads(1)
	C.blas_thread_shutdown_()
}

// blasName names the compiled-in BLAS.
func blasName() string { return "openblas (" + openblasCore() + ")" }

// openblasCore returns the name of the kernels OpenBLAS selected.
func openblasCore() string { return C.GoString(C.openblas_get_corename()) }

func gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := C.enum_CBLAS_TRANSPOSE(C.CblasNoTrans), C.enum_CBLAS_TRANSPOSE(C.CblasNoTrans)
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	var ap, bp *C.float
	if k > 0 {
		ap = (*C.float)(unsafe.Pointer(&a[0]))
		bp = (*C.float)(unsafe.Pointer(&b[0]))
	}
	C.cblas_sgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), ap, C.blasint(lda), bp, C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}
