package nn

import (
	"math"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
	"github.com/spotfuse/spotfuse/tensor"
)

// The golden file is produced by testdata/gen_torch.py with PyTorch.

type goldenTensor struct {
	Shape []int     `json:"shape"`
	Data  []float32 `json:"data"`
}

func (g goldenTensor) tensor() *tensor.Tensor {
	return tensor.FromSlice(append([]float32(nil), g.Data...), g.Shape...)
}

type goldenCase struct {
	Name   string                  `json:"name"`
	Inputs map[string]goldenTensor `json:"inputs"`
	Seed   goldenTensor            `json:"seed"`
	Output goldenTensor            `json:"output"`
	Grads  map[string]goldenTensor `json:"grads"`
	Params map[string]any          `json:"params"`
	Extra  map[string]goldenTensor `json:"extra"`
	Mask   goldenTensor            `json:"mask"`
}

func loadGolden(t *testing.T) map[string]goldenCase {
	t.Helper()
	var g struct {
		Cases []goldenCase `json:"cases"`
	}
	testutil.ReadJSON(t, "testdata/torch_golden.json", &g)
	out := map[string]goldenCase{}
	for _, c := range g.Cases {
		out[c.Name] = c
	}
	return out
}

func floats(v any) []float32 {
	var out []float32
	for _, x := range v.([]any) {
		out = append(out, float32(x.(float64)))
	}
	return out
}

func ints(v any) []int {
	var out []int
	for _, x := range v.([]any) {
		out = append(out, int(x.(float64)))
	}
	return out
}

func assertClose(t *testing.T, what string, got []float32, want goldenTensor, tol float64) {
	t.Helper()
	if len(got) != len(want.Data) {
		t.Fatalf("%s: %d values, torch has %d", what, len(got), len(want.Data))
	}
	for i := range got {
		g, w := float64(got[i]), float64(want.Data[i])
		if math.Abs(g-w) > tol*(1+math.Abs(w)) {
			t.Fatalf("%s[%d] = %.7g, torch %.7g", what, i, g, w)
		}
	}
}

func TestAgainstTorch(t *testing.T) {
	golden := loadGolden(t)
	type op func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32)
	conv := func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32) {
		s, p := int(c.Params["stride"].(float64)), int(c.Params["pad"].(float64))
		return Conv2d(in["x"], in["w"], in["b"], s, p), nil
	}
	bn := func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32) {
		rm := tensor.FromSlice(floats(c.Params["running_mean"]), in["g"].Value.Size())
		rv := tensor.FromSlice(floats(c.Params["running_var"]), in["g"].Value.Size())
		out := BatchNorm(in["x"], in["g"], in["b"], rm, rv, 0.1, 1e-5, c.Params["train"].(bool))
		return out, map[string]func() []float32{
			"running_mean": func() []float32 { return rm.Data },
			"running_var":  func() []float32 { return rv.Data },
		}
	}
	cases := map[string]op{
		"conv2d_s2p1":      conv,
		"conv2d_s1p1":      conv,
		"conv2d_small_map": conv,
		"conv_transpose2d_s2p1": func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32) {
			return ConvTranspose2d(in["x"], in["w"], in["b"], 2, 1), nil
		},
		"batchnorm2d_train": bn,
		"batchnorm2d_eval":  bn,
		"batchnorm1d_train": bn,
		"layernorm": func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32) {
			return LayerNorm(in["x"], in["g"], in["b"], 1e-5), nil
		},
		"gelu": func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32) {
			return GELU(in["x"]), nil
		},
		"maxpool_k3s2p1": func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32) {
			return MaxPool2dPad(in["x"], 3, 2, 1), nil
		},
		"upsample2x": func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32) {
			return Upsample2x(in["x"]), nil
		},
		"cross_entropy_weighted": func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32) {
			return CrossEntropy(in["logits"], ints(c.Params["targets"]), floats(c.Params["weights"])), nil
		},
		"cross_entropy": func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32) {
			return CrossEntropy(in["logits"], ints(c.Params["targets"]), nil), nil
		},
		"mse": func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32) {
			return MSE(in["pred"], in["target"]), nil
		},
		"masked_mse": func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32) {
			return MaskedMSE(in["pred"], in["target"], floats(c.Params["mask"])), nil
		},
		"infonce": func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32) {
			return InfoNCE(in["a"], in["b"], float32(c.Params["temperature"].(float64))), nil
		},
		"negbinomial_nll": func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32) {
			counts := tensor.FromSlice(floats(c.Params["counts"]), in["mu"].Value.Shape...)
			return NegBinomialNLL(in["mu"], in["theta"], counts), nil
		},
		"gaussian_kl": func(c goldenCase, in map[string]*Var) (*Var, map[string]func() []float32) {
			return GaussianKL(in["mu"], in["logvar"]), nil
		},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			c, ok := golden[name]
			if !ok {
				t.Fatalf("no golden case %q", name)
			}
			in := map[string]*Var{}
			for k, v := range c.Inputs {
				in[k] = Param(v.tensor())
			}
			out, extra := f(c, in)
			assertClose(t, "output", out.Value.Data, c.Output, 1e-4)
			out.BackwardFrom(c.Seed.tensor())
			for k, want := range c.Grads {
				assertClose(t, "grad "+k, in[k].Grad.Data, want, 2e-4)
			}
			for k, want := range c.Extra {
				assertClose(t, k, extra[k](), want, 1e-5)
			}
		})
	}
}

func TestMultiHeadAttentionAgainstTorch(t *testing.T) {
	c := loadGolden(t)["multihead_attention"]
	in := map[string]*Var{}
	for k, v := range c.Inputs {
		in[k] = Param(v.tensor())
	}
	d := in["q"].Value.Shape[2]
	inW, inB := c.Inputs["in_w"].Data, c.Inputs["in_b"].Data
	proj := func(i int) *LinearLayer {
		return &LinearLayer{
			W: Param(tensor.FromSlice(append([]float32(nil), inW[i*d*d:(i+1)*d*d]...), d, d)),
			B: Param(tensor.FromSlice(append([]float32(nil), inB[i*d:(i+1)*d]...), d)),
		}
	}
	m := &MultiHeadAttention{Q: proj(0), K: proj(1), V: proj(2),
		Out:   &LinearLayer{W: in["out_w"], B: in["out_b"]},
		Heads: int(c.Params["heads"].(float64))}
	out := m.Forward(in["q"], in["k"], in["v"], c.Mask.tensor())
	assertClose(t, "output", out.Value.Data, c.Output, 1e-4)
	out.BackwardFrom(c.Seed.tensor())
	for _, k := range []string{"q", "k", "v", "out_w", "out_b"} {
		assertClose(t, "grad "+k, in[k].Grad.Data, c.Grads[k], 2e-4)
	}
	var gw, gb []float32
	for _, l := range []*LinearLayer{m.Q, m.K, m.V} {
		gw = append(gw, l.W.Grad.Data...)
		gb = append(gb, l.B.Grad.Data...)
	}
	assertClose(t, "grad in_w", gw, c.Grads["in_w"], 2e-4)
	assertClose(t, "grad in_b", gb, c.Grads["in_b"], 2e-4)
}

func TestAdamWAgainstTorch(t *testing.T) {
	c := loadGolden(t)["adamw"]
	w := Param(c.Inputs["w"].tensor())
	target := Const(c.Inputs["target"].tensor())
	opt := NewAdamW(c.Params["lr"].(float64), c.Params["weight_decay"].(float64))
	assertClose(t, "weights", squaredErrorSteps(w, target, opt.Step), c.Output, 1e-5)
}

func TestSGDAgainstTorch(t *testing.T) {
	c := loadGolden(t)["sgd"]
	w := Param(c.Inputs["w"].tensor())
	target := Const(c.Inputs["target"].tensor())
	opt := &SGD{LR: c.Params["lr"].(float64), Momentum: c.Params["momentum"].(float64), WeightDecay: c.Params["weight_decay"].(float64)}
	assertClose(t, "weights", squaredErrorSteps(w, target, opt.Step), c.Output, 1e-5)
}

// squaredErrorSteps takes three optimiser steps on Σ(w−target)² and returns
// the weights after each step, concatenated (gen_torch.py's trajectory).
func squaredErrorSteps(w, target *Var, step func([]*Var)) []float32 {
	var traj []float32
	for range 3 {
		ZeroGrad([]*Var{w})
		d := Sub(w, target)
		Sum(Mul(d, d)).Backward()
		step([]*Var{w})
		traj = append(traj, w.Value.Data...)
	}
	return traj
}

func TestClipGradNormAgainstTorch(t *testing.T) {
	c := loadGolden(t)["clip_grad_norm"]
	p1, p2 := Param(tensor.New(3, 2)), Param(tensor.New(4))
	p1.Grad, p2.Grad = c.Inputs["g1"].tensor(), c.Inputs["g2"].tensor()
	norm := ClipGradNorm([]*Var{p1, p2}, c.Params["max_norm"].(float64))
	if want := c.Params["norm"].(float64); math.Abs(norm-want) > 1e-5*want {
		t.Fatalf("norm %g, torch %g", norm, want)
	}
	assertClose(t, "clipped grads", append(append([]float32(nil), p1.Grad.Data...), p2.Grad.Data...), c.Output, 1e-6)
}

func TestCosineWarmup(t *testing.T) {
	cases := []struct {
		step, total, warmup int
		want                float64
	}{
		{0, 100, 10, 0.1},
		{9, 100, 10, 1},
		{10, 100, 10, 1},
		{55, 100, 10, 0.5},
		{100, 100, 10, 0},
		{150, 100, 10, 0},
		{0, 10, 0, 1},
	}
	for _, c := range cases {
		if got := CosineWarmup(c.step, c.total, c.warmup); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("CosineWarmup(%d, %d, %d) = %g, want %g", c.step, c.total, c.warmup, got, c.want)
		}
	}
}
