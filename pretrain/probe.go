package pretrain

import (
	"fmt"

	"github.com/spotfuse/spotfuse/classify"
	"github.com/spotfuse/spotfuse/metrics"
	"github.com/spotfuse/spotfuse/tensor"
)

// LinearProbe measures how linearly separable the classes are in the
// frozen features x (n×d row-major): for each seed it fits a multinomial
// L2 logistic regression (classify.FitLogReg, C = 1, balanced class
// weights, standardised features) on a stratified fraction frac of the
// labelled rows (y ≥ 0; y < 0 marks rows to ignore) and returns the balanced
// accuracy on the other labelled rows.
func LinearProbe(x []float32, n, d int, y []int, frac float64, seeds []uint64) ([]float64, error) {
	if len(x) != n*d || len(y) != n {
		return nil, fmt.Errorf("pretrain: probe features %d values, labels %d, want %d×%d and %d", len(x), len(y), n, d, n)
	}
	var labelled []int
	k := 0
	for i, c := range y {
		if c >= 0 {
			labelled = append(labelled, i)
			k = max(k, c+1)
		}
	}
	if len(labelled) < 4 || k < 2 {
		return nil, fmt.Errorf("pretrain: probe needs ≥ 4 labelled rows of ≥ 2 classes (have %d rows, %d classes)", len(labelled), k)
	}
	var accs []float64
	for _, seed := range seeds {
		train, err := classify.StratifiedSubset(labelled, y, frac, seed)
		if err != nil {
			return nil, err
		}
		in := map[int]bool{}
		for _, i := range train {
			in[i] = true
		}
		var test []int
		for _, i := range labelled {
			if !in[i] {
				test = append(test, i)
			}
		}
		if len(test) == 0 {
			return nil, fmt.Errorf("pretrain: probe with label fraction %g leaves no test rows", frac)
		}
		xtr, ytr := tensor.GatherRows(x, d, train), pick(y, train)
		m, err := classify.FitLogReg(xtr, len(train), d, ytr, k, classify.LogRegOptions{C: 1, Balanced: true})
		if err != nil {
			return nil, err
		}
		pred, err := m.Predict(tensor.GatherRows(x, d, test), len(test))
		if err != nil {
			return nil, err
		}
		accs = append(accs, metrics.BalancedAccuracy(pick(y, test), pred))
	}
	return accs, nil
}

func pick(y []int, idx []int) []int {
	out := make([]int, len(idx))
	for j, i := range idx {
		out[j] = y[i]
	}
	return out
}
