package pretrain

import (
	"math"
	"slices"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
	"github.com/spotfuse/spotfuse/preprocess"
	"github.com/spotfuse/spotfuse/section"
	"github.com/spotfuse/spotfuse/sparse"
)

// tinySection builds a section from dense counts.
func tinySection(name string, genes []string, counts [][]float32) *section.Section {
	b := sparse.NewBuilder(len(genes))
	s := &section.Section{Name: name, Genes: genes}
	for i, row := range counts {
		for j, v := range row {
			b.Add(j, v)
		}
		b.EndRow()
		s.Spots = append(s.Spots, section.Spot{ID: name + string(rune('a'+i)), Row: i})
	}
	s.Counts = b.Build()
	return s
}

func TestBuildExprData(t *testing.T) {
	a := tinySection("A", []string{"g1", "g2", "g3", "g4"}, [][]float32{{1, 0, 3, 6}, {0, 2, 2, 0}, {5, 5, 0, 0}})
	b := tinySection("B", []string{"g4", "g3", "g5", "g1"}, [][]float32{{1, 1, 2, 4}, {0, 3, 1, 0}, {2, 0, 0, 2}})
	ln := func(c, lib float64) float32 { return float32(math.Log1p(c / lib * 1e4)) }

	t.Run("hvg of shared genes", func(t *testing.T) {
		d, err := BuildExprData([]*section.Section{a, b}, ExprDataOptions{HVG: 3, Flavor: preprocess.Seurat})
		if err != nil {
			t.Fatal(err)
		}
		// Shared genes are g1, g3, g4 (A's order); all three are selected.
		if !slices.Equal(d.Genes, []string{"g1", "g3", "g4"}) {
			t.Fatalf("genes %v", d.Genes)
		}
		if d.N != 6 || d.G != 3 || d.NBatch != 2 || !slices.Equal(d.Batch, []int{0, 0, 0, 1, 1, 1}) {
			t.Fatalf("shape %d×%d, %d batches %v", d.N, d.G, d.NBatch, d.Batch)
		}
		wantCounts := []float32{1, 3, 6, 0, 2, 0, 5, 0, 0, 4, 1, 1, 0, 3, 0, 2, 0, 2}
		if !slices.Equal(d.Counts, wantCounts) {
			t.Errorf("counts %v, want %v", d.Counts, wantCounts)
		}
		// Libraries are over all of a section's genes: A row 0 = 10, B row 0 = 8.
		for _, c := range []struct {
			i    int
			want float32
		}{{0, ln(1, 10)}, {2, ln(6, 10)}, {9, ln(4, 8)}, {13, ln(3, 4)}, {3, 0}} {
			if math.Abs(float64(d.X[c.i]-c.want)) > 1e-6 {
				t.Errorf("X[%d] = %g, want %g", c.i, d.X[c.i], c.want)
			}
		}
		if !slices.Equal(d.SpotIDs, []string{"Aa", "Ab", "Ac", "Ba", "Bb", "Bc"}) || !slices.Equal(d.Sections, []string{"A", "B"}) {
			t.Errorf("ids %v, sections %v", d.SpotIDs, d.Sections)
		}
		if err := d.Validate(true); err != nil {
			t.Error(err)
		}
	})

	t.Run("given genes", func(t *testing.T) {
		d, err := BuildExprData([]*section.Section{a, b}, ExprDataOptions{Genes: []string{"g5", "g1"}})
		if err != nil {
			t.Fatal(err)
		}
		// g5 is absent from A: zeros there.
		want := []float32{0, 1, 0, 0, 0, 5, 2, 4, 1, 0, 0, 2}
		if !slices.Equal(d.Counts, want) {
			t.Errorf("counts %v, want %v", d.Counts, want)
		}
	})

	t.Run("too many genes", func(t *testing.T) {
		if _, err := BuildExprData([]*section.Section{a, b}, ExprDataOptions{HVG: 4}); err == nil {
			t.Error("asking for 4 of 3 shared genes gave no error")
		}
	})
}

func TestBuildExprDataHER2ST(t *testing.T) {
	dir := testutil.HER2ST(t, "counts/B1.tsv.gz")
	var secs []*section.Section
	for _, name := range []string{"B1", "C1"} {
		s, err := section.Open(section.HER2ST(dir, name), section.Options{})
		if err != nil {
			t.Fatal(err)
		}
		secs = append(secs, s)
	}
	d, err := BuildExprData(secs, ExprDataOptions{HVG: 500})
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 295+176 || d.G != 500 {
		t.Fatalf("pooled %d spots × %d genes, want 471 × 500", d.N, d.G)
	}
	if err := d.Validate(true); err != nil {
		t.Fatal(err)
	}
	// The selection holds markers of the immune and stromal regions of
	// these sections, not housekeeping genes.
	for _, g := range []string{"IGHG1", "COL3A1", "PTPRC"} {
		if !slices.Contains(d.Genes, g) {
			t.Errorf("highly variable genes lack the marker %s", g)
		}
	}
	for _, g := range []string{"GAPDH", "ACTB"} {
		if slices.Contains(d.Genes, g) {
			t.Errorf("highly variable genes include the housekeeping gene %s", g)
		}
	}
}
