package sgemm

// DotNT adds A·Bᵀ to C: c[i·ldc+j] += Σ_p a[i·lda+p]·b[j·ldb+p] for i < m,
// j < n, p < k, on the calling goroutine. It is meant for small m and n
// and long k — the weight gradient of a convolution with few input
// channels (dY·colᵀ), where BLAS packing dominates — and computes 4×4
// blocks of dot products, sixteen zmm accumulators. It panics unless
// Available or when m or n is below 4.
func DotNT(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if !haveKernel || m < 4 || n < 4 {
		panic("sgemm: DotNT needs the micro-kernels and m, n ≥ 4")
	}
	if k == 0 {
		return
	}
	_ = a[(m-1)*lda+k-1]
	_ = b[(n-1)*ldb+k-1]
	_ = c[(m-1)*ldc+n-1]
	// k is processed in chunks whose rows stay in L1 while every 4×4 block
	// of the output visits them; each block keeps its sixteen 16-lane
	// partial sums in out between chunks.
	const chunk = 512
	bm, bn := (m+3)/4, (n+3)/4
	out := make([]float32, bm*bn*256)
	for p0 := 0; p0 < k; p0 += chunk {
		kb := min(chunk, k-p0)
		for bi := range bm {
			ib := min(4*bi, m-4) // the last block overlaps the previous one
			for bj := range bn {
				jb := min(4*bj, n-4)
				dotNT4x4(kb, &a[ib*lda+p0], lda, &b[jb*ldb+p0], ldb, &out[(bi*bn+bj)*256])
			}
		}
	}
	for bi := range bm {
		i0, ib := 4*bi, min(4*bi, m-4)
		for bj := range bn {
			j0, jb := 4*bj, min(4*bj, n-4)
			for i := i0; i < ib+4; i++ {
				for j := j0; j < jb+4; j++ {
					acc := out[(bi*bn+bj)*256+16*(4*(i-ib)+j-jb):][:16]
					var s float64
					for _, v := range acc {
						s += float64(v)
					}
					c[i*ldc+j] += float32(s)
				}
			}
		}
	}
}
