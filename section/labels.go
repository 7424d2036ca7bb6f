package section

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// ReadLabels reads a spot-label table: CSV or TSV (tab if the first line
// has a tab, else comma; quotes as in RFC 4180), spot id in the first
// column. A first line is a header when it names a label column (label,
// labels, annotation, region, class, ground_truth, …) or its first field
// is a typical id header (empty, barcode, spot, id, …); the label is read
// from the named label column, else from the second column. Rows with an
// empty or NA label are skipped. A spot listed twice is an error.
func ReadLabels(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("section: labels: %w", err)
	}
	defer f.Close()
	return parseLabels(path, f)
}

var labelHeaders = map[string]bool{
	"label": true, "labels": true, "annotation": true, "annotations": true, "region": true,
	"class": true, "ground_truth": true, "groundtruth": true, "layer": true, "pathology": true,
	"cluster": true, "celltype": true, "cell_type": true, "type": true,
}

var idHeaders = map[string]bool{
	"": true, "barcode": true, "barcodes": true, "spot": true, "spots": true, "spot_id": true,
	"spotid": true, "id": true, "row.names": true, "index": true, "cell": true, "obs": true, "obs_names": true,
}

func parseLabels(path string, r io.Reader) (map[string]string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("section: %s: %w", path, err)
	}
	text := strings.TrimPrefix(string(data), "\ufeff")
	first, _, _ := strings.Cut(text, "\n")
	cr := csv.NewReader(strings.NewReader(text))
	cr.Comma = ','
	if strings.Contains(first, "\t") {
		cr.Comma = '\t'
	}
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	out := map[string]string{}
	lineOf := map[string]int{}
	labelCol := 1
	for n := 0; ; n++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("section: %s: %w", path, err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if n == 0 {
			if header, col := labelHeader(rec); header {
				labelCol = col
				continue
			}
		}
		if len(rec) <= labelCol {
			return nil, fmt.Errorf("section: %s:%d: %d field(s), want spot id and label (column %d)", path, line, len(rec), labelCol+1)
		}
		id := strings.TrimSpace(rec[0])
		label := strings.TrimSpace(rec[labelCol])
		if id == "" {
			return nil, fmt.Errorf("section: %s:%d: empty spot id", path, line)
		}
		if label == "" || label == "NA" {
			continue
		}
		if prev, dup := lineOf[id]; dup {
			return nil, fmt.Errorf("section: %s:%d: spot %q already labelled on line %d", path, line, id, prev)
		}
		lineOf[id] = line
		out[id] = label
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("section: %s: no labelled spots", path)
	}
	return out, nil
}

// labelHeader reports whether rec looks like a header row and which column
// holds the label.
func labelHeader(rec []string) (bool, int) {
	for i, h := range rec {
		if i > 0 && labelHeaders[strings.ToLower(strings.TrimSpace(h))] {
			return true, i
		}
	}
	return idHeaders[strings.ToLower(strings.TrimSpace(rec[0]))], 1
}

// ApplyLabelsFile reads a spot-id,label file (see ReadLabels) and replaces
// s.Labels; spots without a row are unlabelled. Label rows naming spots that
// are not in the section are logged as a warning (label files often list
// spots that were filtered out, e.g. without counts or out of tissue); when
// no row names a spot of the section, that is an error (wrong file).
func ApplyLabelsFile(s *Section, path string) error {
	m, err := ReadLabels(path)
	if err != nil {
		return err
	}
	return applyLabels(s, path, m)
}

func applyLabels(s *Section, path string, m map[string]string) error {
	labels := make([]string, len(s.Spots))
	matched := 0
	for i, sp := range s.Spots {
		if l, ok := m[sp.ID]; ok {
			labels[i] = l
			matched++
		}
	}
	if matched == 0 {
		return fmt.Errorf("section: %s: none of its %d spot ids is a spot of section %s (e.g. %q)", path, len(m), s.Name, anyKey(m))
	}
	if unknown := len(m) - matched; unknown > 0 {
		slog.Warn("labels for spots not in the section ignored", "file", path, "section", s.Name, "spots", unknown)
	}
	s.Labels = labels
	return nil
}

func anyKey(m map[string]string) string {
	best := ""
	for k := range m {
		if best == "" || k < best {
			best = k
		}
	}
	return best
}
