package sgemm

import (
	"fmt"
	"testing"
)

func BenchmarkKernelCtx(b *testing.B) {
	for _, cfg := range []struct{ panels, ldc int }{{1, 32}, {32, 32}, {1, 1024}, {32, 1024}, {32, 1040}} {
		b.Run(fmt.Sprintf("panels%d/ldc%d", cfg.panels, cfg.ldc), func(b *testing.B) {
			kb := 288
			ap := make([]float32, kb*12)
			bp := make([]float32, kb*32*cfg.panels)
			c := make([]float32, 12*cfg.ldc+32*cfg.panels)
			for i := 0; i < b.N; i++ {
				jr := i % cfg.panels
				off := jr * 32
				if cfg.ldc == 32 {
					off = 0
				}
				kernel12x32(kb, &ap[0], &bp[jr*kb*32], &c[off], cfg.ldc, true)
			}
			b.ReportMetric(2*float64(kb*12*32)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GF/s")
		})
	}
}
