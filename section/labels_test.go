package section

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadLabels(t *testing.T) {
	tests := []struct {
		name, text string
		want       map[string]string
		err        string
	}{
		{"csv header", "barcode,label\nAAAC-1,tumour\nAAAG-1,stroma\n", map[string]string{"AAAC-1": "tumour", "AAAG-1": "stroma"}, ""},
		{"tsv no header", "10x13\tinvasive cancer\n11x13\tadipose tissue\n", map[string]string{"10x13": "invasive cancer", "11x13": "adipose tissue"}, ""},
		{"named label column", ",x,y,annotation\ns1,1,2,A\ns2,3,4,B\n", map[string]string{"s1": "A", "s2": "B"}, ""},
		{"quoted, crlf, bom", "\ufeff\"spot\",\"label\"\r\n\"a,1\",\"x y\"\r\n", map[string]string{"a,1": "x y"}, ""},
		{"empty and NA skipped", "id,label\na,X\nb,\nc,NA\n", map[string]string{"a": "X"}, ""},
		{"duplicate", "id,label\na,X\nb,Y\na,Z\n", nil, ":4: spot \"a\" already labelled on line 2"},
		{"missing label", "id,label\na\n", nil, ":2: 1 field(s)"},
		{"empty id", "id,label\n,X\n", nil, ":2: empty spot id"},
		{"nothing", "id,label\n", nil, "no labelled spots"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "labels.csv")
			os.WriteFile(p, []byte(tc.text), 0o644)
			got, err := ReadLabels(p)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), p) {
					t.Fatalf("err %v, want %q naming %s", err, tc.err, p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestApplyLabelsFile(t *testing.T) {
	e := loadExpected(t)
	dir := t.TempDir()
	tests := []struct {
		name, text string
		labelled   int
		err        string
	}{
		{"some known, some unknown (warning)", "spot\tlabel\n" + e.Spots[0] + "\tA\n" + e.Spots[1] + "\tB\n99x99\tC\n", 2, ""},
		{"none known", "spot,label\n99x99,A\n98x98,B\n", 0, "none of its 2 spot ids is a spot of section A1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".tsv")
			os.WriteFile(p, []byte(tc.text), 0o644)
			s, err := Open("testdata/st/counts/A1.tsv.gz", Options{Labels: p})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), p) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(s.Labelled()); got != tc.labelled {
				t.Errorf("labelled %d, want %d", got, tc.labelled)
			}
			if s.Labels[0] != "A" || s.Labels[1] != "B" {
				t.Errorf("labels %q %q", s.Labels[0], s.Labels[1])
			}
		})
	}
}
