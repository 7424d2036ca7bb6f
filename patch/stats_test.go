package patch

import (
	"math"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
)

func TestColourTextureStatsAgainstSkimage(t *testing.T) {
	var g struct {
		Cases []struct {
			Name  string
			Size  int
			Pix   []uint8
			Stats []float64
		}
	}
	testutil.ReadJSON(t, "testdata/stats_golden.json", &g)
	for _, c := range g.Cases {
		got, err := ColourTextureStats(c.Pix, c.Size)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(StatsNames) || len(c.Stats) != len(StatsNames) {
			t.Fatalf("%s: %d stats, reference %d, names %d", c.Name, len(got), len(c.Stats), len(StatsNames))
		}
		for i, want := range c.Stats {
			if math.Abs(float64(got[i])-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Errorf("%s %s = %.7g, scikit-image %.7g", c.Name, StatsNames[i], got[i], want)
			}
		}
	}
}

func stat(t *testing.T, s []float32, name string) float64 {
	t.Helper()
	for i, n := range StatsNames {
		if n == name {
			return float64(s[i])
		}
	}
	t.Fatalf("no stat %q", name)
	return 0
}

func TestColourTextureStatsKnownAnswers(t *testing.T) {
	const size = 8
	uniform := make([]uint8, 3*size*size)
	checker := make([]uint8, 3*size*size)
	for p := range size * size {
		copy(uniform[3*p:], []uint8{200, 100, 150})
		if (p/size+p%size)%2 == 1 {
			copy(checker[3*p:], []uint8{255, 255, 255})
		}
	}
	tests := []struct {
		name string
		pix  []uint8
		want map[string]float64
	}{
		{"uniform colour", uniform, map[string]float64{
			"r_mean": 200.0 / 255, "g_mean": 100.0 / 255, "b_mean": 150.0 / 255,
			"r_sd": 0, "g_sd": 0, "b_sd": 0, "h_sd": 0, "e_sd": 0, "d_sd": 0,
			"grey_hist_3": 1, "grad_mean": 0, "grad_sd": 0,
			"glcm_contrast": 0, "glcm_homogeneity": 1, "glcm_energy": 1, "glcm_correlation": 1,
		}},
		// 1-pixel black/white checkerboard: horizontal and vertical
		// neighbours differ by 15 levels (contrast 225, correlation −1),
		// diagonal ones are equal (contrast 0, correlation 1; 25 black and
		// 24 white diagonal pairs at 45°, 24 and 25 at 135°).
		{"checkerboard", checker, map[string]float64{
			"r_mean": 0.5, "r_sd": 0.5, "grey_hist_0": 0.5, "grey_hist_7": 0.5,
			"glcm_contrast": 112.5, "glcm_homogeneity": (1.0/226 + 1) / 2,
			"glcm_energy": (math.Sqrt(0.5) + math.Sqrt(50*50+48*48)/98) / 2, "glcm_correlation": 0,
		}},
	}
	for _, tc := range tests {
		s, err := ColourTextureStats(tc.pix, size)
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range tc.want {
			if got := stat(t, s, name); math.Abs(got-want) > 1e-6 {
				t.Errorf("%s: %s = %g, want %g", tc.name, name, got, want)
			}
		}
	}
}

func TestColourTextureStatsBadInput(t *testing.T) {
	for _, tc := range []struct {
		pix  []uint8
		size int
	}{{make([]uint8, 10), 2}, {make([]uint8, 3), 1}, {nil, 0}} {
		if _, err := ColourTextureStats(tc.pix, tc.size); err == nil {
			t.Errorf("accepted %d bytes for size %d", len(tc.pix), tc.size)
		}
	}
}
