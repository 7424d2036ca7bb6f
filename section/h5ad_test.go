package section

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
)

// TestReadH5ADBadInput: broken .h5ad files give an error naming the file
// and the problem, never a panic.
func TestReadH5ADBadInput(t *testing.T) {
	srUseTempImageCache(t)
	dense := srTestdata(t, "h5ad", "A1_sub_dense.h5ad")
	tests := []struct {
		name string
		file func(t *testing.T) string
		opt  Options
		want string
	}{
		{"NaN in X", func(t *testing.T) string { return srTestdata(t, "h5ad", "bad", "nan_X.h5ad") }, Options{}, "X[3, 5] = NaN"},
		{"negative in X", func(t *testing.T) string { return srTestdata(t, "h5ad", "bad", "negative_X.h5ad") }, Options{}, "X[7, 2] = -1"},
		{"truncated", func(t *testing.T) string { return srCopyFile(t, dense, func(p string) { srTruncate(t, p, 20000) }) }, Options{}, "A1_sub_dense.h5ad"},
		{"corrupted", func(t *testing.T) string {
			return srCopyFile(t, dense, func(p string) { testutil.Scramble(t, p, 1000, 9000) })
		}, Options{}, "A1_sub_dense.h5ad"},
		{"empty file", func(t *testing.T) string { return srCopyFile(t, dense, func(p string) { srTruncate(t, p, 0) }) }, Options{}, "not a readable HDF5"},
		// FuzzH5AD regression: see srHugeLocalHeap.
		{"local heap size corrupt", func(t *testing.T) string { return srCopyFile(t, dense, func(p string) { srHugeLocalHeap(t, p) }) }, Options{}, "claims 1099511627776 bytes"},
		{"global heap size corrupt", func(t *testing.T) string {
			csr := srTestdata(t, "h5ad", "A1_sub_csr.h5ad")
			return srCopyFile(t, csr, func(p string) { srPatchHeap(t, p, "GCOL\x01\x00\x00\x00", 8, 0xffff000000, "") }) // crash ac12c44b
		}, Options{}, "global heap at byte"},
		{"missing label column", func(t *testing.T) string { return dense }, Options{LabelColumn: "region"}, `obs has no column "region"`},
		{"unknown library", func(t *testing.T) string { return dense }, Options{Library: "B1"}, `no library "B1"`},
		{"image override missing", func(t *testing.T) string { return dense }, Options{Image: "/nonexistent/he.png"}, "nonexistent"},
		{"image override too small", func(t *testing.T) string { return dense }, Options{Image: srSmallPNG(t)}, "small.png is 40×40 but spot"},
		{"not h5ad", func(t *testing.T) string {
			return srTestdata(t, "visium", "A1_sub", "outs", "filtered_feature_bc_matrix.h5")
		}, Options{}, "missing group /obs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.file(t)
			s, err := ReadH5AD(p, tt.opt)
			if err == nil {
				t.Fatalf("no error; read %d spots", s.NumSpots())
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), filepath.Base(p)) {
				t.Errorf("error %q does not say %q and name %s", err, tt.want, filepath.Base(p))
			}
		})
	}
}

func TestReadH5ADImageCache(t *testing.T) {
	srUseTempImageCache(t)
	p := srTestdata(t, "h5ad", "A1_sub_dense.h5ad")
	a, err := ReadH5AD(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReadH5AD(p, Options{Name: "again"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Image.Path != b.Image.Path || filepath.Base(a.Image.Path) != "A1_hires.png" || a.Name != "A1_sub_dense" || b.Name != "again" {
		t.Errorf("image %s then %s, names %s %s", a.Image.Path, b.Image.Path, a.Name, b.Name)
	}
	// The cached PNG holds the embedded pixels: compare with the Space
	// Ranger hires PNG the same script wrote from the same array.
	want := srDecodePNG(t, srTestdata(t, "visium", "A1_sub", "outs", "spatial", "tissue_hires_image.png"))
	got := srDecodePNG(t, a.Image.Path)
	if !got.Bounds().Eq(want.Bounds()) {
		t.Fatalf("bounds %v, want %v", got.Bounds(), want.Bounds())
	}
	for y := 0; y < want.Bounds().Dy(); y += 7 {
		for x := 0; x < want.Bounds().Dx(); x += 5 {
			r1, g1, b1, _ := got.At(x, y).RGBA()
			r2, g2, b2, _ := want.At(x, y).RGBA()
			if r1>>8 != r2>>8 || g1>>8 != g2>>8 || b1>>8 != b2>>8 {
				t.Fatalf("pixel (%d,%d) = %v, want %v", x, y, got.At(x, y), want.At(x, y))
			}
		}
	}
	if _, err := os.Stat(a.Image.Path); err != nil {
		t.Error(err)
	}
}

// TestRecoverH5 checks that a panic inside the HDF5 library becomes an
// error naming the file.
func TestRecoverH5(t *testing.T) {
	err := func() (err error) {
		defer recoverH5("x.h5", &err)
		var m map[string]int
		m["a"]++ // a library-style runtime panic
		return nil
	}()
	if err == nil || !strings.Contains(err.Error(), "x.h5") || !strings.Contains(err.Error(), "unreadable HDF5") {
		t.Fatalf("got %v", err)
	}
}
