package report

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plots are rendered at plotDPI so they stay sharp when the browser shows
// them at half their pixel size (high-density screens, zoom, print).
const plotDPI = 192

var sansFont = font.Font{Typeface: "Liberation", Variant: "Sans"}

func textStyle(size float64) text.Style {
	return text.Style{
		Color:   color.NRGBA{0x22, 0x22, 0x22, 0xFF},
		Font:    font.From(sansFont, vg.Points(size)),
		XAlign:  draw.XCenter,
		YAlign:  draw.YCenter,
		Handler: plot.DefaultTextHandler,
	}
}

// newPlot returns a plot with sans-serif text, light grid lines and the
// given title and axis labels.
func newPlot(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = font.From(sansFont, 13)
	p.Title.TextStyle.Font.Weight = 700
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text, p.Y.Label.Text = xlabel, ylabel
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(sansFont, 11)
		a.Tick.Label.Font = font.From(sansFont, 10)
		a.Color = color.NRGBA{0x55, 0x55, 0x55, 0xFF}
		a.Tick.Color = a.Color
		a.Tick.Label.Color = color.NRGBA{0x33, 0x33, 0x33, 0xFF}
		a.Label.TextStyle.Color = color.NRGBA{0x22, 0x22, 0x22, 0xFF}
	}
	p.Legend.TextStyle.Font = font.From(sansFont, 10)
	return p
}

func lightGrid() *plotter.Grid {
	g := plotter.NewGrid()
	g.Vertical.Color = color.NRGBA{0xE4, 0xE4, 0xE4, 0xFF}
	g.Horizontal.Color = g.Vertical.Color
	g.Vertical.Width, g.Horizontal.Width = vg.Points(0.6), vg.Points(0.6)
	return g
}

// fixedTicks marks the given values only (used for the label fractions
// of a curve and the class names of a confusion matrix).
type fixedTicks []plot.Tick

func (t fixedTicks) Ticks(min, max float64) []plot.Tick { return t }

// renderedPNG is a chart encoded as PNG with its pixel size.
type renderedPNG struct {
	data []byte
	w, h int
}

// renderPlot draws p into a w×h inch canvas; legend, if non-nil, is drawn
// in a column of legendW on the right, outside the data area.
func renderPlot(p *plot.Plot, w, h vg.Length, legend *plot.Legend, legendW vg.Length) (renderedPNG, error) {
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(plotDPI), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(c)
	pad := vg.Points(6)
	dc = padCanvas(dc, pad)
	if legend != nil {
		plotArea := dc
		plotArea.Max.X -= legendW
		p.Draw(plotArea)
		la := dc
		la.Min.X = dc.Max.X - legendW + vg.Points(10)
		// Align the legend's top with the data area's top.
		la.Max.Y -= p.Title.TextStyle.Height(p.Title.Text) + p.Title.Padding + vg.Points(4)
		legend.Draw(la)
	} else {
		p.Draw(dc)
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return renderedPNG{}, err
	}
	b := c.Image().Bounds()
	return renderedPNG{buf.Bytes(), b.Dx(), b.Dy()}, nil
}

func padCanvas(c draw.Canvas, d vg.Length) draw.Canvas {
	c.Min.X += d
	c.Min.Y += d
	c.Max.X -= d
	c.Max.Y -= d
	return c
}

func (c *Curve) validate() error {
	if len(c.Series) == 0 {
		return errors.New("no series")
	}
	for _, s := range c.Series {
		n := len(s.X)
		if n == 0 {
			return fmt.Errorf("series %q has no points", s.Name)
		}
		if len(s.Mean) != n || (s.SD != nil && len(s.SD) != n) {
			return fmt.Errorf("series %q: %d X, %d Mean, %d SD (SD may be empty, the others must match)",
				s.Name, n, len(s.Mean), len(s.SD))
		}
		for i := range n {
			sd := 0.0
			if s.SD != nil {
				sd = s.SD[i]
			}
			if !finite(s.X[i]) || !finite(s.Mean[i]) || !finite(sd) || sd < 0 {
				return fmt.Errorf("series %q point %d: x=%v mean=%v sd=%v", s.Name, i, s.X[i], s.Mean[i], sd)
			}
		}
	}
	return nil
}

// glyphs distinguish series without relying on colour.
var glyphs = []draw.GlyphDrawer{
	draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.PyramidGlyph{},
	draw.RingGlyph{}, draw.BoxGlyph{}, draw.CrossGlyph{}, draw.PlusGlyph{},
}

// renderCurve draws each series as a line with markers and a shaded
// mean ± sd band. The x axis is logarithmic when all x are positive and
// span at least a factor of 5, with ticks at the x values themselves.
func renderCurve(cv *Curve) (renderedPNG, error) {
	p := newPlot(cv.Title, cv.XLabel, cv.YLabel)
	p.Add(lightGrid())
	names := make([]string, len(cv.Series))
	var xs []float64
	for i, s := range cv.Series {
		names[i] = s.Name
		xs = append(xs, s.X...)
	}
	slices.Sort(xs)
	xs = slices.Compact(xs)
	logX := xs[0] > 0 && xs[len(xs)-1]/xs[0] >= 5
	if logX {
		p.X.Scale = plot.LogScale{}
	}
	if len(xs) <= 12 {
		var ticks fixedTicks
		for _, x := range xs {
			ticks = append(ticks, plot.Tick{Value: x, Label: strconv.FormatFloat(x, 'g', 4, 64)})
		}
		p.X.Tick.Marker = ticks
	} else if logX {
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	cols := methodColors(names)
	legend := plot.NewLegend()
	legend.TextStyle.Font = font.From(sansFont, 10)
	legend.Top, legend.Left = true, true
	legend.ThumbnailWidth = vg.Points(22)
	legendW := vg.Length(0)
	ylo, yhi := math.Inf(1), math.Inf(-1)
	var lines []plot.Plotter
	for i, s := range cv.Series {
		col := cols[i]
		idx := make([]int, len(s.X))
		for k := range idx {
			idx[k] = k
		}
		slices.SortFunc(idx, func(a, b int) int { return cmpFloat(s.X[a], s.X[b]) })
		sd := func(j int) float64 {
			if s.SD == nil {
				return 0
			}
			return s.SD[j]
		}
		var line, upper, lower plotter.XYs
		for _, j := range idx {
			line = append(line, plotter.XY{X: s.X[j], Y: s.Mean[j]})
			upper = append(upper, plotter.XY{X: s.X[j], Y: s.Mean[j] + sd(j)})
			lower = append(lower, plotter.XY{X: s.X[j], Y: s.Mean[j] - sd(j)})
			ylo, yhi = math.Min(ylo, s.Mean[j]-sd(j)), math.Max(yhi, s.Mean[j]+sd(j))
		}
		slices.Reverse(lower)
		poly, err := plotter.NewPolygon(append(upper, lower...))
		if err != nil {
			return renderedPNG{}, err
		}
		poly.Color = color.NRGBA{col.R, col.G, col.B, 0x38}
		poly.LineStyle.Width = 0
		p.Add(poly) // all bands first, so no band hides a line
		l, sc, err := plotter.NewLinePoints(line)
		if err != nil {
			return renderedPNG{}, err
		}
		l.Color, l.Width = col, vg.Points(1.8)
		sc.Color, sc.Shape, sc.Radius = col, glyphs[i%len(glyphs)], vg.Points(3)
		lines = append(lines, l, sc)
		legend.Add(s.Name, l, sc)
		legendW = max(legendW, legend.TextStyle.Width(s.Name))
	}
	p.Add(lines...)
	if yhi > ylo {
		m := 0.06 * (yhi - ylo)
		p.Y.Min, p.Y.Max = ylo-m, yhi+m
	}
	if logX {
		p.X.Min, p.X.Max = xs[0]/1.2, xs[len(xs)-1]*1.2
	} else if len(xs) > 1 {
		m := 0.04 * (xs[len(xs)-1] - xs[0])
		p.X.Min, p.X.Max = xs[0]-m, xs[len(xs)-1]+m
	}
	legendW += legend.ThumbnailWidth + vg.Points(22)
	return renderPlot(p, 6.6*vg.Inch, 4.1*vg.Inch, &legend, legendW)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func validateBars(bars []Bar) error {
	for i, b := range bars {
		if !finite(b.Mean) || !finite(b.SD) || b.SD < 0 {
			return fmt.Errorf("bar %d (%q): mean=%v sd=%v", i, b.Name, b.Mean, b.SD)
		}
	}
	return nil
}

// renderBars draws one bar per entry with a ±sd error bar and the mean
// written above it; bars are coloured by modality.
func renderBars(title, ylabel string, bars []Bar) (renderedPNG, error) {
	p := newPlot(title, "", ylabel)
	g := lightGrid()
	g.Vertical.Width = 0
	p.Add(g)
	names := make([]string, len(bars))
	for i, b := range bars {
		names[i] = b.Name
	}
	cols := methodColors(names)
	ylo, yhi := 0.0, 0.0
	var pts plotter.XYs
	var errs plotter.YErrors
	var lbl plotter.XYLabels
	for i, b := range bars {
		x := float64(i)
		rect := plotter.XYs{{X: x - 0.32, Y: 0}, {X: x + 0.32, Y: 0}, {X: x + 0.32, Y: b.Mean}, {X: x - 0.32, Y: b.Mean}}
		poly, err := plotter.NewPolygon(rect)
		if err != nil {
			return renderedPNG{}, err
		}
		poly.Color = cols[i]
		poly.LineStyle.Color = darken(cols[i], 0.6)
		poly.LineStyle.Width = vg.Points(0.8)
		p.Add(poly)
		pts = append(pts, plotter.XY{X: x, Y: b.Mean})
		errs = append(errs, struct{ Low, High float64 }{b.SD, b.SD})
		ylo, yhi = math.Min(ylo, b.Mean-b.SD), math.Max(yhi, b.Mean+b.SD)
	}
	span := yhi - ylo
	if span == 0 {
		span = 1
	}
	for i, b := range bars {
		y := b.Mean + b.SD + 0.05*span
		if b.Mean < 0 {
			y = b.Mean - b.SD - 0.05*span
		}
		lbl.XYs = append(lbl.XYs, plotter.XY{X: float64(i), Y: y})
		lbl.Labels = append(lbl.Labels, fmt.Sprintf("%.3f ± %.3f", b.Mean, b.SD))
	}
	eb, err := plotter.NewYErrorBars(struct {
		plotter.XYs
		plotter.YErrors
	}{pts, errs})
	if err != nil {
		return renderedPNG{}, err
	}
	eb.LineStyle.Width = vg.Points(1.2)
	eb.CapWidth = vg.Points(8)
	p.Add(eb)
	labels, err := plotter.NewLabels(lbl)
	if err != nil {
		return renderedPNG{}, err
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i] = textStyle(10)
	}
	p.Add(labels)
	if ylo < 0 {
		zero := plotter.NewFunction(func(float64) float64 { return 0 })
		zero.Color = color.NRGBA{0x33, 0x33, 0x33, 0xFF}
		zero.Width = vg.Points(0.8)
		p.Add(zero)
	}
	p.Y.Min, p.Y.Max = ylo-0.12*span*b2f(ylo < 0), yhi+0.14*span
	p.X.Min, p.X.Max = -0.6, float64(len(bars))-0.4
	p.NominalX(names...)
	p.X.Tick.Label.Font = font.From(sansFont, 10.5)
	w := vg.Length(math.Max(5, math.Min(9, 1.6+1.1*float64(len(bars))))) * vg.Inch
	return renderPlot(p, w, 3.8*vg.Inch, nil, 0)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *Confusion) validate() error {
	n := len(c.Classes)
	if n == 0 {
		return errors.New("no classes")
	}
	if len(c.Counts) != n {
		return fmt.Errorf("%d classes but %d rows of counts", n, len(c.Counts))
	}
	for i, row := range c.Counts {
		if len(row) != n {
			return fmt.Errorf("row %d (%q) has %d counts, want %d", i, c.Classes[i], len(row), n)
		}
		for j, v := range row {
			if v < 0 {
				return fmt.Errorf("count [%d][%d] is negative (%d)", i, j, v)
			}
		}
	}
	return nil
}

// confGrid is a confusion matrix as a gonum/plot grid: column = predicted
// class, row 0 at the top; Z is the row-normalised fraction.
type confGrid struct {
	frac [][]float64
}

func (g confGrid) Dims() (c, r int)   { return len(g.frac), len(g.frac) }
func (g confGrid) Z(c, r int) float64 { return g.frac[len(g.frac)-1-r][c] }
func (g confGrid) X(c int) float64    { return float64(c) }
func (g confGrid) Y(r int) float64    { return float64(r) }
func (g confGrid) Min() float64       { return 0 }
func (g confGrid) Max() float64       { return 1 }

type rampPalette []color.Color

func (p rampPalette) Colors() []color.Color { return p }

// renderConfusion draws a heat map coloured by the row-normalised fraction
// (recall per true class) with the count and percentage in every cell.
func renderConfusion(cf *Confusion) (renderedPNG, error) {
	n := len(cf.Classes)
	g := confGrid{frac: make([][]float64, n)}
	for i, row := range cf.Counts {
		g.frac[i] = make([]float64, n)
		tot := 0
		for _, v := range row {
			tot += v
		}
		for j, v := range row {
			if tot > 0 {
				g.frac[i][j] = float64(v) / float64(tot)
			}
		}
	}
	var ramp rampPalette
	for k := range 256 {
		ramp = append(ramp, blues(float64(k)/255))
	}
	p := newPlot(cf.Title, "predicted", "true")
	hm := plotter.NewHeatMap(g, ramp)
	hm.Min, hm.Max = 0, 1
	p.Add(hm)

	var counts, pcts plotter.XYLabels
	var cStyle, pStyle []text.Style
	for i := range n {
		for j := range n {
			x, y := float64(j), float64(n-1-i)
			ink := color.Color(color.NRGBA{0x1A, 0x1A, 0x1A, 0xFF})
			if g.frac[i][j] > 0.55 {
				ink = color.White
			}
			counts.XYs = append(counts.XYs, plotter.XY{X: x, Y: y + 0.1})
			counts.Labels = append(counts.Labels, strconv.Itoa(cf.Counts[i][j]))
			s := textStyle(10.5)
			s.Font.Weight = 700
			s.Color = ink
			cStyle = append(cStyle, s)
			pcts.XYs = append(pcts.XYs, plotter.XY{X: x, Y: y - 0.22})
			pcts.Labels = append(pcts.Labels, fmt.Sprintf("%.0f%%", 100*g.frac[i][j]))
			s = textStyle(8)
			s.Color = ink
			pStyle = append(pStyle, s)
		}
	}
	for _, l := range []struct {
		xy plotter.XYLabels
		st []text.Style
	}{{counts, cStyle}, {pcts, pStyle}} {
		lab, err := plotter.NewLabels(l.xy)
		if err != nil {
			return renderedPNG{}, err
		}
		lab.TextStyle = l.st
		p.Add(lab)
	}
	var xt, yt fixedTicks
	for i, c := range cf.Classes {
		xt = append(xt, plot.Tick{Value: float64(i), Label: c})
		yt = append(yt, plot.Tick{Value: float64(n - 1 - i), Label: c})
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = xt, yt
	p.X.Tick.Label.Rotation = math.Pi / 6
	p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YTop
	p.X.Min, p.X.Max = -0.5, float64(n)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(n)-0.5
	p.X.Padding, p.Y.Padding = 0, 0
	side := vg.Length(math.Max(4.2, math.Min(7, 2.2+0.55*float64(n)))) * vg.Inch
	return renderPlot(p, side*1.08, side, nil, 0)
}
