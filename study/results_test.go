package study

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func sampleRows() []*Row {
	nan := math.NaN()
	return []*Row{
		{Study: "s", Eval: "kfold", Section: "A1", Setting: "fused-gated", Modality: "fused", Features: "pretrained",
			Pretext: "inpaint+colorize", Fusion: "gated", Context: true, Head: "gated", Fraction: 0.1, PSeed: 3, Seed: 2,
			Fold: 4, NTrain: 27, NTest: 68, Accuracy: 0.75, BalancedAccuracy: 0.5, MacroF1: 0.4, ARI: 0.25, NMI: 0.3,
			F1: []float64{0.9, nan, 0.125}, Confusion: [][]int{{5, 0, 1}, {0, 0, 0}, {2, 0, 3}}, Seconds: 0.125},
		{Study: "s, with comma", Eval: "cluster", Section: "A1", Setting: "expr-pca", Modality: "expr", Features: "pca",
			Fusion: "none", Head: "kmeans", NTest: 9, Accuracy: nan, BalancedAccuracy: nan, MacroF1: nan, ARI: -0.05, NMI: 0.1,
			F1: []float64{nan, nan, nan}},
	}
}

func rowsEqual(a, b *Row) bool {
	fa, fb := a.F1, b.F1
	ca, cb := *a, *b
	ca.F1, cb.F1 = nil, nil
	ca.Accuracy, cb.Accuracy = 0, 0
	ca.BalancedAccuracy, cb.BalancedAccuracy = 0, 0
	ca.MacroF1, cb.MacroF1 = 0, 0
	same := func(x, y float64) bool { return x == y || (math.IsNaN(x) && math.IsNaN(y)) }
	if !same(a.Accuracy, b.Accuracy) || !same(a.BalancedAccuracy, b.BalancedAccuracy) || !same(a.MacroF1, b.MacroF1) {
		return false
	}
	if len(fa) != len(fb) {
		return false
	}
	for i := range fa {
		if !same(fa[i], fb[i]) {
			return false
		}
	}
	return reflect.DeepEqual(ca, cb)
}

func TestResultsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.csv")
	classes := []string{"invasive cancer", "cancer in situ", "adipose tissue"}
	rf, done, err := CreateResults(path, classes)
	if err != nil || len(done) != 0 {
		t.Fatalf("create: %v, %d done", err, len(done))
	}
	rows := sampleRows()
	if err := rf.Append(rows[0]); err != nil {
		t.Fatal(err)
	}
	if err := rf.Append(rows[1]); err != nil {
		t.Fatal(err)
	}
	if err := rf.Append(&Row{F1: []float64{1}}); err == nil {
		t.Error("row with the wrong number of classes: no error")
	}
	rf.Close()

	got, gotClasses, err := ReadResults(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotClasses, []string{"invasive_cancer", "cancer_in_situ", "adipose_tissue"}) {
		t.Errorf("classes %v", gotClasses)
	}
	if len(got) != 2 {
		t.Fatalf("%d rows, want 2", len(got))
	}
	for i := range rows {
		if !rowsEqual(got[i], rows[i]) {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, got[i], rows[i])
		}
	}

	// A crash mid-write leaves an unterminated line: it is ignored, and
	// reopening appends after the complete rows.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("s,kfold,A1,half")
	f.Close()
	if got, _, err = ReadResults(path); err != nil || len(got) != 2 {
		t.Fatalf("after partial line: %d rows, %v", len(got), err)
	}
	rf, done, err = CreateResults(path, classes)
	if err != nil || len(done) != 2 {
		t.Fatalf("reopen: %v, %d done", err, len(done))
	}
	rf.Close()
	if _, _, err := CreateResults(path, []string{"other"}); err == nil {
		t.Error("reopening with other classes: no error")
	}
}

func TestReadResultsErrors(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"notresults.csv": "a,b,c\n1,2,3\n",
		"badrow.csv":     "study,eval,section,setting,modality,features,pretext,fusion,context,head,fraction,pretrain_seed,seed,fold,n_train,n_test,accuracy,balanced_accuracy,macro_f1,ari,nmi,confusion,seconds\ns,kfold,A1,x,expr,pca,,none,maybe,logreg,0.1,0,0,0,1,1,1,1,1,1,1,,0\n",
	} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(content), 0o644)
		if _, _, err := ReadResults(path); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
