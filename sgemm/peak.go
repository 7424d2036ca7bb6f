package sgemm

import (
	"sync"
	"time"
)

// PeakGFLOPS measures this machine's single-precision peak: threads
// goroutines each run chains of independent 16-lane fused multiply-adds
// (the most any product could reach) for about d; it returns the total
// GFLOP/s, or 0 without the AVX-512 kernels.
func PeakGFLOPS(threads int, d time.Duration) float64 {
	if !haveKernel || threads < 1 {
		return 0
	}
	const chunk = 1 << 20 // iterations per call: 12·16·2·2²⁰ ≈ 0.4 GFLOP
	var wg sync.WaitGroup
	calls := make([]int, threads)
	start := time.Now()
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < d {
				fmaLoop(chunk)
				calls[t]++
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	total := 0
	for _, c := range calls {
		total += c
	}
	return float64(total) * chunk * 12 * 16 * 2 / el / 1e9
}
