package nn

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"

	"github.com/spotfuse/spotfuse/atomicfile"
	"github.com/spotfuse/spotfuse/tensor"
)

// maxHeader bounds the JSON header of a safetensors file (the reference
// implementation uses 100 MB).
const maxHeader = 100 << 20

type stEntry struct {
	Dtype       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// SaveSafetensors writes tensors (float32, "F32") and string metadata to
// path in the safetensors format, atomically. Tensors are stored in name
// order, so the same input gives the same bytes.
func SaveSafetensors(path string, tensors map[string]*tensor.Tensor, meta map[string]string) error {
	names := make([]string, 0, len(tensors))
	for k, t := range tensors {
		if k == "" || k == "__metadata__" {
			return fmt.Errorf("nn: safetensors %s: invalid tensor name %q", path, k)
		}
		if t == nil || t.Size() != product(t.Shape) {
			return fmt.Errorf("nn: safetensors %s: tensor %q is nil or inconsistent", path, k)
		}
		names = append(names, k)
	}
	sort.Strings(names)
	header := map[string]any{}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	var off int64
	for _, k := range names {
		t := tensors[k]
		n := int64(4 * t.Size())
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[k] = stEntry{Dtype: "F32", Shape: shape, DataOffsets: [2]int64{off, off + n}}
		off += n
	}
	hj, err := json.Marshal(header) // map keys are sorted by encoding/json
	if err != nil {
		return fmt.Errorf("nn: safetensors %s: %w", path, err)
	}
	for len(hj)%8 != 0 { // pad with spaces so the data is 8-byte aligned
		hj = append(hj, ' ')
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		var lenBuf [8]byte
		binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hj)))
		if _, err := w.Write(lenBuf[:]); err != nil {
			return err
		}
		if _, err := w.Write(hj); err != nil {
			return err
		}
		buf := make([]byte, 0, 1<<16)
		for _, k := range names {
			for _, v := range tensors[k].Data {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
				if len(buf) == cap(buf) {
					if _, err := w.Write(buf); err != nil {
						return err
					}
					buf = buf[:0]
				}
			}
		}
		_, err := w.Write(buf)
		return err
	})
}

// LoadSafetensors reads a safetensors file of F32 tensors. The header is
// validated strictly: its size, JSON syntax, no duplicate names, dtype F32,
// non-negative shapes whose size matches the byte range, and byte ranges
// that tile the data section exactly. Errors name the file and the problem.
func LoadSafetensors(path string) (map[string]*tensor.Tensor, map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	tensors, meta, err := parseSafetensors(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	return tensors, meta, nil
}

func parseSafetensors(raw []byte) (map[string]*tensor.Tensor, map[string]string, error) {
	if len(raw) < 8 {
		return nil, nil, errors.New("file shorter than the 8-byte header length")
	}
	hl := binary.LittleEndian.Uint64(raw[:8])
	if hl > maxHeader || hl > uint64(len(raw)-8) {
		return nil, nil, fmt.Errorf("header length %d exceeds the file (%d bytes) or the 100 MB limit", hl, len(raw))
	}
	hdr := raw[8 : 8+hl]
	data := raw[8+hl:]
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, errors.New("header is not a JSON object")
	}
	entries, meta, err := decodeHeader(hdr)
	if err != nil {
		return nil, nil, err
	}
	type span struct {
		name     string
		from, to int64
	}
	spans := make([]span, 0, len(entries))
	tensors := make(map[string]*tensor.Tensor, len(entries))
	for name, e := range entries {
		if e.Dtype != "F32" {
			return nil, nil, fmt.Errorf("tensor %q has dtype %q; only F32 is supported", name, e.Dtype)
		}
		n := int64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return nil, nil, fmt.Errorf("tensor %q has negative dimension in shape %v", name, e.Shape)
			}
		}
		if !slices.Contains(e.Shape, 0) {
			for _, d := range e.Shape {
				if int64(d) > math.MaxInt64/4/n { // 4·n would overflow
					return nil, nil, fmt.Errorf("tensor %q: shape %v is too large", name, e.Shape)
				}
				n *= int64(d)
			}
		} else {
			n = 0
		}
		from, to := e.DataOffsets[0], e.DataOffsets[1]
		if from < 0 || to < from || to > int64(len(data)) {
			return nil, nil, fmt.Errorf("tensor %q has data offsets [%d, %d] outside the %d data bytes", name, from, to, len(data))
		}
		if to-from != 4*n {
			return nil, nil, fmt.Errorf("tensor %q of shape %v needs %d bytes, offsets give %d", name, e.Shape, 4*n, to-from)
		}
		spans = append(spans, span{name, from, to})
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[from+4*int64(i):]))
		}
		tensors[name] = tensor.FromSlice(vals, e.Shape...)
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].from != spans[j].from {
			return spans[i].from < spans[j].from
		}
		return spans[i].to < spans[j].to
	})
	var pos int64
	for _, s := range spans {
		if s.from != pos {
			return nil, nil, fmt.Errorf("tensor %q starts at byte %d, expected %d (gap or overlap in the data)", s.name, s.from, pos)
		}
		pos = s.to
	}
	if pos != int64(len(data)) {
		return nil, nil, fmt.Errorf("data section has %d bytes, tensors cover %d", len(data), pos)
	}
	return tensors, meta, nil
}

// decodeHeader parses the JSON header, rejecting duplicate keys and unknown
// fields.
func decodeHeader(hdr []byte) (map[string]stEntry, map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(hdr))
	if _, err := dec.Token(); err != nil { // {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	entries := map[string]stEntry{}
	var meta map[string]string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("header: %w", err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return nil, nil, fmt.Errorf("header: duplicate key %q", key)
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, nil, fmt.Errorf("header: value of %q: %w", key, err)
		}
		if key == "__metadata__" {
			if err := json.Unmarshal(val, &meta); err != nil {
				return nil, nil, fmt.Errorf("header: __metadata__ must map strings to strings: %w", err)
			}
			continue
		}
		var e stEntry
		d := json.NewDecoder(bytes.NewReader(val))
		d.DisallowUnknownFields()
		if err := d.Decode(&e); err != nil {
			return nil, nil, fmt.Errorf("header: tensor %q: %w", key, err)
		}
		if e.Dtype == "" || e.Shape == nil {
			return nil, nil, fmt.Errorf("header: tensor %q lacks dtype or shape", key)
		}
		entries[key] = e
	}
	if _, err := dec.Token(); err != nil { // }
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	// Only padding spaces may follow the object.
	if len(bytes.TrimRight(hdr[dec.InputOffset():], " ")) != 0 {
		return nil, nil, errors.New("header: trailing bytes after the JSON object")
	}
	return entries, meta, nil
}

func product(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
