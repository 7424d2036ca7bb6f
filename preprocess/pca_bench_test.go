package preprocess

import "testing"

// BenchmarkPCA times the randomized path at the study's size
// (spots × highly variable genes, 50 components).
func BenchmarkPCA(b *testing.B) {
	n, d, k := 4000, 2000, 50
	x := pcaMatrix(n, d)
	b.ResetTimer()
	for b.Loop() {
		if _, _, _, err := PCA(x, n, d, k); err != nil {
			b.Fatal(err)
		}
	}
}
