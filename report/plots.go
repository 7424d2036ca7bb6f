package report

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	xfont "golang.org/x/image/font"
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
func newPlot(title, xlabel, ylabel string, width vg.Length) *plot.Plot {
	p := plot.New()
	p.Title.TextStyle.Font = font.From(sansFont, 13)
	p.Title.TextStyle.Font.Weight = xfont.WeightBold
	p.Title.Text = wrapStyled(p.Title.TextStyle, title, width-vg.Points(24))
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text, p.Y.Label.Text = axisLabel(xlabel), axisLabel(ylabel)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(sansFont, 12)
		a.Tick.Label.Font = font.From(sansFont, 11)
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

// legendEntry is one item of a legend drawn under a chart.
type legendEntry struct {
	name   string
	thumbs []plot.Thumbnailer
}

// renderPlot draws p into a w×h canvas. The legend entries, if any, are laid
// out in centred rows under the chart, outside the data area, so they never
// hide data.
//
// h is the height of the chart itself; the canvas grows by the legend's
// height, so a long legend never squeezes the data area.
func renderPlot(p *plot.Plot, w, h vg.Length, legend []legendEntry) (renderedPNG, error) {
	pad := vg.Points(6)
	sty := textStyle(11)
	sty.XAlign, sty.YAlign = draw.XLeft, draw.YCenter
	thumbW, gap, rowH := vg.Points(24), vg.Points(5), sty.Height("Mg")*1.5
	width := func(e legendEntry) vg.Length { return thumbW + gap + sty.Width(e.name) + vg.Points(16) }
	var rows [][]legendEntry
	var rowW []vg.Length
	avail := w - 2*pad
	for _, e := range legend {
		n := len(rows)
		if n == 0 || rowW[n-1]+width(e) > avail {
			rows, rowW = append(rows, nil), append(rowW, 0)
			n++
		}
		rows[n-1] = append(rows[n-1], e)
		rowW[n-1] += width(e)
	}
	stripH := vg.Length(0)
	if len(rows) > 0 {
		stripH = rowH*vg.Length(len(rows)) + vg.Points(4)
		h += stripH + vg.Points(4)
	}
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(plotDPI), vgimg.UseBackgroundColor(color.White))
	dc := padCanvas(draw.New(c), pad)
	if len(rows) > 0 {
		for i, row := range rows {
			y := dc.Min.Y + stripH - rowH*(vg.Length(i)+0.5)
			x := dc.Min.X + (avail-rowW[i])/2
			for _, e := range row {
				tc := dc
				tc.Min = vg.Point{X: x, Y: y - rowH/2}
				tc.Max = vg.Point{X: x + thumbW, Y: y + rowH/2}
				for _, t := range e.thumbs {
					t.Thumbnail(&tc)
				}
				dc.FillText(sty, vg.Point{X: x + thumbW + gap, Y: y}, e.name)
				x += width(e)
			}
		}
		dc.Min.Y += stripH + vg.Points(4)
	}
	p.Draw(dc)
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return renderedPNG{}, err
	}
	b := c.Image().Bounds()
	return renderedPNG{buf.Bytes(), b.Dx(), b.Dy()}, nil
}

// niceTicks labels about six round values (steps of 1, 2, 2.5 or 5 times a
// power of ten) with as many decimals as the step needs.
type niceTicks struct{}

func (niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 4, 64)}}
	}
	raw := (hi - lo) / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	dec := max(0, int(-math.Floor(math.Log10(step)+1e-9)))
	if math.Abs(step/math.Pow(10, -float64(dec))-math.Round(step/math.Pow(10, -float64(dec)))) > 1e-9 {
		dec++ // 2.5 × 10^k needs one more
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step-1e-9) * step; v <= hi+1e-9*step; v += step {
		if math.Abs(v) < 1e-9*step {
			v = 0
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', dec, 64)})
	}
	return ticks
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
	const curveW, curveH = 5.6 * vg.Inch, 4.2 * vg.Inch
	p := newPlot(cv.Title, cv.XLabel, cv.YLabel, curveW)
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
	styles := methodStyles(names)
	var legend []legendEntry
	ylo, yhi := math.Inf(1), math.Inf(-1)
	var lines []plot.Plotter
	for i, s := range cv.Series {
		col := styles[i].color
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
		bandAlpha := uint8(0x30)
		if len(cv.Series) > 4 {
			bandAlpha = 0x14 // many overlapping bands: keep the lines readable
		}
		poly.Color = color.NRGBA{col.R, col.G, col.B, bandAlpha}
		poly.LineStyle.Width = 0
		p.Add(poly) // all bands first, so no band hides a line
		l, sc, err := plotter.NewLinePoints(line)
		if err != nil {
			return renderedPNG{}, err
		}
		l.Color, l.Width = col, vg.Points(1.8)
		if styles[i].dashed {
			l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		}
		sc.Color, sc.Shape, sc.Radius = col, glyphs[i%len(glyphs)], vg.Points(3.2)
		lines = append(lines, l, sc)
		legend = append(legend, legendEntry{s.Name, []plot.Thumbnailer{l, sc}})
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
	p.Y.Tick.Marker = niceTicks{}
	return renderPlot(p, curveW, curveH, legend)
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
	w := vg.Length(math.Max(5.6, math.Min(9, 0.6+1.0*float64(len(bars))))) * vg.Inch
	p := newPlot(title, "", ylabel, w)
	g := lightGrid()
	g.Vertical.Width = 0
	p.Add(g)
	names := make([]string, len(bars))
	for i, b := range bars {
		names[i] = b.Name
	}
	styles := methodStyles(names)
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
		poly.Color = styles[i].color
		poly.LineStyle.Color = darken(styles[i].color, 0.6)
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
		lbl.Labels = append(lbl.Labels, fmt.Sprintf("%.3f", b.Mean)) // ± sd: whiskers and the table beside
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
		labels.TextStyle[i] = textStyle(11)
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
	slot := (w - vg.Inch) / vg.Length(len(bars)) * 0.92
	wrapped := make([]string, len(names))
	for i, n := range names {
		wrapped[i] = wrapStyled(p.X.Tick.Label, n, slot)
	}
	p.NominalX(wrapped...)
	p.Y.Tick.Marker = niceTicks{}
	return renderPlot(p, w, 4.2*vg.Inch, nil)
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

// renderConfusion draws a heat map coloured by the row-normalised fraction
// (recall per true class) with the count and percentage in every cell.
func renderConfusion(cf *Confusion) (renderedPNG, error) {
	n := len(cf.Classes)
	g := struct{ frac [][]float64 }{make([][]float64, n)}
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
	side := vg.Length(math.Max(4, math.Min(8, 2.4+0.42*float64(n)))) * vg.Inch
	p := newPlot(cf.Title, "predicted", "true", side*1.06)
	// Cells are squares separated by thin white lines (drawn as polygons
	// rather than a HeatMap, whose anti-aliased edges leave hairline seams).
	for i := range n {
		for j := range n {
			x, y := float64(j), float64(n-1-i)
			sq, err := plotter.NewPolygon(plotter.XYs{{X: x - 0.5, Y: y - 0.5}, {X: x + 0.5, Y: y - 0.5}, {X: x + 0.5, Y: y + 0.5}, {X: x - 0.5, Y: y + 0.5}})
			if err != nil {
				return renderedPNG{}, err
			}
			sq.Color = blues(g.frac[i][j])
			sq.LineStyle.Color = color.White
			sq.LineStyle.Width = vg.Points(1.2)
			p.Add(sq)
		}
	}

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
			s := textStyle(11)
			s.Font.Weight = xfont.WeightBold
			s.Color = ink
			cStyle = append(cStyle, s)
			pcts.XYs = append(pcts.XYs, plotter.XY{X: x, Y: y - 0.22})
			pcts.Labels = append(pcts.Labels, fmt.Sprintf("%.0f%%", 100*g.frac[i][j]))
			s = textStyle(9)
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
	return renderPlot(p, side*1.06, side, nil)
}

// wrapWords breaks s into lines no wider than width (as measured by
// measure) at spaces; existing line breaks are kept. A word wider than width
// is split after one of "/+-_,;" or before "[(", and failing that, between
// characters.
func wrapWords(s string, width float64, measure func(string) float64) []string {
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			for _, piece := range splitWord(w, width, measure) {
				if line != "" && measure(line+" "+piece) > width {
					out = append(out, line)
					line = piece
					continue
				}
				if line != "" {
					line += " "
				}
				line += piece
			}
		}
		out = append(out, line)
	}
	return out
}

// splitWord cuts a word that is wider than width into pieces that fit.
func splitWord(w string, width float64, measure func(string) float64) []string {
	var out []string
	for measure(w) > width {
		cut := -1
		for i := 1; i < len(w); i++ {
			after := strings.ContainsRune("/+-_,;", rune(w[i-1]))
			before := strings.ContainsRune("[(", rune(w[i]))
			if (after || before) && measure(w[:i]) <= width {
				cut = i
			}
		}
		if cut < 0 {
			for cut = 1; cut < len(w) && measure(w[:cut+1]) <= width; cut++ {
			}
			for cut < len(w) && !utf8.RuneStart(w[cut]) {
				cut++
			}
		}
		if cut >= len(w) {
			break
		}
		out = append(out, w[:cut])
		w = w[cut:]
	}
	return append(out, w)
}

// wrapStyled wraps s to width in the given gonum/plot text style.
func wrapStyled(sty text.Style, s string, width vg.Length) string {
	return strings.Join(wrapWords(s, float64(width), func(t string) float64 { return float64(sty.Width(t)) }), "\n")
}

// axisLabel shows a metric identifier ("balanced_accuracy") as words.
func axisLabel(s string) string {
	if strings.Contains(s, "_") && !strings.Contains(s, " ") {
		return metricName(s)
	}
	return s
}
