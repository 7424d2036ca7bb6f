package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spotfuse/spotfuse/atomicfile"
	"github.com/spotfuse/spotfuse/classify"
	"github.com/spotfuse/spotfuse/metrics"
	"github.com/spotfuse/spotfuse/progress"
	"github.com/spotfuse/spotfuse/report"
	"github.com/spotfuse/spotfuse/section"
)

func init() {
	var model, out, mapPath, data, modality, h5adOut string
	var sopt section.Options
	cmd := &cobra.Command{
		Use:   "predict --model BUNDLE SECTION",
		Short: "Label every spot of a section with a trained model bundle",
		Long: `predict labels every spot of SECTION (an .h5ad file, a Space Ranger directory,
a legacy ST counts table, or a HER2ST section name with --data) with the
bundle written by spotfuse train.

Genes are matched by symbol. Bundle genes the section lacks are filled with
the training mean (0 in standardised space), counted in the missing_genes
column and logged; more than the bundle's max_missing fraction refuses the
expression (use --modality image). Each spot is labelled by the fused head
when it has a patch and counts, else by the expression head, else by the
image head; the modality column says which. A section with labels is also
scored (accuracy, balanced accuracy, macro-F1 over the bundle's classes).

The CSV has spot_id, x, y, array_row, array_col, label, probability,
prob_<class>..., modality, missing_genes. For an .h5ad input (or with
--h5ad) a copy of the section is written as .h5ad with obs columns
spotfuse_label, spotfuse_modality (categorical), spotfuse_probability and
spotfuse_prob_<class> (float; NaN for unlabelled spots), plus the input's
labels when it had some; other obs columns of the input are not carried over.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if model == "" {
				return fmt.Errorf("predict: --model is required")
			}
			b, err := classify.LoadBundle(model)
			if err != nil {
				return err
			}
			sec, err := openSection(data, args[0], sopt)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			p, err := b.Predict(ctx, sec, classify.PredictOptions{Modality: modality, Progress: progress.ForTerminal()})
			if err != nil {
				return err
			}
			csvPath, h5Path := out, h5adOut // flag values stay untouched
			if csvPath == "" {
				csvPath = sec.Name + ".predictions.csv"
			}
			if err := atomicfile.Write(csvPath, p.WriteCSV); err != nil {
				return fmt.Errorf("predict: %w", err)
			}
			printPrediction(cmd.OutOrStdout(), p)
			fmt.Fprintf(cmd.OutOrStdout(), "predictions: %s\n", csvPath)
			if f, _ := section.Detect(args[0]); f == section.FormatH5AD && h5Path == "" {
				h5Path = strings.TrimSuffix(csvPath, filepath.Ext(csvPath)) + ".h5ad"
			}
			if h5Path != "" {
				if err := writePredictionH5AD(h5Path, p, sopt.LabelColumn); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "h5ad with predictions: %s\n", h5Path)
			}
			if mapPath != "" {
				if err := writePredictionMap(mapPath, p); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "map: %s\n", mapPath)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&model, "model", "", "model bundle directory (spotfuse train --out)")
	fl.StringVar(&out, "out", "", "predictions CSV (default <section>.predictions.csv)")
	fl.StringVar(&h5adOut, "h5ad", "", "also write the section with the predictions as obs columns to this .h5ad (default for an .h5ad input: <out>.h5ad)")
	fl.StringVar(&mapPath, "map", "", "also draw the predicted labels on the tissue to this PNG")
	fl.StringVar(&data, "data", "../shared/data/her2st", "HER2ST directory, for a SECTION given by name")
	fl.StringVar(&modality, "modality", "auto", "head to use: auto, fused, expr or image")
	fl.StringVar(&sopt.Labels, "labels", "", "labels CSV/TSV (spot id, label) to score the predictions")
	fl.StringVar(&sopt.LabelColumn, "label-column", "label", "h5ad obs column holding labels")
	fl.StringVar(&sopt.Image, "image", "", "full-resolution H&E image overriding the section's")
	root.AddCommand(cmd)
}

// printPrediction prints the class distribution, the modalities used, the
// missing genes and, when the section is labelled, the scores.
func printPrediction(w io.Writer, p *classify.Prediction) {
	n := len(p.Label)
	fmt.Fprintf(w, "section %s: %d spots\n", p.Section.Name, n)
	if len(p.Missing) > 0 {
		fmt.Fprintf(w, "missing genes: %d of %d (first: %s)\n", len(p.Missing), p.Genes, strings.Join(p.Missing[:min(5, len(p.Missing))], ", "))
	}
	mods := map[string]int{}
	for _, m := range p.Modality {
		mods[m]++
	}
	var ms []string
	for m, c := range mods {
		ms = append(ms, fmt.Sprintf("%s %d", m, c))
	}
	sort.Strings(ms)
	fmt.Fprintf(w, "modality: %s\n", strings.Join(ms, ", "))
	count := make([]int, len(p.Classes))
	for _, l := range p.Label {
		if l >= 0 {
			count[l]++
		}
	}
	fmt.Fprintln(w, "predicted classes:")
	for c, name := range p.Classes {
		fmt.Fprintf(w, "  %-20s %5d  %5.1f %%\n", name, count[c], 100*float64(count[c])/float64(max(n, 1)))
	}
	if s, ok := scorePrediction(p); ok {
		fmt.Fprintf(w, "scored on %d labelled spots: accuracy %.3f, balanced accuracy %.3f, macro-F1 %.3f\n", s.N, s.Accuracy, s.Balanced, s.MacroF1)
	}
}

// predictionScore is a prediction scored against the section's labels.
type predictionScore struct {
	N                           int
	Accuracy, Balanced, MacroF1 float64
}

// scorePrediction scores the spots labelled with one of the bundle's classes
// (and predicted); false when there are none.
func scorePrediction(p *classify.Prediction) (predictionScore, bool) {
	if p.Section.Labels == nil {
		return predictionScore{}, false
	}
	var yt, yp []int
	for i, l := range p.Section.Labels {
		c := slices.Index(p.Classes, l)
		if c >= 0 && p.Label[i] >= 0 {
			yt = append(yt, c)
			yp = append(yp, p.Label[i])
		}
	}
	if len(yt) == 0 {
		return predictionScore{}, false
	}
	return predictionScore{N: len(yt), Accuracy: metrics.Accuracy(yt, yp), Balanced: metrics.BalancedAccuracy(yt, yp),
		MacroF1: metrics.MacroF1(yt, yp)}, true
}

// writePredictionMap draws the predicted labels over the section's image.
func writePredictionMap(path string, p *classify.Prediction) error {
	sec := p.Section
	m := &report.SpatialMap{Title: fmt.Sprintf("%s: predicted regions", sec.Name), Palette: p.Classes}
	if sec.Image != nil {
		m.Image, m.FromFullres, m.SpotDiameterPx = sec.Image.Path, sec.Image.FromFullres, sec.Image.SpotDiameterPx
	}
	for i, sp := range sec.Spots {
		m.X = append(m.X, sp.X)
		m.Y = append(m.Y, sp.Y)
		m.Categories = append(m.Categories, p.LabelName(i))
	}
	img, err := report.RenderMap(m, 900)
	if err != nil {
		return err
	}
	return report.WritePNG(path, img)
}

// writePredictionH5AD writes the section with the predictions as obs columns.
func writePredictionH5AD(path string, p *classify.Prediction, labelColumn string) error {
	n := len(p.Label)
	k := len(p.Classes)
	obs := map[string][]string{"spotfuse_label": make([]string, n), "spotfuse_modality": p.Modality}
	num := map[string][]float64{"spotfuse_probability": make([]float64, n)}
	for c, name := range p.Classes {
		col := make([]float64, n)
		for i := range n {
			col[i] = math.NaN()
			if p.Label[i] >= 0 {
				col[i] = p.Prob[i*k+c]
			}
		}
		num["spotfuse_prob_"+strings.ReplaceAll(name, "/", "_")] = col
	}
	for i := range n {
		obs["spotfuse_label"][i] = p.LabelName(i)
		num["spotfuse_probability"][i] = math.NaN()
		if p.Label[i] >= 0 {
			num["spotfuse_probability"][i] = p.Prob[i*k+p.Label[i]]
		}
	}
	if p.Section.Labels != nil {
		if labelColumn == "" || strings.HasPrefix(labelColumn, "spotfuse_") {
			labelColumn = "label"
		}
		obs[labelColumn] = p.Section.Labels
	}
	return section.WriteH5AD(path, p.Section, obs, num)
}
