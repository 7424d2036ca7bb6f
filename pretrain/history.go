package pretrain

import (
	"bufio"
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/spotfuse/spotfuse/atomicfile"
)

// WriteHistory writes dir/loss.csv and dir/loss.png atomically.
func WriteHistory(dir string, h *History) error {
	csvPath := filepath.Join(dir, "loss.csv")
	if err := atomicfile.Write(csvPath, func(w io.Writer) error { return h.WriteCSV(w) }); err != nil {
		return fmt.Errorf("pretrain: writing %s: %w", csvPath, err)
	}
	pngPath := filepath.Join(dir, "loss.png")
	var buf bytes.Buffer
	if err := h.WritePNG(&buf); err != nil {
		return fmt.Errorf("pretrain: drawing %s: %w", pngPath, err)
	}
	if err := atomicfile.WriteFile(pngPath, buf.Bytes()); err != nil {
		return fmt.Errorf("pretrain: writing %s: %w", pngPath, err)
	}
	return nil
}

// WriteCSV writes one row per step: step, each training loss term (total
// first), then heldout_<term> where a held-out evaluation was made after
// that many steps (empty otherwise). Row 0 holds the held-out loss before
// training.
func (h *History) WriteCSV(w io.Writer) error {
	terms := termOrder(h.Loss)
	held := termOrder(h.HeldOut)
	bw := bufio.NewWriter(w)
	bw.WriteString("step")
	for _, t := range terms {
		bw.WriteString("," + t)
	}
	for _, t := range held {
		bw.WriteString(",heldout_" + t)
	}
	bw.WriteByte('\n')
	rowOf := map[int]int{}
	for i, s := range h.Steps {
		rowOf[s] = i
	}
	heldOf := map[int]int{}
	for j, s := range h.HeldOutSteps {
		heldOf[s] = j
	}
	steps := append([]int(nil), h.Steps...)
	for _, s := range h.HeldOutSteps {
		if _, ok := rowOf[s]; !ok {
			steps = append(steps, s)
		}
	}
	slices.Sort(steps)
	num := func(v float64) string {
		if math.IsNaN(v) {
			return ""
		}
		return strconv.FormatFloat(v, 'g', 8, 64)
	}
	for _, s := range steps {
		bw.WriteString(strconv.Itoa(s))
		i, ok := rowOf[s]
		for _, t := range terms {
			bw.WriteByte(',')
			if ok {
				bw.WriteString(num(h.Loss[t][i]))
			}
		}
		j, ok := heldOf[s]
		for _, t := range held {
			bw.WriteByte(',')
			if ok {
				bw.WriteString(num(h.HeldOut[t][j]))
			}
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// WritePNG draws the training loss of every term (thin lines, smoothed over
// a window of ~1% of the steps) and the held-out losses (points joined by
// dashed lines) on a log scale.
func (h *History) WritePNG(w io.Writer) error {
	p := plot.New()
	p.Title.Text = "pretraining loss"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss"
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, m := range []map[string][]float64{h.Loss, h.HeldOut} {
		for _, s := range m {
			for _, v := range s {
				if !math.IsNaN(v) {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
		}
	}
	if lo > 0 && hi/lo > 10 {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
		p.Y.Min, p.Y.Max = lo/1.1, hi*3 // headroom for the legend
	}
	window := max(1, len(h.Steps)/100)
	for i, t := range termOrder(h.Loss) {
		pts := smooth(h.Steps, h.Loss[t], window)
		if len(pts) == 0 {
			continue
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1)
		p.Add(l)
		p.Legend.Add("train "+t, l)
	}
	for i, t := range termOrder(h.HeldOut) {
		var pts plotter.XYs
		for j, s := range h.HeldOutSteps {
			if v := h.HeldOut[t][j]; !math.IsNaN(v) {
				pts = append(pts, plotter.XY{X: float64(s), Y: v})
			}
		}
		if len(pts) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		c := plotutil.Color(i)
		l.Color, s.Color = c, c
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		s.Shape = plotutil.Shape(1)
		p.Add(l, s)
		p.Legend.Add("held-out "+t, l, s)
	}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	p.BackgroundColor = color.White
	wt, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(w)
	return err
}

// smooth averages ys over a trailing window, skipping NaN.
func smooth(xs []int, ys []float64, window int) plotter.XYs {
	var pts plotter.XYs
	sum, n := 0.0, 0
	q := make([]float64, 0, window)
	for i, y := range ys {
		if math.IsNaN(y) {
			continue
		}
		q = append(q, y)
		sum += y
		n++
		if n > window {
			sum -= q[0]
			q = q[1:]
			n--
		}
		pts = append(pts, plotter.XY{X: float64(xs[i]), Y: sum / float64(n)})
	}
	return pts
}

// termOrder returns "total" first, then the other terms sorted.
func termOrder(m map[string][]float64) []string {
	var out []string
	if _, ok := m["total"]; ok {
		out = append(out, "total")
	}
	for _, k := range sortedKeys(m) {
		if k != "total" {
			out = append(out, k)
		}
	}
	return out
}

// logTicks labels a log axis at 1, 2 and 5 times the powers of ten.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v >= lo && v <= hi {
				ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', 3, 64)})
			}
		}
	}
	return ticks
}
