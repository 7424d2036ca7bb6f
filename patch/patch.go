// Package patch turns a section's H&E image into per-spot patches: it
// decodes the image lazily (only when patches are asked for, once per call,
// released afterwards), crops a square around each spot at the spot's true
// diameter, resizes it by area averaging, samples extra tissue tiles between
// spots, and holds the H&E augmentations used for self-supervised training.
//
// Patches are HWC RGB uint8 (Set.Pix) as extracted; ToCHW converts one to
// float32 CHW in [0, 1], the layout the augmentations and the models use.
package patch

import (
	"bufio"
	"context"
	"fmt"
	"image"
	_ "image/jpeg" // decoders
	_ "image/png"
	"log/slog"
	"math"
	"os"
	"slices"

	_ "golang.org/x/image/tiff"

	"github.com/spotfuse/spotfuse/progress"
	"github.com/spotfuse/spotfuse/section"
)

// Options control patch extraction.
type Options struct {
	// Size is the side of the output patches in pixels (default 64).
	Size int
	// Context is the crop side in spot diameters (default 1: the spot disc's
	// bounding square; 2 adds half a diameter of surroundings on each side).
	Context float64
	// Exclude lists image-pixel rectangles Tiles never samples from (e.g.
	// annotations drawn on the slide).
	Exclude []image.Rectangle
	// MinTissue is the fraction of tissue pixels a tile needs (default 0.5).
	MinTissue float64
	// Progress receives one step per spot (may be nil).
	Progress progress.Reporter
}

func (o Options) withDefaults() Options {
	if o.Size <= 0 {
		o.Size = 64
	}
	if o.Context <= 0 {
		o.Context = 1
	}
	if o.MinTissue <= 0 {
		o.MinTissue = 0.5
	}
	o.Progress = progress.Or(o.Progress)
	return o
}

// Skip records a spot without a patch and why.
type Skip struct {
	Spot   int
	Reason string
}

// Set holds patches, one per spot (Extract) or per tile (Tiles).
type Set struct {
	Size int
	// Pix[i] is patch i as Size×Size×3 RGB bytes (HWC), nil if skipped.
	Pix [][]uint8
	// Centers[i] is the crop centre in image pixels.
	Centers [][2]float64
	Skipped []Skip
}

// Decode reads and decodes a whole image file (PNG, JPEG or TIFF).
func Decode(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	defer f.Close()
	img, _, err := image.Decode(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("patch: %s: %w", path, err)
	}
	return img, nil
}

// Extract crops one patch per spot of sec. The image is opened with
// OpenImage: a tiled TIFF (or, with -tags openslide, a whole-slide file) is
// read tile by tile with bounded memory, anything else is decoded once and
// dropped when Extract returns. Spots whose crop leaves the image are
// listed in Set.Skipped (and logged), with a nil patch.
func Extract(ctx context.Context, sec *section.Section, opt Options) (*Set, error) {
	opt = opt.withDefaults()
	return withImage(sec, func(img image.Image) (*Set, error) { return extract(ctx, sec, img, opt) })
}

// withImage opens the image of sec, runs fn on it and closes it. A read
// error of a tiled image, which is read lazily while fn runs, is returned
// as the section's when fn itself succeeds.
func withImage(sec *section.Section, fn func(img image.Image) (*Set, error)) (*Set, error) {
	if sec.Image == nil {
		return nil, fmt.Errorf("patch: section %s has no image", sec.Name)
	}
	img, done, err := OpenImage(sec.Image.Path)
	if err != nil {
		return nil, err
	}
	defer done()
	set, err := fn(img)
	if err != nil {
		return set, err
	}
	if lazy, ok := img.(rgbImage); ok && lazy.Err() != nil {
		return nil, fmt.Errorf("section %s: %w", sec.Name, lazy.Err())
	}
	return set, nil
}

func extract(ctx context.Context, sec *section.Section, img image.Image, opt Options) (*Set, error) {
	im := sec.Image
	if im.SpotDiameterPx <= 0 || math.IsNaN(im.SpotDiameterPx) {
		return nil, fmt.Errorf("patch: section %s: spot diameter %v px", sec.Name, im.SpotDiameterPx)
	}
	side := im.SpotDiameterPx * opt.Context
	b := img.Bounds()
	set := &Set{Size: opt.Size, Pix: make([][]uint8, len(sec.Spots)), Centers: make([][2]float64, len(sec.Spots))}
	rs := newResampler(img, opt.Size)
	opt.Progress.Start("patches "+sec.Name, len(sec.Spots))
	defer opt.Progress.Finish()
	for k, i := range visitOrder(sec, img) {
		sp := sec.Spots[i]
		if k%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		cx, cy := im.FromFullres.Apply(sp.X, sp.Y)
		set.Centers[i] = [2]float64{cx, cy}
		x0, y0 := cx-side/2, cy-side/2
		if x0 < float64(b.Min.X) || y0 < float64(b.Min.Y) || x0+side > float64(b.Max.X) || y0+side > float64(b.Max.Y) || math.IsNaN(cx+cy) {
			set.Skipped = append(set.Skipped, Skip{Spot: i, Reason: fmt.Sprintf(
				"crop [%.0f,%.0f]×[%.0f,%.0f] leaves the %d×%d image", x0, x0+side, y0, y0+side, b.Dx(), b.Dy())})
		} else {
			set.Pix[i] = rs.crop(x0, y0, side)
		}
		opt.Progress.Add(1)
	}
	slices.SortFunc(set.Skipped, func(a, b Skip) int { return a.Spot - b.Spot })
	if n := len(set.Skipped); n > 0 {
		slog.Warn("spots without a patch (crop leaves the image)", "section", sec.Name, "image", im.Path,
			"skipped", n, "of", len(sec.Spots), "first", sec.Spots[set.Skipped[0].Spot].ID, "reason", set.Skipped[0].Reason)
	}
	return set, nil
}

// resampler crops squares of an image and averages them down to size×size.
type resampler struct {
	img  image.Image
	at   func(x, y int) (r, g, b uint8)
	size int
	row  []float32 // horizontal pass: one source row resampled to size×3
	acc  []float32 // size×size×3 accumulator
}

func newResampler(img image.Image, size int) *resampler {
	return &resampler{img: img, at: pixelFunc(img), size: size,
		row: make([]float32, size*3), acc: make([]float32, size*size*3)}
}

// weights returns, for each output cell k of a span [lo, lo+side) cut into
// n cells, the source pixels it overlaps and the overlap of each.
func weights(lo, side float64, n int) (first []int, w [][]float32) {
	first = make([]int, n)
	w = make([][]float32, n)
	step := side / float64(n)
	for k := 0; k < n; k++ {
		a, b := lo+float64(k)*step, lo+float64(k+1)*step
		p0, p1 := int(math.Floor(a)), int(math.Ceil(b))
		first[k] = p0
		for p := p0; p < p1; p++ {
			ov := math.Min(b, float64(p+1)) - math.Max(a, float64(p))
			w[k] = append(w[k], float32(ov/step))
		}
	}
	return first, w
}

// crop averages the square [x0, x0+side)×[y0, y0+side) into size×size
// pixels (box filter with fractional pixel coverage).
func (r *resampler) crop(x0, y0, side float64) []uint8 {
	n := r.size
	fx, wx := weights(x0, side, n)
	fy, wy := weights(y0, side, n)
	clear(r.acc)
	// Visit each source row once; it contributes to the output rows whose
	// vertical span covers it.
	y1 := int(math.Ceil(y0 + side))
	ky := 0
	for y := int(math.Floor(y0)); y < y1; y++ {
		// horizontal pass for this source row
		for k := 0; k < n; k++ {
			var sr, sg, sb float32
			for j, wt := range wx[k] {
				pr, pg, pb := r.at(fx[k]+j, y)
				sr += wt * float32(pr)
				sg += wt * float32(pg)
				sb += wt * float32(pb)
			}
			r.row[3*k], r.row[3*k+1], r.row[3*k+2] = sr, sg, sb
		}
		for ky < n && fy[ky]+len(wy[ky]) <= y {
			ky++
		}
		for k := ky; k < n && fy[k] <= y; k++ {
			j := y - fy[k]
			if j >= len(wy[k]) {
				continue
			}
			wt := wy[k][j]
			dst := r.acc[k*n*3 : (k+1)*n*3]
			for c := range dst {
				dst[c] += wt * r.row[c]
			}
		}
	}
	out := make([]uint8, n*n*3)
	for i, v := range r.acc {
		out[i] = uint8(math.Min(255, math.Max(0, math.Round(float64(v)))))
	}
	return out
}

// pixelFunc returns a fast 8-bit RGB accessor for the common image types.
func pixelFunc(img image.Image) func(x, y int) (uint8, uint8, uint8) {
	switch m := img.(type) {
	case rgbImage:
		return m.rgb8
	case *image.YCbCr:
		return func(x, y int) (uint8, uint8, uint8) {
			yi, ci := m.YOffset(x, y), m.COffset(x, y)
			return ycbcrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
		}
	case *image.RGBA:
		return func(x, y int) (uint8, uint8, uint8) {
			i := m.PixOffset(x, y)
			return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
		}
	case *image.NRGBA:
		return func(x, y int) (uint8, uint8, uint8) {
			i := m.PixOffset(x, y)
			a := uint32(m.Pix[i+3])
			if a == 255 {
				return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
			}
			return uint8(uint32(m.Pix[i]) * a / 255), uint8(uint32(m.Pix[i+1]) * a / 255), uint8(uint32(m.Pix[i+2]) * a / 255)
		}
	case *image.Gray:
		return func(x, y int) (uint8, uint8, uint8) {
			v := m.Pix[m.PixOffset(x, y)]
			return v, v, v
		}
	}
	return func(x, y int) (uint8, uint8, uint8) {
		r, g, b, _ := img.At(x, y).RGBA()
		return uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)
	}
}

// ycbcrToRGB is color.YCbCrToRGB without the interface call.
func ycbcrToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy1 := int32(y) * 0x10101
	cb1 := int32(cb) - 128
	cr1 := int32(cr) - 128
	r := yy1 + 91881*cr1
	g := yy1 - 22554*cb1 - 46802*cr1
	b := yy1 + 116130*cb1
	clamp := func(v int32) uint8 {
		if uint32(v)&0xff000000 == 0 {
			return uint8(v >> 16)
		}
		if v < 0 {
			return 0
		}
		return 255
	}
	return clamp(r), clamp(g), clamp(b)
}
