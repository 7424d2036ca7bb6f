// Package cluster groups spots without labels: k-means on embeddings and
// graph-based spatial domains (a kNN graph on features joined with a
// spatial-radius graph, partitioned by Louvain modularity optimisation),
// plus majority-vote smoothing of labels over spatial neighbours.
//
// Every function is deterministic given its seed.
package cluster

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// KMeansOptions configures KMeans. Zero values take the defaults noted.
type KMeansOptions struct {
	K       int     // number of clusters (required)
	NInit   int     // restarts from different k-means++ seeds; best inertia wins (default 10)
	MaxIter int     // Lloyd iterations per restart (default 300)
	Tol     float64 // stop when the squared centre shift ≤ Tol × mean feature variance (default 1e-4, as scikit-learn)
	Seed    uint64
}

// KMeansResult is the best of the restarts.
type KMeansResult struct {
	Labels  []int     // cluster of each row
	Centers []float64 // K × d, row-major
	Inertia float64   // sum of squared distances to the assigned centre
	Iter    int       // Lloyd iterations of the winning restart
}

// KMeans clusters the n × d row-major matrix x into opt.K clusters by
// Lloyd's algorithm from greedy k-means++ starts (as scikit-learn's KMeans).
func KMeans(x []float32, n, d int, opt KMeansOptions) (*KMeansResult, error) {
	if n <= 0 || d <= 0 || len(x) != n*d {
		return nil, fmt.Errorf("cluster: kmeans input has %d values, want %d × %d", len(x), n, d)
	}
	if opt.K <= 0 || opt.K > n {
		return nil, fmt.Errorf("cluster: kmeans K = %d for %d rows", opt.K, n)
	}
	if opt.NInit <= 0 {
		opt.NInit = 10
	}
	if opt.MaxIter <= 0 {
		opt.MaxIter = 300
	}
	if opt.Tol == 0 {
		opt.Tol = 1e-4
	}
	xf := make([]float64, len(x))
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, errors.New("cluster: kmeans input contains NaN or Inf")
		}
		xf[i] = float64(v)
	}
	tol := opt.Tol * meanVariance(xf, n, d)
	rng := rand.New(rand.NewPCG(opt.Seed, 0x6b6d65616e73))
	var best *KMeansResult
	for range opt.NInit {
		centers := kmeansPlusPlus(xf, n, d, opt.K, rng)
		r := lloyd(xf, n, d, centers, opt.MaxIter, tol)
		if best == nil || r.Inertia < best.Inertia {
			best = r
		}
	}
	return best, nil
}

func meanVariance(x []float64, n, d int) float64 {
	var total float64
	for j := 0; j < d; j++ {
		var m float64
		for i := 0; i < n; i++ {
			m += x[i*d+j]
		}
		m /= float64(n)
		var v float64
		for i := 0; i < n; i++ {
			v += (x[i*d+j] - m) * (x[i*d+j] - m)
		}
		total += v / float64(n)
	}
	return total / float64(d)
}

func sqDist(a, b []float64) float64 {
	var s float64
	for i := range a {
		t := a[i] - b[i]
		s += t * t
	}
	return s
}

// kmeansPlusPlus picks k starting centres by greedy k-means++: each new
// centre is the best (lowest potential) of 2+ln(k) candidates sampled with
// probability proportional to the squared distance to the nearest centre.
func kmeansPlusPlus(x []float64, n, d, k int, rng *rand.Rand) []float64 {
	centers := make([]float64, k*d)
	trials := 2 + int(math.Log(float64(k)))
	first := rng.IntN(n)
	copy(centers, x[first*d:(first+1)*d])
	closest := make([]float64, n)
	var pot float64
	for i := range n {
		closest[i] = sqDist(x[i*d:(i+1)*d], centers[:d])
		pot += closest[i]
	}
	cand := make([]float64, n)
	bestD := make([]float64, n)
	for c := 1; c < k; c++ {
		bestPot := math.Inf(1)
		bestIdx := -1
		for range trials {
			idx := sampleProportional(closest, pot, rng)
			p := 0.0
			ci := x[idx*d : (idx+1)*d]
			for i := range n {
				cand[i] = math.Min(closest[i], sqDist(x[i*d:(i+1)*d], ci))
				p += cand[i]
			}
			if p < bestPot {
				bestPot, bestIdx = p, idx
				copy(bestD, cand)
			}
		}
		copy(centers[c*d:(c+1)*d], x[bestIdx*d:(bestIdx+1)*d])
		copy(closest, bestD)
		pot = bestPot
	}
	return centers
}

func sampleProportional(w []float64, total float64, rng *rand.Rand) int {
	if total <= 0 {
		return rng.IntN(len(w))
	}
	r := rng.Float64() * total
	for i, v := range w {
		r -= v
		if r < 0 {
			return i
		}
	}
	// Rounding left r ≥ 0: take the last point with positive weight.
	for i := len(w) - 1; i >= 0; i-- {
		if w[i] > 0 {
			return i
		}
	}
	return len(w) - 1
}

func lloyd(x []float64, n, d int, centers []float64, maxIter int, tol float64) *KMeansResult {
	k := len(centers) / d
	labels := make([]int, n)
	next := make([]float64, k*d)
	count := make([]int, k)
	iter := 0
	for iter < maxIter {
		iter++
		assign(x, n, d, centers, labels)
		clear(next)
		clear(count)
		for i := range n {
			c := labels[i]
			count[c]++
			for j := 0; j < d; j++ {
				next[c*d+j] += x[i*d+j]
			}
		}
		var shift float64
		for c := range k {
			if count[c] == 0 {
				// Empty cluster: keep its old centre.
				copy(next[c*d:(c+1)*d], centers[c*d:(c+1)*d])
				continue
			}
			for j := 0; j < d; j++ {
				next[c*d+j] /= float64(count[c])
			}
			shift += sqDist(next[c*d:(c+1)*d], centers[c*d:(c+1)*d])
		}
		centers, next = next, centers
		if shift <= tol {
			break
		}
	}
	inertia := assign(x, n, d, centers, labels)
	return &KMeansResult{Labels: labels, Centers: append([]float64(nil), centers...), Inertia: inertia, Iter: iter}
}

// assign sets each label to its nearest centre and returns the inertia.
func assign(x []float64, n, d int, centers []float64, labels []int) float64 {
	k := len(centers) / d
	var inertia float64
	for i := range n {
		xi := x[i*d : (i+1)*d]
		best, bestD := 0, math.Inf(1)
		for c := range k {
			if dd := sqDist(xi, centers[c*d:(c+1)*d]); dd < bestD {
				best, bestD = c, dd
			}
		}
		labels[i] = best
		inertia += bestD
	}
	return inertia
}
