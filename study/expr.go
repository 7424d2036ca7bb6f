package study

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"gonum.org/v1/gonum/mat"

	"github.com/spotfuse/spotfuse/section"
	"github.com/spotfuse/spotfuse/tensor"
)

// exprData is the expression of every loaded section on the shared highly
// variable genes.
type exprData struct {
	Genes  []string             // the HVG symbols
	X      map[string][]float32 // section → spots × G, log1p(counts / total · 1e4)
	Counts map[string][]float32 // section → spots × G raw counts
}

// commonGenes returns the gene symbols present in every section, in the
// order of the first, and for each section the column of each (the first
// column when a symbol repeats).
func commonGenes(secs []*section.Section) ([]string, [][]int, error) {
	if len(secs) == 0 {
		return nil, nil, fmt.Errorf("study: no sections")
	}
	cols := make([]map[string]int, len(secs))
	for si, s := range secs {
		cols[si] = make(map[string]int, len(s.Genes))
		for j, g := range s.Genes {
			if _, dup := cols[si][g]; !dup {
				cols[si][g] = j
			}
		}
	}
	var genes []string
	seen := map[string]bool{}
	for _, g := range secs[0].Genes {
		ok := !seen[g]
		for si := range secs {
			if _, in := cols[si][g]; !in {
				ok = false
				break
			}
		}
		if ok {
			genes = append(genes, g)
			seen[g] = true
		}
	}
	if len(genes) == 0 {
		return nil, nil, fmt.Errorf("study: the %d sections share no gene symbol", len(secs))
	}
	idx := make([][]int, len(secs))
	for si := range secs {
		idx[si] = make([]int, len(genes))
		for gi, g := range genes {
			idx[si][gi] = cols[si][g]
		}
	}
	return genes, idx, nil
}

// logNormalized returns spots × len(cols) values log1p(count / total · 1e4)
// of the columns cols of s (total over all genes of the spot), and the raw
// counts of those columns.
func logNormalized(s *section.Section, cols []int) (x, counts []float32) {
	n, g := s.NumSpots(), len(cols)
	pos := make(map[int32]int, g)
	for k, c := range cols {
		pos[int32(c)] = k
	}
	totals := s.Counts.RowSums()
	x = make([]float32, n*g)
	counts = make([]float32, n*g)
	for i := 0; i < n; i++ {
		idx, val := s.Counts.Row(i)
		f := 0.0
		if totals[i] > 0 {
			f = 1e4 / totals[i]
		}
		for k, c := range idx {
			if p, ok := pos[c]; ok {
				counts[i*g+p] = val[k]
				x[i*g+p] = float32(math.Log1p(float64(val[k]) * f))
			}
		}
	}
	return x, counts
}

// buildExpression matches genes across secs, picks the hvg genes of highest
// variance of log-normalised expression over the spots of the pool
// sections, and returns every section's expression on them.
func buildExpression(secs []*section.Section, pool []string, hvg int) (*exprData, error) {
	genes, cols, err := commonGenes(secs)
	if err != nil {
		return nil, err
	}
	// Pooled per-gene variance of the log-normalised expression.
	var sum, sq []float64
	sum, sq = make([]float64, len(genes)), make([]float64, len(genes))
	n := 0
	for si, s := range secs {
		if !slices.Contains(pool, s.Name) {
			continue
		}
		x, _ := logNormalized(s, cols[si])
		for i := 0; i < s.NumSpots(); i++ {
			row := x[i*len(genes) : (i+1)*len(genes)]
			for j, v := range row {
				sum[j] += float64(v)
				sq[j] += float64(v) * float64(v)
			}
		}
		n += s.NumSpots()
	}
	if n < 2 {
		return nil, fmt.Errorf("study: the expression pool %v has %d spots", pool, n)
	}
	order := make([]int, len(genes))
	variance := make([]float64, len(genes))
	for j := range genes {
		order[j] = j
		m := sum[j] / float64(n)
		variance[j] = sq[j]/float64(n) - m*m
	}
	sort.SliceStable(order, func(a, b int) bool { return variance[order[a]] > variance[order[b]] })
	if hvg > len(genes) {
		hvg = len(genes)
	}
	keep := slices.Clone(order[:hvg])
	slices.Sort(keep)
	d := &exprData{X: map[string][]float32{}, Counts: map[string][]float32{}}
	for _, j := range keep {
		d.Genes = append(d.Genes, genes[j])
	}
	for si, s := range secs {
		c := make([]int, len(keep))
		for k, j := range keep {
			c[k] = cols[si][j]
		}
		d.X[s.Name], d.Counts[s.Name] = logNormalized(s, c)
	}
	return d, nil
}

// pca is a fitted principal component projection.
type pca struct {
	Mean       []float32
	Components []float32 // G × K, column k the k-th component
	G, K       int
}

// fitPCA finds the k leading principal components of the n × g matrix x by
// randomised subspace iteration (Halko et al. 2011; 4 power iterations with
// k+10 columns), seeded.
func fitPCA(x []float32, n, g, k int, seed uint64) (*pca, error) {
	if k > min(n, g) {
		k = min(n, g)
	}
	if k < 1 {
		return nil, fmt.Errorf("study: PCA of %d × %d", n, g)
	}
	p := &pca{Mean: make([]float32, g), G: g, K: k}
	for i := 0; i < n; i++ {
		for j := 0; j < g; j++ {
			p.Mean[j] += x[i*g+j]
		}
	}
	for j := range p.Mean {
		p.Mean[j] /= float32(n)
	}
	c := make([]float32, n*g)
	for i := 0; i < n; i++ {
		for j := 0; j < g; j++ {
			c[i*g+j] = x[i*g+j] - p.Mean[j]
		}
	}
	l := min(k+10, min(n, g))
	rng := rand.New(rand.NewPCG(seed, 0x9ca))
	q := make([]float32, g*l)
	for i := range q {
		q[i] = float32(rng.NormFloat64())
	}
	cq := make([]float32, n*l)
	ctcq := make([]float32, g*l)
	for it := 0; it < 5; it++ {
		orthonormalize(q, g, l)
		tensor.Gemm(false, false, n, l, g, 1, c, g, q, l, 0, cq, l)   // C Q
		tensor.Gemm(true, false, g, l, n, 1, c, g, cq, l, 0, ctcq, l) // Cᵀ C Q
		if it < 4 {
			copy(q, ctcq)
		}
	}
	// B = Qᵀ Cᵀ C Q (l × l), symmetric; its eigenvectors rotate Q.
	b := make([]float32, l*l)
	tensor.Gemm(true, false, l, l, g, 1, q, l, ctcq, l, 0, b, l)
	sym := mat.NewSymDense(l, nil)
	for i := 0; i < l; i++ {
		for j := i; j < l; j++ {
			sym.SetSym(i, j, 0.5*float64(b[i*l+j]+b[j*l+i]))
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(sym, true) {
		return nil, fmt.Errorf("study: PCA eigendecomposition failed")
	}
	var vec mat.Dense
	eig.VectorsTo(&vec)
	// Eigenvalues come in ascending order: the last columns lead.
	p.Components = make([]float32, g*k)
	for kk := 0; kk < k; kk++ {
		col := l - 1 - kk
		// Component = Q · u_col; sign fixed so the largest |entry| is positive.
		comp := make([]float64, g)
		big := 0
		for r := 0; r < g; r++ {
			var s float64
			for t := 0; t < l; t++ {
				s += float64(q[r*l+t]) * vec.At(t, col)
			}
			comp[r] = s
			if math.Abs(s) > math.Abs(comp[big]) {
				big = r
			}
		}
		sign := 1.0
		if comp[big] < 0 {
			sign = -1
		}
		for r := 0; r < g; r++ {
			p.Components[r*k+kk] = float32(sign * comp[r])
		}
	}
	return p, nil
}

// orthonormalize replaces the l columns of the g × l matrix q by an
// orthonormal basis of their span (modified Gram–Schmidt, twice).
func orthonormalize(q []float32, g, l int) {
	for pass := 0; pass < 2; pass++ {
		for a := 0; a < l; a++ {
			for b := 0; b < a; b++ {
				var dot float64
				for r := 0; r < g; r++ {
					dot += float64(q[r*l+a]) * float64(q[r*l+b])
				}
				for r := 0; r < g; r++ {
					q[r*l+a] -= float32(dot) * q[r*l+b]
				}
			}
			var norm float64
			for r := 0; r < g; r++ {
				norm += float64(q[r*l+a]) * float64(q[r*l+a])
			}
			norm = math.Sqrt(norm)
			if norm < 1e-20 {
				norm = 1
			}
			for r := 0; r < g; r++ {
				q[r*l+a] = float32(float64(q[r*l+a]) / norm)
			}
		}
	}
}

// transform projects the n × G matrix x onto the components.
func (p *pca) transform(x []float32, n int) []float32 {
	c := make([]float32, n*p.G)
	for i := 0; i < n; i++ {
		for j := 0; j < p.G; j++ {
			c[i*p.G+j] = x[i*p.G+j] - p.Mean[j]
		}
	}
	out := make([]float32, n*p.K)
	tensor.Gemm(false, false, n, p.K, p.G, 1, c, p.G, p.Components, p.K, 0, out, p.K)
	return out
}
