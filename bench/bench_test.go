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

// TestParseCPUTicks reads the aggregate line of /proc/stat and rejects
// anything else.
func TestParseCPUTicks(t *testing.T) {
	for _, tc := range []struct {
		stat         string
		total, steal int64
		ok           bool
	}{
		{"cpu  2240826 955 208579 881420 6378 0 5852 3910 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n", 3347920, 3910, true},
		{"cpu 1 2 3 4 5 6 7 8", 36, 8, true},
		{"cpu0 1 2 3 4 5 6 7 8 0 0", 0, 0, false},
		{"cpu 1 2 3", 0, 0, false},
		{"cpu 1 2 3 4 5 6 7 x 0 0", 0, 0, false},
		{"", 0, 0, false},
	} {
		got, err := parseCPUTicks(tc.stat)
		if (err == nil) != tc.ok {
			t.Errorf("%q: error %v, want ok=%v", tc.stat, err, tc.ok)
			continue
		}
		if tc.ok && (got.Total != tc.total || got.Steal != tc.steal) {
			t.Errorf("%q: %+v, want total %d steal %d", tc.stat, got, tc.total, tc.steal)
		}
	}
	if s := StealShare(CPUTicks{100, 10}, CPUTicks{300, 60}); s != 0.25 {
		t.Errorf("StealShare = %v, want 0.25", s)
	}
}
