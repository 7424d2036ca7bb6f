package nn

import "math"

// AdamW is Adam with decoupled weight decay (torch.optim.AdamW). Set the
// fields, then call Step after each Backward. LR may be changed between
// steps (for a schedule).
type AdamW struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64

	t     int
	state map[*Var][2][]float32 // first and second moments
}

// NewAdamW returns AdamW with torch's defaults for the betas and eps
// (0.9, 0.999, 1e-8).
func NewAdamW(lr, weightDecay float64) *AdamW {
	return &AdamW{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay}
}

// Step updates every param that has a gradient.
func (o *AdamW) Step(params []*Var) {
	if o.state == nil {
		o.state = map[*Var][2][]float32{}
	}
	o.t++
	bc1 := 1 - math.Pow(o.Beta1, float64(o.t))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.t))
	stepSize := float32(o.LR / bc1)
	sqrtBC2 := float32(math.Sqrt(bc2))
	decay := float32(1 - o.LR*o.WeightDecay)
	b1, b2, eps := float32(o.Beta1), float32(o.Beta2), float32(o.Eps)
	for _, p := range params {
		if p.Grad == nil {
			continue
		}
		st, ok := o.state[p]
		if !ok {
			st = [2][]float32{make([]float32, p.Value.Size()), make([]float32, p.Value.Size())}
			o.state[p] = st
		}
		w, g, m, v := p.Value.Data, p.Grad.Data, st[0], st[1]
		parallelFor(len(w), func(lo, hi int) {
			adamw(w[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], decay, b1, b2, sqrtBC2, eps, stepSize)
		})
	}
}

// SGD is stochastic gradient descent with optional momentum and (coupled,
// L2) weight decay, like torch.optim.SGD.
type SGD struct {
	LR, Momentum, WeightDecay float64

	buf map[*Var][]float32
}

// Step updates every param that has a gradient.
func (o *SGD) Step(params []*Var) {
	if o.buf == nil {
		o.buf = map[*Var][]float32{}
	}
	lr, mom, wd := float32(o.LR), float32(o.Momentum), float32(o.WeightDecay)
	for _, p := range params {
		if p.Grad == nil {
			continue
		}
		w, g := p.Value.Data, p.Grad.Data
		b, seen := o.buf[p]
		if mom != 0 && !seen {
			b = make([]float32, len(w))
			o.buf[p] = b
		}
		for i := range w {
			d := g[i] + wd*w[i]
			if mom != 0 {
				if seen {
					b[i] = mom*b[i] + d
				} else {
					b[i] = d
				}
				d = b[i]
			}
			w[i] -= lr * d
		}
	}
}

// ZeroGrad drops the gradients of params.
func ZeroGrad(params []*Var) {
	for _, p := range params {
		p.Grad = nil
	}
}

// CosineWarmup is the learning-rate multiplier at step (0-based) of total:
// linear warm-up to 1 over the first warmup steps, then cosine decay to 0 at
// step total.
func CosineWarmup(step, total, warmup int) float64 {
	if step < warmup {
		return float64(step+1) / float64(warmup)
	}
	span := max(1, total-warmup)
	p := math.Min(1, float64(step-warmup)/float64(span))
	return 0.5 * (1 + math.Cos(math.Pi*p))
}

// ClipGradNorm rescales the gradients of params so that their global L2
// norm is at most maxNorm (like torch.nn.utils.clip_grad_norm_) and returns
// the norm before clipping.
func ClipGradNorm(params []*Var, maxNorm float64) float64 {
	var ss float64
	for _, p := range params {
		if p.Grad == nil {
			continue
		}
		for _, g := range p.Grad.Data {
			ss += float64(g) * float64(g)
		}
	}
	norm := math.Sqrt(ss)
	if c := maxNorm / (norm + 1e-6); c < 1 {
		for _, p := range params {
			if p.Grad == nil {
				continue
			}
			for i := range p.Grad.Data {
				p.Grad.Data[i] *= float32(c)
			}
		}
	}
	return norm
}

// GradNorm returns the global L2 norm of the gradients of params.
func GradNorm(params []*Var) float64 {
	var ss float64
	for _, p := range params {
		if p.Grad != nil {
			for _, g := range p.Grad.Data {
				ss += float64(g) * float64(g)
			}
		}
	}
	return math.Sqrt(ss)
}
