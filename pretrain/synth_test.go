package pretrain

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// synthExpr plants nType cell types (each with its own marker genes) in
// nBatch sections that share the types but scale every gene by a strong
// per-section factor (a batch effect), and draws Poisson counts around
// library sizes near 1,500. X is log1p of counts normalised to 10⁴ per spot.
func synthExpr(seed uint64, n, g, nType, nBatch int, batchSD float64) (*ExprData, []int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	base := make([]float64, g)
	for j := range base {
		base[j] = math.Exp(rng.NormFloat64())
	}
	prog := make([][]float64, nType)
	for t := range prog {
		prog[t] = make([]float64, g)
		for j := range prog[t] {
			prog[t][j] = base[j]
			if j%nType == t {
				prog[t][j] *= 5 // marker genes of type t
			}
		}
	}
	eff := make([][]float64, nBatch)
	for b := range eff {
		eff[b] = make([]float64, g)
		for j := range eff[b] {
			eff[b][j] = math.Exp(batchSD * rng.NormFloat64())
		}
	}
	d := &ExprData{N: n, G: g, NBatch: nBatch, X: make([]float32, n*g), Counts: make([]float32, n*g), Batch: make([]int, n)}
	types := make([]int, n)
	rate := make([]float64, g)
	for i := 0; i < n; i++ {
		t, b := rng.IntN(nType), i%nBatch
		types[i], d.Batch[i] = t, b
		var s float64
		for j := range rate {
			rate[j] = prog[t][j] * eff[b][j]
			s += rate[j]
		}
		lib := 1500 * math.Exp(0.3*rng.NormFloat64())
		var tot float64
		for j := range rate {
			c := poisson(rng, lib*rate[j]/s)
			d.Counts[i*g+j] = float32(c)
			tot += c
		}
		for j := 0; j < g; j++ {
			d.X[i*g+j] = float32(math.Log1p(float64(d.Counts[i*g+j]) / max(tot, 1) * 1e4))
		}
	}
	return d, types
}

// poisson draws from Poisson(lambda): Knuth's method for small means, a
// rounded normal approximation for large ones.
func poisson(rng *rand.Rand, lambda float64) float64 {
	if lambda > 30 {
		return math.Max(0, math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64()))
	}
	l, k, p := math.Exp(-lambda), 0.0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// pcaScores returns the first k principal-component scores of the n × g
// matrix x (columns centred), by SVD.
func pcaScores(t *testing.T, x []float32, n, g, k int) []float32 {
	t.Helper()
	m := mat.NewDense(n, g, nil)
	for j := 0; j < g; j++ {
		var mean float64
		for i := 0; i < n; i++ {
			mean += float64(x[i*g+j])
		}
		mean /= float64(n)
		for i := 0; i < n; i++ {
			m.Set(i, j, float64(x[i*g+j])-mean)
		}
	}
	var svd mat.SVD
	if !svd.Factorize(m, mat.SVDThin) {
		t.Fatal("SVD failed")
	}
	var u mat.Dense
	svd.UTo(&u)
	sv := svd.Values(nil)
	out := make([]float32, n*k)
	for i := 0; i < n; i++ {
		for c := 0; c < k; c++ {
			out[i*k+c] = float32(u.At(i, c) * sv[c])
		}
	}
	return out
}
