// Package floatpool keeps float32 buffers by length for reuse: a bounded
// free list that, unlike a sync.Pool, is not emptied by garbage collections
// (with the large buffers of a training step those ran every few steps and
// made most requests allocate and zero memory anew).
package floatpool

import "sync"

// Pool is a free list of float32 buffers by length, keeping at most Max
// bytes. The zero Pool keeps nothing; use New.
type Pool struct {
	mu    sync.Mutex
	free  map[int][][]float32
	bytes int
	max   int
}

// New returns a pool that keeps at most maxBytes bytes of buffers.
func New(maxBytes int) *Pool { return &Pool{max: maxBytes} }

// Get returns a buffer of length n whose contents are undefined: a kept one
// when there is one, else a new one.
func (p *Pool) Get(n int) []float32 {
	p.mu.Lock()
	if l := p.free[n]; len(l) > 0 {
		s := l[len(l)-1]
		l[len(l)-1] = nil
		p.free[n] = l[:len(l)-1]
		p.bytes -= 4 * n
		p.mu.Unlock()
		return s
	}
	p.mu.Unlock()
	return make([]float32, n)
}

// Put gives s back for a later Get of its length; it is dropped when the
// pool is full. s must not be used afterwards.
func (p *Pool) Put(s []float32) {
	n := len(s)
	if n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bytes+4*n > p.max {
		return
	}
	if p.free == nil {
		p.free = map[int][][]float32{}
	}
	p.free[n] = append(p.free[n], s[:n:n])
	p.bytes += 4 * n
}

// Bytes returns how many bytes of buffers the pool keeps now.
func (p *Pool) Bytes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes
}
