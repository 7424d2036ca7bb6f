package classify

import (
	"math"
	"slices"
	"testing"
)

// labels returns counts[c] copies of each class c, interleaved by a fixed
// permutation so positions do not follow classes.
func labels(counts ...int) []int {
	var y []int
	for c, n := range counts {
		for range n {
			y = append(y, c)
		}
	}
	// Deterministic shuffle independent of the code under test.
	for i := range y {
		j := (i*7919 + 13) % len(y)
		y[i], y[j] = y[j], y[i]
	}
	return y
}

func classCounts(y, idx []int) map[int]int {
	m := map[int]int{}
	for _, i := range idx {
		m[y[i]]++
	}
	return m
}

func TestStratifiedKFold(t *testing.T) {
	tests := []struct {
		name   string
		counts []int
		k      int
	}{
		{"balanced", []int{50, 50}, 5},
		{"A1-like", []int{282, 21, 2, 24, 12}, 5},
		{"tiny classes", []int{10, 1, 1, 3}, 3},
		{"k equals n", []int{2, 2, 1}, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y := labels(tc.counts...)
			folds, err := StratifiedKFold(y, tc.k, 42)
			if err != nil {
				t.Fatal(err)
			}
			if len(folds) != tc.k {
				t.Fatalf("%d folds, want %d", len(folds), tc.k)
			}
			seen := make([]int, len(y))
			minSize, maxSize := len(y), 0
			for fi, f := range folds {
				if len(f.Train)+len(f.Test) != len(y) {
					t.Fatalf("fold %d: %d train + %d test != %d", fi, len(f.Train), len(f.Test), len(y))
				}
				if !slices.IsSorted(f.Train) || !slices.IsSorted(f.Test) {
					t.Fatalf("fold %d not sorted", fi)
				}
				in := map[int]bool{}
				for _, i := range f.Test {
					seen[i]++
					in[i] = true
				}
				for _, i := range f.Train {
					if in[i] {
						t.Fatalf("fold %d: %d in both train and test", fi, i)
					}
				}
				minSize, maxSize = min(minSize, len(f.Test)), max(maxSize, len(f.Test))
				// Each class's test count is within one of its share.
				cc := classCounts(y, f.Test)
				for c, n := range tc.counts {
					share := float64(n) / float64(tc.k)
					if math.Abs(float64(cc[c])-share) >= 1 {
						t.Errorf("fold %d class %d: %d test members, share %.2f", fi, c, cc[c], share)
					}
				}
			}
			for i, s := range seen {
				if s != 1 {
					t.Fatalf("position %d in %d test folds, want 1", i, s)
				}
			}
			if maxSize-minSize > 1 {
				t.Errorf("test fold sizes range %d..%d", minSize, maxSize)
			}
		})
	}
}

func TestStratifiedKFoldDeterministic(t *testing.T) {
	y := labels(40, 7, 3)
	a, _ := StratifiedKFold(y, 5, 7)
	b, _ := StratifiedKFold(y, 5, 7)
	c, _ := StratifiedKFold(y, 5, 8)
	same := func(x, y []Fold) bool {
		for i := range x {
			if !slices.Equal(x[i].Test, y[i].Test) {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Error("same seed gave different folds")
	}
	if same(a, c) {
		t.Error("different seeds gave identical folds")
	}
}

func TestStratifiedKFoldErrors(t *testing.T) {
	if _, err := StratifiedKFold([]int{0, 1, 0}, 1, 0); err == nil {
		t.Error("k=1: no error")
	}
	if _, err := StratifiedKFold([]int{0, 1}, 3, 0); err == nil {
		t.Error("n<k: no error")
	}
}

func TestStratifiedSubset(t *testing.T) {
	y := labels(282, 21, 2, 24, 12)
	all := make([]int, len(y))
	for i := range all {
		all[i] = i
	}
	tests := []struct {
		frac     float64
		wantSize int // exact expected size
	}{
		{1, 341},
		{0.5, 171}, // 170.5 → 171 by rounding, every class ≥ 1
		{0.1, 34},
		{0.01, 5}, // 3.41 → 3, but each of 5 classes keeps one
	}
	for _, tc := range tests {
		sub, err := StratifiedSubset(all, y, tc.frac, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(sub) != tc.wantSize {
			t.Errorf("frac %v: %d elements, want %d", tc.frac, len(sub), tc.wantSize)
		}
		if !slices.IsSorted(sub) || len(slices.Compact(slices.Clone(sub))) != len(sub) {
			t.Errorf("frac %v: not sorted/unique", tc.frac)
		}
		cc := classCounts(y, sub)
		for c, n := range []int{282, 21, 2, 24, 12} {
			if cc[c] < 1 {
				t.Errorf("frac %v: class %d missing", tc.frac, c)
			}
			// Proportional share, allowing rounding and the one-per-class
			// floor; below one spot per class, every class gets exactly one.
			want := tc.frac * float64(n)
			if tc.wantSize == 5 && cc[c] != 1 {
				t.Errorf("frac %v class %d: %d members, want 1", tc.frac, c, cc[c])
			} else if tc.wantSize > 5 && (float64(cc[c]) > math.Max(1, math.Ceil(want)) || float64(cc[c]) < math.Floor(want)) {
				t.Errorf("frac %v class %d: %d members, want ≈ %.1f", tc.frac, c, cc[c], want)
			}
		}
		again, _ := StratifiedSubset(all, y, tc.frac, 3)
		if !slices.Equal(sub, again) {
			t.Errorf("frac %v: not deterministic", tc.frac)
		}
	}
	// Subsets of a subset stay inside it.
	idx := []int{5, 9, 11, 40, 41, 42, 100, 200, 300}
	sub, _ := StratifiedSubset(idx, y, 0.3, 1)
	for _, i := range sub {
		if !slices.Contains(idx, i) {
			t.Errorf("subset element %d not in idx", i)
		}
	}
	for _, bad := range []float64{0, -0.1, 1.5, math.NaN()} {
		if _, err := StratifiedSubset(all, y, bad, 0); err == nil {
			t.Errorf("frac %v: no error", bad)
		}
	}
}

func TestValidationSplit(t *testing.T) {
	y := labels(30, 10, 1)
	idx := make([]int, len(y))
	for i := range idx {
		idx[i] = i
	}
	train, val := ValidationSplit(idx, y, 0.2, 9)
	if len(train)+len(val) != len(idx) {
		t.Fatalf("%d + %d != %d", len(train), len(val), len(idx))
	}
	cv := classCounts(y, val)
	if cv[0] != 6 || cv[1] != 2 || cv[2] != 0 {
		t.Errorf("validation class counts %v, want 6, 2, 0", cv)
	}
	if ct := classCounts(y, train); ct[2] != 1 {
		t.Errorf("singleton class not kept in train: %v", ct)
	}
	t2, v2 := ValidationSplit(idx, y, 0.2, 9)
	if !slices.Equal(train, t2) || !slices.Equal(val, v2) {
		t.Error("not deterministic")
	}
	if _, v := ValidationSplit(idx, y, 0, 9); len(v) != 0 {
		t.Error("frac 0 gave a validation set")
	}
}

func TestLeaveOneGroupOut(t *testing.T) {
	groups := []int{2, 0, 1, 0, 2, 2}
	folds := LeaveOneGroupOut(groups)
	want := [][]int{{1, 3}, {2}, {0, 4, 5}}
	if len(folds) != 3 {
		t.Fatalf("%d folds, want 3", len(folds))
	}
	for i, f := range folds {
		if !slices.Equal(f.Test, want[i]) {
			t.Errorf("fold %d test %v, want %v", i, f.Test, want[i])
		}
		if len(f.Train)+len(f.Test) != len(groups) {
			t.Errorf("fold %d sizes", i)
		}
		for _, j := range f.Train {
			if groups[j] == groups[f.Test[0]] {
				t.Errorf("fold %d trains on its own group", i)
			}
		}
	}
}
