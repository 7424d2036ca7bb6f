package classify

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Fold is one train/test split; both hold indices into the labelled set the
// split was made from, in increasing order.
type Fold struct {
	Train, Test []int
}

// newRand returns the package's seeded source for splits. The second PCG
// word is fixed so a seed means the same thing in every function here.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed5)) }

// byClass groups the positions of y by label, classes in increasing order.
func byClass(y []int) (classes []int, members [][]int) {
	m := map[int][]int{}
	for i, c := range y {
		m[c] = append(m[c], i)
	}
	for c := range m {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	for _, c := range classes {
		members = append(members, m[c])
	}
	return classes, members
}

// StratifiedKFold splits the positions 0..len(y)-1 into k folds whose class
// proportions follow y's. Each class's members are shuffled (seeded) and
// dealt round-robin to the folds, continuing from where the previous class
// stopped, so fold sizes differ by at most one and a class with m members
// appears in min(m, k) test folds. Fold i tests on its own positions and
// trains on all others. The same y, k and seed always give the same folds.
//
// It is an error when k < 2 or len(y) < k.
func StratifiedKFold(y []int, k int, seed uint64) ([]Fold, error) {
	if k < 2 {
		return nil, fmt.Errorf("classify: stratified k-fold needs k ≥ 2, got %d", k)
	}
	if len(y) < k {
		return nil, fmt.Errorf("classify: stratified %d-fold needs at least %d samples, got %d", k, k, len(y))
	}
	rng := newRand(seed)
	// Start dealing at a seeded fold so that, over seeds, small classes do
	// not always land in the first folds.
	next := rng.IntN(k)
	assign := make([]int, len(y))
	_, members := byClass(y)
	for _, idx := range members {
		idx = slices.Clone(idx)
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		for _, i := range idx {
			assign[i] = next
			next = (next + 1) % k
		}
	}
	folds := make([]Fold, k)
	for i, f := range assign {
		for j := range folds {
			if j == f {
				folds[j].Test = append(folds[j].Test, i)
			} else {
				folds[j].Train = append(folds[j].Train, i)
			}
		}
	}
	return folds, nil
}

// StratifiedSubset draws a label-fraction subset of idx (positions into y):
// about frac·len(idx) elements, split over the classes in proportion to
// their counts in idx (largest-remainder rounding), each class's share drawn
// at random (seeded). Every class present in idx keeps at least one member,
// so for small fractions the subset can be larger than frac·len(idx) — with
// c classes it has at least c elements. frac = 1 returns all of idx. The
// result is sorted.
//
// It is an error when frac is not in (0, 1].
func StratifiedSubset(idx, y []int, frac float64, seed uint64) ([]int, error) {
	if !(frac > 0 && frac <= 1) {
		return nil, fmt.Errorf("classify: label fraction %v is not in (0, 1]", frac)
	}
	if frac == 1 {
		out := slices.Clone(idx)
		slices.Sort(out)
		return out, nil
	}
	sub := make([]int, len(idx))
	for i, j := range idx {
		sub[i] = y[j]
	}
	_, members := byClass(sub)
	quota := apportion(members, frac*float64(len(idx)))
	rng := newRand(seed)
	var out []int
	for ci, m := range members {
		m = slices.Clone(m)
		rng.Shuffle(len(m), func(i, j int) { m[i], m[j] = m[j], m[i] })
		for _, p := range m[:quota[ci]] {
			out = append(out, idx[p])
		}
	}
	slices.Sort(out)
	return out, nil
}

// apportion splits total over the groups in proportion to their sizes,
// with at least one and at most len(group) per group: each group starts at
// its floored exact share (at least one), then single elements move to the
// most under-served group (largest exact − quota) until the sum reaches the
// rounded total, or away from the most over-served group holding more than
// one while the sum exceeds it. Ties go to the earlier group.
func apportion(groups [][]int, total float64) []int {
	n := 0
	for _, g := range groups {
		n += len(g)
	}
	target := int(math.Round(total))
	q := make([]int, len(groups))
	exact := make([]float64, len(groups))
	sum := 0
	for i, g := range groups {
		exact[i] = total * float64(len(g)) / float64(n)
		q[i] = max(1, min(int(math.Floor(exact[i])), len(g)))
		sum += q[i]
	}
	for sum < target {
		best := -1
		for i, g := range groups {
			if q[i] < len(g) && (best < 0 || exact[i]-float64(q[i]) > exact[best]-float64(q[best])) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		q[best]++
		sum++
	}
	for sum > target {
		best := -1
		for i := range groups {
			if q[i] > 1 && (best < 0 || float64(q[i])-exact[i] > float64(q[best])-exact[best]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		q[best]--
		sum--
	}
	return q
}

// ValidationSplit holds out about frac of idx (positions into y), stratified
// by class, for early stopping. Classes with fewer than two members in idx
// stay wholly in train (a class must be trained on before it can be
// validated). Both results are sorted. With frac ≤ 0 or fewer than two
// elements, val is empty.
func ValidationSplit(idx, y []int, frac float64, seed uint64) (train, val []int) {
	if frac <= 0 || len(idx) < 2 {
		return slices.Clone(idx), nil
	}
	frac = min(frac, 0.5)
	sub := make([]int, len(idx))
	for i, j := range idx {
		sub[i] = y[j]
	}
	_, members := byClass(sub)
	rng := newRand(seed ^ 0x7a1)
	for _, m := range members {
		m = slices.Clone(m)
		rng.Shuffle(len(m), func(i, j int) { m[i], m[j] = m[j], m[i] })
		nv := 0
		if len(m) >= 2 {
			nv = max(1, int(math.Round(frac*float64(len(m)))))
			nv = min(nv, len(m)-1)
		}
		for k, p := range m {
			if k < nv {
				val = append(val, idx[p])
			} else {
				train = append(train, idx[p])
			}
		}
	}
	slices.Sort(train)
	slices.Sort(val)
	return train, val
}

// LeaveOneGroupOut returns one fold per distinct group (in increasing
// order of group): test = that group's positions, train = the rest.
func LeaveOneGroupOut(groups []int) []Fold {
	gs, members := byClass(groups)
	folds := make([]Fold, len(gs))
	for fi := range gs {
		for gi, m := range members {
			if gi == fi {
				folds[fi].Test = append(folds[fi].Test, m...)
			} else {
				folds[fi].Train = append(folds[fi].Train, m...)
			}
		}
		slices.Sort(folds[fi].Train)
		slices.Sort(folds[fi].Test)
	}
	return folds
}
