//go:build amd64 && !purego

package nn

import (
	"os"

	"golang.org/x/sys/cpu"
)

// useAVX512 selects the assembly kernels of kernels_amd64.s; the
// environment variable SPOTFUSE_NOSIMD=1 turns them off (the Go loops of
// kernels.go are then used, as on other architectures and under purego).
var useAVX512 = cpu.X86.HasAVX512F && os.Getenv("SPOTFUSE_NOSIMD") != "1"

//go:noescape
func gatherS2AVX(dst, src *float32, rows, dstStride, srcStride, full, mlo, mhi, mst int)

//go:noescape
func scatterAddS2AVX(dst, src *float32, rows, dstStride, srcStride, full, mlo, mhi, mst int)

//go:noescape
func copyRowsAVX(dst, src *float32, rows, dstStride, srcStride, full, mst int)

//go:noescape
func addRowsAVX(dst, src *float32, rows, dstStride, srcStride, full, mst int)

//go:noescape
func affineAVX(y, x *float32, n int, a, b float32, relu, nt bool)

// shiftedSumsAVX adds Σ(x−s) and Σ(x−s)² lane-wise into out[0:32] and out[32:64].
//
//go:noescape
func shiftedSumsAVX(x *float32, n int, s float32, out *float32)

// bnGradSumsAVX adds bnGradSums' two sums lane-wise into out[0:32] and out[32:64].
//
//go:noescape
func bnGradSumsAVX(dy, x *float32, n int, mu, ra, rb float32, relu bool, out *float32)

//go:noescape
func bnGradInputAVX(dx, dy, x *float32, n int, mu, A, B, C, ra, rb float32, relu, fresh bool)

//go:noescape
func gatherIdxAVX(dst, src *float32, idx *int32, n int)

//go:noescape
func adamwAVX(w, grad, m, v *float32, n int, decay, b1, omb1, b2, omb2, sqrtBC2, eps, stepSize float32)

//go:noescape
func scatterAddIdxAVX(dst, src *float32, idx *int32, rows, rowLen int)

//go:noescape
func maxRowS2AVX(hm *float32, hi *int32, row *float32, ow int)

//go:noescape
func maxColsAVX(y *float32, arg *int32, hm *float32, hi *int32, ow, w, r0, nrows int)

//go:noescape
func gatherColsAVX(dst, x *float32, base, cls *int32, mask *uint32, offs *int32, n int, sc, sh *float32, mode int)
