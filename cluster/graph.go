package cluster

import (
	"container/heap"
	"fmt"
	"math"
	"slices"
)

// Graph is an undirected weighted graph. Adj[i] lists i's neighbours once
// per edge (both endpoints list an edge); Self[i] is the weight of i's
// self-loop. Use AddEdge to keep the two directions consistent.
type Graph struct {
	N    int
	Adj  [][]Edge
	Self []float64
}

// Edge is one half of an undirected edge.
type Edge struct {
	To int
	W  float64
}

// NewGraph returns an edgeless graph on n nodes.
func NewGraph(n int) *Graph {
	return &Graph{N: n, Adj: make([][]Edge, n), Self: make([]float64, n)}
}

// AddEdge adds weight w to edge {i, j} (a self-loop when i == j). Adding an
// existing edge again increases its weight.
func (g *Graph) AddEdge(i, j int, w float64) {
	if i == j {
		g.Self[i] += w
		return
	}
	if k := slices.IndexFunc(g.Adj[i], func(e Edge) bool { return e.To == j }); k >= 0 {
		g.Adj[i][k].W += w
		k = slices.IndexFunc(g.Adj[j], func(e Edge) bool { return e.To == i })
		g.Adj[j][k].W += w
		return
	}
	g.Adj[i] = append(g.Adj[i], Edge{j, w})
	g.Adj[j] = append(g.Adj[j], Edge{i, w})
}

// Degree returns the weighted degree of node i (a self-loop counts twice,
// as in networkx).
func (g *Graph) Degree(i int) float64 {
	s := 2 * g.Self[i]
	for _, e := range g.Adj[i] {
		s += e.W
	}
	return s
}

// TotalWeight returns m, the sum of all edge weights (each edge once).
func (g *Graph) TotalWeight() float64 {
	var s float64
	for i := 0; i < g.N; i++ {
		s += g.Degree(i)
	}
	return s / 2
}

// Neighbours returns the neighbour lists of the graph (without weights),
// e.g. for SpatialSmooth.
func (g *Graph) Neighbours() [][]int {
	nb := make([][]int, g.N)
	for i, adj := range g.Adj {
		for _, e := range adj {
			nb[i] = append(nb[i], e.To)
		}
	}
	return nb
}

// KNNGraph links every row of the n × d matrix x to its k nearest rows in
// Euclidean distance (ties broken by lower index) with weight 1; the result
// is the symmetric union, so mutual neighbours get one edge of weight 1.
func KNNGraph(x []float32, n, d, k int) (*Graph, error) {
	if n <= 0 || d <= 0 || len(x) != n*d {
		return nil, fmt.Errorf("cluster: knn input has %d values, want %d × %d", len(x), n, d)
	}
	if k <= 0 || k >= n {
		return nil, fmt.Errorf("cluster: knn k = %d for %d rows", k, n)
	}
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("cluster: knn feature %d of row %d is not finite", i%d, i/d)
		}
	}
	g := NewGraph(n)
	linked := make([]map[int]bool, n)
	for i := range linked {
		linked[i] = map[int]bool{}
	}
	h := &maxHeap{}
	for i := range n {
		*h = (*h)[:0]
		xi := x[i*d : (i+1)*d]
		for j := range n {
			if j == i {
				continue
			}
			var s float64
			xj := x[j*d : (j+1)*d]
			for t := range xi {
				v := float64(xi[t]) - float64(xj[t])
				s += v * v
			}
			if h.Len() < k {
				heap.Push(h, cand{s, j})
			} else if s < (*h)[0].d {
				(*h)[0] = cand{s, j}
				heap.Fix(h, 0)
			}
		}
		for _, c := range *h {
			a, b := min(i, c.j), max(i, c.j)
			if !linked[a][b] {
				linked[a][b] = true
				g.Adj[a] = append(g.Adj[a], Edge{b, 1})
				g.Adj[b] = append(g.Adj[b], Edge{a, 1})
			}
		}
	}
	for i := range g.Adj {
		slices.SortFunc(g.Adj[i], func(a, b Edge) int { return a.To - b.To })
	}
	return g, nil
}

type cand struct {
	d float64
	j int
}

// maxHeap keeps the k best candidates with the worst on top; among equal
// distances the higher index is worse.
type maxHeap []cand

func (h maxHeap) Len() int { return len(h) }
func (h maxHeap) Less(a, b int) bool {
	if h[a].d != h[b].d {
		return h[a].d > h[b].d
	}
	return h[a].j > h[b].j
}
func (h maxHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *maxHeap) Push(v any)   { *h = append(*h, v.(cand)) }
func (h *maxHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

// RadiusGraph links spots whose centres (x[i], y[i]) lie within distance r
// of each other, with weight 1.
func RadiusGraph(x, y []float64, r float64) (*Graph, error) {
	if len(x) != len(y) {
		return nil, fmt.Errorf("cluster: %d x coordinates but %d y coordinates", len(x), len(y))
	}
	if !(r > 0) {
		return nil, fmt.Errorf("cluster: radius %g must be positive", r)
	}
	n := len(x)
	for i := range n {
		if math.IsNaN(x[i]+y[i]) || math.IsInf(x[i], 0) || math.IsInf(y[i], 0) {
			return nil, fmt.Errorf("cluster: spot %d has position (%g, %g)", i, x[i], y[i])
		}
	}
	// Bucket spots into r × r cells so only neighbouring cells are compared.
	type cell struct{ cx, cy int }
	grid := map[cell][]int{}
	cellOf := func(i int) cell { return cell{int(math.Floor(x[i] / r)), int(math.Floor(y[i] / r))} }
	for i := range n {
		grid[cellOf(i)] = append(grid[cellOf(i)], i)
	}
	g := NewGraph(n)
	r2 := r * r
	for i := range n {
		c := cellOf(i)
		for dx := -1; dx <= 1; dx++ {
			for dy := -1; dy <= 1; dy++ {
				for _, j := range grid[cell{c.cx + dx, c.cy + dy}] {
					if j == i {
						continue
					}
					if (x[i]-x[j])*(x[i]-x[j])+(y[i]-y[j])*(y[i]-y[j]) <= r2 {
						g.Adj[i] = append(g.Adj[i], Edge{j, 1})
					}
				}
			}
		}
		slices.SortFunc(g.Adj[i], func(a, b Edge) int { return a.To - b.To })
	}
	return g, nil
}

// Combine returns the graph with edge weights wa·a + wb·b (same node set).
func Combine(a, b *Graph, wa, wb float64) (*Graph, error) {
	if a.N != b.N {
		return nil, fmt.Errorf("cluster: combining graphs of %d and %d nodes", a.N, b.N)
	}
	g := NewGraph(a.N)
	for i := 0; i < a.N; i++ {
		w := map[int]float64{}
		for _, e := range a.Adj[i] {
			w[e.To] += wa * e.W
		}
		for _, e := range b.Adj[i] {
			w[e.To] += wb * e.W
		}
		for j, v := range w {
			if v != 0 {
				g.Adj[i] = append(g.Adj[i], Edge{j, v})
			}
		}
		slices.SortFunc(g.Adj[i], func(a, b Edge) int { return a.To - b.To })
		g.Self[i] = wa*a.Self[i] + wb*b.Self[i]
	}
	return g, nil
}

// SpatialSmooth replaces each label by the majority label among the spot
// and its neighbours. Ties keep the spot's own label when it is among the
// most frequent, else take the smallest tied label. Negative labels
// (unlabelled) neither vote nor change.
func SpatialSmooth(labels []int, neighbours [][]int) []int {
	out := make([]int, len(labels))
	count := map[int]int{}
	for i, own := range labels {
		if own < 0 || i >= len(neighbours) {
			out[i] = own
			continue
		}
		clear(count)
		count[own]++
		for _, j := range neighbours[i] {
			if j >= 0 && j < len(labels) && labels[j] >= 0 {
				count[labels[j]]++
			}
		}
		best, bestN := own, count[own]
		for l, c := range count {
			if c > bestN || (c == bestN && l < best && best != own) {
				best, bestN = l, c
			}
		}
		out[i] = best
	}
	return out
}
