package fuse

import (
	"fmt"
	"slices"
)

// Grid is the layout of a capture array.
type Grid int

const (
	// AutoGrid picks HexGrid when every spot has the same parity of
	// row + col (Visium), else SquareGrid (legacy ST).
	AutoGrid Grid = iota
	// SquareGrid: neighbours are the 8 spots at |Δrow| ≤ 1, |Δcol| ≤ 1.
	SquareGrid
	// HexGrid (Visium, doubled column coordinates): the 6 spots at
	// (Δrow, Δcol) ∈ {(0, ±2), (±1, ±1)}.
	HexGrid
)

// Neighbours returns, for each spot, the indices of the spots adjacent to
// it on the array (row, col are array coordinates), in increasing order.
// Duplicate positions are an error.
func Neighbours(row, col []int, grid Grid) ([][]int, error) {
	if len(row) != len(col) {
		return nil, fmt.Errorf("fuse: %d rows but %d cols", len(row), len(col))
	}
	type pos struct{ r, c int }
	at := make(map[pos]int, len(row))
	for i := range row {
		p := pos{row[i], col[i]}
		if j, dup := at[p]; dup {
			return nil, fmt.Errorf("fuse: spots %d and %d share array position (%d, %d)", j, i, p.r, p.c)
		}
		at[p] = i
	}
	if grid == AutoGrid {
		grid = HexGrid
		for i := range row {
			if (row[i]+col[i])%2 != (row[0]+col[0])%2 {
				grid = SquareGrid
				break
			}
		}
		if len(row) < 2 {
			grid = SquareGrid
		}
	}
	var offsets [][2]int
	switch grid {
	case SquareGrid:
		offsets = [][2]int{{-1, -1}, {-1, 0}, {-1, 1}, {0, -1}, {0, 1}, {1, -1}, {1, 0}, {1, 1}}
	case HexGrid:
		offsets = [][2]int{{-1, -1}, {-1, 1}, {0, -2}, {0, 2}, {1, -1}, {1, 1}}
	default:
		return nil, fmt.Errorf("fuse: unknown grid %d", grid)
	}
	nb := make([][]int, len(row))
	for i := range row {
		for _, o := range offsets {
			if j, ok := at[pos{row[i] + o[0], col[i] + o[1]}]; ok {
				nb[i] = append(nb[i], j)
			}
		}
		slices.Sort(nb[i])
	}
	return nb, nil
}

// Context returns the n × 2d matrix whose row i is x's row i followed by the
// mean of x's rows over i's neighbours (nb from Neighbours). A spot without
// neighbours gets its own row as context.
func Context(x []float32, n, d int, nb [][]int) ([]float32, error) {
	if len(x) != n*d || len(nb) != n {
		return nil, fmt.Errorf("fuse: context of %d values for %d×%d with %d neighbour lists", len(x), n, d, len(nb))
	}
	out := make([]float32, n*2*d)
	mean := make([]float64, d)
	for i := 0; i < n; i++ {
		copy(out[i*2*d:], x[i*d:(i+1)*d])
		ctx := out[i*2*d+d : (i+1)*2*d]
		if len(nb[i]) == 0 {
			copy(ctx, x[i*d:(i+1)*d])
			continue
		}
		clear(mean)
		for _, j := range nb[i] {
			if j < 0 || j >= n {
				return nil, fmt.Errorf("fuse: spot %d has neighbour %d outside 0..%d", i, j, n-1)
			}
			for k := 0; k < d; k++ {
				mean[k] += float64(x[j*d+k])
			}
		}
		for k := range ctx {
			ctx[k] = float32(mean[k] / float64(len(nb[i])))
		}
	}
	return out, nil
}
