package patch

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
)

type golden struct {
	Size        int                  `json:"size"`
	Alpha       [3]float64           `json:"alpha"`
	Beta        [3]float64           `json:"beta"`
	HED         []float64            `json:"hed"`
	Brightness  float64              `json:"brightness"`
	Contrast    float64              `json:"contrast"`
	BC          []float64            `json:"bc"`
	Sigma       float64              `json:"sigma"`
	Blur        []float64            `json:"blur"`
	Crop        [4]int               `json:"crop"`
	ResizedCrop []float64            `json:"resized_crop"`
	Rot90       map[string][]float64 `json:"rot90"`
}

// goldenInput rebuilds the input patch of testdata/gen_golden.py.
func goldenInput(s int) []float32 {
	p := make([]float32, 3*s*s)
	for c := 0; c < 3; c++ {
		for y := 0; y < s; y++ {
			for x := 0; x < s; x++ {
				p[(c*s+y)*s+x] = float32(0.1 + 0.8*float64((7*c+3*y+5*x)%11)/10)
			}
		}
	}
	return p
}

func TestAugmentGolden(t *testing.T) {
	var g golden
	testutil.ReadJSON(t, "testdata/golden.json", &g)
	s := g.Size
	tests := []struct {
		name string
		want []float64
		run  func(p []float32) []float32
	}{
		{"HED (scikit-image)", g.HED, func(p []float32) []float32 { HEDAdjust(p, s, g.Alpha, g.Beta); return p }},
		{"brightness+contrast (torchvision)", g.BC, func(p []float32) []float32 {
			BrightnessContrast(p, 3, s, g.Brightness, g.Contrast)
			return p
		}},
		{"gaussian blur (scipy)", g.Blur, func(p []float32) []float32 { GaussianBlur(p, 3, s, g.Sigma); return p }},
		{"resized crop (torch bilinear)", g.ResizedCrop, func(p []float32) []float32 {
			dst := make([]float32, len(p))
			ResizedCrop(dst, p, 3, s, g.Crop[0], g.Crop[1], g.Crop[2], g.Crop[3])
			return dst
		}},
	}
	for k := 0; k < 4; k++ {
		k := k
		tests = append(tests, struct {
			name string
			want []float64
			run  func(p []float32) []float32
		}{"rot90 k=" + string(rune('0'+k)) + " (numpy)", g.Rot90[string(rune('0'+k))], func(p []float32) []float32 {
			dst := make([]float32, len(p))
			Rot90(dst, p, 3, s, k)
			return dst
		}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.run(goldenInput(s))
			if len(got) != len(tc.want) {
				t.Fatalf("len %d, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if math.Abs(float64(got[i])-tc.want[i]) > 2e-6 {
					t.Fatalf("[%d] = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestFlipsAndIdentity(t *testing.T) {
	const s = 5
	p := goldenInput(s)
	q := append([]float32(nil), p...)
	FlipH(q, 3, s)
	if q[0] != p[s-1] || q[s*s+2*s] != p[s*s+2*s+s-1] {
		t.Error("FlipH does not mirror columns")
	}
	FlipH(q, 3, s)
	FlipV(q, 3, s)
	if q[0] != p[(s-1)*s] {
		t.Error("FlipV does not mirror rows")
	}
	FlipV(q, 3, s)
	for i := range p {
		if p[i] != q[i] {
			t.Fatal("double flip is not the identity")
		}
	}
	// Neutral settings change nothing.
	r := append([]float32(nil), p...)
	HEDAdjust(r, s, [3]float64{1, 1, 1}, [3]float64{})
	BrightnessContrast(r, 3, s, 1, 1)
	for i := range p {
		if math.Abs(float64(r[i]-p[i])) > 1e-5 {
			t.Fatalf("neutral HED/brightness changed [%d] %v -> %v", i, p[i], r[i])
		}
	}
}

func TestToCHWAndGrey(t *testing.T) {
	pix := []uint8{255, 0, 0, 0, 255, 0, 0, 0, 255, 51, 102, 204}
	chw := make([]float32, 12)
	ToCHW(pix, 2, chw)
	want := []float32{1, 0, 0, 0.2, 0, 1, 0, 0.4, 0, 0, 1, 0.8}
	for i := range want {
		if math.Abs(float64(chw[i]-want[i])) > 1e-6 {
			t.Fatalf("chw[%d] = %v, want %v", i, chw[i], want[i])
		}
	}
	g := make([]float32, 4)
	Grey(chw, 2, g)
	for i, w := range []float32{0.299, 0.587, 0.114, 0.299*0.2 + 0.587*0.4 + 0.114*0.8} {
		if math.Abs(float64(g[i]-w)) > 1e-6 {
			t.Errorf("grey[%d] = %v, want %v", i, g[i], w)
		}
	}
}

func TestAugmentDeterministic(t *testing.T) {
	const s = 16
	run := func(seed uint64) []float32 {
		rng := rand.New(rand.NewPCG(seed, 1))
		p := goldenInput(s)
		DefaultAugment().Apply(p, s, rng, nil)
		return p
	}
	a, b, c := run(7), run(7), run(8)
	same, diff := true, false
	for i := range a {
		if a[i] != b[i] {
			same = false
		}
		if a[i] != c[i] {
			diff = true
		}
		if a[i] < 0 || a[i] > 1 || math.IsNaN(float64(a[i])) {
			t.Fatalf("value %v outside [0,1]", a[i])
		}
	}
	if !same || !diff {
		t.Errorf("same seed same result: %v; other seed differs: %v", same, diff)
	}
}
