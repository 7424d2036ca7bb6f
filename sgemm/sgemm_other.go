//go:build !amd64 || purego

package sgemm

// haveKernel is false: there are no assembly micro-kernels in this build.
var haveKernel = false

func kernel12x32(k int, a, b, c *float32, ldc int, accumulate bool) { panic("unreachable") }
func kernel8x32(k int, a, b, c *float32, ldc int, accumulate bool)  { panic("unreachable") }

func dotNT4x4(k int, a *float32, lda int, b *float32, ldb int, out *float32) { panic("unreachable") }

func transpose16(dst *float32, ldd int, src *float32, lds, nrows, mask int) { panic("unreachable") }

func copyBlock(dst *float32, ldd int, src *float32, lds, rows, n int) { panic("unreachable") }

func fmaLoop(n int) { panic("unreachable") }
