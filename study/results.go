package study

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/spotfuse/spotfuse/atomicfile"
)

// Row is one run of the study: one setting, seed, fold and label fraction
// scored on its test spots. It is one line of the tidy results CSV.
type Row struct {
	Study    string  // Config.Name
	Eval     string  // "kfold" (within a section) or "loso" (leave one section out)
	Section  string  // target section (kfold) or held-out section (loso)
	Setting  string  // unique name of the feature set + fusion, e.g. "expr-pca", "fused-concat-pretrained"
	Modality string  // "none", "expr", "image" or "fused"
	Features string  // "majority", "pca", "stats", "random" or "pretrained"
	Pretext  string  // image pretext tasks joined by "+", "" when not pretrained
	Fusion   string  // "none", "concat" or "gated"
	Context  bool    // neighbourhood context appended
	Head     string  // "majority", "logreg", "mlp" or "gated"
	Fraction float64 // labelled fraction of the training part
	PSeed    uint64  // pretraining seed (0 for settings without pretraining)
	Seed     int     // evaluation seed
	Fold     int     // fold (kfold) or index of the held-out section (loso)
	NTrain   int     // labelled training spots actually used
	NTest    int     // scored spots

	Accuracy, BalancedAccuracy, MacroF1, ARI, NMI float64
	// F1 per class in Results.Classes order; NaN when the class is absent
	// from both truth and prediction.
	F1 []float64
	// Confusion[t][p] over Results.Classes.
	Confusion [][]int
	Seconds   float64 // wall time of fitting and predicting
}

// Key identifies a run (everything but its outcome).
func (r *Row) Key() string {
	return fmt.Sprintf("%s|%s|%s|%s|%t|%s|%g|%d|%d|%d", r.Eval, r.Section, r.Setting, r.Pretext, r.Context, r.Head, r.Fraction, r.PSeed, r.Seed, r.Fold)
}

// header returns the CSV columns for the given classes.
func header(classes []string) []string {
	h := []string{"study", "eval", "section", "setting", "modality", "features", "pretext", "fusion", "context", "head",
		"fraction", "pretrain_seed", "seed", "fold", "n_train", "n_test",
		"accuracy", "balanced_accuracy", "macro_f1", "ari", "nmi"}
	for _, c := range classes {
		h = append(h, "f1_"+slug(c))
	}
	return append(h, "confusion", "seconds")
}

// slug turns a class name into a column-name part: lower case, runs of
// other characters as "_".
func slug(s string) string {
	var b strings.Builder
	us := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			us = false
		} else if !us && b.Len() > 0 {
			b.WriteByte('_')
			us = true
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

func fmtFloat(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

func parseFloat(s string) (float64, error) {
	if s == "" {
		return math.NaN(), nil
	}
	return strconv.ParseFloat(s, 64)
}

// record renders r as CSV fields (see header).
func (r *Row) record() []string {
	rec := []string{r.Study, r.Eval, r.Section, r.Setting, r.Modality, r.Features, r.Pretext, r.Fusion,
		strconv.FormatBool(r.Context), r.Head, fmtFloat(r.Fraction), strconv.FormatUint(r.PSeed, 10),
		strconv.Itoa(r.Seed), strconv.Itoa(r.Fold), strconv.Itoa(r.NTrain), strconv.Itoa(r.NTest),
		fmtFloat(r.Accuracy), fmtFloat(r.BalancedAccuracy), fmtFloat(r.MacroF1), fmtFloat(r.ARI), fmtFloat(r.NMI)}
	for _, f := range r.F1 {
		rec = append(rec, fmtFloat(f))
	}
	return append(rec, formatConfusion(r.Confusion), strconv.FormatFloat(r.Seconds, 'f', 3, 64))
}

// formatConfusion writes a matrix as rows joined by ";" of counts joined by " ".
func formatConfusion(m [][]int) string {
	rows := make([]string, len(m))
	for i, r := range m {
		s := make([]string, len(r))
		for j, v := range r {
			s[j] = strconv.Itoa(v)
		}
		rows[i] = strings.Join(s, " ")
	}
	return strings.Join(rows, ";")
}

func parseConfusion(s string, k int) ([][]int, error) {
	if s == "" {
		return nil, nil
	}
	rows := strings.Split(s, ";")
	if len(rows) != k {
		return nil, fmt.Errorf("confusion has %d rows, want %d", len(rows), k)
	}
	m := make([][]int, k)
	for i, r := range rows {
		f := strings.Fields(r)
		if len(f) != k {
			return nil, fmt.Errorf("confusion row %d has %d entries, want %d", i, len(f), k)
		}
		m[i] = make([]int, k)
		for j, v := range f {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("confusion row %d: %w", i, err)
			}
			m[i][j] = n
		}
	}
	return m, nil
}

// parseRecord is the inverse of record.
func parseRecord(rec []string, k int) (*Row, error) {
	if len(rec) != 21+k+2 {
		return nil, fmt.Errorf("%d fields, want %d", len(rec), 21+k+2)
	}
	r := &Row{Study: rec[0], Eval: rec[1], Section: rec[2], Setting: rec[3], Modality: rec[4], Features: rec[5],
		Pretext: rec[6], Fusion: rec[7], Head: rec[9]}
	var errs []error
	pb := func(s string) bool { v, err := strconv.ParseBool(s); errs = append(errs, err); return v }
	pi := func(s string) int { v, err := strconv.Atoi(s); errs = append(errs, err); return v }
	pf := func(s string) float64 { v, err := parseFloat(s); errs = append(errs, err); return v }
	r.Context = pb(rec[8])
	r.Fraction = pf(rec[10])
	ps, err := strconv.ParseUint(rec[11], 10, 64)
	errs = append(errs, err)
	r.PSeed = ps
	r.Seed, r.Fold, r.NTrain, r.NTest = pi(rec[12]), pi(rec[13]), pi(rec[14]), pi(rec[15])
	r.Accuracy, r.BalancedAccuracy, r.MacroF1, r.ARI, r.NMI = pf(rec[16]), pf(rec[17]), pf(rec[18]), pf(rec[19]), pf(rec[20])
	r.F1 = make([]float64, k)
	for c := range k {
		r.F1[c] = pf(rec[21+c])
	}
	r.Confusion, err = parseConfusion(rec[21+k], k)
	errs = append(errs, err)
	r.Seconds = pf(rec[22+k])
	return r, errors.Join(errs...)
}

// ResultsFile appends rows to a results CSV as they are produced, so that a
// crash loses no finished run. The header is written atomically when the
// file is created; each Append is one write of complete lines followed by
// fsync, and ReadResults ignores an unterminated last line.
type ResultsFile struct {
	mu      sync.Mutex
	f       *os.File
	path    string
	classes []string
}

// CreateResults starts a results file at path for the given classes. An
// existing file with the same header is kept and appended to (its rows
// are returned so finished runs can be skipped); one with another header
// is an error.
func CreateResults(path string, classes []string) (*ResultsFile, []*Row, error) {
	var done []*Row
	if _, err := os.Stat(path); err == nil {
		got, gotClasses, err := ReadResults(path)
		if err != nil {
			return nil, nil, err
		}
		want := make([]string, len(classes))
		for i, c := range classes {
			want[i] = slug(c)
		}
		if strings.Join(gotClasses, "\x00") != strings.Join(want, "\x00") {
			return nil, nil, fmt.Errorf("study: %s: existing results have classes %v, this study has %v (move the file away)", path, gotClasses, classes)
		}
		done = got
		if err := dropPartialLine(path); err != nil {
			return nil, nil, err
		}
	} else {
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		w.Write(header(classes))
		w.Flush()
		if err := atomicfile.WriteFile(path, buf.Bytes()); err != nil {
			return nil, nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, nil, err
	}
	return &ResultsFile{f: f, path: path, classes: classes}, done, nil
}

// dropPartialLine truncates an unterminated last line (left by a crash
// mid-write, and ignored by ReadResults) so new rows start on a fresh line.
func dropPartialLine(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("study: %w", err)
	}
	keep := bytes.LastIndexByte(data, '\n') + 1
	if keep == len(data) {
		return nil
	}
	slog.Warn("study: dropping the incomplete last line of the results (an interrupted run)", "file", path, "bytes", len(data)-keep)
	if err := os.Truncate(path, int64(keep)); err != nil {
		return fmt.Errorf("study: %w", err)
	}
	return nil
}

// Append writes rows at the end of the file in one write and syncs it.
func (rf *ResultsFile) Append(rows ...*Row) error {
	if len(rows) == 0 {
		return nil
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	for _, r := range rows {
		if len(r.F1) != len(rf.classes) {
			return fmt.Errorf("study: row %s has %d per-class F1 values for %d classes", r.Key(), len(r.F1), len(rf.classes))
		}
		w.Write(r.record())
	}
	w.Flush()
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if _, err := rf.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("study: %s: %w", rf.path, err)
	}
	return rf.f.Sync()
}

// Rewrite replaces the file's content, atomically, by the header and rows
// (for a canonical order once every run has ended; see SortRows). Appends
// after it continue the new file.
func (rf *ResultsFile) Rewrite(rows []*Row) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(header(rf.classes))
	for _, r := range rows {
		if len(r.F1) != len(rf.classes) {
			return fmt.Errorf("study: row %s has %d per-class F1 values for %d classes", r.Key(), len(r.F1), len(rf.classes))
		}
		w.Write(r.record())
	}
	w.Flush()
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if err := atomicfile.WriteFile(rf.path, buf.Bytes()); err != nil {
		return err
	}
	f, err := os.OpenFile(rf.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("study: %w", err)
	}
	rf.f.Close()
	rf.f = f
	return nil
}

// SortRows orders rows canonically, independently of the order the runs
// ended in: by study, evaluation, the rank of the setting in settings
// (settings not listed follow, by name), head, pretraining seed, seed,
// section, label fraction and fold. Summaries computed from sorted rows
// are bit-identical between runs.
func SortRows(rows []*Row, settings []string) {
	rank := map[string]int{}
	for i, s := range settings {
		if _, ok := rank[s]; !ok {
			rank[s] = i
		}
	}
	evalRank := map[string]int{"kfold": 0, "loso": 1, "cluster": 2}
	settingRank := func(s string) int {
		if r, ok := rank[s]; ok {
			return r
		}
		return len(settings)
	}
	slices.SortStableFunc(rows, func(a, b *Row) int {
		if c := strings.Compare(a.Study, b.Study); c != 0 {
			return c
		}
		ea, oka := evalRank[a.Eval]
		eb, okb := evalRank[b.Eval]
		if !oka {
			ea = len(evalRank)
		}
		if !okb {
			eb = len(evalRank)
		}
		return cmp.Or(
			cmp.Compare(ea, eb),
			strings.Compare(a.Eval, b.Eval),
			cmp.Compare(settingRank(a.Setting), settingRank(b.Setting)),
			strings.Compare(a.Setting, b.Setting),
			strings.Compare(a.Pretext, b.Pretext),
			compareBool(a.Context, b.Context),
			strings.Compare(a.Head, b.Head),
			cmp.Compare(a.PSeed, b.PSeed),
			cmp.Compare(a.Seed, b.Seed),
			strings.Compare(a.Section, b.Section),
			cmp.Compare(a.Fraction, b.Fraction),
			cmp.Compare(a.Fold, b.Fold),
		)
	})
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// Close closes the file.
func (rf *ResultsFile) Close() error { return rf.f.Close() }

// ReadResults reads a results CSV written by ResultsFile and returns its
// rows and the class slugs from its header (lower case, "_" for spaces). An unterminated last line (a
// crash mid-write) is ignored.
func ReadResults(path string) ([]*Row, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("study: %w", err)
	}
	if i := bytes.LastIndexByte(data, '\n'); i+1 != len(data) {
		data = data[:i+1]
	}
	rows, classes, err := parseResults(bytes.NewReader(data))
	if err != nil {
		return nil, nil, fmt.Errorf("study: %s: %w", path, err)
	}
	return rows, classes, nil
}

func parseResults(r io.Reader) ([]*Row, []string, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.FieldsPerRecord = -1
	h, err := cr.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	k := len(h) - 23
	if k < 0 || h[0] != "study" || h[len(h)-1] != "seconds" {
		return nil, nil, fmt.Errorf("not a spotfuse results header: %v", h)
	}
	var classes []string
	for _, c := range h[21 : 21+k] {
		classes = append(classes, strings.TrimPrefix(c, "f1_"))
	}
	var rows []*Row
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		row, err := parseRecord(rec, k)
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", line, err)
		}
		rows = append(rows, row)
	}
	return rows, classes, nil
}
