package classify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
	"github.com/spotfuse/spotfuse/models"
	"github.com/spotfuse/spotfuse/section"
)

// fixture reads one of the committed 40-spot A1 fixtures.
func fixture(t testing.TB, rel string, opt section.Options) *section.Section {
	t.Helper()
	s, err := section.Open(filepath.Join(testutil.RepoRoot(t), "testdata", rel), opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func trainFixture(t testing.TB) *section.Section {
	return fixture(t, "h5ad/A1_sub_dense.h5ad", section.Options{LabelColumn: "label"})
}

// tinyBundle builds a bundle with small random encoders on the first 30
// genes of sec and fits its heads on sec.
func tinyBundle(t testing.TB, sec *section.Section, features string) *Bundle {
	t.Helper()
	genes := slices.Clone(sec.Genes[:30])
	classes := []string{"invasive cancer", "cancer in situ", "connective tissue"}
	b := &Bundle{Meta: Meta{Format: BundleFormat, Version: BundleVersion, SpotfuseVersion: "test",
		Classes: classes, Genes: genes, Config: json.RawMessage(`{"note":"test"}`),
		Normalization: Normalization{TargetSum: 1e4, Log1p: true, HVG: "first 30 genes", MaxMissing: 0.2}}}
	rng := rand.New(rand.NewPCG(1, 2))
	switch features {
	case FeatEncoder:
		enc, err := models.NewExprEncoder(models.ExprEncoderConfig{Genes: len(genes), Hidden: 16, Latent: 8}, rng)
		if err != nil {
			t.Fatal(err)
		}
		cfg := enc.Config
		b.Expr = enc
		b.Meta.Expression = ExprSpec{Features: FeatEncoder, Encoder: &cfg}
	case FeatPCA:
		k := 4
		b.PCAMean = make([]float32, len(genes))
		b.PCAComponents = make([]float32, k*len(genes))
		for i := range b.PCAComponents {
			b.PCAComponents[i] = float32(rng.NormFloat64())
		}
		for j := range b.PCAMean {
			b.PCAMean[j] = 4
		}
		b.Meta.Expression = ExprSpec{Features: FeatPCA, Components: k}
	}
	if sec.Image != nil {
		img := models.NewImageEncoder(models.ImageEncoderConfig{Width: 4, Depth: 2}, rng)
		b.Image = img
		b.Meta.Image = &ImageSpec{PatchSize: 16, Context: 1, Convention: PatchConvention, Encoder: img.Config}
	}
	if _, err := b.FitHeads(context.Background(), sec, HeadOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	return b
}

func readBundleFiles(t testing.TB, dir string) (meta, weights []byte) {
	t.Helper()
	meta, err := os.ReadFile(filepath.Join(dir, BundleMetaFile))
	if err != nil {
		t.Fatal(err)
	}
	weights, err = os.ReadFile(filepath.Join(dir, BundleWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	return meta, weights
}

func TestBundleRoundTrip(t *testing.T) {
	sec := trainFixture(t)
	for _, feat := range []string{FeatEncoder, FeatPCA} {
		t.Run(feat, func(t *testing.T) {
			b := tinyBundle(t, sec, feat)
			if len(b.Heads) != 3 {
				t.Fatalf("heads %v, want fused, expr and image", sortedKeys(b.Heads))
			}
			tmp := t.TempDir()
			d1, d2 := filepath.Join(tmp, "a.bundle"), filepath.Join(tmp, "b.bundle")
			if err := SaveBundle(d1, b); err != nil {
				t.Fatal(err)
			}
			loaded, err := LoadBundle(d1)
			if err != nil {
				t.Fatal(err)
			}
			if err := SaveBundle(d2, loaded); err != nil {
				t.Fatal(err)
			}
			m1, w1 := readBundleFiles(t, d1)
			m2, w2 := readBundleFiles(t, d2)
			if !bytes.Equal(m1, m2) || !bytes.Equal(w1, w2) {
				t.Fatalf("save → load → save changed the bytes (meta equal %v, weights equal %v)", bytes.Equal(m1, m2), bytes.Equal(w1, w2))
			}
			// Saving over an existing bundle replaces it and leaves nothing behind.
			if err := SaveBundle(d1, loaded); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(tmp)
			if len(entries) != 2 {
				t.Fatalf("directory holds %d entries after replacing a bundle, want 2", len(entries))
			}
			// The loaded bundle predicts exactly as the one in memory.
			ctx := context.Background()
			p1, err := b.Predict(ctx, sec, PredictOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p2, err := loaded.Predict(ctx, sec, PredictOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p1.Prob, p2.Prob) || !slices.Equal(p1.Label, p2.Label) {
				t.Fatal("the loaded bundle predicts differently from the saved one")
			}
		})
	}
}

// editMeta returns a copy of the bundle directory src whose bundle.json was
// changed by fn (on the decoded JSON object).
func editMeta(t *testing.T, src string, fn func(m map[string]any)) string {
	t.Helper()
	meta, weights := readBundleFiles(t, src)
	var m map[string]any
	if err := json.Unmarshal(meta, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return writeBundleFiles(t, out, weights)
}

func writeBundleFiles(t testing.TB, meta, weights []byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "x.bundle")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if meta != nil {
		if err := os.WriteFile(filepath.Join(dir, BundleMetaFile), meta, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if weights != nil {
		if err := os.WriteFile(filepath.Join(dir, BundleWeightsFile), weights, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadBundleRejects(t *testing.T) {
	src := filepath.Join(t.TempDir(), "ok.bundle")
	if err := SaveBundle(src, tinyBundle(t, trainFixture(t), FeatEncoder)); err != nil {
		t.Fatal(err)
	}
	meta, weights := readBundleFiles(t, src)
	heads := func(m map[string]any) map[string]any { return m["heads"].(map[string]any) }
	norm := func(m map[string]any) map[string]any { return m["normalization"].(map[string]any) }
	cases := []struct {
		name string
		dir  func(t *testing.T) string
		want []string // substrings of the error
	}{
		{"not a directory", func(t *testing.T) string { return filepath.Join(src, BundleMetaFile) }, []string{"not a directory"}},
		{"no bundle.json", func(t *testing.T) string { return writeBundleFiles(t, nil, weights) }, []string{BundleMetaFile}},
		{"no weights", func(t *testing.T) string { return writeBundleFiles(t, meta, nil) }, []string{BundleWeightsFile}},
		{"bad JSON", func(t *testing.T) string { return writeBundleFiles(t, meta[:len(meta)/2], weights) }, []string{BundleMetaFile, "unexpected EOF"}},
		{"trailing data", func(t *testing.T) string { return writeBundleFiles(t, append(slices.Clone(meta), "{}"...), weights) }, []string{"data after the JSON object"}},
		{"unknown field", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { m["colour"] = "blue" })
		}, []string{BundleMetaFile, `unknown field "colour"`}},
		{"wrong format", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { m["format"] = "pickle" })
		}, []string{"field format", "pickle"}},
		{"future version", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { m["version"] = 2 })
		}, []string{"field version"}},
		{"one class", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { m["classes"] = []string{"tumour"} })
		}, []string{"field classes"}},
		{"duplicate gene", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { g := m["genes"].([]any); g[1] = g[0] })
		}, []string{"field genes", "appears twice"}},
		{"gene stats length", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { n := norm(m); n["gene_sd"] = n["gene_sd"].([]any)[1:] })
		}, []string{"field normalization.gene_mean/gene_sd"}},
		{"target sum", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { norm(m)["target_sum"] = -1 })
		}, []string{"field normalization.target_sum"}},
		{"max missing", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { norm(m)["max_missing"] = 1.5 })
		}, []string{"field normalization.max_missing"}},
		{"no log1p", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { norm(m)["log1p"] = false })
		}, []string{"field normalization.log1p"}},
		{"expression features", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { m["expression"].(map[string]any)["features"] = "scvi" })
		}, []string{"field expression.features", "scvi"}},
		{"encoder genes", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) {
				m["expression"].(map[string]any)["encoder"].(map[string]any)["Genes"] = 31
			})
		}, []string{"field expression.encoder.Genes"}},
		{"patch size", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { m["image"].(map[string]any)["patch_size"] = 15 })
		}, []string{"field image.patch_size"}},
		{"image head without image", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { m["image"] = nil })
		}, []string{"needs an image model"}},
		{"unknown head", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { heads(m)["audio"] = map[string]any{"kind": "logreg", "dim": 3} })
		}, []string{"unknown modality", "audio"}},
		{"head width", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { heads(m)["expr"].(map[string]any)["dim"] = 9 })
		}, []string{"heads.expr.dim"}},
		{"head kind", func(t *testing.T) string {
			return editMeta(t, src, func(m map[string]any) { heads(m)["expr"].(map[string]any)["kind"] = "svm" })
		}, []string{"heads.expr.kind"}},
		{"weights from another bundle", func(t *testing.T) string {
			w := slices.Clone(weights)
			w[len(w)-1] ^= 0x40
			return writeBundleFiles(t, meta, w)
		}, []string{BundleWeightsFile, "does not match weights_sha256"}},
		{"missing head tensors", func(t *testing.T) string {
			b, err := LoadBundle(src)
			if err != nil {
				t.Fatal(err)
			}
			delete(b.Heads, ModImage)
			delete(b.Meta.Heads, ModImage)
			dir := filepath.Join(t.TempDir(), "fewer.bundle")
			if err := SaveBundle(dir, b); err != nil {
				t.Fatal(err)
			}
			// Pair the smaller weights with metadata that still lists the image head.
			_, w := readBundleFiles(t, dir)
			return editMeta(t, src, func(m map[string]any) {
				m["weights_sha256"] = sha256hex(w)
			}) + "|" + string(w)
		}, []string{BundleWeightsFile, "head.image", "missing"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := c.dir(t)
			if d, w, ok := strings.Cut(dir, "|"); ok { // replace the weights
				dir = d
				if err := os.WriteFile(filepath.Join(dir, BundleWeightsFile), []byte(w), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadBundle(dir)
			if err == nil {
				t.Fatal("LoadBundle accepted a broken bundle")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func FuzzLoadBundle(f *testing.F) {
	src := filepath.Join(f.TempDir(), "ok.bundle")
	if err := SaveBundle(src, tinyBundle(f, trainFixture(f), FeatPCA)); err != nil {
		f.Fatal(err)
	}
	meta, weights := readBundleFiles(f, src)
	f.Add(meta)
	f.Add([]byte(`{"format":"spotfuse-bundle","version":1}`))
	f.Add([]byte(`{"classes":["a","b"],"genes":["x"],"heads":{"expr":{"kind":"logreg","dim":-1}}}`))
	dir := filepath.Join(f.TempDir(), "fuzz.bundle")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, BundleWeightsFile), weights, 0o644); err != nil {
		f.Fatal(err)
	}
	sec := trainFixture(f)
	f.Fuzz(func(t *testing.T, m []byte) {
		if err := os.WriteFile(filepath.Join(dir, BundleMetaFile), m, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := LoadBundle(dir)
		if err != nil {
			return
		}
		// Whatever loads must predict without panicking.
		if _, err := b.Predict(context.Background(), sec, PredictOptions{Modality: ModExpr}); err != nil {
			t.Logf("predict: %v", err)
		}
	})
}

func TestQuantize(t *testing.T) {
	m := &LogReg{Mean: []float64{0.1}, Scale: []float64{1.0 / 3}, W: []float64{math.Pi}, B: []float64{math.E}}
	m.Quantize()
	for _, v := range [][]float64{m.Mean, m.Scale, m.W, m.B} {
		if float64(float32(v[0])) != v[0] {
			t.Fatalf("%v is not float32-representable after Quantize", v[0])
		}
	}
	if m.W[0] != float64(float32(math.Pi)) {
		t.Fatalf("W = %v, want float32(π)", m.W[0])
	}
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestSaveBundleChecks: SaveBundle refuses a bundle whose metadata does not
// describe its modules, and leaves no directory behind.
func TestSaveBundleChecks(t *testing.T) {
	sec := trainFixture(t)
	cases := []struct {
		name  string
		spoil func(b *Bundle)
		want  string
	}{
		{"encoder config", func(b *Bundle) { c := *b.Meta.Expression.Encoder; c.Hidden++; b.Meta.Expression.Encoder = &c }, "expression.encoder"},
		{"image config", func(b *Bundle) { b.Meta.Image.Encoder.Width++ }, "image.encoder"},
		{"head without metadata", func(b *Bundle) { delete(b.Meta.Heads, ModFused) }, "heads"},
		{"no image model", func(b *Bundle) { b.Image = nil }, "image"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := tinyBundle(t, sec, FeatEncoder)
			c.spoil(b)
			dir := filepath.Join(t.TempDir(), "bad.bundle")
			err := SaveBundle(dir, b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("a refused bundle left %s behind", dir)
			}
		})
	}
}
