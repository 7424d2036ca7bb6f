package report

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	stdhtml "html"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
	"github.com/spotfuse/spotfuse/section"
)

var demoPath = flag.String("demo", "", "also write the demo report (synthetic results + the real A1 maps) to this path")

// a1 holds the real A1 spots (full-res px) with their pathologist labels.
type a1 struct {
	image  string
	x, y   []float64
	labels []string
}

// loadA1 reads the A1 spot file and label file with a tiny TSV parse; it
// skips the test when the shared data are absent.
func loadA1(t *testing.T) *a1 {
	t.Helper()
	dir := testutil.HER2ST(t, "images/A1_HE_image_dark.png")
	img := filepath.Join(dir, "images", "A1_HE_image_dark.png")
	labels := map[string]string{}
	for i, f := range readTSV(t, filepath.Join(dir, "labels", "A1_labeled_coordinates.tsv")) {
		if i == 0 || len(f) < 6 {
			continue
		}
		x, err1 := strconv.ParseFloat(f[1], 64)
		y, err2 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		labels[fmt.Sprintf("%.0fx%.0f", math.Round(x), math.Round(y))] = f[5]
	}
	d := &a1{image: img}
	for i, f := range readTSV(t, filepath.Join(dir, "spots", "A1_selection.tsv")) {
		if i == 0 {
			continue
		}
		px, err1 := strconv.ParseFloat(f[4], 64)
		py, err2 := strconv.ParseFloat(f[5], 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("A1_selection.tsv line %d: %v %v", i+1, err1, err2)
		}
		d.x = append(d.x, px)
		d.y = append(d.y, py)
		d.labels = append(d.labels, labels[f[0]+"x"+f[1]])
	}
	return d
}

func readTSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rows = append(rows, strings.Split(sc.Text(), "\t"))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// syntheticInput is a realistic study result: four methods at four label
// fractions over five seeds, two curves, a contribution chart, two
// confusion matrices, a map on white and an extra table.
func syntheticInput() *Input {
	rng := rand.New(rand.NewPCG(7, 11))
	methods := []string{"image only", "expression only", "fused (concat)", "fused (gated)"}
	base := []float64{0.48, 0.61, 0.64, 0.66}
	fracs := []float64{0.01, 0.05, 0.1, 0.25, 1}
	in := &Input{
		Title:    "spotfuse study: HER2ST, few-label region classification",
		Subtitle: "6 labelled sections, leave-one-section-out, 5 seeds per setting",
		Generated: "generated 2026-11-29 10:00 UTC · spotfuse 0.1.0-dev (commit 33da590)\n" +
			`config {"name":"her2st-a1","targets":["A1"],"loso":["A1","B1","C1","D1","E1","F1"],"fractions":[0.01,0.05,0.1,0.25,1],"seeds":5,"pretrain":{"encoder":"conv4","pretext":"inpaint","epochs":30}}`,
		Notes: []string{
			"Fused (gated) did not beat expression-only on A1 at 1 % labels (0.55 vs 0.56 balanced accuracy).",
			"'cancer in situ' and 'breast glands' occur in one section each, so leave-one-section-out cannot score them.",
		},
		MetricOrder: []string{"balanced_accuracy", "macro_f1", "ari", "accuracy", "nmi"},
		ResultsCSV:  "results.csv",
	}
	for _, f := range []float64{0.01, 0.1, 1} {
		for i, m := range methods {
			g := base[i] + 0.12*math.Log10(f*100)/2
			in.Summary = append(in.Summary, SummaryRow{
				Name: m, Setting: fmt.Sprintf("%g %% labels", f*100), N: 5,
				Metrics: map[string]MeanSD{
					"balanced_accuracy": {g, 0.02 + 0.01*rng.Float64()},
					"macro_f1":          {g - 0.07, 0.03 * rng.Float64()},
					"accuracy":          {g + 0.12, 0.02 * rng.Float64()},
					"ari":               {g - 0.3, 0.04 * rng.Float64()},
					"nmi":               {g - 0.2, 0.03 * rng.Float64()},
				},
			})
		}
	}
	for _, metric := range []string{"balanced accuracy", "macro F1"} {
		c := Curve{Title: "A1: " + metric + " vs label fraction (linear heads, k-fold within the section)",
			XLabel: "labelled spots of the training fold (%)", YLabel: strings.ReplaceAll(metric, " ", "_")}
		for i, m := range methods {
			s := Series{Name: m}
			for _, f := range fracs {
				s.X = append(s.X, 100*f)
				s.Mean = append(s.Mean, base[i]+0.12*math.Log10(f*100)/2+0.01*rng.NormFloat64())
				s.SD = append(s.SD, 0.05/(1+8*f)+0.01*rng.Float64())
			}
			c.Series = append(c.Series, s)
		}
		in.Curves = append(in.Curves, c)
	}
	// A crowded curve as the study draws it: eleven methods, two fractions.
	crowded := Curve{Title: "A1: balanced_accuracy vs label fraction (mlp heads)", XLabel: "labelled spots of the training fold (%)", YLabel: "balanced_accuracy"}
	for i, name := range []string{"majority", "expr-pca / mlp", "image-stats / mlp", "expr-random / mlp", "image-random / mlp",
		"fused-concat-random / mlp", "fused-gated-random", "expr-pretrained / mlp", "image-pretrained [inpaint+colorize+contrastive] / mlp",
		"fused-concat-pretrained [inpaint+colorize+contrastive] / mlp", "fused-gated-pretrained [inpaint+colorize+contrastive]"} {
		lo := 0.2 + 0.02*float64(i)
		crowded.Series = append(crowded.Series, Series{Name: name, X: []float64{10, 100},
			Mean: []float64{lo, lo + 0.2*rng.Float64()}, SD: []float64{0.05 * rng.Float64(), 0.05 * rng.Float64()}})
	}
	in.Curves = append(in.Curves, crowded)
	in.Contribution = []Bar{{"majority class\nmajority", 0.143, 0}, {"image only\nimage conv4 (inpaint pretrained)", 0.54, 0.03},
		{"expression only\nexpression PCA-50", 0.67, 0.02}, {"fused (concat)", 0.70, 0.02}, {"fused (gated)", 0.72, 0.015}}
	cls := HER2STClasses
	for _, title := range []string{"fused (gated), 10 % labels", "expression only, 10 % labels"} {
		cf := Confusion{Title: title, Classes: cls}
		for i := range cls {
			row := make([]int, len(cls))
			for j := range cls {
				if i == j {
					row[j] = 40 + rng.IntN(200)
				} else {
					row[j] = rng.IntN(25)
				}
			}
			cf.Counts = append(cf.Counts, row)
		}
		in.Confusions = append(in.Confusions, cf)
	}
	// A map on white: a 12×10 hexagonal ST-like grid, 200 px apart.
	var m SpatialMap
	m.Title = "synthetic section: gate weight"
	m.ValueLabel = "gate weight (0 = expression, 1 = image)"
	m.ValueMin, m.ValueMax = 0, 1
	m.SpotDiameterPx = 100
	for r := range 10 {
		for c := range 12 {
			x := 200*float64(c) + 100*float64(r%2)
			y := 173 * float64(r)
			m.X = append(m.X, x)
			m.Y = append(m.Y, y)
			m.Values = append(m.Values, 0.5+0.45*math.Sin(x/500)*math.Cos(y/400))
		}
	}
	in.Maps = append(in.Maps, m)
	in.Tables = []Table{{
		Title:  "Per-class F1 (fused (gated), 10 % labels)",
		Header: []string{"class", "support", "F1"},
		Rows:   [][]string{{"invasive cancer", "1528", "0.912"}, {"connective tissue", "338", "0.701"}, {"immune infiltrate", "212", "0.544"}},
	}}
	return in
}

// addA1Maps adds the A1 truth, prediction and gate-weight maps.
func addA1Maps(in *Input, d *a1) {
	rng := rand.New(rand.NewPCG(3, 5))
	pred := make([]string, len(d.labels))
	gate := make([]float64, len(d.labels))
	for i, l := range d.labels {
		pred[i] = l
		if l == "" || rng.Float64() < 0.15 {
			pred[i] = HER2STClasses[rng.IntN(len(HER2STClasses))]
		}
		gate[i] = 0.5 + 0.35*math.Sin(d.x[i]/900) + 0.1*rng.NormFloat64()
		gate[i] = math.Max(0, math.Min(1, gate[i]))
	}
	common := SpatialMap{Image: d.image, FromFullres: section.Scale(0.287604), SpotDiameterPx: 31.3, X: d.x, Y: d.y}
	truth, p, g := common, common, common
	truth.Title, truth.Categories = "A1 pathologist annotation", d.labels
	p.Title, p.Categories = "A1: out-of-fold prediction, fused (gated, conv4 inpaint + expression PCA-50) (seed 0, 10 % labels)", pred
	g.Title, g.Values, g.ValueLabel, g.ValueMax = "A1 gate weight", gate, "gate weight (0 = expression, 1 = image)", 1
	in.Maps = append([]SpatialMap{truth, p, g}, in.Maps...)
}

// tag is one start or end tag of an HTML document.
type tag struct {
	name  string
	end   bool
	attrs map[string]string
}

// scanTags is a small HTML tokenizer, enough for the report: it reads every
// tag with its double-quoted attributes and skips text and <style> content.
func scanTags(t *testing.T, html string) []tag {
	t.Helper()
	var tags []tag
	for i := 0; ; {
		j := strings.IndexByte(html[i:], '<')
		if j < 0 {
			return tags
		}
		i += j + 1
		if strings.HasPrefix(html[i:], "!") {
			i += strings.IndexByte(html[i:], '>') + 1
			continue
		}
		var tg tag
		if html[i] == '/' {
			tg.end = true
			i++
		}
		k := i
		for k < len(html) && (html[k] >= 'a' && html[k] <= 'z' || html[k] >= '0' && html[k] <= '9' || html[k] >= 'A' && html[k] <= 'Z') {
			k++
		}
		if k == i {
			t.Fatalf("stray '<' at byte %d: %.40q", i-1, html[i-1:])
		}
		tg.name = strings.ToLower(html[i:k])
		tg.attrs = map[string]string{}
		i = k
		for {
			for i < len(html) && html[i] == ' ' {
				i++
			}
			if i >= len(html) {
				t.Fatalf("unterminated <%s>", tg.name)
			}
			if html[i] == '>' {
				i++
				break
			}
			k = i
			for k < len(html) && html[k] != '=' && html[k] != ' ' && html[k] != '>' {
				k++
			}
			name := html[i:k]
			i = k
			if html[i] == '=' {
				if html[i+1] != '"' {
					t.Fatalf("<%s %s=…> attribute not double-quoted", tg.name, name)
				}
				e := strings.IndexByte(html[i+2:], '"')
				if e < 0 {
					t.Fatalf("<%s %s=…> unterminated attribute", tg.name, name)
				}
				tg.attrs[name] = html[i+2 : i+2+e]
				i += e + 3
			} else {
				tg.attrs[name] = ""
			}
		}
		tags = append(tags, tg)
		if tg.name == "style" && !tg.end {
			e := strings.Index(html[i:], "</style>")
			if e < 0 {
				t.Fatal("unterminated <style>")
			}
			i += e
		}
	}
}

// checkImages verifies that every <img> carries a PNG data URI whose
// decoded size matches its width and height attributes; it returns the sizes.
func checkImages(t *testing.T, tags []tag) []image.Point {
	t.Helper()
	var sizes []image.Point
	for _, tg := range tags {
		if tg.name != "img" {
			continue
		}
		a := tg.attrs
		const prefix = "data:image/png;base64,"
		if !strings.HasPrefix(a["src"], prefix) {
			t.Errorf("img src is not a PNG data URI: %.80s", a["src"])
			continue
		}
		data, err := base64.StdEncoding.DecodeString(a["src"][len(prefix):])
		if err != nil {
			t.Errorf("img base64: %v", err)
			continue
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			t.Errorf("img payload is not a PNG: %v", err)
			continue
		}
		if a["width"] != strconv.Itoa(cfg.Width) || a["height"] != strconv.Itoa(cfg.Height) {
			t.Errorf("img attributes %s×%s, PNG is %d×%d", a["width"], a["height"], cfg.Width, cfg.Height)
		}
		if a["alt"] == "" {
			t.Error("img without alt text")
		}
		sizes = append(sizes, image.Pt(cfg.Width, cfg.Height))
	}
	return sizes
}

var voidElements = map[string]bool{"meta": true, "img": true, "br": true, "hr": true, "link": true, "input": true}

// checkNesting is a small well-formedness check: every non-void element is
// closed, in order.
func checkNesting(t *testing.T, html string, tags []tag) {
	t.Helper()
	if !strings.HasPrefix(html, "<!DOCTYPE html>") {
		t.Error("missing doctype")
	}
	var stack []string
	for _, tg := range tags {
		if voidElements[tg.name] {
			continue
		}
		if !tg.end {
			stack = append(stack, tg.name)
			continue
		}
		if len(stack) == 0 || stack[len(stack)-1] != tg.name {
			t.Fatalf("closing </%s> does not match open elements %v", tg.name, stack)
		}
		stack = stack[:len(stack)-1]
	}
	if len(stack) != 0 {
		t.Errorf("unclosed elements %v", stack)
	}
}

func TestWrite(t *testing.T) {
	withA1 := syntheticInput()
	d := loadA1OrNil(t)
	if d != nil {
		addA1Maps(withA1, d)
	}
	tests := []struct {
		name     string
		in       *Input
		contains []string
	}{
		{"synthetic", syntheticInput(), []string{
			// fused (gated) 0.72 beats the best other bar, fused (concat) 0.70, by 0.02.
			`<tr><td>fused (gated)</td><td class="num">0.720 ± 0.015</td><td class="num">+0.020</td></tr>`,
			`<tr><td>majority class<br><span class="sd">majority</span></td><td class="num">0.143 ± 0.000</td><td class="num">-0.577</td></tr>`,
			`<td class="num best">0.720 <span class="sd">± 0.024</span></td>`,
			`<h2>Modality contribution</h2>`,
		}},
		{"with A1 maps", withA1, nil},
		{"title only", &Input{Title: "empty study"}, nil},
		{"degenerate parts", &Input{
			Title:        "edge cases",
			Summary:      []SummaryRow{{Name: "only", Setting: "", N: 1, Metrics: map[string]MeanSD{"accuracy": {1, math.NaN()}}}},
			Curves:       []Curve{{Title: "one point", Series: []Series{{Name: "fused", X: []float64{0}, Mean: []float64{0.5}}}}},
			Contribution: []Bar{{Name: "drop without image", Mean: -0.04, SD: 0.01}},
			Confusions:   []Confusion{{Title: "1×1", Classes: []string{"invasive cancer"}, Counts: [][]int{{0}}}},
			Maps: []SpatialMap{
				{Title: "one spot", X: []float64{5}, Y: []float64{5}, Values: []float64{0.3}},
				{Title: "all unlabelled", X: []float64{0, 1, 2}, Y: []float64{0, 0, 1}, Categories: []string{"", "", ""}},
			},
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "report.html")
			if err := Write(path, tc.in); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			html := string(b)
			tags := scanTags(t, html)
			checkNesting(t, html, tags)
			sizes := checkImages(t, tags)
			want := len(tc.in.Curves) + len(tc.in.Confusions) + len(tc.in.Maps)
			if len(tc.in.Contribution) > 0 {
				want++
			}
			if len(sizes) != want {
				t.Errorf("%d images, want %d", len(sizes), want)
			}
			if len(sizes) != want {
				return
			}
			// Maps are the last images on the page and at most 1000 px wide.
			for _, s := range sizes[len(sizes)-len(tc.in.Maps):] {
				if s.X > DefaultMapWidth || s.X < 560 {
					t.Errorf("map is %d px wide, want 560..%d", s.X, DefaultMapWidth)
				}
			}
			for _, bad := range []string{"http://", "https://", "<script", "<link", "@import", "url(", "<iframe"} {
				if strings.Contains(html, bad) {
					t.Errorf("report contains %q: not self-contained", bad)
				}
			}
			if !strings.Contains(html, "<h1>"+tc.in.Title+"</h1>") {
				t.Error("title missing")
			}
			if tc.in.ResultsCSV != "" && !strings.Contains(html, `href="`+tc.in.ResultsCSV+`"`) {
				t.Error("results CSV not linked")
			}
			text := stdhtml.UnescapeString(html)
			for _, c := range tc.contains {
				if !strings.Contains(text, c) {
					t.Errorf("report lacks %s", c)
				}
			}
			for _, n := range tc.in.Notes {
				if !strings.Contains(html, escapeText(n)) {
					t.Errorf("note %q missing", n)
				}
			}
		})
	}
	if *demoPath != "" {
		if err := Write(strings.TrimSuffix(*demoPath, ".html")+"_edge.html", tests[3].in); err != nil {
			t.Fatal(err)
		}
		if err := Write(*demoPath, withA1); err != nil {
			t.Fatal(err)
		}
		t.Logf("demo report written to %s", *demoPath)
	}
}

// escapeText escapes s as html/template does for text.
func escapeText(s string) string {
	return strings.NewReplacer("&", "&amp;", "'", "&#39;", "<", "&lt;", ">", "&gt;", `"`, "&#34;").Replace(s)
}

func loadA1OrNil(t *testing.T) (d *a1) {
	t.Helper()
	dir := filepath.Join(testutil.HER2STDir(t), "images", "A1_HE_image_dark.png")
	if _, err := os.Stat(dir); err != nil {
		t.Logf("HER2ST data absent (%v): testing without the A1 maps", err)
		return nil
	}
	return loadA1(t)
}

func TestSummaryBest(t *testing.T) {
	rows := []SummaryRow{
		{Name: "image", Setting: "10 %", N: 5, Metrics: map[string]MeanSD{"balanced_accuracy": {0.5, 0.01}, "loss": {0.9, 0.1}}},
		{Name: "fused", Setting: "10 %", N: 5, Metrics: map[string]MeanSD{"balanced_accuracy": {0.7, 0.02}, "loss": {0.4, 0.1}}},
		{Name: "image", Setting: "100 %", N: 5, Metrics: map[string]MeanSD{"balanced_accuracy": {0.8, 0.01}, "ari": {math.NaN(), 0}}},
		{Name: "fused", Setting: "100 %", N: 5, Metrics: map[string]MeanSD{"balanced_accuracy": {0.75, 0.02}}},
	}
	if got, _ := summaryTable(rows, []string{"loss", "missing", "balanced_accuracy"}); strings.Join(got, ",") != "loss,balanced_accuracy" {
		t.Errorf("selected metrics %v, want loss,balanced_accuracy", got)
	}
	metrics, out := summaryTable(rows, nil)
	if got := strings.Join(metrics, ","); got != "ari,balanced_accuracy,loss" {
		t.Fatalf("metric order %s", got)
	}
	tests := []struct {
		row, col   int
		mean, sd   string
		best       bool
		firstGroup bool
	}{
		{0, 1, "0.500", "± 0.010", false, false},
		{1, 1, "0.700", "± 0.020", true, false},
		{0, 2, "0.900", "± 0.100", false, false},
		{1, 2, "0.400", "± 0.100", true, false}, // loss: lower is better
		{2, 1, "0.800", "± 0.010", true, true},  // best within its own setting
		{3, 1, "0.750", "± 0.020", false, false},
		{2, 0, "n/a", "", false, true},
		{3, 0, "–", "", false, false},
	}
	for _, tc := range tests {
		c := out[tc.row].Cells[tc.col]
		if c.Mean != tc.mean || c.SD != tc.sd || c.Best != tc.best || out[tc.row].FirstOfGroup != tc.firstGroup {
			t.Errorf("row %d col %d: got %+v (first of group %v), want %s %s best=%v",
				tc.row, tc.col, c, out[tc.row].FirstOfGroup, tc.mean, tc.sd, tc.best)
		}
	}
	var buf bytes.Buffer
	if err := Render(&buf, &Input{Title: "t", Summary: rows}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `<td class="num best">0.700 <span class="sd">± 0.020</span></td>`) {
		t.Error("best cell is not bold in the HTML")
	}
}

func TestBadInput(t *testing.T) {
	okMap := func() SpatialMap {
		return SpatialMap{Title: "m", X: []float64{0, 10}, Y: []float64{0, 10}, Categories: []string{"a", "b"}}
	}
	tests := []struct {
		name string
		edit func(in *Input)
		want string
	}{
		{"X/Y lengths", func(in *Input) { m := okMap(); m.Y = m.Y[:1]; in.Maps = []SpatialMap{m} }, "2 X but 1 Y"},
		{"categories length", func(in *Input) { m := okMap(); m.Categories = []string{"a"}; in.Maps = []SpatialMap{m} }, "1 categories for 2 spots"},
		{"values length", func(in *Input) {
			m := okMap()
			m.Categories, m.Values = nil, []float64{1, 2, 3}
			in.Maps = []SpatialMap{m}
		}, "3 values for 2 spots"},
		{"NaN value", func(in *Input) {
			m := okMap()
			m.Categories, m.Values = nil, []float64{1, math.NaN()}
			in.Maps = []SpatialMap{m}
		}, "value of spot 1 is NaN"},
		{"NaN position", func(in *Input) { m := okMap(); m.X[1] = math.NaN(); in.Maps = []SpatialMap{m} }, "spot 1 has position"},
		{"both kinds", func(in *Input) { m := okMap(); m.Values = []float64{1, 2}; in.Maps = []SpatialMap{m} }, "both Categories and Values"},
		{"neither kind", func(in *Input) { m := okMap(); m.Categories = nil; in.Maps = []SpatialMap{m} }, "neither Categories nor Values"},
		{"no spots", func(in *Input) { in.Maps = []SpatialMap{{Title: "m", Categories: []string{}}} }, "no spots"},
		{"missing image", func(in *Input) { m := okMap(); m.Image = "/nonexistent/A1.png"; in.Maps = []SpatialMap{m} }, "/nonexistent/A1.png"},
		{"not an image", func(in *Input) { m := okMap(); m.Image = "report_test.go"; in.Maps = []SpatialMap{m} }, "report_test.go"},
		{"spots outside image", func(in *Input) {
			m := okMap()
			m.Image = writeTinyPNG(t)
			m.X, m.Y = []float64{1e6, 1e6 + 10}, []float64{1e6, 1e6}
			in.Maps = []SpatialMap{m}
		}, "no spot falls inside image"},
		{"curve lengths", func(in *Input) { in.Curves[0].Series[0].Mean = in.Curves[0].Series[0].Mean[:2] }, "5 X, 2 Mean"},
		{"curve NaN", func(in *Input) { in.Curves[1].Series[2].SD[1] = math.NaN() }, "point 1"},
		{"curve without series", func(in *Input) { in.Curves[0].Series = nil }, "no series"},
		{"bar NaN", func(in *Input) { in.Contribution[3].Mean = math.NaN() }, `bar 3 ("fused (concat)")`},
		{"negative sd", func(in *Input) { in.Contribution[0].SD = -1 }, "sd=-1"},
		{"ragged confusion", func(in *Input) { in.Confusions[0].Counts[3] = []int{1, 2} }, "row 3"},
		{"confusion rows", func(in *Input) { in.Confusions[0].Counts = in.Confusions[0].Counts[:2] }, "7 classes but 2 rows"},
		{"negative count", func(in *Input) { in.Confusions[0].Counts[0][1] = -3 }, "negative"},
		{"table row", func(in *Input) { in.Tables[0].Rows[1] = []string{"x"} }, "row 1 has 1 cells for 3 columns"},
		{"infinite metric", func(in *Input) { in.Summary[0].Metrics["ari"] = MeanSD{math.Inf(1), 0} }, "metric ari"},
		{"absolute CSV URL", func(in *Input) { in.ResultsCSV = "https://example.org/r.csv" }, "relative path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := syntheticInput()
			tc.edit(in)
			path := filepath.Join(t.TempDir(), "r.html")
			err := Write(path, in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if _, err := os.Stat(path); err == nil {
				t.Error("a report file was written despite the error")
			}
		})
	}
	if err := Write(filepath.Join(t.TempDir(), "r.html"), nil); err == nil {
		t.Error("nil input accepted")
	}
	if _, err := RenderMap(nil, 100); err == nil {
		t.Error("nil map accepted")
	}
}

func writeTinyPNG(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.png")
	if err := WritePNG(path, image.NewRGBA(image.Rect(0, 0, 20, 10))); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestColorsStable(t *testing.T) {
	fixed := map[string]color.NRGBA{
		"invasive cancer":   {0xD5, 0x5E, 0x00, 0xFF},
		"Invasive Cancer ":  {0xD5, 0x5E, 0x00, 0xFF},
		"adipose tissue":    {0xF0, 0xE4, 0x42, 0xFF},
		"immune infiltrate": {0x00, 0x72, 0xB2, 0xFF},
		"":                  unlabelledColor,
	}
	for name, want := range fixed {
		if got := ClassColor(name); got != want {
			t.Errorf("ClassColor(%q) = %v, want %v", name, got, want)
		}
	}
	seen := map[color.NRGBA]string{}
	for _, c := range HER2STClasses {
		if o, ok := seen[ClassColor(c)]; ok {
			t.Errorf("%q and %q share a colour", c, o)
		}
		seen[ClassColor(c)] = c
	}
	sets := [][]string{
		{"tumour", "stroma", "invasive cancer", "necrosis", "lymphocytes"},
		{"lymphocytes", "invasive cancer", "necrosis", "stroma", "tumour", "tumour"},
	}
	a, b := categoryColors(sets[0]), categoryColors(sets[1])
	distinct := map[color.NRGBA]bool{}
	for _, n := range sets[0] {
		if a[n] != b[n] {
			t.Errorf("colour of %q depends on the order of the categories", n)
		}
		distinct[a[n]] = true
	}
	if len(distinct) != len(sets[0]) {
		t.Errorf("%d distinct colours for %d categories", len(distinct), len(sets[0]))
	}
	if a["invasive cancer"] != fixed["invasive cancer"] {
		t.Error("HER2ST colour changed by the presence of other names")
	}
	if ClassColor("tumour") != ClassColor("tumour") || ClassColor("tumour") == ClassColor("stroma") && ClassColor("stroma") == ClassColor("necrosis") {
		t.Error("hashed colours unstable or degenerate")
	}
	if got := legendOrder([]string{"zeta", "", "undetermined", "invasive cancer", "alpha"}, []string{"undetermined"}); strings.Join(got, "|") != "undetermined|invasive cancer|alpha|zeta|" {
		t.Errorf("legend order %q", got)
	}
}

func TestRenderMapPlacesSpots(t *testing.T) {
	tests := []struct {
		name string
		m    SpatialMap
	}{
		{"categories", SpatialMap{
			X: []float64{0, 400, 800, 0, 400, 800}, Y: []float64{0, 0, 0, 400, 400, 400},
			Categories:     []string{"invasive cancer", "adipose tissue", "immune infiltrate", "", "breast glands", "undetermined"},
			SpotDiameterPx: 200,
		}},
		{"values with affine", SpatialMap{
			X: []float64{0, 400, 800, 0, 400, 800}, Y: []float64{0, 0, 0, 400, 400, 400},
			Values:         []float64{0, 0.2, 0.4, 0.6, 0.8, 1},
			FromFullres:    section.Affine{A: 0.5, D: 0.5, TX: 7, TY: 3},
			SpotDiameterPx: 100,
		}},
		{"estimated diameter", SpatialMap{
			X: []float64{0, 400, 800, 0, 400, 800}, Y: []float64{0, 0, 0, 400, 400, 400},
			Values: []float64{0, 0.2, 0.4, 0.6, 0.8, 1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, err := RenderMap(&tc.m, 600)
			if err != nil {
				t.Fatal(err)
			}
			if w := img.Bounds().Dx(); w != 600 {
				t.Fatalf("width %d, want 600", w)
			}
			// Find each spot's centre by colour: the middle of a spot has
			// the fill colour blended over the light background (72 % for
			// categories, 92 % for values).
			bg := color.NRGBA{0xFA, 0xFA, 0xFA, 0xFF}
			for i := range tc.m.X {
				var want color.NRGBA
				if tc.m.Categories != nil {
					if tc.m.Categories[i] == "" {
						continue // hollow
					}
					want = ClassColor(tc.m.Categories[i])
				} else {
					want = mix(Viridis(tc.m.Values[i]), bg, 0.92)
				}
				if tc.m.Categories != nil {
					want = mix(want, bg, 0.72)
				}
				if !findColor(img, want, 3) {
					t.Errorf("spot %d: colour %v not found", i, want)
				}
			}
		})
	}
}

func mix(c, bg color.NRGBA, a float64) color.NRGBA {
	f := func(x, y uint8) uint8 { return uint8(math.Round(float64(x)*a + float64(y)*(1-a))) }
	return color.NRGBA{f(c.R, bg.R), f(c.G, bg.G), f(c.B, bg.B), 0xFF}
}

// findColor reports whether some pixel is within tol of c in every channel.
func findColor(img image.Image, c color.NRGBA, tol int) bool {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			p := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			if absDiff(p.R, c.R) <= tol && absDiff(p.G, c.G) <= tol && absDiff(p.B, c.B) <= tol {
				return true
			}
		}
	}
	return false
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func TestBoxDownscale(t *testing.T) {
	// 4×2 source: columns 0,1 black/white alternating, alpha in the last.
	src := image.NewNRGBA(image.Rect(0, 0, 6, 2))
	set := func(x, y int, c color.NRGBA) { src.SetNRGBA(x, y, c) }
	for y := range 2 {
		set(0, y, color.NRGBA{0, 0, 0, 255})
		set(1, y, color.NRGBA{255, 255, 255, 255})
		set(2, y, color.NRGBA{200, 100, 0, 255})
		set(3, y, color.NRGBA{200, 100, 0, 255})
		set(4, y, color.NRGBA{0, 0, 0, 0}) // transparent → white
		set(5, y, color.NRGBA{0, 0, 0, 0})
	}
	tests := []struct {
		crop       image.Rectangle
		outW, outH int
		want       []color.RGBA
	}{
		{image.Rect(0, 0, 6, 2), 3, 1, []color.RGBA{{128, 128, 128, 255}, {200, 100, 0, 255}, {255, 255, 255, 255}}},
		{image.Rect(2, 0, 4, 2), 1, 1, []color.RGBA{{200, 100, 0, 255}}},
		{image.Rect(0, 0, 6, 2), 6, 2, nil}, // identity
	}
	for _, tc := range tests {
		got := boxDownscale(src, tc.crop, tc.outW, tc.outH)
		if got.Bounds().Dx() != tc.outW || got.Bounds().Dy() != tc.outH {
			t.Fatalf("size %v", got.Bounds())
		}
		for i, w := range tc.want {
			if c := got.RGBAAt(i, 0); c != w {
				t.Errorf("crop %v → %d×%d: pixel %d = %v, want %v", tc.crop, tc.outW, tc.outH, i, c, w)
			}
		}
		if tc.want == nil && got.RGBAAt(2, 1) != (color.RGBA{200, 100, 0, 255}) {
			t.Errorf("identity changed a pixel: %v", got.RGBAAt(2, 1))
		}
	}
}

func TestViridis(t *testing.T) {
	tests := []struct {
		t    float64
		want color.NRGBA
	}{
		{0, color.NRGBA{0x44, 0x01, 0x54, 0xFF}},
		{-3, color.NRGBA{0x44, 0x01, 0x54, 0xFF}},
		{1, color.NRGBA{0xfd, 0xe7, 0x25, 0xFF}},
		{0.5, color.NRGBA{0x1f, 0xa1, 0x87, 0xFF}},
		{math.NaN(), color.NRGBA{0x80, 0x80, 0x80, 0xFF}},
	}
	for _, tc := range tests {
		if got := Viridis(tc.t); got != tc.want {
			t.Errorf("Viridis(%v) = %v, want %v", tc.t, got, tc.want)
		}
	}
}

func TestA1Map(t *testing.T) {
	d := loadA1(t)
	if len(d.x) < 300 {
		t.Fatalf("%d A1 spots", len(d.x))
	}
	m := &SpatialMap{Title: "A1", Image: d.image, FromFullres: section.Scale(0.287604), SpotDiameterPx: 31.3,
		X: d.x, Y: d.y, Categories: d.labels}
	img, err := RenderMap(m, 800)
	if err != nil {
		t.Fatal(err)
	}
	if w := img.Bounds().Dx(); w != 800 {
		t.Errorf("width %d, want 800", w)
	}
	// The invasive-cancer fill must show up over the tissue.
	if !findColor(img, ClassColor("invasive cancer"), 60) {
		t.Error("no invasive-cancer coloured pixel in the A1 map")
	}
	out := filepath.Join(t.TempDir(), "a1.png")
	if err := WritePNG(out, img); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if cfg, err := png.DecodeConfig(f); err != nil || cfg.Width != 800 {
		t.Errorf("written PNG: %v, %+v", err, cfg)
	}
}

func TestTableAlignment(t *testing.T) {
	tests := []struct {
		cell string
		num  bool
	}{
		{"0.912", true}, {"1528", true}, {"0.71 ± 0.02", true}, {"45 %", true}, {"-1e-3", true},
		{"invasive cancer", false}, {"A1", false}, {"", false}, {"0.7 (n=3)", false},
	}
	for _, tc := range tests {
		if got := numeric(tc.cell); got != tc.num {
			t.Errorf("numeric(%q) = %v, want %v", tc.cell, got, tc.num)
		}
	}
	in := &Input{Title: "t", Tables: []Table{{
		Title:  "LOSO",
		Header: []string{"held-out section", "balanced accuracy", "note"},
		Rows:   [][]string{{"A1", "0.701 ± 0.020", "–"}, {"B1", "–", "no image"}},
	}}}
	var buf bytes.Buffer
	if err := Render(&buf, in); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{
		`<th>held-out section</th><th class="num">balanced accuracy</th><th>note</th>`,
		`<tr><td>A1</td><td class="num">0.701 ± 0.020</td><td>–</td></tr>`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("table HTML lacks %s", want)
		}
	}
}

func TestWrapWords(t *testing.T) {
	chars := func(s string) float64 { return float64(len(s)) }
	tests := []struct {
		in    string
		width float64
		want  string
	}{
		{"fused (gated)", 20, "fused (gated)"},
		{"expression only", 11, "expression|only"},
		{"A1: out-of-fold prediction, fused (seed 0)", 20, "A1: out-of-fold|prediction, fused|(seed 0)"},
		{"image only\nimage conv4 (inpaint pretrained)", 16, "image only|image conv4|(inpaint|pretrained)"},
		{"supercalifragilistic word", 8, "supercal|ifragili|stic|word"},
		{"image-pretrained [inpaint+colorize+contrastive] / logreg", 20, "image-pretrained|[inpaint+colorize+|contrastive] /|logreg"},
		{"", 10, ""},
	}
	for _, tc := range tests {
		if got := strings.Join(wrapWords(tc.in, tc.width, chars), "|"); got != tc.want {
			t.Errorf("wrapWords(%q, %v) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}
