package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/spotfuse/spotfuse/progress"
	"github.com/spotfuse/spotfuse/study"
)

func init() {
	var configPath, out, data string
	cmd := &cobra.Command{
		Use:   "study",
		Short: "Run the evaluation study: baselines, pretrained and fused encoders, label fractions, k-fold and leave-one-section-out",
		Long: `study runs the ablation grid described by a JSON config (see studies/*.json
and the documentation of study.Config): it reads the sections, pretrains the
encoders, evaluates every setting over label fractions, folds and seeds,
and writes results.csv (one row per run, appended as runs finish),
summary.csv (mean ± sd over seeds) and report.html to the output directory.
Re-running the same study continues an interrupted one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg *study.Config
			if configPath == "" {
				cfg = study.Default()
			} else {
				var err error
				if cfg, err = study.Load(configPath); err != nil {
					return err
				}
			}
			if out != "" {
				cfg.Out = out
			}
			if data != "" {
				cfg.DataDir = data
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			start := time.Now()
			slog.Info("study: start", "name", cfg.Name, "data", cfg.DataDir, "out", cfg.Out)
			res, err := study.Run(ctx, cfg, progress.ForTerminal())
			if err != nil {
				return err
			}
			printStudySummary(cmd.OutOrStdout(), res)
			fmt.Fprintf(cmd.OutOrStdout(), "\n%d runs in %s\nresults: %s\nsummary: %s\nreport:  %s\n",
				len(res.Rows), time.Since(start).Round(time.Second), res.ResultsCSV, res.SummaryCSV, res.Report)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&configPath, "config", "", "study config JSON (default: the built-in defaults, see study.Config)")
	fl.StringVar(&out, "out", "", "output directory (overrides the config's \"out\")")
	fl.StringVar(&data, "data", "", "her2st data directory (overrides the config's \"data_dir\")")
	root.AddCommand(cmd)
}

// printStudySummary prints, per evaluation, the methods at the map fraction
// (k-fold) and the LOSO overall scores.
func printStudySummary(w io.Writer, res *study.Results) {
	cfg := res.Config
	mapFrac := cfg.Fractions[0]
	for _, f := range cfg.Fractions {
		if math.Abs(f-cfg.MapFraction) < math.Abs(mapFrac-cfg.MapFraction) {
			mapFrac = f
		}
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "eval\tsection\tlabels\tmethod\tbalanced acc\tmacro-F1\tARI")
	for _, s := range res.Summary {
		show := (s.Eval == "kfold" && s.Fraction == mapFrac) || (s.Eval == "loso" && s.Section == "all")
		if !show {
			continue
		}
		name := s.Setting
		if s.Pretext != "" && s.Features == "pretrained" && s.Modality != "expr" && !strings.HasSuffix(s.Setting, s.Pretext) {
			name += " [" + s.Pretext + "]"
		}
		if s.Head != "majority" && s.Head != "gated" {
			name += " / " + s.Head
		}
		fmt.Fprintf(tw, "%s\t%s\t%g %%\t%s\t%s\t%s\t%s\n", s.Eval, s.Section, 100*s.Fraction, name,
			s.Metrics["balanced_accuracy"], s.Metrics["macro_f1"], s.Metrics["ari"])
	}
	tw.Flush()
}
