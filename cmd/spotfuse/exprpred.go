package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/spotfuse/spotfuse/atomicfile"
	"github.com/spotfuse/spotfuse/classify"
	"github.com/spotfuse/spotfuse/exprpred"
	"github.com/spotfuse/spotfuse/models"
	"github.com/spotfuse/spotfuse/progress"
)

func init() {
	cfg := exprpred.DefaultConfig()
	var sections, test, methods, out, imageEncoder string
	cmd := &cobra.Command{
		Use:   "exprpred",
		Short: "Evaluate expression prediction from H&E (ridge on image embeddings, BLEEP-like retrieval) by leave-one-section-out",
		Long: `exprpred predicts the log-normalised expression of highly variable genes from
each spot's H&E patch and scores it by the Pearson correlation per gene on a
held-out section (mean over all genes and over the 50 most variable genes of
that section). Each --test section is one fold trained on the other
--sections. The HVG are chosen (and the expression encoder of the retrieval
is pretrained) on the sections without an image, so no evaluated spot takes
part. The image encoder is pretrained per fold on the training patches.

Methods: mean (training mean; correlation undefined, counted as 0), stats
(ridge on colour/texture statistics), random (ridge on a randomly
initialised encoder), pretrained (ridge on the self-supervised encoder),
retrieval (average expression of the top-k training spots in the
cross-modal embedding, as BLEEP).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Sections = splitList(sections)
			if imageEncoder != "" {
				enc, err := loadImageEncoder(imageEncoder)
				if err != nil {
					return err
				}
				if enc.Config.Downsample() > cfg.PatchSize {
					return fmt.Errorf("exprpred: --image-encoder downsamples by %d, more than the patch size %d", enc.Config.Downsample(), cfg.PatchSize)
				}
				cfg.ImageEncoder = enc
			}
			if test != "" {
				cfg.Test = splitList(test)
			}
			if methods != "" {
				cfg.Methods = splitList(methods)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			start := time.Now()
			w := cmd.OutOrStdout()
			rows, err := exprpred.Evaluate(ctx, cfg, progress.ForTerminal(), func(r exprpred.Row) {
				fmt.Fprintf(w, "%s\t%-10s\tPCC all %.3f\ttop%d %.3f\tMSE %.3f\t%.0fs\n", r.Test, r.Method, r.MeanAll, r.Top, r.MeanTop, r.MSE, r.Seconds)
			})
			if len(rows) > 0 && out != "" {
				if err := atomicfile.Write(out, func(f io.Writer) error { return exprpred.WriteCSV(f, rows) }); err != nil {
					return err
				}
			}
			if err != nil {
				return err
			}
			printExprSummary(w, rows)
			fmt.Fprintf(w, "%d folds × methods in %s\n", len(rows), time.Since(start).Round(time.Second))
			if out != "" {
				fmt.Fprintf(w, "results: %s\n", out)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.DataDir, "data", cfg.DataDir, "HER2ST data directory")
	fl.StringVar(&sections, "sections", strings.Join(cfg.Sections, ","), "sections with an image used for training and testing")
	fl.StringVar(&test, "test", "", "held-out sections, one fold each (default: all of --sections)")
	fl.StringVar(&methods, "methods", "", "methods (default mean,stats,random,pretrained,retrieval)")
	fl.StringVar(&out, "out", "exprpred.csv", "results CSV")
	fl.IntVar(&cfg.HVG, "hvg", cfg.HVG, "highly variable genes predicted")
	fl.IntVar(&cfg.PatchSize, "size", cfg.PatchSize, "patch side in pixels")
	fl.Float64Var(&cfg.Context, "context", cfg.Context, "crop side in spot diameters")
	fl.IntVar(&cfg.Width, "width", 0, "image encoder width (0 = models default)")
	fl.IntVar(&cfg.ImageSteps, "image-steps", cfg.ImageSteps, "image pretraining steps per fold")
	fl.IntVar(&cfg.ImageBatch, "image-batch", cfg.ImageBatch, "image pretraining batch")
	fl.IntVar(&cfg.ExprSteps, "expr-steps", cfg.ExprSteps, "expression pretraining steps")
	fl.IntVar(&cfg.CrossSteps, "cross-steps", cfg.CrossSteps, "cross-modal alignment steps per fold")
	fl.IntVar(&cfg.K, "k", cfg.K, "retrieval neighbours")
	fl.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed")
	fl.StringVar(&imageEncoder, "image-encoder", "", "use this pretrained image encoder (a model bundle directory or an encoder .safetensors) for every fold instead of pretraining per fold")
	root.AddCommand(cmd)
}

// printExprSummary prints the mean over folds of each method.
func printExprSummary(w io.Writer, rows []exprpred.Row) {
	type acc struct {
		all, top, mse float64
		n             int
	}
	var order []string
	m := map[string]*acc{}
	for _, r := range rows {
		a := m[r.Method]
		if a == nil {
			a = &acc{}
			m[r.Method] = a
			order = append(order, r.Method)
		}
		a.all += r.MeanAll
		a.top += r.MeanTop
		a.mse += r.MSE
		a.n++
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "method\tfolds\tmean PCC (all genes)\tmean PCC (top 50)\tMSE")
	for _, k := range order {
		a := m[k]
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t%.3f\n", k, a.n, a.all/float64(a.n), a.top/float64(a.n), a.mse/float64(a.n))
	}
	tw.Flush()
}

// loadImageEncoder reads the image encoder of a model bundle directory or
// of an encoder safetensors file.
func loadImageEncoder(path string) (*models.ImageEncoder, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		b, err := classify.LoadBundle(path)
		if err != nil {
			return nil, err
		}
		if b.Image == nil {
			return nil, fmt.Errorf("bundle %s has no image encoder", path)
		}
		return b.Image, nil
	}
	return models.LoadImageEncoder(path)
}
