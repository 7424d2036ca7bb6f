// Package report turns study results into one self-contained HTML file: a
// summary table (mean ± sd over seeds), label-fraction curves, a modality
// contribution chart, confusion matrices, spatial maps drawn over the H&E
// image, and any extra tables. Every image is embedded as a base64 PNG data
// URI and the CSS is inline, so the file can be mailed or archived alone and
// needs neither JavaScript nor network access.
//
// Charts are drawn with gonum/plot; spatial maps are drawn directly on the
// (cropped, downscaled) H&E image. RenderMap and WritePNG let the CLI save a
// map as a PNG of its own.
//
// To look at a report: `go test ./report -run 'TestWrite$' -demo /tmp/demo.html`
// writes a demo (synthetic results plus the real A1 maps when the HER2ST data
// sit beside the repository), and `report/screenshot.sh /tmp/demo.html
// /tmp/demo.png` renders it with headless Chromium.
package report

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"image"
	"image/png"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spotfuse/spotfuse/atomicfile"
)

// MeanSD is a metric's mean and standard deviation over seeds.
type MeanSD struct{ Mean, SD float64 }

// SummaryRow is one method (or modality) in one setting, e.g. "fused
// (gated)" at "10 % labels", with each metric's mean ± sd over N seeds.
type SummaryRow struct {
	Name, Setting string
	N             int
	Metrics       map[string]MeanSD
}

// Series is one line of a curve: the mean and sd over seeds at every x.
// SD may be nil (no band).
type Series struct {
	Name        string
	X, Mean, SD []float64
}

// Curve is a chart of a metric against, typically, the fraction of labelled
// spots; every series gets a line and a shaded mean ± sd band.
type Curve struct {
	Title, XLabel, YLabel string
	Series                []Series
}

// Bar is one bar of the modality contribution chart.
type Bar struct {
	Name     string
	Mean, SD float64
}

// Confusion is a confusion matrix: Counts[i][j] spots of true class
// Classes[i] were predicted as Classes[j].
type Confusion struct {
	Title   string
	Classes []string
	Counts  [][]int
}

// Table is an extra table (per-class F1, leave-one-section-out, …).
type Table struct {
	Title  string
	Header []string
	Rows   [][]string
}

// Input is everything a report shows. Empty parts are left out.
type Input struct {
	Title, Subtitle string
	// Generated holds provenance lines (time, version, configuration),
	// separated by newlines; shown verbatim.
	Generated string
	// Notes are honest remarks shown near the top, e.g. "fused did not beat
	// expression-only on A1 at 10 %".
	Notes []string

	Summary []SummaryRow
	// MetricOrder selects and orders the summary columns; when empty, every
	// metric present is shown, alphabetically. (Per-class metrics belong in
	// Tables.)
	MetricOrder []string

	Curves []Curve

	Contribution []Bar
	// ContributionTitle and ContributionLabel title the contribution chart
	// and its y axis (defaults: "Modality contribution", "balanced
	// accuracy").
	ContributionTitle, ContributionLabel string

	Confusions []Confusion
	// Maps are shown two per row, in order, so put a section's truth map
	// right before its prediction map.
	Maps   []SpatialMap
	Tables []Table

	// ResultsCSV is the path of the tidy results CSV, relative to the
	// report, linked at the top and bottom.
	ResultsCSV string
}

// Validate checks every part of in without touching the file system (map
// images are checked by Write).
func (in *Input) Validate() error {
	if in == nil {
		return errors.New("report: nil input")
	}
	for i, r := range in.Summary {
		if r.N < 0 {
			return fmt.Errorf("report: summary row %d (%s, %s): N=%d", i, r.Name, r.Setting, r.N)
		}
		for k, v := range r.Metrics {
			if math.IsInf(v.Mean, 0) || math.IsInf(v.SD, 0) || v.SD < 0 {
				return fmt.Errorf("report: summary row %d (%s, %s): metric %s = %v ± %v",
					i, r.Name, r.Setting, k, v.Mean, v.SD)
			}
		}
	}
	for i := range in.Curves {
		if err := in.Curves[i].validate(); err != nil {
			return fmt.Errorf("report: curve %d (%q): %w", i, in.Curves[i].Title, err)
		}
	}
	if err := validateBars(in.Contribution); err != nil {
		return fmt.Errorf("report: contribution: %w", err)
	}
	for i := range in.Confusions {
		if err := in.Confusions[i].validate(); err != nil {
			return fmt.Errorf("report: confusion %d (%q): %w", i, in.Confusions[i].Title, err)
		}
	}
	for i := range in.Maps {
		if err := in.Maps[i].validate(); err != nil {
			return fmt.Errorf("report: map %d (%q): %w", i, in.Maps[i].Title, err)
		}
	}
	for i, t := range in.Tables {
		for j, r := range t.Rows {
			if len(t.Header) > 0 && len(r) != len(t.Header) {
				return fmt.Errorf("report: table %d (%q): row %d has %d cells for %d columns",
					i, t.Title, j, len(r), len(t.Header))
			}
		}
	}
	if strings.Contains(in.ResultsCSV, "://") {
		return fmt.Errorf("report: ResultsCSV %q must be a relative path", in.ResultsCSV)
	}
	return nil
}

// Write renders in to a self-contained HTML file at path, atomically. All
// charts and maps are rendered before anything is written, so a bad input
// leaves no file behind.
func Write(path string, in *Input) error {
	if err := in.Validate(); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := Render(&buf, in); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, buf.Bytes()); err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	return nil
}

// Render writes the HTML report for in to w.
func Render(w io.Writer, in *Input) error {
	if err := in.Validate(); err != nil {
		return err
	}
	page, err := buildPage(in)
	if err != nil {
		return err
	}
	return pageTmpl.Execute(w, page)
}

// figure is one embedded image.
type figure struct {
	// Src is the whole src="data:image/png;base64,…" attribute, typed as
	// trusted so html/template does not entity-escape the base64 payload.
	Src  template.HTMLAttr
	Alt  string
	W, H int
	Wide bool
}

func pngFigure(r renderedPNG, alt string) figure {
	return figure{
		Src: template.HTMLAttr(`src="data:image/png;base64,` + base64.StdEncoding.EncodeToString(r.data) + `"`),
		Alt: alt, W: r.w, H: r.h,
	}
}

func imageFigure(img image.Image, alt string) (figure, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return figure{}, err
	}
	b := img.Bounds()
	return pngFigure(renderedPNG{buf.Bytes(), b.Dx(), b.Dy()}, alt), nil
}

type cell struct {
	Mean, SD string
	Best     bool
}

type summaryRow struct {
	Name, Setting string
	N             int
	Cells         []cell
	FirstOfGroup  bool
}

// table is an extra table with the columns that hold only numbers marked,
// so they can be right-aligned.
type table struct {
	Table
	NumCol []bool
}

// contributionRow is one bar as a table row; Detail is the bar name after
// its first line break.
type contributionRow struct{ Name, Detail, Value, Delta string }

type page struct {
	*Input
	Tables         []table
	GeneratedLines []string
	Metrics        []string
	Rows           []summaryRow
	Curves         []figure
	Contribution   *figure
	// ContributionHeading is the contribution section's heading.
	ContributionHeading string
	// ContributionRows restate the bars as numbers, with each bar's
	// difference to the best of the other bars.
	ContributionRows []contributionRow
	Confusions       []figure
	Maps             []figure
}

func buildPage(in *Input) (*page, error) {
	p := &page{Input: in}
	for _, l := range strings.Split(strings.TrimSpace(in.Generated), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			p.GeneratedLines = append(p.GeneratedLines, l)
		}
	}
	p.Metrics, p.Rows = summaryTable(in.Summary, in.MetricOrder)
	for _, t := range in.Tables {
		cols := len(t.Header)
		for _, r := range t.Rows {
			cols = max(cols, len(r))
		}
		tb := table{Table: t, NumCol: make([]bool, cols)}
		for j := range cols {
			num, seen := true, false
			for _, r := range t.Rows {
				if j >= len(r) || missing(r[j]) {
					continue
				}
				seen = true
				num = num && numeric(r[j])
			}
			tb.NumCol[j] = num && seen
		}
		p.Tables = append(p.Tables, tb)
	}
	// Maps first: a missing or unreadable image is the likeliest failure.
	var mr mapRenderer
	for i := range in.Maps {
		start := time.Now()
		img, err := mr.render(&in.Maps[i], DefaultMapWidth, false)
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		slog.Debug("report: map rendered", "title", in.Maps[i].Title, "image", in.Maps[i].Image,
			"spots", len(in.Maps[i].X), "took", time.Since(start).Round(time.Millisecond))
		f, err := imageFigure(img, in.Maps[i].Title)
		if err != nil {
			return nil, fmt.Errorf("report: map %q: %w", in.Maps[i].Title, err)
		}
		p.Maps = append(p.Maps, f)
	}
	for i := range in.Curves {
		r, err := renderCurve(&in.Curves[i])
		if err != nil {
			return nil, fmt.Errorf("report: curve %q: %w", in.Curves[i].Title, err)
		}
		p.Curves = append(p.Curves, pngFigure(r, in.Curves[i].Title))
	}
	if len(in.Contribution) > 0 {
		title, label := in.ContributionTitle, in.ContributionLabel
		if title == "" {
			title = "Modality contribution"
		}
		if label == "" {
			label = "balanced accuracy"
		}
		r, err := renderBars("", label, in.Contribution)
		if err != nil {
			return nil, fmt.Errorf("report: contribution chart: %w", err)
		}
		f := pngFigure(r, title)
		p.Contribution = &f
		p.ContributionHeading = title
		for i, b := range in.Contribution {
			other := math.Inf(-1)
			for j, o := range in.Contribution {
				if j != i {
					other = math.Max(other, o.Mean)
				}
			}
			delta := "–"
			if !math.IsInf(other, -1) {
				delta = fmt.Sprintf("%+.3f", b.Mean-other)
			}
			name, detail, _ := strings.Cut(b.Name, "\n")
			p.ContributionRows = append(p.ContributionRows, contributionRow{
				Name: name, Detail: strings.ReplaceAll(detail, "\n", " "),
				Value: fmt.Sprintf("%.3f ± %.3f", b.Mean, b.SD), Delta: delta})
		}
	}
	for i := range in.Confusions {
		r, err := renderConfusion(&in.Confusions[i])
		if err != nil {
			return nil, fmt.Errorf("report: confusion %q: %w", in.Confusions[i].Title, err)
		}
		p.Confusions = append(p.Confusions, pngFigure(r, in.Confusions[i].Title))
	}
	return p, nil
}

// lowerIsBetter reports whether a metric is an error or loss.
func lowerIsBetter(metric string) bool {
	m := strings.ToLower(metric)
	for _, s := range []string{"loss", "error", "mse", "mae", "rmse", "time", "seconds"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// summaryTable picks and orders the metric columns (all metrics present,
// alphabetically, when order is empty) and marks, within each setting, the
// best mean of every metric.
func summaryTable(rows []SummaryRow, order []string) ([]string, []summaryRow) {
	seen := map[string]bool{}
	var metrics []string
	present := map[string]bool{}
	for _, r := range rows {
		for k := range r.Metrics {
			present[k] = true
		}
	}
	for _, m := range order {
		if present[m] && !seen[m] {
			seen[m] = true
			metrics = append(metrics, m)
		}
	}
	if len(order) == 0 {
		for m := range present {
			metrics = append(metrics, m)
		}
		slices.Sort(metrics)
	}

	best := map[[2]string]float64{} // (setting, metric) → best mean
	for _, r := range rows {
		for _, m := range metrics {
			v, ok := r.Metrics[m]
			if !ok || math.IsNaN(v.Mean) {
				continue
			}
			k := [2]string{r.Setting, m}
			b, ok := best[k]
			if !ok || (lowerIsBetter(m) && v.Mean < b) || (!lowerIsBetter(m) && v.Mean > b) {
				best[k] = v.Mean
			}
		}
	}
	out := make([]summaryRow, len(rows))
	for i, r := range rows {
		out[i] = summaryRow{Name: r.Name, Setting: r.Setting, N: r.N, FirstOfGroup: i > 0 && r.Setting != rows[i-1].Setting}
		for _, m := range metrics {
			v, ok := r.Metrics[m]
			switch {
			case !ok:
				out[i].Cells = append(out[i].Cells, cell{Mean: "–"})
			case math.IsNaN(v.Mean):
				out[i].Cells = append(out[i].Cells, cell{Mean: "n/a"})
			default:
				c := cell{Mean: fmt.Sprintf("%.3f", v.Mean)}
				if !math.IsNaN(v.SD) {
					c.SD = fmt.Sprintf("± %.3f", v.SD)
				}
				// Ties at the printed precision are all bold.
				c.Best = fmt.Sprintf("%.3f", best[[2]string{r.Setting, m}]) == c.Mean
				out[i].Cells = append(out[i].Cells, c)
			}
		}
	}
	return metrics, out
}

// metricName turns "balanced_accuracy" into "balanced accuracy" and keeps
// acronyms such as ARI, NMI upper case.
func metricName(m string) string {
	s := strings.ReplaceAll(m, "_", " ")
	switch strings.ToLower(s) {
	case "ari", "nmi", "auc", "auroc", "mcc":
		return strings.ToUpper(s)
	case "macro f1", "f1 macro":
		return "macro F1"
	case "weighted f1":
		return "weighted F1"
	}
	return s
}

// numeric reports whether a table cell reads as a number (possibly with
// "± sd" or a percent sign), to right-align it.
func numeric(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" {
		return false
	}
	f := strings.Fields(strings.NewReplacer("±", " ", "%", " ").Replace(s))
	for _, w := range f {
		if _, err := strconv.ParseFloat(w, 64); err != nil {
			return false
		}
	}
	return len(f) > 0
}

// missing reports whether a cell stands for a missing value.
func missing(s string) bool {
	switch strings.TrimSpace(s) {
	case "", "–", "—", "-", "n/a", "NA", "NaN":
		return true
	}
	return false
}

func index(b []bool, i int) bool { return i < len(b) && b[i] }

var pageTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"metricName": metricName,
	"isNum":      index,
}).Parse(pageHTML))
