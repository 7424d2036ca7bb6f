package nn

import (
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/spotfuse/spotfuse/tensor"
)

// TestSafetensorsPython checks files in both directions against an
// independent numpy reader/writer (testdata/check_safetensors.py). It skips
// when python3 with numpy is not installed.
func TestSafetensorsPython(t *testing.T) {
	py := ""
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if err := exec.Command(p, "-c", "import numpy").Run(); err == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Skip("python3 with numpy not available")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "go.safetensors"), filepath.Join(dir, "py.safetensors")
	tensors := map[string]*tensor.Tensor{
		"enc.w": tensor.FromSlice([]float32{1.5, -2, 3, 0.25, 5, 6}, 3, 2),
		"enc.b": tensor.FromSlice([]float32{-7, 8}, 2),
		"s":     tensor.FromSlice([]float32{9}),
	}
	if err := SaveSafetensors(in, tensors, map[string]string{"model": "tiny"}); err != nil {
		t.Fatal(err)
	}
	stdout, err := exec.Command(py, "testdata/check_safetensors.py", in, out).Output()
	if err != nil {
		t.Fatalf("check_safetensors.py: %v", err)
	}
	var summary map[string]json.RawMessage
	if err := json.Unmarshal(stdout, &summary); err != nil {
		t.Fatalf("parse %q: %v", stdout, err)
	}
	var meta map[string]string
	if err := json.Unmarshal(summary["__metadata__"], &meta); err != nil || meta["model"] != "tiny" {
		t.Fatalf("python read metadata %s (%v)", summary["__metadata__"], err)
	}
	for name, want := range tensors {
		var s struct {
			Shape []int
			Sum   float64
			First []float64
		}
		if err := json.Unmarshal(summary[name], &s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var sum float64
		for _, v := range want.Data {
			sum += float64(v)
		}
		if !tensor.SameShape(s.Shape, want.Shape) || math.Abs(s.Sum-sum) > 1e-6 || s.First[0] != float64(want.Data[0]) {
			t.Fatalf("%s: python read %+v, want shape %v sum %g", name, s, want.Shape, sum)
		}
	}
	back, meta, err := LoadSafetensors(out)
	if err != nil {
		t.Fatal(err)
	}
	a, b := back["py.a"], back["py.b"]
	if meta["writer"] != "numpy" || a == nil || b == nil || !tensor.SameShape(a.Shape, []int{2, 3}) || b.Data[0] != -1.5 || a.Data[5] != 1.25 {
		t.Fatalf("read back %v %v %v", a, b, meta)
	}
}
