package section

// AnnData .h5ad reader.
//
// Read: X (dense 2-D dataset, or a csr_matrix / csc_matrix group with
// data, indices, indptr and a shape attribute; any integer or float dtype;
// values must be finite and non-negative), obs/var names (the dataframe's
// "_index" attribute names the index dataset), var/gene_ids when present,
// obsm/spatial (N × 2: x, y in full-resolution pixels, as scanpy and
// squidpy store it), obs/array_row and obs/array_col when present (else
// Spot.Row and Spot.Col stay 0),
// uns/spatial/<library>/{images/{hires,lowres}, scalefactors} and the
// label column obs/<Options.LabelColumn> (categorical or string array).
//
// The image embedded in the .h5ad (hires if present, else lowres) is
// written once as a PNG to a cache directory,
// <os.UserCacheDir or os.TempDir>/spotfuse/h5ad-images/<key>/<library>_<res>.png,
// where key hashes the .h5ad's absolute path, size and modification time,
// and Image.Path points at it. The Section model stays a pure reference to
// an image file this way, and the patch code reads h5ad images like any
// other PNG.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/spotfuse/spotfuse/atomicfile"
	"github.com/spotfuse/spotfuse/sparse"
)

func init() { readH5AD = ReadH5AD }

// ReadH5AD reads an AnnData .h5ad file into a Section. opt.Library picks
// the uns['spatial'] entry (required when there are several), opt.Image
// overrides the image (full resolution, scale 1), opt.LabelColumn names
// the obs column holding labels. opt.Labels is applied by Open.
func ReadH5AD(path string, opt Options) (s *Section, err error) {
	h, err := openH5(path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	defer recoverH5(path, &err)

	obs, err := h.dataframeIndex("/obs")
	if err != nil {
		return nil, err
	}
	genes, err := h.dataframeIndex("/var")
	if err != nil {
		return nil, err
	}
	counts, err := h.matrixX(len(obs), len(genes))
	if err != nil {
		return nil, err
	}
	xy, sh, err := h.floats("/obsm/spatial")
	if err != nil {
		return nil, err
	}
	if len(sh.dims) != 2 || sh.dims[0] != len(obs) || sh.dims[1] < 2 {
		return nil, h.errorf("/obsm/spatial is %v, want %d × 2", sh.dims, len(obs))
	}
	rows, cols := h.optionalInts("/obs/array_row", len(obs)), h.optionalInts("/obs/array_col", len(obs))
	spots := make([]Spot, len(obs))
	seen := make(map[string]bool, len(obs))
	for i, id := range obs {
		if seen[id] {
			return nil, h.errorf("obs name %q repeats", id)
		}
		seen[id] = true
		x, y := xy[i*sh.dims[1]], xy[i*sh.dims[1]+1]
		if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
			return nil, h.errorf("/obsm/spatial row %d (%s) is not finite", i, id)
		}
		spots[i] = Spot{ID: id, X: x, Y: y}
		if rows != nil && cols != nil {
			spots[i].Row, spots[i].Col = rows[i], cols[i]
		}
	}
	name := opt.Name
	if name == "" {
		name = trimExt(filepath.Base(path))
	}
	s = &Section{Name: name, Batch: name, Source: path, Spots: spots, Genes: genes, Counts: counts}
	if h.has("/var/gene_ids") {
		if ids, err := h.strings("/var/gene_ids"); err == nil && len(ids) == len(genes) {
			s.GeneIDs = ids
		}
	}
	if s.Image, err = h.image(path, opt); err != nil {
		return nil, err
	}
	if s.Image != nil {
		if err := checkSpotsInImage(s, s.Image); err != nil {
			return nil, fmt.Errorf("%v (%s)", err, path)
		}
	}
	if opt.LabelColumn != "" {
		if s.Labels, err = h.obsColumn(opt.LabelColumn, len(obs)); err != nil {
			return nil, err
		}
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func trimExt(name string) string { return name[:len(name)-len(filepath.Ext(name))] }

// dataframeIndex reads the index of the dataframe group df.
func (h *h5File) dataframeIndex(df string) ([]string, error) {
	if _, err := h.group(df); err != nil {
		return nil, err
	}
	key := h.attrString(df, "_index")
	if key == "" {
		key = "_index"
	}
	names, err := h.strings(df + "/" + key)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, h.errorf("%s is empty", df)
	}
	return names, nil
}

// optionalInts reads an integer obs column, or nil if absent or unusable.
func (h *h5File) optionalInts(name string, n int) []int {
	if !h.has(name) {
		return nil
	}
	v, err := h.ints(name, math.MinInt32, math.MaxInt32)
	if err != nil || len(v) != n {
		return nil
	}
	return v
}

// denseBlock is how many values of a dense X are read at a time.
var denseBlock = 4 << 20

// matrixX reads /X as an nObs × nVar CSR.
func (h *h5File) matrixX(nObs, nVar int) (*sparse.CSR, error) {
	if !h.has("/X") {
		return nil, h.errorf("missing X")
	}
	if d, err := h.dataset("/X"); err == nil {
		sh, err := h.shape("/X")
		if err != nil {
			return nil, err
		}
		if sh.class != "integer" && sh.class != "float" {
			return nil, h.errorf("X holds %s, want numbers", sh.class)
		}
		if len(sh.dims) != 2 || sh.dims[0] != nObs || sh.dims[1] != nVar {
			return nil, h.errorf("X is %v, want %d obs × %d var", sh.dims, nObs, nVar)
		}
		if err := h.checkSize("/X", sh); err != nil {
			return nil, err
		}
		// Read blocks of rows so a dense X never sits in memory as float64.
		step := max(1, denseBlock/max(nVar, 1))
		b := sparse.NewBuilder(nVar)
		for r0 := 0; r0 < nObs; r0 += step {
			cnt := min(step, nObs-r0)
			raw, err := d.ReadSlice([]uint64{uint64(r0), 0}, []uint64{uint64(cnt), uint64(nVar)})
			if err != nil {
				return nil, h.errorf("X rows %d–%d: %v", r0, r0+cnt-1, err)
			}
			v, ok := raw.([]float64)
			if !ok || len(v) != cnt*nVar {
				return nil, h.errorf("X rows %d–%d: unexpected %T of %d values", r0, r0+cnt-1, raw, len(v))
			}
			for i := 0; i < cnt; i++ {
				for j := 0; j < nVar; j++ {
					x := v[i*nVar+j]
					if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
						return nil, h.errorf("X[%d, %d] = %v is not a finite non-negative count", r0+i, j, x)
					}
					b.Add(j, float32(x))
				}
				b.EndRow()
			}
		}
		return b.Build(), nil
	}
	enc := h.attrString("/X", "encoding-type")
	if enc == "" {
		if f := h.attrString("/X", "h5sparse_format"); f != "" { // anndata < 0.7
			enc = f + "_matrix"
		}
	}
	shape, err := h.attrInts("/X", "shape")
	if err != nil {
		if shape, err = h.attrInts("/X", "h5sparse_shape"); err != nil {
			return nil, h.errorf("X group has no shape attribute")
		}
	}
	if len(shape) != 2 || shape[0] != nObs || shape[1] != nVar {
		return nil, h.errorf("X shape is %v, want %d obs × %d var", shape, nObs, nVar)
	}
	switch enc {
	case "csr_matrix":
		return h.compressed("/X", nObs, nVar, nil, nVar, false)
	case "csc_matrix":
		return h.compressed("/X", nVar, nObs, nil, nObs, true)
	}
	return nil, h.errorf("X has encoding-type %q, want csr_matrix, csc_matrix or a dense array", enc)
}

// obsColumn reads obs/<col> as strings: a categorical group (codes +
// categories; code -1 = missing = ""), a string array, or numbers.
func (h *h5File) obsColumn(col string, n int) ([]string, error) {
	name := "/obs/" + col
	if !h.has(name) {
		return nil, h.errorf("obs has no column %q", col)
	}
	var out []string
	if _, err := h.group(name); err == nil {
		cats, err := h.strings(name + "/categories")
		if err != nil {
			return nil, err
		}
		codes, err := h.ints(name+"/codes", -1, len(cats)-1)
		if err != nil {
			return nil, err
		}
		out = make([]string, len(codes))
		for i, c := range codes {
			if c >= 0 {
				out[i] = cats[c]
			}
		}
	} else {
		sh, err := h.shape(name)
		if err != nil {
			return nil, err
		}
		if sh.class == "integer" || sh.class == "float" {
			v, _, err := h.floats(name)
			if err != nil {
				return nil, err
			}
			out = make([]string, len(v))
			for i, x := range v {
				if !math.IsNaN(x) {
					out[i] = strconv.FormatFloat(x, 'g', -1, 64)
				}
			}
		} else if out, err = h.strings(name); err != nil {
			return nil, err
		}
	}
	if len(out) != n {
		return nil, h.errorf("obs column %q has %d values for %d spots", col, len(out), n)
	}
	return out, nil
}

// image resolves the section image: opt.Image, else the embedded hires or
// lowres image of the spatial library.
func (h *h5File) image(path string, opt Options) (*Image, error) {
	libs := h.children("/uns/spatial")
	lib := opt.Library
	switch {
	case lib != "":
		if !slices.Contains(libs, lib) {
			return nil, h.errorf("uns/spatial has no library %q (have %v)", lib, libs)
		}
	case len(libs) == 1:
		lib = libs[0]
	case len(libs) > 1:
		return nil, h.errorf("uns/spatial has libraries %v; choose one (library option)", libs)
	}
	var sf *ScaleFactors
	if lib != "" && h.has("/uns/spatial/"+lib+"/scalefactors") {
		var err error
		if sf, err = h.scaleFactors("/uns/spatial/" + lib + "/scalefactors"); err != nil {
			return nil, err
		}
	}
	if opt.Image != "" {
		w, ht, err := imageSize(opt.Image)
		if err != nil {
			return nil, fmt.Errorf("%v (image for %s)", err, path)
		}
		img := &Image{Path: opt.Image, FromFullres: Scale(1), Width: w, Height: ht}
		if sf != nil {
			img.SpotDiameterPx = sf.SpotDiameterFullres
		}
		return img, nil
	}
	if lib == "" {
		return nil, nil
	}
	for _, res := range []struct {
		name  string
		scale func() float64
	}{
		{"hires", func() float64 { return sf.TissueHiresScalef }},
		{"lowres", func() float64 { return sf.TissueLowresScalef }},
	} {
		ds := "/uns/spatial/" + lib + "/images/" + res.name
		if !h.has(ds) {
			continue
		}
		if sf == nil {
			return nil, h.errorf("uns/spatial/%s has an image but no scalefactors", lib)
		}
		png, w, ht, err := h.cacheImage(path, ds, lib+"_"+res.name+".png")
		if err != nil {
			return nil, err
		}
		s := res.scale()
		return &Image{Path: png, FromFullres: Scale(s), SpotDiameterPx: sf.SpotDiameterFullres * s, Width: w, Height: ht}, nil
	}
	return nil, nil
}

// scaleFactors reads the scalefactors group of a spatial library; the same
// keys are required as in scalefactors_json.json.
func (h *h5File) scaleFactors(g string) (*ScaleFactors, error) {
	var sf ScaleFactors
	for _, k := range sf.keys() {
		ds := g + "/" + k.name
		if !h.has(ds) {
			if k.required {
				return nil, h.errorf("%s is missing", ds)
			}
			continue
		}
		v, _, err := h.floats(ds)
		if err != nil {
			return nil, err
		}
		if len(v) != 1 || !(v[0] > 0) || math.IsInf(v[0], 0) {
			return nil, h.errorf("%s is %v, want one positive number", ds, v)
		}
		*k.dst = v[0]
	}
	return &sf, nil
}

// h5adImageDir is where embedded images are cached; tests override it.
var h5adImageDir = func() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "spotfuse", "h5ad-images")
	}
	return filepath.Join(os.TempDir(), "spotfuse", "h5ad-images")
}

// cacheImage writes the H × W × C image dataset ds (uint8 0–255 or float
// 0–1, C = 1, 3 or 4) as a PNG in the cache and returns its path and size.
func (h *h5File) cacheImage(path, ds, file string) (string, int, int, error) {
	v, sh, err := h.floats(ds)
	if err != nil {
		return "", 0, 0, err
	}
	if len(sh.dims) == 2 {
		sh.dims = append(sh.dims, 1)
	}
	if len(sh.dims) != 3 || (sh.dims[2] != 1 && sh.dims[2] != 3 && sh.dims[2] != 4) || sh.dims[0] == 0 || sh.dims[1] == 0 {
		return "", 0, 0, h.errorf("%s is %v, want height × width × 1, 3 or 4 channels", ds, sh.dims)
	}
	ht, w, c := sh.dims[0], sh.dims[1], sh.dims[2]
	scale := 1.0
	if sh.class == "float" {
		scale = 255
	}
	img := image.NewNRGBA(image.Rect(0, 0, w, ht))
	for i := 0; i < w*ht; i++ {
		var px [4]uint8
		px[3] = 255
		for k := 0; k < c; k++ {
			x := v[i*c+k] * scale
			if math.IsNaN(x) || x < 0 || x > 255.5 {
				return "", 0, 0, h.errorf("%s: pixel value %v out of range", ds, v[i*c+k])
			}
			px[k] = uint8(math.Round(x))
		}
		if c == 1 {
			px[1], px[2] = px[0], px[0]
		}
		img.SetNRGBA(i%w, i/w, color.NRGBA{px[0], px[1], px[2], px[3]})
	}
	abs, _ := filepath.Abs(path)
	fi, err := os.Stat(path)
	if err != nil {
		return "", 0, 0, fmt.Errorf("section: %w", err)
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d", abs, fi.Size(), fi.ModTime().UnixNano())))
	dir := filepath.Join(h5adImageDir(), hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, 0, fmt.Errorf("section: %s: caching embedded image: %v", path, err)
	}
	out := filepath.Join(dir, file)
	if err := atomicfile.Write(out, func(wr io.Writer) error { return png.Encode(wr, img) }); err != nil {
		return "", 0, 0, fmt.Errorf("section: %s: caching embedded image: %v", path, err)
	}
	return out, w, ht, nil
}
