package section

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"image"
	"image/png"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
)

// srFixture is testdata/fixture.json, written by testdata/gen_fixtures.py
// from the real HER2ST A1 files.
type srFixture struct {
	Section    string    `json:"section"`
	SpotIDs    []string  `json:"spot_ids"`
	Barcodes   []string  `json:"barcodes"`
	Genes      []string  `json:"genes"`
	Counts     [][]int   `json:"counts"`
	X          []float64 `json:"x"`
	Y          []float64 `json:"y"`
	ArrayRow   []int     `json:"array_row"`
	ArrayCol   []int     `json:"array_col"`
	Labels     []string  `json:"labels"`
	HiresSize  []int     `json:"hires_size"`
	LowresSize []int     `json:"lowres_size"`
}

func srTestdata(t testing.TB, rel ...string) string {
	t.Helper()
	return filepath.Join(append([]string{testutil.RepoRoot(t), "testdata"}, rel...)...)
}

func srLoadFixture(t testing.TB) srFixture {
	t.Helper()
	b, err := os.ReadFile(srTestdata(t, "fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f srFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// srBarcode is the fixture's synthetic barcode of array position (x, y):
// x then y as 8 base-4 digits each (A=0 C=1 G=2 T=3), suffix "-1"; the
// same mapping as barcode() in testdata/gen_fixtures.py.
func srBarcode(x, y int) string {
	enc := func(v int) string {
		var b [8]byte
		for i := 7; i >= 0; i-- {
			b[i] = "ACGT"[v%4]
			v /= 4
		}
		return string(b[:])
	}
	return enc(x) + enc(y) + "-1"
}

func TestSRBarcodeMapping(t *testing.T) {
	// Worked example from gen_fixtures.py's docstring.
	if got := srBarcode(10, 13); got != "AAAAAAGGAAAAAATC-1" {
		t.Fatalf("srBarcode(10, 13) = %s", got)
	}
	f := srLoadFixture(t)
	for i := range f.SpotIDs {
		if got := srBarcode(f.ArrayCol[i], f.ArrayRow[i]); got != f.Barcodes[i] {
			t.Errorf("spot %s: barcode %s, fixture %s", f.SpotIDs[i], got, f.Barcodes[i])
		}
	}
}

// srUseTempImageCache points the h5ad image cache at a test directory.
func srUseTempImageCache(t testing.TB) {
	dir := t.TempDir()
	old := h5adImageDir
	h5adImageDir = func() string { return dir }
	t.Cleanup(func() { h5adImageDir = old })
}

// TestFormatsAgree reads the same 40 spots × 60 genes of HER2ST A1 from
// every format and compares them cell by cell with the fixture.
func TestFormatsAgree(t *testing.T) {
	srUseTempImageCache(t)
	f := srLoadFixture(t)
	labels := srTestdata(t, "visium", "A1_sub", "labels.csv")
	sf := struct{ hires, lowres, spot float64 }{0.05, 0.02, 31.3 / 0.287604}
	tests := []struct {
		name   string
		read   func() (*Section, error)
		scale  float64 // image scale, 0 = no image
		size   []int
		labels bool
	}{
		{"spaceranger h5 + tissue_positions.csv", func() (*Section, error) {
			return Open(srTestdata(t, "visium", "A1_sub"), Options{Labels: labels})
		}, sf.hires, f.HiresSize, true},
		{"spaceranger outs dir given directly", func() (*Section, error) {
			return ReadSpaceRanger(srTestdata(t, "visium", "A1_sub", "outs"), Options{})
		}, sf.hires, f.HiresSize, false},
		{"spaceranger MTX + tissue_positions_list.csv", func() (*Section, error) {
			return Open(srTestdata(t, "visium", "A1_sub_v1"), Options{Labels: labels})
		}, sf.lowres, f.LowresSize, true},
		{"h5ad dense X, categorical labels", func() (*Section, error) {
			return Open(srTestdata(t, "h5ad", "A1_sub_dense.h5ad"), Options{LabelColumn: "label"})
		}, sf.hires, f.HiresSize, true},
		{"h5ad CSR X, string labels", func() (*Section, error) {
			return ReadH5AD(srTestdata(t, "h5ad", "A1_sub_csr.h5ad"), Options{LabelColumn: "label", Library: "A1"})
		}, sf.lowres, f.LowresSize, true},
		{"h5ad dense X read in 7-row blocks", func() (*Section, error) {
			old := denseBlock
			denseBlock = 7 * 60
			defer func() { denseBlock = old }()
			return ReadH5AD(srTestdata(t, "h5ad", "A1_sub_dense.h5ad"), Options{LabelColumn: "label"})
		}, sf.hires, f.HiresSize, true},
		{"h5ad CSC X, no image", func() (*Section, error) {
			return ReadH5AD(srTestdata(t, "h5ad", "A1_sub_csc.h5ad"), Options{LabelColumn: "label"})
		}, 0, nil, true},
		{"legacy ST original A1, same subset", func() (*Section, error) {
			return srLegacySubset(t, f)
		}, 0.287604, []int{2000, 2138}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.read()
			if err != nil {
				t.Fatal(err)
			}
			if s.NumSpots() != len(f.Barcodes) || len(s.Genes) != len(f.Genes) {
				t.Fatalf("got %d spots × %d genes, want %d × %d", s.NumSpots(), len(s.Genes), len(f.Barcodes), len(f.Genes))
			}
			for j, g := range f.Genes {
				if s.Genes[j] != g {
					t.Fatalf("gene %d = %q, want %q", j, s.Genes[j], g)
				}
			}
			for i, sp := range s.Spots {
				if sp.ID != f.Barcodes[i] {
					t.Fatalf("spot %d = %s, want %s", i, sp.ID, f.Barcodes[i])
				}
				if sp.X != f.X[i] || sp.Y != f.Y[i] || sp.Row != f.ArrayRow[i] || sp.Col != f.ArrayCol[i] {
					t.Errorf("spot %s = %+v, want x %v y %v row %d col %d", sp.ID, sp, f.X[i], f.Y[i], f.ArrayRow[i], f.ArrayCol[i])
				}
				for j := range f.Genes {
					if got := s.Counts.At(i, j); got != float32(f.Counts[i][j]) {
						t.Errorf("count[%s, %s] = %v, want %d", sp.ID, f.Genes[j], got, f.Counts[i][j])
					}
				}
			}
			if err := s.Validate(); err != nil {
				t.Error(err)
			}
			if tt.labels {
				if len(s.Labels) != len(f.Labels) {
					t.Fatalf("%d labels, want %d", len(s.Labels), len(f.Labels))
				}
				for i, l := range f.Labels {
					if s.Labels[i] != l {
						t.Errorf("label of %s = %q, want %q", f.Barcodes[i], s.Labels[i], l)
					}
				}
			} else if s.Labels != nil {
				t.Errorf("labels without a label source: %v", s.Labels[:3])
			}
			img := s.Image
			if tt.scale == 0 {
				if img != nil {
					t.Errorf("image %+v, want none", img)
				}
				return
			}
			if img == nil {
				t.Fatal("no image")
			}
			if math.Abs(img.FromFullres.A-tt.scale) > 1e-9 || img.FromFullres.D != img.FromFullres.A ||
				img.FromFullres.B != 0 || img.FromFullres.C != 0 || img.Width != tt.size[0] || img.Height != tt.size[1] {
				t.Errorf("image %+v, want scale %v size %v", img, tt.scale, tt.size)
			}
			if math.Abs(img.SpotDiameterPx-sf.spot*tt.scale) > 0.05 {
				t.Errorf("spot diameter %v px, want %v", img.SpotDiameterPx, sf.spot*tt.scale)
			}
			fh, err := os.Open(img.Path)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			cfg, _, err := image.DecodeConfig(fh)
			if err != nil || cfg.Width != img.Width || cfg.Height != img.Height {
				t.Errorf("image file %s: %v %dx%d, section says %dx%d", img.Path, err, cfg.Width, cfg.Height, img.Width, img.Height)
			}
		})
	}
}

// srLegacySubset reads the original A1 with the legacy ST reader, selects
// the fixture's spots and genes, and renames spots to their barcodes.
func srLegacySubset(t *testing.T, f srFixture) (*Section, error) {
	dir := testutil.HER2ST(t, "counts/A1.tsv.gz")
	s, err := ReadLegacyST(filepath.Join(dir, "counts", "A1.tsv.gz"), Options{})
	if err != nil {
		return nil, err
	}
	row := map[string]int{}
	for i, sp := range s.Spots {
		row[sp.ID] = i
	}
	col := map[string]int{}
	for j, g := range s.Genes {
		col[g] = j
	}
	var rows, cols []int
	for _, id := range f.SpotIDs {
		rows = append(rows, row[id])
	}
	for _, g := range f.Genes {
		cols = append(cols, col[g])
	}
	sub := *s
	sub.Counts = s.Counts.SelectRows(rows).SelectCols(cols)
	sub.Genes = f.Genes
	sub.GeneIDs = nil
	sub.Spots = nil
	sub.Labels = nil
	for _, i := range rows {
		sp := s.Spots[i]
		sp.ID = srBarcode(sp.Col, sp.Row)
		sub.Spots = append(sub.Spots, sp)
		sub.Labels = append(sub.Labels, s.Labels[i])
	}
	return &sub, nil
}

func TestReadSpaceRangerAllSpots(t *testing.T) {
	f := srLoadFixture(t)
	// Mark the first matrix barcode out of tissue: dropped by default, kept
	// with AllSpots.
	dir := testutil.CopyTree(t, srTestdata(t, "visium", "A1_sub"))
	pos := filepath.Join(dir, "outs", "spatial", "tissue_positions.csv")
	testutil.EditFile(t, pos, func(s string) string {
		return strings.Replace(s, f.Barcodes[0]+",1,", f.Barcodes[0]+",0,", 1)
	})
	s, err := ReadSpaceRanger(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.NumSpots() != len(f.Barcodes)-1 || s.Spots[0].ID != f.Barcodes[1] || s.Counts.At(0, 0) != float32(f.Counts[1][0]) {
		t.Errorf("default: %d spots, first %s; want %d, first %s", s.NumSpots(), s.Spots[0].ID, len(f.Barcodes)-1, f.Barcodes[1])
	}
	if s.Name != "A1_sub" {
		t.Errorf("name %q, want A1_sub", s.Name)
	}
	s, err = ReadSpaceRanger(dir, Options{AllSpots: true, Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if s.NumSpots() != len(f.Barcodes) || s.Name != "x" {
		t.Errorf("AllSpots: %d spots name %q, want %d x", s.NumSpots(), s.Name, len(f.Barcodes))
	}
}

func TestRead10xH5DropsOtherFeatureTypes(t *testing.T) {
	f := srLoadFixture(t)
	bcs, ids, genes, m, err := Read10xH5(srTestdata(t, "visium", "A1_sub", "outs", "filtered_feature_bc_matrix.h5"))
	if err != nil {
		t.Fatal(err)
	}
	// The .h5 holds 62 features; the two "Antibody Capture" ones must go.
	if len(genes) != len(f.Genes) || len(ids) != len(genes) || m.Cols != len(genes) || m.Rows != len(bcs) {
		t.Fatalf("%d genes %d ids, matrix %d×%d", len(genes), len(ids), m.Rows, m.Cols)
	}
	for _, g := range genes {
		if strings.HasPrefix(g, "ADT_") {
			t.Errorf("antibody feature %s kept", g)
		}
	}
	nnz := 0
	for _, r := range f.Counts {
		for _, v := range r {
			if v != 0 {
				nnz++
			}
		}
	}
	if m.NNZ() != nnz {
		t.Errorf("nnz %d, want %d", m.NNZ(), nnz)
	}
}

func srDropLine(prefix string) func(string) string {
	return func(s string) string {
		var out []string
		for _, l := range strings.SplitAfter(s, "\n") {
			if !strings.HasPrefix(l, prefix) {
				out = append(out, l)
			}
		}
		return strings.Join(out, "")
	}
}

// TestReadSpaceRangerBadInput: every kind of broken outs/ gives an error
// naming the file and the problem, never a panic.
func TestReadSpaceRangerBadInput(t *testing.T) {
	f := srLoadFixture(t)
	const (
		h5  = "outs/filtered_feature_bc_matrix.h5"
		pos = "outs/spatial/tissue_positions.csv"
		sfj = "outs/spatial/scalefactors_json.json"
		mtx = "outs/filtered_feature_bc_matrix/matrix.mtx.gz"
		bcs = "outs/filtered_feature_bc_matrix/barcodes.tsv.gz"
		lst = "outs/spatial/tissue_positions_list.csv"
	)
	bc := f.Barcodes[5]
	tests := []struct {
		name    string
		fixture string
		file    string                          // file edited / named in the error
		edit    func(t *testing.T, path string) // nil = leave
		want    string
	}{
		{"truncated h5", "A1_sub", h5, func(t *testing.T, p string) { srTruncate(t, p, 4000) }, "filtered_feature_bc_matrix.h5"},
		{"h5 cut after superblock", "A1_sub", h5, func(t *testing.T, p string) { srTruncate(t, p, 100) }, "filtered_feature_bc_matrix.h5"},
		{"corrupted h5", "A1_sub", h5, func(t *testing.T, p string) { testutil.Scramble(t, p, 800, 3000) }, "filtered_feature_bc_matrix.h5"},
		// Fuzz10xH5 regression: a huge local heap size made scigolib/hdf5
		// abort the process with "out of memory".
		{"h5 local heap size corrupt", "A1_sub", h5, func(t *testing.T, p string) { srHugeLocalHeap(t, p) }, "claims 1099511627776 bytes"},
		{"h5 local heap size and address corrupt", "A1_sub", h5, func(t *testing.T, p string) {
			srPatchHeap(t, p, "HEAP\x00\x00\x00\x00", 8, 0x3d3d3d3d58, "")   // crash a19ff9b9
			srPatchHeap(t, p, "HEAP\x00\x00\x00\x00", 24, 0x2c800000000, "") // address outside the file
		}, "claims 263020428632 bytes"},
		// Fuzz10xH5 regression e4895fdd: a superblock with 0-byte offsets
		// (no end-of-file address to check) skipped the heap guard, and
		// its "HEAPcccc" heap made the library allocate 378 GB.
		{"h5 superblock without offsets, heap corrupt", "A1_sub", h5, func(t *testing.T, p string) {
			b, _ := os.ReadFile(srTestdata(t, "visium", "bad", "heap_zero_offset_size.h5"))
			os.WriteFile(p, b, 0o644)
		}, "claims 377957122048 bytes"},
		{"not an h5", "A1_sub", h5, func(t *testing.T, p string) { os.WriteFile(p, []byte("hello"), 0o644) }, "not a readable HDF5"},
		{"h5 missing /matrix/indptr", "A1_sub", h5, func(t *testing.T, p string) {
			b, _ := os.ReadFile(srTestdata(t, "visium", "bad", "missing_indptr.h5"))
			os.WriteFile(p, b, 0o644)
		}, "missing dataset /matrix/indptr"},
		{"positions missing a column", "A1_sub", pos, func(t *testing.T, p string) {
			testutil.EditFile(t, p, func(s string) string { return strings.Replace(s, ",pxl_col_in_fullres", "", 1) })
		}, `no column "pxl_col_in_fullres"`},
		{"positions row missing a field", "A1_sub_v1", lst, func(t *testing.T, p string) {
			testutil.EditFile(t, p, func(s string) string { return strings.Replace(s, bc+",1,", bc+",", 1) })
		}, "no column"},
		{"barcode in matrix but not in positions", "A1_sub", pos, func(t *testing.T, p string) {
			testutil.EditFile(t, p, srDropLine(bc))
		}, "has no row in"},
		{"non-numeric position", "A1_sub", pos, func(t *testing.T, p string) {
			testutil.EditFile(t, p, func(s string) string {
				i := strings.Index(s, bc)
				j := i + strings.Index(s[i:], "\n")
				k := strings.LastIndex(s[:j], ",")
				return s[:k+1] + "12a.5" + s[j:]
			})
		}, `pxl_col_in_fullres "12a.5" is not a finite number`},
		{"NaN position", "A1_sub_v1", lst, func(t *testing.T, p string) {
			testutil.EditFile(t, p, func(s string) string {
				i := strings.Index(s, bc)
				j := i + strings.Index(s[i:], "\n")
				k := strings.LastIndex(s[:j], ",")
				return s[:k+1] + "NaN" + s[j:]
			})
		}, "not a finite number"},
		{"in_tissue not 0/1", "A1_sub", pos, func(t *testing.T, p string) {
			testutil.EditFile(t, p, func(s string) string { return strings.Replace(s, bc+",1,", bc+",yes,", 1) })
		}, "in_tissue"},
		{"duplicate positions barcode", "A1_sub", pos, func(t *testing.T, p string) {
			testutil.EditFile(t, p, func(s string) string { return s + bc + ",1,0,0,1,1\n" })
		}, "repeats line"},
		{"scalefactors missing a key", "A1_sub", sfj, func(t *testing.T, p string) {
			os.WriteFile(p, []byte(`{"spot_diameter_fullres": 108.8, "tissue_lowres_scalef": 0.02}`), 0o644)
		}, `missing key "tissue_hires_scalef"`},
		{"scalefactors not JSON", "A1_sub", sfj, func(t *testing.T, p string) {
			os.WriteFile(p, []byte(`{"spot_diameter_fullres": 108.8,`), 0o644)
		}, "scalefactors_json.json"},
		{"scalefactor negative", "A1_sub", sfj, func(t *testing.T, p string) {
			os.WriteFile(p, []byte(`{"spot_diameter_fullres": 108.8, "tissue_hires_scalef": -0.05, "tissue_lowres_scalef": 0.02}`), 0o644)
		}, "want a positive number"},
		{"image smaller than spot coordinates", "A1_sub", "outs/spatial/tissue_hires_image.png", func(t *testing.T, p string) {
			srWritePNG(t, p, 40, 40)
		}, "tissue_hires_image.png is 40×40 but spot"},
		{"image not a PNG", "A1_sub", "outs/spatial/tissue_hires_image.png", func(t *testing.T, p string) {
			os.WriteFile(p, []byte("\x89PNG\r\n\x1a\nbroken"), 0o644)
		}, "tissue_hires_image.png"},
		{"no positions file", "A1_sub", "outs/spatial", func(t *testing.T, p string) {
			os.Remove(filepath.Join(p, "tissue_positions.csv"))
		}, "no tissue_positions.csv or tissue_positions_list.csv"},
		{"MTX truncated", "A1_sub_v1", mtx, func(t *testing.T, p string) {
			testutil.EditFile(t, p, func(s string) string { return s[:len(s)/2] })
		}, "matrix.mtx.gz"},
		{"MTX gzip cut", "A1_sub_v1", mtx, func(t *testing.T, p string) { srTruncate(t, p, 300) }, "matrix.mtx.gz"},
		{"MTX bad header", "A1_sub_v1", mtx, func(t *testing.T, p string) {
			testutil.EditFile(t, p, func(s string) string { return strings.Replace(s, "coordinate", "array", 1) })
		}, "MatrixMarket"},
		{"MTX entry out of range", "A1_sub_v1", mtx, func(t *testing.T, p string) {
			testutil.EditFile(t, p, func(s string) string { return strings.Replace(s, "\n1 1 ", "\n61 1 ", 1) })
		}, "outside 60×40"},
		{"MTX negative count", "A1_sub_v1", mtx, func(t *testing.T, p string) {
			testutil.EditFile(t, p, func(s string) string { return strings.Replace(s, "\n1 1 ", "\n1 1 -", 1) })
		}, "not a finite non-negative"},
		{"MTX size disagrees with barcodes", "A1_sub_v1", bcs, func(t *testing.T, p string) {
			testutil.EditFile(t, p, srDropLine(bc))
		}, "39 barcodes"},
		{"no matrix", "A1_sub_v1", "outs/filtered_feature_bc_matrix", func(t *testing.T, p string) { os.RemoveAll(p) }, "no filtered_feature_bc_matrix.h5 or filtered_feature_bc_matrix/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := testutil.CopyTree(t, srTestdata(t, "visium", tt.fixture))
			tt.edit(t, filepath.Join(dir, tt.file))
			s, err := ReadSpaceRanger(dir, Options{})
			if err == nil {
				t.Fatalf("no error; read %d spots", s.NumSpots())
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), filepath.Base(tt.file)) && !strings.Contains(err.Error(), filepath.Base(filepath.Dir(tt.file))) {
				t.Errorf("error %q does not name %s", err, tt.file)
			}
		})
	}
}

func srTruncate(t *testing.T, p string, n int64) {
	t.Helper()
	if err := os.Truncate(p, n); err != nil {
		t.Fatal(err)
	}
}

func srWritePNG(t *testing.T, p string, w, h int) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadTissuePositionsFormats(t *testing.T) {
	tests := []struct {
		name, in string
		want     TissuePosition
	}{
		{"header, integer pixels", "barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres\nAC-1,1,3,5,100,250\n",
			TissuePosition{"AC-1", true, 3, 5, 100, 250}},
		{"header, columns reordered", "in_tissue,barcode,pxl_col_in_fullres,pxl_row_in_fullres,array_col,array_row\n0,AC-1,250.5,100.25,5,3\n",
			TissuePosition{"AC-1", false, 3, 5, 100.25, 250.5}},
		{"no header", "AC-1,1,3,5,100.5,250\n", TissuePosition{"AC-1", true, 3, 5, 100.5, 250}},
		{"CRLF and BOM", "\ufeffbarcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres\r\nAC-1,1,3,5,100,250\r\n",
			TissuePosition{"AC-1", true, 3, 5, 100, 250}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parseTissuePositions("pos.csv", strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(p) != 1 || p[0] != tt.want {
				t.Errorf("got %+v, want %+v", p, tt.want)
			}
		})
	}
}

func srCopyFile(t *testing.T, src string, edit func(string)) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	edit(p)
	return p
}

func srSmallPNG(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "small.png")
	srWritePNG(t, p, 40, 40)
	return p
}

func srDecodePNG(t *testing.T, p string) image.Image {
	t.Helper()
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestReadSpaceRangerWarnsMissingInTissue: an in-tissue positions row
// without a matrix barcode is logged, not an error.
func TestReadSpaceRangerWarnsMissingInTissue(t *testing.T) {
	dir := testutil.CopyTree(t, srTestdata(t, "visium", "A1_sub"))
	testutil.EditFile(t, filepath.Join(dir, "outs", "spatial", "tissue_positions.csv"), func(s string) string {
		return s + srBarcode(30, 30) + ",1,30,30,6000,6000\n"
	})
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	defer slog.SetDefault(old)
	s, err := ReadSpaceRanger(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.NumSpots() != 40 || !strings.Contains(buf.String(), "in-tissue spots missing from the matrix") || !strings.Contains(buf.String(), "spots=1") {
		t.Errorf("%d spots, log %q", s.NumSpots(), buf.String())
	}
}

// srPatchHeap finds the first header with signature sig in an HDF5 file
// and writes the 8-byte value v at offset at of it, then the bytes of
// reserved at offset 5. It reproduces what Fuzz10xH5 and FuzzH5AD found:
// scigolib/hdf5 allocated heaps at their stated size and the process
// aborted with "out of memory".
func srPatchHeap(t *testing.T, p, sig string, at int, v uint64, reserved string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(sig))
	if i < 0 {
		t.Fatalf("no %q in fixture", sig)
	}
	binary.LittleEndian.PutUint64(b[i+at:], v)
	copy(b[i+5:], reserved)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// srHugeLocalHeap: local heap size 2^40, reserved bytes "\x00TR" as in
// crash ba3c94dc (the library ignores reserved bytes; so must the guard).
func srHugeLocalHeap(t *testing.T, p string) {
	srPatchHeap(t, p, "HEAP\x00\x00\x00\x00", 8, 1<<40, "\x00TR")
}
