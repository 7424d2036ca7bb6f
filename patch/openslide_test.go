//go:build openslide

package patch

import "testing"

// TestOpenSlideMatchesTiledTIFF reads the tiled fixtures through OpenSlide
// (as generic tiled TIFFs) and checks every pixel against TiledTIFF.
func TestOpenSlideMatchesTiledTIFF(t *testing.T) {
	for _, name := range []string{"deflate.tif", "jpeg_pyramid.tif"} {
		img, done, err := openSlide(tiledFixture(name))
		if err != nil {
			t.Fatal(err)
		}
		tt, err := OpenTiledTIFF(tiledFixture(name))
		if err != nil {
			t.Fatal(err)
		}
		s := img.(*slideImage)
		if s.Bounds() != tt.Bounds() {
			t.Fatalf("%s: OpenSlide bounds %v, TiledTIFF %v", name, s.Bounds(), tt.Bounds())
		}
		b := s.Bounds()
		var worst int
		for y := 0; y < b.Dy(); y++ {
			for x := 0; x < b.Dx(); x++ {
				r, g, bl := s.rgb8(x, y)
				wr, wg, wb, _ := tt.Level(0).RGB(x, y)
				worst = max(worst, absInt(int(r)-int(wr)), absInt(int(g)-int(wg)), absInt(int(bl)-int(wb)))
			}
		}
		t.Logf("%s: max |Δ| %d", name, worst)
		if s.Err() != nil {
			t.Fatal(s.Err())
		}
		// Lossless tiles must agree exactly; JPEG decoders (libjpeg vs Go) may
		// differ by rounding.
		if tol := map[string]int{"deflate.tif": 0, "jpeg_pyramid.tif": 3}[name]; worst > tol {
			t.Errorf("%s: max difference %d from TiledTIFF, want ≤ %d", name, worst, tol)
		}
		done()
		tt.Close()
	}
	if _, _, err := openSlide(tiledFixture("missing.svs")); err == nil {
		t.Error("missing file: no error")
	}
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
