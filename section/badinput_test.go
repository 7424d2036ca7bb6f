package section_test

// One table of broken inputs across every reader (legacy ST counts, spot
// file and labels; Space Ranger 10x .h5, MTX, positions, scale factors and
// images; AnnData .h5ad; label files) and the stages that see a section
// next (patch extraction, gene matching, classification). Each case is
// made in a temporary directory from the committed fixtures and must be
// answered by an error, or a logged warning, that names the file and says
// what is wrong. The cases and their messages are the table in
// docs/robustness.md, rewritten by
//
//	go test ./section -run TestBadInput -update

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/classify"
	"github.com/spotfuse/spotfuse/internal/testutil"
	"github.com/spotfuse/spotfuse/patch"
	"github.com/spotfuse/spotfuse/pretrain"
	"github.com/spotfuse/spotfuse/section"
)

var update = flag.Bool("update", false, "rewrite the bad-input table in docs/robustness.md")

// truncate keeps the first fraction of a file's bytes.
func truncate(t *testing.T, path string, frac float64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b[:int(float64(len(b))*frac)], 0o644); err != nil {
		t.Fatal(err)
	}
}

// lines applies fn to every line (without its newline); fn returns the
// replacement lines (none to drop it).
func lines(fn func(i int, l string) []string) func(string) string {
	return func(s string) string {
		var out []string
		for i, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
			out = append(out, fn(i, l)...)
		}
		return strings.Join(out, "\n") + "\n"
	}
}

// rows rewrites every line of a text but its header with fn.
func rows(fn func(string) string) func(string) string {
	return lines(func(i int, l string) []string {
		if i == 0 {
			return []string{l}
		}
		return []string{fn(l)}
	})
}

// openEditedLabels rewrites the Visium fixture's labels.csv with edit and
// opens the section with it, returning the error and the labels' path.
func openEditedLabels(t *testing.T, fx fixtures, edit func(string) string) (error, string) {
	t.Helper()
	p := filepath.Join(fx.visium, "labels.csv")
	testutil.EditFile(t, p, edit)
	_, err := section.Open(fx.visium, section.Options{Labels: p})
	return err, p
}

// field replaces field k of line n of a delimited text.
func field(n, k int, sep, v string) func(string) string {
	return lines(func(i int, l string) []string {
		if i == n {
			f := strings.Split(l, sep)
			f[k] = v
			l = strings.Join(f, sep)
		}
		return []string{l}
	})
}

// dropColumn removes the column named col from a delimited text.
func dropColumn(col, sep string) func(string) string {
	k := -1
	return lines(func(i int, l string) []string {
		f := strings.Split(l, sep)
		if i == 0 {
			for j, h := range f {
				if h == col {
					k = j
				}
			}
		}
		if k >= 0 {
			f = append(f[:k:k], f[k+1:]...)
		}
		return []string{strings.Join(f, sep)}
	})
}

func writePNG(t *testing.T, path string, w, h int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// badCase is one broken input: make builds it in a fresh copy of the
// fixtures and runs the reader or stage, returning its error (nil when it
// only warned) and the file the message must name.
type badCase struct {
	reader string // what reads it
	name   string // what is broken
	// kind: "error" (the reader refuses) or "warning" (it goes on and logs).
	kind string
	make func(t *testing.T, fx fixtures) (err error, file string)
	want []string // substrings of the message besides the file name
}

// fixtures are fresh copies of the committed fixtures.
type fixtures struct {
	st, visium, visiumMTX, h5ad string
	root                        string
}

func (f fixtures) stCounts() string { return filepath.Join(f.st, "counts", "A1.tsv.gz") }
func (f fixtures) stSpots() string  { return filepath.Join(f.st, "spots", "A1_selection.tsv") }
func (f fixtures) stLabels() string {
	return filepath.Join(f.st, "labels", "A1_labeled_coordinates.tsv")
}
func (f fixtures) srFile(rel string) string  { return filepath.Join(f.visium, "outs", rel) }
func (f fixtures) mtxFile(rel string) string { return filepath.Join(f.visiumMTX, "outs", rel) }

func badCases() []badCase {
	openST := func(fx fixtures) (error, string) {
		_, err := section.Open(fx.stCounts(), section.Options{})
		return err, fx.stCounts()
	}
	st := func(name, file string, fn func(string) string, want ...string) badCase {
		return badCase{reader: "legacy ST", name: name, kind: "error", want: want,
			make: func(t *testing.T, fx fixtures) (error, string) {
				p := map[string]string{"counts": fx.stCounts(), "spots": fx.stSpots(), "labels": fx.stLabels()}[file]
				testutil.EditFile(t, p, fn)
				err, _ := openST(fx)
				return err, p
			}}
	}
	openSR := func(fx fixtures, dir string, opt section.Options) error {
		_, err := section.Open(dir, opt)
		return err
	}
	sr := func(name, rel string, fn func(t *testing.T, p string), want ...string) badCase {
		return badCase{reader: "Space Ranger", name: name, kind: "error", want: want,
			make: func(t *testing.T, fx fixtures) (error, string) {
				p := fx.srFile(rel)
				fn(t, p)
				return openSR(fx, fx.visium, section.Options{}), p
			}}
	}
	mtx := func(name, rel string, fn func(string) string, want ...string) badCase {
		return badCase{reader: "Space Ranger MTX", name: name, kind: "error", want: want,
			make: func(t *testing.T, fx fixtures) (error, string) {
				p := fx.mtxFile(rel)
				testutil.EditFile(t, p, fn)
				return openSR(fx, fx.visiumMTX, section.Options{}), p
			}}
	}
	h5ad := func(name string, fn func(t *testing.T, p string), want ...string) badCase {
		return badCase{reader: "AnnData .h5ad", name: name, kind: "error", want: want,
			make: func(t *testing.T, fx fixtures) (error, string) {
				fn(t, fx.h5ad)
				_, err := section.Open(fx.h5ad, section.Options{LabelColumn: "label"})
				return err, fx.h5ad
			}}
	}
	const mtxHeaderLines = 2 // %%MatrixMarket line and the size line
	return []badCase{
		// Legacy ST: counts table, spot file, labelled coordinates.
		{reader: "legacy ST", name: "truncated gzip counts table", kind: "error", want: []string{"unexpected EOF"},
			make: func(t *testing.T, fx fixtures) (error, string) {
				truncate(t, fx.stCounts(), 0.6)
				return openST(fx)
			}},
		st("non-numeric count", "counts", field(2, 3, "\t", "seven"), ".gz:3:", `"seven"`),
		st("row with a missing column", "counts", lines(func(i int, l string) []string {
			if i == 4 {
				l = l[:strings.LastIndex(l, "\t")]
			}
			return []string{l}
		}), ".gz:5:", "49 counts"),
		st("duplicate spot id", "counts", lines(func(i int, l string) []string {
			if i == 1 {
				return []string{l, l}
			}
			return []string{l}
		}), `duplicated spot id "10x13"`),
		st("NaN count", "counts", field(3, 2, "\t", "NaN"), ".gz:4:", `"NaN" is not a non-negative count`),
		st("infinite count", "counts", field(3, 2, "\t", "Inf"), ".gz:4:", `"Inf" is not`),
		st("negative count", "counts", field(3, 2, "\t", "-3"), ".gz:4:", `"-3" is not`),
		st("empty section (header only)", "counts", lines(func(i int, l string) []string {
			if i > 0 {
				return nil
			}
			return []string{l}
		}), "no counts rows"),
		st("spot in the counts but not in the spot file", "spots", lines(func(i int, l string) []string {
			if strings.HasPrefix(l, "10\t13\t") {
				return nil
			}
			return []string{l}
		}), `"10x13" has no row in spot file`),
		st("spot file without the pixel_x column", "spots", dropColumn("pixel_x", "\t"), "pixel_x"),
		st("spot file header repeating a column", "spots", lines(func(i int, l string) []string {
			if i == 0 {
				l = strings.Replace(l, "new_x", "y", 1)
			}
			return []string{l}
		}), `header repeats column "y"`),
		st("labels without the label column", "labels", dropColumn("label", "\t"), "label"),
		{reader: "legacy ST", name: "all-zero spot", kind: "warning", want: []string{"all-zero counts", "first=10x13"},
			make: func(t *testing.T, fx fixtures) (error, string) {
				testutil.EditFile(t, fx.stCounts(), lines(func(i int, l string) []string {
					if strings.HasPrefix(l, "10x13\t") {
						f := strings.Split(l, "\t")
						for k := 1; k < len(f); k++ {
							f[k] = "0"
						}
						l = strings.Join(f, "\t")
					}
					return []string{l}
				}))
				return openST(fx)
			}},

		// Space Ranger outs/ with a 10x .h5 matrix.
		sr("truncated 10x .h5", "filtered_feature_bc_matrix.h5", func(t *testing.T, p string) { truncate(t, p, 0.5) }),
		sr("corrupted 10x .h5", "filtered_feature_bc_matrix.h5", func(t *testing.T, p string) { testutil.Scramble(t, p, 3000, 9000) }),
		sr("positions without pxl_row_in_fullres", "spatial/tissue_positions.csv", func(t *testing.T, p string) {
			testutil.EditFile(t, p, dropColumn("pxl_row_in_fullres", ","))
		}, "pxl_row_in_fullres"),
		sr("duplicate barcode in the positions", "spatial/tissue_positions.csv", func(t *testing.T, p string) {
			testutil.EditFile(t, p, lines(func(i int, l string) []string {
				if i == 1 {
					return []string{l, l}
				}
				return []string{l}
			}))
		}, "AAAAAAACAAAAAAAC-1"),
		sr("matrix barcode missing from the positions", "spatial/tissue_positions.csv", func(t *testing.T, p string) {
			testutil.EditFile(t, p, lines(func(i int, l string) []string {
				if strings.HasPrefix(l, "AAAAAAGGAAAAAATC-1,") {
					return nil
				}
				return []string{l}
			}))
		}, "AAAAAAGGAAAAAATC-1", "has no row in"),
		{reader: "Space Ranger", name: "in-tissue spot in the positions but not in the matrix", kind: "warning",
			want: []string{"in-tissue spots missing from the matrix", "spots=1"},
			make: func(t *testing.T, fx fixtures) (error, string) {
				p := fx.srFile("spatial/tissue_positions.csv")
				testutil.EditFile(t, p, func(s string) string { return s + "TTTTTTTTTTTTTTTT-1,1,70,70,500.0,500.0\n" })
				return openSR(fx, fx.visium, section.Options{}), p
			}},
		sr("NaN pixel position", "spatial/tissue_positions.csv", func(t *testing.T, p string) {
			testutil.EditFile(t, p, field(5, 4, ",", "NaN"))
		}, ".csv:6:", "not a finite number"),
		{reader: "Space Ranger", name: "hires scale factor 10× too large", kind: "error", want: []string{"wrong image or scale factor?"},
			make: func(t *testing.T, fx fixtures) (error, string) {
				testutil.EditFile(t, fx.srFile("spatial/scalefactors_json.json"), func(s string) string {
					return strings.Replace(s, `"tissue_hires_scalef": 0.05`, `"tissue_hires_scalef": 0.5`, 1)
				})
				return openSR(fx, fx.visium, section.Options{}), fx.srFile("spatial/tissue_hires_image.png")
			}},
		sr("negative scale factor", "spatial/scalefactors_json.json", func(t *testing.T, p string) {
			testutil.EditFile(t, p, func(s string) string {
				return strings.Replace(s, `"tissue_hires_scalef": 0.05`, `"tissue_hires_scalef": -0.05`, 1)
			})
		}, "tissue_hires_scalef"),
		sr("image smaller than the spot coordinates", "spatial/tissue_hires_image.png", func(t *testing.T, p string) {
			writePNG(t, p, 40, 40)
		}, "40×40"),

		// Space Ranger outs/ with a filtered_feature_bc_matrix/ directory.
		{reader: "Space Ranger MTX", name: "truncated matrix.mtx.gz", kind: "error", want: []string{"unexpected EOF"},
			make: func(t *testing.T, fx fixtures) (error, string) {
				p := fx.mtxFile("filtered_feature_bc_matrix/matrix.mtx.gz")
				truncate(t, p, 0.5)
				return openSR(fx, fx.visiumMTX, section.Options{}), p
			}},
		mtx("negative count", "filtered_feature_bc_matrix/matrix.mtx.gz", field(mtxHeaderLines+3, 2, " ", "-4"), "-4"),
		mtx("NaN count", "filtered_feature_bc_matrix/matrix.mtx.gz", field(mtxHeaderLines+3, 2, " ", "nan"), "nan"),
		mtx("entry outside the matrix", "filtered_feature_bc_matrix/matrix.mtx.gz", field(mtxHeaderLines+3, 1, " ", "99999"), "99999"),
		mtx("duplicate barcode", "filtered_feature_bc_matrix/barcodes.tsv.gz", lines(func(i int, l string) []string {
			if i == 1 {
				return []string{l, l}
			}
			return []string{l}
		}), `repeats line 2`),
		mtx("features.tsv.gz with one column", "filtered_feature_bc_matrix/features.tsv.gz", lines(func(i int, l string) []string {
			return []string{strings.Split(l, "\t")[0]}
		}), ".gz:1:", "want id<TAB>name"),

		// AnnData.
		h5ad("truncated .h5ad", func(t *testing.T, p string) { truncate(t, p, 0.4) }),
		h5ad("NaN in X", func(t *testing.T, p string) {
			copyFile(t, filepath.Join(testutil.RepoRoot(t), "testdata/h5ad/bad/nan_X.h5ad"), p)
		}, "NaN"),
		h5ad("negative count in X", func(t *testing.T, p string) {
			copyFile(t, filepath.Join(testutil.RepoRoot(t), "testdata/h5ad/bad/negative_X.h5ad"), p)
		}, "-1"),
		{reader: "AnnData .h5ad", name: "labels column missing", kind: "error", want: []string{`"region"`},
			make: func(t *testing.T, fx fixtures) (error, string) {
				_, err := section.Open(fx.h5ad, section.Options{LabelColumn: "region"})
				return err, fx.h5ad
			}},

		// Label files applied to any section.
		{reader: "labels CSV", name: "labels for spots not in the section", kind: "warning",
			want: []string{"labels for spots not in the section ignored", "spots=1"},
			make: func(t *testing.T, fx fixtures) (error, string) {
				return openEditedLabels(t, fx, func(s string) string { return s + "NOTASPOT-1,invasive cancer\n" })
			}},
		{reader: "labels CSV", name: "no label matches a spot", kind: "error", want: []string{"none of its 40 spot ids"},
			make: func(t *testing.T, fx fixtures) (error, string) {
				return openEditedLabels(t, fx, rows(func(l string) string { return "X" + l }))
			}},
		{reader: "labels CSV → classify", name: "a single class", kind: "error", want: []string{"at least two labelled classes"},
			make: func(t *testing.T, fx fixtures) (error, string) {
				p := filepath.Join(fx.visium, "labels.csv")
				testutil.EditFile(t, p, rows(func(l string) string { return l[:strings.Index(l, ",")] + ",tumour" }))
				s, err := section.Open(fx.visium, section.Options{Labels: p})
				if err != nil {
					return err, p
				}
				var y []int
				for _, i := range s.Labelled() {
					_ = i
					y = append(y, 0)
				}
				x := make([]float32, 2*len(y))
				_, err = classify.FitLogReg(x, len(y), 2, y, 2, classify.LogRegOptions{})
				if err != nil {
					err = fmt.Errorf("labels %s: %w", p, err)
				}
				return err, p
			}},

		// Stages after reading.
		{reader: "patch extraction", name: "image just large enough for the spot centres (crops leave it)", kind: "warning",
			want: []string{"spots without a patch", "leaves the"},
			make: func(t *testing.T, fx fixtures) (error, string) {
				s, err := section.Open(fx.visium, section.Options{})
				if err != nil {
					return err, ""
				}
				var w, h float64
				for _, sp := range s.Spots {
					x, y := s.Image.FromFullres.Apply(sp.X, sp.Y)
					w, h = max(w, x), max(h, y)
				}
				p := filepath.Join(fx.visium, "small.png")
				writePNG(t, p, int(w)+1, int(h)+1)
				s.Image.Path = p
				_, err = patch.Extract(context.Background(), s, patch.Options{Size: 8})
				return err, p
			}},
		{reader: "patch extraction", name: "image truncated after reading the section", kind: "error", want: []string{"png: invalid format"},
			make: func(t *testing.T, fx fixtures) (error, string) {
				s, err := section.Open(fx.visium, section.Options{})
				if err != nil {
					return err, ""
				}
				truncate(t, s.Image.Path, 0.3)
				_, err = patch.Extract(context.Background(), s, patch.Options{Size: 8})
				return err, s.Image.Path
			}},
		{reader: "gene matching", name: "sections with no gene in common", kind: "error", want: []string{"share no gene", "same gene naming"},
			make: func(t *testing.T, fx fixtures) (error, string) {
				return buildRenamed(fx, func(genes []string) []string { return genes })
			}},
		{reader: "gene matching", name: "sections sharing only some genes", kind: "warning", want: []string{"share only some genes", "dropped=30"},
			make: func(t *testing.T, fx fixtures) (error, string) {
				return buildRenamed(fx, func(genes []string) []string { return genes[:len(genes)/2] })
			}},
	}
}

// buildRenamed opens the Visium fixture twice, as sections A and B, renames
// the genes of B that pick returns and builds the expression data of both.
func buildRenamed(fx fixtures, pick func(genes []string) []string) (error, string) {
	a, err := section.Open(fx.visium, section.Options{Name: "A"})
	if err != nil {
		return err, ""
	}
	b, err := section.Open(fx.visium, section.Options{Name: "B"})
	if err != nil {
		return err, ""
	}
	renamed := pick(b.Genes)
	for i := range renamed {
		renamed[i] = "x" + renamed[i]
	}
	_, err = pretrain.BuildExprData([]*section.Section{a, b}, pretrain.ExprDataOptions{HVG: 5})
	return err, fx.visium
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// tmpPath hides temporary directories in messages written to the docs.
var tmpPath = regexp.MustCompile(`/tmp/[^ "]*?/(st|A1_sub|A1_sub_v1|A1_sub_csr\.h5ad)\b`)

func TestBadInput(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // h5ad image cache
	r := testutil.RepoRoot(t)
	var rows []string
	for _, tc := range badCases() {
		t.Run(tc.reader+"/"+tc.name, func(t *testing.T) {
			fx := fixtures{
				root:      r,
				st:        testutil.CopyTree(t, filepath.Join(r, "section", "testdata", "st")),
				visium:    testutil.CopyTree(t, filepath.Join(r, "testdata", "visium", "A1_sub")),
				visiumMTX: testutil.CopyTree(t, filepath.Join(r, "testdata", "visium", "A1_sub_v1")),
			}
			fx.h5ad = filepath.Join(t.TempDir(), "A1_sub_csr.h5ad")
			copyFile(t, filepath.Join(r, "testdata", "h5ad", "A1_sub_csr.h5ad"), fx.h5ad)

			var logs bytes.Buffer
			old := slog.Default()
			slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
			err, file := tc.make(t, fx)
			slog.SetDefault(old)

			var msg string
			switch {
			case err != nil:
				msg = err.Error()
				if tc.kind != "error" {
					t.Errorf("error %q, want only a warning", err)
				}
			case tc.kind == "error":
				t.Fatalf("no error (log: %s)", logs.String())
			default:
				msg, _, _ = strings.Cut(strings.TrimSpace(logs.String()), "\n") // the first warning
				if msg == "" {
					t.Fatal("no error and no warning")
				}
				// keep the message and its attributes, not the time
				msg = regexp.MustCompile(`^time=\S+ level=WARN `).ReplaceAllString(msg, "")
			}
			t.Log(msg)
			if file != "" && !strings.Contains(msg, file) && !strings.Contains(msg, filepath.Base(file)) {
				t.Errorf("message does not name %s: %s", file, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message does not say %q: %s", w, msg)
				}
			}
			shown := tmpPath.ReplaceAllStringFunc(msg, func(s string) string { return tmpPath.FindStringSubmatch(s)[1] })
			shown = strings.ReplaceAll(shown, "|", `\|`)
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | `%s` |", tc.reader, tc.name, tc.kind, shown))
		})
	}
	table := "| reader / stage | broken input | answer | message |\n|---|---|---|---|\n" + strings.Join(rows, "\n") + "\n"
	doc := filepath.Join(r, "docs", "robustness.md")
	checkDocTable(t, doc, "bad-input", table)
}

// checkDocTable compares (or with -update rewrites) the part of doc
// between <!-- begin NAME --> and <!-- end NAME -->.
func checkDocTable(t *testing.T, doc, name, table string) {
	t.Helper()
	begin, end := "<!-- begin "+name+" (generated by TestBadInput -update) -->\n", "<!-- end "+name+" -->"
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatalf("%v (create it with the markers %q … %q)", err, begin, end)
	}
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q … %q", doc, begin, end)
	}
	got := s[i+len(begin) : j]
	if got == table {
		return
	}
	if !*update {
		t.Errorf("%s is out of date: run go test ./section -run TestBadInput -update", doc)
		return
	}
	if err := os.WriteFile(doc, []byte(s[:i+len(begin)]+table+s[j:]), 0o644); err != nil {
		t.Fatal(err)
	}
}
