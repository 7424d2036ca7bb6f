package nn

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"testing"

	"github.com/spotfuse/spotfuse/tensor"
)

// stBytes builds a safetensors file from a raw JSON header and data bytes.
func stBytes(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

// FuzzLoadSafetensors checks that any byte string either loads into
// tensors whose shapes match their data (and survive a save/load round
// trip unchanged) or gives an error; never a panic or a huge allocation.
// The model bundle and the pretraining checkpoints are read through it.
func FuzzLoadSafetensors(f *testing.F) {
	dir := f.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	if err := SaveSafetensors(good, map[string]*tensor.Tensor{
		"w":     tensor.FromSlice([]float32{1, -2, 3.5, 0, 1e-3, 7}, 2, 3),
		"b":     tensor.FromSlice([]float32{0.25}, 1),
		"empty": tensor.New(0, 4),
	}, map[string]string{"format": "spotfuse", "genes": `["A","B"]`}); err != nil {
		f.Fatal(err)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)-3])
	f.Add(stBytes(`{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, []byte{0, 0, 128, 63}))
	// Shape whose element count overflows int64 to a small number.
	f.Add(stBytes(`{"a":{"dtype":"F32","shape":[4611686018427387905,4],"data_offsets":[0,16]}}`, make([]byte, 16)))
	f.Add(stBytes(`{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`, []byte{0, 0}))
	out := filepath.Join(dir, "out.safetensors")
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, meta, err := parseSafetensors(b)
		if err != nil {
			return
		}
		for name, x := range ts {
			n, ok := 1, true
			for _, d := range x.Shape {
				hi, lo := bits.Mul64(uint64(n), uint64(d))
				if d < 0 || hi != 0 || lo > 1<<40 {
					ok = false
					break
				}
				n = int(lo)
			}
			if !ok || n != len(x.Data) {
				t.Fatalf("tensor %q: shape %v holds %d values", name, x.Shape, len(x.Data))
			}
		}
		if err := SaveSafetensors(out, ts, meta); err != nil {
			t.Fatalf("accepted tensors cannot be saved again: %v", err)
		}
		ts2, meta2, err := LoadSafetensors(out)
		if err != nil {
			t.Fatalf("re-saved file does not load: %v", err)
		}
		if len(ts2) != len(ts) || len(meta2) != len(meta) {
			t.Fatalf("round trip changed the contents: %d→%d tensors, %d→%d metadata", len(ts), len(ts2), len(meta), len(meta2))
		}
		for name, x := range ts {
			y := ts2[name]
			if y == nil || !bytes.Equal(f32bytes(x.Data), f32bytes(y.Data)) {
				t.Fatalf("round trip changed tensor %q", name)
			}
		}
	})
}

func f32bytes(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}
