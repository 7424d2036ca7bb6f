package fuse

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

// TestGatedGradient checks every parameter gradient of the gated module
// (projections, gate, head, through the softmax weighting and a
// class-weighted cross-entropy) against central finite differences.
func TestGatedGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dims := []int{3, 5}
	n, k := 6, 3
	g := NewGated(dims, k, GatedConfig{Width: 4, Dropout: -1}, rng)
	xs := make([]*nn.Var, len(dims))
	for m, d := range dims {
		x := tensor.New(n, d)
		for i := range x.Data {
			x.Data[i] = float32(rng.NormFloat64())
		}
		xs[m] = nn.Const(x)
	}
	y := []int{0, 1, 2, 1, 0, 2}
	w := []float32{1, 2, 0.5}
	loss := func() *nn.Var {
		logits, _ := g.Forward(xs, true, nil)
		return nn.CrossEntropy(logits, y, w)
	}
	params := g.Params()
	nn.ZeroGrad(params)
	loss().Backward()
	const eps = 1e-2
	checked := 0
	for pi, p := range params {
		if p.Grad == nil {
			t.Fatalf("param %d has no gradient", pi)
		}
		for i := range p.Value.Data {
			orig := p.Value.Data[i]
			p.Value.Data[i] = orig + eps
			lp := float64(loss().Item())
			p.Value.Data[i] = orig - eps
			lm := float64(loss().Item())
			p.Value.Data[i] = orig
			num := (lp - lm) / (2 * eps)
			got := float64(p.Grad.Data[i])
			if math.Abs(num-got) > 2e-3+2e-2*math.Abs(num) {
				t.Errorf("param %d[%d]: analytic %.6f, numeric %.6f", pi, i, got, num)
			}
			checked++
		}
	}
	if checked < 60 {
		t.Fatalf("only %d gradient entries checked", checked)
	}
}

// synthetic returns two modalities over n spots of 3 classes: modality 0
// separates class 0 from the rest, modality 1 separates class 1 from class
// 2; each is noise elsewhere.
func synthetic(n int, seed uint64) ([]Block, []int) {
	rng := rand.New(rand.NewPCG(seed, 3))
	a := Block{D: 4, X: make([]float32, n*4)}
	b := Block{D: 6, X: make([]float32, n*6)}
	y := make([]int, n)
	for i := range y {
		y[i] = i % 3
		for j := 0; j < 4; j++ {
			a.X[i*4+j] = float32(rng.NormFloat64())
		}
		for j := 0; j < 6; j++ {
			b.X[i*6+j] = float32(rng.NormFloat64())
		}
		if y[i] == 0 {
			a.X[i*4] += 4
		}
		if y[i] == 1 {
			b.X[i*6+2] += 4
		} else if y[i] == 2 {
			b.X[i*6+2] -= 4
		}
	}
	return []Block{a, b}, y
}

func TestTrainGatedLearnsAndIsDeterministic(t *testing.T) {
	train, ytr := synthetic(150, 1)
	test, yte := synthetic(90, 2)
	g, err := TrainGated(context.Background(), train, ytr, 3, GatedConfig{}, 7)
	if err != nil {
		t.Fatal(err)
	}
	pred, err := g.Predict(test)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for i := range pred {
		if pred[i] == yte[i] {
			ok++
		}
	}
	if acc := float64(ok) / float64(len(pred)); acc < 0.9 {
		t.Errorf("test accuracy %.2f, want ≥ 0.9", acc)
	}
	w, err := g.Weights(test)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != 90*2 {
		t.Fatalf("%d weights, want %d", len(w), 180)
	}
	for i := 0; i < 90; i++ {
		if s := w[2*i] + w[2*i+1]; math.Abs(float64(s)-1) > 1e-5 {
			t.Fatalf("spot %d weights sum to %v", i, s)
		}
	}
	g2, _ := TrainGated(context.Background(), train, ytr, 3, GatedConfig{}, 7)
	p2, _ := g2.Predict(test)
	w2, _ := g2.Weights(test)
	for i := range pred {
		if pred[i] != p2[i] {
			t.Fatal("same seed, different predictions")
		}
	}
	for i := range w {
		if w[i] != w2[i] {
			t.Fatal("same seed, different gate weights")
		}
	}
}

func TestTrainGatedErrors(t *testing.T) {
	blocks, y := synthetic(30, 1)
	if _, err := TrainGated(context.Background(), blocks[:1], y, 3, GatedConfig{}, 1); err == nil {
		t.Error("one modality: no error")
	}
	if _, err := TrainGated(context.Background(), blocks, y[:10], 3, GatedConfig{}, 1); err == nil {
		t.Error("label count mismatch: no error")
	}
	bad := []Block{blocks[0], {X: blocks[1].X[:12], D: 6}}
	if _, err := TrainGated(context.Background(), bad, y, 3, GatedConfig{}, 1); err == nil {
		t.Error("row mismatch: no error")
	}
	y[0] = 5
	if _, err := TrainGated(context.Background(), blocks, y, 3, GatedConfig{}, 1); err == nil {
		t.Error("label out of range: no error")
	}
}
