package sparse

import (
	"reflect"
	"testing"
)

func build(rows [][]float32) *CSR {
	b := NewBuilder(len(rows[0]))
	for _, r := range rows {
		for j, v := range r {
			b.Add(j, v)
		}
		b.EndRow()
	}
	return b.Build()
}

func TestCSR(t *testing.T) {
	dense := [][]float32{{0, 1, 0, 2}, {0, 0, 0, 0}, {3, 0, 4, 0}}
	m := build(dense)
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m.Rows != 3 || m.Cols != 4 || m.NNZ() != 4 {
		t.Fatalf("shape %d×%d nnz %d", m.Rows, m.Cols, m.NNZ())
	}
	for i, r := range dense {
		for j, v := range r {
			if got := m.At(i, j); got != v {
				t.Errorf("At(%d,%d) = %v, want %v", i, j, got, v)
			}
		}
	}
	if got, want := m.RowSums(), []float64{3, 0, 7}; !reflect.DeepEqual(got, want) {
		t.Errorf("RowSums = %v, want %v", got, want)
	}
	tests := []struct {
		name string
		got  *CSR
		want []float32
	}{
		{"rows 2,0", m.SelectRows([]int{2, 0}), []float32{3, 0, 4, 0, 0, 1, 0, 2}},
		{"rows none", m.SelectRows(nil), []float32{}},
		{"cols 3,0", m.SelectCols([]int{3, 0}), []float32{2, 0, 0, 0, 0, 3}},
		{"cols 2", m.SelectCols([]int{2}), []float32{0, 0, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.got.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := tc.got.Dense(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Dense = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name string
		m    CSR
	}{
		{"indptr length", CSR{Rows: 2, Cols: 2, Indptr: []int{0, 1}, Indices: []int32{0}, Data: []float32{1}}},
		{"column out of range", CSR{Rows: 1, Cols: 2, Indptr: []int{0, 1}, Indices: []int32{2}, Data: []float32{1}}},
		{"columns unsorted", CSR{Rows: 1, Cols: 3, Indptr: []int{0, 2}, Indices: []int32{2, 1}, Data: []float32{1, 1}}},
		{"indptr decreasing", CSR{Rows: 2, Cols: 3, Indptr: []int{0, 2, 1}, Indices: []int32{0}, Data: []float32{1}}},
		{"data/indices mismatch", CSR{Rows: 1, Cols: 3, Indptr: []int{0, 1}, Indices: []int32{0, 1}, Data: []float32{1}}},
	}
	for _, tc := range tests {
		if err := tc.m.Validate(); err == nil {
			t.Errorf("%s: Validate accepted a broken matrix", tc.name)
		}
	}
}
