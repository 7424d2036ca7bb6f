package study

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Synthetic legacy-ST sections on an 8 × 8 array: the class of a spot
// follows its position, marker genes and the image colour follow the class.
const (
	synthSide  = 8
	synthGenes = 40
	synthPitch = 20 // full-resolution pixels between array positions
)

var synthClasses = []string{"invasive cancer", "connective tissue", "adipose tissue", "undetermined"}

func synthClass(x, y int) int {
	switch {
	case x <= 4 && y <= 4:
		return 0
	case x > 4 && y > 5:
		return 2
	case x == 8 && y == 1:
		return 3
	}
	return 1
}

// writeSynthData writes sections into dir in the her2st layout; withImage
// and labelled name the sections that get an image and labels.
func writeSynthData(t *testing.T, dir string, names []string, withImage, labelled map[string]bool) {
	t.Helper()
	for _, sub := range []string{"counts", "spots", "labels", "images"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var sf strings.Builder
	sf.WriteString("section\timage\tscale\tspot_diameter_px\twidth\theight\tfullres_width\tfullres_height\tmapping\ta\tb\tc\td\ttx\tty\n")
	size := synthSide*synthPitch + synthPitch
	for si, name := range names {
		rng := rand.New(rand.NewPCG(uint64(si), 11))
		var counts, spots, labels bytes.Buffer
		for g := 0; g < synthGenes; g++ {
			fmt.Fprintf(&counts, "\tG%d", g)
		}
		counts.WriteString("\n")
		spots.WriteString("x\ty\tnew_x\tnew_y\tpixel_x\tpixel_y\tselected\n")
		labels.WriteString("Row.names\tx\ty\tpixel_x\tpixel_y\tlabel\n")
		img := image.NewRGBA(image.Rect(0, 0, size, size))
		for x := 1; x <= synthSide; x++ {
			for y := 1; y <= synthSide; y++ {
				c := synthClass(x, y)
				fmt.Fprintf(&counts, "%dx%d", x, y)
				for g := 0; g < synthGenes; g++ {
					lambda := 2.0
					if g/5 == c { // genes 5c..5c+4 mark class c
						lambda = 12
					}
					if g >= 30 { // section-specific genes (batch effect)
						lambda += float64(si)
					}
					fmt.Fprintf(&counts, "\t%d", poisson(rng, lambda))
				}
				counts.WriteString("\n")
				px, py := float64((x-1)*synthPitch+synthPitch), float64((y-1)*synthPitch+synthPitch)
				fmt.Fprintf(&spots, "%d\t%d\t%d.000\t%d.000\t%g\t%g\t1\n", x, y, x, y, px, py)
				fmt.Fprintf(&labels, "r%dx%d\t%d.000\t%d.000\t0\t0\t%s\n", x, y, x, y, synthClasses[c])
				base := []color.RGBA{{120, 60, 160, 255}, {230, 140, 190, 255}, {245, 245, 245, 255}, {90, 90, 90, 255}}[c]
				for dy := -synthPitch / 2; dy < synthPitch/2; dy++ {
					for dx := -synthPitch / 2; dx < synthPitch/2; dx++ {
						n := uint8(rng.IntN(30))
						img.Set(int(px)+dx, int(py)+dy, color.RGBA{base.R - n/2, base.G - n/2, base.B - n/3, 255})
					}
				}
			}
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(counts.Bytes())
		zw.Close()
		mustWrite(t, filepath.Join(dir, "counts", name+".tsv.gz"), gz.Bytes())
		mustWrite(t, filepath.Join(dir, "spots", name+"_selection.tsv"), spots.Bytes())
		if labelled[name] {
			mustWrite(t, filepath.Join(dir, "labels", name+"_labeled_coordinates.tsv"), labels.Bytes())
		}
		if withImage[name] {
			var pb bytes.Buffer
			if err := png.Encode(&pb, img); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(dir, "images", name+".png"), pb.Bytes())
			fmt.Fprintf(&sf, "%s\timages/%s.png\t1\t%d\t%d\t%d\t%d\t%d\tscale\t1\t0\t0\t1\t0\t0\n", name, name, synthPitch/2, size, size, size, size)
		}
	}
	mustWrite(t, filepath.Join(dir, "scalefactors.tsv"), []byte(sf.String()))
}

func poisson(rng *rand.Rand, lambda float64) int {
	// Knuth's method; fine for the small rates used here.
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func synthConfig(t *testing.T) *Config {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	names := []string{"S1", "S2", "S3", "S4"}
	writeSynthData(t, data, names, map[string]bool{"S1": true}, map[string]bool{"S1": true, "S2": true, "S3": true})
	js := fmt.Sprintf(`{
		"name": "synth", "data_dir": %q, "out": %q,
		"targets": ["S1"], "loso": ["S2", "S3"], "pretrain_images": ["S1"], "pretrain_expr": ["S1", "S2", "S3", "S4"],
		"patch": {"size": 8}, "hvg": 30, "pca": 5,
		"pretrain": {"image": {"steps": 2, "batch": 8, "width": 4, "depth": 2},
		             "expr": {"steps": 2, "batch": 16, "hidden": 8, "latent": 4}},
		"context": true, "task_ablation": true,
		"fractions": [0.5, 1], "folds": 2, "seeds": 1}`, data, filepath.Join(dir, "out"))
	cfg, err := Parse(strings.NewReader(js), "synth")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRunSynthetic runs the whole study on tiny synthetic sections: every
// output is written, the easy problem is solved by the expression and image
// baselines, and a second run continues the first (no run repeated).
func TestRunSynthetic(t *testing.T) {
	cfg := synthConfig(t)
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"invasive cancer", "connective tissue", "adipose tissue"}; strings.Join(res.Classes, "|") != strings.Join(want, "|") {
		t.Errorf("classes %v, want %v (undetermined excluded)", res.Classes, want)
	}
	for _, p := range []string{res.ResultsCSV, res.SummaryCSV, res.Report} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("output %s missing or empty: %v", p, err)
		}
	}
	rows, _, err := ReadResults(res.ResultsCSV)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(res.Rows) || len(rows) == 0 {
		t.Fatalf("results.csv has %d rows, Run returned %d", len(rows), len(res.Rows))
	}
	settings := map[string]bool{}
	for _, r := range rows {
		settings[r.Setting] = true
	}
	for _, s := range []string{"majority", "expr-pca", "image-stats", "expr-random", "image-random", "fused-concat-random",
		"fused-gated-random", "expr-pretrained", "image-pretrained", "image-pretrained-inpaint", "fused-gated-pretrained-context",
		"expr-cross", "image-cross", "fused-concat-cross", "fused-gated-cross"} {
		if !settings[s] {
			t.Errorf("no rows for setting %s", s)
		}
	}
	score := func(eval, setting, head string, frac float64) float64 {
		for _, s := range res.Summary {
			if s.Eval == eval && (s.Section == "S1" || s.Section == "all") && s.Setting == setting && s.Head == head && s.Fraction == frac {
				return s.Metrics["balanced_accuracy"].Mean
			}
		}
		t.Fatalf("no summary for %s %s %s %g", eval, setting, head, frac)
		return 0
	}
	for _, c := range []struct {
		eval, setting, head string
		min                 float64
	}{
		{"kfold", "expr-pca", "logreg", 0.9},
		{"kfold", "image-stats", "logreg", 0.9},
		{"loso", "expr-pca", "logreg", 0.9},
	} {
		if got := score(c.eval, c.setting, c.head, 1); got < c.min {
			t.Errorf("%s %s/%s: balanced accuracy %.3f, want ≥ %.2f", c.eval, c.setting, c.head, got, c.min)
		}
	}
	if got := score("kfold", "majority", "majority", 1); got > 0.34 {
		t.Errorf("majority class has balanced accuracy %.3f, want 1/3", got)
	}
	if len(res.OOF) == 0 {
		t.Error("no out-of-fold predictions kept for the maps")
	}

	// A second run finds every run done and appends nothing.
	before, _ := os.ReadFile(res.ResultsCSV)
	res2, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(res.ResultsCSV)
	if !bytes.Equal(before, after) {
		t.Error("a rerun of a finished study changed results.csv")
	}
	if len(res2.Rows) != len(res.Rows) {
		t.Errorf("rerun reports %d rows, first run %d", len(res2.Rows), len(res.Rows))
	}
}

func TestRunErrors(t *testing.T) {
	cfg := synthConfig(t)
	bad := *cfg
	bad.DataDir = filepath.Join(t.TempDir(), "nowhere")
	if _, err := Run(context.Background(), &bad, nil); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("missing data dir: %v", err)
	}
	bad = *cfg
	bad.Targets = []string{"S2"} // labelled but no image
	if _, err := Run(context.Background(), &bad, nil); err == nil || !strings.Contains(err.Error(), "no H&E image") {
		t.Errorf("target without image: %v", err)
	}
	bad = *cfg
	bad.Folds = 1
	if _, err := Run(context.Background(), &bad, nil); err == nil {
		t.Error("invalid config: no error")
	}
}

// TestRunSameAnswerTwice runs the synthetic study twice from scratch, with
// 2 and 3 evaluation workers: results.csv must be byte-identical apart
// from the wall-time column, and summary.csv byte-identical.
func TestRunSameAnswerTwice(t *testing.T) {
	var results, summaries [2][]byte
	for i, workers := range []int{2, 3} {
		cfg := synthConfig(t)
		cfg.Workers = workers
		res, err := Run(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if results[i], err = os.ReadFile(res.ResultsCSV); err != nil {
			t.Fatal(err)
		}
		if summaries[i], err = os.ReadFile(res.SummaryCSV); err != nil {
			t.Fatal(err)
		}
	}
	withoutSeconds := func(b []byte) []string {
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if j := strings.LastIndexByte(l, ','); j >= 0 {
				lines[i] = l[:j]
			}
		}
		return lines
	}
	a, b := withoutSeconds(results[0]), withoutSeconds(results[1])
	if len(a) != len(b) || len(a) < 3 {
		t.Fatalf("results.csv has %d and %d lines", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("results.csv line %d differs between two runs:\n%s\n%s", i+1, a[i], b[i])
		}
	}
	if !bytes.Equal(summaries[0], summaries[1]) {
		t.Error("summary.csv differs between two runs")
	}
}
