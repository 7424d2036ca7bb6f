package tensor

import (
	"runtime"
	"sync"
	"sync/atomic"
)

var threads atomic.Int32

func init() { threads.Store(int32(runtime.NumCPU())) }

// Threads returns the number of worker goroutines used by parallel kernels.
func Threads() int { return int(threads.Load()) }

// SetThreads sets the number of worker goroutines (at least 1). Results are
// bit-identical between runs with the same setting.
func SetThreads(n int) {
	if n < 1 {
		n = 1
	}
	threads.Store(int32(n))
}

// Parallel splits [0, n) into at most Threads() contiguous blocks and runs
// fn(worker, lo, hi) for each, concurrently, returning when all are done. The
// blocks depend only on n and Threads(), so per-worker partial results can be
// reduced deterministically. Ranges with fewer than minPer items per worker
// use fewer workers.
func Parallel(n, minPer int, fn func(worker, lo, hi int)) {
	w := Workers(n, minPer)
	if w <= 1 {
		if n > 0 {
			fn(0, 0, n)
		}
		return
	}
	var wg sync.WaitGroup
	for i := 1; i < w; i++ {
		lo, hi := blockRange(n, w, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i, lo, hi)
		}()
	}
	lo, hi := blockRange(n, w, 0)
	fn(0, lo, hi)
	wg.Wait()
}

// Workers returns how many workers Parallel(n, minPer, ...) will use.
func Workers(n, minPer int) int {
	if minPer < 1 {
		minPer = 1
	}
	w := Threads()
	if m := n / minPer; m < w {
		w = m
	}
	if w < 1 {
		w = 1
	}
	return w
}

func blockRange(n, w, i int) (int, int) {
	return n * i / w, n * (i + 1) / w
}
