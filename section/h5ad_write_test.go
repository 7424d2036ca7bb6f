package section

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/sparse"
)

// wrSection builds a deterministic synthetic section (60 spots × 40
// genes, ~30% non-zero, two empty rows) with prediction-like obs columns.
func wrSection() (*Section, map[string][]string, map[string][]float64) { return wrSectionN(60) }

// wrSectionN is wrSection with nSpots spots; obs column "unique" holds a
// different value per spot, "missing" none at all.
func wrSectionN(nSpots int) (*Section, map[string][]string, map[string][]float64) {
	rng := rand.New(rand.NewPCG(7, 11))
	const nGenes = 40
	b := sparse.NewBuilder(nGenes)
	s := &Section{Name: "A1", Batch: "A1", Source: "synthetic"}
	regions := []string{"invasive cancer", "DCIS", "stroma", "", "fat", "immune infiltrate", "ünïcode région"}
	pred := make([]string, nSpots)
	prob := make([]float64, nSpots)
	for i := range nSpots {
		if i != 5 && i != 17 {
			for j := range nGenes {
				if rng.Float64() < 0.3 {
					b.Add(j, float32(1+rng.IntN(50)))
				}
			}
		}
		b.EndRow()
		s.Spots = append(s.Spots, Spot{
			ID:  srBarcode(i%8, i/8),
			Row: i / 8, Col: i % 8,
			X: 1000 + 180*float64(i%8) + rng.Float64(), Y: 2000 + 155.5*float64(i/8),
		})
		pred[i] = regions[rng.IntN(len(regions))]
		prob[i] = rng.Float64()
	}
	prob[3] = math.NaN()
	for j := range nGenes {
		s.Genes = append(s.Genes, "GENE"+strconv.Itoa(j))
		s.GeneIDs = append(s.GeneIDs, "ENSG"+strconv.Itoa(100000+j))
	}
	s.Counts = b.Build()
	s.Image = &Image{Path: "he.png", FromFullres: Scale(0.25), SpotDiameterPx: 25, Width: 1000, Height: 1000}
	unique := make([]string, nSpots)
	for i := range unique {
		unique[i] = fmt.Sprintf("u%04d", nSpots-i)
	}
	obs := map[string][]string{"pred": pred, "pred_run2": pred[:], "unique": unique, "missing": make([]string, nSpots)}
	return s, obs, map[string][]float64{"p_tumour": prob}
}

// wrSame reports how b differs from a in what an .h5ad holds.
func wrSame(t *testing.T, a, b *Section) {
	t.Helper()
	if !reflect.DeepEqual(a.Spots, b.Spots) {
		t.Errorf("spots differ:\n%v\n%v", a.Spots[:3], b.Spots[:3])
	}
	if !reflect.DeepEqual(a.Genes, b.Genes) || !reflect.DeepEqual(a.GeneIDs, b.GeneIDs) {
		t.Errorf("genes differ: %v %v / %v %v", a.Genes[:3], a.GeneIDs, b.Genes[:3], b.GeneIDs)
	}
	if !reflect.DeepEqual(a.Counts, b.Counts) {
		t.Errorf("counts differ: %d×%d nnz %d / %d×%d nnz %d", a.Counts.Rows, a.Counts.Cols, a.Counts.NNZ(),
			b.Counts.Rows, b.Counts.Cols, b.Counts.NNZ())
	}
}

func TestWriteH5ADRoundTrip(t *testing.T) {
	s, obs, obsFloat := wrSection()
	path := filepath.Join(t.TempDir(), "out.h5ad")
	if err := WriteH5AD(path, s, obs, obsFloat); err != nil {
		t.Fatal(err)
	}
	back, err := ReadH5AD(path, Options{LabelColumn: "pred"})
	if err != nil {
		t.Fatal(err)
	}
	wrSame(t, s, back)
	if !reflect.DeepEqual(back.Labels, obs["pred"]) {
		t.Errorf("labels %q, want %q", back.Labels[:5], obs["pred"][:5])
	}
	if back.Name != "out" || back.Image != nil {
		t.Errorf("name %q image %+v; want out, no image (pixels are not embedded)", back.Name, back.Image)
	}
	// A column without any value.
	back, err = ReadH5AD(path, Options{LabelColumn: "missing"})
	if err != nil || len(back.Labels) != s.NumSpots() || len(back.Labelled()) != 0 {
		t.Errorf("all-missing column: %v, %d labelled", err, len(back.Labelled()))
	}
	// A numeric column reads as labels too, formatted; NaN is "".
	back, err = ReadH5AD(path, Options{LabelColumn: "p_tumour"})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range obsFloat["p_tumour"] {
		want := strconv.FormatFloat(p, 'g', -1, 64)
		if math.IsNaN(p) {
			want = ""
		}
		if back.Labels[i] != want {
			t.Fatalf("p_tumour[%d] = %q, want %q", i, back.Labels[i], want)
		}
	}
	// The scale factors are what the reader resolves an --image with.
	img := srSmallPNG(t)
	if _, err := ReadH5AD(path, Options{Image: img}); err == nil || !strings.Contains(err.Error(), "small.png is 40×40 but spot") {
		t.Errorf("image override: %v", err)
	}
}

// TestWriteH5ADManyCategories: codes switch from int8 to int16 (pandas
// does at 127 categories) and from int16 to int32 (at 32767).
func TestWriteH5ADManyCategories(t *testing.T) {
	for _, tt := range []struct{ n, codeSize int }{{126, 1}, {127, 2}, {32766, 2}, {32767, 4}} {
		n := tt.n
		s, obs, _ := wrSectionN(n)
		path := filepath.Join(t.TempDir(), "out.h5ad")
		if err := WriteH5AD(path, s, map[string][]string{"unique": obs["unique"]}, nil); err != nil {
			t.Fatal(err)
		}
		back, err := ReadH5AD(path, Options{LabelColumn: "unique"})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Labels, obs["unique"]) {
			t.Errorf("%d categories: labels %q…, want %q…", n, back.Labels[:3], obs["unique"][:3])
		}
		h, err := openH5(path)
		if err != nil {
			t.Fatal(err)
		}
		sh, err := h.shape("/obs/unique/codes")
		h.Close()
		if err != nil || sh.class != "integer" || sh.size != tt.codeSize {
			t.Errorf("%d categories: codes are %+v (%v), want %d-byte integers", n, sh, err, tt.codeSize)
		}
	}
}

// TestWriteH5ADFixture reads the anndata-written fixture, writes it and
// reads it back.
func TestWriteH5ADFixture(t *testing.T) {
	srUseTempImageCache(t)
	in, err := ReadH5AD(srTestdata(t, "h5ad", "A1_sub_csr.h5ad"), Options{LabelColumn: "label"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "A1.h5ad")
	if err := WriteH5AD(path, in, map[string][]string{"label": in.Labels}, nil); err != nil {
		t.Fatal(err)
	}
	back, err := ReadH5AD(path, Options{LabelColumn: "label"})
	if err != nil {
		t.Fatal(err)
	}
	wrSame(t, in, back)
	if !reflect.DeepEqual(in.Labels, back.Labels) || len(in.LabelCounts()) < 2 {
		t.Errorf("labels %v, want %v", back.LabelCounts(), in.LabelCounts())
	}
}

func TestWriteH5ADBadInput(t *testing.T) {
	mod := func(edit func(s *Section, obs map[string][]string, obsFloat map[string][]float64)) func() (*Section, map[string][]string, map[string][]float64) {
		return func() (*Section, map[string][]string, map[string][]float64) {
			s, o, f := wrSection()
			edit(s, o, f)
			return s, o, f
		}
	}
	tests := []struct {
		name  string
		input func() (*Section, map[string][]string, map[string][]float64)
		want  string
	}{
		{"nil section", func() (*Section, map[string][]string, map[string][]float64) { return nil, nil, nil }, "no section"},
		{"short obs column", mod(func(s *Section, o map[string][]string, f map[string][]float64) { o["pred"] = o["pred"][:59] }),
			`obs column "pred" has 59 values for 60 spots`},
		{"long float column", mod(func(s *Section, o map[string][]string, f map[string][]float64) { f["p"] = make([]float64, 61) }),
			`obs column "p" has 61 values for 60 spots`},
		{"name twice", mod(func(s *Section, o map[string][]string, f map[string][]float64) { f["pred"] = make([]float64, 60) }),
			`"pred" is given both`},
		{"slash in name", mod(func(s *Section, o map[string][]string, f map[string][]float64) { o["a/b"] = o["pred"] }),
			`invalid obs column name "a/b"`},
		{"empty name", mod(func(s *Section, o map[string][]string, f map[string][]float64) { f[""] = f["p_tumour"] }),
			`invalid obs column name ""`},
		{"reserved name", mod(func(s *Section, o map[string][]string, f map[string][]float64) { o["array_row"] = o["pred"] }),
			`"array_row" is reserved`},
		{"index name", mod(func(s *Section, o map[string][]string, f map[string][]float64) { o["_index"] = o["pred"] }),
			`"_index" is reserved`},
		{"repeated spot id", mod(func(s *Section, o map[string][]string, f map[string][]float64) { s.Spots[9].ID = s.Spots[2].ID }),
			"spot 9 has an empty or repeated id"},
		{"NaN position", mod(func(s *Section, o map[string][]string, f map[string][]float64) { s.Spots[4].Y = math.NaN() }),
			"not finite"},
		{"gene ids", mod(func(s *Section, o map[string][]string, f map[string][]float64) { s.GeneIDs = s.GeneIDs[1:] }),
			"39 gene ids for 40 genes"},
		{"counts shape", mod(func(s *Section, o map[string][]string, f map[string][]float64) { s.Spots = s.Spots[1:] }),
			"counts are 60×40 but there are 59 spots"},
		{"no counts", mod(func(s *Section, o map[string][]string, f map[string][]float64) { s.Counts = nil }), "no counts"},
		{"bad library name", mod(func(s *Section, o map[string][]string, f map[string][]float64) { s.Name = "a/b" }),
			`"a/b" cannot name an uns/spatial library`},
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "out.h5ad")
	// An earlier good result must survive a failed write.
	good, obs, obsFloat := wrSection()
	if err := WriteH5AD(path, good, obs, obsFloat); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, o, f := tt.input()
			err := WriteH5AD(path, s, o, f)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not say %q and name %s", err, tt.want, path)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
				t.Error("failed write changed the existing file")
			}
		})
	}
	// An unwritable destination: a directory below a regular file.
	bad := filepath.Join(path, "sub", "x.h5ad")
	if err := WriteH5AD(bad, good, nil, nil); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("write below a file: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(m) > 0 {
		t.Errorf("temporary files left behind: %v", m)
	}
}

// wrExpected is what check_h5ad_write.py compares the file with.
type wrExpected struct {
	Obs      []string             `json:"obs_names"`
	Var      []string             `json:"var_names"`
	GeneIDs  []string             `json:"gene_ids"`
	X        [][]float64          `json:"X"`
	Spatial  [][2]float64         `json:"spatial"`
	ArrayRow []int                `json:"array_row"`
	ArrayCol []int                `json:"array_col"`
	ObsStr   map[string][]*string `json:"obs_str"`   // nil = missing
	ObsFloat map[string][]any     `json:"obs_float"` // "nan" for NaN
	Library  string               `json:"library"`
	Scale    map[string]float64   `json:"scalefactors"`
}

// TestWriteH5ADAnndata checks the file with Debian's anndata and h5py
// (testdata/check_h5ad_write.py) and with h5dump, when they are installed.
func TestWriteH5ADAnndata(t *testing.T) {
	const py = "/usr/bin/python3"
	scratch := t.TempDir() // run Python outside the repo: its sparse/ would shadow the sparse module
	probe := exec.Command(py, "-c", "import anndata, h5py")
	probe.Dir = scratch
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("%s with anndata and h5py not available (apt-get install python3-anndata python3-h5py): %v %s", py, err, lastLine(out))
	}
	s, obs, obsFloat := wrSection()
	path := filepath.Join(scratch, "out.h5ad")
	if err := WriteH5AD(path, s, obs, obsFloat); err != nil {
		t.Fatal(err)
	}
	exp := wrExpected{Obs: nil, Var: s.Genes, GeneIDs: s.GeneIDs, ObsStr: map[string][]*string{}, ObsFloat: map[string][]any{},
		Library: s.Name, Scale: map[string]float64{"tissue_hires_scalef": 0.25, "tissue_lowres_scalef": 0.25, "spot_diameter_fullres": 100}}
	for i, sp := range s.Spots {
		exp.Obs = append(exp.Obs, sp.ID)
		exp.Spatial = append(exp.Spatial, [2]float64{sp.X, sp.Y})
		exp.ArrayRow = append(exp.ArrayRow, sp.Row)
		exp.ArrayCol = append(exp.ArrayCol, sp.Col)
		row := make([]float64, len(s.Genes))
		for j := range row {
			row[j] = float64(s.Counts.At(i, j))
		}
		exp.X = append(exp.X, row)
	}
	for name, v := range obs {
		for _, x := range v {
			if x == "" {
				exp.ObsStr[name] = append(exp.ObsStr[name], nil)
			} else {
				exp.ObsStr[name] = append(exp.ObsStr[name], &x)
			}
		}
	}
	for name, v := range obsFloat {
		for _, x := range v {
			if math.IsNaN(x) {
				exp.ObsFloat[name] = append(exp.ObsFloat[name], "nan")
			} else {
				exp.ObsFloat[name] = append(exp.ObsFloat[name], x)
			}
		}
	}
	js, err := json.Marshal(exp)
	if err != nil {
		t.Fatal(err)
	}
	expPath := filepath.Join(scratch, "expected.json")
	if err := os.WriteFile(expPath, js, 0o644); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "check_h5ad_write.py"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, path, expPath)
	cmd.Dir = scratch
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("check_h5ad_write.py: %v", err)
	}
	if !strings.Contains(string(out), "OK") {
		t.Fatal("check_h5ad_write.py did not report OK")
	}

	h5dump, err := exec.LookPath("h5dump")
	if err != nil {
		t.Log("h5dump not installed (apt-get install hdf5-tools); skipping that check")
		return
	}
	var stdout, stderr bytes.Buffer
	dump := exec.Command(h5dump, path)
	dump.Stdout, dump.Stderr = &stdout, &stderr
	if err := dump.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("h5dump: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{`GROUP "X"`, `DATASET "spatial"`, `"csr_matrix"`, `GROUP "pred"`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("h5dump output lacks %s", want)
		}
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
