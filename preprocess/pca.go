package preprocess

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"

	"github.com/spotfuse/spotfuse/tensor"
)

// PCA projects the n × d row-major matrix x onto its first k principal
// components. It centres the columns, computes a truncated SVD X = U S Vᵀ
// and returns the n × k scores U·S, the k × d components Vᵀ (both
// row-major) and the variance explained by each component, S²/(n−1).
//
// Small problems use gonum's exact SVD; when n·d·min(n, d) exceeds 2·10⁹
// a seeded randomized SVD (Halko et al., 10 extra dimensions, 7 power
// iterations, or 4 when k ≥ min(n, d)/10, as scikit-learn's randomized
// solver) is used. Signs follow
// scikit-learn's svd_flip: in each component the score of largest absolute
// value is positive.
func PCA(x []float32, n, d, k int) (scores, components []float32, explainedVar []float64, err error) {
	if n < 2 || d < 1 || len(x) != n*d {
		return nil, nil, nil, fmt.Errorf("preprocess: PCA input has %d values, want %d × %d (n ≥ 2)", len(x), n, d)
	}
	if k < 1 || k > min(n, d) {
		return nil, nil, nil, fmt.Errorf("preprocess: PCA with %d components of a %d × %d matrix", k, n, d)
	}
	means, err := columnMeans(x, n, d)
	if err != nil {
		return nil, nil, nil, err
	}
	var u, v *mat.Dense
	var s []float64
	if float64(n)*float64(d)*float64(min(n, d)) <= 2e9 {
		xc := make([]float64, n*d)
		for i := range n {
			for j, v := range x[i*d : (i+1)*d] {
				xc[i*d+j] = float64(v) - means[j]
			}
		}
		u, s, v, err = exactSVD(mat.NewDense(n, d, xc))
	} else {
		iter := 7 // scikit-learn's choice: fewer power iterations for many components
		if float64(k) >= 0.1*float64(min(n, d)) {
			iter = 4
		}
		u, s, v, err = randomizedSVD(centred(x, means), n, d, k, 10, iter, 0)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	scores = make([]float32, n*k)
	components = make([]float32, k*d)
	explainedVar = make([]float64, k)
	for c := range k {
		// svd_flip (u-based): largest |u| in the column is positive.
		best, sign := 0.0, 1.0
		for i := range n {
			if a := math.Abs(u.At(i, c)); a > best {
				best = a
				sign = math.Copysign(1, u.At(i, c))
			}
		}
		for i := range n {
			scores[i*k+c] = float32(sign * u.At(i, c) * s[c])
		}
		for j := range d {
			components[c*d+j] = float32(sign * v.At(j, c))
		}
		explainedVar[c] = s[c] * s[c] / float64(n-1)
	}
	return scores, components, explainedVar, nil
}

func exactSVD(a mat.Matrix) (u *mat.Dense, s []float64, v *mat.Dense, err error) {
	var svd mat.SVD
	if !svd.Factorize(a, mat.SVDThin) {
		return nil, nil, nil, fmt.Errorf("preprocess: PCA SVD did not converge")
	}
	u, v = new(mat.Dense), new(mat.Dense)
	svd.UTo(u)
	svd.VTo(v)
	return u, svd.Values(nil), v, nil
}

// randomizedSVD approximates the top k singular triplets of the n × d
// row-major matrix a. The products with a, which hold nearly all the work,
// run through tensor.Gemm (OpenBLAS when built with cgo) in float32, the
// precision of the input; the small orthonormalisations and the SVD of the
// projected l × d matrix are done in float64.
func randomizedSVD(a []float32, n, d, k, oversample, powerIter int, seed uint64) (u *mat.Dense, s []float64, v *mat.Dense, err error) {
	l := min(k+oversample, min(n, d))
	rng := rand.New(rand.NewPCG(seed, 0x70636121))
	omega := make([]float32, d*l)
	for i := range omega {
		omega[i] = float32(rng.NormFloat64())
	}
	y := make([]float32, n*l)
	z := make([]float32, d*l)
	tensor.Gemm(false, false, n, l, d, 1, a, d, omega, l, 0, y, l) // n × l
	q := orthonormal(mat.NewDense(n, l, widen(y)))
	for range powerIter {
		tensor.Gemm(true, false, d, l, n, 1, a, d, narrow(q), l, 0, z, l) // d × l
		zq := orthonormal(mat.NewDense(d, l, widen(z)))
		tensor.Gemm(false, false, n, l, d, 1, a, d, narrow(zq), l, 0, y, l)
		q = orthonormal(mat.NewDense(n, l, widen(y)))
	}
	// b = qᵀ·a, computed as (aᵀ·q)ᵀ: d × l.
	tensor.Gemm(true, false, d, l, n, 1, a, d, narrow(q), l, 0, z, l)
	b := mat.NewDense(d, l, widen(z))
	ub, sb, vb, err := exactSVD(b.T())
	if err != nil {
		return nil, nil, nil, err
	}
	u = new(mat.Dense)
	u.Mul(q, ub)
	return u, sb, vb, nil
}

// widen returns x as float64.
func widen(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// narrow returns the values of the dense matrix m as row-major float32.
func narrow(m *mat.Dense) []float32 {
	r, c := m.Dims()
	out := make([]float32, 0, r*c)
	for i := range r {
		for _, v := range m.RawRowView(i) {
			out = append(out, float32(v))
		}
	}
	return out
}

// orthonormal returns an orthonormal basis of the columns of a by modified
// Gram–Schmidt applied twice (numerically as good as Householder QR for the
// few columns used here, without forming an n × n Q).
func orthonormal(a *mat.Dense) *mat.Dense {
	r, c := a.Dims()
	q := mat.DenseCopyOf(a)
	col := make([][]float64, c)
	for j := range c {
		col[j] = make([]float64, r)
		mat.Col(col[j], j, q)
	}
	for range 2 {
		for j := range c {
			for p := range j {
				var dot float64
				for i := range r {
					dot += col[p][i] * col[j][i]
				}
				for i := range r {
					col[j][i] -= dot * col[p][i]
				}
			}
			var norm float64
			for _, v := range col[j] {
				norm += v * v
			}
			norm = math.Sqrt(norm)
			if norm > 0 {
				for i := range r {
					col[j][i] /= norm
				}
			}
		}
	}
	for j := range c {
		q.SetCol(j, col[j])
	}
	return q
}

// columnMeans returns the column means of the n × d matrix x, accumulated
// in float64, or an error naming the first non-finite value.
func columnMeans(x []float32, n, d int) ([]float64, error) {
	means := make([]float64, d)
	for i := range n {
		for j, v := range x[i*d : (i+1)*d] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("preprocess: PCA input has a non-finite value at row %d column %d", i, j)
			}
			means[j] += float64(v)
		}
	}
	for j := range means {
		means[j] /= float64(n)
	}
	return means, nil
}

// centred returns the rows of x with means subtracted, in float32.
func centred(x []float32, means []float64) []float32 {
	d := len(means)
	xc := make([]float32, len(x))
	for i := range len(x) / d {
		for j, v := range x[i*d : (i+1)*d] {
			xc[i*d+j] = float32(float64(v) - means[j])
		}
	}
	return xc
}
