package study

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/spotfuse/spotfuse/classify"
	"github.com/spotfuse/spotfuse/cluster"
	"github.com/spotfuse/spotfuse/fuse"
	"github.com/spotfuse/spotfuse/metrics"
	"github.com/spotfuse/spotfuse/progress"
	"github.com/spotfuse/spotfuse/section"
)

// Target is one labelled section under evaluation.
type Target struct {
	Name string
	// Sec gives positions and the image for the maps; may be nil.
	Sec *section.Section
	// Y is the class (index into the study's classes) of every spot, -1 for
	// unlabelled or excluded spots.
	Y []int
}

// labelled returns the spots with a class.
func (t *Target) labelled() []int {
	var idx []int
	for i, c := range t.Y {
		if c >= 0 {
			idx = append(idx, i)
		}
	}
	return idx
}

// FeatureSet is one setting of the grid: features for every spot of every
// evaluated section, and the heads to fit on them.
type FeatureSet struct {
	Setting  string // unique name, e.g. "expr-pca"
	Modality string // "none", "expr", "image", "fused"
	Features string // "majority", "pca", "stats", "random", "pretrained"
	Pretext  string // image pretext tasks joined by "+", "" when not pretrained
	Fusion   string // "none", "concat", "gated"
	Context  bool
	PSeed    uint64
	// Blocks maps a section name to its features: one block, or one per
	// modality for the "gated" head.
	Blocks map[string][]fuse.Block
	// Heads to evaluate: "majority", "logreg", "mlp" or "gated".
	Heads []string
}

// Design is what Evaluate runs: the sections, the settings and the
// protocol.
type Design struct {
	Study   string
	Classes []string
	// KFold sections are evaluated by stratified k-fold within each.
	KFold []*Target
	// LOSO sections are pooled and evaluated leave-one-section-out.
	LOSO      []*Target
	Sets      []*FeatureSet
	Fractions []float64
	// LOSOFractions are the label fractions of the LOSO evaluation.
	LOSOFractions []float64
	Folds, Seeds  int
	// MapFraction: out-of-fold predictions of seed 0 at this fraction are
	// kept for the maps.
	MapFraction float64
	Workers     int
	// SectionStandardize z-scores every LOSO section's features over all
	// of its spots before pooling (an unsupervised per-section alignment
	// against batch effects between patients).
	SectionStandardize bool
	// Cluster adds unsupervised k-means rows (eval "cluster") per
	// single-block setting and KFold section.
	Cluster bool
	Heads   HeadConfig
}

// HeadConfig tunes the heads fitted on frozen features.
type HeadConfig struct {
	LogReg classify.LogRegOptions
	MLP    classify.MLPConfig
	Gated  fuse.GatedConfig
}

// OOF holds one setting's out-of-fold predictions over a KFold section
// (seed 0, Design.MapFraction).
type OOF struct {
	Section, Setting, Head string
	Pred                   []int     // per spot, -1 where not scored
	Gate                   []float32 // gated head: per spot × modality weights (0 where not scored)
	Modalities             int
}

// Outcome is what Evaluate returns.
type Outcome struct {
	Rows []*Row
	OOF  []*OOF
}

// predictor is a fitted head.
type predictor interface {
	Predict(blocks []fuse.Block) ([]int, error)
}

// gater is a fitted head exposing per-spot modality weights.
type gater interface {
	Weights(blocks []fuse.Block) ([]float32, int, error)
}

// take returns rows idx of every block.
func take(blocks []fuse.Block, idx []int) []fuse.Block {
	out := make([]fuse.Block, len(blocks))
	for bi, b := range blocks {
		x := make([]float32, len(idx)*b.D)
		for r, i := range idx {
			copy(x[r*b.D:(r+1)*b.D], b.X[i*b.D:(i+1)*b.D])
		}
		out[bi] = fuse.Block{X: x, D: b.D}
	}
	return out
}

// majority predicts the most frequent training class (lowest index on ties).
type majority int

func (m majority) Predict(blocks []fuse.Block) ([]int, error) {
	n := len(blocks[0].X) / blocks[0].D
	p := make([]int, n)
	for i := range p {
		p[i] = int(m)
	}
	return p, nil
}

type logregHead struct{ m *classify.LogReg }

func (h logregHead) Predict(blocks []fuse.Block) ([]int, error) {
	b := blocks[0]
	return h.m.Predict(b.X, len(b.X)/b.D)
}

type mlpHead struct{ m *classify.MLP }

func (h mlpHead) Predict(blocks []fuse.Block) ([]int, error) {
	b := blocks[0]
	return h.m.Predict(b.X, len(b.X)/b.D)
}

type gatedHead struct{ m *fuse.Gated }

func (h gatedHead) Predict(blocks []fuse.Block) ([]int, error) { return h.m.Predict(blocks) }
func (h gatedHead) Weights(blocks []fuse.Block) ([]float32, int, error) {
	w, err := h.m.Weights(blocks)
	return w, len(blocks), err
}

// fitHead fits the named head on training blocks with labels y in [0, k).
func fitHead(ctx context.Context, head string, train []fuse.Block, y []int, k int, seed uint64, cfg HeadConfig) (predictor, error) {
	if len(train) != 1 && head != "gated" {
		return nil, fmt.Errorf("study: head %s needs one feature block, got %d", head, len(train))
	}
	b := train[0]
	n := len(y)
	switch head {
	case "majority":
		count := make([]int, k)
		for _, c := range y {
			count[c]++
		}
		best := 0
		for c := range count {
			if count[c] > count[best] {
				best = c
			}
		}
		return majority(best), nil
	case "logreg":
		opt := cfg.LogReg
		opt.Balanced = true
		m, err := classify.FitLogReg(b.X, n, b.D, y, k, opt)
		if err != nil {
			return nil, err
		}
		return logregHead{m}, nil
	case "mlp":
		m, err := classify.TrainMLP(ctx, b.X, n, b.D, y, k, cfg.MLP, seed)
		if err != nil {
			return nil, err
		}
		return mlpHead{m}, nil
	case "gated":
		m, err := fuse.TrainGated(ctx, train, y, k, cfg.Gated, seed)
		if err != nil {
			return nil, err
		}
		return gatedHead{m}, nil
	}
	return nil, fmt.Errorf("study: unknown head %q", head)
}

// job is one (setting, head, seed) of one evaluation; it runs every fold
// and fraction.
type job struct {
	eval    string
	set     *FeatureSet
	head    string
	seed    int
	section string // kfold: the section; loso: "" (all held-out sections)
}

// runKey is the part of Row.Key a job fixes, used to skip finished runs.
func (d *Design) runs(j job) int {
	switch j.eval {
	case "kfold":
		return d.Folds * len(d.Fractions)
	case "loso":
		return len(d.LOSO) * len(d.LOSOFractions)
	}
	return 1
}

// subsetSeed is the seed of the labelled subset of (seed, fold, fraction):
// the same for every setting, so settings are compared on the same spots.
func subsetSeed(seed, fold, fi int) uint64 {
	return uint64(seed)*1_000_003 + uint64(fold)*1_009 + uint64(fi)*31 + 17
}

// Evaluate runs the design: every job's rows are appended to rf (when not
// nil) as soon as the job ends, so the file's order depends on the
// workers' scheduling (SortRows restores a canonical one); runs whose key
// is in done are skipped. The returned Outcome is in job order.
func Evaluate(ctx context.Context, d *Design, rf *ResultsFile, done map[string]bool, prog progress.Reporter) (*Outcome, error) {
	prog = progress.Or(prog)
	var jobs []job
	for _, s := range d.Sets {
		for _, h := range s.Heads {
			for seed := range d.Seeds {
				for _, t := range d.KFold {
					if _, ok := s.Blocks[t.Name]; ok {
						jobs = append(jobs, job{"kfold", s, h, seed, t.Name})
					}
				}
				if len(d.LOSO) > 1 && hasAll(s, d.LOSO) {
					jobs = append(jobs, job{"loso", s, h, seed, ""})
				}
			}
		}
		if d.Cluster && len(s.Blocks) > 0 && s.Fusion != "gated" && s.Features != "majority" {
			for seed := range d.Seeds {
				for _, t := range d.KFold {
					if _, ok := s.Blocks[t.Name]; ok {
						jobs = append(jobs, job{"cluster", s, "kmeans", seed, t.Name})
					}
				}
			}
		}
	}
	total := 0
	for _, j := range jobs {
		total += d.runs(j)
	}
	prog.Start("evaluating", total)
	defer prog.Finish()

	// Each job's outcome is kept at its index so Outcome lists rows and
	// OOF predictions in job order whatever the workers' scheduling.
	workers := max(1, d.Workers)
	var (
		mu       sync.Mutex
		byJob    = make([]Outcome, len(jobs))
		firstErr error
		wg       sync.WaitGroup
		next     = 0
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= len(jobs) || firstErr != nil {
					mu.Unlock()
					return
				}
				ji := next
				j := jobs[ji]
				next++
				mu.Unlock()
				rows, oof, err := d.runJob(ctx, j, done, func(n int) {
					mu.Lock()
					prog.Add(n)
					mu.Unlock()
				})
				if err == nil && rf != nil {
					err = rf.Append(rows...)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("study: %s %s %s/%s seed %d: %w", j.eval, j.section, j.set.Setting, j.head, j.seed, err)
					cancel()
				}
				byJob[ji] = Outcome{Rows: rows, OOF: oof}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	out := &Outcome{}
	for _, o := range byJob {
		out.Rows = append(out.Rows, o.Rows...)
		out.OOF = append(out.OOF, o.OOF...)
	}
	if firstErr != nil {
		return out, firstErr
	}
	return out, ctx.Err()
}

func hasAll(s *FeatureSet, targets []*Target) bool {
	for _, t := range targets {
		if _, ok := s.Blocks[t.Name]; !ok {
			return false
		}
	}
	return true
}

// baseRow fills the setting columns of a row.
func (d *Design) baseRow(j job) *Row {
	s := j.set
	return &Row{Study: d.Study, Eval: j.eval, Section: j.section, Setting: s.Setting, Modality: s.Modality,
		Features: s.Features, Pretext: s.Pretext, Fusion: s.Fusion, Context: s.Context, Head: j.head,
		PSeed: s.PSeed, Seed: j.seed}
}

// score fills the metric columns of r.
func (d *Design) score(r *Row, yTrue, yPred []int) error {
	rep, err := metrics.NewReport(yTrue, yPred, len(d.Classes))
	if err != nil {
		return err
	}
	r.NTest = rep.N
	r.Accuracy, r.BalancedAccuracy, r.MacroF1, r.ARI, r.NMI = rep.Accuracy, rep.BalancedAccuracy, rep.MacroF1, rep.ARI, rep.NMI
	r.F1, r.Confusion = rep.PerClassF1, rep.Confusion
	// A class absent from both truth and prediction has no F1 (NaN), not 0.
	for c := range r.F1 {
		n := 0
		for o := range r.Confusion {
			n += r.Confusion[c][o] + r.Confusion[o][c]
		}
		if n == 0 {
			r.F1[c] = math.NaN()
		}
	}
	return nil
}

func (d *Design) target(name string) *Target {
	for _, t := range d.KFold {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// runJob runs every fold and fraction of j.
func (d *Design) runJob(ctx context.Context, j job, done map[string]bool, add func(int)) ([]*Row, []*OOF, error) {
	switch j.eval {
	case "kfold":
		return d.runKFold(ctx, j, done, add)
	case "loso":
		rows, err := d.runLOSO(ctx, j, done, add)
		return rows, nil, err
	case "cluster":
		rows, err := d.runCluster(j, done, add)
		return rows, nil, err
	}
	return nil, nil, fmt.Errorf("unknown evaluation %q", j.eval)
}

// fitPredict fits head on train rows of blocks and predicts test rows.
func (d *Design) fitPredict(ctx context.Context, j job, blocks []fuse.Block, y []int, train, test []int, seed uint64) (pred []int, gate []float32, err error) {
	ytr := make([]int, len(train))
	for i, s := range train {
		ytr[i] = y[s]
	}
	m, err := fitHead(ctx, j.head, take(blocks, train), ytr, len(d.Classes), seed, d.Heads)
	if err != nil {
		return nil, nil, err
	}
	tb := take(blocks, test)
	pred, err = m.Predict(tb)
	if err != nil {
		return nil, nil, err
	}
	if g, ok := m.(gater); ok {
		gate, _, err = g.Weights(tb)
	}
	return pred, gate, err
}

func labelsAt(y, idx []int) []int {
	out := make([]int, len(idx))
	for i, s := range idx {
		out[i] = y[s]
	}
	return out
}

func (d *Design) runKFold(ctx context.Context, j job, done map[string]bool, add func(int)) ([]*Row, []*OOF, error) {
	t := d.target(j.section)
	blocks := j.set.Blocks[t.Name]
	lab := t.labelled()
	ylab := labelsAt(t.Y, lab)
	folds, err := classify.StratifiedKFold(ylab, d.Folds, uint64(j.seed))
	if err != nil {
		return nil, nil, fmt.Errorf("section %s: %w", t.Name, err)
	}
	var rows []*Row
	var oofs []*OOF
	mapFI := -1
	if j.seed == 0 {
		mapFI = nearest(d.Fractions, d.MapFraction)
	}
	for fi, frac := range d.Fractions {
		var oof *OOF
		if fi == mapFI {
			oof = &OOF{Section: t.Name, Setting: j.set.Setting, Head: j.head, Pred: make([]int, len(t.Y))}
			for i := range oof.Pred {
				oof.Pred[i] = -1
			}
		}
		for f, fold := range folds {
			if err := ctx.Err(); err != nil {
				return rows, oofs, err
			}
			r := d.baseRow(j)
			r.Fold, r.Fraction = f, frac
			if done[r.Key()] && oof == nil {
				add(1)
				continue
			}
			start := time.Now()
			sub, err := classify.StratifiedSubset(fold.Train, ylab, frac, subsetSeed(j.seed, f, fi))
			if err != nil {
				return rows, oofs, err
			}
			train := make([]int, len(sub))
			for i, s := range sub {
				train[i] = lab[s]
			}
			test := make([]int, len(fold.Test))
			for i, s := range fold.Test {
				test[i] = lab[s]
			}
			pred, gate, err := d.fitPredict(ctx, j, blocks, t.Y, train, test, subsetSeed(j.seed, f, fi)^0xbeef)
			if err != nil {
				return rows, oofs, fmt.Errorf("fold %d fraction %g: %w", f, frac, err)
			}
			r.NTrain = len(train)
			if err := d.score(r, labelsAt(t.Y, test), pred); err != nil {
				return rows, oofs, err
			}
			r.Seconds = time.Since(start).Seconds()
			if !done[r.Key()] {
				rows = append(rows, r)
			}
			if oof != nil {
				for i, s := range test {
					oof.Pred[s] = pred[i]
				}
				if gate != nil {
					m := len(blocks)
					if oof.Gate == nil {
						oof.Gate = make([]float32, len(t.Y)*m)
						oof.Modalities = m
					}
					for i, s := range test {
						copy(oof.Gate[s*m:(s+1)*m], gate[i*m:(i+1)*m])
					}
				}
			}
			add(1)
		}
		if oof != nil {
			oofs = append(oofs, oof)
		}
	}
	return rows, oofs, nil
}

// nearest returns the index of the value in xs closest to x.
func nearest(xs []float64, x float64) int {
	best := 0
	for i, v := range xs {
		if abs(v-x) < abs(xs[best]-x) {
			best = i
		}
	}
	return best
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func (d *Design) runLOSO(ctx context.Context, j job, done map[string]bool, add func(int)) ([]*Row, error) {
	// Pool the labelled spots of every LOSO section.
	var (
		blocks []fuse.Block
		y      []int
		group  []int
	)
	for ti, t := range d.LOSO {
		bs := j.set.Blocks[t.Name]
		if d.SectionStandardize {
			z := make([]fuse.Block, len(bs))
			for bi, b := range bs {
				z[bi] = fuse.Block{X: fuse.Standardize(b.X, len(t.Y), b.D, 1), D: b.D}
			}
			bs = z
		}
		lab := t.labelled()
		part := take(bs, lab)
		if blocks == nil {
			blocks = part
		} else {
			for bi := range blocks {
				if blocks[bi].D != part[bi].D {
					return nil, fmt.Errorf("section %s has %d features in block %d, %s has %d", t.Name, part[bi].D, bi, d.LOSO[0].Name, blocks[bi].D)
				}
				blocks[bi].X = append(blocks[bi].X, part[bi].X...)
			}
		}
		for _, s := range lab {
			y = append(y, t.Y[s])
			group = append(group, ti)
		}
	}
	folds := classify.LeaveOneGroupOut(group)
	var rows []*Row
	for fi, frac := range d.LOSOFractions {
		for f, fold := range folds {
			if err := ctx.Err(); err != nil {
				return rows, err
			}
			r := d.baseRow(j)
			r.Section = d.LOSO[group[fold.Test[0]]].Name
			r.Fold, r.Fraction = f, frac
			if done[r.Key()] {
				add(1)
				continue
			}
			start := time.Now()
			train, err := classify.StratifiedSubset(fold.Train, y, frac, subsetSeed(j.seed, f, fi))
			if err != nil {
				return rows, err
			}
			pred, _, err := d.fitPredict(ctx, j, blocks, y, train, fold.Test, subsetSeed(j.seed, f, fi)^0xbeef)
			if err != nil {
				return rows, fmt.Errorf("held-out %s fraction %g: %w", r.Section, frac, err)
			}
			r.NTrain = len(train)
			if err := d.score(r, labelsAt(y, fold.Test), pred); err != nil {
				return rows, err
			}
			r.Seconds = time.Since(start).Seconds()
			rows = append(rows, r)
			add(1)
		}
	}
	return rows, nil
}

// runCluster clusters all spots of the section by k-means with as many
// clusters as labelled classes and scores the labelled spots (ARI, NMI; the
// classification metrics are left empty since clusters are not classes).
func (d *Design) runCluster(j job, done map[string]bool, add func(int)) ([]*Row, error) {
	defer add(1)
	t := d.target(j.section)
	r := d.baseRow(j)
	if done[r.Key()] {
		return nil, nil
	}
	start := time.Now()
	b := j.set.Blocks[t.Name][0]
	lab := t.labelled()
	ylab := labelsAt(t.Y, lab)
	k := len(slices.Compact(slices.Sorted(slices.Values(ylab))))
	res, err := cluster.KMeans(b.X, len(b.X)/b.D, b.D, cluster.KMeansOptions{K: k, Seed: uint64(j.seed)})
	if err != nil {
		return nil, err
	}
	pred := labelsAt(res.Labels, lab)
	r.NTest = len(lab)
	r.ARI = metrics.AdjustedRandIndex(ylab, pred)
	r.NMI = metrics.NormalizedMutualInfo(ylab, pred)
	r.Accuracy, r.BalancedAccuracy, r.MacroF1 = math.NaN(), math.NaN(), math.NaN()
	r.F1 = make([]float64, len(d.Classes))
	for i := range r.F1 {
		r.F1[i] = math.NaN()
	}
	r.Seconds = time.Since(start).Seconds()
	slog.Debug("clustered", "section", t.Name, "setting", j.set.Setting, "ari", r.ARI)
	return []*Row{r}, nil
}
