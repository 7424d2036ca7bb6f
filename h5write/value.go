package h5write

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// kind is the element type of a dataset or attribute.
type kind uint8

const (
	kInt8 kind = iota
	kInt16
	kInt32
	kInt64
	kFloat32
	kFloat64
	kBool   // h5py's boolean: enum {FALSE = 0, TRUE = 1} over int8
	kString // variable-length UTF-8 string
)

// size returns the bytes one element takes in the file; a string element
// is a reference into the global heap: 4-byte length, 8-byte collection
// address, 4-byte object index.
func (k kind) size() int {
	switch k {
	case kInt8, kBool:
		return 1
	case kInt16:
		return 2
	case kInt32, kFloat32:
		return 4
	case kInt64, kFloat64:
		return 8
	}
	return 16
}

// value is the payload of a dataset or attribute: a flat slice and its
// shape (nil dims = scalar).
type value struct {
	kind kind
	dims []int
	data any      // []int8, []int16, []int32, []int64, []float32, []float64, []bool or []string
	refs []heapID // for strings: where each element sits in the global heap
}

// newValue wraps data (a supported slice or scalar) with the shape dims;
// dims nil means 1-D for a slice and scalar for a scalar.
func newValue(data any, dims []int) (*value, error) {
	v := &value{data: data}
	scalar := false
	switch x := data.(type) {
	case []int8:
		v.kind = kInt8
	case []int16:
		v.kind = kInt16
	case []int32:
		v.kind = kInt32
	case []int64:
		v.kind = kInt64
	case []float32:
		v.kind = kFloat32
	case []float64:
		v.kind = kFloat64
	case []bool:
		v.kind = kBool
	case []string:
		v.kind = kString
	case int8:
		v.kind, v.data, scalar = kInt8, []int8{x}, true
	case int16:
		v.kind, v.data, scalar = kInt16, []int16{x}, true
	case int32:
		v.kind, v.data, scalar = kInt32, []int32{x}, true
	case int64:
		v.kind, v.data, scalar = kInt64, []int64{x}, true
	case float32:
		v.kind, v.data, scalar = kFloat32, []float32{x}, true
	case float64:
		v.kind, v.data, scalar = kFloat64, []float64{x}, true
	case bool:
		v.kind, v.data, scalar = kBool, []bool{x}, true
	case string:
		v.kind, v.data, scalar = kString, []string{x}, true
	default:
		return nil, fmt.Errorf("unsupported data type %T", data)
	}
	n := v.len()
	switch {
	case scalar && len(dims) > 0:
		return nil, fmt.Errorf("a scalar %T cannot have shape %v", data, dims)
	case scalar:
		return v, nil
	case len(dims) == 0:
		v.dims = []int{n}
		return v, nil
	case len(dims) > 32:
		return nil, fmt.Errorf("%d dimensions, HDF5 allows at most 32", len(dims))
	}
	total := 1
	for _, d := range dims {
		if d < 0 || (d > 0 && total > math.MaxInt/d) {
			return nil, fmt.Errorf("invalid shape %v", dims)
		}
		total *= d
	}
	if total != n {
		return nil, fmt.Errorf("shape %v holds %d elements but the data has %d", dims, total, n)
	}
	v.dims = append([]int(nil), dims...)
	return v, nil
}

// len returns the number of elements.
func (v *value) len() int {
	switch x := v.data.(type) {
	case []int8:
		return len(x)
	case []int16:
		return len(x)
	case []int32:
		return len(x)
	case []int64:
		return len(x)
	case []float32:
		return len(x)
	case []float64:
		return len(x)
	case []bool:
		return len(x)
	case []string:
		return len(x)
	}
	return 0
}

// byteSize returns the size of the encoded elements.
func (v *value) byteSize() int { return v.len() * v.kind.size() }

// writeData writes the elements little-endian, in blocks so a large
// dataset needs no second copy in memory.
func (v *value) writeData(w io.Writer) error {
	const block = 1 << 16 // elements per write
	var buf []byte
	for i := 0; i < v.len(); i += block {
		j := min(i+block, v.len())
		buf = v.appendData(buf[:0], i, j)
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// appendData appends elements [i, j) to b.
func (v *value) appendData(b []byte, i, j int) []byte {
	le := binary.LittleEndian
	switch x := v.data.(type) {
	case []int8:
		for _, e := range x[i:j] {
			b = append(b, byte(e))
		}
	case []int16:
		for _, e := range x[i:j] {
			b = le.AppendUint16(b, uint16(e))
		}
	case []int32:
		for _, e := range x[i:j] {
			b = le.AppendUint32(b, uint32(e))
		}
	case []int64:
		for _, e := range x[i:j] {
			b = le.AppendUint64(b, uint64(e))
		}
	case []float32:
		for _, e := range x[i:j] {
			b = le.AppendUint32(b, math.Float32bits(e))
		}
	case []float64:
		for _, e := range x[i:j] {
			b = le.AppendUint64(b, math.Float64bits(e))
		}
	case []bool:
		for _, e := range x[i:j] {
			if e {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
	case []string:
		for k, e := range x[i:j] {
			r := v.refs[i+k]
			b = le.AppendUint32(b, uint32(len(e)))
			b = le.AppendUint64(b, r.collection)
			b = le.AppendUint32(b, r.index)
		}
	}
	return b
}
