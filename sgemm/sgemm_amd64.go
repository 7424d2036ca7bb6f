//go:build amd64 && !purego

package sgemm

import (
	"os"

	"golang.org/x/sys/cpu"
)

//go:generate python3 gen_kernels.py

// haveKernel reports whether the AVX-512 micro-kernels can run;
// SPOTFUSE_NOSIMD=1 turns them off.
var haveKernel = cpu.X86.HasAVX512F && os.Getenv("SPOTFUSE_NOSIMD") != "1"

//go:noescape
func kernel12x32(k int, a, b, c *float32, ldc int, accumulate bool)

//go:noescape
func kernel8x32(k int, a, b, c *float32, ldc int, accumulate bool)

//go:noescape
func dotNT4x4(k int, a *float32, lda int, b *float32, ldb int, out *float32)

//go:noescape
func transpose16(dst *float32, ldd int, src *float32, lds, nrows, mask int)

//go:noescape
func copyBlock(dst *float32, ldd int, src *float32, lds, rows, n int)

//go:noescape
func fmaLoop(n int)
