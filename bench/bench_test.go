package bench

import (
	"context"
	"testing"
)

// BenchmarkConv4Train profiles one conv4 training step at batch 64:
// go test -run x -bench Conv4Train -cpuprofile cpu.out ./bench/
func BenchmarkConv4Train(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Warmup, cfg.Steps = 1, b.N
	r, err := Run(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.TrainImgS, "train_img/s")
	b.ReportMetric(r.InferImgS, "infer_img/s")
}
