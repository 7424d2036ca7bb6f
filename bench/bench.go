package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

type tensorT = tensor.Tensor

// Config is one benchmark run.
type Config struct {
	Model   string // "conv4" or "resnet18"
	Batch   int    // images per step (64)
	Size    int    // image height and width (64)
	Classes int    // outputs (7)
	Warmup  int    // untimed steps before timing (2)
	Steps   int    // timed training steps (10)
	Seed    uint64
}

// DefaultConfig is conv4 at batch 64 on 64×64 images.
func DefaultConfig() Config {
	return Config{Model: "conv4", Batch: 64, Size: 64, Classes: 7, Warmup: 2, Steps: 10, Seed: 1}
}

// Result holds throughputs in images per second.
type Result struct {
	Backend      string
	Threads      int
	TrainImgS    float64 // forward + backward + AdamW step
	InferImgS    float64 // eval-mode forward without a graph
	TrainConvGFS float64 // conv FLOPs (fwd + 2× for bwd) per second of training
	InferConvGFS float64
}

// Data is a fixed random batch.
func data(cfg Config, rng *rand.Rand) (*tensor.Tensor, []int) {
	x := tensor.New(cfg.Batch, 3, cfg.Size, cfg.Size)
	nn.Normal(x, 0, 1, rng)
	y := make([]int, cfg.Batch)
	for i := range y {
		y[i] = rng.IntN(cfg.Classes)
	}
	return x, y
}

// TrainStep runs one forward/backward/AdamW step and returns the loss.
func TrainStep(m Model, opt *nn.AdamW, params []*nn.Var, x *tensor.Tensor, y []int) float32 {
	nn.ZeroGrad(params)
	loss := nn.CrossEntropy(m.Forward(nn.Const(x), true), y, nil)
	loss.BackwardRelease()
	opt.Step(params)
	return loss.Item()
}

// Run measures training and inference throughput of cfg.Model.
func Run(ctx context.Context, cfg Config) (Result, error) {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	m, err := NewModel(cfg.Model, cfg.Classes, rng)
	if err != nil {
		return Result{}, err
	}
	x, y := data(cfg, rng)
	params := nn.Params(m)
	opt := nn.NewAdamW(1e-3, 1e-2)
	for i := 0; i < cfg.Warmup; i++ {
		TrainStep(m, opt, params, x, y)
	}
	start := time.Now()
	for i := 0; i < cfg.Steps; i++ {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		TrainStep(m, opt, params, x, y)
	}
	train := time.Since(start).Seconds()

	infer := func() { nn.NoGrad(func() { m.Forward(nn.Const(x), false) }) }
	for i := 0; i < cfg.Warmup; i++ {
		infer()
	}
	start = time.Now()
	inferSteps := 2 * cfg.Steps
	for i := 0; i < inferSteps; i++ {
		infer()
	}
	inf := time.Since(start).Seconds()
	flops := m.ConvFLOPs(cfg.Size) * float64(cfg.Batch)
	return Result{
		Backend:      tensor.Backend(),
		Threads:      tensor.Threads(),
		TrainImgS:    float64(cfg.Batch*cfg.Steps) / train,
		InferImgS:    float64(cfg.Batch*inferSteps) / inf,
		TrainConvGFS: 3 * flops * float64(cfg.Steps) / train / 1e9,
		InferConvGFS: flops * float64(inferSteps) / inf / 1e9,
	}, nil
}

// MemoryProbe builds cfg.Model, resets the process's peak-RSS mark, runs
// steps training steps and returns the resident memory before them (VmRSS)
// and the peak during them (VmHWM), in bytes.
func MemoryProbe(cfg Config, steps int) (before, peak int64, err error) {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	m, err := NewModel(cfg.Model, cfg.Classes, rng)
	if err != nil {
		return 0, 0, err
	}
	x, y := data(cfg, rng)
	params := nn.Params(m)
	opt := nn.NewAdamW(1e-3, 1e-2)
	runtime.GC()
	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return 0, 0, fmt.Errorf("bench: reset peak RSS: %w", err)
	}
	if before, err = procStatus("VmRSS:"); err != nil {
		return 0, 0, err
	}
	for i := 0; i < steps; i++ {
		TrainStep(m, opt, params, x, y)
	}
	peak, err = procStatus("VmHWM:")
	return before, peak, err
}

// procStatus returns a memory field ("VmRSS:", "VmHWM:") of
// /proc/self/status in bytes.
func procStatus(field string) (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("bench: parse %q: %w", line, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("bench: no %s in /proc/self/status", field)
}

// CPUTicks is the machine's CPU time in clock ticks, summed over CPUs, from
// the first line of /proc/stat: all of it, and the part the hypervisor gave
// to other guests while this one wanted to run (steal). On a shared host a
// benchmark whose run saw much steal measured the neighbours.
type CPUTicks struct{ Total, Steal int64 }

// ReadCPUTicks reads /proc/stat (Linux only).
func ReadCPUTicks() (CPUTicks, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUTicks{}, err
	}
	return parseCPUTicks(string(b))
}

// parseCPUTicks reads the aggregate "cpu" line: user nice system idle
// iowait irq softirq steal [guest guest_nice] (the guest times are already
// part of user and nice).
func parseCPUTicks(stat string) (CPUTicks, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return CPUTicks{}, fmt.Errorf("bench: /proc/stat starts with %q, not the cpu line with 8 counters", line)
	}
	var t CPUTicks
	for i, s := range f[1:9] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return CPUTicks{}, fmt.Errorf("bench: /proc/stat counter %d: %w", i+1, err)
		}
		t.Total += v
		if i == 7 {
			t.Steal = v
		}
	}
	return t, nil
}

// StealShare is the fraction of the CPU time between a and b that was
// stolen (0 when no time passed).
func StealShare(a, b CPUTicks) float64 {
	if b.Total <= a.Total {
		return 0
	}
	return float64(b.Steal-a.Steal) / float64(b.Total-a.Total)
}
