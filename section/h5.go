package section

// Shared HDF5 helpers for the 10x .h5 and AnnData .h5ad readers, on top of
// the pure-Go github.com/scigolib/hdf5.
//
// Third-party parsers of a binary format can panic on corrupt input, so every
// reader entry point that touches HDF5 defers recoverH5, which turns a panic
// into an error naming the file. Dataset sizes are checked against the file
// size before reading, so a corrupt header cannot make us allocate
// gigabytes.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/scigolib/hdf5"
)

// h5File is an open HDF5 file with an index of its objects by path
// ("/matrix/barcodes"; groups without a trailing slash).
type h5File struct {
	path string
	size int64
	f    *hdf5.File
	objs map[string]hdf5.Object
}

// recoverH5 converts a panic inside the HDF5 library into *err.
func recoverH5(path string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("section: %s: unreadable HDF5 file (%v)", path, r)
	}
}

func openH5(path string) (h *h5File, err error) {
	defer recoverH5(path, &err)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("section: %w", err)
	}
	if err := checkH5Length(path, fi.Size()); err != nil {
		return nil, err
	}
	f, err := hdf5.Open(path)
	if err != nil {
		return nil, fmt.Errorf("section: %s: not a readable HDF5 file: %v", path, err)
	}
	h = &h5File{path: path, size: fi.Size(), f: f, objs: map[string]hdf5.Object{}}
	f.Walk(func(p string, o hdf5.Object) {
		p = strings.TrimSuffix(p, "/")
		if p == "" {
			p = "/"
		}
		h.objs[p] = o
	})
	return h, nil
}

func (h *h5File) Close() error { return h.f.Close() }

// checkH5Length compares the end-of-file address recorded in the
// superblock (when it sits at offset 0) with the file size, so a truncated
// download is reported as such rather than as a missing object.
func checkH5Length(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("section: %w", err)
	}
	defer f.Close()
	var b [64]byte
	n, _ := io.ReadFull(f, b[:])
	if eof, ok := superblockEOF(b[:n]); ok && eof > uint64(size) {
		return fmt.Errorf("section: %s: truncated HDF5 file: %d bytes, its superblock says %d", path, size, eof)
	}
	// The heaps are checked whatever the superblock says: a fuzzed file
	// whose superblock gave 0-byte offsets (so no end-of-file address to
	// compare) still made the library allocate a corrupt heap's 378 GB.
	return checkHeaps(path, f, size)
}

// superblockEOF returns the end-of-file address recorded in a superblock
// at the start of b (the file's first bytes), when there is one with
// 8-byte offsets (the base address is 0 for files written at offset 0).
func superblockEOF(b []byte) (uint64, bool) {
	if len(b) < 16 || string(b[:8]) != "\x89HDF\r\n\x1a\n" {
		return 0, false // no superblock at 0: let the library decide
	}
	var at, osize int
	switch b[8] {
	case 0:
		at, osize = 24+2*8, int(b[13])
	case 1:
		at, osize = 28+2*8, int(b[13])
	case 2, 3:
		at, osize = 12+2*8, int(b[9])
	default:
		return 0, false
	}
	if osize != 8 || at+8 > len(b) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[at : at+8]), true
}

// checkHeaps guards against a defect of scigolib/hdf5 v0.14.0 found by
// fuzzing: it allocates local heap data segments and global heap
// collections at the size written in their headers, so a corrupt size makes
// the Go runtime abort with "out of memory" (not a recoverable panic). We
// scan the file for local heap headers ("HEAP", then a version byte, 3
// reserved bytes, 8-byte segment size, free-list offset and segment
// address) and global heap collections ("GCOL", version, 3 reserved bytes,
// 8-byte size) and refuse sizes that cannot fit in the file before the
// library sees them.
//
// A header found by its signature alone may be random bytes of compressed
// data, so it only counts when it looks real: version 0 (local) or 1
// (global) with zero reserved bytes, or (local) a segment address inside
// the file — or, whatever its version byte (the library does not check it;
// a fuzzed file had "HEAPcccc" and 378 GB), when its position is written
// somewhere in the file as an 8-byte address, i.e. something points at it.
func checkHeaps(path string, f *os.File, size int64) error {
	const hdr = 32 // longest header read
	fsize := uint64(size)
	var pointed []uint64 // suspicious headers of any version, to look up
	bad := func(kind string, pos, seg uint64) error {
		return fmt.Errorf("section: %s: corrupt HDF5 file: %s heap at byte %d claims %d bytes in a %d-byte file",
			path, kind, pos, seg, size)
	}
	err := scanFile(f, hdr, func(buf []byte, off int64) error {
		for _, sig := range [][]byte{[]byte("HEAP"), []byte("GCOL")} {
			for i := 0; ; i++ {
				j := bytes.Index(buf[i:], sig)
				if j < 0 || i+j+hdr > len(buf) {
					break
				}
				i += j
				h := buf[i : i+hdr]
				pos := uint64(off) + uint64(i)
				canonical := h[5] == 0 && h[6] == 0 && h[7] == 0
				seg := binary.LittleEndian.Uint64(h[8:])
				if sig[0] == 'H' {
					canonical = canonical && h[4] == 0
					addr := binary.LittleEndian.Uint64(h[24:])
					if seg <= fsize {
						continue
					}
					if canonical || addr < fsize {
						return bad("local", pos, seg)
					}
				} else {
					canonical = canonical && h[4] == 1
					if seg <= fsize-pos {
						continue
					}
					if canonical {
						return bad("global", pos, seg)
					}
				}
				if seg > maxHeapAlloc {
					pointed = append(pointed, pos)
				}
			}
		}
		return nil
	})
	if err != nil || len(pointed) == 0 {
		return err
	}
	// Is any suspicious header the target of an address in the file?
	return scanFile(f, 8, func(buf []byte, off int64) error {
		for _, pos := range pointed {
			var addr [8]byte
			binary.LittleEndian.PutUint64(addr[:], pos)
			if bytes.Contains(buf, addr[:]) {
				var seg [8]byte
				if _, err := f.ReadAt(seg[:], int64(pos)+8); err == nil {
					return bad("referenced", pos, binary.LittleEndian.Uint64(seg[:]))
				}
			}
		}
		return nil
	})
}

// maxHeapAlloc is the largest heap size claimed by an unusual header that
// is let through without checking whether anything points at it.
const maxHeapAlloc = 1 << 30

// scanFile calls fn on consecutive 1 MiB windows of f that overlap by
// overlap bytes (so a pattern shorter than that is never split), with the
// window's file offset; it stops at the first error.
func scanFile(f *os.File, overlap int, fn func(buf []byte, off int64) error) error {
	buf := make([]byte, 1<<20+overlap)
	var off int64
	for {
		n, err := f.ReadAt(buf, off)
		if ferr := fn(buf[:n], off); ferr != nil {
			return ferr
		}
		if err != nil || n < len(buf) {
			return nil
		}
		off += int64(n - overlap)
	}
}

func (h *h5File) errorf(format string, args ...any) error {
	return fmt.Errorf("section: %s: "+format, append([]any{h.path}, args...)...)
}

func (h *h5File) has(name string) bool { _, ok := h.objs[name]; return ok }

func (h *h5File) dataset(name string) (*hdf5.Dataset, error) {
	o, ok := h.objs[name]
	if !ok {
		return nil, h.errorf("missing dataset %s", name)
	}
	d, ok := o.(*hdf5.Dataset)
	if !ok {
		return nil, h.errorf("%s is a group, want a dataset", name)
	}
	return d, nil
}

func (h *h5File) group(name string) (*hdf5.Group, error) {
	o, ok := h.objs[name]
	if !ok {
		return nil, h.errorf("missing group %s", name)
	}
	g, ok := o.(*hdf5.Group)
	if !ok {
		return nil, h.errorf("%s is a dataset, want a group", name)
	}
	return g, nil
}

// children lists the names of the direct children of group name.
func (h *h5File) children(name string) []string {
	g, err := h.group(name)
	if err != nil {
		return nil
	}
	var out []string
	for _, c := range g.Children() {
		out = append(out, c.Name())
	}
	return out
}

// h5Shape is what Dataset.Info reports about a dataset.
type h5Shape struct {
	class string // "integer", "float", "string", "class_9" (variable length), ...
	size  int    // element size in bytes
	dims  []int  // nil for a scalar
}

var (
	infoType = regexp.MustCompile(`^Dataset: (\w+) \(size=(\d+) bytes\), `)
	infoDims = regexp.MustCompile(`(\d+)D array \[([0-9x ]*)\]`)
)

func (h *h5File) shape(name string) (h5Shape, error) {
	d, err := h.dataset(name)
	if err != nil {
		return h5Shape{}, err
	}
	info, err := d.Info()
	if err != nil {
		return h5Shape{}, h.errorf("dataset %s: %v", name, err)
	}
	m := infoType.FindStringSubmatch(info)
	if m == nil {
		return h5Shape{}, h.errorf("dataset %s: unexpected description %q", name, info)
	}
	s := h5Shape{class: m[1]}
	s.size, _ = strconv.Atoi(m[2])
	rest := info[len(m[0]):]
	if strings.HasPrefix(rest, "scalar") {
		return s, nil
	}
	dm := infoDims.FindStringSubmatch(rest)
	if dm == nil {
		return h5Shape{}, h.errorf("dataset %s: unsupported dataspace in %q", name, info)
	}
	for _, f := range strings.FieldsFunc(dm[2], func(r rune) bool { return r < '0' || r > '9' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return h5Shape{}, h.errorf("dataset %s: bad dimension %q", name, f)
		}
		s.dims = append(s.dims, n)
	}
	if nd, _ := strconv.Atoi(dm[1]); nd != len(s.dims) {
		return h5Shape{}, h.errorf("dataset %s: bad dataspace %q", name, info)
	}
	return s, nil
}

// elements returns the number of elements of a shape.
func (s h5Shape) elements() int {
	n := 1
	for _, d := range s.dims {
		if d != 0 && n > math.MaxInt32/d {
			return math.MaxInt32
		}
		n *= d
	}
	return n
}

// checkSize refuses datasets that could not possibly fit in the file, even
// at gzip's best ratio (about 1:1032), so corrupt headers cannot exhaust
// memory.
func (h *h5File) checkSize(name string, s h5Shape) error {
	n := s.elements()
	size := max(s.size, 1)
	if n >= math.MaxInt32 || int64(n)*int64(size) > 1100*h.size+(1<<20) {
		return h.errorf("dataset %s: %v elements of %d bytes cannot fit in a %d-byte file", name, s.dims, size, h.size)
	}
	return nil
}

// floats reads a numeric dataset as float64 with its shape.
func (h *h5File) floats(name string) ([]float64, h5Shape, error) {
	s, err := h.shape(name)
	if err != nil {
		return nil, s, err
	}
	if s.class != "integer" && s.class != "float" {
		return nil, s, h.errorf("dataset %s: want numbers, found %s", name, s.class)
	}
	if err := h.checkSize(name, s); err != nil {
		return nil, s, err
	}
	d, _ := h.dataset(name)
	v, err := d.Read()
	if err != nil {
		return nil, s, h.errorf("dataset %s: %v", name, err)
	}
	if len(v) != s.elements() {
		return nil, s, h.errorf("dataset %s: read %d values, shape %v says %d", name, len(v), s.dims, s.elements())
	}
	return v, s, nil
}

// ints reads a 1-D integer dataset; every value must be a whole number in
// [lo, hi].
func (h *h5File) ints(name string, lo, hi int) ([]int, error) {
	v, s, err := h.floats(name)
	if err != nil {
		return nil, err
	}
	if len(s.dims) != 1 {
		return nil, h.errorf("dataset %s: want a 1-D array, shape is %v", name, s.dims)
	}
	out := make([]int, len(v))
	for i, x := range v {
		if x != math.Trunc(x) || x < float64(lo) || x > float64(hi) {
			return nil, h.errorf("dataset %s: value %v at %d is not an integer in [%d, %d]", name, x, i, lo, hi)
		}
		out[i] = int(x)
	}
	return out, nil
}

// strings reads a 1-D string dataset, fixed-length or variable-length.
func (h *h5File) strings(name string) ([]string, error) {
	s, err := h.shape(name)
	if err != nil {
		return nil, err
	}
	if len(s.dims) > 1 {
		return nil, h.errorf("dataset %s: want a 1-D string array, shape is %v", name, s.dims)
	}
	if err := h.checkSize(name, s); err != nil {
		return nil, err
	}
	d, _ := h.dataset(name)
	var out []string
	switch s.class {
	case "string":
		out, err = d.ReadStrings()
	case "class_9": // variable length
		var b [][]byte
		b, err = d.ReadVLenBytes()
		out = make([]string, len(b))
		for i := range b {
			out[i] = string(b[i])
		}
	default:
		return nil, h.errorf("dataset %s: want strings, found %s", name, s.class)
	}
	if err != nil {
		return nil, h.errorf("dataset %s: %v", name, err)
	}
	if len(out) != s.elements() {
		return nil, h.errorf("dataset %s: read %d strings, shape %v says %d", name, len(out), s.dims, s.elements())
	}
	return out, nil
}

// attr returns attribute key of the object at name (group or dataset).
func (h *h5File) attr(name, key string) (any, error) {
	o, ok := h.objs[name]
	if !ok {
		return nil, h.errorf("missing %s", name)
	}
	var (
		v   any
		err error
	)
	switch o := o.(type) {
	case *hdf5.Group:
		attrs, e := o.Attributes()
		if e != nil {
			return nil, h.errorf("attributes of %s: %v", name, e)
		}
		found := false
		for _, a := range attrs {
			if a.Name == key {
				v, err = a.ReadValue()
				found = true
				break
			}
		}
		if !found {
			return nil, h.errorf("%s has no attribute %q", name, key)
		}
	case *hdf5.Dataset:
		v, err = o.ReadAttribute(key)
	default:
		return nil, h.errorf("%s: unsupported object", name)
	}
	if err != nil {
		return nil, h.errorf("attribute %s of %s: %v", key, name, err)
	}
	return v, nil
}

// attrString returns a string attribute, or "" when it is absent.
func (h *h5File) attrString(name, key string) string {
	v, err := h.attr(name, key)
	if err != nil {
		return ""
	}
	switch v := v.(type) {
	case string:
		return v
	case []string:
		if len(v) == 1 {
			return v[0]
		}
	}
	return ""
}

// attrInts returns an integer array attribute.
func (h *h5File) attrInts(name, key string) ([]int, error) {
	v, err := h.attr(name, key)
	if err != nil {
		return nil, err
	}
	var out []int
	switch v := v.(type) {
	case []int64:
		for _, x := range v {
			out = append(out, int(x))
		}
	case []int32:
		for _, x := range v {
			out = append(out, int(x))
		}
	case int64:
		out = []int{int(v)}
	case int32:
		out = []int{int(v)}
	default:
		return nil, h.errorf("attribute %s of %s: want integers, found %T", key, name, v)
	}
	return out, nil
}
