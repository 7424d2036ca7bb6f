// Package sparse holds the compressed sparse row (CSR) matrix used for
// spot × gene count matrices: memory proportional to the non-zeros, never
// dense spots × genes.
package sparse

import "fmt"

// CSR is a rows × cols matrix in compressed sparse row form. Row i's
// non-zeros are Indices[Indptr[i]:Indptr[i+1]] (column indices, strictly
// increasing within a row) with values Data[Indptr[i]:Indptr[i+1]].
type CSR struct {
	Rows, Cols int
	Indptr     []int
	Indices    []int32
	Data       []float32
}

// NNZ returns the number of stored non-zeros.
func (m *CSR) NNZ() int { return len(m.Data) }

// Row returns the column indices and values of row i (views, not copies).
func (m *CSR) Row(i int) ([]int32, []float32) {
	a, b := m.Indptr[i], m.Indptr[i+1]
	return m.Indices[a:b], m.Data[a:b]
}

// At returns element (i, j) by binary search in row i.
func (m *CSR) At(i, j int) float32 {
	idx, val := m.Row(i)
	lo, hi := 0, len(idx)
	for lo < hi {
		mid := (lo + hi) / 2
		switch {
		case int(idx[mid]) == j:
			return val[mid]
		case int(idx[mid]) < j:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return 0
}

// RowSums returns the sum of each row (library size for counts).
func (m *CSR) RowSums() []float64 {
	s := make([]float64, m.Rows)
	for i := 0; i < m.Rows; i++ {
		_, v := m.Row(i)
		for _, x := range v {
			s[i] += float64(x)
		}
	}
	return s
}

// Validate checks the structural invariants and returns a descriptive error.
func (m *CSR) Validate() error {
	if m.Rows < 0 || m.Cols < 0 {
		return fmt.Errorf("sparse: negative shape %d×%d", m.Rows, m.Cols)
	}
	if len(m.Indptr) != m.Rows+1 {
		return fmt.Errorf("sparse: indptr has %d entries, want %d", len(m.Indptr), m.Rows+1)
	}
	if m.Indptr[0] != 0 || m.Indptr[m.Rows] != len(m.Data) || len(m.Data) != len(m.Indices) {
		return fmt.Errorf("sparse: indptr/indices/data lengths disagree (indptr end %d, %d indices, %d values)", m.Indptr[m.Rows], len(m.Indices), len(m.Data))
	}
	for i := 0; i < m.Rows; i++ {
		if m.Indptr[i] > m.Indptr[i+1] {
			return fmt.Errorf("sparse: indptr decreases at row %d", i)
		}
	}
	for i := 0; i < m.Rows; i++ {
		prev := int32(-1)
		for k := m.Indptr[i]; k < m.Indptr[i+1]; k++ {
			c := m.Indices[k]
			if c <= prev || int(c) >= m.Cols {
				return fmt.Errorf("sparse: row %d has column index %d out of order or range (cols %d)", i, c, m.Cols)
			}
			prev = c
		}
	}
	return nil
}

// Builder accumulates a CSR matrix row by row.
type Builder struct {
	m CSR
}

// NewBuilder starts a matrix with the given number of columns.
func NewBuilder(cols int) *Builder {
	return &Builder{m: CSR{Cols: cols, Indptr: []int{0}}}
}

// Add appends (col, val) to the current row; columns must increase and
// zeros are skipped.
func (b *Builder) Add(col int, val float32) {
	if val == 0 {
		return
	}
	b.m.Indices = append(b.m.Indices, int32(col))
	b.m.Data = append(b.m.Data, val)
}

// EndRow closes the current row.
func (b *Builder) EndRow() {
	b.m.Rows++
	b.m.Indptr = append(b.m.Indptr, len(b.m.Data))
}

// Build returns the finished matrix.
func (b *Builder) Build() *CSR { m := b.m; return &m }

// SelectRows returns a new matrix holding rows idx in that order.
func (m *CSR) SelectRows(idx []int) *CSR {
	b := NewBuilder(m.Cols)
	for _, i := range idx {
		c, v := m.Row(i)
		b.m.Indices = append(b.m.Indices, c...)
		b.m.Data = append(b.m.Data, v...)
		b.EndRow()
	}
	return b.Build()
}

// SelectCols returns a new matrix with the columns given by cols (new column
// j is old column cols[j]); old columns not listed are dropped.
func (m *CSR) SelectCols(cols []int) *CSR {
	remap := make(map[int32]int32, len(cols))
	for j, c := range cols {
		remap[int32(c)] = int32(j)
	}
	b := NewBuilder(len(cols))
	type pair struct {
		c int32
		v float32
	}
	var buf []pair
	for i := 0; i < m.Rows; i++ {
		buf = buf[:0]
		c, v := m.Row(i)
		for k := range c {
			if j, ok := remap[c[k]]; ok {
				buf = append(buf, pair{j, v[k]})
			}
		}
		// insertion sort: rows are short relative to cost of sort.Slice allocs
		for x := 1; x < len(buf); x++ {
			for y := x; y > 0 && buf[y-1].c > buf[y].c; y-- {
				buf[y-1], buf[y] = buf[y], buf[y-1]
			}
		}
		for _, p := range buf {
			b.Add(int(p.c), p.v)
		}
		b.EndRow()
	}
	return b.Build()
}

// Dense returns row-major dense values of rows × cols (for small matrices
// and tests only).
func (m *CSR) Dense() []float32 {
	d := make([]float32, m.Rows*m.Cols)
	for i := 0; i < m.Rows; i++ {
		c, v := m.Row(i)
		for k := range c {
			d[i*m.Cols+int(c[k])] = v[k]
		}
	}
	return d
}
