package fuse

import (
	"math"
	"slices"
	"testing"
)

func colStats(x []float32, n, d, j int) (mean, variance float64) {
	for i := 0; i < n; i++ {
		mean += float64(x[i*d+j])
	}
	mean /= float64(n)
	for i := 0; i < n; i++ {
		v := float64(x[i*d+j]) - mean
		variance += v * v
	}
	return mean, variance / float64(n)
}

func TestConcatBalancesModalities(t *testing.T) {
	// Block a: 3 columns on a scale of 1000; block b: 1 column on 1e-3 and a
	// constant column.
	n := 6
	a := Block{D: 3, X: make([]float32, n*3)}
	b := Block{D: 2, X: make([]float32, n*2)}
	for i := 0; i < n; i++ {
		for j := 0; j < 3; j++ {
			a.X[i*3+j] = float32(1000*(i*(j+1)%5) + 7)
		}
		b.X[i*2] = float32(i) * 1e-3
		b.X[i*2+1] = 42
	}
	x, d, err := Concat(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if d != 5 || len(x) != n*5 {
		t.Fatalf("width %d, len %d", d, len(x))
	}
	wantVar := []float64{1.0 / 3, 1.0 / 3, 1.0 / 3, 0.5, 0}
	for j := 0; j < d; j++ {
		m, v := colStats(x, n, d, j)
		if math.Abs(m) > 1e-5 || math.Abs(v-wantVar[j]) > 1e-5 {
			t.Errorf("column %d: mean %g var %g, want 0 and %g", j, m, v, wantVar[j])
		}
	}
	// Column order: a then b, with row order kept.
	if !(x[0*5+3] < x[1*5+3] && x[1*5+3] < x[2*5+3]) {
		t.Error("block b's first column lost its order")
	}
}

func TestConcatErrors(t *testing.T) {
	tests := []struct {
		name   string
		blocks []Block
	}{
		{"none", nil},
		{"ragged", []Block{{X: make([]float32, 5), D: 2}}},
		{"row mismatch", []Block{{X: make([]float32, 4), D: 2}, {X: make([]float32, 3), D: 1}}},
		{"zero width", []Block{{X: nil, D: 0}}},
	}
	for _, tc := range tests {
		if _, _, err := Concat(tc.blocks...); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestNeighbours(t *testing.T) {
	tests := []struct {
		name     string
		row, col []int
		grid     Grid
		want     [][]int
	}{
		{
			name: "square 3x2",
			// (0,0) (0,1) (1,0) (1,1) (2,0), (2,2) isolated from (0,*)
			row:  []int{0, 0, 1, 1, 2, 2},
			col:  []int{0, 1, 0, 1, 0, 2},
			grid: AutoGrid,
			want: [][]int{{1, 2, 3}, {0, 2, 3}, {0, 1, 3, 4}, {0, 1, 2, 4, 5}, {2, 3}, {3}},
		},
		{
			name: "hex",
			row:  []int{0, 0, 1, 1, 2},
			col:  []int{0, 2, 1, 3, 0},
			grid: AutoGrid, // all row+col even
			want: [][]int{{1, 2}, {0, 2, 3}, {0, 1, 3, 4}, {1, 2}, {2}},
		},
	}
	for _, tc := range tests {
		nb, err := Neighbours(tc.row, tc.col, tc.grid)
		if err != nil {
			t.Fatal(err)
		}
		for i := range tc.want {
			if !slices.Equal(nb[i], tc.want[i]) && !(len(nb[i]) == 0 && len(tc.want[i]) == 0) {
				t.Errorf("%s: spot %d neighbours %v, want %v", tc.name, i, nb[i], tc.want[i])
			}
		}
	}
	if _, err := Neighbours([]int{1, 1}, []int{2, 2}, SquareGrid); err == nil {
		t.Error("duplicate position: no error")
	}
}

func TestContext(t *testing.T) {
	x := []float32{1, 10, 2, 20, 3, 30, 9, 90}
	nb := [][]int{{1, 2}, {0}, {}, {0, 1, 2}}
	got, err := Context(x, 4, 2, nb)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{
		1, 10, 2.5, 25,
		2, 20, 1, 10,
		3, 30, 3, 30,
		9, 90, 2, 20,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	if _, err := Context(x, 4, 2, [][]int{{7}, {}, {}, {}}); err == nil {
		t.Error("out-of-range neighbour: no error")
	}
}
