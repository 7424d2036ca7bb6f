package tensor

import (
	"math"
	"slices"
)

// GatherRows returns rows idx, in that order, of the row-major matrix x of
// width d.
func GatherRows(x []float32, d int, idx []int) []float32 {
	out := make([]float32, 0, len(idx)*d)
	for _, i := range idx {
		out = append(out, x[i*d:(i+1)*d]...)
	}
	return out
}

// UnitRows returns a copy of the n × d row-major matrix x with every row
// scaled to unit Euclidean length (summed in float64); zero rows stay zero.
func UnitRows(x []float32, n, d int) []float32 {
	out := slices.Clone(x)
	for i := range n {
		r := out[i*d : (i+1)*d]
		var s float64
		for _, v := range r {
			s += float64(v) * float64(v)
		}
		if s > 0 {
			inv := float32(1 / math.Sqrt(s))
			for j := range r {
				r[j] *= inv
			}
		}
	}
	return out
}

// ColumnMoments returns the mean and the population variance (clamped at 0)
// of every column of the n × d row-major matrix x, summed in float64.
func ColumnMoments(x []float32, n, d int) (mean, variance []float64) {
	mean, variance = make([]float64, d), make([]float64, d)
	for j := range d {
		var s, ss float64
		for i := range n {
			v := float64(x[i*d+j])
			s += v
			ss += v * v
		}
		m := s / float64(n)
		mean[j], variance[j] = m, math.Max(0, ss/float64(n)-m*m)
	}
	return mean, variance
}
