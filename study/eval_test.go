package study

import (
	"context"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/spotfuse/spotfuse/fuse"
)

// synthDesign returns a design over one section of 60 spots and 3 classes
// with an informative block, a noise block and their gated pair.
func synthDesign(workers int) *Design {
	rng := rand.New(rand.NewPCG(5, 6))
	n := 60
	y := make([]int, n)
	info := make([]float32, n*3)
	noise := make([]float32, n*2)
	for i := range y {
		y[i] = i % 3
		if i%10 == 9 {
			y[i] = -1 // unlabelled
		}
		for j := 0; j < 3; j++ {
			info[i*3+j] = float32(rng.NormFloat64())
		}
		if y[i] >= 0 {
			info[i*3+y[i]] += 3
		}
		noise[i*2], noise[i*2+1] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
	}
	t := &Target{Name: "T", Y: y}
	b := func(x []float32, d int) map[string][]fuse.Block { return map[string][]fuse.Block{"T": {{X: x, D: d}}} }
	return &Design{Study: "unit", Classes: []string{"a", "b", "c"}, KFold: []*Target{t},
		Sets: []*FeatureSet{
			{Setting: "info", Modality: "expr", Features: "pca", Fusion: "none", Blocks: b(info, 3), Heads: []string{"logreg", "mlp"}},
			{Setting: "noise", Modality: "image", Features: "stats", Fusion: "none", Blocks: b(noise, 2), Heads: []string{"logreg"}},
			{Setting: "gated", Modality: "fused", Features: "pca", Fusion: "gated",
				Blocks: map[string][]fuse.Block{"T": {{X: info, D: 3}, {X: noise, D: 2}}}, Heads: []string{"gated"}},
		},
		Fractions: []float64{0.2, 1}, Folds: 3, Seeds: 2, MapFraction: 0.2, Workers: workers, Cluster: true}
}

func TestEvaluate(t *testing.T) {
	out, err := Evaluate(context.Background(), synthDesign(1), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 4 (set, head) pairs × 2 seeds × 3 folds × 2 fractions + 2 cluster
	// sets × 2 seeds.
	if want := 4*2*3*2 + 2*2; len(out.Rows) != want {
		t.Fatalf("%d rows, want %d", len(out.Rows), want)
	}
	for _, r := range out.Rows {
		if r.Eval == "cluster" {
			continue
		}
		if r.NTest != 18 || len(r.F1) != 3 || len(r.Confusion) != 3 {
			t.Errorf("row %s: %d test spots (want 18), %d F1, %d confusion rows", r.Key(), r.NTest, len(r.F1), len(r.Confusion))
		}
	}
	sums := Summarize(out.Rows, []string{"a", "b", "c"})
	get := func(setting, head string, frac float64) float64 {
		for _, s := range sums {
			if s.Eval == "kfold" && s.Setting == setting && s.Head == head && s.Fraction == frac {
				if s.N != 2 {
					t.Errorf("%s/%s: %d replicates, want 2", setting, head, s.N)
				}
				return s.Metrics["balanced_accuracy"].Mean
			}
		}
		t.Fatalf("no summary for %s/%s at %g", setting, head, frac)
		return 0
	}
	if v := get("info", "logreg", 1); v < 0.85 {
		t.Errorf("informative features: balanced accuracy %.3f, want ≥ 0.85", v)
	}
	if v := get("noise", "logreg", 1); v > 0.6 {
		t.Errorf("noise features: balanced accuracy %.3f, want near 1/3", v)
	}
	if v := get("gated", "gated", 1); v < 0.8 {
		t.Errorf("gated fusion of informative + noise: balanced accuracy %.3f, want ≥ 0.8", v)
	}
	// Out-of-fold predictions cover every labelled spot once, for seed 0 only.
	if len(out.OOF) != 4 {
		t.Fatalf("%d OOF sets, want 4", len(out.OOF))
	}
	for _, o := range out.OOF {
		for i, p := range o.Pred {
			if (p >= 0) != (i%10 != 9) {
				t.Fatalf("%s/%s: spot %d prediction %d", o.Setting, o.Head, i, p)
			}
		}
		if (o.Gate != nil) != (o.Head == "gated") {
			t.Errorf("%s/%s: gate weights present = %t", o.Setting, o.Head, o.Gate != nil)
		}
	}
}

// Parallel workers give the same rows as one worker, and finished runs
// are skipped.
func TestEvaluateDeterministicAndResumable(t *testing.T) {
	a, err := Evaluate(context.Background(), synthDesign(1), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Evaluate(context.Background(), synthDesign(3), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := func(rows []*Row) []string {
		var ks []string
		for _, r := range rows {
			rec := r.record()
			rec[len(rec)-1] = "" // wall time
			ks = append(ks, r.Key()+"|"+joinRec(rec))
		}
		sort.Strings(ks)
		return ks
	}
	ka, kb := key(a.Rows), key(b.Rows)
	if len(ka) != len(kb) {
		t.Fatalf("%d vs %d rows", len(ka), len(kb))
	}
	for i := range ka {
		if ka[i] != kb[i] {
			t.Fatalf("row differs between 1 and 3 workers:\n%s\n%s", ka[i], kb[i])
		}
	}
	done := map[string]bool{}
	for _, r := range a.Rows[:10] {
		done[r.Key()] = true
	}
	c, err := Evaluate(context.Background(), synthDesign(1), nil, done, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rows) != len(a.Rows)-10 {
		t.Errorf("with 10 runs done: %d rows, want %d", len(c.Rows), len(a.Rows)-10)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Evaluate(ctx, synthDesign(1), nil, nil, nil); err == nil {
		t.Error("cancelled context: no error")
	}
}

func joinRec(rec []string) string {
	s := ""
	for _, f := range rec {
		s += f + ","
	}
	return s
}
