package pretrain

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestSectionEntropy(t *testing.T) {
	// Points on a line; k = 2 nearest neighbours.
	line := func(xs ...float32) []float32 { return xs }
	for _, tc := range []struct {
		name   string
		x      []float32
		batch  []int
		nBatch int
		want   []float64
	}{
		{
			// Two far-apart pairs, each pair from one section: every
			// neighbourhood (the partner + the nearest of the other pair)
			// holds one spot of each section.
			name: "pairs", x: line(0, 1, 10, 11), batch: []int{0, 0, 1, 1}, nBatch: 2,
			want: []float64{1, 1, 1, 1},
		},
		{
			// Three tight groups of one section each, k = 2: pure.
			name: "segregated", x: line(0, 0.1, 0.2, 10, 10.1, 10.2, 20, 20.1, 20.2), batch: []int{0, 0, 0, 1, 1, 1, 2, 2, 2}, nBatch: 3,
			want: []float64{0, 0, 0, 0, 0, 0, 0, 0, 0},
		},
		{
			// Alternating sections along a line: the 2 neighbours of an
			// inner spot are both from the other section (entropy 0); the
			// end spots have one of each (entropy log 2 / log 2 = 1).
			name: "alternating", x: line(0, 1, 2, 3), batch: []int{0, 1, 0, 1}, nBatch: 2,
			want: []float64{1, 0, 0, 1},
		},
		{
			// Normalised by log(nBatch) even when only two sections occur.
			name: "normalised", x: line(0, 1, 2, 3), batch: []int{0, 1, 0, 1}, nBatch: 4,
			want: []float64{0.5, 0, 0, 0.5},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			per, mean, err := SectionEntropy(tc.x, len(tc.x), 1, tc.batch, tc.nBatch, 2)
			if err != nil {
				t.Fatal(err)
			}
			var wantMean float64
			for i := range per {
				if math.Abs(per[i]-tc.want[i]) > 1e-9 {
					t.Errorf("spot %d: entropy %g, want %g", i, per[i], tc.want[i])
				}
				wantMean += tc.want[i] / float64(len(per))
			}
			if math.Abs(mean-wantMean) > 1e-9 {
				t.Errorf("mean %g, want %g", mean, wantMean)
			}
		})
	}
}

func TestSectionEntropyErrors(t *testing.T) {
	x := []float32{0, 1, 2, 3}
	for _, tc := range []struct {
		name      string
		batch     []int
		nBatch, k int
		want      string
	}{
		{"one section", []int{0, 0, 0, 0}, 1, 2, "at least 2 sections"},
		{"k too large", []int{0, 1, 0, 1}, 2, 4, "k = 4"},
		{"label out of range", []int{0, 1, 2, 1}, 2, 2, "section label 2"},
		{"short labels", []int{0, 1}, 2, 2, "2 section labels for 4 spots"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := SectionEntropy(x, 4, 1, tc.batch, tc.nBatch, tc.k)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestKNearestMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, d, k = 600, 5, 7 // more than one 256-row block
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	got := KNearest(x, n, d, k)
	for i := 0; i < n; i++ {
		idx := make([]int, 0, n-1)
		dist := make([]float64, n)
		for j := 0; j < n; j++ {
			var s float64
			for c := 0; c < d; c++ {
				v := float64(x[i*d+c] - x[j*d+c])
				s += v * v
			}
			dist[j] = s
			if j != i {
				idx = append(idx, j)
			}
		}
		sort.SliceStable(idx, func(a, b int) bool { return dist[idx[a]] < dist[idx[b]] })
		if !slices.Equal(got[i*k:(i+1)*k], idx[:k]) {
			t.Fatalf("row %d: neighbours %v, want %v", i, got[i*k:(i+1)*k], idx[:k])
		}
	}
}
