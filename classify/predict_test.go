package classify

import (
	"bytes"
	"context"
	"encoding/csv"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
	"github.com/spotfuse/spotfuse/section"
	"github.com/spotfuse/spotfuse/sparse"
)

// TestPredictFixtures predicts the committed fixtures (the same 40 A1 spots
// as Space Ranger and as h5ad) with a bundle trained on the dense h5ad: the
// expression-only predictions must agree across formats, and every spot
// gets a label, probabilities summing to 1 and its modality.
func TestPredictFixtures(t *testing.T) {
	train := trainFixture(t)
	b := tinyBundle(t, train, FeatEncoder)
	ctx := context.Background()
	ref, err := b.Predict(ctx, train, PredictOptions{Modality: ModExpr})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		opt  section.Options
	}{
		{"visium/A1_sub", section.Options{Labels: "testdata/visium/A1_sub/labels.csv"}},
		{"visium/A1_sub_v1", section.Options{}},
		{"h5ad/A1_sub_csr.h5ad", section.Options{LabelColumn: "label"}},
		{"h5ad/A1_sub_csc.h5ad", section.Options{}},
	} {
		t.Run(c.path, func(t *testing.T) {
			if c.opt.Labels != "" {
				c.opt.Labels = testutil.RepoRoot(t) + "/" + c.opt.Labels
			}
			sec := fixture(t, c.path, c.opt)
			p, err := b.Predict(ctx, sec, PredictOptions{})
			if err != nil {
				t.Fatal(err)
			}
			k := len(b.Meta.Classes)
			for i := range p.Label {
				if p.Label[i] < 0 {
					t.Fatalf("spot %s unlabelled (modality %s)", sec.Spots[i].ID, p.Modality[i])
				}
				var s float64
				for _, v := range p.Prob[i*k : (i+1)*k] {
					s += v
				}
				if math.Abs(s-1) > 1e-9 {
					t.Fatalf("spot %d probabilities sum to %v", i, s)
				}
				want := ModExpr
				if sec.Image != nil {
					want = ModFused
				}
				if p.Modality[i] != want {
					t.Fatalf("spot %d modality %s, want %s", i, p.Modality[i], want)
				}
			}
			// Expression alone gives the same answer whatever the format.
			pe, err := b.Predict(ctx, sec, PredictOptions{Modality: ModExpr})
			if err != nil {
				t.Fatal(err)
			}
			byID := map[string]int{}
			for i, sp := range train.Spots {
				byID[sp.ID] = i
			}
			for i, sp := range sec.Spots {
				j, ok := byID[sp.ID]
				if !ok {
					t.Fatalf("spot %s not in the training fixture", sp.ID)
				}
				for c := range k {
					if d := math.Abs(pe.Prob[i*k+c] - ref.Prob[j*k+c]); d > 1e-5 {
						t.Fatalf("spot %s class %d: probability %v here, %v on the training format", sp.ID, c, pe.Prob[i*k+c], ref.Prob[j*k+c])
					}
				}
			}
			var buf bytes.Buffer
			if err := p.WriteCSV(&buf); err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(&buf).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			wantHead := []string{"spot_id", "x", "y", "array_row", "array_col", "label", "probability",
				"prob_invasive cancer", "prob_cancer in situ", "prob_connective tissue", "modality", "missing_genes"}
			if !slices.Equal(recs[0], wantHead) || len(recs) != sec.NumSpots()+1 {
				t.Fatalf("CSV header %v and %d rows", recs[0], len(recs)-1)
			}
			if recs[1][0] != sec.Spots[0].ID || recs[1][5] != p.LabelName(0) || recs[1][11] != "0" {
				t.Fatalf("first CSV row %v", recs[1])
			}
		})
	}
}

// renamed returns a copy of sec whose first m genes are renamed (so they
// are missing for the bundle) and whose image is dropped when noImage.
func renamed(sec *section.Section, m int, noImage bool) *section.Section {
	c := *sec
	c.Genes = slices.Clone(sec.Genes)
	for j := range m {
		c.Genes[j] = "renamed-" + c.Genes[j]
	}
	if noImage {
		c.Image = nil
	}
	return &c
}

func TestPredictMissingGenes(t *testing.T) {
	train := trainFixture(t)
	b := tinyBundle(t, train, FeatEncoder)
	ctx := context.Background()
	g := len(b.Meta.Genes)

	// 3 of 30 genes missing (10 % ≤ 20 %): filled with the training mean.
	sec := renamed(train, 3, true)
	p, err := b.Predict(ctx, sec, PredictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Missing, b.Meta.Genes[:3]) || p.Genes != g {
		t.Fatalf("missing %v of %d, want %v of %d", p.Missing, p.Genes, b.Meta.Genes[:3], g)
	}
	x, _, err := b.Expression(sec)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sec.NumSpots() {
		for j := range 3 {
			if x[i*g+j] != b.Meta.Normalization.GeneMean[j] {
				t.Fatalf("missing gene %d of spot %d is %v, want the training mean %v", j, i, x[i*g+j], b.Meta.Normalization.GeneMean[j])
			}
		}
	}
	for i, m := range p.Modality {
		if m != ModExpr {
			t.Fatalf("spot %d of a section without image predicted by %s", i, m)
		}
	}
	var buf bytes.Buffer
	if err := p.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Split(buf.String(), "\n")[1], ",expr,3") {
		t.Fatalf("CSV row does not end with the modality and 3 missing genes: %q", strings.Split(buf.String(), "\n")[1])
	}

	// 9 of 30 missing (30 % > 20 %): refused, unless image-only is asked.
	many := renamed(train, 9, false)
	if _, err := b.Predict(ctx, many, PredictOptions{}); err == nil || !strings.Contains(err.Error(), "max_missing") || !strings.Contains(err.Error(), `"image"`) {
		t.Fatalf("9 of 30 genes missing: error %v, want a refusal naming max_missing and the image modality", err)
	}
	pi, err := b.Predict(ctx, many, PredictOptions{Modality: ModImage})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range pi.Modality {
		if m != ModImage || pi.Label[i] < 0 {
			t.Fatalf("spot %d: modality %s label %d with --modality image", i, m, pi.Label[i])
		}
	}
	// Without an image as well, nothing can be predicted.
	if _, err := b.Predict(ctx, renamed(train, 9, true), PredictOptions{}); err == nil {
		t.Fatal("prediction with too many missing genes and no image succeeded")
	}
}

// TestPredictWithoutCounts predicts a section that has an image but no
// counts: every spot is labelled from the image, exactly as the image head
// labels the complete section.
func TestPredictWithoutCounts(t *testing.T) {
	train := trainFixture(t)
	b := tinyBundle(t, train, FeatPCA)
	ctx := context.Background()
	c := *train
	c.Genes, c.Counts = nil, &sparse.CSR{Rows: train.NumSpots(), Indptr: make([]int, train.NumSpots()+1)}
	p, err := b.Predict(ctx, &c, PredictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := b.Predict(ctx, train, PredictOptions{Modality: ModImage})
	if err != nil {
		t.Fatal(err)
	}
	for i := range p.Label {
		if p.Modality[i] != ModImage {
			t.Fatalf("spot %d predicted by %s without counts", i, p.Modality[i])
		}
	}
	if !slices.Equal(p.Prob, ref.Prob) {
		t.Fatal("image-only prediction without counts differs from the image head on the full section")
	}
	if _, err := b.Predict(ctx, &c, PredictOptions{Modality: ModFused}); err == nil {
		t.Fatal("fused prediction without counts succeeded")
	}
}

func TestPredictOptionsErrors(t *testing.T) {
	train := trainFixture(t)
	b := tinyBundle(t, train, FeatEncoder)
	ctx := context.Background()
	if _, err := b.Predict(ctx, train, PredictOptions{Modality: "audio"}); err == nil {
		t.Fatal("unknown modality accepted")
	}
	delete(b.Heads, ModImage)
	if _, err := b.Predict(ctx, train, PredictOptions{Modality: ModImage}); err == nil || !strings.Contains(err.Error(), "no image head") {
		t.Fatalf("missing head: %v", err)
	}
	noImg := renamed(train, 0, true)
	if _, err := b.Predict(ctx, noImg, PredictOptions{Modality: ModFused}); err == nil {
		t.Fatal("fused prediction of a section without image succeeded")
	}
}

// TestCrossValidate: features that encode the label give perfect
// out-of-fold scores; features of pure noise do not.
func TestCrossValidate(t *testing.T) {
	train := trainFixture(t)
	b := tinyBundle(t, train, FeatEncoder)
	delete(b.Heads, ModImage)
	delete(b.Heads, ModFused)
	n := train.NumSpots()
	f := &Features{N: n, ExprD: 3, Expr: make([]float32, n*3)}
	noise := &Features{N: n, ExprD: 3, Expr: make([]float32, n*3)}
	for i, l := range train.Labels {
		if c := slices.Index(b.Meta.Classes, l); c >= 0 {
			f.Expr[i*3+c] = 1
		}
		for j := range 3 {
			noise.Expr[i*3+j] = float32(math.Sin(float64(7*i + 3*j)))
		}
	}
	ctx := context.Background()
	got, err := b.CrossValidate(ctx, train, f, 3, 1, HeadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Modality != ModExpr || got[0].Spots != 40 || got[0].Accuracy != 1 || got[0].MacroF1 != 1 {
		t.Fatalf("separable features: %+v", got)
	}
	again, err := b.CrossValidate(ctx, train, noise, 3, 1, HeadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Balanced > 0.9 {
		t.Fatalf("noise features score balanced accuracy %v", again[0].Balanced)
	}
}

// TestSectionCenter: with SectionCenter every feature has mean 0 over the
// section (the image over spots with a patch), and the flag survives a save.
func TestSectionCenter(t *testing.T) {
	train := trainFixture(t)
	b := tinyBundle(t, train, FeatPCA)
	b.Meta.SectionCenter = true
	f, err := b.FitHeads(context.Background(), train, HeadOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		x []float32
		d int
	}{{f.Expr, f.ExprD}, {f.Image, f.ImageD}} {
		n := len(m.x) / m.d
		for j := range m.d {
			var s float64
			for i := range n {
				s += float64(m.x[i*m.d+j])
			}
			if math.Abs(s/float64(n)) > 1e-4 {
				t.Fatalf("column %d of width %d has mean %v after centring", j, m.d, s/float64(n))
			}
		}
	}
	dir := filepath.Join(t.TempDir(), "c.bundle")
	if err := SaveBundle(dir, b); err != nil {
		t.Fatal(err)
	}
	l, err := LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Meta.SectionCenter {
		t.Fatal("section_center lost in the round trip")
	}
}
