package bench

import (
	"context"
	"testing"
)

// BenchmarkConv4Train times conv4 training steps (and twice as many
// inference passes) at batch 64. Test binaries keep the environment, so set
// the OpenBLAS kernels the spotfuse binary would pick (tensor.WantCoreType):
//
//	OPENBLAS_CORETYPE=SkylakeX go test -run x -bench Conv4Train -cpuprofile cpu.out ./bench/
//
// or profile the real command: spotfuse bench --cpuprofile cpu.out.
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
