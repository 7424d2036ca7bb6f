package patch

import (
	"bytes"
	"context"
	"errors"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/tiff"

	"github.com/spotfuse/spotfuse/section"
)

// The fixtures in testdata/tiled are written by testdata/gen_bigtiff.sh
// (vips) from one seeded texture; the lossless ones are checked pixel for
// pixel against golang.org/x/image/tiff, which decodes whole images.

func tiledFixture(name string) string { return filepath.Join("testdata", "tiled", name) }

func decodeWhole(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := tiff.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestTiledTIFFMatchesWholeDecode(t *testing.T) {
	for _, tc := range []struct {
		file       string
		w, h       int
		tile       int
		levels     int
		comparable bool // x/image/tiff reads it (it has no JPEG)
	}{
		{"none.tif", 96, 80, 64, 1, true},
		{"deflate.tif", 200, 168, 64, 1, true},
		{"lzw.tif", 96, 80, 64, 1, true},
		{"grey_bigtiff.tif", 96, 80, 32, 1, false}, // x/image/tiff has no BigTIFF
		{"jpeg_pyramid.tif", 200, 168, 64, 3, false},
	} {
		t.Run(tc.file, func(t *testing.T) {
			tt, err := OpenTiledTIFF(tiledFixture(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer tt.Close()
			if b := tt.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h || tt.Levels() != tc.levels {
				t.Fatalf("bounds %v, %d levels; want %d×%d, %d levels", b, tt.Levels(), tc.w, tc.h, tc.levels)
			}
			if tw, th := tt.Level(0).TileSize(); tw != tc.tile || th != tc.tile {
				t.Errorf("tiles %d×%d, want %d", tw, th, tc.tile)
			}
			for i := 1; i < tt.Levels(); i++ {
				if got, want := tt.Level(i).Bounds().Dx(), (tt.Level(i-1).Bounds().Dx()+1)/2; got != want {
					t.Errorf("level %d is %d wide, want %d", i, got, want)
				}
			}
			if !tc.comparable {
				return
			}
			want := decodeWhole(t, tiledFixture(tc.file))
			at := pixelFunc(want)
			for y := 0; y < tc.h; y++ {
				for x := 0; x < tc.w; x++ {
					r, g, b, err := tt.Level(0).RGB(x, y)
					if err != nil {
						t.Fatal(err)
					}
					if wr, wg, wb := at(x, y); r != wr || g != wg || b != wb {
						t.Fatalf("pixel (%d,%d) = %d,%d,%d, want %d,%d,%d", x, y, r, g, b, wr, wg, wb)
					}
				}
			}
		})
	}
}

// TestTiledTIFFJPEGAndGrey checks the lossy and grey fixtures against the
// lossless RGB ones made from the same texture.
func TestTiledTIFFJPEGAndGrey(t *testing.T) {
	ref := decodeWhole(t, tiledFixture("deflate.tif"))
	at := pixelFunc(ref)
	for _, tc := range []struct {
		file         string
		grey         bool
		meanTol, max float64
	}{
		{"jpeg_pyramid.tif", false, 3, 60},
		{"grey_bigtiff.tif", true, 2, 6}, // vips b-w is not exactly either luma
	} {
		tt, err := OpenTiledTIFF(tiledFixture(tc.file))
		if err != nil {
			t.Fatal(err)
		}
		b := tt.Bounds()
		var sum, worst float64
		for y := 0; y < b.Dy(); y++ {
			for x := 0; x < b.Dx(); x++ {
				r, g, bl, err := tt.Level(0).RGB(x, y)
				if err != nil {
					t.Fatal(err)
				}
				wr, wg, wb := at(x, y)
				var d float64
				if tc.grey {
					// vips b-w: Rec. 601 luma of sRGB, rounded
					lum := 0.2126*float64(wr) + 0.7152*float64(wg) + 0.0722*float64(wb)
					lum601 := 0.299*float64(wr) + 0.587*float64(wg) + 0.114*float64(wb)
					d = min(abs(float64(r)-lum), abs(float64(r)-lum601))
					if r != g || g != bl {
						t.Fatalf("grey pixel (%d,%d) = %d,%d,%d", x, y, r, g, bl)
					}
				} else {
					d = (abs(float64(r)-float64(wr)) + abs(float64(g)-float64(wg)) + abs(float64(bl)-float64(wb))) / 3
				}
				sum += d
				worst = max(worst, d)
			}
		}
		mean := sum / float64(b.Dx()*b.Dy())
		t.Logf("%s: mean |Δ| %.2f, max %.1f", tc.file, mean, worst)
		if mean > tc.meanTol || worst > tc.max {
			t.Errorf("%s: mean |Δ| %.2f (max %.1f) against deflate.tif, want ≤ %v (%v)", tc.file, mean, worst, tc.meanTol, tc.max)
		}
		tt.Close()
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// TestTiledCacheBounded reads every pixel with a cache of two tiles: the
// answer is unchanged and the cache never grows past its bound.
func TestTiledCacheBounded(t *testing.T) {
	full, err := OpenTiledTIFF(tiledFixture("deflate.tif"))
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	small, err := OpenTiledTIFF(tiledFixture("deflate.tif"))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	l := small.Level(0)
	l.maxCacheTiles = 2
	b := l.Bounds()
	for _, order := range []string{"rows", "columns"} {
		for i := 0; i < b.Dx()*b.Dy(); i++ {
			x, y := i%b.Dx(), i/b.Dx()
			if order == "columns" {
				x, y = i/b.Dy(), i%b.Dy()
			}
			r, g, bl, err := l.RGB(x, y)
			if err != nil {
				t.Fatal(err)
			}
			wr, wg, wb, _ := full.Level(0).RGB(x, y)
			if r != wr || g != wg || bl != wb {
				t.Fatalf("%s: pixel (%d,%d) differs with a small cache", order, x, y)
			}
			if len(l.cache) > 2 {
				t.Fatalf("cache holds %d tiles, bound 2", len(l.cache))
			}
		}
	}
}

// gridSection is a section of n×n spots covering the image at path.
func gridSection(path string, w, h, n int, diam float64) *section.Section {
	s := &section.Section{Name: "grid", Image: &section.Image{Path: path, FromFullres: section.Scale(1), SpotDiameterPx: diam}}
	for j := 0; j < n; j++ {
		for i := 0; i < n; i++ {
			x := diam/2 + float64(i)*(float64(w)-diam)/float64(n-1)
			y := diam/2 + float64(j)*(float64(h)-diam)/float64(n-1)
			s.Spots = append(s.Spots, section.Spot{ID: string(rune('a'+i)) + string(rune('a'+j)), Row: j, Col: i, X: x, Y: y})
		}
	}
	return s
}

// TestExtractTiledEqualsDecoded checks that Extract takes the tiled path
// for a tiled TIFF and gives the same patches as cropping the whole
// decoded image; a crop that leaves the image is skipped the same way.
func TestExtractTiledEqualsDecoded(t *testing.T) {
	path := tiledFixture("deflate.tif")
	sec := gridSection(path, 200, 168, 5, 37.5)
	sec.Spots = append(sec.Spots, section.Spot{ID: "out", X: 199, Y: 10})
	img, done, err := OpenImage(path)
	if err != nil {
		t.Fatal(err)
	}
	done()
	if _, ok := img.(*TiledTIFF); !ok {
		t.Fatalf("OpenImage gave %T for a tiled TIFF", img)
	}
	opt := Options{Size: 16}
	got, err := Extract(context.Background(), sec, opt)
	if err != nil {
		t.Fatal(err)
	}
	want, err := extract(context.Background(), sec, decodeWhole(t, path), opt.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Skipped) != 1 || got.Skipped[0].Spot != len(sec.Spots)-1 || len(want.Skipped) != 1 {
		t.Errorf("skipped %v, want the last spot (decoded path: %v)", got.Skipped, want.Skipped)
	}
	for i := range want.Pix {
		if !bytes.Equal(got.Pix[i], want.Pix[i]) {
			t.Fatalf("patch %d differs between the tiled and the decoded image", i)
		}
	}
}

// TestOpenImageFallsBack checks that a stripped TIFF is not taken for a
// tiled one and is decoded whole.
func TestOpenImageFallsBack(t *testing.T) {
	src := decodeWhole(t, tiledFixture("none.tif"))
	path := filepath.Join(t.TempDir(), "strips.tif")
	var buf bytes.Buffer
	if err := tiff.Encode(&buf, src, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTiledTIFF(path); !errors.Is(err, ErrNotTiled) {
		t.Fatalf("stripped TIFF: err %v, want ErrNotTiled", err)
	}
	img, done, err := OpenImage(path)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if _, lazy := img.(*TiledTIFF); lazy || img.Bounds() != src.Bounds() {
		t.Errorf("stripped TIFF opened as %T %v", img, img.Bounds())
	}
}

// TestTiledTIFFBadInput checks truncated and unsupported files give errors
// naming the file and the problem, from Open or from Extract.
func TestTiledTIFFBadInput(t *testing.T) {
	none, err := os.ReadFile(tiledFixture("none.tif"))
	if err != nil {
		t.Fatal(err)
	}
	// The compression entry of none.tif (tag 259, SHORT, count 1, value 1).
	compEntry := []byte{3, 1, 3, 0, 1, 0, 0, 0, 1, 0}
	if bytes.Count(none, compEntry) != 1 {
		t.Fatal("compression entry not found in none.tif; regenerate the test edit")
	}
	packbits := bytes.Replace(none, compEntry, []byte{3, 1, 3, 0, 1, 0, 0, 0, 0x05, 0x80}, 1)
	planar := bytes.Replace(none, []byte{0x1c, 1, 3, 0, 1, 0, 0, 0, 1, 0}, []byte{0x1c, 1, 3, 0, 1, 0, 0, 0, 2, 0}, 1)
	deflate, err := os.ReadFile(tiledFixture("deflate.tif"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(deflate)
	for i := 100; i < 400; i++ { // inside the first tile's compressed data
		corrupt[i] = 0xff
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		data    []byte
		atOpen  bool
		wantErr []string
	}{
		{"truncated", none[:len(none)*3/4], true, []string{"truncated"}},
		{"corrupt tile", corrupt, false, []string{"tile 0", "deflate"}},
		{"truncated header", none[:6], true, []string{"not a tiled TIFF"}},
		{"packbits", packbits, true, []string{"compression 32773 is not supported", "vips tiffsave"}},
		{"planar", planar, true, []string{"planar configuration 2"}},
		{"not an image", []byte("%PDF-1.4 not a tiff"), true, []string{"not a tiled TIFF"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".tif")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := OpenTiledTIFF(path)
			if !tc.atOpen {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				_, err = Extract(context.Background(), gridSection(path, 96, 80, 3, 30), Options{Size: 8})
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.wantErr, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// FuzzTiledTIFF checks the TIFF parser and tile decoders never panic or
// allocate without bound on corrupt files.
func FuzzTiledTIFF(f *testing.F) {
	for _, name := range []string{"none.tif", "lzw.tif", "grey_bigtiff.tif", "jpeg_pyramid.tif"} {
		b, err := os.ReadFile(tiledFixture(name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		levels, err := parseTIFF("fuzz.tif", bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.tif") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, l := range levels {
			for y := 0; y < min(l.h, 70); y += 7 {
				for x := 0; x < min(l.w, 70); x += 7 {
					if _, _, _, err := l.RGB(x, y); err != nil {
						if !strings.Contains(err.Error(), "fuzz.tif") {
							t.Fatalf("error does not name the file: %v", err)
						}
						return
					}
				}
			}
		}
	})
}

// TestOpenThumbnailUsesPyramid checks the thumbnail of a pyramid comes from
// the smallest sufficient level with the scale to full resolution, and
// matches the thumbnail of the decoded full image closely.
func TestOpenThumbnailUsesPyramid(t *testing.T) {
	path := tiledFixture("jpeg_pyramid.tif")
	tt, err := OpenTiledTIFF(path)
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	for _, tc := range []struct{ maxWidth, levelWidth, thumbWidth int }{
		{60, 100, 60}, {100, 100, 100}, {150, 200, 150}, {40, 50, 40}, {500, 200, 200},
	} {
		l, pre := tt.Overview(tc.maxWidth)
		if l.Bounds().Dx() != tc.levelWidth || pre != float64(tc.levelWidth)/200 {
			t.Errorf("Overview(%d): level %d wide, scale %v; want %d", tc.maxWidth, l.Bounds().Dx(), pre, tc.levelWidth)
		}
		thumb, scale, err := OpenThumbnail(path, tc.maxWidth)
		if err != nil {
			t.Fatal(err)
		}
		if thumb.Bounds().Dx() != tc.thumbWidth || math.Abs(scale-float64(tc.thumbWidth)/200) > 1e-9 {
			t.Errorf("OpenThumbnail(%d): %d wide, scale %v", tc.maxWidth, thumb.Bounds().Dx(), scale)
		}
		full, _ := Thumbnail(tt, tc.maxWidth)
		var sum float64
		for i := range full.Pix {
			sum += math.Abs(float64(full.Pix[i]) - float64(thumb.Pix[i]))
		}
		if mean := sum / float64(len(full.Pix)); mean > 4 {
			t.Errorf("OpenThumbnail(%d) differs from the full-resolution thumbnail by %.1f on average", tc.maxWidth, mean)
		}
	}
}
