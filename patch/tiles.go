package patch

import (
	"context"
	"fmt"
	"image"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"github.com/spotfuse/spotfuse/section"
)

// HER2STExclude returns the regions of a her2st "dark" display PNG that
// hold a thumbnail of A1's annotated image (top right: x > 1500, y < 535
// in image pixels) and must never be sampled; nil for any other image.
func HER2STExclude(sec *section.Section) []image.Rectangle {
	if sec.Image == nil || !strings.HasSuffix(filepath.Base(sec.Image.Path), "_HE_image_dark.png") {
		return nil
	}
	return []image.Rectangle{image.Rect(1500, 0, 1<<30, 535)}
}

// IsTissue reports whether an RGB pixel looks like stained tissue rather
// than background: bright glass (white or faintly pink, chroma ≈ 22 on the
// her2st JPEGs), or the black background of display images. Tissue is
// coloured (chroma max−min ≥ 30) with a brightness (max channel) between
// 40 and 235.
func IsTissue(r, g, b uint8) bool {
	hi := max(r, g, b)
	lo := min(r, g, b)
	return hi >= 40 && hi <= 235 && hi-lo >= 30
}

// TissueFraction returns the fraction of tissue pixels of an HWC RGB patch.
func TissueFraction(pix []uint8) float64 {
	n := 0
	for i := 0; i+2 < len(pix); i += 3 {
		if IsTissue(pix[i], pix[i+1], pix[i+2]) {
			n++
		}
	}
	return float64(n) / float64(len(pix)/3)
}

// Tiles samples up to n extra patches of tissue between the spots of sec,
// the same size (Context × spot diameter) as spot patches: centres are
// uniform over the image, at least one crop side away from every spot
// centre, outside opt.Exclude and HER2STExclude(sec), with at least
// opt.MinTissue tissue pixels. It gives up after 200·n draws and returns
// what it found (logged when fewer than n).
func Tiles(ctx context.Context, sec *section.Section, opt Options, n int, rng *rand.Rand) (*Set, error) {
	opt = opt.withDefaults()
	return withImage(sec, func(img image.Image) (*Set, error) { return tiles(ctx, sec, img, opt, n, rng) })
}

func tiles(ctx context.Context, sec *section.Section, img image.Image, opt Options, n int, rng *rand.Rand) (*Set, error) {
	im := sec.Image
	side := im.SpotDiameterPx * opt.Context
	if !(side >= 1) {
		return nil, fmt.Errorf("patch: section %s: crop side %v px", sec.Name, side)
	}
	b := img.Bounds()
	if float64(b.Dx()) <= side || float64(b.Dy()) <= side {
		return nil, fmt.Errorf("patch: section %s: image %s (%d×%d) is smaller than one tile (%.0f px)", sec.Name, im.Path, b.Dx(), b.Dy(), side)
	}
	exclude := append(append([]image.Rectangle(nil), opt.Exclude...), HER2STExclude(sec)...)
	// Spot centres on a grid of cells of size side for the distance test.
	type cell struct{ x, y int }
	grid := map[cell][][2]float64{}
	for _, sp := range sec.Spots {
		x, y := im.FromFullres.Apply(sp.X, sp.Y)
		c := cell{int(math.Floor(x / side)), int(math.Floor(y / side))}
		grid[c] = append(grid[c], [2]float64{x, y})
	}
	nearSpot := func(x, y float64) bool {
		c := cell{int(math.Floor(x / side)), int(math.Floor(y / side))}
		for dx := -1; dx <= 1; dx++ {
			for dy := -1; dy <= 1; dy++ {
				for _, p := range grid[cell{c.x + dx, c.y + dy}] {
					if math.Hypot(p[0]-x, p[1]-y) < side {
						return true
					}
				}
			}
		}
		return false
	}
	rs := newResampler(img, opt.Size)
	set := &Set{Size: opt.Size}
	for try := 0; try < 200*n && len(set.Pix) < n; try++ {
		if try%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		x0 := float64(b.Min.X) + rng.Float64()*(float64(b.Dx())-side)
		y0 := float64(b.Min.Y) + rng.Float64()*(float64(b.Dy())-side)
		cx, cy := x0+side/2, y0+side/2
		if nearSpot(cx, cy) {
			continue
		}
		r := image.Rect(int(math.Floor(x0)), int(math.Floor(y0)), int(math.Ceil(x0+side)), int(math.Ceil(y0+side)))
		excluded := false
		for _, e := range exclude {
			if r.Overlaps(e) {
				excluded = true
				break
			}
		}
		if excluded {
			continue
		}
		pix := rs.crop(x0, y0, side)
		if TissueFraction(pix) < opt.MinTissue {
			continue
		}
		set.Pix = append(set.Pix, pix)
		set.Centers = append(set.Centers, [2]float64{cx, cy})
	}
	if len(set.Pix) < n {
		slog.Warn("fewer tissue tiles than asked", "section", sec.Name, "found", len(set.Pix), "asked", n)
	}
	return set, nil
}
