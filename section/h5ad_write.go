package section

// AnnData .h5ad writer (on-disk format of anndata 0.8+, written with
// package h5write).
//
// Written:
//
//	/                  encoding-type "anndata", encoding-version "0.1.0"
//	X                  csr_matrix 0.1.0, shape [spots, genes]: data float32,
//	                   indices int32, indptr int32 (int64 past 2^31−1 non-zeros)
//	obs                dataframe 0.2.0, _index = spot ids; columns:
//	  array_row/col    int64, when some spot has a non-zero array position
//	  <obs column>     categorical 0.2.0 (categories sorted, "" = missing,
//	                   code −1), codes int8/int16/int32 as pandas makes them
//	  <obsFloat col>   float64 array
//	var                dataframe 0.2.0, _index = gene names, gene_ids if known
//	obsm/spatial       float64 spots × 2: x, y in full-resolution pixels
//	uns/spatial/<name>/scalefactors
//	                   when the image maps full-res pixels by a pure scale s
//	                   and the spot diameter is known: tissue_hires_scalef =
//	                   tissue_lowres_scalef = s (spotfuse keeps one image per
//	                   section, so both name that image's scale) and
//	                   spot_diameter_fullres
//	layers, obsp, varm, varp, uns  empty dicts, as anndata writes them
//
// Every other element gets encoding-type/encoding-version attributes as
// anndata 0.8 writes them ("array" 0.2.0, "string-array" 0.2.0,
// "numeric-scalar" 0.2.0, "dict" 0.1.0). Image pixels are not embedded,
// and obs columns of the input file that the Section does not hold are not
// carried over.

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/spotfuse/spotfuse/atomicfile"
	"github.com/spotfuse/spotfuse/h5write"
)

// WriteH5AD writes sec as a new AnnData .h5ad file at path, atomically.
// obs adds string obs columns (stored as categoricals; "" is a missing
// value) and obsFloat numeric ones, each with one value per spot. Column
// names must be unique, non-empty, without '/', and not "_index",
// "array_row" or "array_col". sec.Labels is not written by itself: pass it
// in obs to keep it.
func WriteH5AD(path string, sec *Section, obs map[string][]string, obsFloat map[string][]float64) error {
	f, err := buildH5AD(sec, obs, obsFloat)
	if err != nil {
		return fmt.Errorf("section: writing %s: %v", path, err)
	}
	err = atomicfile.Write(path, func(w io.Writer) error {
		_, err := f.WriteTo(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("section: writing %s: %v", path, err)
	}
	return nil
}

// buildH5AD checks the input and assembles the HDF5 tree.
func buildH5AD(sec *Section, obs map[string][]string, obsFloat map[string][]float64) (*h5write.File, error) {
	if sec == nil {
		return nil, fmt.Errorf("no section")
	}
	if err := sec.Validate(); err != nil {
		return nil, err
	}
	n := sec.NumSpots()
	ids := make([]string, n)
	xy := make([]float64, 0, 2*n)
	seen := make(map[string]bool, n)
	positioned := false
	for i, sp := range sec.Spots {
		if sp.ID == "" || seen[sp.ID] {
			return nil, fmt.Errorf("section %s: spot %d has an empty or repeated id %q", sec.Name, i, sp.ID)
		}
		seen[sp.ID] = true
		if !finite(sp.X) || !finite(sp.Y) {
			return nil, fmt.Errorf("section %s: spot %s has position (%v, %v), not finite", sec.Name, sp.ID, sp.X, sp.Y)
		}
		ids[i] = sp.ID
		xy = append(xy, sp.X, sp.Y)
		positioned = positioned || sp.Row != 0 || sp.Col != 0
	}
	if sec.GeneIDs != nil && len(sec.GeneIDs) != len(sec.Genes) {
		return nil, fmt.Errorf("section %s: %d gene ids for %d genes", sec.Name, len(sec.GeneIDs), len(sec.Genes))
	}

	// Obs columns: array_row/col first, then the extra ones by name.
	var cols []string
	if positioned {
		cols = append(cols, "array_row", "array_col")
	}
	extra := slices.Sorted(maps.Keys(obs))
	for name, v := range obsFloat {
		if _, dup := obs[name]; dup {
			return nil, fmt.Errorf("obs column %q is given both as strings and as numbers", name)
		}
		if len(v) != n {
			return nil, fmt.Errorf("obs column %q has %d values for %d spots", name, len(v), n)
		}
		extra = append(extra, name)
	}
	for name, v := range obs {
		if len(v) != n {
			return nil, fmt.Errorf("obs column %q has %d values for %d spots", name, len(v), n)
		}
	}
	slices.Sort(extra)
	for _, name := range extra {
		switch {
		case name == "" || strings.Contains(name, "/"):
			return nil, fmt.Errorf("invalid obs column name %q", name)
		case name == "_index" || (positioned && (name == "array_row" || name == "array_col")):
			return nil, fmt.Errorf("obs column name %q is reserved", name)
		}
	}
	cols = append(cols, extra...)

	f := h5write.New()
	root := f.Root()
	encode(root, "anndata", "0.1.0")

	// X: CSR. Counts.Indptr is []int; anndata readers take int32 or int64.
	m := sec.Counts
	x := encode(root.Group("X"), "csr_matrix", "0.1.0").Attr("shape", []int64{int64(m.Rows), int64(m.Cols)})
	array(x.Dataset("data", m.Data))
	array(x.Dataset("indices", m.Indices))
	if m.NNZ() <= math.MaxInt32 {
		indptr := make([]int32, len(m.Indptr))
		for i, p := range m.Indptr {
			indptr[i] = int32(p)
		}
		array(x.Dataset("indptr", indptr))
	} else {
		indptr := make([]int64, len(m.Indptr))
		for i, p := range m.Indptr {
			indptr[i] = int64(p)
		}
		array(x.Dataset("indptr", indptr))
	}

	// obs.
	o := dataframe(root.Group("obs"), ids, cols)
	if positioned {
		rows, cs := make([]int64, n), make([]int64, n)
		for i, sp := range sec.Spots {
			rows[i], cs[i] = int64(sp.Row), int64(sp.Col)
		}
		array(o.Dataset("array_row", rows))
		array(o.Dataset("array_col", cs))
	}
	for _, name := range extra {
		if v, ok := obsFloat[name]; ok {
			array(o.Dataset(name, v))
		} else {
			categorical(o.Group(name), obs[name])
		}
	}

	// var.
	var varCols []string
	if sec.GeneIDs != nil {
		varCols = []string{"gene_ids"}
	}
	v := dataframe(root.Group("var"), sec.Genes, varCols)
	if sec.GeneIDs != nil {
		stringArray(v.Dataset("gene_ids", sec.GeneIDs))
	}

	// obsm, uns and the empty mappings.
	array(encode(root.Group("obsm"), "dict", "0.1.0").Dataset("spatial", xy, n, 2))
	uns := encode(root.Group("uns"), "dict", "0.1.0")
	if s, diam, ok := imageScale(sec); ok {
		name := sec.Name
		if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
			return nil, fmt.Errorf("section name %q cannot name an uns/spatial library", name)
		}
		lib := encode(encode(uns.Group("spatial"), "dict", "0.1.0").Group(name), "dict", "0.1.0")
		sf := encode(lib.Group("scalefactors"), "dict", "0.1.0")
		for _, kv := range []struct {
			key string
			v   float64
		}{{"spot_diameter_fullres", diam}, {"tissue_hires_scalef", s}, {"tissue_lowres_scalef", s}} {
			encode(sf.Dataset(kv.key, kv.v), "numeric-scalar", "0.2.0")
		}
	}
	for _, g := range []string{"layers", "obsp", "varm", "varp"} {
		encode(root.Group(g), "dict", "0.1.0")
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	return f, nil
}

// imageScale returns the scale from full-resolution pixels to the
// section's image and the spot diameter in full-resolution pixels, when the
// image is a pure scaling of the full-resolution frame.
func imageScale(sec *Section) (scale, diam float64, ok bool) {
	im := sec.Image
	if im == nil {
		return 0, 0, false
	}
	t := im.FromFullres
	if t.B != 0 || t.C != 0 || t.TX != 0 || t.TY != 0 || t.A != t.D || !(t.A > 0) || !finite(t.A) {
		return 0, 0, false
	}
	diam = im.SpotDiameterPx / t.A
	if !(diam > 0) || !finite(diam) {
		return 0, 0, false
	}
	return t.A, diam, true
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// attrSetter is an h5write group or dataset.
type attrSetter[T any] interface{ Attr(string, any) T }

// encode sets anndata's encoding-type and encoding-version attributes.
func encode[T attrSetter[T]](o T, typ, version string) T {
	return o.Attr("encoding-type", typ).Attr("encoding-version", version)
}

func array(d *h5write.Dataset)       { encode(d, "array", "0.2.0") }
func stringArray(d *h5write.Dataset) { encode(d, "string-array", "0.2.0") }

// dataframe makes g an anndata dataframe with index and the given column
// order; the caller adds the columns.
func dataframe(g *h5write.Group, index, cols []string) *h5write.Group {
	encode(g, "dataframe", "0.2.0").Attr("_index", "_index")
	if len(cols) > 0 {
		g.Attr("column-order", cols)
	} else {
		g.Attr("column-order", []float64{}) // what anndata writes for no columns
	}
	stringArray(g.Dataset("_index", index))
	return g
}

// categorical writes values as an anndata categorical in g: sorted unique
// non-empty categories and codes (−1 for "") of the smallest signed
// integer type pandas would choose (int8 below 127 categories, …).
func categorical(g *h5write.Group, values []string) {
	encode(g, "categorical", "0.2.0").Attr("ordered", false)
	var cats []string
	for _, v := range values {
		if v != "" {
			cats = append(cats, v)
		}
	}
	slices.Sort(cats)
	cats = slices.Compact(cats)
	code := make(map[string]int, len(cats))
	for i, c := range cats {
		code[c] = i
	}
	stringArray(g.Dataset("categories", cats))
	codeOf := func(v string) int {
		if v == "" {
			return -1
		}
		return code[v]
	}
	switch {
	case len(cats) < math.MaxInt8:
		c := make([]int8, len(values))
		for i, v := range values {
			c[i] = int8(codeOf(v))
		}
		array(g.Dataset("codes", c))
	case len(cats) < math.MaxInt16:
		c := make([]int16, len(values))
		for i, v := range values {
			c[i] = int16(codeOf(v))
		}
		array(g.Dataset("codes", c))
	default:
		c := make([]int32, len(values))
		for i, v := range values {
			c[i] = int32(codeOf(v))
		}
		array(g.Dataset("codes", c))
	}
}
