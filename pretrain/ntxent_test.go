package pretrain

import (
	"math"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

// TestNTXentGolden compares NTXent and its gradient with PyTorch
// (testdata/gen_ntxent.py).
func TestNTXentGolden(t *testing.T) {
	var g struct {
		Rows, Cols  int
		Temperature float64
		Loss        float64
		Grad        []float64
	}
	testutil.ReadJSON(t, "testdata/ntxent_golden.json", &g)
	z := tensor.New(g.Rows, g.Cols)
	for i := 0; i < g.Rows; i++ {
		for j := 0; j < g.Cols; j++ {
			z.Data[i*g.Cols+j] = float32(math.Sin(0.7*float64(i)+1.3*float64(j)) + 0.1*float64(j))
		}
	}
	v := nn.Param(z)
	loss := NTXent(v, float32(g.Temperature))
	if got := float64(loss.Value.Data[0]); math.Abs(got-g.Loss) > 1e-5*g.Loss {
		t.Errorf("loss = %.7g, PyTorch %.7g", got, g.Loss)
	}
	loss.Backward()
	for i, want := range g.Grad {
		if got := float64(v.Grad.Data[i]); math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
			t.Errorf("grad[%d] = %.6g, PyTorch %.6g", i, got, want)
		}
	}
}
