// Package metrics scores predicted region labels against the truth:
// accuracy, balanced accuracy, macro and per-class F1, confusion matrices,
// the adjusted Rand index and normalised mutual information for clusterings,
// and Pearson correlation and mean ± sd for summaries. Every function follows
// scikit-learn's definition and edge-case conventions (cross-checked by
// testdata/gen_golden.py).
//
// Labels are plain ints; they need not be contiguous. Functions taking two
// label slices return NaN when the slices differ in length or are empty
// (NewReport returns a descriptive error instead).
package metrics

import (
	"fmt"
	"math"
	"slices"
)

// Accuracy returns the fraction of positions where yPred equals yTrue.
func Accuracy(yTrue, yPred []int) float64 {
	if !sameLen(yTrue, yPred) {
		return math.NaN()
	}
	ok := 0
	for i := range yTrue {
		if yTrue[i] == yPred[i] {
			ok++
		}
	}
	return float64(ok) / float64(len(yTrue))
}

// BalancedAccuracy returns the mean recall over the classes present in
// yTrue (scikit-learn's balanced_accuracy_score: predicted-only classes do
// not count).
func BalancedAccuracy(yTrue, yPred []int) float64 {
	if !sameLen(yTrue, yPred) {
		return math.NaN()
	}
	support := map[int]int{}
	hit := map[int]int{}
	for i, t := range yTrue {
		support[t]++
		if yPred[i] == t {
			hit[t]++
		}
	}
	// Sum the recalls in class order: map order would change the last bit
	// from run to run.
	classes := make([]int, 0, len(support))
	for c := range support {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	var sum float64
	for _, c := range classes {
		sum += float64(hit[c]) / float64(support[c])
	}
	return sum / float64(len(support))
}

// PerClassF1 returns the sorted labels present in yTrue ∪ yPred and the F1
// score of each (scikit-learn f1_score(average=None, zero_division=0): a
// class never predicted or never true scores 0).
func PerClassF1(yTrue, yPred []int) (labels []int, f1 []float64) {
	if !sameLen(yTrue, yPred) {
		return nil, nil
	}
	tp := map[int]int{}
	nTrue := map[int]int{}
	nPred := map[int]int{}
	for i, t := range yTrue {
		p := yPred[i]
		nTrue[t]++
		nPred[p]++
		if t == p {
			tp[t]++
		}
	}
	labels = unionKeys(nTrue, nPred)
	f1 = make([]float64, len(labels))
	for j, c := range labels {
		// F1 = 2TP / (2TP + FP + FN) = 2TP / (|true c| + |pred c|).
		den := nTrue[c] + nPred[c]
		if den > 0 {
			f1[j] = 2 * float64(tp[c]) / float64(den)
		}
	}
	return labels, f1
}

// MacroF1 returns the unweighted mean of PerClassF1.
func MacroF1(yTrue, yPred []int) float64 {
	_, f1 := PerClassF1(yTrue, yPred)
	if len(f1) == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range f1 {
		s += v
	}
	return s / float64(len(f1))
}

// Confusion returns the k × k confusion matrix: entry [t][p] counts spots of
// true class t predicted as p. It returns nil when the slices differ in
// length or a label lies outside [0, k).
func Confusion(yTrue, yPred []int, k int) [][]int {
	if len(yTrue) != len(yPred) || k <= 0 {
		return nil
	}
	c := make([][]int, k)
	for i := range c {
		c[i] = make([]int, k)
	}
	for i, t := range yTrue {
		p := yPred[i]
		if t < 0 || t >= k || p < 0 || p >= k {
			return nil
		}
		c[t][p]++
	}
	return c
}

// contingency returns the table of co-occurrence counts between the
// distinct values of a (rows) and b (columns), with its row and column sums.
func contingency(a, b []int) (table [][]int64, rowSum, colSum []int64) {
	ai := index(a)
	bi := index(b)
	table = make([][]int64, len(ai))
	for i := range table {
		table[i] = make([]int64, len(bi))
	}
	rowSum = make([]int64, len(ai))
	colSum = make([]int64, len(bi))
	for i := range a {
		r, c := ai[a[i]], bi[b[i]]
		table[r][c]++
		rowSum[r]++
		colSum[c]++
	}
	return table, rowSum, colSum
}

// AdjustedRandIndex returns the Rand index of two clusterings adjusted for
// chance (scikit-learn adjusted_rand_score: 1 for identical partitions up to
// renaming, ~0 for independent ones, and 1 when both put every point in one
// cluster or every point in its own).
func AdjustedRandIndex(labelsTrue, labelsPred []int) float64 {
	if !sameLen(labelsTrue, labelsPred) {
		return math.NaN()
	}
	table, rowSum, colSum := contingency(labelsTrue, labelsPred)
	n := int64(len(labelsTrue))
	// Pair confusion matrix as in scikit-learn (counts of ordered pairs).
	var sumSq, rowDot, colDot int64
	for i, row := range table {
		for j, v := range row {
			sumSq += v * v
			rowDot += v * colSum[j]
			colDot += v * rowSum[i]
		}
	}
	tp := float64(sumSq - n)
	fp := float64(rowDot - sumSq)
	fn := float64(colDot - sumSq)
	tn := float64(n*n - (rowDot - sumSq) - (colDot - sumSq) - sumSq)
	if fn == 0 && fp == 0 {
		return 1
	}
	return 2 * (tp*tn - fn*fp) / ((tp+fn)*(fn+tn) + (tp+fp)*(fp+tn))
}

// NormalizedMutualInfo returns the mutual information of two clusterings
// divided by the arithmetic mean of their entropies (scikit-learn
// normalized_mutual_info_score default). Two single-cluster labelings score 1.
func NormalizedMutualInfo(labelsTrue, labelsPred []int) float64 {
	if !sameLen(labelsTrue, labelsPred) {
		return math.NaN()
	}
	table, rowSum, colSum := contingency(labelsTrue, labelsPred)
	if len(rowSum) == 1 && len(colSum) == 1 {
		return 1
	}
	mi := mutualInfo(table, rowSum, colSum, len(labelsTrue))
	if mi == 0 {
		return 0
	}
	return mi / ((entropy(rowSum) + entropy(colSum)) / 2)
}

func mutualInfo(table [][]int64, rowSum, colSum []int64, n int) float64 {
	if len(rowSum) == 1 || len(colSum) == 1 {
		return 0
	}
	N := float64(n)
	var mi float64
	for i, row := range table {
		for j, v := range row {
			if v == 0 {
				continue
			}
			p := float64(v) / N
			mi += p * (math.Log(float64(v)) + math.Log(N) - math.Log(float64(rowSum[i])) - math.Log(float64(colSum[j])))
		}
	}
	return math.Max(mi, 0)
}

func entropy(counts []int64) float64 {
	if len(counts) <= 1 {
		return 0
	}
	var n int64
	for _, c := range counts {
		n += c
	}
	logN := math.Log(float64(n))
	var h float64
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / float64(n)
			h -= p * (math.Log(float64(c)) - logN)
		}
	}
	return h
}

// Pearson returns the Pearson correlation of x and y, or NaN when the
// lengths differ, fewer than two values are given or either is constant.
func Pearson(x, y []float64) float64 {
	if len(x) != len(y) || len(x) < 2 {
		return math.NaN()
	}
	mx, _ := MeanSD(x)
	my, _ := MeanSD(y)
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return math.NaN()
	}
	return sxy / math.Sqrt(sxx*syy)
}

// MeanSD returns the mean and the sample standard deviation (ddof = 1) of x.
// The sd is NaN for fewer than two values; both are NaN for none.
func MeanSD(x []float64) (mean, sd float64) {
	if len(x) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	if len(x) < 2 {
		return mean, math.NaN()
	}
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss / float64(len(x)-1))
}

// Report bundles the scores of one prediction of k classes. It holds no
// NaN, so it encodes as JSON.
type Report struct {
	N                int       // number of scored spots
	Accuracy         float64   // fraction correct
	BalancedAccuracy float64   // mean recall over classes present in the truth
	MacroF1          float64   // mean F1 over classes in truth ∪ prediction
	PerClassF1       []float64 // indexed by class 0..k-1; 0 for classes absent from both
	Present          []bool    // class occurs in the truth or the prediction
	ARI              float64   // adjusted Rand index
	NMI              float64   // normalised mutual information (arithmetic)
	Confusion        [][]int   // [true][pred]
}

// NewReport scores yPred against yTrue for labels in [0, k). It returns an
// error when the lengths differ, the input is empty or a label is out of
// range.
func NewReport(yTrue, yPred []int, k int) (Report, error) {
	if len(yTrue) != len(yPred) {
		return Report{}, fmt.Errorf("metrics: %d true labels but %d predictions", len(yTrue), len(yPred))
	}
	if len(yTrue) == 0 {
		return Report{}, fmt.Errorf("metrics: no labels to score")
	}
	for i := range yTrue {
		if yTrue[i] < 0 || yTrue[i] >= k || yPred[i] < 0 || yPred[i] >= k {
			return Report{}, fmt.Errorf("metrics: label pair (%d, %d) at position %d outside [0, %d)", yTrue[i], yPred[i], i, k)
		}
	}
	r := Report{
		N:                len(yTrue),
		Accuracy:         Accuracy(yTrue, yPred),
		BalancedAccuracy: BalancedAccuracy(yTrue, yPred),
		MacroF1:          MacroF1(yTrue, yPred),
		ARI:              AdjustedRandIndex(yTrue, yPred),
		NMI:              NormalizedMutualInfo(yTrue, yPred),
		Confusion:        Confusion(yTrue, yPred, k),
		PerClassF1:       make([]float64, k),
		Present:          make([]bool, k),
	}
	labels, f1 := PerClassF1(yTrue, yPred)
	for j, c := range labels {
		r.PerClassF1[c] = f1[j]
		r.Present[c] = true
	}
	return r, nil
}

func sameLen(a, b []int) bool { return len(a) == len(b) && len(a) > 0 }

// index maps each distinct value of x to its rank among the sorted
// distinct values.
func index(x []int) map[int]int {
	m := map[int]int{}
	for _, v := range x {
		m[v] = 0
	}
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		m[k] = i
	}
	return m
}

func unionKeys(a, b map[int]int) []int {
	seen := map[int]bool{}
	var keys []int
	for _, m := range []map[int]int{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}
