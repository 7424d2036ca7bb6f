package models

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

func randMatrix(rng *rand.Rand, n, d int) []float32 {
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func TestExprEncoderShapesAndSaveLoad(t *testing.T) {
	for _, cfg := range []ExprEncoderConfig{
		{Genes: 30, Hidden: 16, Latent: 4},
		{Genes: 30, Hidden: 16, Latent: 4, Variational: true, Norm: "batch"},
		{Genes: 30, Hidden: 16, Latent: 4, MaskInput: true, Dropout: -1},
	} {
		name := "layer"
		if cfg.Norm != "" {
			name = cfg.Norm
		}
		if cfg.Variational {
			name += "-vae"
		}
		if cfg.MaskInput {
			name += "-mask"
		}
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			e, err := NewExprEncoder(cfg, rng)
			if err != nil {
				t.Fatal(err)
			}
			x := randMatrix(rng, 2500, 30) // more than one Embed chunk
			mu, logvar := e.Forward(nn.Const(tensor.FromSlice(x[:5*30], 5, 30)), nil, true, rng)
			if !slices.Equal(mu.Shape(), []int{5, 4}) || (logvar != nil) != cfg.Variational {
				t.Fatalf("mu %v, logvar present %v", mu.Shape(), logvar != nil)
			}
			emb, d := e.Embed(x, 2500, nil)
			if d != 4 || len(emb) != 2500*4 {
				t.Fatalf("Embed gave %d values of width %d", len(emb), d)
			}
			// Eval mode is row-wise: embedding a row alone gives the same
			// values (up to the GEMM's rounding, which depends on the shape).
			one, _ := e.Embed(x[2100*30:2101*30], 1, nil)
			for j, v := range one {
				if math.Abs(float64(v-emb[2100*4+j])) > 1e-5 {
					t.Errorf("row 2100 alone %v, in batch %v", one, emb[2100*4:2101*4])
					break
				}
			}
			path := filepath.Join(t.TempDir(), "enc.safetensors")
			if err := e.Save(path, map[string]string{"genes": `["a"]`}); err != nil {
				t.Fatal(err)
			}
			back, meta, err := LoadExprEncoder(path)
			if err != nil {
				t.Fatal(err)
			}
			if meta["genes"] != `["a"]` {
				t.Errorf("metadata %v lost the gene list", meta)
			}
			again, _ := back.Embed(x, 2500, nil)
			if !slices.Equal(emb, again) {
				t.Error("reloaded encoder embeds differently")
			}
		})
	}
}

func TestExprEncoderConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  ExprEncoderConfig
		want string
	}{
		{ExprEncoderConfig{}, "Genes ≥ 1"},
		{ExprEncoderConfig{Genes: 5, Norm: "group"}, `norm "group"`},
		{ExprEncoderConfig{Genes: 5, Dropout: 1}, "dropout 1"},
	} {
		_, err := NewExprEncoder(tc.cfg, rand.New(rand.NewPCG(1, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.cfg, err, tc.want)
		}
	}
}

func TestLoadExprEncoderRejectsOtherModels(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img.safetensors")
	img := NewImageEncoder(ImageEncoderConfig{Width: 2, Depth: 1}, rand.New(rand.NewPCG(1, 1)))
	if err := img.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadExprEncoder(path); err == nil || !strings.Contains(err.Error(), "not an expression encoder") {
		t.Errorf("error %v", err)
	}
}

func TestNBDecoderShares(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	dec := NewNBDecoder(4, 8, 12, 3, "layer", rng)
	z := nn.Const(tensor.FromSlice(randMatrix(rng, 5, 4), 5, 4))
	share, theta := dec.Forward(z, nn.Const(OneHot([]int{0, 1, 2, 1, 0}, 3)), false)
	for i := 0; i < 5; i++ {
		var s float64
		for _, v := range share.Value.Data[i*12 : (i+1)*12] {
			s += float64(v)
		}
		if math.Abs(s-1) > 1e-5 {
			t.Errorf("row %d shares sum to %g", i, s)
		}
	}
	for _, v := range theta.Value.Data {
		if v != 1 { // log θ starts at 0
			t.Errorf("initial θ %g, want 1", v)
		}
	}
	// The covariate matters: the same z in two sections decodes differently.
	z2 := nn.Const(tensor.FromSlice(append(slices.Clone(z.Value.Data[:4]), z.Value.Data[:4]...), 2, 4))
	s2, _ := dec.Forward(z2, nn.Const(OneHot([]int{0, 1}, 3)), false)
	if slices.Equal(s2.Value.Data[:12], s2.Value.Data[12:]) {
		t.Error("section covariate has no effect")
	}
}
