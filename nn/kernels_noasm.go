//go:build !amd64 || purego

package nn

// useAVX512 is false: the Go loops of kernels.go are used.
var useAVX512 = false

// The assembly kernels exist on amd64 only; these are never called.

func gatherS2AVX(dst, src *float32, rows, dstStride, srcStride, full, mlo, mhi, mst int) {
	panic("unreachable")
}
func scatterAddS2AVX(dst, src *float32, rows, dstStride, srcStride, full, mlo, mhi, mst int) {
	panic("unreachable")
}
func copyRowsAVX(dst, src *float32, rows, dstStride, srcStride, full, mst int) { panic("unreachable") }
func addRowsAVX(dst, src *float32, rows, dstStride, srcStride, full, mst int)  { panic("unreachable") }
func affineAVX(y, x *float32, n int, a, b float32, relu, nt bool)              { panic("unreachable") }
func shiftedSumsAVX(x *float32, n int, s float32, out *float32)                { panic("unreachable") }
func bnGradSumsAVX(dy, x *float32, n int, mu, ra, rb float32, relu bool, out *float32) {
	panic("unreachable")
}
func bnGradInputAVX(dx, dy, x *float32, n int, mu, A, B, C, ra, rb float32, relu, fresh bool) {
	panic("unreachable")
}

func gatherIdxAVX(dst, src *float32, idx *int32, n int) { panic("unreachable") }

func adamwAVX(w, grad, m, v *float32, n int, decay, b1, omb1, b2, omb2, sqrtBC2, eps, stepSize float32) {
	panic("unreachable")
}

func scatterAddIdxAVX(dst, src *float32, idx *int32, rows, rowLen int) { panic("unreachable") }

func maxRowS2AVX(hm *float32, hi *int32, row *float32, ow int) { panic("unreachable") }
func maxColsAVX(y *float32, arg *int32, hm *float32, hi *int32, ow, w, r0, nrows int) {
	panic("unreachable")
}

func gatherColsAVX(dst, x *float32, base, cls *int32, mask *uint32, offs *int32, n int, sc, sh *float32, mode int) {
	panic("unreachable")
}
