package exprpred

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spotfuse/spotfuse/metrics"
)

func randMat(rng *rand.Rand, n, d int) []float32 {
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func column(x []float32, n, g, j int) []float64 {
	out := make([]float64, n)
	for i := range n {
		out[i] = float64(x[i*g+j])
	}
	return out
}

// TestGenePearson checks every gene against metrics.Pearson (itself
// cross-checked with scipy) and that constant columns are undefined.
func TestGenePearson(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n, g := 50, 6
	pred, truth := randMat(rng, n, g), randMat(rng, n, g)
	for i := range n {
		truth[i*g+1] = pred[i*g+1]*2 + 1 // perfectly correlated
		truth[i*g+2] = -pred[i*g+2]      // anti-correlated
		pred[i*g+4] = 3                  // constant prediction
		truth[i*g+5] = 7                 // constant truth
	}
	got := GenePearson(pred, truth, n, g)
	for j := range g {
		want := metrics.Pearson(column(pred, n, g, j), column(truth, n, g, j))
		switch {
		case math.IsNaN(want):
			if !math.IsNaN(got[j]) {
				t.Errorf("gene %d: %v, want undefined", j, got[j])
			}
		case math.Abs(got[j]-want) > 1e-6:
			t.Errorf("gene %d: %v, want %v", j, got[j], want)
		}
	}
	if math.Abs(got[1]-1) > 1e-6 || math.Abs(got[2]+1) > 1e-6 {
		t.Fatalf("perfect correlations: %v %v", got[1], got[2])
	}
}

func TestSummarize(t *testing.T) {
	// 3 spots × 4 genes; gene 3 is constant (left out), gene 0 varies most.
	truth := []float32{
		0, 1, 0, 5,
		10, 2, 1, 5,
		20, 3, 0, 5,
	}
	cases := []struct {
		name      string
		pcc       []float64
		top       int
		all, best float64
		undefined int
	}{
		{"defined", []float64{0.9, 0.3, 0.0, math.NaN()}, 1, 0.4, 0.9, 0},
		{"undefined counts as 0", []float64{math.NaN(), 0.6, 0.3, 0.5}, 2, 0.3, 0.3, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Summarize(c.pcc, truth, 3, 4, c.top)
			if s.Genes != 3 || s.Top != c.top || s.Undefined != c.undefined {
				t.Fatalf("genes %d top %d undefined %d", s.Genes, s.Top, s.Undefined)
			}
			if math.Abs(s.MeanAll-c.all) > 1e-12 || math.Abs(s.MeanTop-c.best) > 1e-12 {
				t.Fatalf("mean all %v (want %v), top %v (want %v)", s.MeanAll, c.all, s.MeanTop, c.best)
			}
		})
	}
}

// TestFitRidge: with no penalty an exact linear relation is recovered; a
// huge penalty predicts the training mean.
func TestFitRidge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n, d, g := 200, 5, 3
	x := randMat(rng, n, d)
	a := randMat(rng, d, g)
	y := make([]float32, n*g)
	for i := range n {
		for j := range g {
			s := float32(j) // intercept
			for k := range d {
				s += x[i*d+k] * a[k*g+j]
			}
			y[i*g+j] = s
		}
	}
	r, err := FitRidge(x, n, d, y, g, 0)
	if err != nil {
		t.Fatal(err)
	}
	pred := r.Predict(x, n)
	for i := range y {
		if math.Abs(float64(pred[i]-y[i])) > 1e-3 {
			t.Fatalf("entry %d: %v, want %v", i, pred[i], y[i])
		}
	}
	big, err := FitRidge(x, n, d, y, g, 1e9)
	if err != nil {
		t.Fatal(err)
	}
	pb := big.Predict(x[:d], 1)
	for j := range g {
		if math.Abs(float64(pb[j]-big.B[j])) > 1e-4 {
			t.Fatalf("huge penalty: %v, want the mean %v", pb[j], big.B[j])
		}
	}
	if _, err := FitRidge(x, n, d, y[:10], g, 1); err == nil {
		t.Fatal("mismatched shapes accepted")
	}
	if _, err := FitRidge(x, n, d, y, g, -1); err == nil {
		t.Fatal("negative penalty accepted")
	}
}

// TestFitRidgeCV picks the small penalty on clean data and the large one
// on pure noise targets... at least never a worse one than the first tried.
func TestFitRidgeCV(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	n, d, g := 120, 4, 2
	x := randMat(rng, n, d)
	y := make([]float32, n*g)
	for i := range n {
		y[i*g] = x[i*d] + 0.01*float32(rng.NormFloat64())
		y[i*g+1] = x[i*d+1] - x[i*d+2]
	}
	var fit, val []int
	for i := range n {
		if i < 90 {
			fit = append(fit, i)
		} else {
			val = append(val, i)
		}
	}
	r, err := FitRidgeCV(x, d, y, g, fit, val, []float64{100, 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	if r.Lambda != 1e-3 {
		t.Fatalf("chose penalty %v, want 1e-3", r.Lambda)
	}
}

func TestRetrieve(t *testing.T) {
	keys := []float32{
		1, 0, // → values 10, 0
		0, 1, // → 0, 10
		1, 1, // → 5, 5
	}
	values := []float32{10, 0, 0, 10, 5, 5}
	query := []float32{2, 0.1, 0, -3}
	got, err := Retrieve(query, 2, keys, 3, 2, values, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Query 0 is nearest key 0; query 1 points away from everything:
	// cosine with key 1 is −1, key 0 is 0, key 2 is −0.707 → key 0.
	want := []float32{10, 0, 10, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("top-1: %v, want %v", got, want)
		}
	}
	got, err = Retrieve(query[:2], 1, keys, 3, 2, values, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 7.5 || got[1] != 2.5 { // mean of keys 0 and 2
		t.Fatalf("top-2: %v, want [7.5 2.5]", got)
	}
	if _, err := Retrieve(query, 2, keys, 3, 2, values, 2, 4); err == nil {
		t.Fatal("k > keys accepted")
	}
}

func TestMSE(t *testing.T) {
	if got := MSE([]float32{1, 2, 3}, []float32{1, 4, 0}); math.Abs(got-13.0/3) > 1e-12 {
		t.Fatalf("MSE %v, want 13/3", got)
	}
}
