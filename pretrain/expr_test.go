package pretrain

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/cluster"
	"github.com/spotfuse/spotfuse/metrics"
	"github.com/spotfuse/spotfuse/progress"
)

func smallExprConfig(task string, steps int) ExprConfig {
	return ExprConfig{Task: task, Hidden: 32, Latent: 8, HeldOut: 0.1,
		Loop: LoopConfig{Steps: steps, Batch: 64, LogEvery: 25, CheckpointEvery: 25, LR: 3e-3, WeightDecay: 1e-4, Warmup: 0.05, ClipNorm: 5, Seed: 1}}
}

func TestTrainExpressionLossDecreases(t *testing.T) {
	d, _ := synthExpr(1, 400, 60, 3, 2, 0.3)
	for _, tc := range []struct {
		task  string
		terms []string
		ratio float64 // held-out total after training / before, at most
	}{
		{"masked", []string{"masked_mse"}, 0.5},
		{"nbvae", []string{"nb_nll", "kl"}, 0.9},
	} {
		t.Run(tc.task, func(t *testing.T) {
			enc, hist, err := TrainExpression(context.Background(), d, smallExprConfig(tc.task, 150), nil)
			if err != nil {
				t.Fatal(err)
			}
			first, last := hist.FirstHeldOut("total"), hist.LastHeldOut("total")
			t.Logf("%s held-out total %.4g → %.4g", tc.task, first, last)
			if !(last < tc.ratio*first) {
				t.Errorf("held-out loss %g → %g, want below %g×", first, last, tc.ratio)
			}
			for _, term := range tc.terms {
				if len(hist.Loss[term]) != 150 {
					t.Errorf("term %q has %d training values, want 150", term, len(hist.Loss[term]))
				}
			}
			emb, dim := enc.Embed(d.X, d.N, d.Batch)
			if dim != 8 || len(emb) != d.N*8 {
				t.Fatalf("Embed gave %d values of width %d", len(emb), dim)
			}
		})
	}
}

// The NB-VAE sees the section in its decoder, so its latent need not encode
// the planted batch effect: spots of the same type from different sections
// mix, while the types stay apart. PCA of the same log-normalised matrix
// separates the sections.
func TestNBVAEMixesBatchesBetterThanPCA(t *testing.T) {
	const n, g, types, batches = 600, 100, 3, 3
	d, truth := synthExpr(2, n, g, types, batches, 0.4)
	cfg := smallExprConfig("nbvae", 400)
	cfg.Loop.Batch = 128
	enc, _, err := TrainExpression(context.Background(), d, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	vae, dim := enc.Embed(d.X, n, d.Batch)
	pca := pcaScores(t, d.X, n, g, dim)
	score := func(emb []float32) (entropy, ari float64) {
		_, entropy, err := SectionEntropy(emb, n, dim, d.Batch, batches, 15)
		if err != nil {
			t.Fatal(err)
		}
		km, err := cluster.KMeans(emb, n, dim, cluster.KMeansOptions{K: types, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		return entropy, metrics.AdjustedRandIndex(truth, km.Labels)
	}
	ve, va := score(vae)
	pe, pa := score(pca)
	t.Logf("section entropy: NB-VAE %.3f, PCA %.3f; type ARI: NB-VAE %.3f, PCA %.3f", ve, pe, va, pa)
	if !(ve > pe+0.4) {
		t.Errorf("NB-VAE section entropy %.3f not clearly above PCA's %.3f", ve, pe)
	}
	if !(va > 0.8) {
		t.Errorf("NB-VAE latent lost the cell types: k-means ARI %.3f", va)
	}
}

func TestTrainExpressionDeterministic(t *testing.T) {
	d, _ := synthExpr(3, 200, 40, 2, 2, 0.3)
	for _, task := range []string{"masked", "nbvae"} {
		t.Run(task, func(t *testing.T) {
			run := func(seed uint64) []float32 {
				cfg := smallExprConfig(task, 30)
				cfg.Loop.Seed = seed
				enc, _, err := TrainExpression(context.Background(), d, cfg, nil)
				if err != nil {
					t.Fatal(err)
				}
				emb, _ := enc.Embed(d.X, d.N, nil)
				return emb
			}
			a, b, c := run(5), run(5), run(6)
			if !slices.Equal(a, b) {
				t.Error("same seed gave different embeddings")
			}
			if slices.Equal(a, c) {
				t.Error("different seeds gave identical embeddings")
			}
		})
	}
}

// cancelAt cancels a context when the loop has reported n steps.
type cancelAt struct {
	progress.Nop
	n, done int
	cancel  func()
}

func (c *cancelAt) Add(k int) {
	c.done += k
	if c.done == c.n {
		c.cancel()
	}
}

func TestTrainExpressionResumes(t *testing.T) {
	d, _ := synthExpr(4, 200, 40, 2, 2, 0.3)
	cfg := smallExprConfig("nbvae", 50)
	cfg.Loop.CheckpointEvery = 20
	whole, _, err := TrainExpression(context.Background(), d, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Loop.Dir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	if _, _, err := TrainExpression(ctx, d, cfg, &cancelAt{n: 20, cancel: cancel}); err == nil {
		t.Fatal("interrupted run returned no error")
	}
	resumed, hist, err := TrainExpression(context.Background(), d, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist.Steps) != 50 {
		t.Errorf("resumed history has %d steps, want 50", len(hist.Steps))
	}
	a, _ := whole.Embed(d.X, d.N, nil)
	b, _ := resumed.Embed(d.X, d.N, nil)
	if !slices.Equal(a, b) {
		t.Error("resumed run differs from the uninterrupted one")
	}
}

func TestTrainExpressionBadInput(t *testing.T) {
	good := func() *ExprData { d, _ := synthExpr(5, 40, 10, 2, 2, 0.3); return d }
	for _, tc := range []struct {
		name   string
		task   string
		modify func(d *ExprData)
		want   string
	}{
		{"nan", "masked", func(d *ExprData) { d.X[13] = float32(math.NaN()) }, "spot 1, gene 3"},
		{"negative count", "nbvae", func(d *ExprData) { d.Counts[25] = -1 }, "spot 2, gene 5"},
		{"no counts", "nbvae", func(d *ExprData) { d.Counts = nil }, "needs raw counts"},
		{"batch out of range", "masked", func(d *ExprData) { d.Batch[7] = 2 }, "spot 7 has batch 2"},
		{"short matrix", "masked", func(d *ExprData) { d.X = d.X[:30] }, "has 30 values"},
		{"unknown task", "pca", func(d *ExprData) {}, `task "pca"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := good()
			tc.modify(d)
			_, _, err := TrainExpression(context.Background(), d, smallExprConfig(tc.task, 5), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
