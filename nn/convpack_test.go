package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spotfuse/spotfuse/sgemm"
	"github.com/spotfuse/spotfuse/tensor"
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

// TestWeightGradIgnoresStaleBuffers checks that a convolution's weight
// gradient does not depend on what recycled buffers held: its first
// product assigns into a fresh gradient or chunk sum instead of adding
// to a cleared one, so NaN left in the pool must not leak in. The shapes
// cover one chunk (a parallel GEMM), several chunks summed by addParts
// and the DotNT path of a first layer.
func TestWeightGradIgnoresStaleBuffers(t *testing.T) {
	cases := []struct {
		name             string
		n, c, o, hw, str int
	}{
		{"one group", 1, 8, 16, 6, 1},
		{"chunks", 6, 8, 12, 20, 2},
		{"first layer", 4, 3, 8, 20, 1},
	} // weights of different sizes: each case poisons its own
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 1))
			x := randT(rng, tc.n, tc.c, tc.hw, tc.hw)
			w := Param(randT(rng, tc.o, tc.c, 3, 3))
			gradW := func() []float32 {
				w.Grad = nil
				Sum(Conv2d(Const(x), w, nil, tc.str, 1)).Backward()
				return append([]float32(nil), w.Grad.Data...)
			}
			// The reference: with dY = 1 (a Sum), dW[o,c,ki,kj] is the sum
			// of the input pixels tap (ki, kj) reads, the same for every o.
			oh := (tc.hw+2-3)/tc.str + 1
			want := make([]float32, w.Value.Size())
			for c := 0; c < tc.c; c++ {
				for k := 0; k < 9; k++ {
					var s float64
					for i := 0; i < tc.n; i++ {
						for oi := 0; oi < oh; oi++ {
							for oj := 0; oj < oh; oj++ {
								ii, jj := oi*tc.str-1+k/3, oj*tc.str-1+k%3
								if ii >= 0 && ii < tc.hw && jj >= 0 && jj < tc.hw {
									s += float64(x.Data[((i*tc.c+c)*tc.hw+ii)*tc.hw+jj])
								}
							}
						}
					}
					for o := 0; o < tc.o; o++ {
						want[(o*tc.c+c)*9+k] = float32(s)
					}
				}
			}
			check := func(when string, got []float32) {
				for i := range want {
					if math.Abs(float64(got[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) || got[i] != got[i] {
						t.Fatalf("dW[%d] = %v %s, want %v", i, got[i], when, want[i])
					}
				}
			}
			check("with a clean pool", gradW())
			// Poison the pool with NaN buffers of the length the backward
			// asks for (the weight gradient's and each chunk's).
			nan := float32(math.NaN())
			for range 16 {
				b := make([]float32, w.Value.Size())
				for i := range b {
					b[i] = nan
				}
				putBuf(b)
			}
			check("after NaN buffers were recycled", gradW())
		})
	}
}

// TestShiftConvMatchesIm2col compares convolutions of small maps computed
// tap by tap (shiftConv2d) with the im2col path: outputs, the gradients of
// the input, the weights and the bias, and the inference epilogue, on maps
// from 1×1 (only the centre tap reads inside) to 4×4, a map that is not
// square, a 5×5 kernel and one and several threads; and checks the
// gradients of the tap-by-tap path against finite differences.
func TestShiftConvMatchesIm2col(t *testing.T) {
	cases := []struct{ n, c, h, w, o, k int }{
		{3, 4, 1, 1, 5, 3},
		{4, 6, 2, 2, 7, 3},
		{2, 5, 3, 3, 4, 3},
		{5, 3, 4, 4, 6, 3},
		{3, 4, 2, 4, 5, 3},
		{2, 3, 4, 4, 4, 5},
		{64, 16, 2, 2, 24, 3}, // resnet18's last stage, narrowed
	}
	defer func(m int) { shiftMaxPixels = m }(shiftMaxPixels)
	defer tensor.SetThreads(tensor.Threads())
	for i, c := range cases {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("%d/threads=%d", i, threads), func(t *testing.T) {
				tensor.SetThreads(threads)
				r := rand.New(rand.NewPCG(uint64(i), 11))
				x, w, b := Param(randT(r, c.n, c.c, c.h, c.w)), Param(randT(r, c.o, c.c, c.k, c.k)), Param(randT(r, c.o))
				seed := randT(r, c.n, c.o, c.h, c.w)
				run := func(maxPixels int) [][]float32 {
					shiftMaxPixels = maxPixels
					if got := newConvGeom(c.c, c.h, c.w, c.k, c.k, 1, c.k/2).shiftConv(); got != (maxPixels > 0) {
						t.Fatalf("shiftConv = %v with shiftMaxPixels %d", got, maxPixels)
					}
					for _, p := range []*Var{x, w, b} {
						p.ZeroGrad()
					}
					y := Conv2d(x, w, b, 1, c.k/2)
					y.BackwardFrom(seed)
					// Inference with a folded BatchNorm and ReLU.
					ep := &epilogue{scale: make([]float32, c.o), shift: make([]float32, c.o), relu: true}
					for j := range ep.scale {
						ep.scale[j], ep.shift[j] = 0.5+float32(j)/8, float32(j%3)-1
					}
					var folded []float32
					NoGrad(func() { folded = conv2d(Const(x.Value), Const(w.Value), nil, 1, c.k/2, ep, false).Value.Data })
					return [][]float32{y.Value.Data, x.Grad.Data, w.Grad.Data, b.Grad.Data, folded}
				}
				got, want := run(16), run(0)
				for k, name := range []string{"y", "dx", "dw", "db", "folded y"} {
					for j := range want[k] {
						if math.Abs(float64(got[k][j]-want[k][j])) > 1e-4*(1+math.Abs(float64(want[k][j]))) {
							t.Fatalf("%s[%d] = %v tap by tap, %v through im2col", name, j, got[k][j], want[k][j])
						}
					}
				}
				if c.n <= 5 {
					shiftMaxPixels = 16
					checkGrads(t, []*Var{x, w, b}, func() *Var { return Conv2d(x, w, b, 1, c.k/2) })
				}
			})
		}
	}
}

// TestGatherMatchesIm2col compares convolutions whose column matrix is
// gathered straight into sgemm's panels (colT: the forward product's
// packCols outside the panel path, the weight gradient's pack) with the
// ones through im2col and a copying or transposing pack: the panels hold
// the same values and sgemm sums each element in a fixed order, so the
// output and the gradients must agree to the bit. The geometries cover
// stride 1–3, kernels 1–7, windows crossing every border (the bottom and
// right ones too: odd sizes), images grouped side by side (narrow
// outputs), a last panel of fewer than 32 columns or pixels and more than
// one packed block of pixels; the input gradient, whose product uses the
// weights packed once per call, is compared too.
func TestGatherMatchesIm2col(t *testing.T) {
	cases := []struct{ n, c, h, w, o, k, stride, pad int }{
		{4, 32, 64, 64, 64, 3, 2, 1}, // conv4's second layer: P = 1024, two blocks
		{4, 8, 32, 32, 16, 3, 2, 1},  // ow 16, K = 72
		{8, 16, 16, 16, 24, 3, 2, 1}, // ow 8: four images per group
		{4, 8, 15, 13, 12, 3, 2, 1},  // odd sizes: windows cross the bottom and right
		{4, 8, 12, 12, 8, 3, 1, 1},   // stride 1
		{4, 3, 23, 23, 8, 7, 2, 3},   // 7×7 stride 2 (resnet's stem), K = 147
		{4, 4, 17, 11, 6, 5, 3, 2},   // stride 3, 5×5
		{4, 80, 8, 8, 16, 1, 2, 0},   // 1×1 stride 2 (a downsampling shortcut)
		{3, 9, 10, 10, 5, 3, 1, 0},   // no padding
	}
	defer func(v, f bool) { useGatherGrad, useGatherForward = v, f }(useGatherGrad, useGatherForward)
	defer tensor.SetThreads(tensor.Threads())
	tensor.SetThreads(2)
	for i, c := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			g := newConvGeom(c.c, c.h, c.w, c.k, c.k, c.stride, c.pad)
			useGatherGrad, useGatherForward = true, true
			if !sgemm.Available() {
				t.Skip("no sgemm micro-kernel on this machine")
			}
			if !g.gatherGrad(c.o) || g.shiftConv() {
				t.Fatal("the case does not take the gathered weight gradient")
			}
			r := rand.New(rand.NewPCG(uint64(i), 9))
			xt, wt, dyt := randT(r, c.n, c.c, c.h, c.w), randT(r, c.o, c.c, c.k, c.k), randT(r, c.n, c.o, g.oh, g.ow)
			var y, gw, gx [2][]float32
			for j, on := range []bool{true, false} {
				useGatherGrad, useGatherForward = on, on
				x, w := Param(xt.Clone()), Param(wt.Clone())
				out := Conv2d(x, w, nil, c.stride, c.pad)
				Sum(Mul(out, Const(dyt))).Backward()
				y[j], gw[j], gx[j] = out.Value.Data, w.Grad.Data, x.Grad.Data
			}
			for j := range y[0] {
				if y[0][j] != y[1][j] {
					t.Fatalf("y[%d] = %v gathered, %v through im2col", j, y[0][j], y[1][j])
				}
			}
			for j := range gw[0] {
				if gw[0][j] != gw[1][j] {
					t.Fatalf("dW[%d] = %v gathered, %v through im2col", j, gw[0][j], gw[1][j])
				}
			}
			for j := range gx[0] {
				if gx[0][j] != gx[1][j] {
					t.Fatalf("dX[%d] = %v gathered, %v through im2col", j, gx[0][j], gx[1][j])
				}
			}
		})
	}
}

// TestColTPacksIm2col checks the panels colT gathers (assembly and Go
// loop) against im2col's column matrix, transposed (pack, also mapping an
// unstored BatchNorm output as it gathers) and as it is (packCols): for blocks of pixels and columns that start anywhere (pixels
// at a multiple of 32 for packCols), with a last panel cut short, on
// images grouped side by side.
func TestColTPacksIm2col(t *testing.T) {
	cases := []struct{ nb, c, h, w, k, stride, pad int }{
		{1, 4, 9, 9, 3, 2, 1},
		{3, 5, 7, 6, 3, 1, 1},
		{2, 3, 13, 11, 7, 2, 3},
		{2, 6, 8, 8, 1, 2, 0},
		{2, 2, 12, 10, 5, 3, 2},
	}
	for i, c := range cases {
		g := newConvGeom(c.c, c.h, c.w, c.k, c.k, c.stride, c.pad)
		r := rand.New(rand.NewPCG(uint64(i), 10))
		x := randT(r, c.nb, c.c, c.h, c.w).Data
		K, P := g.rows(), g.cols()
		ld := c.nb * P
		col := make([]float32, K*ld)
		for j := range c.nb {
			g.im2col(col[j*P:], ld, x[j*c.c*c.h*c.w:])
		}
		// An unstored BatchNorm output over x: pack maps what it gathers;
		// the reference is the column matrix of the mapped images.
		aff := &channelAffine{src: x, scale: randVec(r, c.c), shift: randVec(r, c.c), relu: i%2 == 0, c: c.c, inner: c.h * c.w}
		y := aff.images(make([]float32, len(x)), 0, c.nb)
		afCol := make([]float32, K*ld)
		for j := range c.nb {
			g.im2col(afCol[j*P:], ld, y[j*c.c*c.h*c.w:])
		}
		withSIMD(t, func(t *testing.T, simd bool) {
			for _, blk := range [][4]int{{0, 0, ld, K}, {1, 3, ld - 2, K - 5}, {ld / 2, 17, ld - ld/2, min(40, K-17)}} {
				pc, jc, kb, nb := blk[0], blk[1], blk[2], blk[3]
				if nb <= 0 || kb <= 0 {
					continue
				}
				// packCols: rows [jc, jc+nb) of col, pixels from a
				// multiple of 32.
				q0 := pc / 32 * 32
				cols := (ld - q0 + 31) / 32 * 32
				fwd := make([]float32, cols*nb)
				g.newColT(x, c.nb, nil).packCols(fwd, jc, q0, nb, ld-q0)
				for jr := 0; jr < cols; jr += 32 {
					for p := range nb {
						for l := range 32 {
							got, want := fwd[jr*nb+32*p+l], float32(0)
							if q0+jr+l < ld {
								want = col[(jc+p)*ld+q0+jr+l]
							}
							if got != want {
								t.Fatalf("case %d simd %v block %v: packCols row %d pixel %d = %v, want %v", i, simd, blk, jc+p, q0+jr+l, got, want)
							}
						}
					}
				}
				panels := (nb + 31) / 32
				for _, af := range []*channelAffine{nil, aff} {
					want := col
					if af != nil {
						want = afCol
					}
					dst := make([]float32, panels*32*kb)
					g.newColT(x, c.nb, af).pack(dst, pc, jc, kb, nb)
					for jr := 0; jr < panels*32; jr += 32 {
						for p := range kb {
							for l := range 32 {
								got, w := dst[jr*kb+32*p+l], float32(0)
								if jr+l < nb {
									w = want[(jc+jr+l)*ld+pc+p]
								}
								if math.Float32bits(got) != math.Float32bits(w) {
									t.Fatalf("case %d simd %v affine %v block %v: pixel %d column %d = %v, want %v", i, simd, af != nil, blk, pc+p, jc+jr+l, got, w)
								}
							}
						}
					}
				}
			}
		})
	}
}

// TestGradChunks checks the chunks of a convolution's weight gradient:
// they cover the groups in order, shrink (the last ones single groups when
// the partial sums are small), and stay few enough that their partial sums
// fit in about 8 MB.
func TestGradChunks(t *testing.T) {
	defer tensor.SetThreads(tensor.Threads())
	for _, tc := range []struct{ groups, size, threads int }{
		{64, 64 * 288, 2}, {16, 256 * 1152, 2}, {64, 32 * 27, 2}, {2, 10, 2}, {200, 512 * 4608, 2}, {64, 64 * 288, 3}, {5, 100, 8},
	} {
		tensor.SetThreads(tc.threads)
		b := gradChunks(tc.groups, tc.size)
		if b[0] != 0 || b[len(b)-1] != tc.groups {
			t.Fatalf("%+v: bounds %v do not cover the groups", tc, b)
		}
		for i := 1; i < len(b); i++ {
			if b[i] <= b[i-1] || (i > 1 && b[i]-b[i-1] > b[i-1]-b[i-2]) {
				t.Fatalf("%+v: bounds %v: an empty or growing chunk", tc, b)
			}
		}
		chunks := len(b) - 1
		if most := max(2*tc.threads, (2<<20)/tc.size); chunks > most && chunks > 1 && b[1]-b[0] > 1 {
			t.Errorf("%+v: %d chunks, more than %d", tc, chunks, most)
		}
		if small := (2<<20)/tc.size >= tc.groups; small && b[len(b)-1]-b[len(b)-2] != 1 {
			t.Errorf("%+v: bounds %v: the last chunk is not a single group", tc, b)
		}
	}
}
