// Package fuse combines the per-spot embeddings of several modalities (H&E
// image, expression) into one representation for the few-label heads:
// Concat standardises each modality and concatenates them so neither
// dominates by scale; Gated learns a per-spot softmax weighting over the
// modalities jointly with its classification head and exposes the weights
// (to draw on the tissue); Context appends the mean embedding of each spot's
// array neighbours.
//
// Matrices are row-major []float32 with explicit dimensions, one row per
// spot, rows of all modalities aligned.
package fuse

import (
	"fmt"
	"math"
)

// Block is one modality's embeddings: N rows of D values.
type Block struct {
	X []float32
	D int
}

// rows returns the number of rows of b, checking the shape.
func (b Block) rows() (int, error) {
	if b.D <= 0 {
		return 0, fmt.Errorf("fuse: block width %d", b.D)
	}
	if len(b.X)%b.D != 0 {
		return 0, fmt.Errorf("fuse: block of %d values is not a multiple of width %d", len(b.X), b.D)
	}
	return len(b.X) / b.D, nil
}

// Standardize returns x (n × d) with every column shifted to mean 0 and
// scaled to standard deviation 1 (population sd; constant columns become
// 0), then multiplied by scale.
func Standardize(x []float32, n, d int, scale float64) []float32 {
	out := make([]float32, len(x))
	for j := 0; j < d; j++ {
		var mean float64
		for i := 0; i < n; i++ {
			mean += float64(x[i*d+j])
		}
		mean /= float64(n)
		var ss float64
		for i := 0; i < n; i++ {
			v := float64(x[i*d+j]) - mean
			ss += v * v
		}
		sd := math.Sqrt(ss / float64(n))
		f := 0.0
		if sd > 1e-12 {
			f = scale / sd
		}
		for i := 0; i < n; i++ {
			out[i*d+j] = float32((float64(x[i*d+j]) - mean) * f)
		}
	}
	return out
}

// Concat standardises every column of every block over the n spots (zero
// mean, unit variance), scales each block by 1/√D so that every modality
// contributes the same total variance whatever its width, and concatenates
// the blocks column-wise. It returns the n × ΣD matrix and its width.
// Statistics use all rows given (no labels are involved).
func Concat(blocks ...Block) ([]float32, int, error) {
	if len(blocks) == 0 {
		return nil, 0, fmt.Errorf("fuse: nothing to concatenate")
	}
	n, err := blocks[0].rows()
	if err != nil {
		return nil, 0, err
	}
	width := 0
	for i, b := range blocks {
		m, err := b.rows()
		if err != nil {
			return nil, 0, fmt.Errorf("block %d: %w", i, err)
		}
		if m != n {
			return nil, 0, fmt.Errorf("fuse: block %d has %d rows, block 0 has %d", i, m, n)
		}
		width += b.D
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("fuse: no rows")
	}
	out := make([]float32, n*width)
	off := 0
	for _, b := range blocks {
		z := Standardize(b.X, n, b.D, 1/math.Sqrt(float64(b.D)))
		for i := 0; i < n; i++ {
			copy(out[i*width+off:i*width+off+b.D], z[i*b.D:(i+1)*b.D])
		}
		off += b.D
	}
	return out, width, nil
}
