package models

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

// CrossConfig describes the cross-modal model: projection heads from the
// image and expression embeddings to a shared space where a spot's two
// views are aligned (CLIP), optionally after attention over the spot's
// array neighbours. Zero values take the defaults noted.
type CrossConfig struct {
	ImageDim int `json:"image_dim"` // width of the image embedding (required)
	ExprDim  int `json:"expr_dim"`  // width of the expression embedding (required)
	Shared   int `json:"shared"`    // width of the shared space (default 64)
	Hidden   int `json:"hidden"`    // hidden width of the projection heads (default 256)
	// Context adds, per modality, multi-head attention from each spot to
	// itself and its array neighbours, with a sinusoidal encoding of their
	// relative array coordinates.
	Context bool `json:"context"`
	Heads   int  `json:"heads"` // attention heads (default 4; must divide Shared)
	// Temperature of the contrastive loss (default 0.1); with
	// LearnTemperature it is the initial value of a learned temperature.
	Temperature      float64 `json:"temperature"`
	LearnTemperature bool    `json:"learn_temperature"`
	// SectionNorm standardises each feature of both embeddings within each
	// section (zero mean, unit variance over the section's spots) before the
	// heads, removing per-section shifts such as staining or batch effects
	// so that what is aligned is the variation within a section. It needs
	// frozen encoders.
	SectionNorm bool `json:"section_norm"`
}

// WithDefaults fills zero fields with the documented defaults.
func (c CrossConfig) WithDefaults() CrossConfig {
	if c.Shared == 0 {
		c.Shared = 64
	}
	if c.Hidden == 0 {
		c.Hidden = 256
	}
	if c.Heads == 0 {
		c.Heads = 4
	}
	if c.Temperature == 0 {
		c.Temperature = 0.1
	}
	return c
}

// Validate reports a configuration that cannot be built.
func (c CrossConfig) Validate() error {
	switch {
	case c.ImageDim < 1 || c.ExprDim < 1:
		return fmt.Errorf("models: cross-modal model needs image and expression widths ≥ 1, got %d and %d", c.ImageDim, c.ExprDim)
	case c.Shared < 1 || c.Hidden < 1:
		return fmt.Errorf("models: cross-modal widths shared %d, hidden %d must be ≥ 1", c.Shared, c.Hidden)
	case c.Context && (c.Heads < 1 || c.Shared%c.Heads != 0 || c.Shared%4 != 0):
		return fmt.Errorf("models: cross-modal context: %d heads must divide the shared width %d, a multiple of 4", c.Heads, c.Shared)
	case !(c.Temperature > 0) || c.Temperature > 10:
		return fmt.Errorf("models: cross-modal temperature %g: want a value in (0, 10]", c.Temperature)
	}
	return nil
}

// CrossModel maps a spot's image and expression embeddings to L2-normalised
// vectors in one shared space. Image and Expr are the encoders the
// embeddings come from; they are kept with the model (and saved with it) so
// that Embed can start from patches and expression, but the heads only
// ever see their outputs.
type CrossModel struct {
	Config   CrossConfig
	Image    *ImageEncoder // may be nil when only EmbedFeatures is used
	Expr     *ExprEncoder  // may be nil when only EmbedFeatures is used
	imgProj  *ProjectionHead
	exprProj *ProjectionHead
	imgCtx   *SpatialAttention // nil without Context
	exprCtx  *SpatialAttention
	logScale *nn.Var // log(1/temperature), shape [1]
}

// NewCrossModel builds the heads with weights drawn from rng; cfg is
// completed with defaults and validated. The encoders may be nil.
func NewCrossModel(cfg CrossConfig, img *ImageEncoder, expr *ExprEncoder, rng *rand.Rand) (*CrossModel, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if img != nil && img.Dim() != cfg.ImageDim {
		return nil, fmt.Errorf("models: image encoder width %d, cross-modal ImageDim %d", img.Dim(), cfg.ImageDim)
	}
	if expr != nil && expr.Dim() != cfg.ExprDim {
		return nil, fmt.Errorf("models: expression encoder width %d, cross-modal ExprDim %d", expr.Dim(), cfg.ExprDim)
	}
	m := &CrossModel{
		Config:   cfg,
		Image:    img,
		Expr:     expr,
		imgProj:  NewProjectionHead(cfg.ImageDim, cfg.Hidden, cfg.Shared, rng),
		exprProj: NewProjectionHead(cfg.ExprDim, cfg.Hidden, cfg.Shared, rng),
		logScale: nn.Param(tensor.Full(float32(-math.Log(cfg.Temperature)), 1)),
	}
	if cfg.Context {
		m.imgCtx = NewSpatialAttention(cfg.Shared, cfg.Heads, rng)
		m.exprCtx = NewSpatialAttention(cfg.Shared, cfg.Heads, rng)
	}
	return m, nil
}

// Dim returns the width of the shared space.
func (m *CrossModel) Dim() int { return m.Config.Shared }

// LogScale returns log(1/temperature) as a [1] parameter (trainable only
// when Config.LearnTemperature; see HeadParams).
func (m *CrossModel) LogScale() *nn.Var { return m.logScale }

// Tokens are the inputs of one batch to Forward: for each of B spots, T
// slots holding the spot itself (slot 0) and, with context, its neighbours.
type Tokens struct {
	B, T    int
	Present []bool         // B×T: slot holds a spot (slot 0 always does)
	PE      *tensor.Tensor // (B, T, Shared) positional encodings; nil when T = 1
}

// Forward projects image features (B·T, ImageDim) and expression features
// (B·T, ExprDim), laid out as tok describes, to the shared space and
// returns the (B, Shared) embeddings of the B spots (not normalised).
func (m *CrossModel) Forward(img, expr *nn.Var, tok Tokens) (zi, ze *nn.Var) {
	zi = m.imgProj.Forward(img)
	ze = m.exprProj.Forward(expr)
	if m.imgCtx == nil || tok.T == 1 {
		if tok.T != 1 {
			zi = nn.Reshape(nn.Slice(nn.Reshape(zi, tok.B, tok.T, m.Config.Shared), 1, 0, 1), tok.B, m.Config.Shared)
			ze = nn.Reshape(nn.Slice(nn.Reshape(ze, tok.B, tok.T, m.Config.Shared), 1, 0, 1), tok.B, m.Config.Shared)
		}
		return zi, ze
	}
	shape := []int{tok.B, tok.T, m.Config.Shared}
	zi = m.imgCtx.Forward(nn.Reshape(zi, shape...), tok)
	ze = m.exprCtx.Forward(nn.Reshape(ze, shape...), tok)
	return zi, ze
}

// EmbedFeatures maps precomputed image (n × ImageDim) and expression
// (n × ExprDim) embeddings of n spots to L2-normalised shared embeddings
// (n × Shared each), in eval mode without a graph. nb gives each spot's
// neighbours among the n rows; it is required with Context and ignored
// otherwise. With SectionNorm the n spots are treated as one section (see
// EmbedFeaturesBySection).
func (m *CrossModel) EmbedFeatures(img, expr []float32, n int, nb *Neighbourhood) (zi, ze []float32, d int, err error) {
	return m.EmbedFeaturesBySection(img, expr, n, nil, nb)
}

// EmbedFeaturesBySection is EmbedFeatures with each spot's section given
// (section[i]; nil = one section), used by SectionNorm.
func (m *CrossModel) EmbedFeaturesBySection(img, expr []float32, n int, section []int, nb *Neighbourhood) (zi, ze []float32, d int, err error) {
	di, de, d := m.Config.ImageDim, m.Config.ExprDim, m.Config.Shared
	if len(img) != n*di || len(expr) != n*de {
		return nil, nil, 0, fmt.Errorf("models: cross-modal embedding: %d image and %d expression values for %d spots of widths %d and %d",
			len(img), len(expr), n, di, de)
	}
	if m.Config.Context && (nb == nil || nb.N() != n) {
		return nil, nil, 0, fmt.Errorf("models: cross-modal embedding with context needs the neighbourhood of the %d spots", n)
	}
	if section != nil && len(section) != n {
		return nil, nil, 0, fmt.Errorf("models: cross-modal embedding: %d section labels for %d spots", len(section), n)
	}
	if m.Config.SectionNorm {
		img, expr = StandardizeBySection(img, n, di, section), StandardizeBySection(expr, n, de, section)
	}
	zi, ze = make([]float32, n*d), make([]float32, n*d)
	const chunk = 512
	nn.NoGrad(func() {
		for lo := 0; lo < n; lo += chunk {
			idx := make([]int, 0, chunk)
			for i := lo; i < min(lo+chunk, n); i++ {
				idx = append(idx, i)
			}
			rows, tok := []int(idx), Tokens{B: len(idx), T: 1}
			if m.Config.Context {
				rows, tok = nb.Tokens(idx, d)
			}
			a, b := m.Forward(nn.Const(GatherRows(img, di, rows)), nn.Const(GatherRows(expr, de, rows)), tok)
			a, b = nn.L2Normalize(a), nn.L2Normalize(b)
			copy(zi[lo*d:], a.Value.Data)
			copy(ze[lo*d:], b.Value.Data)
		}
	})
	return zi, ze, d, nil
}

// Embed computes the image embeddings of patches and the expression
// embeddings of x (n × G log-normalised) with the model's encoders and maps
// both to the shared space (see EmbedFeaturesBySection; section may be nil).
func (m *CrossModel) Embed(patches [][]uint8, size int, x []float32, n int, section []int, nb *Neighbourhood) (zi, ze []float32, d int, err error) {
	if m.Image == nil || m.Expr == nil {
		return nil, nil, 0, fmt.Errorf("models: cross-modal model has no encoders attached; use EmbedFeatures")
	}
	if len(patches) != n {
		return nil, nil, 0, fmt.Errorf("models: cross-modal embedding: %d patches for %d spots", len(patches), n)
	}
	if len(x) != n*m.Expr.Config.Genes {
		return nil, nil, 0, fmt.Errorf("models: cross-modal embedding: %d expression values for %d spots × %d genes", len(x), n, m.Expr.Config.Genes)
	}
	img, _ := m.Image.Embed(patches, size)
	expr, _ := m.Expr.Embed(x, n, nil)
	return m.EmbedFeaturesBySection(img, expr, n, section, nb)
}

// StandardizeBySection returns a copy of the n × d matrix x with every
// column shifted to mean 0 and scaled to unit (population) standard
// deviation within each section (section[i]; nil = one section). Constant
// columns become 0.
func StandardizeBySection(x []float32, n, d int, section []int) []float32 {
	out := slices.Clone(x)
	groups := map[int][]int{}
	for i := 0; i < n; i++ {
		s := 0
		if section != nil {
			s = section[i]
		}
		groups[s] = append(groups[s], i)
	}
	for _, rows := range groups {
		for j := 0; j < d; j++ {
			var sum, sq float64
			for _, i := range rows {
				v := float64(x[i*d+j])
				sum += v
				sq += v * v
			}
			mean := sum / float64(len(rows))
			sd := math.Sqrt(math.Max(sq/float64(len(rows))-mean*mean, 0))
			for _, i := range rows {
				v := 0.0
				if sd > 1e-12 {
					v = (float64(x[i*d+j]) - mean) / sd
				}
				out[i*d+j] = float32(v)
			}
		}
	}
	return out
}

// HeadParams returns the parameters of the heads (projections, attention
// and, with LearnTemperature, the temperature) by stable name.
func (m *CrossModel) HeadParams() map[string]*nn.Var {
	p := map[string]*nn.Var{}
	nn.AddPrefixed(p, "image_proj", m.imgProj.NamedParams())
	nn.AddPrefixed(p, "expr_proj", m.exprProj.NamedParams())
	if m.imgCtx != nil {
		nn.AddPrefixed(p, "image_ctx", m.imgCtx.NamedParams())
		nn.AddPrefixed(p, "expr_ctx", m.exprCtx.NamedParams())
	}
	if m.Config.LearnTemperature {
		p["log_scale"] = m.logScale
	}
	return p
}

// NamedParams returns the heads' parameters and those of the attached
// encoders ("image.*", "expr.*").
func (m *CrossModel) NamedParams() map[string]*nn.Var {
	p := m.HeadParams()
	if m.Image != nil {
		nn.AddPrefixed(p, "image", m.Image.NamedParams())
	}
	if m.Expr != nil {
		nn.AddPrefixed(p, "expr", m.Expr.NamedParams())
	}
	return p
}

// Buffers returns the running statistics of the attached encoders.
func (m *CrossModel) Buffers() map[string]*tensor.Tensor {
	b := map[string]*tensor.Tensor{}
	if m.Image != nil {
		nn.AddPrefixed(b, "image", m.Image.Buffers())
	}
	if m.Expr != nil {
		nn.AddPrefixed(b, "expr", m.Expr.Buffers())
	}
	return b
}

// Tensors returns every parameter and buffer by name, for saving (the
// temperature always, as "log_scale").
func (m *CrossModel) Tensors() map[string]*tensor.Tensor {
	t := m.Buffers()
	for k, v := range m.NamedParams() {
		t[k] = v.Value
	}
	t["log_scale"] = m.logScale.Value
	return t
}

// Save writes the model with its encoders (weights, running statistics and
// the configurations as metadata) to a safetensors file, atomically.
func (m *CrossModel) Save(path string) error {
	meta := map[string]string{"spotfuse.model": "cross-modal"}
	configs := map[string]any{"config": m.Config}
	if m.Image != nil {
		configs["image_config"] = m.Image.Config
	}
	if m.Expr != nil {
		configs["expr_config"] = m.Expr.Config
	}
	for k, c := range configs {
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		meta[k] = string(b)
	}
	return nn.SaveSafetensors(path, m.Tensors(), meta)
}

// LoadCrossModel reads a model written by Save, with its encoders.
func LoadCrossModel(path string) (*CrossModel, error) {
	ts, meta, err := nn.LoadSafetensors(path)
	if err != nil {
		return nil, err
	}
	if meta["spotfuse.model"] != "cross-modal" {
		return nil, fmt.Errorf("models: %s: not a cross-modal model (spotfuse.model = %q)", path, meta["spotfuse.model"])
	}
	var cfg CrossConfig
	if err := json.Unmarshal([]byte(meta["config"]), &cfg); err != nil {
		return nil, fmt.Errorf("models: %s: bad config metadata: %v", path, err)
	}
	rng := rand.New(rand.NewPCG(0, 0))
	var img *ImageEncoder
	if s, ok := meta["image_config"]; ok {
		var ic ImageEncoderConfig
		if err := json.Unmarshal([]byte(s), &ic); err != nil {
			return nil, fmt.Errorf("models: %s: bad image_config metadata: %v", path, err)
		}
		if err := ic.WithDefaults().Validate(); err != nil {
			return nil, fmt.Errorf("models: %s: %v", path, err)
		}
		img = NewImageEncoder(ic, rng)
	}
	var expr *ExprEncoder
	if s, ok := meta["expr_config"]; ok {
		var ec ExprEncoderConfig
		if err := json.Unmarshal([]byte(s), &ec); err != nil {
			return nil, fmt.Errorf("models: %s: bad expr_config metadata: %v", path, err)
		}
		if expr, err = NewExprEncoder(ec, rng); err != nil {
			return nil, fmt.Errorf("models: %s: %v", path, err)
		}
	}
	m, err := NewCrossModel(cfg, img, expr, rng)
	if err != nil {
		return nil, fmt.Errorf("models: %s: %v", path, err)
	}
	if err := LoadTensors(m.Tensors(), ts); err != nil {
		return nil, fmt.Errorf("models: %s: %v", path, err)
	}
	return m, nil
}

// SpatialAttention lets a spot attend to itself and its array neighbours:
// multi-head attention whose query is the spot's token and whose keys and
// values are all its tokens, each plus a sinusoidal encoding of its array
// offset from the spot; the result is added to the spot's token and
// layer-normalised.
type SpatialAttention struct {
	Dim, Heads int
	q, k, v, o *dense
	norm       *norm1d
}

// NewSpatialAttention builds the block for tokens of width dim.
func NewSpatialAttention(dim, heads int, rng *rand.Rand) *SpatialAttention {
	return &SpatialAttention{
		Dim: dim, Heads: heads,
		q: newDense(dim, dim, true, rng), k: newDense(dim, dim, true, rng),
		v: newDense(dim, dim, true, rng), o: newDense(dim, dim, true, rng),
		norm: newNorm1d("layer", dim),
	}
}

// Forward maps tokens x (B, T, Dim) to (B, Dim); slots not Present are
// ignored.
func (a *SpatialAttention) Forward(x *nn.Var, tok Tokens) *nn.Var {
	b, t, d, h := tok.B, tok.T, a.Dim, a.Heads
	dh := d / h
	self := nn.Reshape(nn.Slice(x, 1, 0, 1), b, d)
	xp := nn.Add(x, nn.Const(tok.PE))
	// Heads: (B, T, D) → (B, T, H, dh) → (B, H, T, dh) → (B·H, T, dh).
	split := func(y *nn.Var, tt int) *nn.Var {
		return nn.Reshape(nn.Permute(nn.Reshape(y, b, tt, h, dh), 0, 2, 1, 3), b*h, tt, dh)
	}
	q := split(a.q.forward(nn.Slice(xp, 1, 0, 1)), 1)
	k := split(a.k.forward(xp), t)
	v := split(a.v.forward(xp), t)
	bias := tensor.New(b*h, 1, t)
	for i := 0; i < b; i++ {
		for s := 0; s < t; s++ {
			if !tok.Present[i*t+s] {
				for j := 0; j < h; j++ {
					bias.Data[(i*h+j)*t+s] = -1e9
				}
			}
		}
	}
	scores := nn.Add(nn.Scale(nn.BatchMatMul(q, k, true), float32(1/math.Sqrt(float64(dh)))), nn.Const(bias))
	att := nn.BatchMatMul(nn.Softmax(scores), v, false) // (B·H, 1, dh)
	out := a.o.forward(nn.Reshape(att, b, d))
	return a.norm.forward(nn.Add(self, out), true)
}

// NamedParams returns the trainable parameters by stable name.
func (a *SpatialAttention) NamedParams() map[string]*nn.Var {
	m := map[string]*nn.Var{}
	a.q.params(m, "q.")
	a.k.params(m, "k.")
	a.v.params(m, "v.")
	a.o.params(m, "out.")
	a.norm.params(m, "norm.")
	return m
}

// SinusoidalPE writes into pe (length dim) the encoding of an array offset
// (dr, dc): the first half of the dimensions encode dr and the second half
// dc, each as interleaved sin/cos pairs at wavelengths 2π·100^(2i/(dim/2))
// (a short base, since offsets are a few array steps). dim must be a
// multiple of 4.
func SinusoidalPE(pe []float32, dr, dc float64) {
	half := len(pe) / 2
	for part, off := range [2]float64{dr, dc} {
		o := pe[part*half : (part+1)*half]
		for i := 0; i+1 < half; i += 2 {
			w := off / math.Pow(100, float64(i)/float64(half))
			o[i] = float32(math.Sin(w))
			o[i+1] = float32(math.Cos(w))
		}
	}
}

// Neighbourhood lists, for n spots, the rows of up to K array neighbours of
// each spot and their offsets (Δrow, Δcol) in array coordinates.
type Neighbourhood struct {
	K      int
	Idx    []int // n×K neighbour rows, -1 = empty slot
	DR, DC []int // n×K offsets
}

// N returns the number of spots.
func (nb *Neighbourhood) N() int {
	if nb.K == 0 {
		return len(nb.Idx)
	}
	return len(nb.Idx) / nb.K
}

// GridNeighbours finds the array neighbours of each spot among the spots of
// its own section (section[i]; nil = one section): the 8 spots at
// |Δrow|, |Δcol| ≤ 1 on a square grid (legacy ST), or the 6 at (0, ±2) and
// (±1, ±1) on a hexagonal grid with doubled column coordinates (Visium),
// detected per section from the parity of row + col. Duplicate positions in
// a section are an error.
func GridNeighbours(row, col, section []int) (*Neighbourhood, error) {
	n := len(row)
	if len(col) != n || (section != nil && len(section) != n) {
		return nil, fmt.Errorf("models: neighbours: %d rows, %d cols and %d sections", n, len(col), len(section))
	}
	sec := func(i int) int {
		if section == nil {
			return 0
		}
		return section[i]
	}
	type pos struct{ s, r, c int }
	at := make(map[pos]int, n)
	parity := map[int]int{} // section → parity of row+col, or -1 when mixed
	for i := 0; i < n; i++ {
		p := pos{sec(i), row[i], col[i]}
		if j, dup := at[p]; dup {
			return nil, fmt.Errorf("models: neighbours: spots %d and %d of section %d share array position (%d, %d)", j, i, p.s, p.r, p.c)
		}
		at[p] = i
		par := ((row[i]+col[i])%2 + 2) % 2
		if q, ok := parity[p.s]; !ok {
			parity[p.s] = par
		} else if q != par {
			parity[p.s] = -1
		}
	}
	square := [][2]int{{-1, -1}, {-1, 0}, {-1, 1}, {0, -1}, {0, 1}, {1, -1}, {1, 0}, {1, 1}}
	hex := [][2]int{{-1, -1}, {-1, 1}, {0, -2}, {0, 2}, {1, -1}, {1, 1}}
	const k = 8
	nb := &Neighbourhood{K: k, Idx: slices.Repeat([]int{-1}, n*k), DR: make([]int, n*k), DC: make([]int, n*k)}
	for i := 0; i < n; i++ {
		offs := square
		if parity[sec(i)] >= 0 {
			offs = hex
		}
		s := 0
		for _, o := range offs {
			if j, ok := at[pos{sec(i), row[i] + o[0], col[i] + o[1]}]; ok {
				nb.Idx[i*k+s], nb.DR[i*k+s], nb.DC[i*k+s] = j, o[0], o[1]
				s++
			}
		}
	}
	return nb, nil
}

// Tokens lays out the batch idx for Forward: it returns the B·(1+K) rows
// whose features fill the slots (empty slots repeat the spot's own row and
// are marked absent) and the Tokens with positional encodings of width dim.
func (nb *Neighbourhood) Tokens(idx []int, dim int) (rows []int, tok Tokens) {
	t := 1 + nb.K
	tok = Tokens{B: len(idx), T: t, Present: make([]bool, len(idx)*t), PE: tensor.New(len(idx), t, dim)}
	rows = make([]int, len(idx)*t)
	for b, i := range idx {
		rows[b*t] = i
		tok.Present[b*t] = true
		SinusoidalPE(tok.PE.Data[b*t*dim:(b*t+1)*dim], 0, 0)
		for s := 0; s < nb.K; s++ {
			slot := b*t + 1 + s
			j := nb.Idx[i*nb.K+s]
			if j < 0 {
				rows[slot] = i
				continue
			}
			rows[slot] = j
			tok.Present[slot] = true
			SinusoidalPE(tok.PE.Data[slot*dim:(slot+1)*dim], float64(nb.DR[i*nb.K+s]), float64(nb.DC[i*nb.K+s]))
		}
	}
	return rows, tok
}

// Subset returns the neighbourhood restricted to the spots keep (in that
// order, renumbered 0..len(keep)-1); neighbours outside keep are dropped.
func (nb *Neighbourhood) Subset(keep []int) *Neighbourhood {
	newIdx := make(map[int]int, len(keep))
	for r, i := range keep {
		newIdx[i] = r
	}
	out := &Neighbourhood{K: nb.K, Idx: slices.Repeat([]int{-1}, len(keep)*nb.K), DR: make([]int, len(keep)*nb.K), DC: make([]int, len(keep)*nb.K)}
	for r, i := range keep {
		s := 0
		for q := 0; q < nb.K; q++ {
			j := nb.Idx[i*nb.K+q]
			if nj, ok := newIdx[j]; ok && j >= 0 {
				out.Idx[r*nb.K+s], out.DR[r*nb.K+s], out.DC[r*nb.K+s] = nj, nb.DR[i*nb.K+q], nb.DC[i*nb.K+q]
				s++
			}
		}
	}
	return out
}

// GatherRows copies rows of the row-major matrix m (width d) into a new
// (len(rows), d) tensor.
func GatherRows(m []float32, d int, rows []int) *tensor.Tensor {
	out := tensor.New(len(rows), d)
	for r, i := range rows {
		copy(out.Data[r*d:(r+1)*d], m[i*d:(i+1)*d])
	}
	return out
}
