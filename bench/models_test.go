package bench

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spotfuse/spotfuse/nn"
)

// TestModelsMatchTorch checks the reference models have the parameter and
// buffer counts of the PyTorch peers (torch_peer.py's Conv4 and
// torchvision.models.resnet18(num_classes=7), counted with torch 1.13), so
// the benchmark compares like with like.
func TestModelsMatchTorch(t *testing.T) {
	cases := []struct {
		name                     string
		params, tensors, buffers int
	}{
		{"conv4", 390695, 14, 8},
		{"resnet18", 11180103, 62, 40},
	}
	for _, c := range cases {
		m, err := NewModel(c.name, 7, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range m.NamedParams() {
			n += p.Value.Size()
		}
		if n != c.params || len(m.NamedParams()) != c.tensors || len(m.NamedBuffers()) != c.buffers {
			t.Errorf("%s: %d parameters in %d tensors, %d buffers; torch has %d in %d, %d",
				c.name, n, len(m.NamedParams()), len(m.NamedBuffers()), c.params, c.tensors, c.buffers)
		}
	}
}

// TestModelsLearn overfits a tiny batch: the loss must fall.
func TestModelsLearn(t *testing.T) {
	for _, name := range []string{"conv4", "resnet18"} {
		t.Run(name, func(t *testing.T) {
			cfg := Config{Model: name, Batch: 4, Size: 32, Classes: 3, Seed: 2}
			rng := rand.New(rand.NewPCG(cfg.Seed, 1))
			m, err := NewModel(name, cfg.Classes, rng)
			if err != nil {
				t.Fatal(err)
			}
			x, y := data(cfg, rng)
			params := nn.Params(m)
			opt := nn.NewAdamW(1e-2, 0)
			first := TrainStep(m, opt, params, x, y)
			var last float32
			for range 8 {
				last = TrainStep(m, opt, params, x, y)
			}
			if math.IsNaN(float64(last)) || last > 0.5*first {
				t.Fatalf("loss %g -> %g: not learning", first, last)
			}
		})
	}
}
