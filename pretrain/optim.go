package pretrain

import (
	"fmt"
	"strconv"

	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

// optimizer wraps nn.AdamW with named, checkpointable state.
type optimizer struct {
	adam   *nn.AdamW
	names  []string
	params []*nn.Var
}

func newOptimizer(cfg LoopConfig, names []string, params []*nn.Var) *optimizer {
	return &optimizer{adam: nn.NewAdamW(cfg.LR, cfg.WeightDecay), names: names, params: params}
}

func (o *optimizer) step(lr float64) {
	o.adam.LR = lr
	o.adam.Step(o.params)
}

// state returns the moments as tensors "m/<param>" and "v/<param>" and the
// step count as metadata.
func (o *optimizer) state() (map[string]*tensor.Tensor, string) {
	t, m, v := o.adam.State(o.params)
	ts := map[string]*tensor.Tensor{}
	for i, n := range o.names {
		if m[i] != nil {
			ts["m/"+n] = tensor.FromSlice(m[i], len(m[i]))
			ts["v/"+n] = tensor.FromSlice(v[i], len(v[i]))
		}
	}
	return ts, strconv.Itoa(t)
}

func (o *optimizer) setState(ts map[string]*tensor.Tensor, meta string) error {
	t, err := strconv.Atoi(meta)
	if err != nil {
		return fmt.Errorf("bad optimizer step %q", meta)
	}
	m := make([][]float32, len(o.params))
	v := make([][]float32, len(o.params))
	for i, n := range o.names {
		if tm, ok := ts["m/"+n]; ok {
			tv, ok := ts["v/"+n]
			if !ok {
				return fmt.Errorf("optimizer state of %q has no second moment", n)
			}
			m[i], v[i] = tm.Data, tv.Data
		}
	}
	return o.adam.SetState(o.params, t, m, v)
}

func zeroGrads(params []*nn.Var) { nn.ZeroGrad(params) }

// clipGrads clips the global gradient norm to maxNorm (0 = no clipping) and
// returns the norm before clipping.
func clipGrads(params []*nn.Var, maxNorm float64) float64 {
	if maxNorm > 0 {
		return nn.ClipGradNorm(params, maxNorm)
	}
	return nn.GradNorm(params)
}
