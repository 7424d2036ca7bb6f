package study

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spotfuse/spotfuse/models"
	"github.com/spotfuse/spotfuse/pretrain"
)

// pretrainCross aligns the pretrained encoders (pretrain.TrainCross, frozen
// encoders, no spatial context) on the spots of the PretrainImages sections
// and returns embedders to the shared space. Without context the two
// projection heads are independent, so each modality is embedded alone
// (the other input is zero and its output dropped): expression-only
// sections get cross-aligned expression features too. Checkpoints go to
// Out/pretrain/cross-seed<seed>.
func (r *runner) pretrainCross(ctx context.Context, img *models.ImageEncoder, expr *models.ExprEncoder, pseed uint64) (imageEmbedder, exprEmbedder, error) {
	cr := r.cfg.Pretrain.Cross
	d := &pretrain.CrossData{Size: r.cfg.Patch.Size, G: len(r.expr.Genes)}
	for i, si := range r.pool.Section {
		name := r.cfg.PretrainImages[si]
		sec, x := r.secs[name], r.expr.X[name]
		sp := r.pool.Spot[i]
		d.Patches = append(d.Patches, r.pool.Pix[i])
		d.X = append(d.X, x[sp*d.G:(sp+1)*d.G]...)
		d.Row = append(d.Row, sec.Spots[sp].Row)
		d.Col = append(d.Col, sec.Spots[sp].Col)
		d.Section = append(d.Section, si)
	}
	d.N = len(d.Patches)
	cfg := pretrain.DefaultCrossConfig()
	cfg.Model.Shared, cfg.Model.Context = cr.Shared, false
	cfg.Loop.Steps, cfg.Loop.Batch, cfg.Loop.Seed = cr.Steps, cr.Batch, pseed
	cfg.Loop.CheckpointEvery = max(50, cr.Steps/2)
	cfg.Loop.LogEvery = max(10, cr.Steps/10)
	cfg.Loop.Dir = filepath.Join(r.cfg.Out, "pretrain", fmt.Sprintf("cross-seed%d", pseed))
	m, hist, err := pretrain.TrainCross(ctx, img, expr, d, cfg, r.prog)
	if err != nil {
		return nil, nil, fmt.Errorf("study: cross-modal alignment: %w", err)
	}
	logHistory("cross-modal", hist)
	di, de := m.Config.ImageDim, m.Config.ExprDim
	size := r.cfg.Patch.Size
	imgEmb := func(p [][]uint8) ([]float32, int) {
		f, _ := img.Embed(p, size)
		n := len(p)
		zi, _, dim, err := m.EmbedFeatures(f, make([]float32, n*de), n, nil)
		if err != nil {
			panic(err) // sizes are consistent by construction
		}
		return zi, dim
	}
	exprEmb := func(x []float32, n int) ([]float32, int) {
		f, _ := expr.Embed(x, n, nil)
		_, ze, dim, err := m.EmbedFeatures(make([]float32, n*di), f, n, nil)
		if err != nil {
			panic(err)
		}
		return ze, dim
	}
	return imgEmb, exprEmb, nil
}
