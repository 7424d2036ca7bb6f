package section

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
)

// Fuzz targets for the Space Ranger and AnnData readers, seeded from the
// genuine fixtures. Run one at a time, e.g.
//
//	go test ./section -run '^$' -fuzz '^Fuzz10xH5$' -fuzztime 30s
//
// Each checks that bad input gives an error (never a panic, hang or
// absurd allocation) and that accepted input is self-consistent.

func srSeed(f *testing.F, rel ...string) []byte {
	f.Helper()
	return testutil.ReadFile(f, srTestdata(f, rel...))
}

func FuzzTissuePositions(f *testing.F) {
	f.Add(srSeed(f, "visium", "A1_sub", "outs", "spatial", "tissue_positions.csv"))
	f.Add(srSeed(f, "visium", "A1_sub_v1", "outs", "spatial", "tissue_positions_list.csv"))
	f.Add([]byte("pxl_col_in_fullres,barcode,in_tissue,array_row,array_col,pxl_row_in_fullres\n1.5,A-1,1,0,0,2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pos, err := parseTissuePositions("fuzz.csv", bytes.NewReader(b))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, p := range pos {
			if p.Barcode == "" || seen[p.Barcode] || math.IsNaN(p.PxlRow) || math.IsInf(p.PxlCol, 0) {
				t.Fatalf("accepted bad row %+v", p)
			}
			seen[p.Barcode] = true
		}
	})
}

func FuzzScaleFactors(f *testing.F) {
	f.Add(srSeed(f, "visium", "A1_sub", "outs", "spatial", "scalefactors_json.json"))
	f.Add([]byte(`{"spot_diameter_fullres": 1e308, "tissue_hires_scalef": 1, "tissue_lowres_scalef": 1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sf, err := parseScaleFactors("fuzz.json", b)
		if err != nil {
			return
		}
		for _, v := range []float64{sf.SpotDiameterFullres, sf.TissueHiresScalef, sf.TissueLowresScalef} {
			if !(v > 0) || math.IsInf(v, 0) {
				t.Fatalf("accepted %+v", sf)
			}
		}
	})
}

func FuzzMTX(f *testing.F) {
	f.Add(srSeed(f, "visium", "A1_sub_v1", "outs", "filtered_feature_bc_matrix", "matrix.mtx.gz"))
	f.Add([]byte("%%MatrixMarket matrix coordinate real general\n60 40 2\n1 1 1.5\n60 40 3\n"))
	const nFeat, nBc = 60, 40
	remap := make([]int, nFeat)
	for i := range remap {
		remap[i] = i
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMTX("fuzz.mtx", bytes.NewReader(b), nFeat, nBc, remap, nFeat)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil || m.Rows != nBc || m.Cols != nFeat {
			t.Fatalf("accepted an invalid %d×%d matrix: %v", m.Rows, m.Cols, err)
		}
	})
}

func Fuzz10xH5(f *testing.F) {
	f.Add(srSeed(f, "visium", "A1_sub", "outs", "filtered_feature_bc_matrix.h5"))
	f.Add(srSeed(f, "visium", "bad", "missing_indptr.h5"))
	p := filepath.Join(f.TempDir(), "fuzz.h5")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		bcs, ids, genes, m, err := Read10xH5(p)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil || m.Rows != len(bcs) || m.Cols != len(genes) || len(ids) != len(genes) {
			t.Fatalf("accepted inconsistent matrix %d×%d for %d barcodes, %d genes: %v", m.Rows, m.Cols, len(bcs), len(genes), err)
		}
	})
}

func FuzzH5AD(f *testing.F) {
	f.Add(srSeed(f, "h5ad", "A1_sub_csr.h5ad"))
	f.Add(srSeed(f, "h5ad", "A1_sub_dense.h5ad"))
	f.Add(srSeed(f, "h5ad", "A1_sub_csc.h5ad"))
	dir := f.TempDir()
	old := h5adImageDir
	h5adImageDir = func() string { return filepath.Join(dir, "cache") }
	f.Cleanup(func() { h5adImageDir = old })
	p := filepath.Join(dir, "fuzz.h5ad")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := ReadH5AD(p, Options{LabelColumn: "label"})
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted an invalid section: %v", err)
		}
	})
}
