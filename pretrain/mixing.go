package pretrain

import (
	"container/heap"
	"fmt"
	"math"

	"github.com/spotfuse/spotfuse/tensor"
)

// SectionEntropy measures how well an embedding mixes sections (batches):
// for every spot it takes the k nearest other spots (Euclidean distance in
// the n × d row-major embedding emb) and computes the Shannon entropy of
// their section labels, normalised by log(nBatch) so that 1 would be a
// uniform mix of every section and 0 a neighbourhood from a single section.
// It returns the per-spot entropies and their mean.
//
// A latent that carries biology rather than batch has a high mean entropy
// while still separating cell states (see the separation measures in the
// benchmark); a latent dominated by batch effects scores near 0.
func SectionEntropy(emb []float32, n, d int, batch []int, nBatch, k int) (perSpot []float64, mean float64, err error) {
	switch {
	case n < 2 || d < 1 || len(emb) != n*d:
		return nil, 0, fmt.Errorf("pretrain: section entropy: embedding has %d values, want n×d = %d×%d with n ≥ 2", len(emb), n, d)
	case len(batch) != n:
		return nil, 0, fmt.Errorf("pretrain: section entropy: %d section labels for %d spots", len(batch), n)
	case nBatch < 2:
		return nil, 0, fmt.Errorf("pretrain: section entropy needs at least 2 sections, got %d", nBatch)
	case k < 1 || k >= n:
		return nil, 0, fmt.Errorf("pretrain: section entropy: k = %d neighbours for %d spots", k, n)
	}
	for _, b := range batch {
		if b < 0 || b >= nBatch {
			return nil, 0, fmt.Errorf("pretrain: section entropy: section label %d outside [0, %d)", b, nBatch)
		}
	}
	nbr := KNearest(emb, n, d, k)
	perSpot = make([]float64, n)
	logB := math.Log(float64(nBatch))
	counts := make([]int, nBatch)
	for i := 0; i < n; i++ {
		clear(counts)
		for _, j := range nbr[i*k : (i+1)*k] {
			counts[batch[j]]++
		}
		h := 0.0
		for _, c := range counts {
			if c > 0 {
				p := float64(c) / float64(k)
				h -= p * math.Log(p)
			}
		}
		perSpot[i] = h / logB
		mean += perSpot[i]
	}
	return perSpot, mean / float64(n), nil
}

// KNearest returns, for each of the n rows of the n × d matrix x, the
// indices of its k nearest other rows by Euclidean distance, nearest first
// (ties broken by the lower index), as an n × k row-major slice. Distances
// are computed blockwise with one matrix product per block, so memory stays
// O(block × n).
func KNearest(x []float32, n, d, k int) []int {
	sq := make([]float32, n)
	for i := 0; i < n; i++ {
		var s float32
		for _, v := range x[i*d : (i+1)*d] {
			s += v * v
		}
		sq[i] = s
	}
	out := make([]int, n*k)
	const block = 256
	dots := make([]float32, block*n)
	for lo := 0; lo < n; lo += block {
		hi := min(lo+block, n)
		m := hi - lo
		// dots[r, j] = x[lo+r] · x[j]
		tensor.Gemm(false, true, m, n, d, 1, x[lo*d:hi*d], d, x, d, 0, dots[:m*n], n)
		tensor.For(m, 8, func(a, b int) {
			h := &maxHeap{}
			for r := a; r < b; r++ {
				i := lo + r
				h.items = h.items[:0]
				row := dots[r*n : (r+1)*n]
				for j := 0; j < n; j++ {
					if j == i {
						continue
					}
					dist := sq[i] + sq[j] - 2*row[j]
					if len(h.items) < k {
						heap.Push(h, neighbour{dist, j})
					} else if top := h.items[0]; dist < top.dist || (dist == top.dist && j < top.idx) {
						h.items[0] = neighbour{dist, j}
						heap.Fix(h, 0)
					}
				}
				o := out[i*k : (i+1)*k]
				for p := k - 1; p >= 0; p-- {
					o[p] = heap.Pop(h).(neighbour).idx
				}
			}
		})
	}
	return out
}

type neighbour struct {
	dist float32
	idx  int
}

// maxHeap keeps the k best neighbours with the worst on top.
type maxHeap struct{ items []neighbour }

func (h *maxHeap) Len() int { return len(h.items) }
func (h *maxHeap) Less(a, b int) bool {
	x, y := h.items[a], h.items[b]
	if x.dist != y.dist {
		return x.dist > y.dist
	}
	return x.idx > y.idx
}
func (h *maxHeap) Swap(a, b int) { h.items[a], h.items[b] = h.items[b], h.items[a] }
func (h *maxHeap) Push(x any)    { h.items = append(h.items, x.(neighbour)) }
func (h *maxHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return it
}
