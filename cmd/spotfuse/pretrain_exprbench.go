package main

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/spotfuse/spotfuse/atomicfile"
	"github.com/spotfuse/spotfuse/classify"
	"github.com/spotfuse/spotfuse/cluster"
	"github.com/spotfuse/spotfuse/metrics"
	"github.com/spotfuse/spotfuse/preprocess"
	"github.com/spotfuse/spotfuse/pretrain"
	"github.com/spotfuse/spotfuse/progress"
	"github.com/spotfuse/spotfuse/section"
	"github.com/spotfuse/spotfuse/tensor"
)

func init() {
	pretrainCmd.AddCommand(newPretrainExprBenchCmd())
}

// usage is the CPU time and peak resident memory of the process so far.
type usage struct {
	wall     time.Time
	cpu      float64 // user + system seconds
	maxRSSMB float64
}

func now() usage {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return usage{wall: time.Now(), cpu: tv(ru.Utime) + tv(ru.Stime), maxRSSMB: float64(ru.Maxrss) / 1024}
}

func newPretrainExprBenchCmd() *cobra.Command {
	var data, labelled, tasks, out string
	var hvg, steps, batch, threads, k, pcs int
	var seed uint64
	var klWeight float64
	cmd := &cobra.Command{
		Use:   "expr-bench",
		Short: "Measure the expression encoders: section mixing, region separation and cost, against PCA",
		Long: `Pool all 36 HER2ST sections (--hvg genes), pretrain the expression encoder with each of
--tasks (--steps of --batch spots; CPU seconds, wall seconds and peak RSS are recorded) and
compare each latent with PCA (--pcs components) of the same log-normalised matrix:

  mixing      per-spot section entropy of its --k nearest neighbours in the embedding,
              normalised by log(#sections), averaged over all spots (1 = perfectly mixed);
  separation  on the pooled labelled sections --labelled ("undetermined" spots left out):
              ARI and NMI of k-means (k = #classes) against the pathologist labels, and the
              balanced accuracy of an L2 logistic regression trained on all but one section
              and tested on it (leave-one-section-out, mean over sections).

Writes --out/expr_bench.tsv.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			if threads > 0 {
				tensor.SetThreads(threads)
			}
			ctx := cmd.Context()
			prog := progress.ForTerminal()
			t0 := now()
			secs, err := section.ReadHER2ST(ctx, data, nil, 2, prog)
			if err != nil {
				return err
			}
			ed, err := pretrain.BuildExprData(secs, pretrain.ExprDataOptions{HVG: hvg})
			if err != nil {
				return err
			}
			t1 := now()
			slog.Info("expression data", "spots", ed.N, "genes", ed.G, "wall_seconds", t1.wall.Sub(t0.wall).Seconds(), "cpu_seconds", t1.cpu-t0.cpu)

			type method struct {
				name      string
				emb       []float32
				d         int
				wall, cpu float64
			}
			var methods []method
			pcaStart := now()
			scores, _, _, err := preprocess.PCA(ed.X, ed.N, ed.G, pcs)
			if err != nil {
				return err
			}
			pcaEnd := now()
			methods = append(methods, method{fmt.Sprintf("pca%d", pcs), scores, pcs, pcaEnd.wall.Sub(pcaStart.wall).Seconds(), pcaEnd.cpu - pcaStart.cpu})
			for _, task := range splitList(tasks) {
				cfg := pretrain.DefaultExprConfig()
				cfg.Task = task
				cfg.Loop.Steps, cfg.Loop.Batch, cfg.Loop.Seed = steps, batch, seed
				cfg.KLWeight = klWeight
				cfg.Loop.Dir = filepath.Join(out, task)
				a := now()
				enc, _, err := pretrain.TrainExpression(ctx, ed, cfg, prog)
				if err != nil {
					return fmt.Errorf("task %s: %w", task, err)
				}
				b := now()
				emb, d := enc.Embed(ed.X, ed.N, ed.Batch)
				methods = append(methods, method{task, emb, d, b.wall.Sub(a.wall).Seconds(), b.cpu - a.cpu})
				if err := writeExprOutputs(filepath.Join(out, task), enc, ed, task); err != nil {
					return err
				}
			}

			// Labelled spots of the --labelled sections.
			var rows, y, group []int
			classes := map[string]int{}
			var names []string
			first := 0
			for si, s := range secs {
				if slices.Contains(splitList(labelled), s.Name) && s.Labels != nil {
					for i, l := range s.Labels {
						if l == "" || l == "undetermined" {
							continue
						}
						c, ok := classes[l]
						if !ok {
							c = len(classes)
							classes[l] = c
							names = append(names, l)
						}
						rows, y, group = append(rows, first+i), append(y, c), append(group, si)
					}
				}
				first += s.NumSpots()
			}
			if len(classes) < 2 {
				return fmt.Errorf("--labelled %s: fewer than 2 classes among the labelled spots", labelled)
			}
			slog.Info("labelled spots", "spots", len(rows), "classes", strings.Join(names, ", "))

			header := "method\tdim\tsection_entropy_all36\tsection_entropy_labelled\tkmeans_ari\tkmeans_nmi\tloso_balanced_accuracy\ttrain_wall_seconds\ttrain_cpu_seconds\tsteps\tbatch\tthreads"
			lines := []string{header}
			for _, m := range methods {
				_, ent, err := pretrain.SectionEntropy(m.emb, ed.N, m.d, ed.Batch, ed.NBatch, k)
				if err != nil {
					return err
				}
				sub := tensor.GatherRows(m.emb, m.d, rows)
				lb := make([]int, len(rows))
				nLab := 0
				remap := map[int]int{}
				for r, i := range rows {
					b := ed.Batch[i]
					if _, ok := remap[b]; !ok {
						remap[b] = nLab
						nLab++
					}
					lb[r] = remap[b]
				}
				_, entLab, err := pretrain.SectionEntropy(sub, len(rows), m.d, lb, nLab, k)
				if err != nil {
					return err
				}
				km, err := cluster.KMeans(sub, len(rows), m.d, cluster.KMeansOptions{K: len(classes), Seed: seed})
				if err != nil {
					return err
				}
				ari := metrics.AdjustedRandIndex(y, km.Labels)
				nmi := metrics.NormalizedMutualInfo(y, km.Labels)
				loso, err := losoLogReg(sub, len(rows), m.d, y, group, len(classes))
				if err != nil {
					return err
				}
				st, bt := steps, batch
				if strings.HasPrefix(m.name, "pca") {
					st, bt = 0, 0
				}
				line := fmt.Sprintf("%s\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.1f\t%.1f\t%d\t%d\t%d",
					m.name, m.d, ent, entLab, ari, nmi, loso, m.wall, m.cpu, st, bt, tensor.Threads())
				slog.Info("expr-bench", "method", m.name, "entropy", ent, "entropy_labelled", entLab, "ari", ari, "nmi", nmi, "loso_bacc", loso,
					"train_wall_s", m.wall, "train_cpu_s", m.cpu)
				lines = append(lines, line)
			}
			end := now()
			text := strings.Join(lines, "\n") + fmt.Sprintf("\n# spots %d, genes %d, sections %d, k %d; data loading %.1f s wall; peak RSS %.0f MB; backend %s\n",
				ed.N, ed.G, ed.NBatch, k, t1.wall.Sub(t0.wall).Seconds(), end.maxRSSMB, tensor.Backend())
			if err := atomicfile.WriteFile(filepath.Join(out, "expr_bench.tsv"), []byte(text)); err != nil {
				return err
			}
			fmt.Print(text)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&data, "data", "../shared/data/her2st", "her2st directory")
	fl.StringVar(&labelled, "labelled", "B1,C1,D1,E1,F1", "labelled sections for the separation measures")
	fl.StringVar(&tasks, "tasks", "nbvae,masked", "expression pretext tasks to measure")
	fl.IntVar(&hvg, "hvg", 2000, "highly variable genes")
	fl.IntVar(&steps, "steps", 500, "optimizer steps per task")
	fl.IntVar(&batch, "batch", 256, "spots per step")
	fl.IntVar(&pcs, "pcs", 32, "principal components of the PCA baseline")
	fl.IntVar(&k, "k", 30, "neighbours for the section entropy")
	fl.IntVar(&threads, "threads", 0, "worker threads (0 = all CPUs)")
	fl.Uint64Var(&seed, "seed", 1, "random seed")
	fl.Float64Var(&klWeight, "kl-weight", 1, "nbvae: final weight of the KL term")
	fl.StringVar(&out, "out", "", "output directory (required)")
	return cmd
}

// losoLogReg fits an L2 logistic regression (C = 1, balanced class weights,
// features standardised on the training rows) on all groups but one and
// returns the balanced accuracy on the held-out group, averaged over groups.
func losoLogReg(x []float32, n, d int, y, group []int, k int) (float64, error) {
	var accs []float64
	for _, f := range classify.LeaveOneGroupOut(group) {
		xtr, xte := tensor.GatherRows(x, d, f.Train), tensor.GatherRows(x, d, f.Test)
		mean, sd, err := preprocess.Standardize(xtr, len(f.Train), d, 0)
		if err != nil {
			return 0, err
		}
		if err := preprocess.ApplyStandardize(xte, len(f.Test), d, mean, sd, 0); err != nil {
			return 0, err
		}
		ytr, yte := make([]int, len(f.Train)), make([]int, len(f.Test))
		for r, i := range f.Train {
			ytr[r] = y[i]
		}
		for r, i := range f.Test {
			yte[r] = y[i]
		}
		m, err := classify.FitLogReg(xtr, len(f.Train), d, ytr, k, classify.LogRegOptions{C: 1, Balanced: true})
		if err != nil {
			return 0, err
		}
		pred, err := m.Predict(xte, len(f.Test))
		if err != nil {
			return 0, err
		}
		accs = append(accs, metrics.BalancedAccuracy(yte, pred))
	}
	mean, _ := metrics.MeanSD(accs)
	return mean, nil
}
