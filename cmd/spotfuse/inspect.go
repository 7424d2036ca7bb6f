package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"sort"

	"github.com/spf13/cobra"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/spotfuse/spotfuse/atomicfile"
	"github.com/spotfuse/spotfuse/patch"
	"github.com/spotfuse/spotfuse/section"
)

func init() {
	var opt section.Options
	var overlay string
	cmd := &cobra.Command{
		Use:   "inspect PATH",
		Short: "Summarise a section (counts, image, labels) and optionally draw its spots over the image",
		Long: `inspect reads one section (legacy ST counts .tsv[.gz], Space Ranger directory or .h5ad)
and prints its name, format, spots, genes, counts per spot, image, spot diameter and labels.
With --overlay it writes a PNG of the image (at most 2000 px wide) with every spot drawn
as a circle of its true diameter, coloured by label (grey = unlabelled).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := section.Detect(args[0])
			if err != nil {
				return err
			}
			s, err := section.Open(args[0], opt)
			if err != nil {
				return err
			}
			printSummary(cmd.OutOrStdout(), s, format)
			if overlay != "" {
				if err := writeOverlay(overlay, s); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "overlay:      %s\n", overlay)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opt.Name, "name", "", "section name (default: from the path)")
	f.StringVar(&opt.Labels, "labels", "", "labels CSV/TSV (spot id, label)")
	f.StringVar(&opt.LabelColumn, "label-column", "", "h5ad obs column holding labels")
	f.StringVar(&opt.Image, "image", "", "image path override")
	f.BoolVar(&opt.AllSpots, "all-spots", false, "include out-of-tissue spots")
	f.StringVar(&opt.Library, "library", "", "h5ad uns['spatial'] key")
	f.StringVar(&opt.Spots, "spots", "", "legacy ST spot file (*_selection.tsv)")
	f.StringVar(&opt.Scalefactors, "scalefactors", "", "legacy ST scalefactors.tsv")
	f.StringVar(&overlay, "overlay", "", "write a PNG of the spots over the image")
	root.AddCommand(cmd)
}

func printSummary(w io.Writer, s *section.Section, format section.Format) {
	sums := s.Counts.RowSums()
	total := 0.0
	for _, v := range sums {
		total += v
	}
	sorted := append([]float64(nil), sums...)
	sort.Float64s(sorted)
	median := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	fmt.Fprintf(w, "name:         %s (batch %s)\n", s.Name, s.Batch)
	fmt.Fprintf(w, "format:       %s\n", format)
	fmt.Fprintf(w, "source:       %s\n", s.Source)
	fmt.Fprintf(w, "spots:        %d\n", s.NumSpots())
	fmt.Fprintf(w, "genes:        %d\n", len(s.Genes))
	fmt.Fprintf(w, "counts:       total %.0f, median per spot %.0f, min %.0f, max %.0f\n", total, median, sorted[0], sorted[len(sorted)-1])
	fmt.Fprintf(w, "nnz:          %d (%.1f%% of %d×%d)\n", s.Counts.NNZ(),
		100*float64(s.Counts.NNZ())/float64(max(1, s.Counts.Rows*s.Counts.Cols)), s.Counts.Rows, s.Counts.Cols)
	if im := s.Image; im != nil {
		t := im.FromFullres
		fmt.Fprintf(w, "image:        %s (%d×%d)\n", im.Path, im.Width, im.Height)
		fmt.Fprintf(w, "fullres→img:  scale %.6g (affine a=%.6g b=%.6g c=%.6g d=%.6g tx=%.4g ty=%.4g)\n",
			math.Sqrt(math.Abs(t.A*t.D-t.B*t.C)), t.A, t.B, t.C, t.D, t.TX, t.TY)
		fmt.Fprintf(w, "spot diam:    %.1f px\n", im.SpotDiameterPx)
	} else {
		fmt.Fprintf(w, "image:        none\n")
	}
	if s.Labels == nil {
		fmt.Fprintf(w, "labels:       none\n")
		return
	}
	lc := s.LabelCounts()
	fmt.Fprintf(w, "labels:       %d labelled, %d unlabelled, %d classes\n", len(s.Labelled()), s.NumSpots()-len(s.Labelled()), len(lc))
	for _, l := range labelOrder(lc) {
		fmt.Fprintf(w, "  %-20s %d\n", l, lc[l])
	}
}

// labelOrder returns labels by count, largest first, then by name.
func labelOrder(lc map[string]int) []string {
	ls := make([]string, 0, len(lc))
	for l := range lc {
		ls = append(ls, l)
	}
	sort.Slice(ls, func(i, j int) bool {
		if lc[ls[i]] != lc[ls[j]] {
			return lc[ls[i]] > lc[ls[j]]
		}
		return ls[i] < ls[j]
	})
	return ls
}

// palette colours classes in alphabetical order: saturated colours that
// stand out on H&E purple/pink and on glass (rings also get a black edge).
var palette = []color.RGBA{
	{0, 200, 255, 255}, {255, 140, 0, 255}, {0, 230, 0, 255}, {255, 0, 0, 255},
	{255, 255, 0, 255}, {255, 0, 255, 255}, {0, 90, 255, 255}, {255, 255, 255, 255},
	{0, 128, 0, 255}, {128, 0, 0, 255},
}

var unlabelled = color.RGBA{190, 190, 190, 255}

func writeOverlay(path string, s *section.Section) error {
	if s.Image == nil {
		return fmt.Errorf("overlay: section %s has no image", s.Name)
	}
	// A tiled pyramid is read from a small level; other images are decoded
	// and released before drawing.
	thumb, scale, err := patch.OpenThumbnail(s.Image.Path, 2000)
	if err != nil {
		return err
	}
	names := make([]string, 0)
	for l := range s.LabelCounts() {
		names = append(names, l)
	}
	sort.Strings(names)
	colour := map[string]color.RGBA{}
	for i, l := range names {
		colour[l] = palette[i%len(palette)]
	}
	r := s.Image.SpotDiameterPx / 2 * scale
	for i, sp := range s.Spots {
		x, y := s.Image.FromFullres.Apply(sp.X, sp.Y)
		c := unlabelled
		if s.Labels != nil && s.Labels[i] != "" {
			c = colour[s.Labels[i]]
		}
		lw := math.Max(2, r/6)
		ring(thumb, x*scale, y*scale, r, lw+2, color.RGBA{0, 0, 0, 255})
		ring(thumb, x*scale, y*scale, r, lw, c)
	}
	legend(thumb, names, colour, s.Labels != nil)
	return atomicfile.Write(path, func(w io.Writer) error { return png.Encode(w, thumb) })
}

// ring draws a circle outline of radius r and width lw centred at (cx, cy).
func ring(m *image.RGBA, cx, cy, r, lw float64, c color.RGBA) {
	b := m.Bounds()
	x0, x1 := max(b.Min.X, int(cx-r-lw)), min(b.Max.X-1, int(cx+r+lw))
	y0, y1 := max(b.Min.Y, int(cy-r-lw)), min(b.Max.Y-1, int(cy+r+lw))
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			d := math.Hypot(float64(x)+0.5-cx, float64(y)+0.5-cy)
			if math.Abs(d-r) <= lw/2 {
				m.SetRGBA(x, y, c)
			}
		}
	}
}

// legend draws a small key in the top-left corner.
func legend(m *image.RGBA, names []string, colour map[string]color.RGBA, hasLabels bool) {
	entries := append([]string(nil), names...)
	if !hasLabels || len(entries) == 0 {
		entries = []string{"spot (no labels)"}
	} else {
		entries = append(entries, "unlabelled")
	}
	const lh, pad = 16, 6
	w := 0
	for _, e := range entries {
		w = max(w, len(e)*7)
	}
	box := image.Rect(0, 0, pad*3+12+w, pad*2+lh*len(entries))
	draw.Draw(m, box, &image.Uniform{color.RGBA{230, 230, 230, 230}}, image.Point{}, draw.Over)
	d := &font.Drawer{Dst: m, Src: image.Black, Face: basicfont.Face7x13}
	for i, e := range entries {
		c, ok := colour[e]
		if !ok {
			c = unlabelled
		}
		y := pad + i*lh
		draw.Draw(m, image.Rect(pad, y+2, pad+12, y+14), &image.Uniform{c}, image.Point{}, draw.Src)
		d.Dot = fixed.P(pad*2+12, y+12)
		d.DrawString(e)
	}
}
