package nn

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// withSIMD runs fn with the assembly kernels on and off (when present).
func withSIMD(t *testing.T, fn func(t *testing.T, simd bool)) {
	t.Helper()
	saved := useAVX512
	defer func() { useAVX512 = saved }()
	modes := []bool{false}
	if saved {
		modes = append(modes, true)
	}
	for _, m := range modes {
		useAVX512 = m
		fn(t, m)
	}
}

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
		if i%7 == 3 {
			v[i] = 0 // exact zeros exercise the ReLU masks
		}
	}
	return v
}

// TestKernelsAgree checks every assembly kernel against its Go loop on
// lengths around the 16-lane chunks: element-wise kernels bit for bit, sums
// within float32 rounding.
func TestKernelsAgree(t *testing.T) {
	if !useAVX512 {
		t.Skip("no assembly kernels on this machine/build")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{16, 17, 31, 32, 33, 47, 64, 100, 128, 129, 1000, 4096} {
		x, y, dy := randVec(r, n), randVec(r, n), randVec(r, n)
		for i := range y {
			y[i] = relu32(y[i]) // a ReLU output
		}
		for _, relu := range []bool{false, true} {
			a, b := make([]float32, n), make([]float32, n)
			affineIntoGo(a, x, 1.5, -0.25, relu)
			affineInto(b, x, 1.5, -0.25, relu)
			sameBits(t, "affine", n, a, b)
			// Streamed: on a 64-byte aligned output (non-temporal stores)
			// and one 4 bytes off it (ordinary ones).
			buf := make([]float32, n+32)
			off := int((64 - uintptr(unsafe.Pointer(&buf[0]))%64) % 64 / 4)
			for _, o := range []int{off, off + 1} {
				c := buf[o : o+n]
				affineStream(c, x, 1.5, -0.25, relu)
				sameBits(t, "affineStream", n, a, c)
			}

			s1, q1 := bnGradSumsGo(dy, x, 0.3, 1.5, -0.25, relu)
			s2, q2 := bnGradSums(dy, x, 0.3, 1.5, -0.25, relu)
			near(t, "bnGradSums", n, s1, s2)
			near(t, "bnGradSums", n, q1, q2)
			for _, fresh := range []bool{false, true} {
				a, b := append([]float32(nil), x...), append([]float32(nil), x...)
				bnGradInputGo(a, dy, x, 0.3, 1.1, -0.7, 0.05, 1.5, -0.25, relu, fresh)
				bnGradInput(b, dy, x, 0.3, 1.1, -0.7, 0.05, 1.5, -0.25, relu, fresh)
				sameBits(t, "bnGradInput", n, a, b)
			}
		}
		idx := make([]int32, n)
		for i := range idx {
			idx[i] = int32(r.IntN(n+3)) - 3 // some padding (−1…−3)
		}
		a, b := make([]float32, n), make([]float32, n)
		saved := useAVX512
		useAVX512 = false
		gatherIdx(a, x, idx)
		useAVX512 = saved
		gatherIdx(b, x, idx)
		sameBits(t, "gatherIdx", n, a, b)
		{ // AdamW: bit-identical to the Go loop
			w1, m1, v1 := append([]float32(nil), x...), append([]float32(nil), y...), append([]float32(nil), y...)
			for i := range v1 {
				v1[i] *= v1[i]
			}
			w2, m2, v2 := append([]float32(nil), w1...), append([]float32(nil), m1...), append([]float32(nil), v1...)
			adamwGo(w1, dy, m1, v1, 0.999, 0.9, 0.999, 0.3, 1e-8, 0.01)
			adamw(w2, dy, m2, v2, 0.999, 0.9, 0.999, 0.3, 1e-8, 0.01)
			sameBits(t, "adamw w", n, w1, w2)
			sameBits(t, "adamw m", n, m1, m2)
			sameBits(t, "adamw v", n, v1, v2)
		}
		{ // scatter-add over rows of distinct indices (some negative)
			rowLen := 1 + n%21
			rows := n / rowLen
			sidx := make([]int32, rows*rowLen)
			for r := 0; r < rows; r++ {
				perm := rand.New(rand.NewPCG(uint64(r), 1)).Perm(n)
				for q := 0; q < rowLen; q++ {
					sidx[r*rowLen+q] = int32(perm[q])
					if q%5 == 4 {
						sidx[r*rowLen+q] = -1
					}
				}
			}
			a, b := append([]float32(nil), y...), append([]float32(nil), y...)
			saved := useAVX512
			useAVX512 = false
			scatterAddIdx(a, x, sidx, rowLen)
			useAVX512 = saved
			scatterAddIdx(b, x, sidx, rowLen)
			sameBits(t, "scatterAddIdx", n, a, b)
		}
		s1, q1 := shiftedSumsGo(x, 0.5)
		s2, q2 := shiftedSums(x, 0.5)
		near(t, "shiftedSums", n, s1, s2)
		near(t, "shiftedSums", n, q1, q2)
	}
}

// TestStridedRows checks the strided row copy and its adjoint against
// plain loops for strides 1–3, widths around the chunk size and row
// strides that leave gaps, on both kernel sets; guard values after each
// row must stay untouched.
func TestStridedRows(t *testing.T) {
	withSIMD(t, func(t *testing.T, simd bool) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, s := range []int{1, 2, 3} {
			for _, n := range []int{1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 64} {
				rows := 3
				ss, ds := s*n+5, n+3
				src := randVec(r, (rows-1)*ss+s*(n-1)+1)
				dst := randVec(r, (rows-1)*ds+n+1)
				want := append([]float32(nil), dst...)
				for i := 0; i < rows; i++ {
					for j := 0; j < n; j++ {
						want[i*ds+j] = src[i*ss+s*j]
					}
				}
				stridedRows(dst, ds, src, ss, s, rows, n)
				sameBits(t, "stridedRows", s*1000+n, want, dst)

				// adjoint: the destination is the strided one
				big := randVec(r, (rows-1)*ss+s*(n-1)+2)
				add := randVec(r, (rows-1)*ds+n)
				want = append([]float32(nil), big...)
				for i := 0; i < rows; i++ {
					for j := 0; j < n; j++ {
						want[i*ss+s*j] += add[i*ds+j]
					}
				}
				stridedRowsAdd(big, ss, add, ds, s, rows, n)
				for i := range want {
					if want[i] != big[i] && !(want[i] == 0 && big[i] == 0) {
						t.Fatalf("simd %v stridedRowsAdd s=%d n=%d: [%d] = %v, want %v", simd, s, n, i, big[i], want[i])
					}
				}
			}
		}
	})
}

func sameBits(t *testing.T, what string, n int, want, got []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			t.Fatalf("%s n=%d: [%d] = %v, want %v", what, n, i, got[i], want[i])
		}
	}
}

func near(t *testing.T, what string, n int, want, got float64) {
	t.Helper()
	if math.Abs(want-got) > 1e-5*(1+math.Abs(want))*math.Sqrt(float64(n)) {
		t.Fatalf("%s n=%d: %v, want %v", what, n, got, want)
	}
}

// TestIm2colReference compares im2col with a direct gather and col2im with
// its adjoint (⟨col2im(c), x⟩ = ⟨c, im2col(x)⟩) on geometries whose rows
// span several 16-lane chunks, with and without the assembly kernels.
func TestIm2colReference(t *testing.T) {
	geoms := []convGeom{
		newConvGeom(3, 64, 64, 3, 3, 1, 1),
		newConvGeom(2, 64, 64, 3, 3, 2, 1),
		newConvGeom(2, 16, 16, 3, 3, 2, 1),
		newConvGeom(2, 33, 70, 3, 3, 2, 1),
		newConvGeom(2, 20, 41, 3, 3, 3, 1),
		newConvGeom(1, 19, 35, 7, 7, 2, 3),
		newConvGeom(2, 9, 40, 1, 1, 1, 0),
	}
	withSIMD(t, func(t *testing.T, simd bool) {
		r := rand.New(rand.NewPCG(5, 6))
		for gi, g := range geoms {
			K, P := g.rows(), g.cols()
			x := randVec(r, g.c*g.h*g.w)
			col := randVec(r, K*P) // garbage: every element must be written
			g.im2col(col, P, x)
			row := 0
			for ci := 0; ci < g.c; ci++ {
				for ki := 0; ki < g.kh; ki++ {
					for kj := 0; kj < g.kw; kj++ {
						for oi := 0; oi < g.oh; oi++ {
							for oj := 0; oj < g.ow; oj++ {
								ii, jj := oi*g.stride-g.pad+ki, oj*g.stride-g.pad+kj
								want := float32(0)
								if ii >= 0 && ii < g.h && jj >= 0 && jj < g.w {
									want = x[(ci*g.h+ii)*g.w+jj]
								}
								if got := col[row*P+oi*g.ow+oj]; got != want {
									t.Fatalf("simd %v geom %d: col[%d,%d,%d] = %v, want %v", simd, gi, row, oi, oj, got, want)
								}
							}
						}
						row++
					}
				}
			}
			c := randVec(r, K*P)
			dx := randVec(r, len(x))
			g.col2im(dx, c, P, true)
			var lhs, rhs float64
			for i := range x {
				lhs += float64(dx[i]) * float64(x[i])
			}
			for i := range c {
				rhs += float64(c[i]) * float64(col[i])
			}
			if math.Abs(lhs-rhs) > 1e-3*(1+math.Abs(rhs)) {
				t.Fatalf("simd %v geom %d: <col2im(c), x> = %v, <c, im2col(x)> = %v", simd, gi, lhs, rhs)
			}
		}
	})
}

// TestMaxPoolSIMD compares ResNet's 3×3/2/1 max pooling through the
// assembly kernels with the Go loops: values, and the gradient routed to
// the first maximum, on maps with ties, ±0, −Inf and NaN.
func TestMaxPoolSIMD(t *testing.T) {
	if !useAVX512 {
		t.Skip("no assembly kernels on this machine/build")
	}
	r := rand.New(rand.NewPCG(9, 9))
	for _, hw := range [][2]int{{2, 2}, {4, 6}, {32, 32}, {8, 40}, {6, 34}} {
		xt := randT(r, 2, 3, hw[0], hw[1])
		for i := range xt.Data {
			switch i % 23 {
			case 3:
				xt.Data[i] = 1 // ties
			case 7:
				xt.Data[i] = float32(math.Copysign(0, -1))
			case 11:
				xt.Data[i] = float32(math.Inf(-1))
			}
			if i == 40 {
				xt.Data[i] = float32(math.NaN())
			}
		}
		var vals, grads [2][]float32
		for m, simd := range []bool{false, true} {
			saved := useAVX512
			useAVX512 = simd
			x := Param(xt.Clone())
			y := MaxPool2dPad(x, 3, 2, 1)
			seed := randT(rand.New(rand.NewPCG(1, 1)), y.Value.Shape...)
			y.BackwardFrom(seed)
			vals[m], grads[m] = y.Value.Data, x.Grad.Data
			useAVX512 = saved
		}
		for i := range vals[0] {
			a, b := vals[0][i], vals[1][i]
			if a != b && !(a != a && b != b) {
				t.Fatalf("%v: y[%d] = %v with SIMD, %v without", hw, i, b, a)
			}
		}
		sameBits(t, "maxpool grad", hw[0]*hw[1], grads[0], grads[1])
	}
}

// TestPlaneSums checks BatchNorm's per-channel sums over planes of several
// sizes (small planes share the AVX-512 lanes) against float64 loops.
func TestPlaneSums(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, inner := range []int{1, 4, 15, 16, 64, 127, 128, 300} {
		for _, n := range []int{1, 3, 64, 200} {
			x := make([]float32, n*inner)
			dy := make([]float32, n*inner)
			for i := range x {
				x[i] = float32(r.NormFloat64()) + 2
				dy[i] = float32(r.NormFloat64())
			}
			var ws, wq, gs, gq float64
			for i := range n {
				a, b := shiftedSumsGo(x[i*inner:(i+1)*inner], 1.5)
				ws, wq = ws+a, wq+b
				a, b = bnGradSumsGo(dy[i*inner:(i+1)*inner], x[i*inner:(i+1)*inner], 2, 0.7, -1, true)
				gs, gq = gs+a, gq+b
			}
			s, q := planeSums(n, inner, func(l *[64]float32, i int) {
				shiftedSumsAVX(&x[i*inner], inner, 1.5, &l[0])
			}, func(i int) (float64, float64) { return shiftedSums(x[i*inner:(i+1)*inner], 1.5) })
			near(t, "planeSums shifted", n*inner, ws, s)
			near(t, "planeSums shifted squares", n*inner, wq, q)
			s, q = planeSums(n, inner, func(l *[64]float32, i int) {
				bnGradSumsAVX(&dy[i*inner], &x[i*inner], inner, 2, 0.7, -1, true, &l[0])
			}, func(i int) (float64, float64) {
				return bnGradSums(dy[i*inner:(i+1)*inner], x[i*inner:(i+1)*inner], 2, 0.7, -1, true)
			})
			near(t, "planeSums grad", n*inner, gs, s)
			near(t, "planeSums grad·x", n*inner, gq, q)
		}
	}
}
