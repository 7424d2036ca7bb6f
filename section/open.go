package section

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Options tune how a section is read. The zero value reads the files as
// they are laid out by their producer.
type Options struct {
	Name         string // section name override (default: derived from the path)
	Labels       string // labels CSV/TSV (spot id, label) applied after reading, any format
	LabelColumn  string // h5ad: obs column holding labels
	Image        string // full-resolution image path override
	AllSpots     bool   // include out-of-tissue spots (Space Ranger)
	Library      string // h5ad: key under uns['spatial']
	Spots        string // legacy ST: spot file (*_selection.tsv) override
	Scalefactors string // legacy ST: scalefactors.tsv override
}

// Format names what kind of input a path is.
type Format string

const (
	FormatLegacyST    Format = "legacy-st"
	FormatSpaceRanger Format = "spaceranger"
	FormatH5AD        Format = "h5ad"
)

// Detect reports the format of path: a *.h5ad file, a Space Ranger
// directory (holding filtered_feature_bc_matrix.h5, filtered_feature_bc_matrix/
// or outs/), or a legacy ST counts table (*.tsv, *.tsv.gz).
func Detect(path string) (Format, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("section: %w", err)
	}
	if fi.IsDir() {
		for _, name := range []string{"filtered_feature_bc_matrix.h5", "filtered_feature_bc_matrix", "outs"} {
			if _, err := os.Stat(filepath.Join(path, name)); err == nil {
				return FormatSpaceRanger, nil
			}
		}
		return "", fmt.Errorf("section: %s: directory has no filtered_feature_bc_matrix.h5, filtered_feature_bc_matrix/ or outs/", path)
	}
	lower := strings.ToLower(path)
	switch {
	case strings.HasSuffix(lower, ".h5ad"):
		return FormatH5AD, nil
	case strings.HasSuffix(lower, ".tsv"), strings.HasSuffix(lower, ".tsv.gz"):
		return FormatLegacyST, nil
	}
	return "", fmt.Errorf("section: %s: unknown format (want *.h5ad, a Space Ranger directory or a legacy ST counts *.tsv[.gz])", path)
}

// Open reads a section, choosing the reader by what path is (see Detect).
// When opt.Labels is set, labels from that file replace any read with the
// section.
func Open(path string, opt Options) (*Section, error) {
	f, err := Detect(path)
	if err != nil {
		return nil, err
	}
	var s *Section
	switch f {
	case FormatLegacyST:
		s, err = readLegacyST(path, opt)
	case FormatSpaceRanger:
		s, err = readSpaceRanger(path, opt)
	case FormatH5AD:
		s, err = readH5AD(path, opt)
	}
	if err != nil {
		return nil, err
	}
	if opt.Labels != "" && f != FormatLegacyST { // ReadLegacyST applies them itself
		if err := ApplyLabelsFile(s, opt.Labels); err != nil {
			return nil, err
		}
	}
	warnEmptySpots(s, path)
	return s, nil
}

// warnEmptySpots logs spots whose counts are all zero: they are kept (the
// matrix is what the file says) but carry no expression.
func warnEmptySpots(s *Section, path string) {
	n, first := 0, ""
	for i := 0; i < s.Counts.Rows; i++ {
		empty := true
		for _, v := range s.Counts.Data[s.Counts.Indptr[i]:s.Counts.Indptr[i+1]] {
			empty = empty && v == 0
		}
		if empty {
			if n == 0 {
				first = s.Spots[i].ID
			}
			n++
		}
	}
	if n > 0 {
		slog.Warn("spots with all-zero counts: they carry no expression; filter them (QC min counts) or check the counts file",
			"file", path, "section", s.Name, "spots", n, "first", first)
	}
}

// The readers Open dispatches to (variables so the files could land
// independently; the init functions in spaceranger.go and h5ad.go that
// set them again are now redundant).
var (
	readLegacyST    = ReadLegacyST
	readSpaceRanger = ReadSpaceRanger
	readH5AD        = ReadH5AD
)
