// Package preprocess prepares spot × gene counts for learning, like scanpy's
// pp module: quality-control filters, library-size normalisation and log1p,
// highly variable gene selection (Seurat and Seurat v3 flavours, per batch),
// gene matching across sections, dense extraction, z-scoring and PCA.
//
// Functions work on sparse.CSR matrices and plain row-major []float32
// slices, so they apply equally to one section or to sections pooled
// row-wise. Filters return the kept indices so callers can subset spots,
// labels and gene names alongside.
package preprocess

import (
	"fmt"
	"math"

	"github.com/spotfuse/spotfuse/sparse"
)

// FilterSpots keeps the rows (spots) with total counts ≥ minCounts and at
// least minGenes non-zero genes. It returns the filtered matrix and the
// kept row indices of m.
func FilterSpots(m *sparse.CSR, minCounts float64, minGenes int) (*sparse.CSR, []int) {
	var keep []int
	for i := 0; i < m.Rows; i++ {
		_, v := m.Row(i)
		var s float64
		nz := 0
		for _, x := range v {
			s += float64(x)
			if x != 0 {
				nz++
			}
		}
		if s >= minCounts && nz >= minGenes {
			keep = append(keep, i)
		}
	}
	return m.SelectRows(keep), keep
}

// FilterGenes keeps the columns (genes) that are non-zero in at least
// minSpots rows. It returns the filtered matrix and the kept column indices.
func FilterGenes(m *sparse.CSR, minSpots int) (*sparse.CSR, []int) {
	nz := make([]int, m.Cols)
	for _, c := range m.Indices[:m.NNZ()] {
		nz[c]++
	}
	var keep []int
	for j, c := range nz {
		if c >= minSpots {
			keep = append(keep, j)
		}
	}
	return m.SelectCols(keep), keep
}

// NormalizeTotal scales every row to sum to target (scanpy
// normalize_total; 1e4 is the usual target). Rows summing to zero stay
// zero. The input is not modified.
func NormalizeTotal(m *sparse.CSR, target float64) (*sparse.CSR, error) {
	if !(target > 0) {
		return nil, fmt.Errorf("preprocess: normalisation target %g must be positive", target)
	}
	out := clone(m)
	for i := 0; i < out.Rows; i++ {
		_, v := out.Row(i)
		var s float64
		for _, x := range v {
			if x < 0 || math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("preprocess: row %d has count %g; counts must be finite and non-negative", i, x)
			}
			s += float64(x)
		}
		if s == 0 {
			continue
		}
		f := target / s
		for k, x := range v {
			v[k] = float32(float64(x) * f)
		}
	}
	return out, nil
}

// Log1p returns a copy of m with every value x replaced by ln(1 + x).
func Log1p(m *sparse.CSR) *sparse.CSR {
	out := clone(m)
	for k, x := range out.Data {
		out.Data[k] = float32(math.Log1p(float64(x)))
	}
	return out
}

func clone(m *sparse.CSR) *sparse.CSR {
	return &sparse.CSR{
		Rows:    m.Rows,
		Cols:    m.Cols,
		Indptr:  append([]int(nil), m.Indptr...),
		Indices: append([]int32(nil), m.Indices...),
		Data:    append([]float32(nil), m.Data...),
	}
}

// Dense returns the n × len(genes) row-major values of the given columns
// of m (all columns when genes is nil).
func Dense(m *sparse.CSR, genes []int) ([]float32, error) {
	if genes == nil {
		return m.Dense(), nil
	}
	pos := make([]int, m.Cols)
	for j := range pos {
		pos[j] = -1
	}
	for k, g := range genes {
		if g < 0 || g >= m.Cols {
			return nil, fmt.Errorf("preprocess: gene index %d outside the %d columns", g, m.Cols)
		}
		pos[g] = k
	}
	d := len(genes)
	out := make([]float32, m.Rows*d)
	for i := 0; i < m.Rows; i++ {
		c, v := m.Row(i)
		for k := range c {
			if p := pos[c[k]]; p >= 0 {
				out[i*d+p] = v[k]
			}
		}
	}
	// A gene listed twice gets the values of its last position only; fill
	// earlier duplicates.
	for k, g := range genes {
		if pos[g] != k {
			for i := 0; i < m.Rows; i++ {
				out[i*d+k] = out[i*d+pos[g]]
			}
		}
	}
	return out, nil
}

// Standardize z-scores each column of the n × d matrix x in place, using
// the sample sd (ddof = 1, as scanpy's pp.scale; constant columns get sd 1),
// then clips values to [−clip, clip] when clip > 0 (scanpy uses 10). It
// returns the column means and sds so new data can be transformed alike
// with ApplyStandardize.
func Standardize(x []float32, n, d int, clip float64) (mean, sd []float64, err error) {
	if n <= 0 || d <= 0 || len(x) != n*d {
		return nil, nil, fmt.Errorf("preprocess: standardize input has %d values, want %d × %d", len(x), n, d)
	}
	mean = make([]float64, d)
	sd = make([]float64, d)
	for i := range n {
		for j := range d {
			mean[j] += float64(x[i*d+j])
		}
	}
	for j := range d {
		mean[j] /= float64(n)
	}
	for i := range n {
		for j := range d {
			t := float64(x[i*d+j]) - mean[j]
			sd[j] += t * t
		}
	}
	for j := range d {
		if n > 1 {
			sd[j] = math.Sqrt(sd[j] / float64(n-1))
		}
		if sd[j] == 0 || math.IsNaN(sd[j]) {
			sd[j] = 1
		}
	}
	return mean, sd, ApplyStandardize(x, n, d, mean, sd, clip)
}

// ApplyStandardize transforms x (n × d) in place as (x − mean)/sd clipped
// to [−clip, clip] when clip > 0.
func ApplyStandardize(x []float32, n, d int, mean, sd []float64, clip float64) error {
	if len(x) != n*d || len(mean) != d || len(sd) != d {
		return fmt.Errorf("preprocess: standardize shapes disagree (%d values, %d × %d, %d means, %d sds)", len(x), n, d, len(mean), len(sd))
	}
	for i := range n {
		for j := range d {
			v := (float64(x[i*d+j]) - mean[j]) / sd[j]
			if clip > 0 {
				v = math.Max(-clip, math.Min(clip, v))
			}
			x[i*d+j] = float32(v)
		}
	}
	return nil
}
