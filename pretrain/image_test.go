package pretrain

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/models"
	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

// synthPatches returns n H&E-like patches of side s: a pink (eosin)
// background with a few purple (haematoxylin) discs, some noise.
func synthPatches(n, s int, seed uint64) [][]uint8 {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([][]uint8, n)
	for i := range out {
		p := make([]uint8, 3*s*s)
		bg := [3]float64{230 - 20*rng.Float64(), 150 + 30*rng.Float64(), 190 + 20*rng.Float64()}
		type disc struct{ x, y, r float64 }
		var discs []disc
		for k := 0; k < 1+rng.IntN(4); k++ {
			discs = append(discs, disc{rng.Float64() * float64(s), rng.Float64() * float64(s), 1.5 + rng.Float64()*float64(s)/6})
		}
		for y := 0; y < s; y++ {
			for x := 0; x < s; x++ {
				c := bg
				for _, d := range discs {
					if math.Hypot(float64(x)-d.x, float64(y)-d.y) < d.r {
						c = [3]float64{110, 60, 160}
					}
				}
				for ch := 0; ch < 3; ch++ {
					p[3*(y*s+x)+ch] = uint8(math.Max(0, math.Min(255, c[ch]+8*rng.NormFloat64())))
				}
			}
		}
		out[i] = p
	}
	return out
}

// tinyConfig is a small, fast configuration of all three tasks.
func tinyConfig(tasks map[string]float64, steps int, dir string) ImageConfig {
	return ImageConfig{
		Encoder: models.ImageEncoderConfig{Width: 4, Depth: 3},
		Tasks:   tasks,
		Loop: LoopConfig{Steps: steps, Batch: 8, CheckpointEvery: 2, LogEvery: 100, LR: 3e-3,
			Warmup: 0.1, ClipNorm: 5, Seed: 3, Dir: dir},
	}
}

var allTasks = map[string]float64{TaskInpaint: 1, TaskColorize: 1, TaskContrastive: 0.5}

func encoderBytes(t *testing.T, e *models.ImageEncoder) map[string][]float32 {
	t.Helper()
	m := map[string][]float32{}
	for k, v := range e.Tensors() {
		m[k] = append([]float32(nil), v.Data...)
	}
	return m
}

func sameBits(a, b map[string][]float32) string {
	if len(a) != len(b) {
		return "different tensor sets"
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || len(x) != len(y) {
			return k + ": missing or resized"
		}
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				return k + ": values differ"
			}
		}
	}
	return ""
}

// cancelAfter is a progress reporter that cancels a context after n steps.
type cancelAfter struct {
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Start(string, int) {}
func (c *cancelAfter) Finish()           {}
func (c *cancelAfter) Add(k int) {
	c.n -= k
	if c.n <= 0 {
		c.cancel()
	}
}

func TestResumeIsBitIdentical(t *testing.T) {
	pix := synthPatches(24, 16, 1)
	held := synthPatches(8, 16, 2)
	for _, arch := range []string{"conv4", "resnet"} {
		t.Run(arch, func(t *testing.T) {
			full := tinyConfig(allTasks, 7, t.TempDir())
			full.Encoder.Arch = arch
			want, wantHist, err := TrainImage(context.Background(), pix, 16, held, full, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Interrupt after 3 steps (the last checkpoint is at step 2), then resume.
			cfg := full
			cfg.Loop.Dir = t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			_, _, err = TrainImage(ctx, pix, 16, held, cfg, &cancelAfter{n: 3, cancel: cancel})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
			}
			got, gotHist, err := TrainImage(context.Background(), pix, 16, held, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := sameBits(encoderBytes(t, want), encoderBytes(t, got)); d != "" {
				t.Fatalf("resumed encoder differs from the uninterrupted one: %s", d)
			}
			if len(gotHist.Steps) != 7 || len(wantHist.Steps) != 7 {
				t.Fatalf("history steps: resumed %d, uninterrupted %d, want 7", len(gotHist.Steps), len(wantHist.Steps))
			}
			for i := range wantHist.Loss["total"] {
				if wantHist.Loss["total"][i] != gotHist.Loss["total"][i] {
					t.Fatalf("loss of step %d: resumed %g, uninterrupted %g", i+1, gotHist.Loss["total"][i], wantHist.Loss["total"][i])
				}
			}
			// A finished run resumes to the same result without training.
			again, _, err := TrainImage(context.Background(), pix, 16, held, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := sameBits(encoderBytes(t, want), encoderBytes(t, again)); d != "" {
				t.Fatalf("reloading a finished run: %s", d)
			}
			for _, f := range []string{CheckpointFile, "loss.csv", "loss.png"} {
				if _, err := os.Stat(filepath.Join(cfg.Loop.Dir, f)); err != nil {
					t.Errorf("missing output: %v", err)
				}
			}
		})
	}
}

func TestResumeRejectsOtherConfig(t *testing.T) {
	pix := synthPatches(16, 16, 1)
	cfg := tinyConfig(map[string]float64{TaskInpaint: 1}, 2, t.TempDir())
	if _, _, err := TrainImage(context.Background(), pix, 16, nil, cfg, nil); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(c *ImageConfig, p *[][]uint8){
		"lr":     func(c *ImageConfig, _ *[][]uint8) { c.Loop.LR *= 2 },
		"weight": func(c *ImageConfig, _ *[][]uint8) { c.Tasks = map[string]float64{TaskInpaint: 2} },
		"mask":   func(c *ImageConfig, _ *[][]uint8) { c.MaskFrac = 0.5 },
		"data":   func(_ *ImageConfig, p *[][]uint8) { *p = synthPatches(16, 16, 9) },
	} {
		c, p := cfg, pix
		mod(&c, &p)
		_, _, err := TrainImage(context.Background(), p, 16, nil, c, nil)
		if err == nil || !strings.Contains(err.Error(), "another configuration") || !strings.Contains(err.Error(), CheckpointFile) {
			t.Errorf("%s changed: err = %v, want a configuration mismatch naming the checkpoint", name, err)
		}
	}
}

func TestDeterminism(t *testing.T) {
	pix := synthPatches(16, 16, 1)
	run := func(seed uint64) map[string][]float32 {
		cfg := tinyConfig(allTasks, 3, "")
		cfg.Loop.Seed = seed
		e, _, err := TrainImage(context.Background(), pix, 16, nil, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return encoderBytes(t, e)
	}
	a, b, c := run(5), run(5), run(6)
	if d := sameBits(a, b); d != "" {
		t.Fatalf("same seed, different encoders: %s", d)
	}
	if sameBits(a, c) == "" {
		t.Fatal("different seeds gave identical encoders")
	}
}

// TestTasksLearn checks that each pretext task alone lowers its loss on the
// training patches (used as held-out set here) within a few steps.
func TestTasksLearn(t *testing.T) {
	pix := synthPatches(32, 16, 4)
	for _, task := range ImageTasks {
		t.Run(task, func(t *testing.T) {
			cfg := tinyConfig(map[string]float64{task: 1}, 40, "")
			cfg.Encoder.Width = 8
			cfg.Loop.Batch = 16
			cfg.Loop.LogEvery = 40
			cfg.Loop.LR = 1e-2
			_, h, err := TrainImage(context.Background(), pix, 16, pix, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			// The contrastive loss starts near chance, ln(2·16−1) ≈ 3.43, and
			// the augmented views of similar synthetic patches stay hard.
			drop := map[string]float64{TaskInpaint: 0.3, TaskColorize: 0.3, TaskContrastive: 0.15}[task]
			before, after := h.FirstHeldOut(task), h.LastHeldOut(task)
			if !(after < (1-drop)*before) {
				t.Errorf("%s loss %.4f → %.4f after 40 steps, want a drop of at least %.0f%%", task, before, after, 100*drop)
			}
			t.Logf("%s: %.4f → %.4f", task, before, after)
		})
	}
}

// nanTask is a one-parameter task whose loss becomes NaN at step nanAt
// (its input turns NaN: "bad data") or whose weight is blown up by a huge
// learning rate.
type nanTask struct {
	w     *nn.Var
	nanAt int
}

func (n *nanTask) NamedParams() map[string]*nn.Var { return map[string]*nn.Var{"w": n.w} }

func (n *nanTask) Step(_ context.Context, step int, rng *rand.Rand) (*nn.Var, map[string]float64, error) {
	x := tensor.FromSlice([]float32{float32(rng.NormFloat64()), 1}, 2)
	if step == n.nanAt {
		x.Data[0] = float32(math.NaN())
	}
	d := nn.Sub(n.w, nn.Const(x))
	l := nn.Mean(nn.Mul(d, d))
	return l, map[string]float64{"mse": float64(l.Value.Data[0])}, nil
}

func TestNaNDetection(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nanAt int
		want  []string
	}{
		{"first step", 0, []string{"step 1:", `"mse"`, "before any update"}},
		{"later step", 4, []string{"step 5:", `"mse"`, "diverged", "lower LR"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			task := &nanTask{w: nn.Param(tensor.New(2)), nanAt: tc.nanAt}
			_, err := Run(context.Background(), task, LoopConfig{Steps: 10, CheckpointEvery: 1, LR: 0.1, Seed: 1, Dir: dir}, nil)
			if err == nil {
				t.Fatal("no error for a NaN loss")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, v := range task.w.Value.Data {
				if math.IsNaN(float64(v)) {
					t.Errorf("NaN weight after the failed step: %v", task.w.Value.Data)
				}
			}
			ts, meta, err := nn.LoadSafetensors(filepath.Join(dir, CheckpointFile))
			if tc.nanAt == 0 {
				if err == nil {
					t.Error("a checkpoint was written although no step succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if meta["step"] != "4" {
				t.Errorf("last checkpoint at step %s, want 4", meta["step"])
			}
			for _, v := range ts["param/w"].Data {
				if math.IsNaN(float64(v)) {
					t.Error("NaN weight in the checkpoint")
				}
			}
		})
	}
}

func TestHistoryCSV(t *testing.T) {
	h := newHistory()
	h.addHeldOut(0, map[string]float64{"total": 3, "a": 3})
	h.addLoss(1, map[string]float64{"total": 2, "a": 2})
	h.addLoss(2, map[string]float64{"total": 1.5, "a": 1.5})
	h.addHeldOut(2, map[string]float64{"total": 1, "a": 1})
	var b bytes.Buffer
	if err := h.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	want := "step,total,a,heldout_total,heldout_a\n0,,,3,3\n1,2,2,,\n2,1.5,1.5,1,1\n"
	if b.String() != want {
		t.Errorf("CSV:\n%s\nwant:\n%s", b.String(), want)
	}
	var png bytes.Buffer
	if err := h.WritePNG(&png); err != nil || !bytes.HasPrefix(png.Bytes(), []byte("\x89PNG")) {
		t.Errorf("PNG: err %v, %d bytes", err, png.Len())
	}
}

func TestTrainImageBadInput(t *testing.T) {
	pix := synthPatches(4, 16, 1)
	for _, tc := range []struct {
		name string
		mod  func(*ImageConfig, *[][]uint8, *int)
		want string
	}{
		{"no task", func(c *ImageConfig, _ *[][]uint8, _ *int) { c.Tasks = nil }, "no image task"},
		{"unknown task", func(c *ImageConfig, _ *[][]uint8, _ *int) { c.Tasks = map[string]float64{"jigsaw": 1} }, "unknown image task"},
		{"short patch", func(_ *ImageConfig, p *[][]uint8, _ *int) { *p = append(*p, make([]uint8, 5)) }, "patch 4 has 5 bytes"},
		{"size", func(_ *ImageConfig, _ *[][]uint8, s *int) { *s = 15 }, "multiple of 4"},
		{"lr", func(c *ImageConfig, _ *[][]uint8, _ *int) { c.Loop.LR = math.Inf(1) }, "LR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tinyConfig(allTasks, 1, "")
			p := append([][]uint8(nil), pix...)
			size := 16
			tc.mod(&cfg, &p, &size)
			_, _, err := TrainImage(context.Background(), p, size, nil, cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestRecalibrateBN checks that the running mean becomes the mean of the
// layer's pre-normalisation activations over the patches, and the running
// variance their within-batch (unbiased) variance.
func TestRecalibrateBN(t *testing.T) {
	pix := synthPatches(16, 8, 5)
	e := models.NewImageEncoder(models.ImageEncoderConfig{Width: 3, Depth: 1}, rand.New(rand.NewPCG(1, 1)))
	RecalibrateBN(e, pix, 8, 4) // 4 batches of 4 (patches i, i+4, i+8, i+12)
	y := nn.Conv2d(nn.Const(e.Input(pix, 8)), e.NamedParams()["conv1.weight"], nil, 1, 1).Value
	const hw = 64
	for c := 0; c < 3; c++ {
		var mean, vars float64
		for b := 0; b < 4; b++ {
			var s, ss float64
			for _, i := range []int{b, b + 4, b + 8, b + 12} {
				for _, v := range y.Data[(i*3+c)*hw : (i*3+c+1)*hw] {
					s += float64(v)
					ss += float64(v) * float64(v)
				}
			}
			n := float64(4 * hw)
			m := s / n
			mean += m / 4
			vars += (ss - n*m*m) / (n - 1) / 4
		}
		gotM := float64(e.Buffers()["conv1.bn.running_mean"].Data[c])
		gotV := float64(e.Buffers()["conv1.bn.running_var"].Data[c])
		if math.Abs(gotM-mean) > 1e-4*(1+math.Abs(mean)) || math.Abs(gotV-vars) > 1e-4*(1+vars) {
			t.Errorf("channel %d: running mean %g var %g, want %g and %g", c, gotM, gotV, mean, vars)
		}
	}
}
