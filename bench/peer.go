package bench

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

//go:embed torch_peer.py
var torchPeer []byte

// TorchResult is what torch_peer.py reports.
type TorchResult struct {
	Version   string  `json:"torch"`
	Threads   int     `json:"threads"`
	TrainImgS float64 `json:"train_img_s"`
	InferImgS float64 `json:"infer_img_s"`
	Before    int64   `json:"before"` // peak RSS (bytes) in --mem-probe mode
	After     int64   `json:"after"`
}

// RunTorch runs the embedded torch_peer.py with python on cfg and the given
// thread count; memProbe selects the peak-memory mode.
func RunTorch(ctx context.Context, python string, cfg Config, threads int, memProbe bool) (TorchResult, error) {
	dir, err := os.MkdirTemp("", "spotfuse-bench-")
	if err != nil {
		return TorchResult{}, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "torch_peer.py")
	if err := os.WriteFile(script, torchPeer, 0o644); err != nil {
		return TorchResult{}, err
	}
	args := []string{script, "--model", cfg.Model, "--batch", strconv.Itoa(cfg.Batch), "--size", strconv.Itoa(cfg.Size),
		"--classes", strconv.Itoa(cfg.Classes), "--warmup", strconv.Itoa(cfg.Warmup), "--steps", strconv.Itoa(cfg.Steps),
		"--threads", strconv.Itoa(threads)}
	if memProbe {
		args = append(args, "--mem-probe")
	}
	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return TorchResult{}, fmt.Errorf("bench: %s torch_peer.py: %w", python, err)
	}
	var r TorchResult
	if err := json.Unmarshal(out, &r); err != nil {
		return TorchResult{}, fmt.Errorf("bench: torch_peer.py printed %q: %w", out, err)
	}
	return r, nil
}
