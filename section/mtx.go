package section

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spotfuse/spotfuse/sparse"
)

// geneExpression is the 10x feature type kept by the Space Ranger readers.
const geneExpression = "Gene Expression"

// ReadMTX reads a 10x feature-barcode matrix directory
// (filtered_feature_bc_matrix/ with matrix.mtx, barcodes.tsv and
// features.tsv, each optionally gzip-compressed; the Cell Ranger 2 name
// genes.tsv is accepted too). The Matrix Market file is genes × barcodes;
// the result is transposed to spots × genes. Only "Gene Expression"
// features are kept (all features when features.tsv has no type column).
func ReadMTX(dir string) (barcodes []string, geneIDs, genes []string, counts *sparse.CSR, err error) {
	bcPath, err := findGz(dir, "barcodes.tsv")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ftPath, err := findGz(dir, "features.tsv", "genes.tsv")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	mtxPath, err := findGz(dir, "matrix.mtx")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if barcodes, err = readLines(bcPath, parseBarcodes); err != nil {
		return nil, nil, nil, nil, err
	}
	var feats []feature
	if err = withReader(ftPath, func(r io.Reader) error {
		feats, err = parseFeatures(ftPath, r)
		return err
	}); err != nil {
		return nil, nil, nil, nil, err
	}
	remap, geneIDs, genes := keepGeneExpression(feats)
	err = withReader(mtxPath, func(r io.Reader) error {
		counts, err = parseMTX(mtxPath, r, len(feats), len(barcodes), remap, len(genes))
		return err
	})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return barcodes, geneIDs, genes, counts, nil
}

// feature is one row of features.tsv.
type feature struct{ id, name, typ string }

// keepGeneExpression maps old feature index → new gene index (-1 = drop).
func keepGeneExpression(feats []feature) (remap []int, ids, names []string) {
	remap = make([]int, len(feats))
	for i, f := range feats {
		if f.typ != "" && f.typ != geneExpression {
			remap[i] = -1
			continue
		}
		remap[i] = len(ids)
		ids = append(ids, f.id)
		names = append(names, f.name)
	}
	return remap, ids, names
}

// findGz returns dir/name.gz or dir/name for the first name that exists.
func findGz(dir string, names ...string) (string, error) {
	for _, n := range names {
		for _, p := range []string{filepath.Join(dir, n+".gz"), filepath.Join(dir, n)} {
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("section: %s: no %s(.gz)", dir, strings.Join(names, "(.gz) or "))
}

// withReader opens path, transparently gunzipping *.gz, and calls fn.
func withReader(path string, fn func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("section: %w", err)
	}
	defer f.Close()
	var r io.Reader = bufio.NewReader(f)
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("section: %s: %v", path, err)
		}
		defer gz.Close()
		r = gz
	}
	er := &errReader{r: r}
	if err := fn(er); err != nil {
		if er.err != nil && er.err != io.EOF {
			// The parse error comes from a cut or corrupt stream.
			return fmt.Errorf("section: %s: truncated or corrupt file: %v", path, er.err)
		}
		return err
	}
	return nil
}

// errReader remembers the first read error of r.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

func readLines(path string, parse func(string, io.Reader) ([]string, error)) (out []string, err error) {
	err = withReader(path, func(r io.Reader) error {
		out, err = parse(path, r)
		return err
	})
	return out, err
}

// parseBarcodes reads one barcode per line (first tab field); barcodes must
// be unique and non-empty.
func parseBarcodes(path string, r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []string
	seen := map[string]int{}
	for line := 1; sc.Scan(); line++ {
		b, _, _ := strings.Cut(strings.TrimRight(sc.Text(), "\r"), "\t")
		if b == "" {
			return nil, fmt.Errorf("section: %s:%d: empty barcode", path, line)
		}
		if prev, ok := seen[b]; ok {
			return nil, fmt.Errorf("section: %s:%d: barcode %q repeats line %d", path, line, b, prev)
		}
		seen[b] = line
		out = append(out, b)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("section: %s: %v", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("section: %s: no barcodes", path)
	}
	return out, nil
}

// parseFeatures reads features.tsv (id, name, type) or genes.tsv (id, name).
func parseFeatures(path string, r io.Reader) ([]feature, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []feature
	for line := 1; sc.Scan(); line++ {
		f := strings.Split(strings.TrimRight(sc.Text(), "\r"), "\t")
		if len(f) < 2 || f[0] == "" {
			return nil, fmt.Errorf("section: %s:%d: want id<TAB>name[<TAB>type], got %q", path, line, sc.Text())
		}
		ft := feature{id: f[0], name: f[1]}
		if ft.name == "" {
			ft.name = ft.id
		}
		if len(f) >= 3 {
			ft.typ = f[2]
		}
		out = append(out, ft)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("section: %s: %v", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("section: %s: no features", path)
	}
	return out, nil
}

// parseMTX reads a Matrix Market coordinate file of nFeat × nBc (features ×
// barcodes) and returns the barcodes × kept-genes CSR.
func parseMTX(path string, r io.Reader, nFeat, nBc int, remap []int, nGenes int) (*sparse.CSR, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	next := func() (string, bool) {
		for sc.Scan() {
			line++
			t := strings.TrimSpace(sc.Text())
			if t == "" || strings.HasPrefix(t, "%") {
				if line == 1 {
					return t, true
				}
				continue
			}
			return t, true
		}
		return "", false
	}
	head, ok := next()
	if !ok {
		return nil, fmt.Errorf("section: %s: empty file", path)
	}
	h := strings.Fields(strings.ToLower(head))
	if len(h) != 5 || h[0] != "%%matrixmarket" || h[1] != "matrix" || h[2] != "coordinate" ||
		(h[3] != "integer" && h[3] != "real") || h[4] != "general" {
		return nil, fmt.Errorf("section: %s:1: want \"%%%%MatrixMarket matrix coordinate integer|real general\", got %q", path, head)
	}
	size, ok := next()
	if !ok {
		return nil, fmt.Errorf("section: %s: no size line", path)
	}
	sf := strings.Fields(size)
	if len(sf) != 3 {
		return nil, fmt.Errorf("section: %s:%d: want \"rows cols entries\", got %q", path, line, size)
	}
	var dims [3]int
	for i, s := range sf {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("section: %s:%d: bad size %q", path, line, s)
		}
		dims[i] = n
	}
	if dims[0] != nFeat || dims[1] != nBc {
		return nil, fmt.Errorf("section: %s:%d: matrix is %d×%d but there are %d features and %d barcodes", path, line, dims[0], dims[1], nFeat, nBc)
	}
	if dims[2] > dims[0]*dims[1] && dims[0] > 0 {
		return nil, fmt.Errorf("section: %s:%d: %d entries exceed %d×%d", path, line, dims[2], dims[0], dims[1])
	}
	t := triplets{rows: nBc, cols: nGenes}
	n := 0
	for {
		s, ok := next()
		if !ok {
			break
		}
		f := strings.Fields(s)
		if len(f) != 3 {
			return nil, fmt.Errorf("section: %s:%d: want \"row col value\", got %q", path, line, s)
		}
		g, err1 := strconv.Atoi(f[0])
		b, err2 := strconv.Atoi(f[1])
		v, err3 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("section: %s:%d: bad entry %q", path, line, s)
		}
		if g < 1 || g > nFeat || b < 1 || b > nBc {
			return nil, fmt.Errorf("section: %s:%d: entry (%d, %d) outside %d×%d", path, line, g, b, nFeat, nBc)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return nil, fmt.Errorf("section: %s:%d: count %v is not a finite non-negative number", path, line, f[2])
		}
		n++
		if n > dims[2] {
			return nil, fmt.Errorf("section: %s:%d: more entries than the %d announced", path, line, dims[2])
		}
		if j := remap[g-1]; j >= 0 {
			t.add(b-1, j, v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("section: %s: %v", path, err)
	}
	if n != dims[2] {
		return nil, fmt.Errorf("section: %s: %d entries, header announces %d (truncated file?)", path, n, dims[2])
	}
	m, err := t.csr()
	if err != nil {
		return nil, fmt.Errorf("section: %s: %v", path, err)
	}
	return m, nil
}

// triplets collects (row, col, value) entries in any order and builds a
// CSR; duplicates are an error and zeros are dropped.
type triplets struct {
	rows, cols int
	r, c       []int32
	v          []float32
}

func (t *triplets) add(i, j int, v float64) {
	if v == 0 {
		return
	}
	t.r = append(t.r, int32(i))
	t.c = append(t.c, int32(j))
	t.v = append(t.v, float32(v))
}

func (t *triplets) csr() (*sparse.CSR, error) {
	m := &sparse.CSR{Rows: t.rows, Cols: t.cols, Indptr: make([]int, t.rows+1)}
	for _, i := range t.r {
		m.Indptr[i+1]++
	}
	for i := 0; i < t.rows; i++ {
		m.Indptr[i+1] += m.Indptr[i]
	}
	m.Indices = make([]int32, len(t.v))
	m.Data = make([]float32, len(t.v))
	pos := slices.Clone(m.Indptr[:t.rows])
	for k, i := range t.r {
		m.Indices[pos[i]] = t.c[k]
		m.Data[pos[i]] = t.v[k]
		pos[i]++
	}
	for i := 0; i < t.rows; i++ {
		a, b := m.Indptr[i], m.Indptr[i+1]
		idx, val := m.Indices[a:b], m.Data[a:b]
		if !slices.IsSorted(idx) {
			p := make([]int, len(idx))
			for k := range p {
				p[k] = k
			}
			slices.SortFunc(p, func(x, y int) int { return int(idx[x]) - int(idx[y]) })
			ni, nv := make([]int32, len(p)), make([]float32, len(p))
			for k, q := range p {
				ni[k], nv[k] = idx[q], val[q]
			}
			copy(idx, ni)
			copy(val, nv)
		}
		for k := 1; k < len(idx); k++ {
			if idx[k] == idx[k-1] {
				return nil, fmt.Errorf("entry (%d, %d) appears twice", i+1, idx[k]+1)
			}
		}
	}
	return m, nil
}
