package patch

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
	"github.com/spotfuse/spotfuse/section"
)

// TestCropBoxFilter checks area averaging on an image of 2×2 blocks: an
// aligned 2× reduction returns each block's mean exactly, and a half-pixel
// offset mixes neighbours by their covered area.
func TestCropBoxFilter(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for y := 0; y < 8; y++ {
		for x := 0; x < 8; x++ {
			v := uint8(10*x + y) // block mean over 2×2 at (2i,2j): 10(2i+0.5)+(2j+0.5)
			img.Set(x, y, color.RGBA{v, 200 - v, 7, 255})
		}
	}
	rs := newResampler(img, 4)
	out := rs.crop(0, 0, 8)
	for j := 0; j < 4; j++ {
		for i := 0; i < 4; i++ {
			want := 10*(2*float64(i)+0.5) + (2*float64(j) + 0.5)
			got := out[(j*4+i)*3]
			if float64(got) != float64(int(want+0.5)) && float64(got) != float64(int(want)) {
				t.Errorf("(%d,%d) = %d, want %.1f", i, j, got, want)
			}
			if out[(j*4+i)*3+2] != 7 {
				t.Errorf("constant channel changed: %d", out[(j*4+i)*3+2])
			}
		}
	}
	// Crop [0.5, 4.5) into 2 cells: cell 0 covers x 0.5..2.5, i.e. half of
	// pixel 0, all of pixel 1, half of pixel 2 → index mean 1 (same in y).
	rs2 := newResampler(img, 2)
	out = rs2.crop(0.5, 0.5, 4)
	if want := uint8(10*1 + 1); out[0] != want {
		t.Errorf("offset crop = %d, want %d", out[0], want)
	}
}

// synthSection builds a section with an image file of w×h and spots at the
// given full-resolution positions (scale 0.5 to the image).
func synthSection(t *testing.T, w, h int, pos [][2]float64) *section.Section {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 150, 255})
		}
	}
	p := filepath.Join(t.TempDir(), "img.png")
	f, _ := os.Create(p)
	png.Encode(f, img)
	f.Close()
	s := &section.Section{Name: "S", Image: &section.Image{Path: p, FromFullres: section.Scale(0.5), SpotDiameterPx: 10, Width: w, Height: h}}
	for i, q := range pos {
		s.Spots = append(s.Spots, section.Spot{ID: string(rune('a' + i)), X: q[0], Y: q[1]})
	}
	return s
}

func TestExtractSkipsOutside(t *testing.T) {
	// image 60×40; spots at full-res (x,y) → image (x/2,y/2)
	s := synthSection(t, 60, 40, [][2]float64{{40, 40}, {8, 40}, {100, 70}, {112, 40}, {60, 74}})
	set, err := Extract(context.Background(), s, Options{Size: 5})
	if err != nil {
		t.Fatal(err)
	}
	// spot 0: centre (20,20) crop [15,25] inside; 1: (4,20) leaves left;
	// 2: (50,35) leaves bottom (35+5 = 40 is inside: allowed); 3: (56,20) leaves right; 4: (30,37) leaves bottom.
	wantSkipped := []int{1, 3, 4}
	if len(set.Skipped) != len(wantSkipped) {
		t.Fatalf("skipped %+v, want spots %v", set.Skipped, wantSkipped)
	}
	for k, sk := range set.Skipped {
		if sk.Spot != wantSkipped[k] || !strings.Contains(sk.Reason, "leaves the 60×40 image") || set.Pix[sk.Spot] != nil {
			t.Errorf("skip %+v", sk)
		}
	}
	// Spot 0: 10 px crop [15,25)² → 5 cells of 2 px; cell 0 is x 15..17 → mean 15.5 → 16.
	p := set.Pix[0]
	if len(p) != 5*5*3 || p[0] != 16 || p[1] != 16 || p[2] != 150 || p[3] != 18 {
		t.Errorf("patch 0 starts %v", p[:6])
	}
	if set.Pix[2] == nil {
		t.Error("spot 2 touches the border but fits; want a patch")
	}
	// Context 2 doubles the crop: spot 0 crop [10,30).
	set, err = Extract(context.Background(), s, Options{Size: 5, Context: 2})
	if err != nil {
		t.Fatal(err)
	}
	if set.Pix[0][0] != 12 || set.Pix[2] != nil {
		t.Errorf("context 2: first pixel %d (want 12), spot 2 patch %v (want skipped)", set.Pix[0][0], set.Pix[2] != nil)
	}
}

func TestExtractErrors(t *testing.T) {
	s := synthSection(t, 20, 20, [][2]float64{{10, 10}})
	if _, err := Extract(context.Background(), &section.Section{Name: "X"}, Options{}); err == nil || !strings.Contains(err.Error(), "section X has no image") {
		t.Errorf("no image: %v", err)
	}
	bad := *s.Image
	bad.Path = filepath.Join(t.TempDir(), "broken.png")
	os.WriteFile(bad.Path, []byte("\x89PNG\r\n\x1a\nnot really"), 0o644)
	s2 := *s
	s2.Image = &bad
	if _, err := Extract(context.Background(), &s2, Options{}); err == nil || !strings.Contains(err.Error(), "broken.png") {
		t.Errorf("broken image: %v", err)
	}
}

func TestTissueAndExclude(t *testing.T) {
	tests := []struct {
		r, g, b uint8
		want    bool
	}{
		{230, 230, 232, false}, // glass
		{0, 0, 0, false},       // black background
		{200, 120, 180, true},  // eosin pink
		{90, 60, 140, true},    // haematoxylin purple
		{250, 200, 240, false}, // too bright
		{238, 217, 230, false}, // pink-tinted glass (C2)
	}
	for _, tc := range tests {
		if got := IsTissue(tc.r, tc.g, tc.b); got != tc.want {
			t.Errorf("IsTissue(%d,%d,%d) = %v", tc.r, tc.g, tc.b, got)
		}
	}
	s := &section.Section{Image: &section.Image{Path: "/x/A1_HE_image_dark.png"}}
	if ex := HER2STExclude(s); len(ex) != 1 || !image.Pt(1600, 100).In(ex[0]) || image.Pt(1400, 100).In(ex[0]) || image.Pt(1600, 600).In(ex[0]) {
		t.Errorf("exclusion %v", ex)
	}
	s.Image.Path = "/x/C2_HE.jpg"
	if ex := HER2STExclude(s); ex != nil {
		t.Errorf("C2 exclusion %v", ex)
	}
}

// TestA1 extracts real A1 patches: every labelled spot gets one, and
// tissue tiles avoid spots and the annotation thumbnail.
func TestA1(t *testing.T) {
	dir := testutil.HER2ST(t, "counts/A1.tsv.gz")
	s, err := section.ReadLegacyST(section.HER2ST(dir, "A1"), section.Options{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := Decode(s.Image.Path)
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{Size: 32}.withDefaults()
	set, err := extract(context.Background(), s, img, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Pix) != 346 || len(set.Skipped) != 0 {
		t.Fatalf("%d patches, %d skipped; want 346, 0", len(set.Pix), len(set.Skipped))
	}
	onTissue := 0
	for _, p := range set.Pix {
		if len(p) != 32*32*3 {
			t.Fatalf("patch length %d", len(p))
		}
		if TissueFraction(p) > 0.5 {
			onTissue++
		}
	}
	// README: more than half of each labelled disc is on tissue; the square
	// crop includes corners, so ask for most spots.
	if onTissue < 300 {
		t.Errorf("only %d of 346 spot patches are mostly tissue", onTissue)
	}
	tl, err := tiles(context.Background(), s, img, opt, 50, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.Pix) != 50 {
		t.Errorf("%d tiles, want 50", len(tl.Pix))
	}
	side := s.Image.SpotDiameterPx
	for _, c := range tl.Centers {
		if c[0]+side/2 > 1500 && c[1]-side/2 < 535 {
			t.Errorf("tile at %v overlaps the annotation thumbnail", c)
		}
		for _, sc := range set.Centers {
			if (c[0]-sc[0])*(c[0]-sc[0])+(c[1]-sc[1])*(c[1]-sc[1]) < side*side {
				t.Fatalf("tile at %v within one diameter of spot at %v", c, sc)
			}
		}
	}
	tl2, _ := tiles(context.Background(), s, img, opt, 50, rand.New(rand.NewPCG(1, 2)))
	if tl2.Centers[7] != tl.Centers[7] {
		t.Error("tiles not deterministic for a fixed seed")
	}
}

// TestC2 extracts patches from a full-resolution JPEG (9274×9911).
func TestC2(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes a 92 Mpx JPEG")
	}
	dir := testutil.HER2ST(t, "counts/A1.tsv.gz")
	s, err := section.ReadLegacyST(section.HER2ST(dir, "C2"), section.Options{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := Extract(context.Background(), s, Options{Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Pix) != s.NumSpots() || len(set.Skipped) != 0 {
		t.Fatalf("%d patches for %d spots, %d skipped", len(set.Pix), s.NumSpots(), len(set.Skipped))
	}
	onTissue := 0
	for _, p := range set.Pix {
		if TissueFraction(p) > 0.5 {
			onTissue++
		}
	}
	if onTissue < s.NumSpots()*8/10 {
		t.Errorf("only %d of %d C2 spot patches are mostly tissue", onTissue, s.NumSpots())
	}
	// The decoded image (≥ 130 MB) is not kept once Extract returns.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > 64<<20 {
		t.Errorf("heap %d MB after extraction; the image was kept", ms.HeapAlloc>>20)
	}
	runtime.KeepAlive(set)
}
