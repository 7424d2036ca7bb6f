package classify

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
)

// blobs returns n points in d dimensions around k well-separated centres.
func blobs(n, d, k int, seed uint64) ([]float32, []int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n*d)
	y := make([]int, n)
	for i := range y {
		y[i] = i % k
		for j := 0; j < d; j++ {
			x[i*d+j] = float32(rng.NormFloat64())
			if j == y[i]%d {
				x[i*d+j] += 5
			}
		}
		x[i*d] = x[i*d]*100 + 1000 // a badly scaled column the head must standardise
	}
	return x, y
}

func TestMLP(t *testing.T) {
	tests := []struct {
		name string
		n, k int
		cfg  MLPConfig
	}{
		{"default", 120, 3, MLPConfig{}},
		{"no validation (tiny)", 4, 4, MLPConfig{}},
		{"no class weights, no dropout", 90, 3, MLPConfig{Hidden: 16, Dropout: -1, Fit: FitConfig{NoClassWeights: true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const d = 5
			x, y := blobs(tc.n, d, tc.k, 1)
			xt, yt := blobs(200, d, tc.k, 2)
			m, err := TrainMLP(context.Background(), x, tc.n, d, y, tc.k, tc.cfg, 3)
			if err != nil {
				t.Fatal(err)
			}
			pred, err := m.Predict(xt, 200)
			if err != nil {
				t.Fatal(err)
			}
			ok := 0
			for i := range pred {
				if pred[i] == yt[i] {
					ok++
				}
			}
			if acc := float64(ok) / 200; acc < 0.85 {
				t.Errorf("accuracy %.2f, want ≥ 0.85 (epochs %d)", acc, m.Epochs)
			}
			m2, _ := TrainMLP(context.Background(), x, tc.n, d, y, tc.k, tc.cfg, 3)
			p2, _ := m2.Predict(xt, 200)
			if !slices.Equal(pred, p2) {
				t.Error("same seed, different predictions")
			}
		})
	}
}

func TestMLPNeverPredictsAbsentClass(t *testing.T) {
	x, y := blobs(60, 4, 3, 1)
	m, err := TrainMLP(context.Background(), x, 60, 4, y, 5, MLPConfig{}, 1) // classes 3, 4 absent
	if err != nil {
		t.Fatal(err)
	}
	p, _ := m.PredictProba(x, 60)
	for i := 0; i < 60; i++ {
		if p[i*5+3] != 0 || p[i*5+4] != 0 {
			t.Fatalf("row %d: absent classes have probability %v, %v", i, p[i*5+3], p[i*5+4])
		}
	}
}

func TestMLPErrors(t *testing.T) {
	x, y := blobs(10, 2, 2, 1)
	if _, err := TrainMLP(context.Background(), x[:5], 10, 2, y, 2, MLPConfig{}, 1); err == nil {
		t.Error("short x: no error")
	}
	y[3] = 2
	if _, err := TrainMLP(context.Background(), x, 10, 2, y, 2, MLPConfig{}, 1); err == nil {
		t.Error("label out of range: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	y[3] = 1
	if _, err := TrainMLP(ctx, x, 10, 2, y, 2, MLPConfig{}, 1); err == nil {
		t.Error("cancelled context: no error")
	}
}

func TestBalancedWeights(t *testing.T) {
	w := BalancedWeights([]int{0, 0, 0, 2}, 3)
	// n / (present · count): 4/(2·3), 0, 4/(2·1)
	want := []float32{4.0 / 6, 0, 2}
	for i := range w {
		if d := w[i] - want[i]; d > 1e-6 || d < -1e-6 {
			t.Errorf("weight %d = %v, want %v", i, w[i], want[i])
		}
	}
}
