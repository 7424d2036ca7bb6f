package h5write

import (
	"bufio"
	"fmt"
	"io"
	"math"
)

// WriteTo lays the file out and writes it to w in one sequential pass:
// superblock, raw data, global heap, object headers. If building the file
// failed, it returns that error and writes nothing.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	if f.err != nil {
		return 0, f.err
	}
	objs := postOrder(f.root, nil)

	// Raw data follows the superblock.
	addr := uint64(superblockSize)
	for _, o := range objs {
		if d, ok := o.(*Dataset); ok {
			d.dataAddr = addr
			addr += uint64(d.val.byteSize())
		}
	}

	// Then every string, of datasets and attributes, in the global heap.
	heap := &globalHeap{start: addr}
	for _, o := range objs {
		n := o.base()
		if d, ok := o.(*Dataset); ok {
			if err := heap.place(d.val); err != nil {
				return 0, fmt.Errorf("h5write: %s: %v", n.path, err)
			}
		}
		for _, a := range n.attrs {
			if err := heap.place(a.val); err != nil {
				return 0, fmt.Errorf("h5write: %s: attribute %q: %v", n.path, a.name, err)
			}
		}
	}

	// Then the object headers, children first so that a group's Link
	// messages know their targets' addresses.
	addr = heap.end()
	headers := make([][]byte, len(objs))
	for i, o := range objs {
		h, err := header(o)
		if err != nil {
			return 0, err
		}
		o.base().addr = addr
		headers[i] = h
		addr += uint64(len(h))
	}

	bw := bufio.NewWriterSize(w, 1<<16)
	cw := &countingWriter{w: bw}
	err := func() error {
		if _, err := cw.Write(superblock(addr, f.root.addr)); err != nil {
			return err
		}
		for _, o := range objs {
			if d, ok := o.(*Dataset); ok {
				if err := d.val.writeData(cw); err != nil {
					return err
				}
			}
		}
		if err := heap.writeTo(cw); err != nil {
			return err
		}
		for _, h := range headers {
			if _, err := cw.Write(h); err != nil {
				return err
			}
		}
		return bw.Flush()
	}()
	if err == nil && uint64(cw.n) != addr {
		err = fmt.Errorf("h5write: internal error: wrote %d bytes, laid out %d", cw.n, addr)
	}
	return cw.n, err
}

// postOrder appends the objects below g, then g, to objs.
func postOrder(g *Group, objs []object) []object {
	for _, c := range g.children {
		if sub, ok := c.obj.(*Group); ok {
			objs = postOrder(sub, objs)
		} else {
			objs = append(objs, c.obj)
		}
	}
	return append(objs, g)
}

// place puts the elements of a string value in the heap.
func (h *globalHeap) place(v *value) error {
	if v.kind != kString {
		return nil
	}
	strs := v.data.([]string)
	v.refs = make([]heapID, len(strs))
	for i, s := range strs {
		if len(s) > math.MaxUint32-heapObjHdr {
			return fmt.Errorf("string %d is %d bytes long, too long for HDF5", i, len(s))
		}
		v.refs[i] = h.add(s)
	}
	return nil
}

// header encodes the object header of a group or dataset.
func header(o object) ([]byte, error) {
	n := o.base()
	var msgs []message
	switch o := o.(type) {
	case *Group:
		msgs = append(msgs, linkInfo(), groupInfo())
		for _, c := range o.children {
			msgs = append(msgs, link(c.name, c.obj.base().addr))
		}
	case *Dataset:
		msgs = append(msgs,
			message{typ: msgDataspace, body: dataspace(o.val.dims)},
			message{typ: msgDatatype, flags: 1, body: datatype(o.val.kind)},
			fillValue(),
			contiguousLayout(o.dataAddr, o.val.byteSize()))
	}
	for _, a := range n.attrs {
		body := attributeMessage(a.name, a.val)
		if len(body) > maxMessage {
			return nil, fmt.Errorf("h5write: %s: attribute %q needs %d bytes, more than the %d an object header message holds",
				n.path, a.name, len(body), maxMessage)
		}
		msgs = append(msgs, message{typ: msgAttribute, body: body})
	}
	return objectHeader(msgs), nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
