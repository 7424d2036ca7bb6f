package classify

import (
	"math"
	"slices"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
)

type logregCase struct {
	Name       string
	N, D, K    int
	C          float64
	Balanced   bool
	X          []float32
	Y          []int
	Coef       []float64
	Intercept  []float64
	XTest      []float32 `json:"x_test"`
	ProbaTest  []float64 `json:"proba_test"`
	ProbaTrain []float64 `json:"proba_train"`
}

func TestLogRegAgainstSklearn(t *testing.T) {
	var g struct{ Cases []logregCase }
	testutil.ReadJSON(t, "testdata/logreg_golden.json", &g)
	const tol = 1e-6 // measured agreement ~1e-8
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			m, err := FitLogReg(c.X, c.N, c.D, c.Y, c.K, LogRegOptions{C: c.C, Balanced: c.Balanced, Tol: 1e-9})
			if err != nil {
				t.Fatal(err)
			}
			var maxDiff float64
			for i, want := range c.Coef {
				maxDiff = math.Max(maxDiff, math.Abs(m.W[i]-want))
			}
			for i, want := range c.Intercept {
				maxDiff = math.Max(maxDiff, math.Abs(m.B[i]-want))
			}
			if maxDiff > tol {
				t.Errorf("coefficients differ from sklearn by %.3g > %g", maxDiff, tol)
			}
			nt := len(c.XTest) / c.D
			for _, set := range []struct {
				x    []float32
				n    int
				want []float64
			}{{c.XTest, nt, c.ProbaTest}, {c.X, c.N, c.ProbaTrain}} {
				p, err := m.PredictProba(set.x, set.n)
				if err != nil {
					t.Fatal(err)
				}
				var pd float64
				for i := range p {
					pd = math.Max(pd, math.Abs(p[i]-set.want[i]))
				}
				if pd > tol {
					t.Errorf("probabilities differ from sklearn by %.3g > %g", pd, tol)
				}
				t.Logf("max |Δcoef| %.2g, max |Δp| %.2g, %d iterations", maxDiff, pd, m.Iter)
			}
		})
	}
}

func TestLogRegAbsentClassAndPredict(t *testing.T) {
	// Two separable classes out of k = 3; class 1 never appears.
	x := []float32{-2, -1.5, -1, 1, 1.5, 2}
	y := []int{0, 0, 0, 2, 2, 2}
	m, err := FitLogReg(x, 6, 1, y, 3, LogRegOptions{C: 10})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := m.PredictProba([]float32{-3, 3}, 2)
	if p[1] != 0 || p[4] != 0 {
		t.Errorf("absent class got probability %v", p)
	}
	if s := p[0] + p[1] + p[2]; math.Abs(s-1) > 1e-12 {
		t.Errorf("probabilities sum to %g", s)
	}
	pred, _ := m.Predict([]float32{-3, 3, -0.9, 0.8}, 4)
	if want := []int{0, 2, 0, 2}; !slices.Equal(pred, want) {
		t.Errorf("Predict = %v, want %v", pred, want)
	}
}

func TestLogRegBadInput(t *testing.T) {
	x := []float32{0, 1, 2, 3}
	tests := []struct {
		name string
		x    []float32
		y    []int
		k    int
		opt  LogRegOptions
	}{
		{"label out of range", x, []int{0, 1, 2, 1}, 2, LogRegOptions{}},
		{"unlabelled -1", x, []int{0, 1, -1, 1}, 2, LogRegOptions{}},
		{"one class", x, []int{1, 1, 1, 1}, 2, LogRegOptions{}},
		{"label count", x, []int{0, 1}, 2, LogRegOptions{}},
		{"class weights length", x, []int{0, 1, 0, 1}, 2, LogRegOptions{ClassWeight: []float64{1}}},
		{"negative C", x, []int{0, 1, 0, 1}, 2, LogRegOptions{C: -1}},
		{"NaN", []float32{0, float32(math.NaN()), 2, 3}, []int{0, 1, 0, 1}, 2, LogRegOptions{}},
	}
	for _, tc := range tests {
		if _, err := FitLogReg(tc.x, 4, 1, tc.y, tc.k, tc.opt); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	m, err := FitLogReg(x, 4, 1, []int{0, 1, 0, 1}, 2, LogRegOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.PredictProba([]float32{1, 2, 3}, 2); err == nil {
		t.Error("PredictProba accepted a wrongly sized input")
	}
}
