package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spotfuse/spotfuse/bench"
	"github.com/spotfuse/spotfuse/sgemm"
	"github.com/spotfuse/spotfuse/tensor"
)

func init() {
	cfg := bench.DefaultConfig()
	var threads, repeat int
	var python string
	var memProbe, layers bool
	var cpuprofile string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the engine against PyTorch on the same model, batch, size and threads",
		Long: `bench trains and runs a reference image encoder (conv4 or resnet18) with
spotfuse's engine and, when python3 with torch is available, with PyTorch
(the embedded torch_peer.py) on the same batch, image size and thread count,
and prints images per second for both and their ratio, the convolution
GFLOP/s against the machine's measured fp32 peak (a loop of independent
fused multiply-adds on every thread, read before and after the runs; the
better reading counts) and a large sgemm, and the peak memory of training
steps (each measured in a fresh process). On a shared host it also prints the
share of CPU time the hypervisor gave to other guests during the runs (steal,
from /proc/stat): ratios measured under much steal compare the neighbours.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tensor.SetThreads(threads)
			if cpuprofile != "" {
				f, err := os.Create(cpuprofile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			if memProbe {
				before, after, err := bench.MemoryProbe(cfg, 2)
				if err != nil {
					return err
				}
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]int64{"before": before, "after": after})
			}
			return runBench(cmd, cfg, threads, repeat, python, layers)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Model, "model", cfg.Model, "model: conv4 or resnet18")
	f.IntVar(&cfg.Batch, "batch", cfg.Batch, "images per step")
	f.IntVar(&cfg.Size, "size", cfg.Size, "image height and width")
	f.IntVar(&cfg.Steps, "steps", cfg.Steps, "timed training steps (inference runs twice as many)")
	f.IntVar(&cfg.Warmup, "warmup", cfg.Warmup, "untimed steps first")
	f.IntVar(&repeat, "repeat", 3, "alternate the engines this many times and keep each one's best")
	f.IntVar(&threads, "threads", runtime.NumCPU(), "worker threads for both engines")
	f.StringVar(&python, "python", defaultPython(), `python with torch for the peer ("" to skip)`)
	f.BoolVar(&layers, "layers", true, "time conv4's convolutions one by one")
	f.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the run to this file")
	f.BoolVar(&memProbe, "mem-probe", false, "internal: print peak RSS around two training steps as JSON")
	f.MarkHidden("mem-probe")
	root.AddCommand(cmd)
}

func defaultPython() string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}

// median of a non-empty slice.
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// bestOf keeps the higher throughputs of two runs.
func bestOf(a, b bench.Result) bench.Result {
	if b.TrainImgS > a.TrainImgS {
		a.TrainImgS, a.TrainConvGFS = b.TrainImgS, b.TrainConvGFS
	}
	if b.InferImgS > a.InferImgS {
		a.InferImgS, a.InferConvGFS = b.InferImgS, b.InferConvGFS
	}
	return a
}

func runBench(cmd *cobra.Command, cfg bench.Config, threads, repeat int, python string, layers bool) error {
	ctx := cmd.Context()
	w := cmd.OutOrStdout()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "backend %s, %d threads, OPENBLAS_CORETYPE=%q, load %s\n", tensor.Backend(), threads,
		os.Getenv("OPENBLAS_CORETYPE"), strings.Join(strings.Fields(string(load))[:3], " "))
	peak := bench.SgemmPeak(1536, 5)
	fma := sgemm.PeakGFLOPS(threads, time.Second)
	if fma > 0 {
		fmt.Fprintf(w, "fp32 peak (FMA loop, %d threads): %.0f GFLOP/s; sgemm 1536³: %.0f GFLOP/s\n", threads, fma, peak)
	} else {
		fmt.Fprintf(w, "sgemm 1536³: %.0f GFLOP/s (no AVX-512 FMA peak on this machine)\n", peak)
		fma = peak
	}
	if layers && cfg.Model == "conv4" {
		fmt.Fprintf(w, "\nconv4 convolutions alone (batch %d):\n", cfg.Batch)
		fmt.Fprintf(w, "  %-26s %9s %9s %10s %10s\n", "layer", "fwd ms", "bwd ms", "fwd GF/s", "f+b GF/s")
		for _, l := range bench.Conv4Layers(cfg, 3) {
			fmt.Fprintf(w, "  %-26s %9.1f %9.1f %10.0f %10.0f\n", l.Name, l.FwdMillis, l.BwdMillis, l.FwdGFS, l.TrainGFS)
		}
	}
	// Alternate the engines repeat times and keep each one's best run: other
	// processes on the machine only ever slow a run down.
	var ours bench.Result
	var peer *bench.TorchResult
	// Ratios of adjacent runs: the machine's speed drifts over seconds (a
	// shared host), so a pair run back to back compares like with like.
	var trainRatios, inferRatios []float64
	ticks0, tickErr := bench.ReadCPUTicks()
	for r := 0; r < max(1, repeat); r++ {
		o, err := bench.Run(ctx, cfg)
		if err != nil {
			return err
		}
		if r == 0 {
			ours = o
		} else {
			ours = bestOf(ours, o)
		}
		if python == "" {
			continue
		}
		t, err := bench.RunTorch(ctx, python, cfg, threads, false)
		if err != nil {
			fmt.Fprintf(w, "torch peer unavailable: %v\n", err)
			python = ""
			continue
		}
		trainRatios = append(trainRatios, o.TrainImgS/t.TrainImgS)
		inferRatios = append(inferRatios, o.InferImgS/t.InferImgS)
		if peer == nil {
			peer = &t
		} else {
			peer.TrainImgS = max(peer.TrainImgS, t.TrainImgS)
			peer.InferImgS = max(peer.InferImgS, t.InferImgS)
		}
	}
	fmt.Fprintf(w, "\n%s, batch %d, %dx%d, %d threads, best of %d:\n", cfg.Model, cfg.Batch, cfg.Size, cfg.Size, threads, max(1, repeat))
	fmt.Fprintf(w, "  %-28s %10s %10s %8s\n", "", "spotfuse", "torch", "ratio")
	row := func(name string, a float64, b func(*bench.TorchResult) float64) {
		if peer == nil {
			fmt.Fprintf(w, "  %-28s %10.1f %10s %8s\n", name, a, "-", "-")
			return
		}
		fmt.Fprintf(w, "  %-28s %10.1f %10.1f %7.2fx\n", name, a, b(peer), a/b(peer))
	}
	row("train img/s", ours.TrainImgS, func(r *bench.TorchResult) float64 { return r.TrainImgS })
	row("inference img/s", ours.InferImgS, func(r *bench.TorchResult) float64 { return r.InferImgS })
	if len(trainRatios) > 1 {
		fmt.Fprintf(w, "  ratio of back-to-back runs, median (range): train %.2fx (%.2f–%.2f), inference %.2fx (%.2f–%.2f)\n",
			median(trainRatios), slices.Min(trainRatios), slices.Max(trainRatios),
			median(inferRatios), slices.Min(inferRatios), slices.Max(inferRatios))
	}
	if ticks1, err := bench.ReadCPUTicks(); tickErr == nil && err == nil {
		fmt.Fprintf(w, "  CPU time taken by the hypervisor (steal) during these runs: %.1f%%\n", 100*bench.StealShare(ticks0, ticks1))
	}
	// The FMA loop read before the runs may have met a busy neighbour: the
	// percentages use the better of two readings, before and after.
	if again := sgemm.PeakGFLOPS(threads, time.Second); again > fma {
		fmt.Fprintf(w, "  fp32 peak read again after the runs: %.0f GFLOP/s (used below)\n", again)
		fma = again
	}
	fmt.Fprintf(w, "  conv GFLOP/s in training: %.0f (%.0f%% of fp32 peak); in inference: %.0f (%.0f%%)\n",
		ours.TrainConvGFS, 100*ours.TrainConvGFS/fma, ours.InferConvGFS, 100*ours.InferConvGFS/fma)
	if peer != nil {
		tt, ti := ours.TrainConvGFS*peer.TrainImgS/ours.TrainImgS, ours.InferConvGFS*peer.InferImgS/ours.InferImgS
		fmt.Fprintf(w, "  torch, same FLOPs:         %.0f (%.0f%%);               %.0f (%.0f%%)\n", tt, 100*tt/fma, ti, 100*ti/fma)
	}

	// Peak memory, each engine in a fresh process.
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	probe := exec.CommandContext(ctx, exe, "bench", "--mem-probe", "--model", cfg.Model, "--batch", strconv.Itoa(cfg.Batch),
		"--size", strconv.Itoa(cfg.Size), "--threads", strconv.Itoa(threads))
	probe.Stderr = os.Stderr
	out, err := probe.Output()
	if err != nil {
		return fmt.Errorf("memory probe: %w", err)
	}
	var mem struct{ Before, After int64 }
	if err := json.Unmarshal(out, &mem); err != nil {
		return fmt.Errorf("memory probe printed %q: %w", out, err)
	}
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	fmt.Fprintf(w, "  peak RSS in 2 training steps:  spotfuse %.0f MB (+%.0f MB over the RSS before)", mb(mem.After), mb(mem.After-mem.Before))
	if peer != nil {
		if tm, err := bench.RunTorch(ctx, python, cfg, threads, true); err == nil {
			fmt.Fprintf(w, ", torch %.0f MB (+%.0f MB)", mb(tm.After), mb(tm.After-tm.Before))
		}
	}
	fmt.Fprintln(w)
	return nil
}
