package preprocess

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
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
	xc, _, err := centred(x, n, d)
	if err != nil {
		return nil, nil, nil, err
	}
	var u, v *mat.Dense
	var s []float64
	if float64(n)*float64(d)*float64(min(n, d)) <= 2e9 {
		u, s, v, err = exactSVD(xc)
	} else {
		iter := 7 // scikit-learn's choice: fewer power iterations for many components
		if float64(k) >= 0.1*float64(min(n, d)) {
			iter = 4
		}
		u, s, v, err = randomizedSVD(xc, k, 10, iter, 0)
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

func exactSVD(a *mat.Dense) (u *mat.Dense, s []float64, v *mat.Dense, err error) {
	var svd mat.SVD
	if !svd.Factorize(a, mat.SVDThin) {
		return nil, nil, nil, fmt.Errorf("preprocess: PCA SVD did not converge")
	}
	u, v = new(mat.Dense), new(mat.Dense)
	svd.UTo(u)
	svd.VTo(v)
	return u, svd.Values(nil), v, nil
}

// randomizedSVD approximates the top k singular triplets of a.
func randomizedSVD(a *mat.Dense, k, oversample, powerIter int, seed uint64) (u *mat.Dense, s []float64, v *mat.Dense, err error) {
	n, d := a.Dims()
	l := min(k+oversample, min(n, d))
	rng := rand.New(rand.NewPCG(seed, 0x70636121))
	omega := mat.NewDense(d, l, nil)
	for i := range d {
		for j := range l {
			omega.Set(i, j, rng.NormFloat64())
		}
	}
	var y mat.Dense
	y.Mul(a, omega) // n × l
	q := orthonormal(&y)
	for range powerIter {
		var z mat.Dense
		z.Mul(a.T(), q) // d × l
		zq := orthonormal(&z)
		y.Reset()
		y.Mul(a, zq)
		q = orthonormal(&y)
	}
	var b mat.Dense
	b.Mul(q.T(), a) // l × d
	ub, sb, vb, err := exactSVD(&b)
	if err != nil {
		return nil, nil, nil, err
	}
	u = new(mat.Dense)
	u.Mul(q, ub)
	return u, sb, vb, nil
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

// centred returns x (n × d) with column means subtracted, and the means.
func centred(x []float32, n, d int) (*mat.Dense, []float64, error) {
	xc := mat.NewDense(n, d, nil)
	means := make([]float64, d)
	for j := range d {
		var mean float64
		for i := range n {
			mean += float64(x[i*d+j])
		}
		mean /= float64(n)
		means[j] = mean
		for i := range n {
			v := float64(x[i*d+j])
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, nil, fmt.Errorf("preprocess: PCA input has a non-finite value at row %d column %d", i, j)
			}
			xc.Set(i, j, v-mean)
		}
	}
	return xc, means, nil
}
