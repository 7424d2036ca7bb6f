package pretrain

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/models"
)

// synthPaired makes nSec sections of 10 × 15 spots on a square array whose
// patch colour and expression are both driven by a hidden 2-D state u of
// the spot: red = u₁, green = u₂ (plus pixel noise); gene j =
// log1p(exp(2·aⱼ·u + noise)).
func synthPaired(seed uint64, nSec, size, g int) *CrossData {
	rng := rand.New(rand.NewPCG(seed, 11))
	a := make([][2]float64, g)
	for j := range a {
		a[j] = [2]float64{rng.NormFloat64(), rng.NormFloat64()}
	}
	d := &CrossData{Size: size, G: g}
	for s := 0; s < nSec; s++ {
		for r := 0; r < 10; r++ {
			for c := 0; c < 15; c++ {
				u := [2]float64{rng.Float64(), rng.Float64()}
				p := make([]uint8, 3*size*size)
				for k := 0; k < size*size; k++ {
					noise := func() float64 { return 20 * rng.NormFloat64() }
					p[3*k] = clampByte(255*u[0] + noise())
					p[3*k+1] = clampByte(255*u[1] + noise())
					p[3*k+2] = clampByte(128 + noise())
				}
				d.Patches = append(d.Patches, p)
				for j := 0; j < g; j++ {
					v := 2*(a[j][0]*u[0]+a[j][1]*u[1]) + 0.2*rng.NormFloat64()
					d.X = append(d.X, float32(math.Log1p(math.Exp(v))))
				}
				d.Row, d.Col, d.Section = append(d.Row, r), append(d.Col, c), append(d.Section, s)
				d.Batch = append(d.Batch, s)
				d.N++
			}
		}
	}
	return d
}

func clampByte(v float64) uint8 { return uint8(math.Max(0, math.Min(255, math.Round(v)))) }

// encoders returns randomly initialised (frozen) encoders for synthPaired.
func encoders(t *testing.T, g int) (*models.ImageEncoder, *models.ExprEncoder) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	img := models.NewImageEncoder(models.ImageEncoderConfig{Width: 8, Depth: 2}, rng)
	expr, err := models.NewExprEncoder(models.ExprEncoderConfig{Genes: g, Hidden: 32, Latent: 16}, rng)
	if err != nil {
		t.Fatal(err)
	}
	return img, expr
}

func crossConfig(context bool, steps int) CrossConfig {
	return CrossConfig{
		Model:           models.CrossConfig{Shared: 16, Hidden: 32, Context: context, Heads: 2, Temperature: 0.1},
		HeldOutSections: []int{3},
		Loop:            LoopConfig{Steps: steps, Batch: 64, LogEvery: 50, CheckpointEvery: 50, LR: 3e-3, Warmup: 0.05, ClipNorm: 5, Seed: 1},
	}
}

// heldOut returns the spots of section s.
func heldOut(d *CrossData, s int) *CrossData {
	var idx []int
	for i, v := range d.Section {
		if v == s {
			idx = append(idx, i)
		}
	}
	h := &CrossData{Size: d.Size, G: d.G, N: len(idx)}
	for _, i := range idx {
		h.Patches = append(h.Patches, d.Patches[i])
		h.X = append(h.X, d.X[i*d.G:(i+1)*d.G]...)
		h.Row, h.Col, h.Section = append(h.Row, d.Row[i]), append(h.Col, d.Col[i]), append(h.Section, d.Section[i])
	}
	return h
}

func TestTrainCrossRetrievalBeatsChance(t *testing.T) {
	d := synthPaired(1, 4, 8, 20)
	for _, tc := range []struct {
		name                 string
		context, sectionNorm bool
	}{{"no context", false, false}, {"context", true, false}, {"section norm", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			img, expr := encoders(t, d.G)
			cfg := crossConfig(tc.context, 200)
			cfg.Model.SectionNorm = tc.sectionNorm
			m, hist, err := TrainCross(context.Background(), img, expr, d, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			first, last := hist.FirstHeldOut("infonce"), hist.LastHeldOut("infonce")
			if !(last < 0.8*first) {
				t.Errorf("held-out InfoNCE %g → %g, want a clear decrease", first, last)
			}
			h := heldOut(d, 3)
			zi, ze, dim, err := CrossEmbed(m, h)
			if err != nil {
				t.Fatal(err)
			}
			acc, err := Retrieval(zi, ze, h.N, dim, 1, 5)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("held-out image→expression top-1 %.3f, top-5 %.3f (chance %.3f, %.3f); InfoNCE %.3f → %.3f",
				acc[0], acc[1], 1/float64(h.N), 5/float64(h.N), first, last)
			if !(acc[0] > 5/float64(h.N)) || !(acc[1] > 15/float64(h.N)) {
				t.Errorf("retrieval top-1 %.3f, top-5 %.3f: not clearly above chance (%.3f, %.3f)", acc[0], acc[1], 1/float64(h.N), 5/float64(h.N))
			}
		})
	}
}

func TestTrainCrossDeterministicAndSaved(t *testing.T) {
	d := synthPaired(2, 4, 8, 12)
	h := heldOut(d, 3)
	run := func(ft bool) ([]float32, *models.CrossModel) {
		img, expr := encoders(t, d.G)
		cfg := crossConfig(true, 30)
		cfg.FineTuneExpr = ft
		cfg.Model.LearnTemperature = true
		m, _, err := TrainCross(context.Background(), img, expr, d, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		zi, ze, _, err := CrossEmbed(m, h)
		if err != nil {
			t.Fatal(err)
		}
		return append(zi, ze...), m
	}
	a, m := run(false)
	b, _ := run(false)
	c, _ := run(true)
	if !slices.Equal(a, b) {
		t.Error("same seed gave different embeddings")
	}
	if slices.Equal(a, c) {
		t.Error("fine-tuning the expression encoder changed nothing")
	}
	if m.LogScale().Value.Data[0] == float32(math.Log(10)) {
		t.Error("learned temperature did not move")
	}
	path := filepath.Join(t.TempDir(), "cross.safetensors")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := models.LoadCrossModel(path)
	if err != nil {
		t.Fatal(err)
	}
	zi, ze, _, err := CrossEmbed(back, h)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, append(zi, ze...)) {
		t.Error("reloaded model embeds differently")
	}
}

func TestTrainCrossBadInput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(d *CrossData, cfg *CrossConfig)
		want   string
	}{
		{"short patch", func(d *CrossData, _ *CrossConfig) { d.Patches[4] = d.Patches[4][:10] }, "patch 4 has 10 bytes"},
		{"gene mismatch", func(d *CrossData, _ *CrossConfig) { d.G, d.X = 5, d.X[:d.N*5] }, "takes 8 genes, the data has 5"},
		{"all held out", func(d *CrossData, cfg *CrossConfig) { cfg.HeldOutSections = []int{0, 1, 2, 3} }, "0 spots outside"},
		{"duplicate position", func(d *CrossData, cfg *CrossConfig) { d.Row[1], d.Col[1] = d.Row[0], d.Col[0] }, "share array position"},
		{"missing coordinates", func(d *CrossData, _ *CrossConfig) { d.Row = d.Row[:3] }, "3 rows"},
		{"section norm with fine-tuning", func(_ *CrossData, cfg *CrossConfig) { cfg.Model.SectionNorm, cfg.FineTuneExpr = true, true }, "needs frozen encoders"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := synthPaired(3, 4, 8, 8)
			img, expr := encoders(t, 8)
			cfg := crossConfig(true, 5)
			tc.modify(d, &cfg)
			_, _, err := TrainCross(context.Background(), img, expr, d, cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestRetrieval(t *testing.T) {
	q := []float32{1, 0, 0, 1, 1, 1}
	for _, tc := range []struct {
		name string
		keys []float32
		want []float64
	}{
		{"identical", []float32{1, 0, 0, 1, 1, 1}, []float64{1, 1}},
		{"scaled keys", []float32{3, 0, 0, 2, 5, 5}, []float64{1, 1}},
		// Key 0 and key 1 swapped: rows 0 and 1 rank their own key below
		// one (top-1 miss), row 2 still hits.
		{"swapped", []float32{0, 1, 1, 0, 1, 1}, []float64{1.0 / 3, 1}},
		// All keys equal: ties count against the query.
		{"ties", []float32{1, 1, 1, 1, 1, 1}, []float64{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Retrieval(q, tc.keys, 3, 2, 1, 3)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > 1e-12 {
					t.Errorf("top-%d accuracy %g, want %g", []int{1, 3}[i], got[i], tc.want[i])
				}
			}
		})
	}
	if _, err := Retrieval(q, q[:4], 3, 2, 1); err == nil {
		t.Error("mismatched lengths gave no error")
	}
}

func TestTrainCrossFineTunesImageEncoder(t *testing.T) {
	d := synthPaired(4, 4, 8, 8)
	img, expr := encoders(t, d.G)
	before := slices.Clone(img.NamedParams()["conv1.weight"].Value.Data)
	exprBefore := slices.Clone(expr.NamedParams()["in.weight"].Value.Data)
	cfg := crossConfig(false, 5)
	cfg.FineTuneImage = true
	m, hist, err := TrainCross(context.Background(), img, expr, d, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist.Steps) != 5 {
		t.Fatalf("%d steps recorded", len(hist.Steps))
	}
	if slices.Equal(before, m.Image.NamedParams()["conv1.weight"].Value.Data) {
		t.Error("fine-tuning left the image encoder unchanged")
	}
	if !slices.Equal(exprBefore, m.Expr.NamedParams()["in.weight"].Value.Data) {
		t.Error("the frozen expression encoder changed")
	}
}
