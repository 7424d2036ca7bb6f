package study

import (
	"fmt"
	"slices"

	"github.com/spotfuse/spotfuse/preprocess"
	"github.com/spotfuse/spotfuse/pretrain"
	"github.com/spotfuse/spotfuse/section"
	"github.com/spotfuse/spotfuse/tensor"
)

// exprData is the expression of every loaded section on the shared highly
// variable genes.
type exprData struct {
	Genes []string
	// Pool is the pooled expression of the pretraining sections (in
	// Config.PretrainExpr order, one batch per section).
	Pool *pretrain.ExprData
	// X and Counts give each section's spots × G log1p(count / library ·
	// 1e4) values and raw counts (views into Pool for pool sections).
	X, Counts map[string][]float32
}

// buildExpression pools the sections named in pool, selects hvg highly
// variable genes on them (pretrain.BuildExprData: genes shared by the pool,
// batch-aware Seurat v3 on raw counts), and expresses every section of
// secs on those genes (a gene a non-pool section lacks is zero there).
func buildExpression(secs []*section.Section, pool []string, hvg int) (*exprData, error) {
	byName := map[string]*section.Section{}
	for _, s := range secs {
		byName[s.Name] = s
	}
	var poolSecs []*section.Section
	for _, n := range pool {
		s, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("study: expression pool section %s was not read", n)
		}
		poolSecs = append(poolSecs, s)
	}
	d, err := pretrain.BuildExprData(poolSecs, pretrain.ExprDataOptions{HVG: hvg})
	if err != nil {
		return nil, err
	}
	e := &exprData{Genes: d.Genes, Pool: d, X: map[string][]float32{}, Counts: map[string][]float32{}}
	row := 0
	for _, s := range poolSecs {
		lo, hi := row*d.G, (row+s.NumSpots())*d.G
		e.X[s.Name], e.Counts[s.Name] = d.X[lo:hi:hi], d.Counts[lo:hi:hi]
		row += s.NumSpots()
	}
	for _, s := range secs {
		if slices.Contains(pool, s.Name) {
			continue
		}
		one, err := pretrain.BuildExprData([]*section.Section{s}, pretrain.ExprDataOptions{Genes: d.Genes})
		if err != nil {
			return nil, err
		}
		e.X[s.Name], e.Counts[s.Name] = one.X, one.Counts
	}
	return e, nil
}

// pca is a fitted principal component projection.
type pca struct {
	Mean       []float32
	Components []float32 // K × G, row-major
	G, K       int
}

// fitPCA fits k principal components of the n × g matrix x
// (preprocess.PCA).
func fitPCA(x []float32, n, g, k int) (*pca, error) {
	k = min(k, n, g)
	_, comps, _, err := preprocess.PCA(x, n, g, k)
	if err != nil {
		return nil, fmt.Errorf("study: %w", err)
	}
	p := &pca{Mean: make([]float32, g), Components: comps, G: g, K: k}
	sum := make([]float64, g)
	for i := 0; i < n; i++ {
		for j, v := range x[i*g : (i+1)*g] {
			sum[j] += float64(v)
		}
	}
	for j := range sum {
		p.Mean[j] = float32(sum[j] / float64(n))
	}
	return p, nil
}

// transform projects the n × G matrix x onto the components: (x − mean)·Cᵀ.
func (p *pca) transform(x []float32, n int) []float32 {
	c := make([]float32, n*p.G)
	for i := 0; i < n; i++ {
		for j := 0; j < p.G; j++ {
			c[i*p.G+j] = x[i*p.G+j] - p.Mean[j]
		}
	}
	out := make([]float32, n*p.K)
	tensor.Gemm(false, true, n, p.K, p.G, 1, c, p.G, p.Components, p.G, 0, out, p.K)
	return out
}
