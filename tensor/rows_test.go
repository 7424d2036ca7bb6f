package tensor

import (
	"math"
	"slices"
	"testing"
)

func TestGatherRows(t *testing.T) {
	x := []float32{0, 1, 10, 11, 20, 21}
	tests := []struct {
		idx  []int
		want []float32
	}{
		{[]int{2, 0}, []float32{20, 21, 0, 1}},
		{[]int{1, 1}, []float32{10, 11, 10, 11}},
		{nil, []float32{}},
	}
	for _, tc := range tests {
		if got := GatherRows(x, 2, tc.idx); !slices.Equal(got, tc.want) {
			t.Errorf("GatherRows(%v) = %v, want %v", tc.idx, got, tc.want)
		}
	}
}

func TestUnitRows(t *testing.T) {
	x := []float32{3, 4, 0, 0, -1, 0}
	got := UnitRows(x, 3, 2)
	want := []float32{0.6, 0.8, 0, 0, -1, 0}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-7 {
			t.Fatalf("UnitRows = %v, want %v", got, want)
		}
	}
	if x[0] != 3 {
		t.Fatal("UnitRows changed its input")
	}
}

// TestColumnMoments checks column means and population variances against
// hand-computed values (numpy: x.mean(0), x.var(0)).
func TestColumnMoments(t *testing.T) {
	x := []float32{1, 5, 2, 5, 3, 5, 6, 5}
	mean, variance := ColumnMoments(x, 4, 2)
	want := [][2]float64{{3, 3.5}, {5, 0}}
	for j, w := range want {
		if math.Abs(mean[j]-w[0]) > 1e-12 || math.Abs(variance[j]-w[1]) > 1e-12 {
			t.Errorf("column %d: mean %v variance %v, want %v", j, mean[j], variance[j], w)
		}
	}
}
