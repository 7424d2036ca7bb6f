package study

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"

	"github.com/spotfuse/spotfuse/models"
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
func (r *runner) pretrainExpr(ctx context.Context, pseed uint64) (exprEmbedder, error) {
	ex := r.cfg.Pretrain.Expr
	x, counts, n, batch := r.exprPool(ex.Task == "nbvae")
	d := &pretrain.ExprData{X: x, Counts: counts, N: n, G: len(r.expr.Genes), Batch: batch,
		NBatch: len(r.cfg.PretrainExpr), Genes: r.expr.Genes, Sections: r.cfg.PretrainExpr}
	loop := pretrain.DefaultLoop()
	loop.Steps, loop.Batch, loop.LR, loop.WeightDecay, loop.Seed = ex.Steps, ex.Batch, ex.LR, ex.WeightDecay, pseed
	loop.Dir = filepath.Join(r.cfg.Out, "pretrain", fmt.Sprintf("expr-%s-seed%d", ex.Task, pseed))
	loop.CheckpointEvery = max(50, ex.Steps/5)
	loop.LogEvery = max(10, ex.Steps/10)
	enc, hist, err := pretrain.TrainExpression(ctx, d, pretrain.ExprConfig{Task: ex.Task, Latent: ex.Latent, Hidden: ex.Hidden,
		MaskFrac: ex.MaskFrac, Loop: loop}, r.prog)
	if err != nil {
		return nil, err
	}
	logHistory("expression "+ex.Task, hist)
	return func(x []float32, n int) ([]float32, int) { return enc.Embed(x, n, nil) }, nil
}

// colourTextureStats is the hand-crafted image baseline: per patch the mean
// and standard deviation of R, G, B and of optical density per channel,
// an 8-bin grey-level histogram, the mean and sd of the gradient magnitude,
// and grey-level co-occurrence contrast and homogeneity at offsets (1,0)
// and (0,1) over 8 grey levels (26 features).
var colourTextureStats = func(patches [][]uint8, size int) ([]float32, int) {
	const d = 26
	out := make([]float32, len(patches)*d)
	for pi, p := range patches {
		f := out[pi*d : (pi+1)*d]
		n := float64(size * size)
		grey := make([]float64, size*size)
		var sum, sq, odSum, odSq [3]float64
		var hist [8]float64
		for i := 0; i < size*size; i++ {
			var g float64
			for c := 0; c < 3; c++ {
				v := float64(p[3*i+c])
				sum[c] += v
				sq[c] += v * v
				od := -math.Log((v + 1) / 256)
				odSum[c] += od
				odSq[c] += od * od
				g += v / 3
			}
			grey[i] = g
			hist[min(7, int(g/32))]++
		}
		k := 0
		for c := 0; c < 3; c++ {
			m := sum[c] / n
			f[k], f[k+1] = float32(m/255), float32(math.Sqrt(math.Max(0, sq[c]/n-m*m))/255)
			om := odSum[c] / n
			f[k+2], f[k+3] = float32(om), float32(math.Sqrt(math.Max(0, odSq[c]/n-om*om)))
			k += 4
		}
		for b := range hist {
			f[k] = float32(hist[b] / n)
			k++
		}
		var gm, gs float64
		cnt := 0.0
		for y := 1; y < size-1; y++ {
			for x := 1; x < size-1; x++ {
				gx := grey[y*size+x+1] - grey[y*size+x-1]
				gy := grey[(y+1)*size+x] - grey[(y-1)*size+x]
				m := math.Hypot(gx, gy) / 255
				gm += m
				gs += m * m
				cnt++
			}
		}
		if cnt > 0 {
			gm /= cnt
			f[k], f[k+1] = float32(gm), float32(math.Sqrt(math.Max(0, gs/cnt-gm*gm)))
		}
		k += 2
		for _, off := range [][2]int{{1, 0}, {0, 1}} {
			var contrast, homog, pairs float64
			for y := 0; y+off[1] < size; y++ {
				for x := 0; x+off[0] < size; x++ {
					a := math.Floor(grey[y*size+x] / 32)
					b := math.Floor(grey[(y+off[1])*size+x+off[0]] / 32)
					dd := (a - b) * (a - b)
					contrast += dd
					homog += 1 / (1 + dd)
					pairs++
				}
			}
			f[k], f[k+1] = float32(contrast/pairs), float32(homog/pairs)
			k += 2
		}
	}
	return out, d
}
