package pretrain

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spotfuse/spotfuse/internal/testutil"
	"github.com/spotfuse/spotfuse/models"
	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/patch"
	"github.com/spotfuse/spotfuse/section"
	"github.com/spotfuse/spotfuse/tensor"
)

// Kill-and-resume: the test binary re-executes itself as a child that
// trains a tiny model on the committed fixtures (TestResumeChild, selected
// by the environment), is SIGKILLed after its first checkpoint appears,
// and is started again on the same directory. The resumed run must end
// with weights byte-identical to an uninterrupted child's.

const (
	childEnv     = "SPOTFUSE_RESUME_CHILD" // "image" or "expr"
	childDirEnv  = "SPOTFUSE_RESUME_DIR"
	resumeSteps  = 60
	resumeCkpt   = 10
	stepDelayEnv = "SPOTFUSE_RESUME_DELAY_MS" // slows each step so the kill lands mid-run
)

// slowReporter sleeps after every step.
type slowReporter struct{ delay time.Duration }

func (r slowReporter) Start(string, int) {}
func (r slowReporter) Add(int)           { time.Sleep(r.delay) }
func (r slowReporter) Finish()           {}

// TestResumeChild is the child process; it does nothing in a normal run.
func TestResumeChild(t *testing.T) {
	kind := os.Getenv(childEnv)
	if kind == "" {
		t.Skip("child of TestKillAndResume only")
	}
	tensor.SetThreads(1)
	dir := os.Getenv(childDirEnv)
	ms, _ := strconv.Atoi(os.Getenv(stepDelayEnv))
	prog := slowReporter{time.Duration(ms) * time.Millisecond}
	root := testutil.RepoRoot(t)
	loop := LoopConfig{Steps: resumeSteps, Batch: 8, CheckpointEvery: resumeCkpt, LogEvery: 20, LR: 3e-3,
		WeightDecay: 1e-4, Warmup: 0.1, ClipNorm: 5, Seed: 7, Dir: dir}
	ctx := context.Background()
	switch kind {
	case "image":
		sec, err := section.Open(filepath.Join(root, "testdata", "visium", "A1_sub"), section.Options{})
		if err != nil {
			t.Fatal(err)
		}
		set, err := patch.Extract(ctx, sec, patch.Options{Size: 16})
		if err != nil {
			t.Fatal(err)
		}
		var pix [][]uint8
		for _, p := range set.Pix {
			if p != nil {
				pix = append(pix, p)
			}
		}
		cfg := ImageConfig{Encoder: models.ImageEncoderConfig{Width: 4, Depth: 2},
			Tasks: map[string]float64{TaskInpaint: 1, TaskContrastive: 1}, Loop: loop}
		enc, _, err := TrainImage(ctx, pix[:32], 16, pix[32:], cfg, prog)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.Save(filepath.Join(dir, "final.safetensors")); err != nil {
			t.Fatal(err)
		}
	case "expr":
		sec, err := section.Open(filepath.Join(root, "testdata", "visium", "A1_sub"), section.Options{})
		if err != nil {
			t.Fatal(err)
		}
		d, err := BuildExprData([]*section.Section{sec}, ExprDataOptions{HVG: 20})
		if err != nil {
			t.Fatal(err)
		}
		cfg := ExprConfig{Task: "nbvae", Latent: 4, Hidden: 16, Dropout: 0.1, Norm: "layer", KLWarmup: 0.5, HeldOut: 0.1, Loop: loop}
		enc, _, err := TrainExpression(ctx, d, cfg, prog)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.Save(filepath.Join(dir, "final.safetensors"), nil); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown child kind %q", kind)
	}
}

// startChild starts the child training into dir.
func startChild(t *testing.T, kind, dir string, delayMS int) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestResumeChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+kind, childDirEnv+"="+dir, fmt.Sprintf("%s=%d", stepDelayEnv, delayMS))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// checkpointStep returns the step recorded in dir's checkpoint (0 if none).
func checkpointStep(t *testing.T, dir string) int {
	t.Helper()
	_, meta, err := nn.LoadSafetensors(filepath.Join(dir, CheckpointFile))
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatalf("checkpoint left by the killed run does not load: %v", err)
	}
	n, _ := strconv.Atoi(meta["step"])
	return n
}

func TestKillAndResume(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("in the child")
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	for _, kind := range []string{"image", "expr"} {
		t.Run(kind, func(t *testing.T) {
			whole := t.TempDir()
			cmd, out := startChild(t, kind, whole, 0)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("uninterrupted run: %v\n%s", err, out)
			}
			want, err := os.ReadFile(filepath.Join(whole, "final.safetensors"))
			if err != nil {
				t.Fatal(err)
			}

			dir := t.TempDir()
			ckpt := filepath.Join(dir, CheckpointFile)
			// Kill twice: after the first checkpoint, then after a later one.
			for _, after := range []int{resumeCkpt, 3 * resumeCkpt} {
				cmd, out := startChild(t, kind, dir, 15)
				deadline := time.Now().Add(60 * time.Second)
				for checkpointStepQuiet(ckpt) < after {
					if time.Now().After(deadline) {
						cmd.Process.Kill()
						t.Fatalf("no checkpoint at step %d within 60 s\n%s", after, out)
					}
					time.Sleep(2 * time.Millisecond)
				}
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				err := cmd.Wait()
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
					t.Fatalf("child was not killed (it finished first: %v); slow it down\n%s", err, out)
				}
				step := checkpointStep(t, dir)
				if step >= resumeSteps {
					t.Fatalf("killed run already finished (checkpoint at step %d)", step)
				}
				if _, err := os.Stat(filepath.Join(dir, "final.safetensors")); err == nil {
					t.Fatal("killed run wrote its final weights")
				}
				t.Logf("killed at checkpoint step %d of %d", step, resumeSteps)
			}
			cmd, out = startChild(t, kind, dir, 0)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("resumed run: %v\n%s", err, out)
			}
			if !bytes.Contains(out.Bytes(), []byte("resuming")) {
				t.Errorf("the second run did not resume from the checkpoint:\n%s", out)
			}
			got, err := os.ReadFile(filepath.Join(dir, "final.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("final weights after kill and resume differ from the uninterrupted run (%d vs %d bytes)", len(got), len(want))
			}
			// No temporary files are left behind by atomic writes that finished.
			left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
			if len(left) > 2 { // at most one per kill
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// checkpointStepQuiet is checkpointStep for polling: any error reads as 0.
func checkpointStepQuiet(path string) int {
	_, meta, err := nn.LoadSafetensors(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(meta["step"])
	return n
}

// TestDivergenceStops forces non-finite losses through the real training
// entry points (a learning rate far too high, NaN in the input) and checks
// that training stops with an error naming the step and the likely cause,
// and that no checkpoint holds a non-finite weight.
func TestDivergenceStops(t *testing.T) {
	root := testutil.RepoRoot(t)
	sec, err := section.Open(filepath.Join(root, "testdata", "visium", "A1_sub"), section.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := BuildExprData([]*section.Section{sec}, ExprDataOptions{HVG: 20})
	if err != nil {
		t.Fatal(err)
	}
	loop := LoopConfig{Steps: 200, Batch: 8, CheckpointEvery: 1, LogEvery: 50, Seed: 3}
	for _, tc := range []struct {
		name string
		lr   float64
		edit func(d *ExprData)
		want []string
	}{
		{"learning rate 1e30", 1e30, nil, []string{"step ", "not finite", "lower LR"}},
		{"NaN expression value", 1e-3, func(d *ExprData) { d.X[5] = float32(math.NaN()) }, []string{"NaN"}},
		{"infinite count", 1e-3, func(d *ExprData) { d.Counts[7] = float32(math.Inf(1)) }, []string{"Inf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dd := *d
			dd.X = slices.Clone(d.X)
			dd.Counts = slices.Clone(d.Counts)
			if tc.edit != nil {
				tc.edit(&dd)
			}
			l := loop
			l.LR, l.Dir = tc.lr, t.TempDir()
			cfg := ExprConfig{Task: "nbvae", Latent: 4, Hidden: 16, Norm: "layer", Loop: l}
			_, _, err := TrainExpression(context.Background(), &dd, cfg, nil)
			if err == nil {
				t.Fatal("training did not stop")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			ts, _, lerr := nn.LoadSafetensors(filepath.Join(l.Dir, CheckpointFile))
			if lerr != nil {
				return // stopped before the first checkpoint
			}
			for name, x := range ts {
				for _, v := range x.Data {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("checkpoint tensor %q holds %v", name, v)
					}
				}
			}
		})
	}
}
