package floatpool

import "testing"

// TestPool checks reuse by length, the byte bound and that a sub-slice
// comes back with its own length and capacity.
func TestPool(t *testing.T) {
	p := New(64)
	a := p.Get(8)
	a[0] = 7
	p.Put(a)
	if p.Bytes() != 32 {
		t.Fatalf("kept %d bytes, want 32", p.Bytes())
	}
	if b := p.Get(8); &b[0] != &a[0] {
		t.Error("a kept buffer of the same length was not reused")
	}
	if c := p.Get(4); len(c) != 4 {
		t.Errorf("Get(4) returned %d values", len(c))
	}
	p.Put(make([]float32, 12)) // 48 bytes: fits
	p.Put(make([]float32, 8))  // 32 more: over the bound, dropped
	if p.Bytes() != 48 {
		t.Errorf("kept %d bytes, want 48", p.Bytes())
	}
	big := make([]float32, 10)
	q := New(1 << 10)
	q.Put(big[:3])
	if s := q.Get(3); len(s) != 3 || cap(s) != 3 {
		t.Errorf("sub-slice came back with len %d cap %d", len(s), cap(s))
	}
	var zero Pool
	zero.Put(make([]float32, 2))
	if zero.Bytes() != 0 {
		t.Error("the zero Pool kept a buffer")
	}
}
