package section

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
)

// readFixture returns a legacy-ST fixture file, gunzipped.
func readFixture(f *testing.F, rel string) []byte {
	return testutil.ReadFile(f, "testdata/st/"+rel)
}

// firstLines keeps the first n lines of b.
func firstLines(b []byte, n int) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[:n]
	}
	return bytes.Join(lines, nil)
}

// FuzzReadCountsTSV checks that any counts table either parses into a valid
// matrix or gives an error naming the file; never a panic.
func FuzzReadCountsTSV(f *testing.F) {
	real := readFixture(f, "counts/A1.tsv.gz")
	f.Add(firstLines(real, 4))
	f.Add(real)
	f.Add([]byte("\tA\tB\n1x1\t0\t3\n2x1\t1.5\t0\n"))
	f.Add([]byte("A\tB\n1x1\t0\t3\n"))
	f.Add([]byte("\tA\n1x1\t-1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseCounts("fuzz.tsv", bytes.NewReader(data), nil, false, 0)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.tsv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := s.Counts.Validate(); err != nil {
			t.Fatal(err)
		}
		if s.Counts.Rows != len(s.Spots) || s.Counts.Cols != len(s.Genes) {
			t.Fatalf("shape %d×%d for %d spots %d genes", s.Counts.Rows, s.Counts.Cols, len(s.Spots), len(s.Genes))
		}
		for _, v := range s.Counts.Data {
			if !(v > 0) {
				t.Fatalf("stored value %v", v)
			}
		}
	})
}

// FuzzReadSpotFile checks the spot-file parser never panics and keeps ids unique.
func FuzzReadSpotFile(f *testing.F) {
	real := readFixture(f, "spots/A1_selection.tsv")
	f.Add(firstLines(real, 3))
	f.Add(real)
	f.Add([]byte("x\ty\tpixel_x\tpixel_y\n1\t2\t3.5\t4\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := parseSpotFile("fuzz.tsv", bytes.NewReader(data))
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.tsv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for i, r := range sf.Rows {
			if j, ok := sf.byID[r.ID]; !ok || j != i {
				t.Fatalf("row %d id %s indexed at %d", i, r.ID, j)
			}
		}
	})
}

// FuzzReadLabels checks the labels parser never panics and returns only
// non-empty ids and labels.
func FuzzReadLabels(f *testing.F) {
	f.Add(firstLines(readFixture(f, "labels/A1_labeled_coordinates.tsv"), 4))
	f.Add([]byte("barcode,label\nAAAC-1,tumour\n\"a,b\",\"c\"\"d\"\n"))
	f.Add([]byte("10x13\tinvasive cancer\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseLabels("fuzz.csv", bytes.NewReader(data))
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for k, v := range m {
			if k == "" || v == "" {
				t.Fatalf("empty id or label: %q=%q", k, v)
			}
		}
	})
}
