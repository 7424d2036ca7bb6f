package pretrain

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

// crossGolden is testdata/cross_golden.json, written by gen_cross_golden.py
// with PyTorch and scikit-learn.
type crossGolden struct {
	Clip struct {
		N, D               int
		Scale, Loss        float64
		A, B, GradA, GradB []float64
	} `json:"clip"`
	Entropy struct {
		N, D, K, Sections int
		X                 []float64
		Section           []int
		PerSpot           []float64 `json:"per_spot"`
		Mean              float64
	} `json:"entropy"`
}

func loadCrossGolden(t *testing.T) *crossGolden {
	t.Helper()
	var g crossGolden
	testutil.ReadJSON(t, filepath.Join("testdata", "cross_golden.json"), &g)
	return &g
}

func f32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

func TestClipLossMatchesPyTorch(t *testing.T) {
	g := loadCrossGolden(t).Clip
	logScale := nn.Param(tensor.FromSlice([]float32{float32(math.Log(g.Scale))}, 1))
	for _, learned := range []bool{false, true} {
		a := nn.Param(tensor.FromSlice(f32(g.A), g.N, g.D))
		b := nn.Param(tensor.FromSlice(f32(g.B), g.N, g.D))
		loss := clipLoss(a, b, logScale, learned)
		loss.Backward()
		if got := float64(loss.Item()); math.Abs(got-g.Loss) > 1e-4*g.Loss {
			t.Errorf("learned=%v: loss %g, PyTorch %g", learned, got, g.Loss)
		}
		for i := range g.GradA {
			if math.Abs(float64(a.Grad.Data[i])-g.GradA[i]) > 1e-4 || math.Abs(float64(b.Grad.Data[i])-g.GradB[i]) > 1e-4 {
				t.Fatalf("learned=%v: gradient %d: (%g, %g), PyTorch (%g, %g)", learned, i, a.Grad.Data[i], b.Grad.Data[i], g.GradA[i], g.GradB[i])
			}
		}
	}
}

func TestSectionEntropyMatchesScikitLearn(t *testing.T) {
	g := loadCrossGolden(t).Entropy
	per, mean, err := SectionEntropy(f32(g.X), g.N, g.D, g.Section, g.Sections, g.K)
	if err != nil {
		t.Fatal(err)
	}
	for i := range per {
		if math.Abs(per[i]-g.PerSpot[i]) > 1e-9 {
			t.Errorf("spot %d: entropy %g, scikit-learn %g", i, per[i], g.PerSpot[i])
		}
	}
	if math.Abs(mean-g.Mean) > 1e-9 {
		t.Errorf("mean %g, scikit-learn %g", mean, g.Mean)
	}
}
