package study

import (
	"os"
	"path/filepath"
	"testing"
)

// TestResultsAppendAfterCrash: a run killed mid-write leaves an
// unterminated last line; the next run must drop it before appending, or
// its first row would be glued to the fragment.
func TestResultsAppendAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.csv")
	classes := []string{"invasive cancer", "cancer in situ", "adipose tissue"}
	rows := sampleRows()
	rf, _, err := CreateResults(path, classes)
	if err != nil {
		t.Fatal(err)
	}
	if err := rf.Append(rows[0]); err != nil {
		t.Fatal(err)
	}
	rf.Close()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("s,kfold,A1,half a row")
	f.Close()

	rf, done, err := CreateResults(path, classes)
	if err != nil || len(done) != 1 {
		t.Fatalf("reopen: %v, %d done", err, len(done))
	}
	if err := rf.Append(rows[1]); err != nil {
		t.Fatal(err)
	}
	rf.Close()
	got, _, err := ReadResults(path)
	if err != nil {
		t.Fatalf("results after crash and append: %v", err)
	}
	if len(got) != 2 || !rowsEqual(got[0], rows[0]) || !rowsEqual(got[1], rows[1]) {
		t.Fatalf("got %d rows, want the 2 complete ones", len(got))
	}
}
