package tensor

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// TestForCoversEachItemOnce checks that For hands every index of [0, n) to
// exactly one call, in blocks of at least minPer (but the last), for
// several sizes and thread counts.
func TestForCoversEachItemOnce(t *testing.T) {
	defer SetThreads(Threads())
	for _, tc := range []struct{ n, minPer, threads int }{
		{0, 1, 2}, {1, 1, 2}, {7, 1, 2}, {64, 1, 2}, {64, 1, 3}, {1000, 16, 2}, {1000, 300, 4}, {100000, 1 << 15, 2}, {5, 1, 8},
	} {
		t.Run(fmt.Sprint(tc.n, "/", tc.minPer, "/", tc.threads), func(t *testing.T) {
			SetThreads(tc.threads)
			seen := make([]atomic.Int32, tc.n)
			var short atomic.Int32
			For(tc.n, tc.minPer, func(lo, hi int) {
				if lo >= hi || lo < 0 || hi > tc.n {
					t.Errorf("block [%d, %d)", lo, hi)
					return
				}
				if hi-lo < tc.minPer && hi != tc.n {
					short.Add(1)
				}
				for i := lo; i < hi; i++ {
					seen[i].Add(1)
				}
			})
			for i := range seen {
				if c := seen[i].Load(); c != 1 {
					t.Fatalf("item %d ran %d times", i, c)
				}
			}
			if short.Load() > 0 {
				t.Errorf("%d blocks shorter than %d before the end", short.Load(), tc.minPer)
			}
		})
	}
}

// TestEachRunsEveryItemOnce checks that Each calls fn once for every index
// of [0, n), for several sizes and thread counts.
func TestEachRunsEveryItemOnce(t *testing.T) {
	defer SetThreads(Threads())
	for _, tc := range []struct{ n, threads int }{{0, 2}, {1, 2}, {2, 2}, {13, 2}, {13, 3}, {100, 8}, {3, 1}} {
		t.Run(fmt.Sprint(tc.n, "/", tc.threads), func(t *testing.T) {
			SetThreads(tc.threads)
			seen := make([]atomic.Int32, tc.n)
			Each(tc.n, func(i int) { seen[i].Add(1) })
			for i := range seen {
				if c := seen[i].Load(); c != 1 {
					t.Fatalf("item %d ran %d times", i, c)
				}
			}
		})
	}
}
