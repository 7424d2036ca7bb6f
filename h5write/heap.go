package h5write

import "io"

// Variable-length strings live in global heap collections (III.E): "GCOL",
// version 1, 3 reserved bytes, the collection size (header included), then
// objects, each a 16-byte header (2-byte index ≥ 1, 2-byte reference count,
// 4 reserved bytes, 8-byte size) followed by the bytes padded to a multiple
// of 8. Free space at the end is object 0, whose size counts its header.
// libhdf5 never makes a collection smaller than 4096 bytes; we close one
// when it reaches 64 KiB or 65535 objects (the index is 16 bits), so
// readers that scan a collection linearly stay fast.

const (
	heapHeader  = 16
	heapObjHdr  = 16
	heapMinSize = 4096
	heapMaxSize = 64 << 10
	heapMaxObjs = 0xffff
)

// heapID locates a string: collection address and object index.
type heapID struct {
	collection uint64
	index      uint32
}

type collection struct {
	addr uint64
	objs []string
	used int // bytes used so far, header included
}

// size is the collection's size on disk.
func (c *collection) size() int { return max(c.used, heapMinSize) }

// globalHeap places strings in consecutive collections starting at start.
type globalHeap struct {
	start uint64
	cols  []*collection
}

// end returns the address just past the last collection.
func (h *globalHeap) end() uint64 {
	if len(h.cols) == 0 {
		return h.start
	}
	c := h.cols[len(h.cols)-1]
	return c.addr + uint64(c.size())
}

func pad8(n int) int { return (n + 7) &^ 7 }

// add stores s and returns where it is.
func (h *globalHeap) add(s string) heapID {
	need := heapObjHdr + pad8(len(s))
	var c *collection
	if n := len(h.cols); n > 0 {
		c = h.cols[n-1]
		if len(c.objs) == heapMaxObjs || c.used+need > heapMaxSize {
			c = nil
		}
	}
	if c == nil {
		c = &collection{addr: h.end(), used: heapHeader}
		h.cols = append(h.cols, c)
	}
	c.objs = append(c.objs, s)
	c.used += need
	return heapID{collection: c.addr, index: uint32(len(c.objs))}
}

// writeTo writes every collection.
func (h *globalHeap) writeTo(w io.Writer) error {
	for _, c := range h.cols {
		b := make([]byte, 0, c.size())
		b = append(b, "GCOL"...)
		b = append(b, 1, 0, 0, 0)
		b = le.AppendUint64(b, uint64(c.size()))
		for i, s := range c.objs {
			b = le.AppendUint16(b, uint16(i+1))
			b = le.AppendUint16(b, 0)
			b = le.AppendUint32(b, 0)
			b = le.AppendUint64(b, uint64(len(s)))
			b = append(b, s...)
			b = append(b, make([]byte, pad8(len(s))-len(s))...)
		}
		if free := c.size() - c.used; free >= heapObjHdr {
			b = le.AppendUint16(b, 0)
			b = le.AppendUint16(b, 0)
			b = le.AppendUint32(b, 0)
			b = le.AppendUint64(b, uint64(free))
		}
		b = append(b, make([]byte, c.size()-len(b))...) // rest of the free space
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
