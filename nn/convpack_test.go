package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestPanelConvMatchesIm2col compares the forward convolution through
// packPanels and sgemm with the im2col + BLAS path on geometries covering
// both panel layouts (output width a multiple of 32; 8 or 16), strides 1–3,
// kernel sizes 1–7, padding, a last panel cut short, and bias.
func TestPanelConvMatchesIm2col(t *testing.T) {
	cases := []struct{ n, c, h, w, o, k, stride, pad int }{
		{2, 3, 64, 64, 8, 3, 1, 1},  // conv4's first layer
		{2, 5, 64, 64, 16, 3, 2, 1}, // ow 32
		{2, 4, 32, 32, 12, 3, 2, 1}, // ow 16: two rows per panel
		{3, 6, 16, 16, 20, 3, 2, 1}, // ow 8: four rows per panel
		{2, 3, 10, 8, 7, 3, 1, 1},   // ow 8, 80 pixels: a half panel
		{2, 2, 9, 96, 5, 3, 1, 1},   // ow 96: three panels per row
		{2, 2, 40, 48, 6, 5, 3, 2},  // stride 3, ow 16
		{2, 3, 64, 64, 4, 7, 2, 3},  // 7×7 stride 2, ow 32
		{2, 8, 16, 16, 9, 1, 1, 0},  // 1×1
		{2, 3, 34, 34, 4, 3, 1, 0},  // no padding, ow 32
		{2, 40, 8, 8, 30, 3, 1, 1},  // deep: several 12-row panels of weights
		{2, 600, 8, 8, 8, 1, 1, 0},  // k = 600 > one packed block
	}
	defer func(v, w bool) { usePanelConv, panelNarrow = v, w }(usePanelConv, panelNarrow)
	panelNarrow = true
	for i, c := range cases {
		for _, bias := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/bias=%v", i, bias), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(i), 7))
				x, w := Const(randT(r, c.n, c.c, c.h, c.w)), Const(randT(r, c.o, c.c, c.k, c.k))
				var b *Var
				if bias {
					b = Const(randT(r, c.o))
				}
				g := newConvGeom(c.c, c.h, c.w, c.k, c.k, c.stride, c.pad)
				usePanelConv = true
				if !g.panelConv(c.n) {
					t.Skip("no panel path on this machine/geometry")
				}
				got := Conv2d(x, w, b, c.stride, c.pad).Value.Data
				usePanelConv = false
				want := Conv2d(x, w, b, c.stride, c.pad).Value.Data
				for j := range want {
					if math.Abs(float64(got[j]-want[j])) > 1e-4*(1+math.Abs(float64(want[j]))) {
						t.Fatalf("y[%d] = %v, want %v", j, got[j], want[j])
					}
				}
			})
		}
	}
}

// TestDotWeightGrad compares the weight gradient of a first-layer
// convolution (K = 27) through sgemm.DotNT with the BLAS path.
func TestDotWeightGrad(t *testing.T) {
	defer func(v bool) { useDotNT = v }(useDotNT)
	r := rand.New(rand.NewPCG(8, 8))
	xt, wt := randT(r, 3, 3, 20, 20), randT(r, 8, 3, 3, 3)
	grads := [2][]float32{}
	for i, on := range []bool{false, true} {
		useDotNT = on
		if on && !dotWeightGrad(8, 27) {
			t.Skip("no DotNT on this machine")
		}
		w := Param(wt.Clone())
		y := Conv2d(Const(xt), w, nil, 1, 1)
		Mean(Mul(y, y)).Backward()
		grads[i] = w.Grad.Data
	}
	for j := range grads[0] {
		if math.Abs(float64(grads[0][j]-grads[1][j])) > 1e-4*(1+math.Abs(float64(grads[0][j]))) {
			t.Fatalf("dW[%d] = %v with DotNT, %v with BLAS", j, grads[1][j], grads[0][j])
		}
	}
}
