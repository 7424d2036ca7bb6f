package classify

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"

	"github.com/spotfuse/spotfuse/metrics"
	"github.com/spotfuse/spotfuse/patch"
	"github.com/spotfuse/spotfuse/progress"
	"github.com/spotfuse/spotfuse/section"
	"github.com/spotfuse/spotfuse/tensor"
)

// ModNone marks a spot no head could label (no usable input).
const ModNone = "none"

// Features are a section's inputs to the bundle's heads.
type Features struct {
	N int
	// Expr is N × ExprD expression features, nil when the section has no
	// usable expression (no counts, or too many genes missing).
	Expr  []float32
	ExprD int
	// ExprErr says why Expr is nil.
	ExprErr error
	// Image is N × ImageD image embeddings, nil without an image; rows of
	// spots without a patch (HasPatch false) are zero.
	Image    []float32
	ImageD   int
	HasPatch []bool
	// Missing lists the bundle genes the section lacks (filled with the
	// training mean).
	Missing []string
}

// HasCounts reports whether sec has any expression to read.
func HasCounts(sec *section.Section) bool {
	return sec.Counts != nil && sec.Counts.Cols > 0 && len(sec.Genes) > 0
}

// Expression returns the n × G log-normalised expression of sec on the
// bundle's genes: log1p(count / library × TargetSum), the library being the
// spot's total over all of the section's genes. Genes are matched by exact
// symbol (the first column when a symbol repeats); a gene the section lacks
// is filled with the training mean GeneMean (0 after standardisation) and
// listed in missing.
func (b *Bundle) Expression(sec *section.Section) (x []float32, missing []string, err error) {
	if !HasCounts(sec) {
		return nil, nil, fmt.Errorf("classify: section %s (%s) has no counts", sec.Name, sec.Source)
	}
	if err := sec.Validate(); err != nil {
		return nil, nil, err
	}
	nm := b.Meta.Normalization
	genes := b.Meta.Genes
	g := len(genes)
	pos := make(map[string]int, len(sec.Genes))
	for j, name := range sec.Genes {
		if _, dup := pos[name]; !dup {
			pos[name] = j
		}
	}
	col := make(map[int32]int, g) // section column → bundle gene
	var absent []int
	for k, name := range genes {
		if j, ok := pos[name]; ok {
			col[int32(j)] = k
		} else {
			absent = append(absent, k)
			missing = append(missing, name)
		}
	}
	n := sec.NumSpots()
	x = make([]float32, n*g)
	lib := sec.Counts.RowSums()
	for i := range n {
		row := x[i*g : (i+1)*g]
		idx, val := sec.Counts.Row(i)
		for t, c := range idx {
			if k, ok := col[c]; ok && lib[i] > 0 {
				row[k] = float32(math.Log1p(float64(val[t]) / lib[i] * nm.TargetSum))
			}
		}
		for _, k := range absent {
			row[k] = nm.GeneMean[k]
		}
	}
	return x, missing, nil
}

// ExprFeatures maps n × G log-normalised expression to the expression
// features (encoder embedding or PCA scores).
func (b *Bundle) ExprFeatures(x []float32, n int) ([]float32, int) {
	if b.Meta.Expression.Features == FeatPCA {
		g, k := len(b.PCAMean), b.Meta.Expression.Components
		c := make([]float32, len(x))
		for i := range n {
			for j := range g {
				c[i*g+j] = x[i*g+j] - b.PCAMean[j]
			}
		}
		out := make([]float32, n*k)
		tensor.Gemm(false, true, n, k, g, 1, c, g, b.PCAComponents, g, 0, out, k)
		return out, k
	}
	return b.Expr.Embed(x, n, nil)
}

// ImageFeatures cuts the patches of sec as the bundle prescribes (spot
// diameter × Context, resized to PatchSize) and embeds them. Spots without a
// patch get a zero row and HasPatch false.
func (b *Bundle) ImageFeatures(ctx context.Context, sec *section.Section, prog progress.Reporter) (emb []float32, d int, has []bool, err error) {
	if b.Image == nil || sec.Image == nil {
		return nil, 0, nil, fmt.Errorf("classify: no image (bundle image model: %v, section %s image: %v)", b.Image != nil, sec.Name, sec.Image != nil)
	}
	im := b.Meta.Image
	set, err := patch.Extract(ctx, sec, patch.Options{Size: im.PatchSize, Context: im.Context, Progress: prog})
	if err != nil {
		return nil, 0, nil, err
	}
	var keep []int
	var pix [][]uint8
	has = make([]bool, len(set.Pix))
	for i, p := range set.Pix {
		if p != nil {
			keep = append(keep, i)
			pix = append(pix, p)
			has[i] = true
		}
	}
	d = b.Image.Dim()
	emb = make([]float32, len(set.Pix)*d)
	if len(pix) > 0 {
		e, _ := b.Image.Embed(pix, im.PatchSize)
		for r, i := range keep {
			copy(emb[i*d:(i+1)*d], e[r*d:(r+1)*d])
		}
	}
	return emb, d, has, nil
}

// Features computes every input the bundle can use on sec. Expression is
// left out (ExprErr set) when the section has no counts or lacks more than
// MaxMissing of the genes; the image part is left out when either side has
// no image. An image that cannot be read is an error.
func (b *Bundle) Features(ctx context.Context, sec *section.Section, prog progress.Reporter) (*Features, error) {
	f := &Features{N: sec.NumSpots()}
	if HasCounts(sec) {
		x, missing, err := b.Expression(sec)
		if err != nil {
			return nil, err
		}
		f.Missing = missing
		g := len(b.Meta.Genes)
		frac := float64(len(missing)) / float64(g)
		if len(missing) > 0 {
			slog.Warn("classify: bundle genes missing from the section; filled with the training mean",
				"section", sec.Name, "missing", len(missing), "of", g, "first", missing[:min(5, len(missing))])
		}
		if frac > b.Meta.Normalization.MaxMissing {
			f.ExprErr = fmt.Errorf("section %s lacks %d of the bundle's %d genes (%.1f %% > max_missing %.1f %%; first: %v)",
				sec.Name, len(missing), g, 100*frac, 100*b.Meta.Normalization.MaxMissing, missing[:min(5, len(missing))])
		} else {
			f.Expr, f.ExprD = b.ExprFeatures(x, f.N)
		}
	} else {
		f.ExprErr = fmt.Errorf("section %s has no counts", sec.Name)
	}
	if b.Image != nil && sec.Image != nil {
		emb, d, has, err := b.ImageFeatures(ctx, sec, prog)
		if err != nil {
			return nil, err
		}
		f.Image, f.ImageD, f.HasPatch = emb, d, has
	}
	if b.Meta.SectionCenter {
		if f.Expr != nil {
			centerRows(f.Expr, f.ExprD, nil)
		}
		if f.Image != nil {
			centerRows(f.Image, f.ImageD, f.HasPatch)
		}
	}
	return f, nil
}

// centerRows subtracts from the rows of the n × d matrix x (those with
// keep[i], or all when keep is nil) their column means.
func centerRows(x []float32, d int, keep []bool) {
	n := len(x) / d
	mean := make([]float64, d)
	m := 0
	for i := range n {
		if keep == nil || keep[i] {
			for j := range d {
				mean[j] += float64(x[i*d+j])
			}
			m++
		}
	}
	if m == 0 {
		return
	}
	for i := range n {
		if keep == nil || keep[i] {
			for j := range d {
				x[i*d+j] -= float32(mean[j] / float64(m))
			}
		}
	}
}

// Input returns the n × d input of the head of modality mod for the spots
// idx, or false when the features lack it.
func (f *Features) Input(mod string, idx []int) ([]float32, int, bool) {
	switch mod {
	case ModExpr:
		if f.Expr == nil {
			return nil, 0, false
		}
		return tensor.GatherRows(f.Expr, f.ExprD, idx), f.ExprD, true
	case ModImage:
		if f.Image == nil {
			return nil, 0, false
		}
		return tensor.GatherRows(f.Image, f.ImageD, idx), f.ImageD, true
	case ModFused:
		if f.Image == nil || f.Expr == nil {
			return nil, 0, false
		}
		d := f.ImageD + f.ExprD
		out := make([]float32, 0, len(idx)*d)
		for _, i := range idx {
			out = append(out, f.Image[i*f.ImageD:(i+1)*f.ImageD]...)
			out = append(out, f.Expr[i*f.ExprD:(i+1)*f.ExprD]...)
		}
		return out, d, true
	}
	return nil, 0, false
}

// usable reports whether spot i has the inputs of modality mod.
func (f *Features) usable(mod string, i int) bool {
	switch mod {
	case ModExpr:
		return f.Expr != nil
	case ModImage:
		return f.Image != nil && f.HasPatch[i]
	case ModFused:
		return f.Expr != nil && f.Image != nil && f.HasPatch[i]
	}
	return false
}

// HeadOptions configures the heads FitHeads trains.
type HeadOptions struct {
	// C is the inverse L2 strength of the logistic regressions (default 1);
	// classes are always balanced (scikit-learn class_weight="balanced").
	C float64
	// Modalities to train (default: every one the features allow).
	Modalities []string
}

// FitHeads sets the bundle's gene statistics from sec (all of its spots),
// computes its features and fits one logistic-regression head per modality
// on the spots whose label is one of Meta.Classes (other labels and
// unlabelled spots are left out). The heads are quantised to float32 (see
// LogReg.Quantize) and registered in Meta.Heads.
func (b *Bundle) FitHeads(ctx context.Context, sec *section.Section, opt HeadOptions, prog progress.Reporter) (*Features, error) {
	if sec.Labels == nil {
		return nil, fmt.Errorf("classify: section %s (%s) has no labels to train on", sec.Name, sec.Source)
	}
	if err := b.fitGeneStats(sec); err != nil {
		return nil, err
	}
	f, err := b.Features(ctx, sec, prog)
	if err != nil {
		return nil, err
	}
	if f.Expr == nil {
		return nil, fmt.Errorf("classify: training section: %w", f.ExprErr)
	}
	mods := opt.Modalities
	if mods == nil {
		mods = []string{ModExpr}
		if f.Image != nil {
			mods = append(mods, ModImage, ModFused)
		}
	}
	b.Heads = map[string]*LogReg{}
	b.Meta.Heads = map[string]HeadSpec{}
	k := len(b.Meta.Classes)
	for _, mod := range mods {
		var idx, y []int
		for i, l := range sec.Labels {
			c := slices.Index(b.Meta.Classes, l)
			if c >= 0 && f.usable(mod, i) {
				idx = append(idx, i)
				y = append(y, c)
			}
		}
		x, d, ok := f.Input(mod, idx)
		if !ok {
			return nil, fmt.Errorf("classify: section %s has no %s features to train the %s head", sec.Name, mod, mod)
		}
		if len(idx) < 2 {
			return nil, fmt.Errorf("classify: section %s has %d labelled spots usable for the %s head", sec.Name, len(idx), mod)
		}
		h, err := FitLogReg(x, len(idx), d, y, k, LogRegOptions{C: opt.C, Balanced: true})
		if err != nil {
			return nil, fmt.Errorf("classify: %s head: %w", mod, err)
		}
		h.Quantize()
		b.Heads[mod] = h
		b.Meta.Heads[mod] = HeadSpec{Kind: "logreg", Dim: d}
		slog.Info("classify: head fitted", "modality", mod, "spots", len(idx), "features", d, "iterations", h.Iter)
	}
	b.Meta.TrainedOn = []string{sec.Name}
	return f, nil
}

// fitGeneStats sets Normalization.GeneMean and GeneSD from sec.
func (b *Bundle) fitGeneStats(sec *section.Section) error {
	g := len(b.Meta.Genes)
	nm := &b.Meta.Normalization
	nm.GeneMean, nm.GeneSD = make([]float32, g), make([]float32, g)
	x, missing, err := b.Expression(sec)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		slog.Warn("classify: training section lacks bundle genes (their statistics are 0)", "section", sec.Name, "missing", len(missing))
	}
	mean, variance := tensor.ColumnMoments(x, sec.NumSpots(), g)
	for j := range g {
		nm.GeneMean[j] = float32(mean[j])
		nm.GeneSD[j] = float32(math.Sqrt(variance[j]))
	}
	return nil
}

// PredictOptions configures Predict.
type PredictOptions struct {
	// Modality forces one head (ModFused, ModExpr, ModImage); "" or "auto"
	// picks per spot the first available of fused, expr, image.
	Modality string
	Progress progress.Reporter
}

// Prediction holds the labels of every spot of a section.
type Prediction struct {
	Section *section.Section
	Classes []string
	// Label[i] is the predicted class index of spot i, −1 when no head
	// could label it (Modality[i] = ModNone).
	Label []int
	// Prob is n × len(Classes) class probabilities (zero rows for −1).
	Prob []float64
	// Modality[i] is the head that labelled spot i.
	Modality []string
	// Missing lists the bundle genes the section lacks; Genes is their
	// number of genes.
	Missing []string
	Genes   int
}

// Predict labels every spot of sec. Genes are matched by name; missing
// genes are filled with the training mean (and listed), and expression is
// refused when more than MaxMissing of them are missing: then an error,
// unless opt.Modality is ModImage. A section without counts gets an
// image-only prediction and one without an image an expression-only
// prediction; each spot records the head used.
func (b *Bundle) Predict(ctx context.Context, sec *section.Section, opt PredictOptions) (*Prediction, error) {
	mode := opt.Modality
	if mode == "auto" {
		mode = ""
	}
	if mode != "" && !slices.Contains(modalities, mode) {
		return nil, fmt.Errorf("classify: modality %q: want auto, %s, %s or %s", mode, ModFused, ModExpr, ModImage)
	}
	if mode != "" && b.Heads[mode] == nil {
		return nil, fmt.Errorf("classify: the bundle has no %s head (it has %v)", mode, sortedKeys(b.Heads))
	}
	bb := *b
	if mode == ModImage {
		// Expression is not read at all.
		bb.Meta.Normalization.MaxMissing = 1
	}
	f, err := bb.Features(ctx, sec, opt.Progress)
	if err != nil {
		return nil, err
	}
	if f.Expr == nil && mode != ModImage && HasCounts(sec) {
		return nil, fmt.Errorf("classify: %w; predict from the image alone with modality %q", f.ExprErr, ModImage)
	}
	if mode != "" && mode != ModExpr && f.Image == nil {
		return nil, fmt.Errorf("classify: modality %s needs an image but section %s has none", mode, sec.Name)
	}
	if mode == "" && f.Expr == nil && f.Image == nil {
		return nil, fmt.Errorf("classify: section %s has neither usable counts nor an image", sec.Name)
	}
	n, k := f.N, len(b.Meta.Classes)
	p := &Prediction{Section: sec, Classes: b.Meta.Classes, Label: make([]int, n), Prob: make([]float64, n*k),
		Modality: make([]string, n), Missing: f.Missing, Genes: len(b.Meta.Genes)}
	order := modalities
	if mode != "" {
		order = []string{mode}
	}
	groups := map[string][]int{}
	for i := range n {
		p.Label[i], p.Modality[i] = -1, ModNone
		for _, mod := range order {
			if b.Heads[mod] != nil && f.usable(mod, i) {
				p.Modality[i] = mod
				groups[mod] = append(groups[mod], i)
				break
			}
		}
	}
	if len(groups) == 0 {
		why := "no usable input"
		if f.ExprErr != nil {
			why = f.ExprErr.Error()
		}
		return nil, fmt.Errorf("classify: no spot of section %s can be labelled with modality %q (%s)", sec.Name, opt.Modality, why)
	}
	for _, mod := range modalities {
		idx := groups[mod]
		if len(idx) == 0 {
			continue
		}
		x, _, _ := f.Input(mod, idx)
		prob, err := b.Heads[mod].PredictProba(x, len(idx))
		if err != nil {
			return nil, err
		}
		for r, i := range idx {
			copy(p.Prob[i*k:(i+1)*k], prob[r*k:(r+1)*k])
			p.Label[i] = argmax(prob[r*k : (r+1)*k])
		}
	}
	if none := n - len(groups[ModFused]) - len(groups[ModExpr]) - len(groups[ModImage]); none > 0 {
		slog.Warn("classify: spots left unlabelled (no usable input)", "section", sec.Name, "spots", none)
	}
	return p, nil
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// LabelName returns the predicted label of spot i ("" when unlabelled).
func (p *Prediction) LabelName(i int) string {
	if p.Label[i] < 0 {
		return ""
	}
	return p.Classes[p.Label[i]]
}

// WriteCSV writes one row per spot: spot_id, x, y (full-resolution
// pixels), array row and col, label, probability (of the label), one
// prob_<class> column per class, the modality used and the number of
// missing genes.
func (p *Prediction) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := []string{"spot_id", "x", "y", "array_row", "array_col", "label", "probability"}
	for _, c := range p.Classes {
		head = append(head, "prob_"+c)
	}
	head = append(head, "modality", "missing_genes")
	if err := cw.Write(head); err != nil {
		return err
	}
	k := len(p.Classes)
	ff := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
	missing := strconv.Itoa(len(p.Missing))
	for i, sp := range p.Section.Spots {
		rec := []string{sp.ID, ff(sp.X), ff(sp.Y), strconv.Itoa(sp.Row), strconv.Itoa(sp.Col), p.LabelName(i), ""}
		if p.Label[i] >= 0 {
			rec[6] = ff(p.Prob[i*k+p.Label[i]])
		}
		for c := range k {
			if p.Label[i] >= 0 {
				rec = append(rec, ff(p.Prob[i*k+c]))
			} else {
				rec = append(rec, "")
			}
		}
		rec = append(rec, p.Modality[i], missing)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// CVScore is the stratified k-fold cross-validation of one head on the
// labelled spots of its training section: out-of-fold predictions of all
// folds, scored together.
type CVScore struct {
	Modality                    string
	Spots, Folds                int
	Accuracy, Balanced, MacroF1 float64
}

// CrossValidate refits each of the bundle's heads (same options) k times on
// k−1 folds of the labelled spots of sec and scores the held-out fold. f are
// sec's features (from FitHeads); the encoders and gene statistics are not
// refitted: they never see labels.
func (b *Bundle) CrossValidate(ctx context.Context, sec *section.Section, f *Features, k int, seed uint64, opt HeadOptions) ([]CVScore, error) {
	var out []CVScore
	nk := len(b.Meta.Classes)
	for _, mod := range modalities {
		if b.Heads[mod] == nil {
			continue
		}
		var idx, y []int
		for i, l := range sec.Labels {
			if c := slices.Index(b.Meta.Classes, l); c >= 0 && f.usable(mod, i) {
				idx = append(idx, i)
				y = append(y, c)
			}
		}
		folds, err := StratifiedKFold(y, k, seed)
		if err != nil {
			return nil, fmt.Errorf("classify: %s head: %w", mod, err)
		}
		pred := make([]int, len(y))
		for _, fo := range folds {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			tr := make([]int, len(fo.Train))
			ytr := make([]int, len(fo.Train))
			for r, p := range fo.Train {
				tr[r], ytr[r] = idx[p], y[p]
			}
			x, d, _ := f.Input(mod, tr)
			h, err := FitLogReg(x, len(tr), d, ytr, nk, LogRegOptions{C: opt.C, Balanced: true})
			if err != nil {
				return nil, fmt.Errorf("classify: %s head: %w", mod, err)
			}
			te := make([]int, len(fo.Test))
			for r, p := range fo.Test {
				te[r] = idx[p]
			}
			xt, _, _ := f.Input(mod, te)
			pt, err := h.Predict(xt, len(te))
			if err != nil {
				return nil, err
			}
			for r, p := range fo.Test {
				pred[p] = pt[r]
			}
		}
		out = append(out, CVScore{Modality: mod, Spots: len(y), Folds: k, Accuracy: metrics.Accuracy(y, pred),
			Balanced: metrics.BalancedAccuracy(y, pred), MacroF1: metrics.MacroF1(y, pred)})
	}
	return out, nil
}
