package study

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"

	"github.com/spotfuse/spotfuse/models"
	"github.com/spotfuse/spotfuse/patch"
	"github.com/spotfuse/spotfuse/pretrain"
)

// randomExpr returns an untrained expression encoder's embedder (same
// widths as the pretrained one).
func (r *runner) randomExpr(pseed uint64) (exprEmbedder, error) {
	ex := r.cfg.Pretrain.Expr
	enc, err := models.NewExprEncoder(models.ExprEncoderConfig{Genes: len(r.expr.Genes), Hidden: ex.Hidden, Latent: ex.Latent},
		rand.New(rand.NewPCG(pseed, 0xe4a7d)))
	if err != nil {
		return nil, err
	}
	return func(x []float32, n int) ([]float32, int) { return enc.Embed(x, n, nil) }, nil
}

// pretrainExpr trains the expression encoder on the pooled PretrainExpr
// sections (one batch per section). Checkpoints go to
// Out/pretrain/expr-<task>-seed<seed>.
func (r *runner) pretrainExpr(ctx context.Context, pseed uint64) (exprEmbedder, *models.ExprEncoder, error) {
	ex := r.cfg.Pretrain.Expr
	d := r.expr.Pool
	loop := pretrain.DefaultLoop()
	loop.Steps, loop.Batch, loop.LR, loop.WeightDecay, loop.Seed = ex.Steps, ex.Batch, ex.LR, ex.WeightDecay, pseed
	loop.Dir = filepath.Join(r.cfg.Out, "pretrain", fmt.Sprintf("expr-%s-seed%d", ex.Task, pseed))
	loop.CheckpointEvery = max(50, ex.Steps/5)
	loop.LogEvery = max(10, ex.Steps/10)
	enc, hist, err := pretrain.TrainExpression(ctx, d, pretrain.ExprConfig{Task: ex.Task, Latent: ex.Latent, Hidden: ex.Hidden,
		MaskFrac: ex.MaskFrac, Loop: loop}, r.prog)
	if err != nil {
		return nil, nil, err
	}
	logHistory("expression "+ex.Task, hist)
	return func(x []float32, n int) ([]float32, int) { return enc.Embed(x, n, nil) }, enc, nil
}

// colourTextureStats is the hand-crafted image baseline
// (patch.ColourTextureStats of every patch).
func colourTextureStats(patches [][]uint8, size int) ([]float32, int, error) {
	d := len(patch.StatsNames)
	out := make([]float32, 0, len(patches)*d)
	for i, p := range patches {
		f, err := patch.ColourTextureStats(p, size)
		if err != nil {
			return nil, 0, fmt.Errorf("study: patch %d: %w", i, err)
		}
		out = append(out, f...)
	}
	return out, d, nil
}
