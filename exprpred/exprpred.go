// Package exprpred predicts the expression of a spot's highly variable genes
// (log-normalised, log1p(count / total · 1e4)) from its H&E patch alone, and
// measures how well it does.
//
// Two predictors:
//
//   - Ridge: a linear (ridge) regression from frozen image embeddings (a
//     pretrained or a randomly initialised image encoder, or hand-crafted
//     colour/texture statistics) to the genes;
//   - Retrieve: retrieval through the cross-modal embedding, as BLEEP does:
//     the prediction for a query spot is the average expression of the k
//     training spots whose expression embedding is most similar (cosine) to
//     the query's image embedding.
//
// The metric is the Pearson correlation per gene between predicted and
// measured expression over the spots of a held-out section (GenePearson),
// summarised as the mean over every gene and over the 50 genes most
// variable in the held-out section (Summarize). A constant prediction
// (the training-mean baseline) has no defined correlation: such genes are
// reported as undefined and count as 0 in the means.
package exprpred

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/mat"

	"github.com/spotfuse/spotfuse/tensor"
)

// Ridge is a fitted multi-output ridge regression y ≈ ((x − XMean) / XScale)·W + B.
type Ridge struct {
	D, G          int
	XMean, XScale []float32 // D
	W             []float32 // D × G, row-major
	B             []float32 // G (the training mean of y)
	Lambda        float64
}

// ridgeBasis holds the eigendecomposition of the standardised Gram matrix,
// reused for several penalties.
type ridgeBasis struct {
	d, g          int
	mean, scale   []float32
	vals          []float64  // eigenvalues of ZᵀZ
	vecs          *mat.Dense // eigenvectors (d × d)
	vtZtY         *mat.Dense // Vᵀ Zᵀ (Y − ȳ), d × g
	yMean         []float32
	nTrain        int
	standardizedX []float32
}

func newRidgeBasis(x []float32, n, d int, y []float32, g int) (*ridgeBasis, error) {
	if n < 2 || d < 1 || g < 1 || len(x) != n*d || len(y) != n*g {
		return nil, fmt.Errorf("exprpred: ridge needs n ≥ 2 rows of x (%d values for %d × %d) and y (%d values for %d × %d)", len(x), n, d, len(y), n, g)
	}
	rb := &ridgeBasis{d: d, g: g, nTrain: n, mean: make([]float32, d), scale: make([]float32, d), yMean: make([]float32, g)}
	mean, variance := tensor.ColumnMoments(x, n, d)
	for j := range d {
		sd := math.Sqrt(variance[j])
		if sd < 1e-8 {
			sd = 1
		}
		rb.mean[j], rb.scale[j] = float32(mean[j]), float32(sd)
	}
	for j := range g {
		var s float64
		for i := range n {
			s += float64(y[i*g+j])
		}
		rb.yMean[j] = float32(s / float64(n))
	}
	z := standardize(x, n, d, rb.mean, rb.scale)
	yc := make([]float32, n*g)
	for i := range n {
		for j := range g {
			yc[i*g+j] = y[i*g+j] - rb.yMean[j]
		}
	}
	gram := make([]float32, d*d)
	tensor.Gemm(true, false, d, d, n, 1, z, d, z, d, 0, gram, d)
	zty := make([]float32, d*g)
	tensor.Gemm(true, false, d, g, n, 1, z, d, yc, g, 0, zty, g)
	sym := mat.NewSymDense(d, nil)
	for i := range d {
		for j := i; j < d; j++ {
			sym.SetSym(i, j, 0.5*float64(gram[i*d+j]+gram[j*d+i]))
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(sym, true) {
		return nil, fmt.Errorf("exprpred: ridge eigendecomposition failed")
	}
	rb.vals = eig.Values(nil)
	rb.vecs = &mat.Dense{}
	eig.VectorsTo(rb.vecs)
	ztyM := mat.NewDense(d, g, f64s(zty))
	rb.vtZtY = &mat.Dense{}
	rb.vtZtY.Mul(rb.vecs.T(), ztyM)
	return rb, nil
}

// solve returns the ridge model with penalty lambda·n on the standardised
// features (so lambda is comparable across training-set sizes).
func (rb *ridgeBasis) solve(lambda float64) *Ridge {
	d, g := rb.d, rb.g
	scaled := mat.DenseCopyOf(rb.vtZtY)
	pen := lambda * float64(rb.nTrain)
	for i := range d {
		f := 1 / (math.Max(rb.vals[i], 0) + pen)
		for j := range g {
			scaled.Set(i, j, scaled.At(i, j)*f)
		}
	}
	var w mat.Dense
	w.Mul(rb.vecs, scaled)
	r := &Ridge{D: d, G: g, XMean: rb.mean, XScale: rb.scale, B: rb.yMean, W: make([]float32, d*g), Lambda: lambda}
	for i := range d {
		for j := range g {
			r.W[i*g+j] = float32(w.At(i, j))
		}
	}
	return r
}

// FitRidge fits a ridge regression of the n × g targets y on the n × d
// features x (standardised with the training mean and population sd) with
// penalty lambda·n·‖W‖²; the intercept is the training mean of y.
func FitRidge(x []float32, n, d int, y []float32, g int, lambda float64) (*Ridge, error) {
	if !(lambda >= 0) {
		return nil, fmt.Errorf("exprpred: ridge penalty %g must be ≥ 0", lambda)
	}
	rb, err := newRidgeBasis(x, n, d, y, g)
	if err != nil {
		return nil, err
	}
	return rb.solve(lambda), nil
}

// FitRidgeCV fits ridge regressions for every penalty in lambdas on the
// rows train and keeps the one whose predictions on the rows val have the
// highest mean per-gene Pearson correlation; the chosen penalty is then
// refitted on train ∪ val.
func FitRidgeCV(x []float32, d int, y []float32, g int, train, val []int, lambdas []float64) (*Ridge, error) {
	if len(lambdas) == 0 || len(val) < 2 {
		return nil, fmt.Errorf("exprpred: ridge CV needs penalties (%d) and ≥ 2 validation rows (%d)", len(lambdas), len(val))
	}
	rb, err := newRidgeBasis(tensor.GatherRows(x, d, train), len(train), d, tensor.GatherRows(y, g, train), g)
	if err != nil {
		return nil, err
	}
	xv, yv := tensor.GatherRows(x, d, val), tensor.GatherRows(y, g, val)
	best, bestScore := lambdas[0], math.Inf(-1)
	for _, l := range lambdas {
		pred := rb.solve(l).Predict(xv, len(val))
		s := Summarize(GenePearson(pred, yv, len(val), g), yv, len(val), g, 0).MeanAll
		if s > bestScore {
			best, bestScore = l, s
		}
	}
	all := append(slices.Clone(train), val...)
	return FitRidge(tensor.GatherRows(x, d, all), len(all), d, tensor.GatherRows(y, g, all), g, best)
}

// Predict returns the n × G predictions for the n × D features x.
func (r *Ridge) Predict(x []float32, n int) []float32 {
	z := standardize(x, n, r.D, r.XMean, r.XScale)
	out := make([]float32, n*r.G)
	for i := range n {
		copy(out[i*r.G:(i+1)*r.G], r.B)
	}
	tensor.Gemm(false, false, n, r.G, r.D, 1, z, r.D, r.W, r.G, 1, out, r.G)
	return out
}

func standardize(x []float32, n, d int, mean, scale []float32) []float32 {
	z := make([]float32, n*d)
	for i := range n {
		for j := range d {
			z[i*d+j] = (x[i*d+j] - mean[j]) / scale[j]
		}
	}
	return z
}

func f64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// Retrieve predicts, for each of the nq rows of query (image embeddings),
// the mean of the values (nk × g) of the k keys (expression embeddings,
// nk × d) most similar to it by cosine similarity (ties broken by the
// lower key index).
func Retrieve(query []float32, nq int, keys []float32, nk, d int, values []float32, g, k int) ([]float32, error) {
	if len(query) != nq*d || len(keys) != nk*d || len(values) != nk*g {
		return nil, fmt.Errorf("exprpred: retrieval got %d query, %d key and %d value entries for %d, %d rows of %d and %d", len(query), len(keys), len(values), nq, nk, d, g)
	}
	if k < 1 || k > nk {
		return nil, fmt.Errorf("exprpred: retrieval of the top %d of %d keys", k, nk)
	}
	q, kk := tensor.UnitRows(query, nq, d), tensor.UnitRows(keys, nk, d)
	sim := make([]float32, nq*nk)
	tensor.Gemm(false, true, nq, nk, d, 1, q, d, kk, d, 0, sim, nk)
	out := make([]float32, nq*g)
	order := make([]int, nk)
	acc := make([]float64, g)
	for i := range nq {
		row := sim[i*nk : (i+1)*nk]
		for j := range order {
			order[j] = j
		}
		sort.SliceStable(order, func(a, b int) bool { return row[order[a]] > row[order[b]] })
		clear(acc)
		for _, j := range order[:k] {
			for t, v := range values[j*g : (j+1)*g] {
				acc[t] += float64(v)
			}
		}
		for t := range g {
			out[i*g+t] = float32(acc[t] / float64(k))
		}
	}
	return out, nil
}

// GenePearson returns, for each of the g genes, the Pearson correlation
// over the n spots between pred and truth (both n × g); NaN where either is
// constant (undefined).
func GenePearson(pred, truth []float32, n, g int) []float64 {
	out := make([]float64, g)
	for j := range g {
		var mp, mt float64
		for i := range n {
			mp += float64(pred[i*g+j])
			mt += float64(truth[i*g+j])
		}
		mp /= float64(n)
		mt /= float64(n)
		var sxy, sxx, syy float64
		for i := range n {
			a, b := float64(pred[i*g+j])-mp, float64(truth[i*g+j])-mt
			sxy += a * b
			sxx += a * a
			syy += b * b
		}
		if n < 2 || sxx <= 1e-24*float64(n) || syy <= 1e-24*float64(n) {
			out[j] = math.NaN()
			continue
		}
		out[j] = sxy / math.Sqrt(sxx*syy)
	}
	return out
}

// Score summarises per-gene correlations.
type Score struct {
	// MeanAll is the mean correlation over every gene whose measured
	// expression varies; genes with an undefined correlation because the
	// prediction is constant count as 0.
	MeanAll float64
	// MeanTop is the same over the Top genes of highest measured variance.
	MeanTop float64
	Top     int
	// Genes is the number of genes averaged (measured expression not
	// constant) and Undefined those among them with a constant prediction.
	Genes, Undefined int
}

// Summarize averages the per-gene correlations pcc (from GenePearson) over
// the genes whose measured expression truth (n × g) varies, and over the
// top of them with the highest measured variance (top ≤ 0: none).
func Summarize(pcc []float64, truth []float32, n, g, top int) Score {
	_, variance := tensor.ColumnMoments(truth, n, g)
	var genes []int
	for j := range g {
		if variance[j] > 1e-12 {
			genes = append(genes, j)
		}
	}
	sc := Score{Genes: len(genes)}
	mean := func(idx []int) float64 {
		if len(idx) == 0 {
			return math.NaN()
		}
		var s float64
		for _, j := range idx {
			if !math.IsNaN(pcc[j]) {
				s += pcc[j]
			}
		}
		return s / float64(len(idx))
	}
	for _, j := range genes {
		if math.IsNaN(pcc[j]) {
			sc.Undefined++
		}
	}
	sc.MeanAll = mean(genes)
	if top > 0 {
		byVar := slices.Clone(genes)
		sort.SliceStable(byVar, func(a, b int) bool { return variance[byVar[a]] > variance[byVar[b]] })
		sc.Top = min(top, len(byVar))
		sc.MeanTop = mean(byVar[:sc.Top])
	}
	return sc
}

// MSE returns the mean squared error between pred and truth.
func MSE(pred, truth []float32) float64 {
	var s float64
	for i := range pred {
		d := float64(pred[i]) - float64(truth[i])
		s += d * d
	}
	return s / float64(max(len(pred), 1))
}
