package preprocess

import (
	"math"
	"slices"
	"testing"

	"github.com/spotfuse/spotfuse/sparse"
)

// csrOf builds a CSR matrix from dense rows.
func csrOf(rows [][]float32) *sparse.CSR {
	b := sparse.NewBuilder(len(rows[0]))
	for _, r := range rows {
		for j, v := range r {
			b.Add(j, v)
		}
		b.EndRow()
	}
	return b.Build()
}

func TestFilters(t *testing.T) {
	m := csrOf([][]float32{
		{1, 0, 0, 5},
		{0, 0, 0, 1},
		{2, 3, 0, 1},
	})
	tests := []struct {
		name      string
		minCounts float64
		minGenes  int
		want      []int
	}{
		{"no filter", 0, 0, []int{0, 1, 2}},
		{"min counts 6", 6, 0, []int{0, 2}},
		{"min genes 2", 0, 2, []int{0, 2}},
		{"min genes 3", 0, 3, []int{2}},
	}
	for _, tc := range tests {
		got, keep := FilterSpots(m, tc.minCounts, tc.minGenes)
		if !slices.Equal(keep, tc.want) || got.Rows != len(tc.want) {
			t.Errorf("%s: kept %v, want %v", tc.name, keep, tc.want)
		}
	}
	g, keep := FilterGenes(m, 2)
	if !slices.Equal(keep, []int{0, 3}) || g.Cols != 2 || g.At(2, 1) != 1 || g.At(0, 1) != 5 {
		t.Errorf("FilterGenes kept %v: %v", keep, g.Dense())
	}
	if err := g.Validate(); err != nil {
		t.Error(err)
	}
}

func TestNormalizeLog1p(t *testing.T) {
	m := csrOf([][]float32{{1, 3, 0}, {0, 0, 0}, {5, 0, 5}})
	n, err := NormalizeTotal(m, 1e4)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{2500, 7500, 0, 0, 0, 0, 5000, 0, 5000}
	if !slices.Equal(n.Dense(), want) {
		t.Errorf("NormalizeTotal = %v, want %v", n.Dense(), want)
	}
	if m.At(0, 0) != 1 {
		t.Error("NormalizeTotal modified its input")
	}
	l := Log1p(n)
	if got, w := l.At(0, 1), float32(math.Log1p(7500)); got != w {
		t.Errorf("Log1p = %g, want %g", got, w)
	}
	if _, err := NormalizeTotal(m, 0); err == nil {
		t.Error("target 0 accepted")
	}
	if _, err := NormalizeTotal(csrOf([][]float32{{-1, 2}}), 1e4); err == nil {
		t.Error("negative count accepted")
	}
}

func TestMatchGenesAndAlign(t *testing.T) {
	a := []string{"A", "B", "C", "D"}
	b := []string{"D", "X", "B", "B"}
	inter, err := MatchGenes(false, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inter.Genes, []string{"B", "D"}) ||
		!slices.Equal(inter.Index[0], []int{1, 3}) || !slices.Equal(inter.Index[1], []int{2, 0}) {
		t.Errorf("intersection %+v", inter)
	}
	if !slices.Equal(inter.Dropped[0], []string{"A", "C"}) || !slices.Equal(inter.Dropped[1], []string{"X"}) ||
		!slices.Equal(inter.Duplicates[1], []string{"B"}) {
		t.Errorf("dropped %v duplicates %v", inter.Dropped, inter.Duplicates)
	}
	uni, err := MatchGenes(true, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(uni.Genes, []string{"A", "B", "C", "D", "X"}) ||
		!slices.Equal(uni.Index[1], []int{-1, 2, -1, 0, 1}) || !slices.Equal(uni.Missing[1], []string{"A", "C"}) ||
		!slices.Equal(uni.Missing[0], []string{"X"}) {
		t.Errorf("union %+v", uni)
	}
	if _, err := MatchGenes(false, []string{"A"}, []string{"B"}); err == nil {
		t.Error("disjoint gene lists accepted")
	}
	// Section b's counts aligned to the union: columns D X B B(dup).
	m := csrOf([][]float32{{1, 2, 3, 4}, {0, 5, 0, 0}})
	al, err := Align(m, uni.Index[1])
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 3, 0, 1, 2, 0, 0, 0, 0, 5}
	if !slices.Equal(al.Dense(), want) {
		t.Errorf("Align = %v, want %v", al.Dense(), want)
	}
	if err := al.Validate(); err != nil {
		t.Error(err)
	}
	if _, err := Align(m, []int{7}); err == nil {
		t.Error("out-of-range align index accepted")
	}
}

func TestDense(t *testing.T) {
	m := csrOf([][]float32{{1, 0, 2}, {0, 3, 0}})
	got, err := Dense(m, []int{2, 0, 2})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{2, 1, 2, 0, 0, 0}; !slices.Equal(got, want) {
		t.Errorf("Dense = %v, want %v", got, want)
	}
	if _, err := Dense(m, []int{3}); err == nil {
		t.Error("out-of-range gene accepted")
	}
}

func TestStandardize(t *testing.T) {
	// Column 0: 1, 2, 3 (mean 2, sd 1); column 1 constant; column 2 has an outlier.
	x := []float32{1, 5, 0, 2, 5, 0, 3, 5, 0}
	mean, sd, err := Standardize(x, 3, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if mean[0] != 2 || sd[0] != 1 || sd[1] != 1 || sd[2] != 1 {
		t.Errorf("mean %v sd %v", mean, sd)
	}
	if want := []float32{-1, 0, 0, 0, 0, 0, 1, 0, 0}; !slices.Equal(x, want) {
		t.Errorf("standardised %v, want %v", x, want)
	}
	y := []float32{0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 50, 0, 0}
	if _, _, err := Standardize(y, 12, 3, 2); err != nil {
		t.Fatal(err)
	}
	if y[33] != 2 {
		t.Errorf("outlier clipped to %g, want 2", y[33])
	}
	if _, _, err := Standardize(x, 4, 3, 0); err == nil {
		t.Error("wrong shape accepted")
	}
}

func TestHVGErrors(t *testing.T) {
	m := csrOf([][]float32{{1, 2, 3}, {2, 0, 1}, {0, 4, 4}})
	tests := []struct {
		name string
		opt  HVGOptions
	}{
		{"too many genes", HVGOptions{N: 4}},
		{"zero genes", HVGOptions{N: 0}},
		{"unknown flavour", HVGOptions{N: 1, Flavor: "cell_ranger"}},
		{"batch length", HVGOptions{N: 1, Batch: []int{0, 1}}},
		{"singleton batch", HVGOptions{N: 1, Batch: []int{0, 0, 1}}},
	}
	for _, tc := range tests {
		if _, err := HighlyVariableGenes(m, tc.opt); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := HighlyVariableGenes(csrOf([][]float32{{1.5, 2}, {2, 1}}), HVGOptions{N: 1, Flavor: SeuratV3}); err == nil {
		t.Error("seurat_v3 accepted non-integer counts")
	}
}

func TestLoessReproducesQuadratic(t *testing.T) {
	// A local quadratic fit reproduces any quadratic exactly.
	var x, y []float64
	for i := range 50 {
		v := float64(i)*0.2 - 3
		x = append(x, v)
		y = append(y, 1.5*v*v-2*v+0.3)
	}
	fit := Loess(x, y, 0.3)
	for i := range fit {
		if math.Abs(fit[i]-y[i]) > 1e-9 {
			t.Fatalf("loess at %g = %g, want %g", x[i], fit[i], y[i])
		}
	}
}

func TestPCAErrors(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6}
	for _, tc := range []struct{ n, d, k int }{{3, 2, 3}, {3, 2, 0}, {4, 2, 1}, {1, 6, 1}} {
		if _, _, _, err := PCA(x, tc.n, tc.d, tc.k); err == nil {
			t.Errorf("PCA(%d×%d, k=%d) accepted", tc.n, tc.d, tc.k)
		}
	}
}
