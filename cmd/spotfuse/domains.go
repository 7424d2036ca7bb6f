package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/spotfuse/spotfuse/atomicfile"
	"github.com/spotfuse/spotfuse/classify"
	"github.com/spotfuse/spotfuse/cluster"
	"github.com/spotfuse/spotfuse/fuse"
	"github.com/spotfuse/spotfuse/metrics"
	"github.com/spotfuse/spotfuse/report"
	"github.com/spotfuse/spotfuse/section"
	"github.com/spotfuse/spotfuse/tensor"
)

// domainOptions configure unsupervised domain finding.
type domainOptions struct {
	// K is the number of k-means clusters; 0 = the number of scored labels
	// of the section (or 5 without labels).
	K int
	// Smooth replaces each k-means label by the majority of its array
	// neighbourhood (cluster.SpatialSmooth), once.
	Smooth bool
	// Resolution of Louvain (0 = 1) and KNN feature neighbours of the
	// spatial-domain graph (0 = 15); the spatial edges join spots within
	// 1.5 × the median nearest-neighbour distance.
	Resolution float64
	KNN        int
	// Exclude are labels left out of the scoring.
	Exclude []string
	// MapDir, when set, receives one PNG per section, modality and method.
	MapDir string
	Seed   uint64
}

// domainRow is one clustering scored against the pathologist labels.
type domainRow struct {
	Section, Modality, Method string
	Clusters, Spots, Scored   int
	ARI, NMI                  float64 // NaN without labels
	Seconds                   float64
}

func init() {
	var model, data, out string
	var sopt section.Options
	opt := domainOptions{}
	cmd := &cobra.Command{
		Use:   "domains --model BUNDLE SECTION...",
		Short: "Unsupervised spatial domains from the bundle's embeddings (k-means and Louvain), scored by ARI/NMI",
		Long: `domains clusters the spots of each SECTION (a path in any supported format or a
HER2ST name with --data) on the embeddings of a model bundle, per modality:
expression features (every spot), image embedding and fused = standardised
image ⊕ expression (spots with a patch). Two methods: k-means (k = the number
of labels of the section, or --k; --smooth adds one majority vote over the
array neighbours) and Louvain on a graph joining each spot's 15 nearest
neighbours in feature space with the spots within 1.5 spot spacings
(cluster.SpatialDomains). No label is used to cluster; sections with labels
are scored by the adjusted Rand index and normalised mutual information
against them (undetermined spots excluded). Domains are drawn on the tissue
with --maps.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if model == "" {
				return fmt.Errorf("domains: --model is required")
			}
			b, err := classify.LoadBundle(model)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			var rows []domainRow
			for _, name := range args {
				sec, err := openSection(data, name, sopt)
				if err != nil {
					return err
				}
				r, err := sectionDomains(ctx, b, sec, opt)
				if err != nil {
					return err
				}
				rows = append(rows, r...)
			}
			printDomains(cmd.OutOrStdout(), rows)
			if out != "" {
				if err := atomicfile.Write(out, func(w io.Writer) error { return writeDomainsCSV(w, rows) }); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "results: %s\n", out)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&model, "model", "", "model bundle directory (spotfuse train --out)")
	fl.StringVar(&data, "data", "../shared/data/her2st", "HER2ST directory, for sections given by name")
	fl.StringVar(&out, "out", "domains.csv", "results CSV")
	fl.StringVar(&opt.MapDir, "maps", "", "directory for PNG maps of the domains")
	fl.IntVar(&opt.K, "k", 0, "k-means clusters (0 = number of labels of the section, else 5)")
	fl.BoolVar(&opt.Smooth, "smooth", false, "smooth k-means domains by a majority vote over array neighbours")
	fl.Float64Var(&opt.Resolution, "resolution", 1, "Louvain resolution")
	fl.IntVar(&opt.KNN, "knn", 15, "feature neighbours of the spatial-domain graph")
	fl.StringSliceVar(&opt.Exclude, "exclude", []string{"undetermined"}, "labels left out of the scoring")
	fl.Uint64Var(&opt.Seed, "seed", 1, "random seed")
	fl.StringVar(&sopt.Labels, "labels", "", "labels CSV/TSV (spot id, label) to score the domains (one section)")
	fl.StringVar(&sopt.LabelColumn, "label-column", "label", "h5ad obs column holding labels")
	root.AddCommand(cmd)
}

// sectionDomains clusters sec per modality and method.
func sectionDomains(ctx context.Context, b *classify.Bundle, sec *section.Section, opt domainOptions) ([]domainRow, error) {
	f, err := b.Features(ctx, sec, nil)
	if err != nil {
		return nil, err
	}
	n := f.N
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	var withPatch []int
	for i := range n {
		if f.HasPatch != nil && f.HasPatch[i] {
			withPatch = append(withPatch, i)
		}
	}
	type view struct {
		mod string
		idx []int
	}
	var views []view
	if f.Expr != nil {
		views = append(views, view{classify.ModExpr, all})
	} else {
		slog.Warn("domains: no expression features", "section", sec.Name, "reason", f.ExprErr)
	}
	if f.Image != nil && len(withPatch) > 2 {
		views = append(views, view{classify.ModImage, withPatch})
		if f.Expr != nil {
			views = append(views, view{classify.ModFused, withPatch})
		}
	}
	// Scored labels.
	truth := make([]int, n)
	var names []string
	for i := range n {
		truth[i] = -1
		if sec.Labels == nil || sec.Labels[i] == "" || slices.Contains(opt.Exclude, sec.Labels[i]) {
			continue
		}
		c := slices.Index(names, sec.Labels[i])
		if c < 0 {
			c = len(names)
			names = append(names, sec.Labels[i])
		}
		truth[i] = c
	}
	k := opt.K
	if k == 0 {
		k = len(names)
		if k < 2 {
			k = 5
		}
	}
	var rows []domainRow
	for _, v := range views {
		m := len(v.idx)
		var blocks []fuse.Block
		switch v.mod {
		case classify.ModExpr:
			blocks = []fuse.Block{{X: tensor.GatherRows(f.Expr, f.ExprD, v.idx), D: f.ExprD}}
		case classify.ModImage:
			blocks = []fuse.Block{{X: tensor.GatherRows(f.Image, f.ImageD, v.idx), D: f.ImageD}}
		case classify.ModFused:
			blocks = []fuse.Block{{X: tensor.GatherRows(f.Image, f.ImageD, v.idx), D: f.ImageD}, {X: tensor.GatherRows(f.Expr, f.ExprD, v.idx), D: f.ExprD}}
		}
		x, d, err := fuse.Concat(blocks...)
		if err != nil {
			return nil, err
		}
		xs, ys := make([]float64, m), make([]float64, m)
		row, col := make([]int, m), make([]int, m)
		for r, i := range v.idx {
			sp := sec.Spots[i]
			xs[r], ys[r], row[r], col[r] = sp.X, sp.Y, sp.Row, sp.Col
		}
		sub := make([]int, m)
		for r, i := range v.idx {
			sub[r] = truth[i]
		}
		// k-means (optionally smoothed).
		start := time.Now()
		km, err := cluster.KMeans(x, m, d, cluster.KMeansOptions{K: min(k, m), Seed: opt.Seed})
		if err != nil {
			return nil, fmt.Errorf("domains: %s %s: %w", sec.Name, v.mod, err)
		}
		labels, method := km.Labels, "kmeans"
		if opt.Smooth {
			nb, err := fuse.Neighbours(row, col, fuse.AutoGrid)
			if err != nil {
				return nil, fmt.Errorf("domains: %s: %w", sec.Name, err)
			}
			labels, method = cluster.SpatialSmooth(labels, nb), "kmeans-smoothed"
		}
		rows = append(rows, scoreDomains(sec.Name, v.mod, method, labels, sub, time.Since(start)))
		if err := drawDomains(opt.MapDir, sec, v.idx, labels, v.mod, method); err != nil {
			return nil, err
		}
		// Louvain on the feature kNN + spatial radius graph.
		start = time.Now()
		lv, err := cluster.SpatialDomains(ctx, x, m, d, xs, ys, cluster.DomainOptions{KNN: min(opt.KNN, m-1),
			Radius: 1.5 * medianNearest(xs, ys), Louvain: cluster.LouvainOptions{Resolution: opt.Resolution, Seed: opt.Seed}})
		if err != nil {
			return nil, fmt.Errorf("domains: %s %s: %w", sec.Name, v.mod, err)
		}
		rows = append(rows, scoreDomains(sec.Name, v.mod, "louvain", lv, sub, time.Since(start)))
		if err := drawDomains(opt.MapDir, sec, v.idx, lv, v.mod, "louvain"); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// medianNearest is the median distance from a spot to its nearest other spot.
func medianNearest(xs, ys []float64) float64 {
	d := make([]float64, len(xs))
	for i := range xs {
		best := math.Inf(1)
		for j := range xs {
			if j != i {
				best = math.Min(best, math.Hypot(xs[i]-xs[j], ys[i]-ys[j]))
			}
		}
		d[i] = best
	}
	sort.Float64s(d)
	if len(d) == 0 || math.IsInf(d[len(d)/2], 0) {
		return 1
	}
	return d[len(d)/2]
}

// scoreDomains compares pred with the labels truth (−1 = not scored).
func scoreDomains(sec, mod, method string, pred, truth []int, took time.Duration) domainRow {
	r := domainRow{Section: sec, Modality: mod, Method: method, Spots: len(pred), ARI: math.NaN(), NMI: math.NaN(), Seconds: took.Seconds()}
	seen := map[int]bool{}
	for _, c := range pred {
		seen[c] = true
	}
	r.Clusters = len(seen)
	var yt, yp []int
	for i, c := range truth {
		if c >= 0 {
			yt = append(yt, c)
			yp = append(yp, pred[i])
		}
	}
	r.Scored = len(yt)
	if len(yt) > 1 {
		r.ARI, r.NMI = metrics.AdjustedRandIndex(yt, yp), metrics.NormalizedMutualInfo(yt, yp)
	}
	return r
}

// drawDomains writes the domains of the spots idx as a PNG in dir.
func drawDomains(dir string, sec *section.Section, idx, labels []int, mod, method string) error {
	if dir == "" {
		return nil
	}
	m := &report.SpatialMap{Title: fmt.Sprintf("%s: %s domains from %s", sec.Name, method, mod)}
	if sec.Image != nil {
		m.Image, m.FromFullres, m.SpotDiameterPx = sec.Image.Path, sec.Image.FromFullres, sec.Image.SpotDiameterPx
	}
	for r, i := range idx {
		m.X = append(m.X, sec.Spots[i].X)
		m.Y = append(m.Y, sec.Spots[i].Y)
		m.Categories = append(m.Categories, fmt.Sprintf("domain %d", labels[r]+1))
	}
	img, err := report.RenderMap(m, 700)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return report.WritePNG(filepath.Join(dir, fmt.Sprintf("%s_%s_%s.png", sec.Name, mod, method)), img)
}

func printDomains(w io.Writer, rows []domainRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "section\tmodality\tmethod\tclusters\tspots\tscored\tARI\tNMI")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%.3f\t%.3f\n", r.Section, r.Modality, r.Method, r.Clusters, r.Spots, r.Scored, r.ARI, r.NMI)
	}
	tw.Flush()
}

func writeDomainsCSV(w io.Writer, rows []domainRow) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"section", "modality", "method", "clusters", "spots", "scored", "ari", "nmi", "seconds"})
	f := func(v float64) string {
		if math.IsNaN(v) {
			return "NA"
		}
		return strconv.FormatFloat(v, 'f', 4, 64)
	}
	for _, r := range rows {
		cw.Write([]string{r.Section, r.Modality, r.Method, strconv.Itoa(r.Clusters), strconv.Itoa(r.Spots), strconv.Itoa(r.Scored),
			f(r.ARI), f(r.NMI), strconv.FormatFloat(r.Seconds, 'f', 2, 64)})
	}
	cw.Flush()
	return cw.Error()
}
