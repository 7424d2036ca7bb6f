package sgemm

import (
	"fmt"
	"testing"
)

func BenchmarkDot(b *testing.B) {
	for _, ld := range []int{256, 4096, 4096 + 16} {
		b.Run(fmt.Sprint(ld), func(b *testing.B) {
			a := make([]float32, 4*ld)
			bb := make([]float32, 4*ld)
			out := make([]float32, 256)
			for i := 0; i < b.N; i++ {
				dotNT4x4(256, &a[0], ld, &bb[0], ld, &out[0])
			}
			b.ReportMetric(2*16*256*float64(b.N)/b.Elapsed().Seconds()/1e9, "GF/s")
		})
	}
}

func BenchmarkDotNTConv1(b *testing.B) {
	m, n, k := 32, 27, 4096
	a := make([]float32, m*k)
	bb := make([]float32, n*k)
	c := make([]float32, m*n)
	for i := 0; i < b.N; i++ {
		DotNT(m, n, k, a, k, bb, k, c, n)
	}
	b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GF/s")
}
