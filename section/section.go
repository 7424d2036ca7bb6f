// Package section holds the one in-memory model of a spatial-transcriptomics
// section (spots, positions, sparse counts, genes, image reference, labels,
// batch) and the readers that build it from the files users already have:
// legacy ST (counts TSV + spot file + image), Space Ranger outs (10x .h5 or
// MTX directory, tissue positions, scale factors, images), AnnData .h5ad and
// label CSV/TSV files.
//
// Every reader returns an error naming the file and what is wrong with it;
// none panics on bad input.
package section

import (
	"fmt"

	"github.com/spotfuse/spotfuse/sparse"
)

// Spot is one capture spot.
type Spot struct {
	ID       string  // barcode or "{x}x{y}" for legacy ST
	Row, Col int     // array row and column
	X, Y     float64 // centre in full-resolution image pixels (x right, y down)
}

// Affine maps a full-resolution pixel (x, y) to an image pixel:
// img_x = A*x + B*y + TX, img_y = C*x + D*y + TY.
type Affine struct{ A, B, C, D, TX, TY float64 }

// Scale returns the pure-scaling affine map.
func Scale(s float64) Affine { return Affine{A: s, D: s} }

// Apply maps a full-resolution point into the image.
func (t Affine) Apply(x, y float64) (float64, float64) {
	return t.A*x + t.B*y + t.TX, t.C*x + t.D*y + t.TY
}

// Image refers to the H&E image of a section; pixels are read lazily (see
// package patch).
type Image struct {
	Path string
	// FromFullres maps full-resolution pixel coordinates (Spot.X, Spot.Y)
	// into this image's pixels.
	FromFullres Affine
	// SpotDiameterPx is the spot diameter in pixels of this image.
	SpotDiameterPx float64
	// Width and Height of the image in pixels (0 if not yet known).
	Width, Height int
}

// Section is one tissue section: spots × genes counts plus everything known
// about the spots. Stages add derived data rather than re-reading files.
type Section struct {
	Name    string   // short name, e.g. "A1"
	Batch   string   // batch/sample id used when pooling sections
	Source  string   // path it was read from
	Spots   []Spot   // one per counts row
	Genes   []string // gene symbols, one per counts column
	GeneIDs []string // gene ids (e.g. Ensembl) where known, else nil
	Counts  *sparse.CSR
	Image   *Image   // nil when the section has no image
	Labels  []string // per spot; "" = unlabelled; nil when no labels
}

// NumSpots returns the number of spots.
func (s *Section) NumSpots() int { return len(s.Spots) }

// Labelled returns the indices of spots with a non-empty label.
func (s *Section) Labelled() []int {
	var idx []int
	for i, l := range s.Labels {
		if l != "" {
			idx = append(idx, i)
		}
	}
	return idx
}

// LabelCounts returns the number of spots per label (unlabelled excluded).
func (s *Section) LabelCounts() map[string]int {
	m := map[string]int{}
	for _, l := range s.Labels {
		if l != "" {
			m[l]++
		}
	}
	return m
}

// Validate checks that the parts of the section agree with each other.
func (s *Section) Validate() error {
	if s.Counts == nil {
		return fmt.Errorf("section %s (%s): no counts", s.Name, s.Source)
	}
	if s.Counts.Rows != len(s.Spots) || s.Counts.Cols != len(s.Genes) {
		return fmt.Errorf("section %s (%s): counts are %d×%d but there are %d spots and %d genes",
			s.Name, s.Source, s.Counts.Rows, s.Counts.Cols, len(s.Spots), len(s.Genes))
	}
	if s.Labels != nil && len(s.Labels) != len(s.Spots) {
		return fmt.Errorf("section %s (%s): %d labels for %d spots", s.Name, s.Source, len(s.Labels), len(s.Spots))
	}
	if len(s.Spots) == 0 {
		return fmt.Errorf("section %s (%s): no spots", s.Name, s.Source)
	}
	return s.Counts.Validate()
}
