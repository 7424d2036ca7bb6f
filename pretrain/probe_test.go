package pretrain

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestLinearProbe(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, d, k = 300, 4, 3
	x := make([]float32, n*d)
	y := make([]int, n)
	noise := make([]float32, n*d)
	for i := 0; i < n; i++ {
		y[i] = i % k
		for j := 0; j < d; j++ {
			x[i*d+j] = float32(rng.NormFloat64() * 0.3)
			noise[i*d+j] = float32(rng.NormFloat64())
		}
		x[i*d+y[i]] += 2 // class c shifts feature c
	}
	y[5] = -1 // ignored row
	seeds := []uint64{1, 2, 3}
	sep, err := LinearProbe(x, n, d, y, 0.1, seeds)
	if err != nil {
		t.Fatal(err)
	}
	rnd, err := LinearProbe(noise, n, d, y, 0.1, seeds)
	if err != nil {
		t.Fatal(err)
	}
	for i := range seeds {
		if sep[i] < 0.9 {
			t.Errorf("separable features: balanced accuracy %.3f, want ≥ 0.9", sep[i])
		}
		if rnd[i] > 0.55 {
			t.Errorf("noise features: balanced accuracy %.3f, want near 1/3", rnd[i])
		}
	}
	again, _ := LinearProbe(x, n, d, y, 0.1, seeds)
	for i := range sep {
		if again[i] != sep[i] {
			t.Fatal("LinearProbe is not deterministic")
		}
	}
	if _, err := LinearProbe(x[:10], n, d, y, 0.1, seeds); err == nil || !strings.Contains(err.Error(), "probe features") {
		t.Errorf("short features: err = %v", err)
	}
	if _, err := LinearProbe(x, n, d, y, 1, seeds); err == nil || !strings.Contains(err.Error(), "no test rows") {
		t.Errorf("frac 1: err = %v", err)
	}
}
