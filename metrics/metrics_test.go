package metrics

import (
	"encoding/json"
	"math"
	"slices"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
)

type goldenCase struct {
	Name             string    `json:"name"`
	K                int       `json:"k"`
	YTrue            []int     `json:"y_true"`
	YPred            []int     `json:"y_pred"`
	Accuracy         float64   `json:"accuracy"`
	BalancedAccuracy float64   `json:"balanced_accuracy"`
	MacroF1          float64   `json:"macro_f1"`
	F1Labels         []int     `json:"f1_labels"`
	PerClassF1       []float64 `json:"per_class_f1"`
	ARI              float64   `json:"ari"`
	NMI              float64   `json:"nmi"`
	Confusion        [][]int   `json:"confusion"`
}

type golden struct {
	Cases      []goldenCase `json:"cases"`
	Continuous struct {
		X       []float64 `json:"x"`
		Y       []float64 `json:"y"`
		Pearson float64   `json:"pearson"`
		MeanX   float64   `json:"mean_x"`
		SDX     float64   `json:"sd_x"`
	} `json:"continuous"`
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	var g golden
	testutil.ReadJSON(t, "testdata/golden.json", &g)
	if len(g.Cases) < 10 {
		t.Fatalf("golden.json has only %d cases", len(g.Cases))
	}
	return g
}

const tol = 1e-9

func near(a, b float64) bool { return math.Abs(a-b) <= tol }

func TestAgainstSklearn(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			scalars := []struct {
				name      string
				got, want float64
			}{
				{"accuracy", Accuracy(c.YTrue, c.YPred), c.Accuracy},
				{"balanced accuracy", BalancedAccuracy(c.YTrue, c.YPred), c.BalancedAccuracy},
				{"macro F1", MacroF1(c.YTrue, c.YPred), c.MacroF1},
				{"ARI", AdjustedRandIndex(c.YTrue, c.YPred), c.ARI},
				{"NMI", NormalizedMutualInfo(c.YTrue, c.YPred), c.NMI},
			}
			for _, s := range scalars {
				if !near(s.got, s.want) {
					t.Errorf("%s = %.15g, sklearn %.15g", s.name, s.got, s.want)
				}
			}
			labels, f1 := PerClassF1(c.YTrue, c.YPred)
			if !slices.Equal(labels, c.F1Labels) {
				t.Fatalf("F1 labels %v, sklearn %v", labels, c.F1Labels)
			}
			for i := range f1 {
				if !near(f1[i], c.PerClassF1[i]) {
					t.Errorf("F1[%d] = %g, sklearn %g", labels[i], f1[i], c.PerClassF1[i])
				}
			}
			conf := Confusion(c.YTrue, c.YPred, c.K)
			for i := range c.Confusion {
				if !slices.Equal(conf[i], c.Confusion[i]) {
					t.Errorf("confusion row %d = %v, sklearn %v", i, conf[i], c.Confusion[i])
				}
			}
			r, err := NewReport(c.YTrue, c.YPred, c.K)
			if err != nil {
				t.Fatal(err)
			}
			if r.MacroF1 != MacroF1(c.YTrue, c.YPred) || r.N != len(c.YTrue) {
				t.Errorf("report disagrees with the functions: %+v", r)
			}
			for i, l := range labels {
				if r.PerClassF1[l] != f1[i] || !r.Present[l] {
					t.Errorf("report F1[%d] = %g (present %v), want %g", l, r.PerClassF1[l], r.Present[l], f1[i])
				}
			}
			if _, err := json.Marshal(r); err != nil {
				t.Errorf("report does not encode as JSON: %v", err)
			}
		})
	}
}

func TestContinuous(t *testing.T) {
	g := loadGolden(t).Continuous
	if got := Pearson(g.X, g.Y); !near(got, g.Pearson) {
		t.Errorf("Pearson = %.15g, numpy %.15g", got, g.Pearson)
	}
	m, sd := MeanSD(g.X)
	if !near(m, g.MeanX) || !near(sd, g.SDX) {
		t.Errorf("MeanSD = %g ± %g, numpy %g ± %g", m, sd, g.MeanX, g.SDX)
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name        string
		yTrue, yPre []int
		k           int
	}{
		{"length mismatch", []int{0, 1}, []int{0}, 2},
		{"empty", nil, nil, 2},
		{"label out of range", []int{0, 2}, []int{0, 1}, 2},
		{"negative label", []int{0, 1}, []int{-1, 1}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewReport(tc.yTrue, tc.yPre, tc.k); err == nil {
				t.Error("NewReport accepted bad input")
			}
		})
	}
	if !math.IsNaN(Accuracy([]int{1}, nil)) || !math.IsNaN(AdjustedRandIndex(nil, nil)) {
		t.Error("mismatched/empty input should give NaN")
	}
	if Confusion([]int{0, 3}, []int{0, 1}, 2) != nil {
		t.Error("Confusion accepted an out-of-range label")
	}
	if !math.IsNaN(Pearson([]float64{1, 1, 1}, []float64{1, 2, 3})) {
		t.Error("Pearson of a constant should be NaN")
	}
	if _, sd := MeanSD([]float64{3}); !math.IsNaN(sd) {
		t.Error("sd of one value should be NaN")
	}
}

// TestBalancedAccuracyBitStable: the same input gives the same bits every
// call (summing recalls in map order did not).
func TestBalancedAccuracyBitStable(t *testing.T) {
	// 23 classes with supports 3, 4, …, 25 and one hit each: recalls 1/3,
	// 1/4, … whose float sum depends on the order of addition.
	var yTrue, yPred []int
	for c := 0; c < 23; c++ {
		for i := 0; i < c+3; i++ {
			yTrue = append(yTrue, c)
			if i == 0 {
				yPred = append(yPred, c)
			} else {
				yPred = append(yPred, (c+1)%23)
			}
		}
	}
	want := math.Float64bits(BalancedAccuracy(yTrue, yPred))
	for i := 0; i < 500; i++ {
		if got := math.Float64bits(BalancedAccuracy(yTrue, yPred)); got != want {
			t.Fatalf("call %d: %x, want %x", i, got, want)
		}
	}
}
