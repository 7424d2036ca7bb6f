package models

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// neighbours returns spot i's neighbour rows in slot order.
func neighbours(nb *Neighbourhood, i int) []int {
	var out []int
	for _, j := range nb.Idx[i*nb.K : (i+1)*nb.K] {
		if j >= 0 {
			out = append(out, j)
		}
	}
	return out
}

func TestGridNeighbours(t *testing.T) {
	for _, tc := range []struct {
		name          string
		row, col, sec []int
		want          [][]int
	}{
		{
			// 3×3 square block (mixed parities): the centre (4) has all 8.
			name: "square",
			row:  []int{0, 0, 0, 1, 1, 1, 2, 2, 2}, col: []int{0, 1, 2, 0, 1, 2, 0, 1, 2},
			want: [][]int{{1, 3, 4}, {0, 2, 3, 4, 5}, {1, 4, 5}, {0, 1, 4, 6, 7}, {0, 1, 2, 3, 5, 6, 7, 8}, {1, 2, 4, 7, 8}, {3, 4, 7}, {3, 4, 5, 6, 8}, {4, 5, 7}},
		},
		{
			// Visium-like hex grid (row+col even): (1,1) touches (0,0), (0,2),
			// (1,3), (2,0), (2,2) but not (3,1) two rows down.
			name: "hex",
			row:  []int{0, 0, 1, 1, 2, 2, 3}, col: []int{0, 2, 1, 3, 0, 2, 1},
			want: [][]int{{1, 2}, {0, 2, 3}, {0, 1, 3, 4, 5}, {1, 2, 5}, {2, 5, 6}, {2, 3, 4, 6}, {4, 5}},
		},
		{
			// The same positions in two sections are not neighbours.
			name: "sections",
			row:  []int{0, 0, 0, 0}, col: []int{0, 1, 0, 1}, sec: []int{0, 0, 1, 1},
			want: [][]int{{1}, {0}, {3}, {2}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nb, err := GridNeighbours(tc.row, tc.col, tc.sec)
			if err != nil {
				t.Fatal(err)
			}
			if nb.N() != len(tc.row) {
				t.Fatalf("N = %d", nb.N())
			}
			for i, want := range tc.want {
				got := neighbours(nb, i)
				if !slices.Equal(got, want) {
					t.Errorf("spot %d: neighbours %v, want %v", i, got, want)
				}
				for s, j := range nb.Idx[i*nb.K : (i+1)*nb.K] {
					if j >= 0 && (nb.DR[i*nb.K+s] != tc.row[j]-tc.row[i] || nb.DC[i*nb.K+s] != tc.col[j]-tc.col[i]) {
						t.Errorf("spot %d → %d: offset (%d, %d)", i, j, nb.DR[i*nb.K+s], nb.DC[i*nb.K+s])
					}
				}
			}
		})
	}
	if _, err := GridNeighbours([]int{1, 1}, []int{2, 2}, nil); err == nil || !strings.Contains(err.Error(), "share array position") {
		t.Errorf("duplicate position: error %v", err)
	}
}

func TestNeighbourhoodSubset(t *testing.T) {
	nb, err := GridNeighbours([]int{0, 0, 0}, []int{0, 1, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub := nb.Subset([]int{2, 1})
	if got := neighbours(sub, 0); !slices.Equal(got, []int{1}) {
		t.Errorf("spot 2 → %v, want [1] (old spot 1)", got)
	}
	if got := neighbours(sub, 1); !slices.Equal(got, []int{0}) {
		t.Errorf("spot 1 → %v, want [0] (old spot 2; old spot 0 dropped)", got)
	}
}

func TestSinusoidalPE(t *testing.T) {
	pe := make([]float32, 8)
	SinusoidalPE(pe, 0, 0)
	if !slices.Equal(pe, []float32{0, 1, 0, 1, 0, 1, 0, 1}) {
		t.Errorf("PE(0,0) = %v", pe)
	}
	SinusoidalPE(pe, 1, -2)
	// Half 4: pairs at wavelengths 100^(0/4), 100^(2/4) = 1, 10.
	want := []float64{math.Sin(1), math.Cos(1), math.Sin(0.1), math.Cos(0.1), math.Sin(-2), math.Cos(-2), math.Sin(-0.2), math.Cos(-0.2)}
	for i := range want {
		if math.Abs(float64(pe[i])-want[i]) > 1e-6 {
			t.Errorf("PE(1,-2)[%d] = %g, want %g", i, pe[i], want[i])
		}
	}
}

// A spot's attention output must not depend on the features in empty
// slots, and must depend on a present neighbour's.
func TestSpatialAttentionMask(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n, di, de = 4, 6, 5
	m, err := NewCrossModel(CrossConfig{ImageDim: di, ExprDim: de, Shared: 8, Hidden: 16, Context: true, Heads: 2}, nil, nil, rng)
	if err != nil {
		t.Fatal(err)
	}
	// Spots 0–1 adjacent, 2–3 adjacent (two sections).
	nb, err := GridNeighbours([]int{0, 0, 0, 0}, []int{0, 1, 0, 1}, []int{0, 0, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	img, expr := randMatrix(rng, n, di), randMatrix(rng, n, de)
	zi, ze, d, err := m.EmbedFeatures(img, expr, n, nb)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		var s float64
		for _, v := range zi[i*d : (i+1)*d] {
			s += float64(v) * float64(v)
		}
		if math.Abs(s-1) > 1e-5 {
			t.Errorf("image embedding %d has norm² %g", i, s)
		}
	}
	// Changing spot 3 (a neighbour of 2 only) changes 2 and 3, not 0 and 1.
	img2 := slices.Clone(img)
	for j := 0; j < di; j++ {
		img2[3*di+j] += 1
	}
	zi2, ze2, _, err := m.EmbedFeatures(img2, expr, n, nb)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(zi[:2*d], zi2[:2*d]) || !slices.Equal(ze, ze2) {
		t.Error("spots outside the neighbourhood (or the other modality) changed")
	}
	if slices.Equal(zi[2*d:3*d], zi2[2*d:3*d]) {
		t.Error("spot 2 ignores its neighbour")
	}
	// Without context the same change touches spot 3 only.
	plain, err := NewCrossModel(CrossConfig{ImageDim: di, ExprDim: de, Shared: 8, Hidden: 16}, nil, nil, rng)
	if err != nil {
		t.Fatal(err)
	}
	a, _, _, _ := plain.EmbedFeatures(img, expr, n, nil)
	b, _, _, _ := plain.EmbedFeatures(img2, expr, n, nil)
	if !slices.Equal(a[:3*d], b[:3*d]) {
		t.Error("without context a spot depends on others")
	}
}

func TestCrossConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  CrossConfig
		want string
	}{
		{CrossConfig{ExprDim: 3}, "widths ≥ 1"},
		{CrossConfig{ImageDim: 3, ExprDim: 3, Shared: 10, Context: true, Heads: 4}, "must divide"},
		{CrossConfig{ImageDim: 3, ExprDim: 3, Temperature: -1}, "temperature -1"},
	} {
		_, err := NewCrossModel(tc.cfg, nil, nil, rand.New(rand.NewPCG(1, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.cfg, err, tc.want)
		}
	}
	m, _ := NewCrossModel(CrossConfig{ImageDim: 3, ExprDim: 3}, nil, nil, rand.New(rand.NewPCG(1, 1)))
	if _, _, _, err := m.Embed(nil, 8, nil, 0, nil, nil); err == nil || !strings.Contains(err.Error(), "no encoders") {
		t.Errorf("Embed without encoders: error %v", err)
	}
	if _, ok := m.HeadParams()["log_scale"]; ok {
		t.Error("fixed temperature is trainable")
	}
}

func TestStandardizeBySection(t *testing.T) {
	// Two columns; section 0 = rows 0, 1; section 1 = rows 2, 3, 4.
	x := []float32{1, 5, 3, 5, 10, 0, 20, 1, 30, 2}
	got := StandardizeBySection(x, 5, 2, []int{0, 0, 1, 1, 1})
	s := float32(math.Sqrt(2.0 / 3))
	want := []float32{-1, 0, 1, 0, -1 / s, -1 / s, 0, 0, 1 / s, 1 / s}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if x[0] != 1 {
		t.Error("input modified")
	}
}

// The saved tensor names are a file format: heads under image_proj.,
// expr_proj., image_ctx., expr_ctx., attached encoders under image. and
// expr., each part joined by a single dot.
func TestCrossModelTensorNames(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	expr, err := NewExprEncoder(ExprEncoderConfig{Genes: 5, Hidden: 4, Latent: 3, Norm: "batch"}, rng)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewCrossModel(CrossConfig{ImageDim: 4, ExprDim: 3, Shared: 8, Hidden: 16, Context: true, Heads: 2}, nil, expr, rng)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for k := range m.NamedParams() {
		if strings.Contains(k, "..") || !strings.Contains(k, ".") || strings.HasSuffix(k, ".") {
			t.Errorf("malformed parameter name %q", k)
			continue
		}
		seen[k[:strings.Index(k, ".")+1]] = true
	}
	for k := range m.Buffers() {
		if !strings.HasPrefix(k, "expr.") || strings.Contains(k, "..") {
			t.Errorf("buffer %q: want expr.<name>", k)
		}
	}
	for _, p := range []string{"image_proj.", "expr_proj.", "image_ctx.", "expr_ctx.", "expr."} {
		if !seen[p] {
			t.Errorf("no parameter under %s (have %v)", p, seen)
		}
	}
}
