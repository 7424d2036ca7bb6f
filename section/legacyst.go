package section

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // image headers for Image.Width/Height
	_ "image/png"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	_ "golang.org/x/image/tiff"

	"github.com/spotfuse/spotfuse/sparse"
)

// Legacy ST (Ståhl et al. 2016) layout, as in the her2st repository:
//
//	counts/{NAME}.tsv.gz                   spots × genes raw counts; header "" gene1 gene2 …; rows "XxY" c1 c2 …
//	spots/{NAME}_selection.tsv             x y new_x new_y pixel_x pixel_y selected
//	labels/{NAME}_labeled_coordinates.tsv  Row.names x y pixel_x pixel_y label (x,y = new_x,new_y)
//	scalefactors.tsv                       section image scale spot_diameter_px width height … a b c d tx ty
//
// ReadLegacyST finds the spot file, label file and scale factors next to the
// counts file (same directory first, then the her2st sibling directories).

// ReadLegacyST reads a legacy ST section from its counts table (TSV, gzip
// or plain) plus the spot file (required: it gives the full-resolution pixel
// position of each spot), the pathologist label file (optional) and the
// image scale factors (optional; without them the section has no image
// unless opt.Image is given, which is then taken as the full-resolution
// image).
//
// Counts are streamed straight into a CSR matrix. Every counts row must
// have a spot-file row; spot-file rows without counts are ignored. Rows of
// the spot file with selected = 0 are out of tissue and their counts rows
// are dropped unless opt.AllSpots is set. Batch is the section name.
func ReadLegacyST(countsPath string, opt Options) (*Section, error) {
	name := opt.Name
	if name == "" {
		name = legacyName(countsPath)
	}
	dir := filepath.Dir(countsPath)

	spotPath := opt.Spots
	if spotPath == "" {
		spotPath = findSibling(dir, "spots", name+"_selection.tsv")
		if spotPath == "" {
			return nil, fmt.Errorf("section: %s: no spot file %s_selection.tsv beside it or in ../spots (set Options.Spots)", countsPath, name)
		}
	}
	spots, err := ReadSpotFile(spotPath)
	if err != nil {
		return nil, err
	}

	s, err := readCounts(countsPath, spots, opt.AllSpots)
	if err != nil {
		return nil, err
	}
	s.Name, s.Batch = name, name

	if opt.Labels != "" {
		if err := ApplyLabelsFile(s, opt.Labels); err != nil {
			return nil, err
		}
	} else {
		if lp := findSibling(dir, "labels", name+"_labeled_coordinates.tsv"); lp != "" {
			if err := applyLabeledCoordinates(s, lp, spots); err != nil {
				return nil, err
			}
		}
	}

	sfPath := opt.Scalefactors
	if sfPath == "" {
		sfPath = findSibling(dir, "", "scalefactors.tsv")
	}
	var sf *STScaleFactors
	if sfPath != "" {
		all, err := ReadSTScaleFactors(sfPath)
		if err != nil {
			return nil, err
		}
		sf = all[name]
	}
	img, err := legacyImage(name, sf, opt.Image, spots)
	if err != nil {
		return nil, err
	}
	s.Image = img
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// legacyName derives a section name from a counts path: "A1.tsv.gz" -> "A1".
func legacyName(path string) string {
	b := filepath.Base(path)
	for _, ext := range []string{".gz", ".tsv", ".txt"} {
		b = strings.TrimSuffix(b, ext)
	}
	return strings.TrimSuffix(b, "_stdata")
}

// findSibling returns dir/file, or dir/../sub/file, when it exists.
func findSibling(dir, sub, file string) string {
	for _, p := range []string{filepath.Join(dir, file), filepath.Join(dir, "..", sub, file)} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// SpotRow is one row of a legacy ST spot file.
type SpotRow struct {
	X, Y           int     // array column and row; the spot id is "{X}x{Y}"
	NewX, NewY     float64 // fitted array position (NaN if the file has no such column)
	PixelX, PixelY float64 // centre in full-resolution image pixels
	Selected       bool    // under tissue
	Line           int     // line in the file (1-based)
	ID             string  // "{X}x{Y}"
}

// SpotFile is a parsed legacy ST spot file.
type SpotFile struct {
	Path string
	Rows []SpotRow
	byID map[string]int
}

// Lookup returns the row for spot id and whether it exists.
func (f *SpotFile) Lookup(id string) (*SpotRow, bool) {
	i, ok := f.byID[id]
	if !ok {
		return nil, false
	}
	return &f.Rows[i], true
}

// ReadSpotFile reads a legacy ST spot file (*_selection.tsv): tab-separated
// with a header naming at least x, y, pixel_x and pixel_y; new_x, new_y and
// selected are optional.
func ReadSpotFile(path string) (*SpotFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("section: spot file: %w", err)
	}
	defer f.Close()
	return parseSpotFile(path, f)
}

// eachTSVRow calls fn with the line number and the tab-separated fields of
// every line of sc that is not blank (a trailing CR dropped), stopping at
// fn's first error; a read error is reported at the line it stopped on.
func eachTSVRow(sc *bufio.Scanner, path string, fn func(line int, fields []string) error) error {
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		if err := fn(line, strings.Split(text, "\t")); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("section: %s:%d: %w", path, line+1, err)
	}
	return nil
}

func parseSpotFile(path string, r io.Reader) (*SpotFile, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var col map[string]int
	nHeader := 0
	sf := &SpotFile{Path: path, byID: map[string]int{}}
	if err := eachTSVRow(sc, path, func(line int, fields []string) error {
		if col == nil {
			col = map[string]int{}
			nHeader = len(fields)
			for i, h := range fields {
				h = strings.TrimSpace(h)
				if _, dup := col[h]; dup {
					return fmt.Errorf("section: %s:%d: header repeats column %q", path, line, h)
				}
				col[h] = i
			}
			for _, need := range []string{"x", "y", "pixel_x", "pixel_y"} {
				if _, ok := col[need]; !ok {
					return fmt.Errorf("section: %s: header has no %q column (want x, y, new_x, new_y, pixel_x, pixel_y, selected)", path, need)
				}
			}
			return nil
		}
		if len(fields) != nHeader {
			return fmt.Errorf("section: %s:%d: %d fields, header has %d", path, line, len(fields), nHeader)
		}
		num := func(name string) (float64, error) {
			i, ok := col[name]
			if !ok {
				return math.NaN(), nil
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(fields[i]), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("section: %s:%d: column %s: %q is not a finite number", path, line, name, fields[i])
			}
			return v, nil
		}
		row := SpotRow{Line: line, Selected: true}
		var vals [6]float64
		for k, name := range []string{"x", "y", "new_x", "new_y", "pixel_x", "pixel_y"} {
			v, err := num(name)
			if err != nil {
				return err
			}
			vals[k] = v
		}
		if vals[0] != math.Trunc(vals[0]) || vals[1] != math.Trunc(vals[1]) || math.Abs(vals[0]) > 1e6 || math.Abs(vals[1]) > 1e6 {
			return fmt.Errorf("section: %s:%d: array position x=%s y=%s is not an integer", path, line, fields[col["x"]], fields[col["y"]])
		}
		row.X, row.Y = int(vals[0]), int(vals[1])
		row.NewX, row.NewY, row.PixelX, row.PixelY = vals[2], vals[3], vals[4], vals[5]
		if i, ok := col["selected"]; ok {
			switch strings.TrimSpace(fields[i]) {
			case "1":
			case "0":
				row.Selected = false
			default:
				return fmt.Errorf("section: %s:%d: column selected: %q is not 0 or 1", path, line, fields[i])
			}
		}
		row.ID = strconv.Itoa(row.X) + "x" + strconv.Itoa(row.Y)
		if prev, dup := sf.byID[row.ID]; dup {
			return fmt.Errorf("section: %s:%d: spot %s already on line %d", path, line, row.ID, sf.Rows[prev].Line)
		}
		sf.byID[row.ID] = len(sf.Rows)
		sf.Rows = append(sf.Rows, row)
		return nil
	}); err != nil {
		return nil, err
	}
	if col == nil {
		return nil, fmt.Errorf("section: %s: empty spot file", path)
	}
	if len(sf.Rows) == 0 {
		return nil, fmt.Errorf("section: %s: no spots", path)
	}
	return sf, nil
}

// readCounts streams a counts table into a Section (Spots, Genes, Counts,
// Source); rows are matched to spots by id.
func readCounts(path string, spots *SpotFile, allSpots bool) (*Section, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("section: counts: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(strings.ToLower(path), ".gz") {
		zr, err := gzip.NewReader(bufio.NewReaderSize(f, 256<<10))
		if err != nil {
			return nil, fmt.Errorf("section: %s: not gzip: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	hint := 0
	if fi, err := f.Stat(); err == nil {
		hint = int(fi.Size()) // ~0.8 non-zeros per compressed byte in her2st
		if r == io.Reader(f) {
			hint /= 4
		}
	}
	return parseCounts(path, r, spots, allSpots, hint)
}

// csrBuilder accumulates CSR rows (columns increasing, no zeros).
type csrBuilder struct {
	indptr  []int
	indices []int32
	data    []float32
}

func (b *csrBuilder) add(col int, v float32) {
	b.indices = append(b.indices, int32(col))
	b.data = append(b.data, v)
}

func (b *csrBuilder) endRow() { b.indptr = append(b.indptr, len(b.data)) }

// build returns the matrix, trimming spare capacity when it is large.
func (b *csrBuilder) build(cols int) *sparse.CSR {
	idx, val := b.indices, b.data
	if cap(idx) > len(idx)+len(idx)/8 {
		idx = append([]int32(nil), idx...)
		val = append([]float32(nil), val...)
	}
	return &sparse.CSR{Rows: len(b.indptr) - 1, Cols: cols, Indptr: b.indptr, Indices: idx, Data: val}
}

// parseCounts parses a spots × genes table. When spots is nil, rows are not
// joined (Spots get only IDs); used by the fuzz target.
//
// nnzHint, if positive, is the expected number of non-zeros (capacity).
func parseCounts(path string, r io.Reader, spots *SpotFile, allSpots bool, nnzHint int) (*Section, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	var long []byte
	// readLine returns the next line without its end; the slice is only
	// valid until the next call.
	readLine := func() ([]byte, error) {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long[:0], line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err == io.EOF && len(line) > 0 {
			err = nil
		}
		return bytes.TrimRight(line, "\r\n"), err
	}
	wrap := func(line int, err error) error {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
			return fmt.Errorf("section: %s:%d: truncated or corrupt gzip: %w", path, line, err)
		}
		return fmt.Errorf("section: %s:%d: %w", path, line, err)
	}

	head, err := readLine()
	if err == io.EOF {
		return nil, fmt.Errorf("section: %s: empty counts file", path)
	}
	if err != nil {
		return nil, wrap(1, err)
	}
	header := strings.Split(string(head), "\t")
	s := &Section{Source: path}
	// genesFrom is the field index of the first gene in data rows.
	if header[0] == "" {
		s.Genes = header[1:]
	} else {
		s.Genes = nil // decided on the first data row
	}
	if len(header) < 2 {
		return nil, fmt.Errorf("section: %s:1: header has %d field(s); want an empty first field then gene names", path, len(header))
	}

	var b *csrBuilder
	seen := map[string]int{}
	line := 1
	for {
		raw, err := readLine()
		if err == io.EOF {
			break
		}
		line++
		if err != nil {
			return nil, wrap(line, err)
		}
		if len(raw) == 0 {
			continue
		}
		tab := bytes.IndexByte(raw, '\t')
		if tab < 0 {
			return nil, fmt.Errorf("section: %s:%d: row has only a spot id", path, line)
		}
		id := string(raw[:tab])
		if s.Genes == nil {
			// R-style header (no field above the row names) or a named id column.
			n := 1 + bytes.Count(raw, []byte{'\t'})
			switch n {
			case len(header) + 1:
				s.Genes = header
			case len(header):
				s.Genes = header[1:]
			default:
				return nil, fmt.Errorf("section: %s:%d: row has %d fields, header has %d", path, line, n, len(header))
			}
		}
		if b == nil {
			b = &csrBuilder{indptr: []int{0}, indices: make([]int32, 0, nnzHint), data: make([]float32, 0, nnzHint)}
		}
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("section: %s:%d: duplicated spot id %q (first on line %d)", path, line, id, prev)
		}
		seen[id] = line
		sp := Spot{ID: id}
		if spots != nil {
			row, ok := spots.Lookup(id)
			if !ok {
				return nil, fmt.Errorf("section: %s:%d: spot %q has no row in spot file %s", path, line, id, spots.Path)
			}
			if !row.Selected && !allSpots {
				continue
			}
			sp = Spot{ID: id, Row: row.Y, Col: row.X, X: row.PixelX, Y: row.PixelY}
		}
		if err := parseCountRow(raw[tab+1:], len(s.Genes), b); err != nil {
			return nil, fmt.Errorf("section: %s:%d: spot %s: %w", path, line, id, err)
		}
		b.endRow()
		s.Spots = append(s.Spots, sp)
	}
	if len(s.Spots) == 0 {
		return nil, fmt.Errorf("section: %s: no counts rows", path)
	}
	s.Counts = b.build(len(s.Genes))
	return s, nil
}

// parseCountRow adds the tab-separated counts in p (one per gene) to the
// current row of b. Plain digit runs are parsed in one pass (the common
// case); anything else goes through strconv.ParseFloat and must be a finite
// non-negative number.
func parseCountRow(p []byte, ngenes int, b *csrBuilder) error {
	col := 0
	i := 0
	for {
		if col >= ngenes {
			return fmt.Errorf("more than %d counts (one per gene in the header)", ngenes)
		}
		start := i
		var v uint64
		for i < len(p) && p[i] >= '0' && p[i] <= '9' && i-start < 18 {
			v = v*10 + uint64(p[i]-'0')
			i++
		}
		if i == start || (i < len(p) && p[i] != '\t') {
			// not a plain integer: find the field end and parse it slowly
			for i < len(p) && p[i] != '\t' {
				i++
			}
			field := p[start:i]
			f, err := strconv.ParseFloat(string(bytes.TrimSpace(field)), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > math.MaxFloat32 {
				return fmt.Errorf("column %d: %q is not a non-negative count", col+2, field)
			}
			if f != 0 {
				b.add(col, float32(f))
			}
		} else if v != 0 {
			b.add(col, float32(v))
		}
		col++
		if i >= len(p) {
			break
		}
		i++ // the tab
	}
	if col != ngenes {
		return fmt.Errorf("%d counts, header has %d genes", col, ngenes)
	}
	return nil
}

// coordKey rounds a fitted array coordinate to 3 decimals (the label join key).
func coordKey(v float64) int64 { return int64(math.Round(v * 1000)) }

// applyLabeledCoordinates joins a her2st label file to s: label x,y are
// matched to the spot file's new_x,new_y after rounding both to 3 decimals.
// Rows with NA coordinates are dropped (logged); a row matching no spot-file
// row, or two rows for one spot, is an error. Labels of spots without a
// counts row are ignored (logged at debug level).
func applyLabeledCoordinates(s *Section, path string, spots *SpotFile) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("section: labels: %w", err)
	}
	defer f.Close()
	type key struct{ x, y int64 }
	byCoord := make(map[key]int, len(spots.Rows))
	for i, r := range spots.Rows {
		if math.IsNaN(r.NewX) || math.IsNaN(r.NewY) {
			return fmt.Errorf("section: %s: spot file %s has no new_x/new_y columns to join labels on", path, spots.Path)
		}
		byCoord[key{coordKey(r.NewX), coordKey(r.NewY)}] = i
	}
	spotIndex := make(map[string]int, len(s.Spots))
	for i, sp := range s.Spots {
		spotIndex[sp.ID] = i
	}
	labels := make([]string, len(s.Spots))
	taken := map[int]int{}
	sc := bufio.NewScanner(f)
	var cx, cy, cl = -1, -1, -1
	var nNA, nNoCounts int
	if err := eachTSVRow(sc, path, func(line int, fields []string) error {
		if cl < 0 {
			for i, h := range fields {
				switch strings.TrimSpace(h) {
				case "x":
					cx = i
				case "y":
					cy = i
				case "label":
					cl = i
				}
			}
			if cx < 0 || cy < 0 || cl < 0 {
				return fmt.Errorf("section: %s:1: header needs x, y and label columns", path)
			}
			return nil
		}
		if len(fields) <= max(cx, cy, cl) {
			return fmt.Errorf("section: %s:%d: %d fields, want at least %d", path, line, len(fields), max(cx, cy, cl)+1)
		}
		xs, ys := strings.TrimSpace(fields[cx]), strings.TrimSpace(fields[cy])
		if xs == "NA" || ys == "NA" || xs == "" || ys == "" {
			nNA++
			return nil
		}
		x, err1 := strconv.ParseFloat(xs, 64)
		y, err2 := strconv.ParseFloat(ys, 64)
		if err1 != nil || err2 != nil || math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
			return fmt.Errorf("section: %s:%d: coordinates x=%q y=%q are not numbers", path, line, xs, ys)
		}
		label := strings.TrimSpace(fields[cl])
		if label == "" || label == "NA" {
			return nil
		}
		si, ok := byCoord[key{coordKey(x), coordKey(y)}]
		if !ok {
			return fmt.Errorf("section: %s:%d: label at x=%s y=%s matches no new_x/new_y in spot file %s", path, line, xs, ys, spots.Path)
		}
		if prev, dup := taken[si]; dup {
			return fmt.Errorf("section: %s:%d: spot %s already labelled on line %d", path, line, spots.Rows[si].ID, prev)
		}
		taken[si] = line
		i, ok := spotIndex[spots.Rows[si].ID]
		if !ok {
			nNoCounts++
			return nil
		}
		labels[i] = label
		return nil
	}); err != nil {
		return err
	}
	if nNA > 0 {
		slog.Info("dropped label rows with NA coordinates", "file", path, "rows", nNA)
	}
	if nNoCounts > 0 {
		slog.Debug("labelled spots without a counts row ignored", "file", path, "spots", nNoCounts)
	}
	s.Labels = labels
	return nil
}

// STScaleFactors is one row of a legacy ST scalefactors.tsv.
type STScaleFactors struct {
	Section        string
	Image          string // absolute or relative to the scalefactors file's directory, resolved
	SpotDiameterPx float64
	Width, Height  int
	Mapping        string // "scale", "affine_approx", …
	Affine         Affine
}

// ReadSTScaleFactors reads a scalefactors.tsv (one row per section with an
// image) keyed by section name.
func ReadSTScaleFactors(path string) (map[string]*STScaleFactors, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("section: scale factors: %w", err)
	}
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	col := map[string]int{}
	for i, h := range strings.Split(lines[0], "\t") {
		col[strings.TrimSpace(h)] = i
	}
	need := []string{"section", "image", "spot_diameter_px", "width", "height", "a", "b", "c", "d", "tx", "ty"}
	for _, n := range need {
		if _, ok := col[n]; !ok {
			return nil, fmt.Errorf("section: %s: header has no %q column", path, n)
		}
	}
	out := map[string]*STScaleFactors{}
	for ln, text := range lines[1:] {
		if strings.TrimSpace(text) == "" {
			continue
		}
		fields := strings.Split(text, "\t")
		if len(fields) != len(col) {
			return nil, fmt.Errorf("section: %s:%d: %d fields, header has %d", path, ln+2, len(fields), len(col))
		}
		num := func(n string) (float64, error) {
			v, err := strconv.ParseFloat(strings.TrimSpace(fields[col[n]]), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("section: %s:%d: column %s: %q is not a finite number", path, ln+2, n, fields[col[n]])
			}
			return v, nil
		}
		var v [9]float64
		for k, n := range []string{"spot_diameter_px", "width", "height", "a", "b", "c", "d", "tx", "ty"} {
			if v[k], err = num(n); err != nil {
				return nil, err
			}
		}
		if v[0] <= 0 || v[1] < 1 || v[2] < 1 {
			return nil, fmt.Errorf("section: %s:%d: spot diameter and image size must be positive", path, ln+2)
		}
		sf := &STScaleFactors{
			Section:        strings.TrimSpace(fields[col["section"]]),
			Image:          strings.TrimSpace(fields[col["image"]]),
			SpotDiameterPx: v[0], Width: int(v[1]), Height: int(v[2]),
			Affine: Affine{A: v[3], B: v[4], C: v[5], D: v[6], TX: v[7], TY: v[8]},
		}
		if i, ok := col["mapping"]; ok {
			sf.Mapping = strings.TrimSpace(fields[i])
		}
		if !filepath.IsAbs(sf.Image) {
			sf.Image = filepath.Join(filepath.Dir(path), sf.Image)
		}
		if _, dup := out[sf.Section]; dup {
			return nil, fmt.Errorf("section: %s:%d: section %s listed twice", path, ln+2, sf.Section)
		}
		out[sf.Section] = sf
	}
	return out, nil
}

// legacyImage builds the image reference of a section from its scale
// factors row and/or an image override, checking the image header.
func legacyImage(name string, sf *STScaleFactors, override string, spots *SpotFile) (*Image, error) {
	if sf == nil && override == "" {
		return nil, nil
	}
	img := &Image{}
	switch {
	case override != "":
		// opt.Image is a full-resolution image: identity mapping, and the
		// spot diameter in full-res pixels.
		img.Path, img.FromFullres = override, Scale(1)
		if sf != nil {
			t := sf.Affine
			img.SpotDiameterPx = sf.SpotDiameterPx / math.Sqrt(math.Abs(t.A*t.D-t.B*t.C))
		} else {
			// Half the spacing of neighbouring array positions (100 µm spots,
			// 200 µm pitch).
			img.SpotDiameterPx = 0.5 * arrayPitch(spots)
		}
		if !(img.SpotDiameterPx > 0) || math.IsInf(img.SpotDiameterPx, 0) {
			return nil, fmt.Errorf("section: %s: cannot work out the spot diameter for image %s (need scale factors or new_x/new_y and pixel_x/pixel_y in spot file %s)", name, override, spots.Path)
		}
	default:
		img.Path, img.FromFullres, img.SpotDiameterPx = sf.Image, sf.Affine, sf.SpotDiameterPx
		if sf.Mapping != "" && sf.Mapping != "scale" {
			slog.Warn("image mapping is approximate; do not use its patches for supervision", "section", name, "mapping", sf.Mapping)
		}
	}
	f, err := os.Open(img.Path)
	if err != nil {
		return nil, fmt.Errorf("section: %s: image: %w", name, err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("section: %s: image %s: %w", name, img.Path, err)
	}
	img.Width, img.Height = cfg.Width, cfg.Height
	if sf != nil && override == "" && (sf.Width != cfg.Width || sf.Height != cfg.Height) {
		return nil, fmt.Errorf("section: %s: image %s is %d×%d but scale factors say %d×%d", name, img.Path, cfg.Width, cfg.Height, sf.Width, sf.Height)
	}
	return img, nil
}

// arrayPitch fits pixel = slope*new + c along x and y by least squares and
// returns the mean slope: full-resolution pixels per array position.
func arrayPitch(spots *SpotFile) float64 {
	fit := func(u, v func(r SpotRow) float64) float64 {
		var n, su, sv, suu, suv float64
		for _, r := range spots.Rows {
			a, b := u(r), v(r)
			if math.IsNaN(a) || math.IsNaN(b) {
				continue
			}
			n++
			su += a
			sv += b
			suu += a * a
			suv += a * b
		}
		d := n*suu - su*su
		if n < 2 || d == 0 {
			return math.NaN()
		}
		return (n*suv - su*sv) / d
	}
	sx := fit(func(r SpotRow) float64 { return r.NewX }, func(r SpotRow) float64 { return r.PixelX })
	sy := fit(func(r SpotRow) float64 { return r.NewY }, func(r SpotRow) float64 { return r.PixelY })
	return (sx + sy) / 2
}
