package pretrain

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/progress"
	"github.com/spotfuse/spotfuse/tensor"
)

// Module is anything with named trainable parameters. Names must be stable
// and deterministic (they key checkpoints and the optimizer state).
type Module interface {
	NamedParams() map[string]*nn.Var
}

// Bufferer is implemented by modules holding non-trainable state that must
// be checkpointed with the weights (BatchNorm running statistics).
type Bufferer interface {
	Buffers() map[string]*tensor.Tensor
}

// Task is one self-supervised objective, or a weighted sum of several, over
// a module. Run calls Step once per optimizer step.
type Task interface {
	Module
	// Step builds the graph of one training step and returns its scalar
	// loss and the value of each loss term (by name; "total" is added by
	// Run). rng is the loop's only random source: a task must draw every
	// random choice (batch, masks, augmentations) from it, so that a resumed
	// run repeats the uninterrupted one exactly.
	Step(ctx context.Context, step int, rng *rand.Rand) (loss *nn.Var, terms map[string]float64, err error)
}

// Evaluator is implemented by tasks that can measure their loss on held-out
// data. HeldOut must be deterministic (its own fixed seed), build no graph,
// run modules in eval mode and leave the module state unchanged.
type Evaluator interface {
	HeldOut(ctx context.Context) (map[string]float64, error)
}

// Fingerprinter is implemented by tasks whose settings and data (beyond the
// parameter shapes and the LoopConfig) must match for a checkpoint to be
// resumed, e.g. loss weights or a hash of the training data.
type Fingerprinter interface {
	Fingerprint() string
}

// LoopConfig configures the training loop shared by every pretext task.
type LoopConfig struct {
	Steps           int     // optimizer steps (default 500)
	Batch           int     // examples per step, read by the task (default 64)
	CheckpointEvery int     // steps between checkpoints in Dir (default 100); the last step is always saved
	LogEvery        int     // steps between log lines and held-out evaluations (default 50)
	LR              float64 // peak learning rate of AdamW (default 1e-3)
	WeightDecay     float64 // AdamW decoupled weight decay (0 = none; DefaultLoop uses 1e-4)
	Warmup          float64 // fraction of Steps with a linear warm-up before the cosine decay (0 = none; DefaultLoop uses 0.05)
	ClipNorm        float64 // maximum global gradient norm (0 = no clipping; DefaultLoop uses 5)
	Seed            uint64  // seeds the loop's random source
	// Dir receives checkpoint.safetensors, loss.csv and loss.png; "" keeps
	// everything in memory. When Dir holds a checkpoint of the same
	// configuration, Run resumes from it.
	Dir string
}

// DefaultLoop returns the documented defaults.
func DefaultLoop() LoopConfig {
	return LoopConfig{Steps: 500, Batch: 64, CheckpointEvery: 100, LogEvery: 50, LR: 1e-3,
		WeightDecay: 1e-4, Warmup: 0.05, ClipNorm: 5, Seed: 1}
}

// withDefaults fills the zero fields that have no meaningful zero value.
func (c LoopConfig) withDefaults() LoopConfig {
	d := DefaultLoop()
	if c.Steps == 0 {
		c.Steps = d.Steps
	}
	if c.Batch == 0 {
		c.Batch = d.Batch
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = d.CheckpointEvery
	}
	if c.LogEvery == 0 {
		c.LogEvery = d.LogEvery
	}
	if c.LR == 0 {
		c.LR = d.LR
	}
	return c
}

func (c LoopConfig) validate() error {
	switch {
	case c.Steps < 0:
		return fmt.Errorf("pretrain: Steps = %d, want ≥ 0", c.Steps)
	case c.Batch < 1:
		return fmt.Errorf("pretrain: Batch = %d, want ≥ 1", c.Batch)
	case c.CheckpointEvery < 1 || c.LogEvery < 1:
		return fmt.Errorf("pretrain: CheckpointEvery = %d and LogEvery = %d, want ≥ 1", c.CheckpointEvery, c.LogEvery)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("pretrain: LR = %g, want a positive finite number", c.LR)
	case c.WeightDecay < 0 || c.ClipNorm < 0:
		return fmt.Errorf("pretrain: WeightDecay = %g and ClipNorm = %g, want ≥ 0", c.WeightDecay, c.ClipNorm)
	case c.Warmup < 0 || c.Warmup >= 1:
		return fmt.Errorf("pretrain: Warmup = %g, want a fraction in [0, 1)", c.Warmup)
	}
	return nil
}

// History records the losses of a run. Loss[term][i] is the training loss
// of optimizer step Steps[i] (1-based: the loss computed before update i);
// HeldOut[term][j] is the held-out loss after HeldOutSteps[j] updates (0 =
// before training). Every map has a "total" entry.
type History struct {
	Steps        []int
	Loss         map[string][]float64
	HeldOutSteps []int
	HeldOut      map[string][]float64
	// Seconds is the wall time spent in training steps (this process and
	// the runs it resumed from).
	Seconds float64
}

func newHistory() *History {
	return &History{Loss: map[string][]float64{}, HeldOut: map[string][]float64{}}
}

func (h *History) addLoss(step int, terms map[string]float64) {
	n := len(h.Steps)
	h.Steps = append(h.Steps, step)
	for k, v := range terms {
		s := h.Loss[k]
		for len(s) < n { // a term that was absent earlier
			s = append(s, math.NaN())
		}
		h.Loss[k] = append(s, v)
	}
	for k, s := range h.Loss {
		if len(s) == n {
			h.Loss[k] = append(s, math.NaN())
		}
	}
}

func (h *History) addHeldOut(step int, terms map[string]float64) {
	n := len(h.HeldOutSteps)
	h.HeldOutSteps = append(h.HeldOutSteps, step)
	for k, v := range terms {
		s := h.HeldOut[k]
		for len(s) < n {
			s = append(s, math.NaN())
		}
		h.HeldOut[k] = append(s, v)
	}
	for k, s := range h.HeldOut {
		if len(s) == n {
			h.HeldOut[k] = append(s, math.NaN())
		}
	}
}

// FirstHeldOut and LastHeldOut return the held-out loss of a term before
// training and at the end (NaN when it was not measured).
func (h *History) FirstHeldOut(term string) float64 { return at(h.HeldOut[term], 0) }

// LastHeldOut returns the last held-out loss of term (NaN if none).
func (h *History) LastHeldOut(term string) float64 {
	return at(h.HeldOut[term], len(h.HeldOut[term])-1)
}

func at(s []float64, i int) float64 {
	if i < 0 || i >= len(s) {
		return math.NaN()
	}
	return s[i]
}

// CheckpointFile is the name of the checkpoint Run keeps in LoopConfig.Dir.
const CheckpointFile = "checkpoint.safetensors"

// Run trains task's module with AdamW under a cosine schedule with warm-up
// and returns the loss history. It stops with an error naming the step and
// the likely cause when a loss or gradient is NaN or infinite (the weights
// of that step are not applied and nothing non-finite is saved). With
// cfg.Dir set it checkpoints atomically every cfg.CheckpointEvery steps and
// at the end, resumes from a checkpoint left there by an identical run, and
// writes loss.csv and loss.png. A resumed run ends with the same weights, bit
// for bit, as an uninterrupted one (same thread count).
func Run(ctx context.Context, task Task, cfg LoopConfig, prog progress.Reporter) (*History, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	prog = progress.Or(prog)
	params := task.NamedParams()
	names := sortedKeys(params)
	if len(names) == 0 {
		return nil, errors.New("pretrain: the task has no parameters")
	}
	plist := make([]*nn.Var, len(names))
	for i, n := range names {
		plist[i] = params[n]
	}
	var buffers map[string]*tensor.Tensor
	if b, ok := task.(Bufferer); ok {
		buffers = b.Buffers()
	}
	opt := newOptimizer(cfg, names, plist)
	pcg := rand.NewPCG(cfg.Seed, 0x5f0f_05e0_2026)
	rng := rand.New(pcg)
	hist := newHistory()
	start := 0
	fp := fingerprint(cfg, params, buffers)
	if f, ok := task.(Fingerprinter); ok {
		fp += f.Fingerprint()
	}

	ckpt := ""
	if cfg.Dir != "" {
		ckpt = filepath.Join(cfg.Dir, CheckpointFile)
		if _, err := os.Stat(ckpt); err == nil {
			st, err := loadCheckpoint(ckpt, fp, params, buffers, opt, pcg)
			if err != nil {
				return nil, err
			}
			start, hist = st.step, st.hist
			slog.Info("pretrain: resuming", "checkpoint", ckpt, "step", start, "of", cfg.Steps)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("pretrain: %w", err)
		}
	}

	eval, canEval := task.(Evaluator)
	heldOut := func(step int) error {
		if !canEval {
			return nil
		}
		terms, err := eval.HeldOut(ctx)
		if err != nil {
			return err
		}
		if err := checkTerms(terms); err != nil {
			return fmt.Errorf("pretrain: held-out loss after %d steps: %w", step, err)
		}
		hist.addHeldOut(step, terms)
		slog.Debug("pretrain: held-out", "step", step, "loss", terms)
		return nil
	}
	if start == 0 {
		if err := heldOut(0); err != nil {
			return nil, err
		}
	}

	warm := int(math.Round(cfg.Warmup * float64(cfg.Steps)))
	prog.Start("pretraining", cfg.Steps)
	prog.Add(start)
	defer prog.Finish()
	lastNorm := math.NaN()
	began := time.Now()
	spent := hist.Seconds
	for step := start; step < cfg.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return hist, fmt.Errorf("pretrain: stopped at step %d: %w", step, err)
		}
		lr := cfg.LR * nn.CosineWarmup(step, cfg.Steps, warm)
		zeroGrads(plist)
		loss, terms, err := task.Step(ctx, step, rng)
		if err != nil {
			return hist, fmt.Errorf("pretrain: step %d: %w", step+1, err)
		}
		total := float64(loss.Value.Data[0])
		if err := checkTerms(terms); err != nil || !finite(total) {
			return hist, diverged(step, start, total, terms, lr, lastNorm)
		}
		loss.BackwardRelease() // nothing of the step is read after it
		norm := clipGrads(plist, cfg.ClipNorm)
		if !finite(norm) {
			return hist, badGradient(step, names, plist, total, lr)
		}
		lastNorm = norm
		opt.step(lr)
		rec := map[string]float64{"total": total}
		for k, v := range terms {
			rec[k] = v
		}
		hist.addLoss(step+1, rec)
		prog.Add(1)
		done := step + 1
		hist.Seconds = spent + time.Since(began).Seconds()
		if done%cfg.LogEvery == 0 || done == cfg.Steps {
			if err := heldOut(done); err != nil {
				return hist, err
			}
			slog.Info("pretrain", "step", done, "of", cfg.Steps, "loss", total, "lr", lr, "grad_norm", norm)
		}
		if ckpt != "" && (done%cfg.CheckpointEvery == 0 || done == cfg.Steps) {
			if err := saveCheckpoint(ckpt, fp, done, hist, params, buffers, opt, pcg); err != nil {
				return hist, err
			}
			if err := WriteHistory(cfg.Dir, hist); err != nil {
				return hist, err
			}
		}
	}
	if cfg.Dir != "" && start == cfg.Steps {
		if err := WriteHistory(cfg.Dir, hist); err != nil {
			return hist, err
		}
	}
	return hist, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func checkTerms(terms map[string]float64) error {
	for _, k := range sortedKeys(terms) {
		if !finite(terms[k]) {
			return fmt.Errorf("loss term %q is %g", k, terms[k])
		}
	}
	return nil
}

// diverged explains a non-finite loss.
func diverged(step, start int, total float64, terms map[string]float64, lr, lastNorm float64) error {
	which := fmt.Sprintf("loss %g", total)
	for _, k := range sortedKeys(terms) {
		if !finite(terms[k]) {
			which = fmt.Sprintf("loss term %q = %g", k, terms[k])
			break
		}
	}
	var cause string
	switch {
	case step == 0:
		cause = "before any update: the input data or the initial weights hold NaN/Inf values (check the patches or expression matrix)"
	case step == start:
		cause = "right after resuming: the checkpoint or the input data hold NaN/Inf values"
	default:
		cause = fmt.Sprintf("training diverged (learning rate %.3g, last gradient norm %.3g): lower LR, lengthen Warmup or set ClipNorm", lr, lastNorm)
	}
	return fmt.Errorf("pretrain: step %d: %s is not finite; likely cause: %s", step+1, which, cause)
}

// badGradient names the first parameter with a non-finite gradient.
func badGradient(step int, names []string, params []*nn.Var, total, lr float64) error {
	bad := "?"
	for i, p := range params {
		if p.Grad == nil {
			continue
		}
		for _, g := range p.Grad.Data {
			if !finite(float64(g)) {
				bad = names[i]
				break
			}
		}
		if bad != "?" {
			break
		}
	}
	return fmt.Errorf("pretrain: step %d: gradient of %q is not finite although the loss (%g) is; likely cause: "+
		"an overflow or a numerically unstable operation (log, sqrt or division near 0) in the loss, or a learning rate (%.3g) "+
		"too high for the current weights: lower LR or set ClipNorm", step+1, bad, total, lr)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// fingerprint identifies a run's configuration and model shapes; a
// checkpoint is only resumed by a run with the same fingerprint.
func fingerprint(cfg LoopConfig, params map[string]*nn.Var, buffers map[string]*tensor.Tensor) string {
	type entry struct {
		Name  string
		Shape []int
	}
	var shapes []entry
	for _, k := range sortedKeys(params) {
		shapes = append(shapes, entry{"param/" + k, params[k].Value.Shape})
	}
	for _, k := range sortedKeys(buffers) {
		shapes = append(shapes, entry{"buffer/" + k, buffers[k].Shape})
	}
	c := cfg
	c.Dir, c.CheckpointEvery, c.LogEvery = "", 0, 0
	b, _ := json.Marshal(struct {
		Loop   LoopConfig
		Shapes []entry
	}{c, shapes})
	return string(b)
}

// fingerprintDiff returns the parts of a and b around their first
// difference.
func fingerprintDiff(a, b string) (string, string) {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-40)
	cut := func(s string) string { return s[min(lo, len(s)):min(i+40, len(s))] }
	return cut(a), cut(b)
}

type checkpointState struct {
	step int
	hist *History
}

func saveCheckpoint(path, fp string, step int, hist *History, params map[string]*nn.Var,
	buffers map[string]*tensor.Tensor, opt *optimizer, pcg *rand.PCG) error {
	ts := map[string]*tensor.Tensor{}
	for k, p := range params {
		for _, v := range p.Value.Data {
			if !finite(float64(v)) {
				return fmt.Errorf("pretrain: refusing to checkpoint step %d: parameter %q holds %g", step, k, v)
			}
		}
		ts["param/"+k] = p.Value
	}
	for k, b := range buffers {
		ts["buffer/"+k] = b
	}
	ostate, ometa := opt.state()
	for k, t := range ostate {
		ts["optim/"+k] = t
	}
	rs, err := pcg.MarshalBinary()
	if err != nil {
		return fmt.Errorf("pretrain: saving RNG state: %w", err)
	}
	hj, err := json.Marshal(historyJSON(hist))
	if err != nil {
		return fmt.Errorf("pretrain: encoding history: %w", err)
	}
	meta := map[string]string{
		"format":      "spotfuse-pretrain-checkpoint-1",
		"step":        strconv.Itoa(step),
		"rng":         base64.StdEncoding.EncodeToString(rs),
		"optim":       ometa,
		"history":     string(hj),
		"fingerprint": fp,
	}
	if err := nn.SaveSafetensors(path, ts, meta); err != nil {
		return fmt.Errorf("pretrain: writing checkpoint %s: %w", path, err)
	}
	return nil
}

func loadCheckpoint(path, fp string, params map[string]*nn.Var, buffers map[string]*tensor.Tensor,
	opt *optimizer, pcg *rand.PCG) (*checkpointState, error) {
	ts, meta, err := nn.LoadSafetensors(path)
	if err != nil {
		return nil, fmt.Errorf("pretrain: reading checkpoint: %w", err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("pretrain: checkpoint %s: %s", path, fmt.Sprintf(format, a...))
	}
	if meta["format"] != "spotfuse-pretrain-checkpoint-1" {
		return nil, bad("not a spotfuse pretraining checkpoint (format %q)", meta["format"])
	}
	if meta["fingerprint"] != fp {
		saved, now := fingerprintDiff(meta["fingerprint"], fp)
		return nil, bad("was written by a run with another configuration, model or data; use an empty directory "+
			"or the same settings (saved: …%s…; now: …%s…)", saved, now)
	}
	step, err := strconv.Atoi(meta["step"])
	if err != nil || step < 0 {
		return nil, bad("bad step %q", meta["step"])
	}
	copyInto := func(key string, dst *tensor.Tensor) error {
		src, ok := ts[key]
		if !ok {
			return bad("missing tensor %q", key)
		}
		if !tensor.SameShape(src.Shape, dst.Shape) {
			return bad("tensor %q has shape %v, want %v", key, src.Shape, dst.Shape)
		}
		copy(dst.Data, src.Data)
		return nil
	}
	for k, p := range params {
		if err := copyInto("param/"+k, p.Value); err != nil {
			return nil, err
		}
	}
	for k, b := range buffers {
		if err := copyInto("buffer/"+k, b); err != nil {
			return nil, err
		}
	}
	ostate := map[string]*tensor.Tensor{}
	for k, t := range ts {
		if len(k) > 6 && k[:6] == "optim/" {
			ostate[k[6:]] = t
		}
	}
	if err := opt.setState(ostate, meta["optim"]); err != nil {
		return nil, bad("%v", err)
	}
	rs, err := base64.StdEncoding.DecodeString(meta["rng"])
	if err != nil {
		return nil, bad("bad RNG state: %v", err)
	}
	if err := pcg.UnmarshalBinary(rs); err != nil {
		return nil, bad("bad RNG state: %v", err)
	}
	var hj histJSON
	if err := json.Unmarshal([]byte(meta["history"]), &hj); err != nil {
		return nil, bad("bad history: %v", err)
	}
	return &checkpointState{step: step, hist: hj.history()}, nil
}

// histJSON is History with NaN encoded as null (JSON has no NaN).
type histJSON struct {
	Steps        []int
	Loss         map[string][]*float64
	HeldOutSteps []int
	HeldOut      map[string][]*float64
	Seconds      float64
}

func historyJSON(h *History) histJSON {
	enc := func(m map[string][]float64) map[string][]*float64 {
		out := map[string][]*float64{}
		for k, s := range m {
			e := make([]*float64, len(s))
			for i := range s {
				if finite(s[i]) {
					e[i] = &s[i]
				}
			}
			out[k] = e
		}
		return out
	}
	return histJSON{h.Steps, enc(h.Loss), h.HeldOutSteps, enc(h.HeldOut), h.Seconds}
}

func (j histJSON) history() *History {
	dec := func(m map[string][]*float64) map[string][]float64 {
		out := map[string][]float64{}
		for k, e := range m {
			s := make([]float64, len(e))
			for i, p := range e {
				s[i] = math.NaN()
				if p != nil {
					s[i] = *p
				}
			}
			out[k] = s
		}
		return out
	}
	return &History{Steps: j.Steps, Loss: dec(j.Loss), HeldOutSteps: j.HeldOutSteps, HeldOut: dec(j.HeldOut), Seconds: j.Seconds}
}
