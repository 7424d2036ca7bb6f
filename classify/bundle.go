package classify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spotfuse/spotfuse/atomicfile"
	"github.com/spotfuse/spotfuse/models"
	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

// A model bundle is one directory that holds everything needed to label the
// spots of a new section:
//
//	model.bundle/
//	  bundle.json           metadata (Meta): genes in order, normalisation,
//	                        patch convention, classes, heads, config, version
//	  weights.safetensors   every tensor: encoders, PCA, heads (F32)
//
// bundle.json records the SHA-256 of weights.safetensors, so a bundle whose
// two files do not belong together is rejected. SaveBundle writes the
// directory atomically (both files go to a temporary sibling directory that
// is renamed over the target), and the same Bundle always gives the same
// bytes.

// Bundle file names inside the bundle directory.
const (
	BundleMetaFile    = "bundle.json"
	BundleWeightsFile = "weights.safetensors"
	// BundleFormat and BundleVersion identify the layout LoadBundle reads.
	BundleFormat  = "spotfuse-bundle"
	BundleVersion = 1
)

// Modalities of a head, in the order a prediction prefers them.
const (
	ModFused = "fused" // image embedding ⊕ expression features
	ModExpr  = "expr"  // expression features only
	ModImage = "image" // image embedding only
)

var modalities = []string{ModFused, ModExpr, ModImage}

// Expression feature kinds.
const (
	FeatEncoder = "encoder" // the (pretrained) expression encoder's embedding
	FeatPCA     = "pca"     // projection on principal components
)

// Meta is the content of bundle.json.
type Meta struct {
	Format  string `json:"format"`  // BundleFormat
	Version int    `json:"version"` // BundleVersion
	// SpotfuseVersion is the version of the binary that trained the bundle.
	SpotfuseVersion string `json:"spotfuse_version"`
	// TrainedOn names the labelled section(s) the heads were fitted on.
	TrainedOn []string `json:"trained_on"`
	// Classes are the region labels in head output order.
	Classes []string `json:"classes"`
	// Genes are the model's input genes in input order; a new section's
	// genes are matched to them by exact symbol (first occurrence).
	Genes         []string      `json:"genes"`
	Normalization Normalization `json:"normalization"`
	Expression    ExprSpec      `json:"expression"`
	// Image is nil when the bundle has no image model.
	Image *ImageSpec `json:"image"`
	// Heads lists the trained heads by modality (ModFused, ModExpr, ModImage).
	Heads map[string]HeadSpec `json:"heads"`
	// SectionCenter centres every expression feature and image embedding
	// on its mean over the section's own spots (spots with a patch for the
	// image) before the heads, in training and prediction: a label-free
	// correction of section and patient shifts.
	SectionCenter bool `json:"section_center"`
	// Config is the configuration the bundle was trained with (free JSON,
	// for the record; prediction does not read it).
	Config json.RawMessage `json:"config,omitempty"`
	// WeightsSHA256 is the hex SHA-256 of weights.safetensors.
	WeightsSHA256 string `json:"weights_sha256"`
}

// Normalization says how raw counts become model input.
type Normalization struct {
	// TargetSum: every spot's counts are scaled to this total over all
	// genes of its section, then log1p is applied (scanpy normalize_total +
	// log1p).
	TargetSum float64 `json:"target_sum"`
	Log1p     bool    `json:"log1p"` // always true
	// HVG describes how Genes were chosen (for the record).
	HVG string `json:"hvg"`
	// GeneMean and GeneSD are the per-gene mean and population sd of the
	// log-normalised expression over the training spots. A gene missing
	// from a new section is filled with GeneMean (standardised value 0).
	GeneMean []float32 `json:"gene_mean"`
	GeneSD   []float32 `json:"gene_sd"`
	// MaxMissing is the largest fraction of Genes a section may lack before
	// an expression-based prediction is refused (default 0.2).
	MaxMissing float64 `json:"max_missing"`
}

// ExprSpec describes the expression features.
type ExprSpec struct {
	Features string `json:"features"` // FeatEncoder or FeatPCA
	// Encoder is the expression encoder's configuration (FeatEncoder).
	Encoder *models.ExprEncoderConfig `json:"encoder,omitempty"`
	// Pretrained is false for a randomly initialised encoder.
	Pretrained bool `json:"pretrained"`
	// Components is the number of principal components (FeatPCA).
	Components int `json:"components,omitempty"`
}

// ImageSpec describes the H&E patches and the image encoder.
type ImageSpec struct {
	// PatchSize is the side in pixels of the patch the encoder sees.
	PatchSize int `json:"patch_size"`
	// Context is the side of the square cropped around the spot centre in
	// spot diameters (patch side = spot diameter × Context, in the pixels
	// of the section's image, then area-averaged to PatchSize).
	Context    float64                   `json:"context"`
	Convention string                    `json:"convention"`
	Encoder    models.ImageEncoderConfig `json:"encoder"`
	Pretrained bool                      `json:"pretrained"`
}

// PatchConvention is the text recorded in ImageSpec.Convention.
const PatchConvention = "square crop of side spot_diameter_px × context centred on the spot, area-averaged to patch_size × patch_size RGB"

// HeadSpec describes one classification head.
type HeadSpec struct {
	Kind string `json:"kind"` // "logreg": multinomial logistic regression on standardised features
	Dim  int    `json:"dim"`  // input width
}

// Bundle is a trained model: metadata plus the modules it names.
type Bundle struct {
	Meta Meta
	// Expr is the expression encoder (FeatEncoder), else nil.
	Expr *models.ExprEncoder
	// PCAMean (G) and PCAComponents (K × G, row c the c-th component)
	// project expression as (x − mean)·Cᵀ (FeatPCA), else nil.
	PCAMean, PCAComponents []float32
	// Image is the image encoder, nil without an image model.
	Image *models.ImageEncoder
	// Heads by modality. Their parameters are float32-representable (see
	// Quantize), so a loaded bundle predicts exactly as the saved one.
	Heads map[string]*LogReg
}

// ExprDim returns the width of the expression features.
func (b *Bundle) ExprDim() int {
	if b.Meta.Expression.Features == FeatPCA {
		return b.Meta.Expression.Components
	}
	if b.Expr != nil {
		return b.Expr.Dim()
	}
	return 0
}

// ImageDim returns the width of the image embedding (0 without one).
func (b *Bundle) ImageDim() int {
	if b.Image == nil {
		return 0
	}
	return b.Image.Dim()
}

// headDim returns the input width of the head of modality m.
func (b *Bundle) headDim(m string) int {
	switch m {
	case ModExpr:
		return b.ExprDim()
	case ModImage:
		return b.ImageDim()
	case ModFused:
		return b.ExprDim() + b.ImageDim()
	}
	return 0
}

// Quantize rounds the head's parameters to float32 precision, the precision
// they are stored in, so predictions before saving and after loading agree
// bit for bit.
func (m *LogReg) Quantize() {
	for _, v := range [][]float64{m.Mean, m.Scale, m.W, m.B} {
		for i := range v {
			v[i] = float64(float32(v[i]))
		}
	}
}

// tensors returns every tensor of the bundle by name.
func (b *Bundle) tensors() map[string]*tensor.Tensor {
	ts := map[string]*tensor.Tensor{}
	if b.Expr != nil {
		nn.AddPrefixed(ts, "encoder.expr", b.Expr.Tensors())
	}
	if b.PCAMean != nil {
		g := len(b.PCAMean)
		ts["pca.mean"] = tensor.FromSlice(b.PCAMean, g)
		ts["pca.components"] = tensor.FromSlice(b.PCAComponents, len(b.PCAComponents)/max(g, 1), g)
	}
	if b.Image != nil {
		nn.AddPrefixed(ts, "encoder.image", b.Image.Tensors())
	}
	for mod, h := range b.Heads {
		p := "head." + mod + "."
		ts[p+"weight"] = tensor.FromSlice(f32(h.W), h.K, h.D)
		ts[p+"bias"] = tensor.FromSlice(f32(h.B), h.K)
		ts[p+"mean"] = tensor.FromSlice(f32(h.Mean), h.D)
		ts[p+"scale"] = tensor.FromSlice(f32(h.Scale), h.D)
		pr := make([]float32, h.K)
		for c, ok := range h.Present {
			if ok {
				pr[c] = 1
			}
		}
		ts[p+"present"] = tensor.FromSlice(pr, h.K)
	}
	return ts
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// Check validates the bundle in memory: the metadata (see LoadBundle) and
// that the modules match it.
func (b *Bundle) Check() error {
	if err := b.Meta.check(); err != nil {
		return err
	}
	e := b.Meta.Expression
	switch e.Features {
	case FeatEncoder:
		if b.Expr == nil {
			return errors.New("expression.features is \"encoder\" but there is no expression encoder")
		}
		if b.Expr.Config != e.Encoder.WithDefaults() {
			return fmt.Errorf("field expression.encoder %+v does not describe the expression encoder %+v", *e.Encoder, b.Expr.Config)
		}
	case FeatPCA:
		g := len(b.Meta.Genes)
		if len(b.PCAMean) != g || len(b.PCAComponents) != g*e.Components {
			return fmt.Errorf("PCA has %d means and %d component values, want %d and %d × %d", len(b.PCAMean), len(b.PCAComponents), g, e.Components, g)
		}
	}
	if (b.Image == nil) != (b.Meta.Image == nil) {
		return errors.New("image model and image metadata disagree (one is missing)")
	}
	if b.Image != nil && b.Image.Config != b.Meta.Image.Encoder.WithDefaults() {
		return fmt.Errorf("field image.encoder %+v does not describe the image encoder %+v", b.Meta.Image.Encoder, b.Image.Config)
	}
	if len(b.Heads) != len(b.Meta.Heads) {
		return fmt.Errorf("%d heads but metadata lists %d", len(b.Heads), len(b.Meta.Heads))
	}
	for mod, h := range b.Heads {
		spec, ok := b.Meta.Heads[mod]
		if !ok {
			return fmt.Errorf("head %q is not listed in the metadata", mod)
		}
		if h == nil || h.K != len(b.Meta.Classes) || h.D != b.headDim(mod) || h.D != spec.Dim {
			return fmt.Errorf("head %q does not match %d classes and %d inputs", mod, len(b.Meta.Classes), b.headDim(mod))
		}
	}
	return nil
}

// check validates the metadata on its own. Errors name the field.
func (m *Meta) check() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("field %s: %s", field, fmt.Sprintf(format, a...))
	}
	if m.Format != BundleFormat {
		return bad("format", "%q, want %q", m.Format, BundleFormat)
	}
	if m.Version != BundleVersion {
		return bad("version", "%d, this spotfuse reads version %d", m.Version, BundleVersion)
	}
	if len(m.Classes) < 2 {
		return bad("classes", "%d classes, want at least 2", len(m.Classes))
	}
	if err := uniqueNames(m.Classes); err != nil {
		return bad("classes", "%v", err)
	}
	g := len(m.Genes)
	if g == 0 {
		return bad("genes", "empty")
	}
	if err := uniqueNames(m.Genes); err != nil {
		return bad("genes", "%v", err)
	}
	n := m.Normalization
	if !(n.TargetSum > 0) || math.IsInf(n.TargetSum, 0) {
		return bad("normalization.target_sum", "%g, want a positive number", n.TargetSum)
	}
	if !n.Log1p {
		return bad("normalization.log1p", "false; only log1p-normalised bundles are supported")
	}
	if len(n.GeneMean) != g || len(n.GeneSD) != g {
		return bad("normalization.gene_mean/gene_sd", "%d and %d values for %d genes", len(n.GeneMean), len(n.GeneSD), g)
	}
	for j := range g {
		if !finite32(n.GeneMean[j]) || !finite32(n.GeneSD[j]) || n.GeneSD[j] < 0 {
			return bad("normalization.gene_mean/gene_sd", "gene %s has mean %g, sd %g", m.Genes[j], n.GeneMean[j], n.GeneSD[j])
		}
	}
	if !(n.MaxMissing >= 0 && n.MaxMissing <= 1) {
		return bad("normalization.max_missing", "%g, want a fraction in [0, 1]", n.MaxMissing)
	}
	e := m.Expression
	switch e.Features {
	case FeatEncoder:
		if e.Encoder == nil {
			return bad("expression.encoder", "missing for features \"encoder\"")
		}
		if e.Encoder.Genes != g {
			return bad("expression.encoder.Genes", "%d, want %d (the number of genes)", e.Encoder.Genes, g)
		}
		if err := e.Encoder.WithDefaults().Validate(); err != nil {
			return bad("expression.encoder", "%v", err)
		}
	case FeatPCA:
		if e.Components < 1 || e.Components > g {
			return bad("expression.components", "%d, want 1..%d", e.Components, g)
		}
	default:
		return bad("expression.features", "%q, want %q or %q", e.Features, FeatEncoder, FeatPCA)
	}
	if im := m.Image; im != nil {
		if err := im.Encoder.Validate(); err != nil {
			return bad("image.encoder", "%v", err)
		}
		f := im.Encoder.Downsample()
		if im.PatchSize < 8 || im.PatchSize > 1024 || im.PatchSize%f != 0 {
			return bad("image.patch_size", "%d, want 8..1024 and a multiple of %d", im.PatchSize, f)
		}
		if !(im.Context > 0 && im.Context <= 16) {
			return bad("image.context", "%g, want a spot-diameter multiple in (0, 16]", im.Context)
		}
	}
	if len(m.Heads) == 0 {
		return bad("heads", "no head")
	}
	for mod, h := range m.Heads {
		if !slices.Contains(modalities, mod) {
			return bad("heads", "unknown modality %q (want %v)", mod, modalities)
		}
		if h.Kind != "logreg" {
			return bad("heads."+mod+".kind", "%q, want \"logreg\"", h.Kind)
		}
		if mod != ModExpr && m.Image == nil {
			return bad("heads."+mod, "needs an image model but image is null")
		}
		if h.Dim < 1 {
			return bad("heads."+mod+".dim", "%d", h.Dim)
		}
	}
	if len(m.WeightsSHA256) != 64 {
		return bad("weights_sha256", "%q is not a hex SHA-256", m.WeightsSHA256)
	}
	return nil
}

func finite32(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

func uniqueNames(names []string) error {
	seen := make(map[string]bool, len(names))
	for i, s := range names {
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("entry %d is empty", i)
		}
		if seen[s] {
			return fmt.Errorf("%q appears twice", s)
		}
		seen[s] = true
	}
	return nil
}

// SaveBundle writes b to the directory dir (created or replaced) atomically:
// both files are written to a temporary sibling directory, which then
// replaces dir. The same bundle always produces the same bytes.
func SaveBundle(dir string, b *Bundle) (err error) {
	// The weights hash goes into the metadata, so it is computed first.
	raw, err := encodeSafetensors(b.tensors())
	if err != nil {
		return fmt.Errorf("classify: bundle %s: %w", dir, err)
	}
	sum := sha256.Sum256(raw)
	b.Meta.WeightsSHA256 = hex.EncodeToString(sum[:])
	if b.Meta.Format == "" {
		b.Meta.Format, b.Meta.Version = BundleFormat, BundleVersion
	}
	if err := b.Check(); err != nil {
		return fmt.Errorf("classify: bundle %s: %w", dir, err)
	}
	meta, err := json.MarshalIndent(&b.Meta, "", "  ")
	if err != nil {
		return fmt.Errorf("classify: bundle %s: %w", dir, err)
	}
	meta = append(meta, '\n')

	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("classify: bundle %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return fmt.Errorf("classify: bundle %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err = atomicfile.WriteFile(filepath.Join(tmp, BundleWeightsFile), raw); err != nil {
		return fmt.Errorf("classify: bundle %s: %w", dir, err)
	}
	if err = atomicfile.WriteFile(filepath.Join(tmp, BundleMetaFile), meta); err != nil {
		return fmt.Errorf("classify: bundle %s: %w", dir, err)
	}
	if err = os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("classify: bundle %s: %w", dir, err)
	}
	// Replace: move an existing bundle aside, rename the new one in, then
	// delete the old one. A crash in between leaves either the old bundle
	// or the new one at dir, plus a hidden leftover.
	var old string
	if fi, statErr := os.Stat(dir); statErr == nil {
		if !fi.IsDir() {
			err = fmt.Errorf("classify: bundle %s: exists and is not a directory", dir)
			return err
		}
		old = tmp + ".old"
		if err = os.Rename(dir, old); err != nil {
			return fmt.Errorf("classify: bundle %s: %w", dir, err)
		}
	}
	if err = os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return fmt.Errorf("classify: bundle %s: %w", dir, err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

// encodeSafetensors returns the safetensors bytes of ts (via nn's writer,
// through a temporary file, so there is one encoder of the format).
func encodeSafetensors(ts map[string]*tensor.Tensor) ([]byte, error) {
	f, err := os.CreateTemp("", "spotfuse-bundle-*.safetensors")
	if err != nil {
		return nil, err
	}
	path := f.Name()
	f.Close()
	defer os.Remove(path)
	if err := nn.SaveSafetensors(path, ts, map[string]string{"spotfuse.model": "bundle"}); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// LoadBundle reads and strictly validates the bundle directory dir:
// bundle.json must parse with no unknown field and pass every check (each
// error names the file and the field), weights.safetensors must match the
// recorded SHA-256 and hold exactly the tensors the metadata implies, with
// the right shapes and finite values.
func LoadBundle(dir string) (*Bundle, error) {
	metaPath := filepath.Join(dir, BundleMetaFile)
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("classify: bundle: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("classify: bundle %s: not a directory (a bundle is a directory holding %s and %s)", dir, BundleMetaFile, BundleWeightsFile)
	}
	raw, err := os.ReadFile(metaPath)
	if err != nil {
		return nil, fmt.Errorf("classify: bundle: %w", err)
	}
	b := &Bundle{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b.Meta); err != nil {
		return nil, fmt.Errorf("classify: bundle %s: %v", metaPath, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("classify: bundle %s: data after the JSON object", metaPath)
	}
	if err := b.Meta.check(); err != nil {
		return nil, fmt.Errorf("classify: bundle %s: %w", metaPath, err)
	}
	wPath := filepath.Join(dir, BundleWeightsFile)
	wraw, err := os.ReadFile(wPath)
	if err != nil {
		return nil, fmt.Errorf("classify: bundle: %w", err)
	}
	sum := sha256.Sum256(wraw)
	if got := hex.EncodeToString(sum[:]); got != b.Meta.WeightsSHA256 {
		return nil, fmt.Errorf("classify: bundle %s: SHA-256 %s does not match weights_sha256 %s in %s (files from different bundles?)",
			wPath, got, b.Meta.WeightsSHA256, BundleMetaFile)
	}
	ts, _, err := nn.LoadSafetensors(wPath)
	if err != nil {
		return nil, fmt.Errorf("classify: bundle: %w", err)
	}
	if err := b.fromTensors(ts); err != nil {
		return nil, fmt.Errorf("classify: bundle %s: %w", wPath, err)
	}
	if err := b.Check(); err != nil {
		return nil, fmt.Errorf("classify: bundle %s: %w", dir, err)
	}
	return b, nil
}

// fromTensors builds the modules the metadata names from ts, which must hold
// exactly their tensors.
func (b *Bundle) fromTensors(ts map[string]*tensor.Tensor) error {
	for k, t := range ts {
		for _, v := range t.Data {
			if !finite32(v) {
				return fmt.Errorf("tensor %q holds a non-finite value", k)
			}
		}
	}
	used := map[string]bool{}
	take := func(prefix string, dst map[string]*tensor.Tensor) error {
		src := map[string]*tensor.Tensor{}
		for k := range dst {
			if t, ok := ts[prefix+k]; ok {
				src[k] = t
				used[prefix+k] = true
			}
		}
		if err := models.LoadTensors(dst, src); err != nil {
			return fmt.Errorf("%s: %v", strings.TrimSuffix(prefix, "."), err)
		}
		return nil
	}
	m := &b.Meta
	g := len(m.Genes)
	switch m.Expression.Features {
	case FeatEncoder:
		enc, err := models.NewExprEncoder(*m.Expression.Encoder, rand.New(rand.NewPCG(0, 0)))
		if err != nil {
			return err
		}
		if err := take("encoder.expr.", enc.Tensors()); err != nil {
			return err
		}
		b.Expr = enc
	case FeatPCA:
		k := m.Expression.Components
		dst := map[string]*tensor.Tensor{"mean": tensor.New(g), "components": tensor.New(k, g)}
		if err := take("pca.", dst); err != nil {
			return err
		}
		b.PCAMean, b.PCAComponents = dst["mean"].Data, dst["components"].Data
	}
	if m.Image != nil {
		enc := models.NewImageEncoder(m.Image.Encoder, rand.New(rand.NewPCG(0, 0)))
		if err := take("encoder.image.", enc.Tensors()); err != nil {
			return err
		}
		b.Image = enc
	}
	b.Heads = map[string]*LogReg{}
	k := len(m.Classes)
	for mod, spec := range m.Heads {
		if d := b.headDim(mod); d != spec.Dim {
			return fmt.Errorf("heads.%s.dim is %d in %s but the features are %d wide", mod, spec.Dim, BundleMetaFile, d)
		}
		d := spec.Dim
		dst := map[string]*tensor.Tensor{"weight": tensor.New(k, d), "bias": tensor.New(k), "mean": tensor.New(d),
			"scale": tensor.New(d), "present": tensor.New(k)}
		if err := take("head."+mod+".", dst); err != nil {
			return err
		}
		h := &LogReg{K: k, D: d, W: f64(dst["weight"].Data), B: f64(dst["bias"].Data), Mean: f64(dst["mean"].Data),
			Scale: f64(dst["scale"].Data), Present: make([]bool, k)}
		np := 0
		for c, v := range dst["present"].Data {
			switch v {
			case 0:
			case 1:
				h.Present[c] = true
				np++
			default:
				return fmt.Errorf("tensor head.%s.present holds %g, want 0 or 1", mod, v)
			}
		}
		if np == 0 {
			return fmt.Errorf("tensor head.%s.present marks no class", mod)
		}
		for j, s := range h.Scale {
			if !(s > 0) {
				return fmt.Errorf("tensor head.%s.scale[%d] = %g, want > 0", mod, j, s)
			}
		}
		b.Heads[mod] = h
	}
	var extra []string
	for k := range ts {
		if !used[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return fmt.Errorf("unexpected tensors %v (not named by %s)", extra[:min(5, len(extra))], BundleMetaFile)
	}
	return nil
}
