package preprocess

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/spotfuse/spotfuse/sparse"
)

// HVG flavours.
const (
	// Seurat ranks genes by dispersion (var/mean) normalised within 20
	// equal-width bins of mean expression; input is log1p-normalised data
	// (scanpy flavor="seurat").
	Seurat = "seurat"
	// SeuratV3 ranks genes by the variance of clipped standardised counts
	// under a loess fit of log variance on log mean; input is raw counts
	// (scanpy flavor="seurat_v3").
	SeuratV3 = "seurat_v3"
)

// HVGOptions configures HighlyVariableGenes.
type HVGOptions struct {
	N      int    // number of genes to select (required)
	Flavor string // Seurat (default) or SeuratV3
	// Batch, when non-nil, gives a batch id per row (e.g. the section of a
	// pooled matrix). Genes are scored within each batch and then ranked
	// as scanpy does with batch_key: Seurat by the number of batches in
	// which the gene is among the top N, then by mean normalised
	// dispersion; SeuratV3 by median within-batch rank, then by the number
	// of batches.
	Batch []int
	NBins int     // Seurat mean bins (default 20)
	Span  float64 // SeuratV3 loess span (default 0.3)
}

// HVGResult holds per-gene statistics (averaged over batches) and the
// selection.
type HVGResult struct {
	Selected []int  // chosen gene columns, best first
	Highly   []bool // per gene: selected
	// Means: Seurat, log1p of the mean of expm1(x) (scanpy's "means");
	// SeuratV3, the mean raw count.
	Means []float64
	// Seurat: log dispersion and its within-bin z-score (NaN where undefined).
	Dispersions, DispersionsNorm []float64
	// SeuratV3: variance and normalised (clipped, regularised) variance.
	Variances, VariancesNorm []float64
	// NBatches counts the batches in which each gene is among the top N.
	NBatches []int
}

// HighlyVariableGenes selects opt.N highly variable genes of m (spots ×
// genes). For Seurat, m must be log1p of normalised counts; for SeuratV3,
// raw counts.
func HighlyVariableGenes(m *sparse.CSR, opt HVGOptions) (*HVGResult, error) {
	if opt.Flavor == "" {
		opt.Flavor = Seurat
	}
	if opt.Flavor != Seurat && opt.Flavor != SeuratV3 {
		return nil, fmt.Errorf("preprocess: unknown HVG flavour %q (want %q or %q)", opt.Flavor, Seurat, SeuratV3)
	}
	if opt.N <= 0 || opt.N > m.Cols {
		return nil, fmt.Errorf("preprocess: asked for %d highly variable genes out of %d", opt.N, m.Cols)
	}
	if opt.NBins == 0 {
		opt.NBins = 20
	}
	if opt.Span == 0 {
		opt.Span = 0.3
	}
	if opt.Batch != nil && len(opt.Batch) != m.Rows {
		return nil, fmt.Errorf("preprocess: %d batch ids for %d spots", len(opt.Batch), m.Rows)
	}
	batchRows := map[int][]int{}
	var batches []int
	for i := 0; i < m.Rows; i++ {
		b := 0
		if opt.Batch != nil {
			b = opt.Batch[i]
		}
		if _, ok := batchRows[b]; !ok {
			batches = append(batches, b)
		}
		batchRows[b] = append(batchRows[b], i)
	}
	slices.Sort(batches)
	g := m.Cols
	res := &HVGResult{Highly: make([]bool, g), NBatches: make([]int, g), Means: make([]float64, g)}
	for _, b := range batches {
		if len(batchRows[b]) < 2 {
			return nil, fmt.Errorf("preprocess: batch %d has %d spot(s); HVG needs at least 2 per batch", b, len(batchRows[b]))
		}
	}
	if opt.Flavor == Seurat {
		return seuratBatches(m, opt, batches, batchRows, res)
	}
	return seuratV3Batches(m, opt, batches, batchRows, res)
}

// colStats returns per-column sum and sum of squares of f(x) over rows.
func colStats(m *sparse.CSR, rows []int, f func(float64) float64) (sum, sumSq []float64, nz []int) {
	sum = make([]float64, m.Cols)
	sumSq = make([]float64, m.Cols)
	nz = make([]int, m.Cols)
	for _, i := range rows {
		c, v := m.Row(i)
		for k := range c {
			x := f(float64(v[k]))
			sum[c[k]] += x
			sumSq[c[k]] += x * x
			if v[k] != 0 {
				nz[c[k]]++
			}
		}
	}
	return sum, sumSq, nz
}

// meanVar is scanpy's _get_mean_var: mean and E[x²]−mean² scaled by n/(n−1).
func meanVar(sum, sumSq []float64, n int) (mean, variance []float64) {
	mean = make([]float64, len(sum))
	variance = make([]float64, len(sum))
	fn := float64(n)
	for j := range sum {
		mean[j] = sum[j] / fn
		variance[j] = (sumSq[j]/fn - mean[j]*mean[j]) * fn / (fn - 1)
	}
	return mean, variance
}

func seuratBatches(m *sparse.CSR, opt HVGOptions, batches []int, batchRows map[int][]int, res *HVGResult) (*HVGResult, error) {
	g := m.Cols
	nb := len(batches)
	sumMean := make([]float64, g)
	sumDisp := make([]float64, g)
	sumNorm := make([]float64, g)
	cntMean := make([]int, g)
	cntDisp := make([]int, g)
	cntNorm := make([]int, g)
	for _, b := range batches {
		rows := batchRows[b]
		sum, sumSq, nz := colStats(m, rows, math.Expm1)
		// With batches, scanpy drops genes absent from the batch first.
		genes := make([]int, 0, g)
		for j := range g {
			if nb == 1 || nz[j] > 0 {
				genes = append(genes, j)
			}
		}
		mean, variance := meanVar(sum, sumSq, len(rows))
		means := make([]float64, len(genes))
		disp := make([]float64, len(genes))
		for k, j := range genes {
			mu := mean[j]
			if mu == 0 {
				mu = 1e-12
			}
			d := variance[j] / mu
			if d == 0 {
				d = math.NaN()
			}
			disp[k] = math.Log(d)
			means[k] = math.Log1p(mu)
		}
		norm := binnedZScores(means, disp, opt.NBins)
		top := topN(norm, opt.N)
		for k, j := range genes {
			sumMean[j] += means[k]
			cntMean[j]++
			if !math.IsNaN(disp[k]) {
				sumDisp[j] += disp[k]
				cntDisp[j]++
			}
			if !math.IsNaN(norm[k]) {
				sumNorm[j] += norm[k]
				cntNorm[j]++
			}
			if top[k] {
				res.NBatches[j]++
			}
		}
	}
	res.Dispersions = make([]float64, g)
	res.DispersionsNorm = make([]float64, g)
	for j := range g {
		res.Means[j] = nanDiv(sumMean[j], cntMean[j])
		res.Dispersions[j] = nanDiv(sumDisp[j], cntDisp[j])
		res.DispersionsNorm[j] = nanDiv(sumNorm[j], cntNorm[j])
	}
	order := make([]int, g)
	for j := range order {
		order[j] = j
	}
	// Sort by batches desc, then normalised dispersion desc (NaN last),
	// stable on gene index, as pandas sort_values(na_position="last").
	slices.SortStableFunc(order, func(a, b int) int {
		if res.NBatches[a] != res.NBatches[b] {
			return res.NBatches[b] - res.NBatches[a]
		}
		return cmpDescNaNLast(res.DispersionsNorm[a], res.DispersionsNorm[b])
	})
	if nb == 1 {
		// Single batch: scanpy keeps genes whose NaN-to-zero normalised
		// dispersion reaches the N-th largest; rank by that value.
		slices.SortStableFunc(order, func(a, b int) int {
			return cmpDescNaNLast(nanToZero(res.DispersionsNorm[a]), nanToZero(res.DispersionsNorm[b]))
		})
	}
	res.Selected = order[:opt.N]
	for _, j := range res.Selected {
		res.Highly[j] = true
	}
	return res, nil
}

// binnedZScores normalises disp within nBins equal-width bins of means
// (pandas.cut semantics), as scanpy's seurat flavour. Bins whose spread is
// undefined (a single gene) use mean 0 and sd equal to the bin mean.
func binnedZScores(means, disp []float64, nBins int) []float64 {
	bin := cutBins(means, nBins)
	sum := make([]float64, nBins)
	cnt := make([]int, nBins)
	for k, d := range disp {
		if !math.IsNaN(d) {
			sum[bin[k]] += d
			cnt[bin[k]]++
		}
	}
	mu := make([]float64, nBins)
	sd := make([]float64, nBins)
	for b := range nBins {
		mu[b] = nanDiv(sum[b], cnt[b])
	}
	for k, d := range disp {
		if !math.IsNaN(d) {
			t := d - mu[bin[k]]
			sd[bin[k]] += t * t
		}
	}
	for b := range nBins {
		if cnt[b] > 1 {
			sd[b] = math.Sqrt(sd[b] / float64(cnt[b]-1))
		} else {
			sd[b] = mu[b]
			mu[b] = 0
		}
	}
	norm := make([]float64, len(disp))
	for k, d := range disp {
		norm[k] = (d - mu[bin[k]]) / sd[bin[k]]
	}
	return norm
}

// cutBins assigns each value to one of n equal-width, right-closed bins
// spanning its range, like pandas.cut(x, n).
func cutBins(x []float64, n int) []int {
	mn, mx := math.Inf(1), math.Inf(-1)
	for _, v := range x {
		mn, mx = math.Min(mn, v), math.Max(mx, v)
	}
	edges := make([]float64, n+1)
	if mn == mx {
		adj := 0.001
		if mn != 0 {
			adj = 0.001 * math.Abs(mn)
		}
		mn, mx = mn-adj, mx+adj
		linspace(edges, mn, mx)
	} else {
		linspace(edges, mn, mx)
		edges[0] -= (mx - mn) * 0.001
	}
	bin := make([]int, len(x))
	for k, v := range x {
		// First edge ≥ v, minus one: v ∈ (edges[i], edges[i+1]].
		i, _ := slices.BinarySearch(edges, v)
		bin[k] = min(max(i-1, 0), n-1)
	}
	return bin
}

func linspace(dst []float64, a, b float64) {
	n := len(dst) - 1
	step := (b - a) / float64(n)
	for i := range dst {
		dst[i] = a + float64(i)*step
	}
	dst[n] = b
}

// topN marks the n largest values (NaN counted as 0, as scanpy's
// nan_to_num before the cut-off); ties at the cut-off are all kept.
func topN(score []float64, n int) []bool {
	var finite []float64
	for _, v := range score {
		if !math.IsNaN(v) {
			finite = append(finite, v)
		}
	}
	slices.Sort(finite)
	slices.Reverse(finite)
	top := make([]bool, len(score))
	if len(finite) == 0 {
		return top
	}
	cut := finite[min(n, len(finite))-1]
	for k, v := range score {
		top[k] = nanToZero(v) >= cut
	}
	return top
}

func seuratV3Batches(m *sparse.CSR, opt HVGOptions, batches []int, batchRows map[int][]int, res *HVGResult) (*HVGResult, error) {
	g := m.Cols
	for _, v := range m.Data {
		if v < 0 || v != float32(math.Round(float64(v))) {
			return nil, fmt.Errorf("preprocess: seurat_v3 HVG needs raw integer counts, found %g", v)
		}
	}
	res.Variances = make([]float64, g)
	res.VariancesNorm = make([]float64, g)
	ranks := make([][]float64, g)
	for _, b := range batches {
		rows := batchRows[b]
		n := float64(len(rows))
		sum, sumSq, _ := colStats(m, rows, func(x float64) float64 { return x })
		mean, variance := meanVar(sum, sumSq, len(rows))
		var lx, ly []float64
		var idx []int
		for j := range g {
			if variance[j] > 0 {
				idx = append(idx, j)
				lx = append(lx, math.Log10(mean[j]))
				ly = append(ly, math.Log10(variance[j]))
			}
		}
		if len(idx) < 3 {
			return nil, fmt.Errorf("preprocess: batch %d has only %d variable genes; seurat_v3 needs more", b, len(idx))
		}
		fit := Loess(lx, ly, opt.Span)
		regStd := make([]float64, g)
		for j := range regStd {
			regStd[j] = 1 // 10^0 for constant genes, as scanpy
		}
		for k, j := range idx {
			regStd[j] = math.Sqrt(math.Pow(10, fit[k]))
		}
		clipVal := make([]float64, g)
		for j := range g {
			clipVal[j] = regStd[j]*math.Sqrt(n) + mean[j]
		}
		cs, csq, _ := colStats(m, rows, func(x float64) float64 { return x })
		clear(cs)
		clear(csq)
		for _, i := range rows {
			c, v := m.Row(i)
			for k := range c {
				x := math.Min(float64(v[k]), clipVal[c[k]])
				cs[c[k]] += x
				csq[c[k]] += x * x
			}
		}
		norm := make([]float64, g)
		for j := range g {
			mu := mean[j]
			norm[j] = (n*mu*mu + csq[j] - 2*cs[j]*mu) / ((n - 1) * regStd[j] * regStd[j])
			res.Means[j] += mu / float64(len(batches))
			res.Variances[j] += variance[j] / float64(len(batches))
			res.VariancesNorm[j] += norm[j] / float64(len(batches))
		}
		order := make([]int, g)
		for j := range order {
			order[j] = j
		}
		// numpy argsort (quicksort, not stable) of −norm; ties are rare.
		slices.SortStableFunc(order, func(a, b int) int { return cmpDescNaNLast(norm[a], norm[b]) })
		for r, j := range order[:opt.N] {
			ranks[j] = append(ranks[j], float64(r))
			res.NBatches[j]++
		}
	}
	median := make([]float64, g)
	for j := range g {
		median[j] = medianOf(ranks[j])
	}
	order := make([]int, g)
	for j := range order {
		order[j] = j
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if c := cmpAscNaNLast(median[a], median[b]); c != 0 {
			return c
		}
		return res.NBatches[b] - res.NBatches[a]
	})
	res.Selected = order[:opt.N]
	for _, j := range res.Selected {
		res.Highly[j] = true
	}
	return res, nil
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func nanDiv(s float64, n int) float64 {
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

func nanToZero(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

// cmpDescNaNLast orders a before b when a is larger, NaNs last.
func cmpDescNaNLast(a, b float64) int { return nanLast(a, b, cmp.Compare(b, a)) }

// cmpAscNaNLast orders a before b when a is smaller, NaNs last.
func cmpAscNaNLast(a, b float64) int { return nanLast(a, b, cmp.Compare(a, b)) }

// nanLast orders NaNs after numbers and two numbers by byValue.
func nanLast(a, b float64, byValue int) int {
	switch {
	case math.IsNaN(a) && math.IsNaN(b):
		return 0
	case math.IsNaN(a):
		return 1
	case math.IsNaN(b):
		return -1
	}
	return byValue
}
