package nn

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/tensor"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	in := map[string]*tensor.Tensor{
		"enc.conv1.weight": tensor.FromSlice([]float32{1, -2, 3.5, 4, 5, 6}, 2, 3),
		"bias":             tensor.FromSlice([]float32{0.25}, 1),
		"scalar":           tensor.FromSlice([]float32{7}),
		"empty":            tensor.New(0, 3),
	}
	meta := map[string]string{"format": "pt", "seed": "1"}
	if err := SaveSafetensors(path, in, meta); err != nil {
		t.Fatal(err)
	}
	got, gotMeta, err := LoadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) || gotMeta["seed"] != "1" || gotMeta["format"] != "pt" {
		t.Fatalf("got %d tensors, meta %v", len(got), gotMeta)
	}
	for k, want := range in {
		g := got[k]
		if g == nil || !tensor.SameShape(g.Shape, want.Shape) {
			t.Fatalf("%s: got %v want %v", k, g, want)
		}
		for i := range want.Data {
			if g.Data[i] != want.Data[i] {
				t.Fatalf("%s[%d] = %g want %g", k, i, g.Data[i], want.Data[i])
			}
		}
	}
	// Same input, same bytes.
	path2 := filepath.Join(t.TempDir(), "m2.safetensors")
	if err := SaveSafetensors(path2, in, meta); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(path2)
	if string(a) != string(b) {
		t.Fatal("two saves of the same tensors differ")
	}
}

// withHeader builds a safetensors file from a raw header and data size.
func withHeader(h string, dataBytes int) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(out, h...)
	return append(out, make([]byte, dataBytes)...)
}

func TestSafetensorsRejectsBadFiles(t *testing.T) {
	cases := []struct {
		name string
		raw  []byte
		want string
	}{
		{"short", []byte{1, 2, 3}, "shorter"},
		{"huge header", binary.LittleEndian.AppendUint64(nil, 1<<40), "header length"},
		{"not json", withHeader("[1,2]   ", 0), "not a JSON object"},
		{"broken json", withHeader(`{"a":{"dtype":"F32"`, 0), "header"},
		{"dtype", withHeader(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, 4), "dtype"},
		{"size", withHeader(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 4), "needs 8 bytes"},
		{"outside", withHeader(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4), "outside"},
		{"gap", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "gap"},
		{"trailing data", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 8), "cover"},
		{"overlap", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4), "overlap"},
		{"duplicate", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4), "duplicate"},
		{"negative", withHeader(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), "negative"},
		{"unknown field", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, 4), "unknown field"},
		{"missing shape", withHeader(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, 4), "lacks"},
		{"bad metadata", withHeader(`{"__metadata__":{"a":1}}`, 0), "__metadata__"},
		{"trailing bytes", withHeader(`{}x`, 0), "trailing"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
			if err := os.WriteFile(path, c.raw, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadSafetensors(path)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want one naming %s and containing %q", err, path, c.want)
			}
		})
	}
}
