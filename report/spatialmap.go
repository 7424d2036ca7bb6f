package report

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/jpeg" // H&E images are PNG or JPEG
	"image/png"
	"io"
	"math"
	"os"
	"slices"
	"strconv"

	"github.com/spotfuse/spotfuse/atomicfile"
	"github.com/spotfuse/spotfuse/section"
)

// DefaultMapWidth is the width in pixels RenderMap uses when asked for
// maxWidth <= 0, and the width of the maps in the HTML report.
const DefaultMapWidth = 1000

// SpatialMap is one per-spot quantity drawn over a section's H&E image.
//
// Spot centres X, Y are in full-resolution pixels (section.Spot.X/Y) and are
// mapped into Image by FromFullres; the zero Affine means the identity. Give
// either Categories (one label per spot, "" = unlabelled, drawn as an empty
// ring) or Values (one number per spot, drawn with the viridis colour map and
// a colour bar), not both.
type SpatialMap struct {
	Title string
	// Image is the path of the section's H&E image (PNG or JPEG); "" draws
	// the spots on white.
	Image       string
	FromFullres section.Affine
	// SpotDiameterPx is the spot diameter in pixels of Image (after
	// FromFullres); 0 estimates it as half the median nearest-neighbour
	// distance, which is right for ST and Visium arrays.
	SpotDiameterPx float64
	X, Y           []float64

	Categories []string
	// Palette orders the legend; categories not listed follow in HER2ST,
	// then alphabetical order. Colours come from ClassColor.
	Palette []string

	Values []float64
	// ValueLabel names the quantity on the colour bar, e.g.
	// "gate weight (0 = expression, 1 = image)".
	ValueLabel string
	// ValueMin, ValueMax fix the colour-bar range; both zero means the
	// range of Values.
	ValueMin, ValueMax float64
}

// validate checks m without touching the file system.
func (m *SpatialMap) validate() error {
	if m == nil {
		return errors.New("nil map")
	}
	n := len(m.X)
	if n == 0 {
		return errors.New("no spots")
	}
	if len(m.Y) != n {
		return fmt.Errorf("%d X but %d Y coordinates", n, len(m.Y))
	}
	switch {
	case m.Categories != nil && m.Values != nil:
		return errors.New("both Categories and Values are set; give one")
	case m.Categories == nil && m.Values == nil:
		return errors.New("neither Categories nor Values is set")
	case m.Categories != nil && len(m.Categories) != n:
		return fmt.Errorf("%d categories for %d spots", len(m.Categories), n)
	case m.Values != nil && len(m.Values) != n:
		return fmt.Errorf("%d values for %d spots", len(m.Values), n)
	}
	for i := range n {
		if !finite(m.X[i]) || !finite(m.Y[i]) {
			return fmt.Errorf("spot %d has position (%v, %v)", i, m.X[i], m.Y[i])
		}
	}
	for i, v := range m.Values {
		if !finite(v) {
			return fmt.Errorf("value of spot %d is %v", i, v)
		}
	}
	if !finite(m.SpotDiameterPx) || m.SpotDiameterPx < 0 {
		return fmt.Errorf("spot diameter %v px", m.SpotDiameterPx)
	}
	a := m.FromFullres
	for _, v := range []float64{a.A, a.B, a.C, a.D, a.TX, a.TY} {
		if !finite(v) {
			return fmt.Errorf("FromFullres %+v is not finite", a)
		}
	}
	if !finite(m.ValueMin) || !finite(m.ValueMax) || m.ValueMin > m.ValueMax {
		return fmt.Errorf("value range [%v, %v]", m.ValueMin, m.ValueMax)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// RenderMap draws m at most maxWidth pixels wide: the image cropped to the
// spots (plus a margin) and box-filtered down, the spots as semi-transparent
// discs at their true diameter, the title above and a legend or colour bar
// below.
func RenderMap(m *SpatialMap, maxWidth int) (image.Image, error) {
	var r mapRenderer
	return r.render(m, maxWidth, true)
}

// WritePNG writes img to path as PNG, atomically.
func WritePNG(path string, img image.Image) error {
	return atomicfile.Write(path, func(w io.Writer) error { return png.Encode(w, img) })
}

// mapRenderer keeps the last decoded image and the downscaled crops, so a
// truth map and a prediction map of the same section decode the (possibly
// 9000-pixel) image once.
type mapRenderer struct {
	srcPath string
	src     image.Image
	bases   map[baseKey]*image.RGBA
}

type baseKey struct {
	path       string
	crop       image.Rectangle
	outW, outH int
}

func (r *mapRenderer) image(path string) (image.Image, error) {
	if r.src != nil && r.srcPath == path {
		return r.src, nil
	}
	r.src, r.srcPath = nil, ""
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	r.src, r.srcPath = img, path
	return img, nil
}

func (r *mapRenderer) base(path string, crop image.Rectangle, outW, outH int) (*image.RGBA, error) {
	k := baseKey{path, crop, outW, outH}
	if b, ok := r.bases[k]; ok {
		return b, nil
	}
	src, err := r.image(path)
	if err != nil {
		return nil, err
	}
	b := boxDownscale(src, crop, outW, outH)
	if r.bases == nil {
		r.bases = map[baseKey]*image.RGBA{}
	}
	r.bases[k] = b
	return b, nil
}

// render draws m; withTitle=false leaves the title to the caller (the HTML
// report sets it as a caption so that maps side by side line up).
func (r *mapRenderer) render(m *SpatialMap, maxWidth int, withTitle bool) (image.Image, error) {
	if m == nil {
		return nil, errors.New("report: nil map")
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("map %q: %w", m.Title, err)
	}
	if maxWidth <= 0 {
		maxWidth = DefaultMapWidth
	}
	tf := m.FromFullres
	if tf == (section.Affine{}) {
		tf = section.Scale(1)
	}
	n := len(m.X)
	px, py := make([]float64, n), make([]float64, n)
	x0, y0 := math.Inf(1), math.Inf(1)
	x1, y1 := math.Inf(-1), math.Inf(-1)
	for i := range n {
		px[i], py[i] = tf.Apply(m.X[i], m.Y[i])
		x0, x1 = math.Min(x0, px[i]), math.Max(x1, px[i])
		y0, y1 = math.Min(y0, py[i]), math.Max(y1, py[i])
	}
	diam := m.SpotDiameterPx
	if diam == 0 {
		diam = 0.5 * medianNearest(px, py)
	}
	if diam == 0 {
		diam = math.Max(1, 0.05*math.Max(x1-x0, y1-y0))
	}
	margin := diam/2 + math.Max(diam, 0.02*math.Max(x1-x0, y1-y0))
	x0, y0, x1, y1 = x0-margin, y0-margin, x1+margin, y1+margin

	var base *image.RGBA
	var scale float64
	if m.Image != "" {
		f, err := os.Open(m.Image)
		if err != nil {
			return nil, fmt.Errorf("map %q: image: %w", m.Title, err)
		}
		cfg, _, err := image.DecodeConfig(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("map %q: image %s: %w", m.Title, m.Image, err)
		}
		crop := image.Rect(int(math.Floor(x0)), int(math.Floor(y0)), int(math.Ceil(x1)), int(math.Ceil(y1))).
			Intersect(image.Rect(0, 0, cfg.Width, cfg.Height))
		if crop.Empty() {
			return nil, fmt.Errorf("map %q: no spot falls inside image %s (%d×%d px); check FromFullres",
				m.Title, m.Image, cfg.Width, cfg.Height)
		}
		scale = math.Min(1, float64(maxWidth)/float64(crop.Dx()))
		outW := max(1, int(math.Round(float64(crop.Dx())*scale)))
		outH := max(1, int(math.Round(float64(crop.Dy())*scale)))
		b, err := r.base(m.Image, crop, outW, outH)
		if err != nil {
			return nil, fmt.Errorf("map %q: image: %w", m.Title, err)
		}
		base = image.NewRGBA(b.Bounds())
		copy(base.Pix, b.Pix)
		scale = float64(outW) / float64(crop.Dx())
		x0, y0 = float64(crop.Min.X), float64(crop.Min.Y)
	} else {
		scale = float64(maxWidth) / (x1 - x0)
		if h := (y1 - y0) * scale; h > 1.5*float64(maxWidth) {
			scale *= 1.5 * float64(maxWidth) / h
		}
		w := max(1, int(math.Round((x1-x0)*scale)))
		h := max(1, int(math.Round((y1-y0)*scale)))
		base = image.NewRGBA(image.Rect(0, 0, w, h))
		draw.Draw(base, base.Bounds(), image.NewUniform(color.NRGBA{0xFA, 0xFA, 0xFA, 0xFF}), image.Point{}, draw.Src)
	}

	rad := diam / 2 * scale
	line := math.Max(1, math.Min(2.5, rad*0.14))
	var legend []legendItem
	if m.Categories != nil {
		cols := categoryColors(m.Categories)
		counts := map[string]int{}
		for _, c := range m.Categories {
			counts[c]++
		}
		for i := range n {
			c := m.Categories[i]
			style := spotCategory
			if c == "" {
				style = spotHollow
			}
			drawSpot(base, (px[i]-x0)*scale, (py[i]-y0)*scale, rad, line, cols[c], style)
		}
		for _, c := range legendOrder(m.Categories, m.Palette) {
			name := c
			if c == "" {
				name = "unlabelled"
			}
			legend = append(legend, legendItem{name + " (" + strconv.Itoa(counts[c]) + ")", cols[c], c == ""})
		}
	} else {
		lo, hi := valueRange(m)
		for i := range n {
			c := Viridis((m.Values[i] - lo) / (hi - lo))
			drawSpot(base, (px[i]-x0)*scale, (py[i]-y0)*scale, rad, line, c, spotValue)
		}
	}
	title := m.Title
	if !withTitle {
		title = ""
	}
	return composeMap(m, title, base, legend)
}

func valueRange(m *SpatialMap) (lo, hi float64) {
	lo, hi = m.ValueMin, m.ValueMax
	if lo == 0 && hi == 0 {
		lo, hi = slices.Min(m.Values), slices.Max(m.Values)
	}
	if hi <= lo {
		lo, hi = lo-0.5, lo+0.5
	}
	return lo, hi
}

// medianNearest returns the median distance from a spot to its nearest
// neighbour (0 for fewer than two distinct spots).
func medianNearest(x, y []float64) float64 {
	n := len(x)
	if n < 2 {
		return 0
	}
	// Quadratic, but fine for the ≤ 5000 spots of an ST or Visium section;
	// subsample larger sets.
	step := max(1, n/2000)
	var d []float64
	for i := 0; i < n; i += step {
		best := math.Inf(1)
		for j := range n {
			if j == i {
				continue
			}
			dd := math.Hypot(x[i]-x[j], y[i]-y[j])
			if dd > 0 && dd < best {
				best = dd
			}
		}
		if !math.IsInf(best, 1) {
			d = append(d, best)
		}
	}
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// boxDownscale averages crop of src into an outW×outH image (outW ≤ crop
// width, outH ≤ crop height). Source rows are converted band by band, so
// only a few rows of the full-resolution image are ever held as RGBA.
func boxDownscale(src image.Image, crop image.Rectangle, outW, outH int) *image.RGBA {
	cw, ch := crop.Dx(), crop.Dy()
	xb := make([]int, outW+1)
	for i := range xb {
		xb[i] = i * cw / outW
	}
	yb := make([]int, outH+1)
	maxBand := 1
	for i := range yb {
		yb[i] = i * ch / outH
		if i > 0 {
			maxBand = max(maxBand, yb[i]-yb[i-1])
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, outW, outH))
	band := image.NewRGBA(image.Rect(0, 0, cw, maxBand))
	for oy := range outH {
		ya, yz := yb[oy], max(yb[oy+1], yb[oy]+1)
		rows := min(yz, ch) - ya
		draw.Draw(band, image.Rect(0, 0, cw, rows), src, image.Pt(crop.Min.X, crop.Min.Y+ya), draw.Src)
		for ox := range outW {
			xa, xz := xb[ox], max(xb[ox+1], xb[ox]+1)
			var s [4]uint32
			for yy := range rows {
				p := band.Pix[yy*band.Stride+xa*4 : yy*band.Stride+xz*4]
				for k := 0; k < len(p); k += 4 {
					s[0] += uint32(p[k])
					s[1] += uint32(p[k+1])
					s[2] += uint32(p[k+2])
					s[3] += uint32(p[k+3])
				}
			}
			cnt := uint32(rows * (xz - xa))
			a := (s[3] + cnt/2) / cnt
			o := dst.PixOffset(ox, oy)
			// Composite the (premultiplied) average over white.
			for k := range 3 {
				dst.Pix[o+k] = uint8(min(255, (s[k]+cnt/2)/cnt+255-a))
			}
			dst.Pix[o+3] = 255
		}
	}
	return dst
}

// spotStyle says how drawSpot paints a disc.
type spotStyle int

const (
	spotCategory spotStyle = iota // semi-transparent fill, darker outline
	spotHollow                    // light outline only (unlabelled)
	spotValue                     // nearly opaque fill, white outline: stands out on dark H&E
)

// drawSpot draws an anti-aliased disc of radius r at (cx, cy) with an
// outline of width w.
func drawSpot(img *image.RGBA, cx, cy, r, w float64, c color.NRGBA, style spotStyle) {
	fillAlpha, edge := 0.72, darken(c, 0.55)
	switch style {
	case spotHollow:
		edge = c
	case spotValue:
		fillAlpha, edge = 0.92, color.NRGBA{0xFF, 0xFF, 0xFF, 0xFF}
	}
	hollow := style == spotHollow
	b := img.Bounds()
	xa, xz := max(b.Min.X, int(math.Floor(cx-r-1))), min(b.Max.X, int(math.Ceil(cx+r+1)))
	ya, yz := max(b.Min.Y, int(math.Floor(cy-r-1))), min(b.Max.Y, int(math.Ceil(cy+r+1)))
	for y := ya; y < yz; y++ {
		for x := xa; x < xz; x++ {
			d := math.Hypot(float64(x)+0.5-cx, float64(y)+0.5-cy)
			outer := clamp01(r + 0.5 - d)
			inner := clamp01(r - w + 0.5 - d)
			if outer == 0 {
				continue
			}
			if !hollow && inner > 0 {
				blend(img, x, y, c, fillAlpha*inner)
			}
			blend(img, x, y, edge, outer-inner)
		}
	}
}

func clamp01(v float64) float64 { return math.Max(0, math.Min(1, v)) }

func darken(c color.NRGBA, f float64) color.NRGBA {
	return color.NRGBA{uint8(float64(c.R) * f), uint8(float64(c.G) * f), uint8(float64(c.B) * f), c.A}
}

// blend paints c with opacity a over the (opaque) pixel at x, y.
func blend(img *image.RGBA, x, y int, c color.NRGBA, a float64) {
	if a <= 0 {
		return
	}
	o := img.PixOffset(x, y)
	p := img.Pix[o : o+4 : o+4]
	p[0] = uint8(math.Round(float64(c.R)*a + float64(p[0])*(1-a)))
	p[1] = uint8(math.Round(float64(c.G)*a + float64(p[1])*(1-a)))
	p[2] = uint8(math.Round(float64(c.B)*a + float64(p[2])*(1-a)))
	p[3] = 255
}
