package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
)

// LouvainOptions configures Louvain.
type LouvainOptions struct {
	Resolution float64 // γ in the modularity; 0 means 1 (larger γ, smaller communities)
	Seed       uint64  // order in which nodes are visited
	MaxLevels  int     // aggregation levels; 0 means until no node moves
}

// Modularity returns the Newman–Girvan modularity of the partition labels
// of g at resolution γ:
//
//	Q = Σ_c [ L_c/m − γ (d_c / 2m)² ]
//
// with L_c the weight of edges inside community c (self-loops once), d_c
// the summed degrees of its nodes and m the total edge weight (networkx's
// definition).
func Modularity(g *Graph, labels []int, resolution float64) float64 {
	m := g.TotalWeight()
	if m == 0 {
		return 0
	}
	in := map[int]float64{}
	deg := map[int]float64{}
	for i := 0; i < g.N; i++ {
		c := labels[i]
		deg[c] += g.Degree(i)
		in[c] += g.Self[i]
		for _, e := range g.Adj[i] {
			if labels[e.To] == c {
				in[c] += e.W / 2 // each internal edge is seen from both ends
			}
		}
	}
	var q float64
	for c, d := range deg {
		q += in[c]/m - resolution*(d/(2*m))*(d/(2*m))
	}
	return q
}

// Louvain partitions g into communities by the Louvain method (Blondel et
// al. 2008): nodes are visited in a seeded random order and moved to the
// neighbouring community with the largest modularity gain until no move
// helps, then communities are merged into nodes and the process repeats.
// Labels are numbered 0.. by decreasing community size (ties by smallest
// member). It returns the labels and their modularity.
func Louvain(ctx context.Context, g *Graph, opt LouvainOptions) ([]int, float64, error) {
	if g == nil || g.N == 0 {
		return nil, 0, fmt.Errorf("cluster: louvain on an empty graph")
	}
	if opt.Resolution == 0 {
		opt.Resolution = 1
	}
	if opt.Resolution < 0 {
		return nil, 0, fmt.Errorf("cluster: louvain resolution %g must be positive", opt.Resolution)
	}
	for i := 0; i < g.N; i++ {
		for _, e := range g.Adj[i] {
			if e.W < 0 || e.To < 0 || e.To >= g.N {
				return nil, 0, fmt.Errorf("cluster: louvain edge %d–%d (weight %g) is invalid", i, e.To, e.W)
			}
		}
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x6c6f7576))
	// membership[i] is the current community of original node i.
	membership := make([]int, g.N)
	for i := range membership {
		membership[i] = i
	}
	level := g
	for lv := 0; opt.MaxLevels == 0 || lv < opt.MaxLevels; lv++ {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		comm, moved := oneLevel(level, opt.Resolution, rng)
		if !moved {
			break
		}
		comm, nc := renumber(comm)
		for i := range membership {
			membership[i] = comm[membership[i]]
		}
		level = aggregate(level, comm, nc)
	}
	labels := bySize(membership)
	return labels, Modularity(g, labels, opt.Resolution), nil
}

// oneLevel runs local moving on g and returns each node's community and
// whether any node changed community.
func oneLevel(g *Graph, gamma float64, rng *rand.Rand) ([]int, bool) {
	n := g.N
	m2 := 2 * g.TotalWeight()
	comm := make([]int, n)
	tot := make([]float64, n) // summed degree of each community
	deg := make([]float64, n)
	for i := range n {
		comm[i] = i
		deg[i] = g.Degree(i)
		tot[i] = deg[i]
	}
	if m2 == 0 {
		return comm, false
	}
	order := rng.Perm(n)
	wTo := make([]float64, n) // weight from the current node to each community
	var touched []int
	movedAny := false
	for {
		moves := 0
		for _, i := range order {
			touched = touched[:0]
			for _, e := range g.Adj[i] {
				c := comm[e.To]
				if wTo[c] == 0 {
					touched = append(touched, c)
				}
				wTo[c] += e.W
			}
			old := comm[i]
			tot[old] -= deg[i]
			// Gain of joining c, up to a positive factor: w_i,c − γ tot_c k_i / 2m.
			best := old
			bestGain := wTo[old] - gamma*tot[old]*deg[i]/m2
			for _, c := range touched {
				gain := wTo[c] - gamma*tot[c]*deg[i]/m2
				if gain > bestGain+1e-12*m2 {
					best, bestGain = c, gain
				}
			}
			tot[best] += deg[i]
			comm[i] = best
			if best != old {
				moves++
			}
			for _, c := range touched {
				wTo[c] = 0
			}
		}
		if moves == 0 {
			break
		}
		movedAny = true
	}
	return comm, movedAny
}

// renumber maps community ids to 0..nc-1 in order of first appearance.
func renumber(comm []int) ([]int, int) {
	id := map[int]int{}
	out := make([]int, len(comm))
	for i, c := range comm {
		v, ok := id[c]
		if !ok {
			v = len(id)
			id[c] = v
		}
		out[i] = v
	}
	return out, len(id)
}

// aggregate collapses each community of g into one node; internal edges
// become self-loops so degrees and modularity are preserved.
func aggregate(g *Graph, comm []int, nc int) *Graph {
	h := NewGraph(nc)
	w := make([]map[int]float64, nc)
	for c := range w {
		w[c] = map[int]float64{}
	}
	for i := 0; i < g.N; i++ {
		ci := comm[i]
		h.Self[ci] += g.Self[i]
		for _, e := range g.Adj[i] {
			cj := comm[e.To]
			if cj == ci {
				h.Self[ci] += e.W / 2
			} else {
				w[ci][cj] += e.W
			}
		}
	}
	for c := range nc {
		for j, v := range w[c] {
			h.Adj[c] = append(h.Adj[c], Edge{j, v})
		}
		// Map order is random; sort so the next level is deterministic.
		slices.SortFunc(h.Adj[c], func(a, b Edge) int { return a.To - b.To })
	}
	return h
}

// bySize renumbers labels 0.. by decreasing community size, ties broken by
// the smallest member index.
func bySize(labels []int) []int {
	size := map[int]int{}
	first := map[int]int{}
	for i, l := range labels {
		if _, ok := first[l]; !ok {
			first[l] = i
		}
		size[l]++
	}
	ids := make([]int, 0, len(size))
	for l := range size {
		ids = append(ids, l)
	}
	slices.SortFunc(ids, func(a, b int) int {
		if size[a] != size[b] {
			return size[b] - size[a]
		}
		return first[a] - first[b]
	})
	rank := map[int]int{}
	for r, l := range ids {
		rank[l] = r
	}
	out := make([]int, len(labels))
	for i, l := range labels {
		out[i] = rank[l]
	}
	return out
}

// DomainOptions configures SpatialDomains.
type DomainOptions struct {
	KNN           int     // feature neighbours per spot (default 15)
	Radius        float64 // spatial neighbour radius in the coordinates' units (required)
	FeatureWeight float64 // weight of kNN edges (default 1)
	SpatialWeight float64 // weight of spatial edges (default 1)
	Louvain       LouvainOptions
}

// SpatialDomains clusters spots into spatial domains: a kNN graph on the
// n × d features x is joined with the graph of spots within opt.Radius of
// each other (centres xs, ys), and the sum is partitioned by Louvain.
func SpatialDomains(ctx context.Context, x []float32, n, d int, xs, ys []float64, opt DomainOptions) ([]int, error) {
	if len(xs) != n {
		return nil, fmt.Errorf("cluster: %d spot positions for %d feature rows", len(xs), n)
	}
	if opt.KNN == 0 {
		opt.KNN = min(15, n-1)
	}
	if opt.FeatureWeight == 0 {
		opt.FeatureWeight = 1
	}
	if opt.SpatialWeight == 0 {
		opt.SpatialWeight = 1
	}
	knn, err := KNNGraph(x, n, d, opt.KNN)
	if err != nil {
		return nil, err
	}
	sp, err := RadiusGraph(xs, ys, opt.Radius)
	if err != nil {
		return nil, err
	}
	g, err := Combine(knn, sp, opt.FeatureWeight, opt.SpatialWeight)
	if err != nil {
		return nil, err
	}
	labels, _, err := Louvain(ctx, g, opt.Louvain)
	return labels, err
}
