package study

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Config is one study, read from a JSON file by Load. Every field is
// optional: an absent (or zero) field takes the default named in its
// comment, which is what Default returns. A list given as [] is kept empty
// (for example "loso": [] turns leave-one-section-out off). Unknown fields
// are an error.
type Config struct {
	// Name labels the study in the results and the report.
	// Default: the config file's base name without ".json" ("study" for Default()).
	Name string `json:"name"`
	// DataDir is the HER2ST directory (counts/, spots/, labels/, images/,
	// scalefactors.tsv). A relative path is taken relative to the working
	// directory. Default "../shared/data/her2st".
	DataDir string `json:"data_dir"`
	// Out is the output directory (results.csv, summary.csv, report.html,
	// pretraining checkpoints). Default "out/<name>".
	Out string `json:"out"`
	// Targets are the sections with labels and an H&E image evaluated by
	// stratified k-fold within the section, for every modality. Default ["A1"].
	Targets []string `json:"targets"`
	// LOSO are the labelled sections of the leave-one-section-out evaluation
	// (expression only: train on all but one, test on it).
	// Default ["B1","C1","D1","E1","F1"].
	LOSO []string `json:"loso"`
	// PretrainImages are the sections whose H&E patches pretrain the image
	// encoder (labels are never used). Default ["A1","A2","B4","C2","C3","C4","C5","C6"].
	PretrainImages []string `json:"pretrain_images"`
	// PretrainExpr are the sections whose spots pretrain the expression
	// encoder and define the highly variable genes. Default: all 36 sections
	// A1–A6, B1–B6, C1–C6, D1–D6, E1–E3, F1–F3, G1–G3, H1–H3.
	PretrainExpr []string `json:"pretrain_expr"`
	// ExcludeLabels are region labels left out of training and scoring.
	// Default ["undetermined"].
	ExcludeLabels []string `json:"exclude_labels"`
	// Patch sets how spot patches are cut from the H&E image.
	Patch PatchConfig `json:"patch"`
	// HVG is the number of highly variable genes (chosen on the PretrainExpr
	// pool after matching genes across all sections used). Default 2000.
	HVG int `json:"hvg"`
	// PCA is the number of principal components of the expression baseline.
	// Default 50.
	PCA int `json:"pca"`
	// Pretrain sets the self-supervised pretraining.
	Pretrain PretrainConfig `json:"pretrain"`
	// Baselines to run, any of "majority", "pca" (PCA + head on expression),
	// "stats" (colour/texture statistics + head on the image), "random"
	// (randomly initialised encoders, no training).
	// Default ["majority","pca","stats","random"].
	Baselines []string `json:"baselines"`
	// Fusions of image and expression embeddings, any of "concat", "gated".
	// Default ["concat","gated"].
	Fusions []string `json:"fusions"`
	// Heads fitted on frozen features, any of "logreg", "mlp" ("gated"
	// fusion always trains its own head). Default ["logreg","mlp"].
	Heads []string `json:"heads"`
	// Context adds, for the fused settings, a variant with each spot's
	// embedding concatenated with the mean of its array neighbours'.
	// Default false.
	Context bool `json:"context"`
	// TaskAblation adds image encoders pretrained on each pretext task alone
	// (besides all tasks combined). Default false.
	TaskAblation bool `json:"task_ablation"`
	// Fractions of the training fold that are labelled, each in (0, 1]; at
	// least one spot per class is always kept. Default [0.01,0.05,0.1,0.2,0.5,1].
	Fractions []float64 `json:"fractions"`
	// LOSOFractions are the label fractions of the leave-one-section-out
	// evaluation. Default [1].
	LOSOFractions []float64 `json:"loso_fractions"`
	// LOSORaw turns off the per-section z-scoring of features in the
	// leave-one-section-out evaluation (by default every section's features
	// are standardised over all of its spots, an unsupervised alignment
	// against batch effects between patients). Default false.
	LOSORaw bool `json:"loso_raw"`
	// Folds of the stratified k-fold within a target section. Default 5.
	Folds int `json:"folds"`
	// Seeds is the number of evaluation seeds (0..Seeds-1): each draws its
	// own folds, label subsets and head initialisation. Default 5.
	Seeds int `json:"seeds"`
	// MapFraction is the label fraction whose out-of-fold predictions are
	// drawn on the tissue in the report. Default 0.1 (or the nearest of
	// Fractions).
	MapFraction float64 `json:"map_fraction"`
	// Workers is the number of settings evaluated in parallel. Default 1.
	Workers int `json:"workers"`
}

// PatchConfig sets the spot patches.
type PatchConfig struct {
	// Size is the side of a patch in pixels after resizing. Default 32.
	Size int `json:"size"`
	// Context is the side of the crop as a multiple of the spot diameter
	// (1 = the spot itself, 2 = the spot and its surroundings). Default 1.
	Context float64 `json:"context"`
}

// PretrainConfig sets the self-supervised pretraining.
type PretrainConfig struct {
	// Seeds of the pretraining runs; with several, every pretrained setting
	// is evaluated once per pretraining seed. Default [1].
	Seeds []uint64 `json:"seeds"`
	// Image pretrains the image encoder.
	Image ImagePretrain `json:"image"`
	// Expr pretrains the expression encoder.
	Expr ExprPretrain `json:"expr"`
	// Cross aligns the two pretrained encoders (pretrain.TrainCross).
	Cross CrossPretrain `json:"cross"`
}

// CrossPretrain sets the cross-modal alignment: CLIP-style projection
// heads trained on the spots of the PretrainImages sections (frozen
// encoders, no spatial context) map the pretrained image and expression
// embeddings to a shared space. Its "cross" feature sets (image, expression
// and fused) join the grid. On by default; it needs both pretrained
// encoders and is skipped without them.
type CrossPretrain struct {
	// Off skips the alignment and its settings.
	Off bool `json:"off"`
	// Steps of optimisation. Default 100 (the held-out loss on HER2ST was
	// lowest after 50–150 steps, see pretrain.DefaultCrossConfig).
	Steps int `json:"steps"`
	// Batch size (spots per contrastive batch). Default 256.
	Batch int `json:"batch"`
	// Shared is the width of the shared space. Default 64.
	Shared int `json:"shared"`
}

// ImagePretrain sets image pretraining.
type ImagePretrain struct {
	// Steps of optimisation; 0 or absent = 300. Set "off": true to skip.
	Steps int `json:"steps"`
	// Off skips image pretraining (only baselines and random encoders).
	Off bool `json:"off"`
	// Batch size. Default 64.
	Batch int `json:"batch"`
	// LR is the peak AdamW learning rate. Default 1e-3.
	LR float64 `json:"lr"`
	// WeightDecay of AdamW. Default 1e-4.
	WeightDecay float64 `json:"weight_decay"`
	// Width of the first conv block and Depth (number of blocks) of the
	// encoder; 0 = the models package default.
	Width int `json:"width"`
	Depth int `json:"depth"`
	// Pool is how a spot's embedding is read off the encoder: "stages"
	// (average-pool every conv stage and concatenate; better linear probes
	// on HER2ST A1) or "avg" (the last stage only). Default "stages".
	Pool string `json:"pool"`
	// Tasks maps pretext task ("inpaint", "colorize", "contrastive") to its
	// loss weight; 0 or absent turns a task off.
	// Default {"inpaint":1,"colorize":1,"contrastive":1}.
	Tasks map[string]float64 `json:"tasks"`
}

// ExprPretrain sets expression pretraining.
type ExprPretrain struct {
	// Steps of optimisation. Default 500.
	Steps int `json:"steps"`
	// Off skips expression pretraining.
	Off bool `json:"off"`
	// Batch size. Default 256.
	Batch int `json:"batch"`
	// LR is the peak AdamW learning rate. Default 1e-3.
	LR float64 `json:"lr"`
	// WeightDecay of AdamW. Default 1e-4.
	WeightDecay float64 `json:"weight_decay"`
	// Task is "masked" (masked-gene reconstruction) or "nbvae"
	// (negative-binomial VAE). Default "masked".
	Task string `json:"task"`
	// Latent and Hidden widths. Defaults 32 and 256.
	Latent int `json:"latent"`
	Hidden int `json:"hidden"`
	// MaskFrac is the fraction of genes masked per spot ("masked"). Default 0.25.
	MaskFrac float64 `json:"mask_frac"`
}

// Known names of the enumerated options.
var (
	knownBaselines = []string{"majority", "pca", "stats", "random"}
	knownFusions   = []string{"concat", "gated"}
	knownHeads     = []string{"logreg", "mlp"}
	knownTasks     = []string{"inpaint", "colorize", "contrastive"}
	knownExprTasks = []string{"masked", "nbvae"}
)

// HER2STSections lists the 36 HER2ST sections.
func HER2STSections() []string {
	var s []string
	for _, p := range []struct {
		letter string
		n      int
	}{{"A", 6}, {"B", 6}, {"C", 6}, {"D", 6}, {"E", 3}, {"F", 3}, {"G", 3}, {"H", 3}} {
		for i := 1; i <= p.n; i++ {
			s = append(s, fmt.Sprintf("%s%d", p.letter, i))
		}
	}
	return s
}

// Default returns the configuration with every default filled in.
func Default() *Config {
	c := &Config{}
	c.fillDefaults("study")
	return c
}

// fillDefaults sets every absent field to its documented default.
func (c *Config) fillDefaults(name string) {
	if c.Name == "" {
		c.Name = name
	}
	if c.DataDir == "" {
		c.DataDir = filepath.Join("..", "shared", "data", "her2st")
	}
	if c.Out == "" {
		c.Out = filepath.Join("out", c.Name)
	}
	if c.Targets == nil {
		c.Targets = []string{"A1"}
	}
	if c.LOSO == nil {
		c.LOSO = []string{"B1", "C1", "D1", "E1", "F1"}
	}
	if c.PretrainImages == nil {
		c.PretrainImages = []string{"A1", "A2", "B4", "C2", "C3", "C4", "C5", "C6"}
	}
	if c.PretrainExpr == nil {
		c.PretrainExpr = HER2STSections()
	}
	if c.ExcludeLabels == nil {
		c.ExcludeLabels = []string{"undetermined"}
	}
	if c.Patch.Size == 0 {
		c.Patch.Size = 32
	}
	if c.Patch.Context == 0 {
		c.Patch.Context = 1
	}
	if c.HVG == 0 {
		c.HVG = 2000
	}
	if c.PCA == 0 {
		c.PCA = 50
	}
	p := &c.Pretrain
	if p.Seeds == nil {
		p.Seeds = []uint64{1}
	}
	if p.Image.Steps == 0 {
		p.Image.Steps = 300
	}
	if p.Image.Batch == 0 {
		p.Image.Batch = 64
	}
	if p.Image.LR == 0 {
		p.Image.LR = 1e-3
	}
	if p.Image.WeightDecay == 0 {
		p.Image.WeightDecay = 1e-4
	}
	if p.Image.Tasks == nil {
		p.Image.Tasks = map[string]float64{"inpaint": 1, "colorize": 1, "contrastive": 1}
	}
	if p.Expr.Steps == 0 {
		p.Expr.Steps = 500
	}
	if p.Expr.Batch == 0 {
		p.Expr.Batch = 256
	}
	if p.Expr.LR == 0 {
		p.Expr.LR = 1e-3
	}
	if p.Expr.WeightDecay == 0 {
		p.Expr.WeightDecay = 1e-4
	}
	if p.Expr.Task == "" {
		p.Expr.Task = "masked"
	}
	if p.Expr.Latent == 0 {
		p.Expr.Latent = 32
	}
	if p.Expr.Hidden == 0 {
		p.Expr.Hidden = 256
	}
	if p.Expr.MaskFrac == 0 {
		p.Expr.MaskFrac = 0.25
	}
	if p.Cross.Steps == 0 {
		p.Cross.Steps = 100
	}
	if p.Cross.Batch == 0 {
		p.Cross.Batch = 256
	}
	if p.Cross.Shared == 0 {
		p.Cross.Shared = 64
	}
	if c.Baselines == nil {
		c.Baselines = slices.Clone(knownBaselines)
	}
	if c.Fusions == nil {
		c.Fusions = slices.Clone(knownFusions)
	}
	if c.Heads == nil {
		c.Heads = slices.Clone(knownHeads)
	}
	if c.Fractions == nil {
		c.Fractions = []float64{0.01, 0.05, 0.1, 0.2, 0.5, 1}
	}
	if c.LOSOFractions == nil {
		c.LOSOFractions = []float64{1}
	}
	if c.Folds == 0 {
		c.Folds = 5
	}
	if c.Seeds == 0 {
		c.Seeds = 5
	}
	if c.MapFraction == 0 {
		c.MapFraction = 0.1
	}
	if c.Workers == 0 {
		c.Workers = 1
	}
}

// Load reads a study configuration from a JSON file, fills the defaults and
// validates it. Errors name the file and the offending field.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("study: %w", err)
	}
	defer f.Close()
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	c, err := Parse(f, name)
	if err != nil {
		return nil, fmt.Errorf("study: config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a configuration from r (see Load); name is the default
// study name.
func Parse(r io.Reader, name string) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	c := &Config{}
	if err := dec.Decode(c); err != nil {
		return nil, describeJSONError(data, err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON object")
	}
	c.fillDefaults(name)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// describeJSONError turns a decoding error into one naming the field (and
// the line for syntax errors).
func describeJSONError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line := 1 + bytes.Count(data[:min(int(syn.Offset), len(data))], []byte("\n"))
		return fmt.Errorf("line %d: %v", line, syn)
	case errors.As(err, &typ):
		return fmt.Errorf("field %q: got JSON %s, want %s", typ.Field, typ.Value, typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.EOF):
		return errors.New("empty file (want a JSON object)")
	}
	return err
}

// Validate checks ranges and names; errors name the JSON field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Targets) == 0 && len(c.LOSO) == 0 {
		bad(`"targets" and "loso" are both empty: nothing to evaluate`)
	}
	if len(c.LOSO) == 1 {
		bad(`"loso" needs at least two sections, got %v`, c.LOSO)
	}
	for _, f := range []struct {
		field string
		list  []string
	}{{"targets", c.Targets}, {"loso", c.LOSO}, {"pretrain_images", c.PretrainImages}, {"pretrain_expr", c.PretrainExpr}} {
		seen := map[string]bool{}
		for _, s := range f.list {
			if s == "" || strings.ContainsAny(s, `/\`) {
				bad("%q: bad section name %q", f.field, s)
			}
			if seen[s] {
				bad("%q: section %s listed twice", f.field, s)
			}
			seen[s] = true
		}
	}
	if c.Patch.Size < 8 || c.Patch.Size > 512 {
		bad(`"patch.size" = %d, want 8..512`, c.Patch.Size)
	}
	if c.Patch.Context < 0.25 || c.Patch.Context > 8 {
		bad(`"patch.context" = %v, want 0.25..8`, c.Patch.Context)
	}
	if c.HVG < 2 {
		bad(`"hvg" = %d, want ≥ 2`, c.HVG)
	}
	if c.PCA < 1 {
		bad(`"pca" = %d, want ≥ 1`, c.PCA)
	}
	if len(c.Pretrain.Seeds) == 0 {
		bad(`"pretrain.seeds" is empty`)
	}
	im, ex := c.Pretrain.Image, c.Pretrain.Expr
	if im.Steps < 0 || im.Batch < 2 || !(im.LR > 0) || im.WeightDecay < 0 {
		bad(`"pretrain.image": steps %d, batch %d, lr %v, weight_decay %v: want steps ≥ 0, batch ≥ 2, lr > 0, weight_decay ≥ 0`,
			im.Steps, im.Batch, im.LR, im.WeightDecay)
	}
	if cr := c.Pretrain.Cross; cr.Steps < 1 || cr.Batch < 2 || cr.Shared < 1 {
		bad(`"pretrain.cross": steps %d, batch %d, shared %d: want steps ≥ 1, batch ≥ 2, shared ≥ 1`, cr.Steps, cr.Batch, cr.Shared)
	}
	if im.Width < 0 || im.Depth < 0 {
		bad(`"pretrain.image": width %d, depth %d must be ≥ 0`, im.Width, im.Depth)
	}
	on := 0
	for task, w := range im.Tasks {
		if !slices.Contains(knownTasks, task) {
			bad(`"pretrain.image.tasks": unknown task %q (want %s)`, task, strings.Join(knownTasks, ", "))
		}
		if w < 0 {
			bad(`"pretrain.image.tasks": weight of %s is %v, want ≥ 0`, task, w)
		}
		if w > 0 {
			on++
		}
	}
	if !im.Off && on == 0 {
		bad(`"pretrain.image.tasks": no task has a positive weight (set "off": true to skip image pretraining)`)
	}
	if ex.Steps < 0 || ex.Batch < 2 || !(ex.LR > 0) || ex.WeightDecay < 0 || ex.Latent < 1 || ex.Hidden < 1 {
		bad(`"pretrain.expr": steps %d, batch %d, lr %v, weight_decay %v, latent %d, hidden %d out of range`,
			ex.Steps, ex.Batch, ex.LR, ex.WeightDecay, ex.Latent, ex.Hidden)
	}
	if !slices.Contains(knownExprTasks, ex.Task) {
		bad(`"pretrain.expr.task" = %q, want one of %s`, ex.Task, strings.Join(knownExprTasks, ", "))
	}
	if !(ex.MaskFrac > 0 && ex.MaskFrac < 1) {
		bad(`"pretrain.expr.mask_frac" = %v, want in (0, 1)`, ex.MaskFrac)
	}
	checkNames := func(field string, got, known []string) {
		for _, g := range got {
			if !slices.Contains(known, g) {
				bad("%q: unknown %q (want %s)", field, g, strings.Join(known, ", "))
			}
		}
	}
	checkNames("baselines", c.Baselines, knownBaselines)
	checkNames("fusions", c.Fusions, knownFusions)
	checkNames("heads", c.Heads, knownHeads)
	if len(c.Heads) == 0 {
		bad(`"heads" is empty`)
	}
	if len(c.Fractions) == 0 {
		bad(`"fractions" is empty`)
	}
	for _, f := range c.Fractions {
		if !(f > 0 && f <= 1) {
			bad(`"fractions": %v is not in (0, 1]`, f)
		}
	}
	for _, f := range c.LOSOFractions {
		if !(f > 0 && f <= 1) {
			bad(`"loso_fractions": %v is not in (0, 1]`, f)
		}
	}
	if c.Folds < 2 || c.Folds > 50 {
		bad(`"folds" = %d, want 2..50`, c.Folds)
	}
	if c.Seeds < 1 || c.Seeds > 1000 {
		bad(`"seeds" = %d, want 1..1000`, c.Seeds)
	}
	if !(c.MapFraction > 0 && c.MapFraction <= 1) {
		bad(`"map_fraction" = %v, want in (0, 1]`, c.MapFraction)
	}
	if c.Workers < 1 || c.Workers > 64 {
		bad(`"workers" = %d, want 1..64`, c.Workers)
	}
	return errors.Join(errs...)
}
