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
	onWorkers(w, func(i int) {
		lo, hi := blockRange(n, w, i)
		fn(i, lo, hi)
	})
}

// onWorkers runs work(0) on the calling goroutine and work(1..w-1) on new
// ones, returning when all are done.
func onWorkers(w int, work func(i int)) {
	var wg sync.WaitGroup
	for i := 1; i < w; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(i)
		}()
	}
	work(0)
	wg.Wait()
}

// For runs fn over [0, n) in contiguous blocks of at least minPer items
// (except the last) on up to Threads() workers that claim blocks as they
// go: blocks shrink as the range runs out (each is the remaining range over
// twice the workers), so a worker on a slower or busier core simply takes
// fewer. Use it when fn's result does not depend on how [0, n) is cut (each
// item written by one block, nothing reduced across blocks); per-worker
// partial sums need Parallel's fixed blocks. On a 2-core host whose cores
// ran unevenly (one worker 4–12 % slower), the fixed halves left 8–12 % of a
// conv4 training step's worker time idle.
func For(n, minPer int, fn func(lo, hi int)) {
	w := Workers(n, minPer)
	if w <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	minPer = max(minPer, 1)
	var next atomic.Int64
	onWorkers(w, func(int) {
		for {
			lo := int(next.Load())
			if lo >= n {
				return
			}
			hi := min(n, lo+max(minPer, (n-lo+2*w-1)/(2*w)))
			if next.CompareAndSwap(int64(lo), int64(hi)) {
				fn(lo, hi)
			}
		}
	})
}

// Each runs fn(i) for every i in [0, n) on up to Threads() workers, each
// taking the next item in order whenever it is free: for items that get
// cheaper towards the end, so that the workers finish together. Like For,
// use it when the result does not depend on which worker runs an item.
func Each(n int, fn func(i int)) {
	w := min(Threads(), n)
	if w <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	onWorkers(w, func(int) {
		for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
			fn(i)
		}
	})
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
