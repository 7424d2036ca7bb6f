package study

import "github.com/spotfuse/spotfuse/section"

// Expression is the study's expression of several sections on shared
// highly variable genes (exported for the model bundle and the
// expression-from-H&E evaluation, so they build features exactly as the
// study does).
type Expression struct {
	Genes  []string             // the HVG symbols, in the first section's order
	X      map[string][]float32 // section name → spots × len(Genes), log1p(count / total · 1e4)
	Counts map[string][]float32 // section name → spots × len(Genes) raw counts
}

// BuildExpression selects hvg highly variable genes on the pool sections
// and returns every section of secs expressed on them, exactly as the study
// does (see buildExpression).
func BuildExpression(secs []*section.Section, pool []string, hvg int) (*Expression, error) {
	d, err := buildExpression(secs, pool, hvg)
	if err != nil {
		return nil, err
	}
	return &Expression{Genes: d.Genes, X: d.X, Counts: d.Counts}, nil
}

// Classes returns the labels of secs minus exclude, in the HER2ST order
// (invasive cancer, cancer in situ, immune infiltrate, breast glands,
// connective tissue, adipose tissue, undetermined) then alphabetically: the
// class order of the study.
func Classes(secs []*section.Section, exclude []string) []string {
	return classesOf(secs, exclude)
}
