package models

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

func randPatches(n, size int, seed uint64) [][]uint8 {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([][]uint8, n)
	for i := range out {
		p := make([]uint8, 3*size*size)
		for j := range p {
			p[j] = uint8(rng.IntN(256))
		}
		out[i] = p
	}
	return out
}

func TestEncoderShapes(t *testing.T) {
	for _, tc := range []struct {
		cfg        ImageEncoderConfig
		size, d, h int
	}{
		{ImageEncoderConfig{}, 32, 256, 4},
		{ImageEncoderConfig{Width: 4, Depth: 2}, 16, 8, 8},
		{ImageEncoderConfig{Arch: "resnet", Width: 4, Depth: 3}, 16, 16, 4},
		{ImageEncoderConfig{Width: 2, Depth: 1}, 8, 2, 8},
	} {
		rng := rand.New(rand.NewPCG(1, 2))
		e := NewImageEncoder(tc.cfg, rng)
		if e.Dim() != tc.d {
			t.Errorf("%+v: Dim = %d, want %d", tc.cfg, e.Dim(), tc.d)
		}
		x := nn.Const(e.Input(randPatches(3, tc.size, 1), tc.size))
		fm := e.FeatureMap(x, true)
		if want := []int{3, tc.d, tc.h, tc.h}; !tensor.SameShape(fm.Value.Shape, want) {
			t.Errorf("%+v: feature map %v, want %v", tc.cfg, fm.Value.Shape, want)
		}
		dec := NewPixelDecoder(tc.d, e.Config.Depth-1, 3, rng)
		if out := dec.Forward(fm, true); !tensor.SameShape(out.Value.Shape, []int{3, 3, tc.size, tc.size}) {
			t.Errorf("%+v: decoder output %v, want [3 3 %d %d]", tc.cfg, out.Value.Shape, tc.size, tc.size)
		}
		if out := e.Forward(x, false); !tensor.SameShape(out.Value.Shape, []int{3, tc.d}) {
			t.Errorf("%+v: embedding %v, want [3 %d]", tc.cfg, out.Value.Shape, tc.d)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  ImageEncoderConfig
		want string
	}{
		{ImageEncoderConfig{Arch: "vit"}, "arch"},
		{ImageEncoderConfig{Width: -1}, "width"},
		{ImageEncoderConfig{Depth: 9}, "depth"},
		{ImageEncoderConfig{Std: [3]float32{1, 0, 1}}, "normalisation"},
	} {
		err := tc.cfg.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want it to mention %q", tc.cfg, err, tc.want)
		}
	}
	if err := (ImageEncoderConfig{}).WithDefaults().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// TestEmbedBatchInvariant checks that a patch's embedding does not depend on
// the other patches of its batch (eval mode) and that Embed is repeatable.
func TestEmbedBatchInvariant(t *testing.T) {
	e := NewImageEncoder(ImageEncoderConfig{Width: 4, Depth: 3}, rand.New(rand.NewPCG(3, 4)))
	// Non-trivial running statistics.
	pix := randPatches(EmbedBatch+5, 16, 2)
	e.Forward(nn.Const(e.Input(pix[:16], 16)), true)
	all, d := e.Embed(pix, 16)
	if len(all) != len(pix)*d {
		t.Fatalf("Embed returned %d values, want %d×%d", len(all), len(pix), d)
	}
	again, _ := e.Embed(pix, 16)
	one, _ := e.Embed(pix[EmbedBatch+2:EmbedBatch+3], 16)
	for j := 0; j < d; j++ {
		if math.Float32bits(all[j]) != math.Float32bits(again[j]) {
			t.Fatal("Embed is not repeatable")
		}
		if a, b := all[(EmbedBatch+2)*d+j], one[j]; math.Abs(float64(a-b)) > 1e-5*(1+math.Abs(float64(a))) {
			t.Fatalf("embedding dim %d: %g in a full batch, %g alone", j, a, b)
		}
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	for _, arch := range []string{"conv4", "resnet"} {
		cfg := ImageEncoderConfig{Arch: arch, Width: 4, Depth: 3, Mean: [3]float32{0.7, 0.5, 0.6}, Std: [3]float32{0.2, 0.2, 0.1}}
		e := NewImageEncoder(cfg, rand.New(rand.NewPCG(5, 6)))
		pix := randPatches(4, 16, 3)
		e.Forward(nn.Const(e.Input(pix, 16)), true) // move the running statistics
		path := filepath.Join(dir, arch+".safetensors")
		if err := e.Save(path); err != nil {
			t.Fatal(err)
		}
		l, err := LoadImageEncoder(path)
		if err != nil {
			t.Fatal(err)
		}
		if l.Config != e.Config {
			t.Errorf("%s: config %+v, want %+v", arch, l.Config, e.Config)
		}
		a, _ := e.Embed(pix, 16)
		b, _ := l.Embed(pix, 16)
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("%s: loaded encoder embeds differently", arch)
			}
		}
	}
	bad := filepath.Join(dir, "other.safetensors")
	if err := nn.SaveSafetensors(bad, map[string]*tensor.Tensor{"w": tensor.New(2)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadImageEncoder(bad); err == nil || !strings.Contains(err.Error(), "not an image encoder") {
		t.Errorf("loading a foreign file: err = %v", err)
	}
	if err := os.WriteFile(bad, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadImageEncoder(bad); err == nil {
		t.Error("loading garbage: no error")
	}
}

func TestPatchTensorAndStats(t *testing.T) {
	p := []uint8{255, 0, 51, 0, 255, 102} // two 1×1 patches
	x := PatchTensor([][]uint8{p[:3], p[3:]}, 1)
	want := []float32{1, 0, 0.2, 0, 1, 0.4}
	for i := range want {
		if math.Abs(float64(x.Data[i]-want[i])) > 1e-6 {
			t.Fatalf("PatchTensor = %v, want %v", x.Data, want)
		}
	}
	mean, std := ChannelStats([][]uint8{p[:3], p[3:]})
	wantMean := [3]float32{0.5, 0.5, 0.3}
	wantStd := [3]float32{0.5, 0.5, 0.1}
	for c := 0; c < 3; c++ {
		if math.Abs(float64(mean[c]-wantMean[c])) > 1e-6 || math.Abs(float64(std[c]-wantStd[c])) > 1e-6 {
			t.Fatalf("ChannelStats = %v, %v; want %v, %v", mean, std, wantMean, wantStd)
		}
	}
}

// TestPoolStages checks the "stages" embedding: its width is
// Width·(2^Depth − 1), its last FeatureDim entries are the "avg" embedding
// of the same weights, and each block's part is the channel mean of that
// block's output.
func TestPoolStages(t *testing.T) {
	for _, tc := range []struct {
		cfg ImageEncoderConfig
		d   int
	}{
		{ImageEncoderConfig{Width: 4, Depth: 3, Pool: PoolStages}, 4 + 8 + 16},
		{ImageEncoderConfig{Arch: "resnet", Width: 2, Depth: 4, Pool: PoolStages}, 2 + 4 + 8 + 16},
		{ImageEncoderConfig{Width: 3, Depth: 1, Pool: PoolStages}, 3},
	} {
		e := NewImageEncoder(tc.cfg, rand.New(rand.NewPCG(5, 6)))
		pix := randPatches(6, 16, 3)
		e.Forward(nn.Const(e.Input(pix, 16)), true) // non-trivial running statistics
		if e.Dim() != tc.d || e.FeatureDim() != tc.cfg.Width<<(tc.cfg.Depth-1) {
			t.Fatalf("%+v: Dim = %d, FeatureDim = %d, want %d and %d", tc.cfg, e.Dim(), e.FeatureDim(), tc.d, tc.cfg.Width<<(tc.cfg.Depth-1))
		}
		stages, d := e.Embed(pix, 16)
		if d != tc.d || len(stages) != len(pix)*d {
			t.Fatalf("%+v: Embed gave %d values of width %d, want %d×%d", tc.cfg, len(stages), d, len(pix), tc.d)
		}
		avgEnc := *e
		avgEnc.Config.Pool = PoolAvg
		avg, fd := avgEnc.Embed(pix, 16)
		var maps []*nn.Var
		nn.NoGrad(func() { maps = e.stageMaps(nn.Const(e.Input(pix, 16)), false) })
		for i := range pix {
			for j := 0; j < fd; j++ {
				if a, b := stages[i*d+d-fd+j], avg[i*fd+j]; a != b {
					t.Fatalf("%+v: patch %d: stages tail %d = %g, avg embedding %g", tc.cfg, i, j, a, b)
				}
			}
			off := 0
			for _, m := range maps {
				c, hw := m.Value.Shape[1], m.Value.Shape[2]*m.Value.Shape[3]
				for ch := 0; ch < c; ch++ {
					var s float64
					for _, v := range m.Value.Data[(i*c+ch)*hw : (i*c+ch+1)*hw] {
						s += float64(v)
					}
					if got, want := float64(stages[i*d+off+ch]), s/float64(hw); math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
						t.Fatalf("%+v: patch %d channel %d: %g, want mean %g", tc.cfg, i, off+ch, got, want)
					}
				}
				off += c
			}
		}
	}
	bad := ImageEncoderConfig{Pool: "max"}.WithDefaults().Validate()
	if bad == nil || !strings.Contains(bad.Error(), "pool") {
		t.Errorf("Pool max: err = %v, want it to mention pool", bad)
	}
}
