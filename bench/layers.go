package bench

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

// LayerStat is the measured speed of one convolution layer on a batch.
type LayerStat struct {
	Name      string
	FLOPs     float64 // forward FLOPs for the batch
	FwdGFS    float64 // forward GFLOP/s
	TrainGFS  float64 // forward + backward (3× forward FLOPs; 2× for the first layer, which needs no input gradient)
	FwdMillis float64
	BwdMillis float64
}

// Conv4Layers times each convolution of conv4 alone (with its BatchNorm and
// ReLU excluded) at cfg's batch and size, best of reps.
func Conv4Layers(cfg Config, reps int) []LayerStat {
	rng := rand.New(rand.NewPCG(cfg.Seed, 3))
	chans := []int{3, 32, 64, 128, 256}
	h := cfg.Size
	var out []LayerStat
	for i := 0; i < 4; i++ {
		stride := 2
		if i == 0 {
			stride = 1
		}
		conv := nn.NewConv2d(chans[i], chans[i+1], 3, stride, 1, false, rng)
		xt := tensor.New(cfg.Batch, chans[i], h, h)
		nn.Normal(xt, 0, 1, rng)
		x := nn.Param(xt)
		if i == 0 {
			x = nn.Const(xt)
		}
		oh := (h+2-3)/stride + 1
		flops := 2 * float64(chans[i+1]*chans[i]*9*oh*oh*cfg.Batch)
		fwd, bwd := time.Duration(1<<62), time.Duration(1<<62)
		var seed *tensor.Tensor
		for r := 0; r < reps; r++ {
			// Outputs and gradients go back to the engine's pool after each
			// repetition (Free), as in training (BackwardRelease): without
			// it every repetition timed fresh allocations too.
			t := time.Now()
			nn.NoGrad(func() { conv.Forward(x).Free() })
			fwd = min(fwd, time.Since(t))
			y := conv.Forward(x)
			if seed == nil {
				seed = tensor.Full(1, y.Value.Shape...)
			}
			t = time.Now()
			y.BackwardFrom(seed)
			bwd = min(bwd, time.Since(t))
			y.Free()
			conv.W.ZeroGrad()
			x.Free() // a leaf: only its gradient goes back
		}
		bwdFlops := 2 * flops
		if i == 0 {
			bwdFlops = flops
		}
		out = append(out, LayerStat{
			Name:      fmt.Sprintf("conv%d %d→%d s%d %dx%d", i+1, chans[i], chans[i+1], stride, h, h),
			FLOPs:     flops,
			FwdGFS:    flops / fwd.Seconds() / 1e9,
			TrainGFS:  (flops + bwdFlops) / (fwd + bwd).Seconds() / 1e9,
			FwdMillis: float64(fwd.Microseconds()) / 1e3,
			BwdMillis: float64(bwd.Microseconds()) / 1e3,
		})
		h = oh
	}
	return out
}

// SgemmPeak returns the best GFLOP/s of an n×n×n sgemm over reps runs on
// the current tensor.Threads().
func SgemmPeak(n, reps int) float64 {
	rng := rand.New(rand.NewPCG(1, 1))
	a, b, c := tensor.New(n, n), tensor.New(n, n), tensor.New(n, n)
	nn.Normal(a, 0, 1, rng)
	nn.Normal(b, 0, 1, rng)
	best := time.Duration(1 << 62)
	for r := 0; r < reps; r++ {
		t := time.Now()
		tensor.Gemm(false, false, n, n, n, 1, a.Data, n, b.Data, n, 0, c.Data, n)
		best = min(best, time.Since(t))
	}
	return 2 * float64(n) * float64(n) * float64(n) / best.Seconds() / 1e9
}
