package section

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
)

// TestHER2STLabelCounts checks the label join against the README table.
func TestHER2STLabelCounts(t *testing.T) {
	dir := testutil.HER2ST(t, "counts/A1.tsv.gz")
	const (
		inv = "invasive cancer"
		cis = "cancer in situ"
		imm = "immune infiltrate"
		bg  = "breast glands"
		con = "connective tissue"
		adi = "adipose tissue"
		und = "undetermined"
	)
	tests := []struct {
		name   string
		usable int
		counts map[string]int
	}{
		{"A1", 346, map[string]int{inv: 282, cis: 21, imm: 2, con: 24, adi: 12, und: 5}},
		{"B1", 295, map[string]int{inv: 63, bg: 41, con: 95, adi: 70, und: 26}},
		{"C1", 176, map[string]int{inv: 127, con: 37, adi: 3, und: 9}},
		{"D1", 306, map[string]int{inv: 139, imm: 7, con: 109, und: 51}},
		{"E1", 587, map[string]int{inv: 340, imm: 177, con: 17, und: 53}},
		{"F1", 691, map[string]int{inv: 577, imm: 26, con: 56, und: 32}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ReadLegacyST(HER2ST(dir, tc.name), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(s.Labelled()); got != tc.usable {
				t.Errorf("labelled spots = %d, want %d", got, tc.usable)
			}
			// README: in these six sections every counts row has a label.
			if s.NumSpots() != tc.usable {
				t.Errorf("spots = %d, want %d (every counts row labelled)", s.NumSpots(), tc.usable)
			}
			got := s.LabelCounts()
			for k, v := range tc.counts {
				if got[k] != v {
					t.Errorf("%s: %d, want %d", k, got[k], v)
				}
			}
			if len(got) != len(tc.counts) {
				t.Errorf("classes %v, want %v", got, tc.counts)
			}
			if s.Batch != tc.name || s.Name != tc.name {
				t.Errorf("name/batch = %q/%q", s.Name, s.Batch)
			}
		})
	}
}

// TestHER2STImages checks the image references and that A1's labelled spots
// all map inside its image.
func TestHER2STImages(t *testing.T) {
	dir := testutil.HER2ST(t, "counts/A1.tsv.gz")
	tests := []struct {
		name   string
		w, h   int
		diam   float64
		hasImg bool
	}{
		{"A1", 2000, 2138, 31.3, true},
		{"C2", 9274, 9911, 145.3, true},
		{"B1", 0, 0, 0, false},
	}
	for _, tc := range tests {
		s, err := ReadLegacyST(HER2ST(dir, tc.name), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !tc.hasImg {
			if s.Image != nil {
				t.Errorf("%s: image %+v, want none", tc.name, s.Image)
			}
			continue
		}
		im := s.Image
		if im == nil || im.Width != tc.w || im.Height != tc.h || im.SpotDiameterPx != tc.diam {
			t.Fatalf("%s: image %+v, want %d×%d diameter %v", tc.name, im, tc.w, tc.h, tc.diam)
		}
		for i, sp := range s.Spots {
			x, y := im.FromFullres.Apply(sp.X, sp.Y)
			r := im.SpotDiameterPx / 2
			if x-r < 0 || y-r < 0 || x+r > float64(im.Width) || y+r > float64(im.Height) {
				t.Errorf("%s: spot %d (%s) at (%.0f,%.0f) leaves the image", tc.name, i, sp.ID, x, y)
			}
		}
	}
}

type expected struct {
	Spots       []string          `json:"spots"`
	Genes       []string          `json:"genes"`
	RowSums     []float64         `json:"row_sums"`
	NNZ         int               `json:"nnz"`
	X00         float32           `json:"x_0_0"`
	X37         float32           `json:"x_3_7"`
	Labels      map[string]string `json:"labels"`
	LabelCounts map[string]int    `json:"label_counts"`
}

func loadExpected(t *testing.T) expected {
	t.Helper()
	var e expected
	testutil.ReadJSON(t, "testdata/st/expected.json", &e)
	return e
}

// TestReadLegacySTFixture checks the reader against values numpy computed
// from the same fixture (testdata/st/gen.py).
func TestReadLegacySTFixture(t *testing.T) {
	e := loadExpected(t)
	s, err := Open("testdata/st/counts/A1.tsv.gz", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "A1" || s.NumSpots() != len(e.Spots) || len(s.Genes) != len(e.Genes) || s.Counts.NNZ() != e.NNZ {
		t.Fatalf("got %s %d spots %d genes nnz %d; want A1 %d %d %d", s.Name, s.NumSpots(), len(s.Genes), s.Counts.NNZ(), len(e.Spots), len(e.Genes), e.NNZ)
	}
	sums := s.Counts.RowSums()
	for i, id := range e.Spots {
		if s.Spots[i].ID != id || sums[i] != e.RowSums[i] {
			t.Errorf("row %d: %s sum %v, want %s %v", i, s.Spots[i].ID, sums[i], id, e.RowSums[i])
		}
		if s.Labels[i] != e.Labels[id] {
			t.Errorf("spot %s label %q, want %q", id, s.Labels[i], e.Labels[id])
		}
	}
	for j, g := range e.Genes {
		if s.Genes[j] != g {
			t.Fatalf("gene %d = %q, want %q", j, s.Genes[j], g)
		}
	}
	if s.Counts.At(0, 0) != e.X00 || s.Counts.At(3, 7) != e.X37 {
		t.Errorf("X[0,0]=%v X[3,7]=%v, want %v %v", s.Counts.At(0, 0), s.Counts.At(3, 7), e.X00, e.X37)
	}
	// Spot 11x13: x=11 y=13, pixel 2148.35, 2611.87 (spots/A1_selection.tsv line 2).
	for _, sp := range s.Spots {
		if sp.ID == "11x13" && (sp.Col != 11 || sp.Row != 13 || sp.X != 2148.35 || sp.Y != 2611.87) {
			t.Errorf("spot 11x13 = %+v", sp)
		}
	}
	if s.Image != nil {
		t.Errorf("fixture has no scale factors, got image %+v", s.Image)
	}
}

// fixture copies the A1 fixture into a temp dir and applies edits: a map
// from relative path to a function rewriting its (decompressed) content.
func fixture(t *testing.T, edit map[string]func(string) string) string {
	t.Helper()
	dir := t.TempDir()
	for _, rel := range []string{"counts/A1.tsv.gz", "spots/A1_selection.tsv", "labels/A1_labeled_coordinates.tsv"} {
		b := testutil.ReadFile(t, filepath.Join("testdata/st", rel))
		if f := edit[rel]; f != nil {
			b = []byte(f(string(b)))
		}
		testutil.WriteFile(t, filepath.Join(dir, rel), b)
	}
	return dir
}

// replaceLine replaces line n (0-based) of s with f(line).
func replaceLine(n int, f func(string) string) func(string) string {
	return func(s string) string {
		lines := strings.Split(s, "\n")
		lines[n] = f(lines[n])
		return strings.Join(lines, "\n")
	}
}

func TestReadLegacySTBadInput(t *testing.T) {
	const counts, spots, labels = "counts/A1.tsv.gz", "spots/A1_selection.tsv", "labels/A1_labeled_coordinates.tsv"
	tests := []struct {
		name string
		edit map[string]func(string) string
		post func(t *testing.T, dir string) // further damage after writing
		file string                         // file the error must name
		want []string                       // substrings of the error
	}{
		{name: "truncated gzip", post: func(t *testing.T, dir string) {
			p := filepath.Join(dir, counts)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, file: counts, want: []string{"truncated or corrupt gzip"}},
		{name: "not gzip", post: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, counts), []byte("\tA\nx\t1\n"), 0o644)
		}, file: counts, want: []string{"not gzip"}},
		{name: "missing count column", edit: map[string]func(string) string{counts: replaceLine(3, func(l string) string {
			return l[:strings.LastIndexByte(l, '\t')]
		})}, file: counts, want: []string{":4:", "49 counts, header has 50 genes"}},
		{name: "extra count column", edit: map[string]func(string) string{counts: replaceLine(2, func(l string) string { return l + "\t3" })},
			file: counts, want: []string{":3:", "more than 50 counts"}},
		{name: "non-numeric count", edit: map[string]func(string) string{counts: replaceLine(5, func(l string) string {
			return strings.Replace(l, "\t0", "\tabc", 1)
		})}, file: counts, want: []string{":6:", `"abc" is not a non-negative count`}},
		{name: "NaN count", edit: map[string]func(string) string{counts: replaceLine(1, func(l string) string {
			return strings.Replace(l, "\t0", "\tNaN", 1)
		})}, file: counts, want: []string{":2:", `"NaN" is not a non-negative count`}},
		{name: "negative count", edit: map[string]func(string) string{counts: replaceLine(2, func(l string) string {
			return strings.Replace(l, "\t0", "\t-1", 1)
		})}, file: counts, want: []string{":3:", `"-1" is not a non-negative count`, "column"}},
		{name: "counts row without spot-file row", edit: map[string]func(string) string{counts: replaceLine(4, func(l string) string {
			return "99x99" + l[strings.IndexByte(l, '\t'):]
		})}, file: counts, want: []string{":5:", `"99x99" has no row in spot file`}},
		{name: "duplicated spot id", edit: map[string]func(string) string{counts: func(s string) string {
			lines := strings.Split(s, "\n")
			lines[2] = lines[1]
			return strings.Join(lines, "\n")
		}}, file: counts, want: []string{":3:", "duplicated spot id", "first on line 2"}},
		{name: "spot file missing column", edit: map[string]func(string) string{spots: func(s string) string {
			return strings.Replace(s, "pixel_y", "pix_y", 1)
		}}, file: spots, want: []string{`no "pixel_y" column`}},
		{name: "spot file short row", edit: map[string]func(string) string{spots: replaceLine(3, func(l string) string {
			return l[:strings.LastIndexByte(l, '\t')]
		})}, file: spots, want: []string{":4:", "6 fields, header has 7"}},
		{name: "spot file bad pixel", edit: map[string]func(string) string{spots: replaceLine(2, func(l string) string {
			f := strings.Split(l, "\t")
			f[4] = "NaN"
			return strings.Join(f, "\t")
		})}, file: spots, want: []string{":3:", "pixel_x", "not a finite number"}},
		{name: "spot file duplicated spot", edit: map[string]func(string) string{spots: func(s string) string {
			lines := strings.Split(s, "\n")
			return strings.Join(append(lines[:len(lines)-1], lines[1], ""), "\n")
		}}, file: spots, want: []string{"already on line 2"}},
		{name: "label for unknown coordinates", edit: map[string]func(string) string{labels: replaceLine(1, func(l string) string {
			f := strings.Split(l, "\t")
			f[1] = "30.5"
			return strings.Join(f, "\t")
		})}, file: labels, want: []string{":2:", "matches no new_x/new_y"}},
		{name: "label twice", edit: map[string]func(string) string{labels: func(s string) string {
			lines := strings.Split(s, "\n")
			return strings.Join(append(lines[:len(lines)-1], lines[1], ""), "\n")
		}}, file: labels, want: []string{"already labelled on line 2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixture(t, tc.edit)
			if tc.post != nil {
				tc.post(t, dir)
			}
			_, err := ReadLegacyST(filepath.Join(dir, counts), Options{})
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, filepath.Join(dir, tc.file)) && !strings.Contains(msg, filepath.Join(dir, "counts", "..", tc.file)) {
				t.Errorf("error does not name %s: %v", tc.file, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %v", w, msg)
				}
			}
		})
	}
}

// TestLabelsNADropped checks that NA-coordinate label rows are dropped (F1).
func TestLabelsNADropped(t *testing.T) {
	dir := fixture(t, map[string]func(string) string{"labels/A1_labeled_coordinates.tsv": func(s string) string {
		return s + "1379x6121\tNA\tNA\tNA\tNA\timmune infiltrate\n"
	}})
	s, err := ReadLegacyST(filepath.Join(dir, "counts/A1.tsv.gz"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := loadExpected(t)
	if len(s.Labelled()) != len(e.Labels) {
		t.Errorf("labelled %d, want %d", len(s.Labelled()), len(e.Labels))
	}
}

func TestImageOverrideAndScaleFactors(t *testing.T) {
	dir := fixture(t, nil)
	// A tiny image far smaller than the spot coordinates.
	imgPath := filepath.Join(dir, "small.png")
	var buf bytes.Buffer
	png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 40, 30)))
	os.WriteFile(imgPath, buf.Bytes(), 0o644)
	s, err := ReadLegacyST(filepath.Join(dir, "counts/A1.tsv.gz"), Options{Image: imgPath})
	if err != nil {
		t.Fatal(err)
	}
	im := s.Image
	// Full-res pitch of A1 is 6954/32 ≈ 217 px (README), diameter ≈ 109.
	if im.Width != 40 || im.Height != 30 || im.FromFullres != Scale(1) || im.SpotDiameterPx < 100 || im.SpotDiameterPx > 118 {
		t.Errorf("image %+v", im)
	}
	sf := "section\timage\tscale\tspot_diameter_px\twidth\theight\tfullres_width\tfullres_height\tmapping\ta\tb\tc\td\ttx\tty\n" +
		"A1\tsmall.png\t0.5\t10\t40\t31\t80\t60\tscale\t0.5\t0\t0\t0.5\t0\t0\n"
	os.WriteFile(filepath.Join(dir, "scalefactors.tsv"), []byte(sf), 0o644)
	_, err = ReadLegacyST(filepath.Join(dir, "counts/A1.tsv.gz"), Options{})
	if err == nil || !strings.Contains(err.Error(), "is 40×30 but scale factors say 40×31") {
		t.Errorf("size mismatch: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "scalefactors.tsv"), []byte(strings.Replace(sf, "\t31\t", "\t30\t", 1)), 0o644)
	s, err = ReadLegacyST(filepath.Join(dir, "counts/A1.tsv.gz"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Image.Path != imgPath || s.Image.SpotDiameterPx != 10 || s.Image.FromFullres.A != 0.5 {
		t.Errorf("image %+v", s.Image)
	}
	// An override is a full-resolution image even when scale factors exist:
	// identity mapping, diameter 10 px / scale 0.5 = 20 full-res px.
	s, err = ReadLegacyST(filepath.Join(dir, "counts/A1.tsv.gz"), Options{Image: imgPath})
	if err != nil {
		t.Fatal(err)
	}
	if s.Image.FromFullres != Scale(1) || s.Image.SpotDiameterPx != 20 {
		t.Errorf("override with scale factors: %+v", s.Image)
	}
	os.WriteFile(filepath.Join(dir, "scalefactors.tsv"), []byte(strings.Replace(sf, "\t0.5\t0\t0\t0.5", "\tx\t0\t0\t0.5", 1)), 0o644)
	_, err = ReadLegacyST(filepath.Join(dir, "counts/A1.tsv.gz"), Options{})
	if err == nil || !strings.Contains(err.Error(), "scalefactors.tsv:2: column a") {
		t.Errorf("bad scale factor: %v", err)
	}
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sr", "outs"), 0o755)
	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)
	for _, f := range []string{"a.h5ad", "b.tsv", "c.tsv.gz", "d.csv"} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	tests := []struct {
		path string
		want Format
		err  string
	}{
		{"a.h5ad", FormatH5AD, ""},
		{"b.tsv", FormatLegacyST, ""},
		{"c.tsv.gz", FormatLegacyST, ""},
		{"sr", FormatSpaceRanger, ""},
		{"empty", "", "no filtered_feature_bc_matrix"},
		{"d.csv", "", "unknown format"},
		{"missing", "", "no such file"},
	}
	for _, tc := range tests {
		got, err := Detect(filepath.Join(dir, tc.path))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.path, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %v %v, want %v", tc.path, got, err, tc.want)
		}
	}
}

// TestReadAllHER2ST reads all 36 sections with two workers (the timing and
// memory budget is measured outside the test with /usr/bin/time).
func TestReadAllHER2ST(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	dir := testutil.HER2ST(t, "counts/A1.tsv.gz")
	ss, err := ReadHER2ST(t.Context(), dir, nil, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.NumSpots() < 176 || s.NumSpots() > 712 || len(s.Genes) < 14861 || len(s.Genes) > 15842 {
			t.Errorf("%s: %d spots %d genes outside the README ranges", s.Name, s.NumSpots(), len(s.Genes))
		}
	}
}
