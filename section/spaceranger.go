package section

// Space Ranger (10x Visium) outs/ reader.
//
// Layout read (Space Ranger 1 and ≥ 2):
//
//	outs/filtered_feature_bc_matrix.h5        10x HDF5 v3 (preferred), or
//	outs/filtered_feature_bc_matrix/          matrix.mtx, barcodes.tsv, features.tsv (.gz)
//	outs/spatial/tissue_positions.csv         with header (≥ 2), or
//	outs/spatial/tissue_positions_list.csv    no header (1)
//	outs/spatial/scalefactors_json.json
//	outs/spatial/tissue_hires_image.png, tissue_lowres_image.png
//
// Matching barcodes to positions: every matrix barcode must have a
// positions row (else error). Positions rows without a matrix barcode are
// normal for a filtered matrix when in_tissue = 0; an in-tissue row with no
// matrix barcode means the matrix and positions disagree (a filtered matrix
// holds every in-tissue spot), but the data that is there is still
// consistent, so we log a warning through slog rather than fail. Spots with
// in_tissue = 0 are dropped unless Options.AllSpots.

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // image sizes of user-supplied full-res images
	_ "image/png"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	_ "golang.org/x/image/tiff"

	"github.com/spotfuse/spotfuse/sparse"
)

func init() { readSpaceRanger = ReadSpaceRanger }

// ReadSpaceRanger reads a Space Ranger outs/ directory (or its parent
// holding outs/). Spots are the matrix barcodes in matrix order, kept when
// in tissue (all when opt.AllSpots). Spot.X = pxl_col_in_fullres,
// Spot.Y = pxl_row_in_fullres, Row/Col = array_row/array_col.
//
// Image: opt.Image (full resolution, scale 1) if set, else
// spatial/tissue_hires_image.png, else spatial/tissue_lowres_image.png,
// with FromFullres = Scale(tissue_*_scalef) and SpotDiameterPx =
// spot_diameter_fullres × scale. Every spot centre must fall inside the
// image. opt.Labels is applied by Open, not here.
func ReadSpaceRanger(dir string, opt Options) (*Section, error) {
	outs := dir
	if fi, err := os.Stat(filepath.Join(dir, "outs")); err == nil && fi.IsDir() {
		outs = filepath.Join(dir, "outs")
	}
	if _, err := os.Stat(outs); err != nil {
		return nil, fmt.Errorf("section: %w", err)
	}
	var (
		barcodes, geneIDs, genes []string
		counts                   *sparse.CSR
		err                      error
		h5                       = filepath.Join(outs, "filtered_feature_bc_matrix.h5")
		mtx                      = filepath.Join(outs, "filtered_feature_bc_matrix")
		matrixPath               string
	)
	switch {
	case exists(h5):
		matrixPath = h5
		barcodes, geneIDs, genes, counts, err = Read10xH5(h5)
	case exists(mtx):
		matrixPath = mtx
		barcodes, geneIDs, genes, counts, err = ReadMTX(mtx)
	default:
		return nil, fmt.Errorf("section: %s: no filtered_feature_bc_matrix.h5 or filtered_feature_bc_matrix/", outs)
	}
	if err != nil {
		return nil, err
	}
	spatial := filepath.Join(outs, "spatial")
	posPath := filepath.Join(spatial, "tissue_positions.csv")
	if !exists(posPath) {
		posPath = filepath.Join(spatial, "tissue_positions_list.csv")
	}
	if !exists(posPath) {
		return nil, fmt.Errorf("section: %s: no tissue_positions.csv or tissue_positions_list.csv", spatial)
	}
	pos, err := ReadTissuePositions(posPath)
	if err != nil {
		return nil, err
	}
	byBarcode := make(map[string]int, len(pos))
	for i, p := range pos {
		byBarcode[p.Barcode] = i
	}
	inMatrix := make(map[string]bool, len(barcodes))
	var keep []int
	var spots []Spot
	for i, b := range barcodes {
		inMatrix[b] = true
		k, ok := byBarcode[b]
		if !ok {
			return nil, fmt.Errorf("section: %s: barcode %q of %s has no row in %s", outs, b, matrixPath, posPath)
		}
		p := pos[k]
		if !p.InTissue && !opt.AllSpots {
			continue
		}
		keep = append(keep, i)
		spots = append(spots, Spot{ID: b, Row: p.ArrayRow, Col: p.ArrayCol, X: p.PxlCol, Y: p.PxlRow})
	}
	missing := 0
	for _, p := range pos {
		if p.InTissue && !inMatrix[p.Barcode] {
			missing++
		}
	}
	if missing > 0 {
		slog.Warn("in-tissue spots missing from the matrix", "positions", posPath, "matrix", matrixPath, "spots", missing)
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("section: %s: no matrix barcode is in tissue (%s)", outs, posPath)
	}
	if len(keep) < len(barcodes) {
		counts = counts.SelectRows(keep)
	}
	name := opt.Name
	if name == "" {
		name = filepath.Base(filepath.Dir(outs))
		if filepath.Base(outs) != "outs" {
			name = filepath.Base(outs)
		}
	}
	s := &Section{Name: name, Batch: name, Source: dir, Spots: spots, Genes: genes, GeneIDs: geneIDs, Counts: counts}
	sfPath := filepath.Join(spatial, "scalefactors_json.json")
	sf, sfErr := ReadScaleFactors(sfPath)
	img, err := spaceRangerImage(spatial, opt.Image, sf, sfErr)
	if err != nil {
		return nil, err
	}
	if img != nil {
		if err := checkSpotsInImage(s, img); err != nil {
			return nil, err
		}
		s.Image = img
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// spaceRangerImage picks the image: override, hires, lowres or none.
func spaceRangerImage(spatial, override string, sf *ScaleFactors, sfErr error) (*Image, error) {
	type cand struct {
		path  string
		scale func() float64
	}
	var c []cand
	if override != "" {
		c = append(c, cand{override, func() float64 { return 1 }})
	} else {
		c = append(c,
			cand{filepath.Join(spatial, "tissue_hires_image.png"), func() float64 { return sf.TissueHiresScalef }},
			cand{filepath.Join(spatial, "tissue_lowres_image.png"), func() float64 { return sf.TissueLowresScalef }})
	}
	for _, cd := range c {
		if !exists(cd.path) {
			if override != "" {
				return nil, fmt.Errorf("section: image %s does not exist", override)
			}
			continue
		}
		if sfErr != nil {
			return nil, sfErr
		}
		w, h, err := imageSize(cd.path)
		if err != nil {
			return nil, err
		}
		s := cd.scale()
		return &Image{Path: cd.path, FromFullres: Scale(s), SpotDiameterPx: sf.SpotDiameterFullres * s, Width: w, Height: h}, nil
	}
	return nil, nil
}

// imageSize reads the size of a PNG, JPEG or TIFF from its header. For
// other formats (e.g. whole-slide .svs read through OpenSlide) it returns
// 0, 0 and no error: the size is then unknown here.
func imageSize(path string) (int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("section: %w", err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(bufio.NewReader(f))
	if errors.Is(err, image.ErrFormat) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("section: image %s: %v", path, err)
	}
	return cfg.Width, cfg.Height, nil
}

// checkSpotsInImage fails when a spot centre maps outside the image (a
// wrong scale factor or the wrong image).
func checkSpotsInImage(s *Section, img *Image) error {
	if img.Width == 0 || img.Height == 0 {
		return nil
	}
	for _, sp := range s.Spots {
		x, y := img.FromFullres.Apply(sp.X, sp.Y)
		if x < 0 || y < 0 || x >= float64(img.Width) || y >= float64(img.Height) {
			return fmt.Errorf("section: image %s is %d×%d but spot %s maps to (%.1f, %.1f): wrong image or scale factor?",
				img.Path, img.Width, img.Height, sp.ID, x, y)
		}
	}
	return nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// TissuePosition is one row of a Space Ranger tissue positions file.
type TissuePosition struct {
	Barcode            string
	InTissue           bool
	ArrayRow, ArrayCol int
	PxlRow, PxlCol     float64 // full-resolution pixels: row is y, col is x
}

// positionColumns is the column order of both positions files.
var positionColumns = []string{"barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"}

// ReadTissuePositions reads tissue_positions.csv (with header, Space Ranger
// ≥ 2; columns located by name) or tissue_positions_list.csv (no header,
// columns in the order of positionColumns).
func ReadTissuePositions(path string) ([]TissuePosition, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("section: %w", err)
	}
	defer f.Close()
	return parseTissuePositions(path, f)
}

func parseTissuePositions(path string, r io.Reader) ([]TissuePosition, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	col := []int{0, 1, 2, 3, 4, 5}
	var out []TissuePosition
	seen := map[string]int{}
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("section: %s: %v", path, err)
		}
		idx := map[string]int{}
		if line == 1 {
			for i, h := range rec {
				idx[strings.TrimPrefix(strings.TrimSpace(h), "\ufeff")] = i
			}
		}
		if _, ok := idx["barcode"]; ok {
			for k, name := range positionColumns {
				i, ok := idx[name]
				if !ok {
					return nil, fmt.Errorf("section: %s:1: header has no column %q", path, name)
				}
				col[k] = i
			}
			continue
		}
		p, err := parsePositionRow(rec, col)
		if err != nil {
			return nil, fmt.Errorf("section: %s:%d: %v", path, line, err)
		}
		if prev, ok := seen[p.Barcode]; ok {
			return nil, fmt.Errorf("section: %s:%d: barcode %q repeats line %d", path, line, p.Barcode, prev)
		}
		seen[p.Barcode] = line
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("section: %s: no positions", path)
	}
	return out, nil
}

func parsePositionRow(rec []string, col []int) (TissuePosition, error) {
	var p TissuePosition
	for k, i := range col {
		if i >= len(rec) {
			return p, fmt.Errorf("%d fields, no column %q", len(rec), positionColumns[k])
		}
	}
	field := func(k int) string { return strings.TrimSpace(rec[col[k]]) }
	p.Barcode = field(0)
	if p.Barcode == "" {
		return p, errors.New("empty barcode")
	}
	switch field(1) {
	case "0":
	case "1":
		p.InTissue = true
	default:
		return p, fmt.Errorf("in_tissue is %q, want 0 or 1", field(1))
	}
	var err error
	if p.ArrayRow, err = strconv.Atoi(field(2)); err != nil {
		return p, fmt.Errorf("array_row %q is not an integer", field(2))
	}
	if p.ArrayCol, err = strconv.Atoi(field(3)); err != nil {
		return p, fmt.Errorf("array_col %q is not an integer", field(3))
	}
	for k, dst := range []*float64{&p.PxlRow, &p.PxlCol} {
		s := field(4 + k)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return p, fmt.Errorf("%s %q is not a finite number", positionColumns[4+k], s)
		}
		*dst = v
	}
	return p, nil
}

// ScaleFactors holds spatial/scalefactors_json.json.
type ScaleFactors struct {
	SpotDiameterFullres     float64 `json:"spot_diameter_fullres"`
	TissueHiresScalef       float64 `json:"tissue_hires_scalef"`
	TissueLowresScalef      float64 `json:"tissue_lowres_scalef"`
	FiducialDiameterFullres float64 `json:"fiducial_diameter_fullres"`
}

// ReadScaleFactors reads scalefactors_json.json. spot_diameter_fullres,
// tissue_hires_scalef and tissue_lowres_scalef are required and must be
// positive; fiducial_diameter_fullres is optional (not used).
func ReadScaleFactors(path string) (*ScaleFactors, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("section: %w", err)
	}
	return parseScaleFactors(path, b)
}

// scaleKey is one key of scalefactors_json.json (and of an h5ad's
// scalefactors group) with the field of ScaleFactors it fills.
type scaleKey struct {
	name     string
	dst      *float64
	required bool
}

// keys lists the keys of sf that the readers know, with their fields.
func (sf *ScaleFactors) keys() []scaleKey {
	return []scaleKey{
		{"spot_diameter_fullres", &sf.SpotDiameterFullres, true},
		{"tissue_hires_scalef", &sf.TissueHiresScalef, true},
		{"tissue_lowres_scalef", &sf.TissueLowresScalef, true},
		{"fiducial_diameter_fullres", &sf.FiducialDiameterFullres, false},
	}
}

func parseScaleFactors(path string, b []byte) (*ScaleFactors, error) {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("section: %s: %v", path, err)
	}
	var sf ScaleFactors
	for _, k := range sf.keys() {
		v, ok := raw[k.name]
		if !ok {
			if k.required {
				return nil, fmt.Errorf("section: %s: missing key %q", path, k.name)
			}
			continue
		}
		x, ok := v.(float64)
		if !ok || !(x > 0) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("section: %s: %q is %v, want a positive number", path, k.name, v)
		}
		*k.dst = x
	}
	return &sf, nil
}

// Read10xH5 reads a 10x Genomics feature-barcode matrix HDF5 file (format
// v3: /matrix/{barcodes, data, indices, indptr, shape,
// features/{id, name, feature_type}}). The matrix is stored CSC, features ×
// barcodes; the result is spots × genes CSR holding only "Gene Expression"
// features.
func Read10xH5(path string) (barcodes, geneIDs, genes []string, counts *sparse.CSR, err error) {
	h, err := openH5(path)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	defer h.Close()
	defer recoverH5(path, &err)
	if !h.has("/matrix") {
		return nil, nil, nil, nil, h.errorf("no /matrix group (only the 10x HDF5 v3 layout of Cell Ranger ≥ 3 / Space Ranger is supported)")
	}
	if barcodes, err = h.strings("/matrix/barcodes"); err != nil {
		return nil, nil, nil, nil, err
	}
	var feats []feature
	ids, err := h.strings("/matrix/features/id")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	names, err := h.strings("/matrix/features/name")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	types, err := h.strings("/matrix/features/feature_type")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if len(names) != len(ids) || len(types) != len(ids) {
		return nil, nil, nil, nil, h.errorf("features/id, name and feature_type have %d, %d and %d entries", len(ids), len(names), len(types))
	}
	for i := range ids {
		feats = append(feats, feature{id: ids[i], name: names[i], typ: types[i]})
	}
	shape, err := h.ints("/matrix/shape", 0, math.MaxInt32)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if len(shape) != 2 || shape[0] != len(feats) || shape[1] != len(barcodes) {
		return nil, nil, nil, nil, h.errorf("/matrix/shape is %v but there are %d features and %d barcodes", shape, len(feats), len(barcodes))
	}
	seen := make(map[string]bool, len(barcodes))
	for _, b := range barcodes {
		if b == "" || seen[b] {
			return nil, nil, nil, nil, h.errorf("/matrix/barcodes: empty or repeated barcode %q", b)
		}
		seen[b] = true
	}
	remap, geneIDs, genes := keepGeneExpression(feats)
	counts, err = h.compressed("/matrix", len(barcodes), len(feats), remap, len(genes), false)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return barcodes, geneIDs, genes, counts, nil
}

// compressed reads group/{data,indices,indptr}, a compressed sparse matrix
// with nOuter pointers over nInner indices, into a CSR of rows × newCols
// where inner index k becomes column remap[k] (dropped when < 0; nil =
// identity). transpose=false: outer = rows (CSR, or a 10x CSC whose columns
// are our rows); transpose=true: outer = columns (a spots × genes CSC).
func (h *h5File) compressed(group string, nOuter, nInner int, remap []int, newCols int, transpose bool) (*sparse.CSR, error) {
	indptr, err := h.ints(group+"/indptr", 0, math.MaxInt)
	if err != nil {
		return nil, err
	}
	if len(indptr) != nOuter+1 {
		return nil, h.errorf("%s/indptr has %d entries, want %d", group, len(indptr), nOuter+1)
	}
	indices, err := h.ints(group+"/indices", 0, nInner-1)
	if err != nil {
		return nil, err
	}
	data, _, err := h.floats(group + "/data")
	if err != nil {
		return nil, err
	}
	if len(data) != len(indices) || indptr[0] != 0 || indptr[nOuter] != len(data) {
		return nil, h.errorf("%s: %d values, %d indices, indptr from %d to %d disagree", group, len(data), len(indices), indptr[0], indptr[nOuter])
	}
	for o := 0; o < nOuter; o++ {
		if indptr[o] > indptr[o+1] {
			return nil, h.errorf("%s/indptr decreases at %d", group, o)
		}
	}
	for k, v := range data {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return nil, h.errorf("%s/data[%d] = %v is not a finite non-negative count", group, k, v)
		}
	}
	col := func(k int) int {
		if remap == nil {
			return indices[k]
		}
		return remap[indices[k]]
	}
	if transpose {
		t := triplets{rows: newCols, cols: nOuter}
		for o := 0; o < nOuter; o++ {
			for k := indptr[o]; k < indptr[o+1]; k++ {
				if j := col(k); j >= 0 {
					t.add(j, o, data[k])
				}
			}
		}
		m, err := t.csr()
		if err != nil {
			return nil, h.errorf("%s: %v", group, err)
		}
		return m, nil
	}
	// Rows are already grouped: build the CSR directly, sorting a row only
	// when its indices are out of order.
	b := sparse.NewBuilder(newCols)
	type entry struct {
		c int
		v float64
	}
	var row []entry
	for o := 0; o < nOuter; o++ {
		row = row[:0]
		for k := indptr[o]; k < indptr[o+1]; k++ {
			if j := col(k); j >= 0 && data[k] != 0 {
				row = append(row, entry{j, data[k]})
			}
		}
		if !slices.IsSortedFunc(row, func(a, b entry) int { return a.c - b.c }) {
			slices.SortFunc(row, func(a, b entry) int { return a.c - b.c })
		}
		for k, e := range row {
			if k > 0 && row[k-1].c == e.c {
				return nil, h.errorf("%s: entry (%d, %d) appears twice", group, o+1, e.c+1)
			}
			b.Add(e.c, float32(e.v))
		}
		b.EndRow()
	}
	return b.Build(), nil
}
