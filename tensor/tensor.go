// Package tensor holds spotfuse's dense float32 tensors and the BLAS seam.
//
// A Tensor is a contiguous row-major block of float32 with a shape; images
// are NCHW. Matrix products go through Gemm. On CPUs with AVX-512 it runs
// spotfuse's own kernels (package sgemm: faster than OpenBLAS on the shapes
// of this project's models, measured in bench/RESULTS.md); otherwise it is
// backed by OpenBLAS via cgo (blas_cgo.go, the default) or by gonum's pure-Go
// code (blas_purego.go, with `-tags purego` or CGO_ENABLED=0). With
// `-tags purego` the assembly kernels are left out too. Backend reports
// which code runs; SPOTFUSE_NOSIMD=1 turns the AVX-512 kernels off.
//
// Threads: the process uses Threads() workers (default runtime.NumCPU(),
// change with SetThreads). The BLAS library itself is kept single-threaded;
// parallelism comes from goroutines that each run an independent GEMM (a row
// block of a big product, or one image of a convolution). Work is always
// split into the same contiguous blocks for a given thread count and partial
// sums are reduced in a fixed order, so results are bit-identical for the
// same thread count.
package tensor

import (
	"fmt"
	"slices"
	"strings"
)

// Tensor is a contiguous, row-major float32 array.
type Tensor struct {
	Shape []int
	Data  []float32
}

// New returns a zero tensor of the given shape.
func New(shape ...int) *Tensor {
	n := Numel(shape)
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, n)}
}

// FromSlice wraps data (not copied) as a tensor of the given shape. It panics
// if len(data) does not match the shape: that is a programming error.
func FromSlice(data []float32, shape ...int) *Tensor {
	if n := Numel(shape); n != len(data) {
		panic(fmt.Sprintf("tensor.FromSlice: %d values for shape %v (%d)", len(data), shape, n))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}
}

// Full returns a tensor of the given shape filled with v.
func Full(v float32, shape ...int) *Tensor {
	t := New(shape...)
	for i := range t.Data {
		t.Data[i] = v
	}
	return t
}

// Size returns the number of elements.
func (t *Tensor) Size() int { return len(t.Data) }

// Dims returns the number of dimensions.
func (t *Tensor) Dims() int { return len(t.Shape) }

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
}

// Reshape returns a view of t with a new shape sharing t's data. One
// dimension may be -1 and is inferred. It panics on a size mismatch.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	return &Tensor{Shape: InferShape(t.Size(), shape), Data: t.Data}
}

// Zero sets every element to 0.
func (t *Tensor) Zero() { clear(t.Data) }

// String prints the shape and up to 8 values.
func (t *Tensor) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Tensor%v[", t.Shape)
	for i, v := range t.Data {
		if i == 8 {
			b.WriteString(" ...")
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%g", v)
	}
	b.WriteByte(']')
	return b.String()
}

// SameShape reports whether a and b have identical shapes.
func SameShape(a, b []int) bool { return slices.Equal(a, b) }

// InferShape resolves a single -1 in shape so that it holds n elements. It
// panics if that is impossible.
func InferShape(n int, shape []int) []int {
	out := append([]int(nil), shape...)
	neg, prod := -1, 1
	for i, d := range out {
		switch {
		case d == -1 && neg < 0:
			neg = i
		case d < 0:
			panic(fmt.Sprintf("tensor: bad shape %v", shape))
		default:
			prod *= d
		}
	}
	if neg >= 0 {
		if prod == 0 || n%prod != 0 {
			panic(fmt.Sprintf("tensor: cannot reshape %d elements to %v", n, shape))
		}
		out[neg] = n / prod
		prod *= out[neg]
	}
	if prod != n {
		panic(fmt.Sprintf("tensor: cannot reshape %d elements to %v", n, shape))
	}
	return out
}

// Numel returns the number of values of a tensor of the given shape.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("tensor: negative dimension in %v", shape))
		}
		n *= d
	}
	return n
}
