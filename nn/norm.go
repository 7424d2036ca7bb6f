package nn

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/spotfuse/spotfuse/tensor"
)

// BatchNorm normalises x [N,C] or [N,C,H,W] per channel (axis 1), then
// scales by gamma [C] and shifts by beta [C]. In training it uses the batch
// statistics and updates runMean/runVar in place (runVar with the unbiased
// variance, momentum as in torch: r = (1−m)·r + m·batch); in evaluation it
// uses runMean/runVar. gamma and beta may be nil (no affine transform).
func BatchNorm(x, gamma, beta *Var, runMean, runVar *tensor.Tensor, momentum, eps float32, train bool) *Var {
	return batchNorm(x, gamma, beta, runMean, runVar, momentum, eps, train, false, false)
}

// BatchNormReLU is ReLU(BatchNorm(...)) computed in one pass over memory.
func BatchNormReLU(x, gamma, beta *Var, runMean, runVar *tensor.Tensor, momentum, eps float32, train bool) *Var {
	return batchNorm(x, gamma, beta, runMean, runVar, momentum, eps, train, true, false)
}

// batchNorm is BatchNorm (relu: BatchNormReLU). With unstored, the output
// is not written: its Var carries the per-channel map from x (deferred),
// for a convolution that alone reads it to apply as it lowers its input.
func batchNorm(x, gamma, beta *Var, runMean, runVar *tensor.Tensor, momentum, eps float32, train, relu, unstored bool) *Var {
	xs := x.Value.Shape
	if len(xs) < 2 {
		panic(fmt.Sprintf("nn: BatchNorm of %v", xs))
	}
	n, c := xs[0], xs[1]
	inner := x.Value.Size() / (n * c)
	m := n * inner
	if runMean.Size() != c || runVar.Size() != c || (gamma != nil && gamma.Value.Size() != c) || (beta != nil && beta.Value.Size() != c) {
		panic(fmt.Sprintf("nn: BatchNorm of %v with %d running stats", xs, runMean.Size()))
	}
	if train && m < 2 {
		panic(fmt.Sprintf("nn: BatchNorm in training needs more than one value per channel, got %v", xs))
	}
	X := x.Value.Data
	var out *tensor.Tensor
	if unstored {
		out = &tensor.Tensor{Shape: append([]int(nil), xs...)}
	} else {
		out = newUninit(xs...)
	}
	Y := out.Data
	mean := make([]float32, c)
	invstd := make([]float32, c)
	scale, shift := make([]float32, c), make([]float32, c) // y = scale·x + shift (then ReLU)
	// Planes that fill their own lanes are summed plane by plane (the
	// convolution before may have done it while its output was in cache).
	var st []float64
	if train && ownPlanes(inner) {
		st = x.planeStats
		if len(st) != 3*n*c {
			st = make([]float64, 3*n*c)
			tensor.For(n, 1, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					planeStatsOf(st, X[i*c*inner:(i+1)*c*inner], i, c, inner)
				}
			})
		}
	}
	apply := affineInto
	if 4*len(Y) >= streamBytes {
		apply = affineStream
	}
	// Image i's plane of channel ch is s[(i*c+ch)*inner : (i*c+ch+1)*inner].
	tensor.For(c, 1, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			var mu, vr float64
			if train {
				// One pass of sums shifted by a sample value (no cancellation
				// when the mean is large against the spread).
				var s, ss float64
				shift := X[ch*inner]
				switch {
				case st != nil: // large planes: each shifted by its first value
					s, ss = combinePlanes(st, n, c, ch, inner)
				default: // small planes share the lanes, shifted alike
					s, ss = planeSums(n, inner, func(lanes *[64]float32, i int) {
						shiftedSumsAVX(&X[(i*c+ch)*inner], inner, shift, &lanes[0])
					}, func(i int) (float64, float64) {
						o := (i*c + ch) * inner
						return shiftedSums(X[o:o+inner], shift)
					})
				}
				d := s / float64(m)
				mu = float64(shift) + d
				vr = math.Max(ss/float64(m)-d*d, 0)
				runMean.Data[ch] = (1-momentum)*runMean.Data[ch] + momentum*float32(mu)
				runVar.Data[ch] = (1-momentum)*runVar.Data[ch] + momentum*float32(vr*float64(m)/float64(m-1))
			} else {
				mu, vr = float64(runMean.Data[ch]), float64(runVar.Data[ch])
			}
			mean[ch] = float32(mu)
			invstd[ch] = float32(1 / math.Sqrt(vr+float64(eps)))
			// y = a·x + b with a = γ·invstd, b = β − a·μ.
			a := invstd[ch]
			if gamma != nil {
				a *= gamma.Value.Data[ch]
			}
			b := -a * mean[ch]
			if beta != nil {
				b += beta.Value.Data[ch]
			}
			scale[ch], shift[ch] = a, b
			for i := 0; i < n && !unstored; i++ {
				o := (i*c + ch) * inner
				apply(Y[o:o+inner], X[o:o+inner], a, b, relu)
			}
		}
	})
	v := newPooledVar(out, x, gamma, beta)
	if unstored {
		v.pooled = false
		v.deferred = &channelAffine{src: X, scale: scale, shift: shift, relu: relu, c: c, inner: inner}
	}
	// Per-plane gradient sums, when a convolution reading v alone computes
	// them (bit for bit what planeSums adds up: planes of at least sumMin
	// values each take their own lanes).
	var sums []float64
	if v.requiresGrad && train && usePlaneGrad && ownPlanes(inner) {
		sums = make([]float64, 2*n*c)
		v.planeGrad = &planeGradSums{fill: func(i int, g []float32) {
			for ch := 0; ch < c; ch++ {
				o := (i*c + ch) * inner
				sums[2*(i*c+ch)], sums[2*(i*c+ch)+1] = bnGradSums(g[ch*inner:(ch+1)*inner], X[o:o+inner], mean[ch], scale[ch], shift[ch], relu)
			}
		}}
	}
	if v.requiresGrad {
		v.backward = func() {
			G := v.Grad.Data
			given := v.planeGrad != nil && v.planeGrad.ready
			if given {
				planeGradTaken.Add(1)
			}
			var gx, gg, gb []float32
			fresh := false
			// x's only reader is this op and its backward can take the
			// gradient lazily: hand it the coefficients instead of
			// writing dx.
			lazy := useLazyGrad && x.needs() && x.lazyOK && x.uses == 1 && x.Grad == nil && x.lazy == nil
			var cA, cB, cC []float32
			if lazy {
				cA, cB, cC = make([]float32, c), make([]float32, c), make([]float32, c)
			} else if x.needs() {
				gx, fresh = x.gradFresh()
			}
			if gamma.needs() {
				gg = gamma.grad()
			}
			if beta.needs() {
				gb = beta.grad()
			}
			tensor.For(c, 1, func(lo, hi int) {
				for ch := lo; ch < hi; ch++ {
					g := float32(1)
					if gamma != nil {
						g = gamma.Value.Data[ch]
					}
					mu, is := mean[ch], invstd[ch]
					// sdy = Σ dy, sdyx = Σ dy·x̂ (dy masked by the ReLU).
					var sdy, sdyx float64
					if given {
						for i := 0; i < n; i++ {
							sdy += sums[2*(i*c+ch)]
							sdyx += sums[2*(i*c+ch)+1]
						}
					} else {
						sdy, sdyx = planeSums(n, inner, func(lanes *[64]float32, i int) {
							o := (i*c + ch) * inner
							bnGradSumsAVX(&G[o], &X[o], inner, mu, scale[ch], shift[ch], relu, &lanes[0])
						}, func(i int) (float64, float64) {
							o := (i*c + ch) * inner
							return bnGradSums(G[o:o+inner], X[o:o+inner], mu, scale[ch], shift[ch], relu)
						})
					}
					sdyx *= float64(is)
					if gg != nil {
						gg[ch] += float32(sdyx)
					}
					if gb != nil {
						gb[ch] += float32(sdy)
					}
					if gx == nil && !lazy {
						continue
					}
					// Training: dx = γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂));
					// evaluation (running stats are constants): dx = γ·invstd·dy.
					k := g * is
					A, B, C := k, float32(0), float32(0)
					if train {
						B = -k * float32(sdyx/float64(m)) * is
						C = -k * float32(sdy/float64(m))
					}
					if lazy {
						cA[ch], cB[ch], cC[ch] = A, B, C
						continue
					}
					for i := 0; i < n; i++ {
						o := (i*c + ch) * inner
						bnGradInput(gx[o:o+inner], G[o:o+inner], X[o:o+inner], mu, A, B, C, scale[ch], shift[ch], relu, fresh)
					}
				}
			})
			if lazy {
				lazyHandOvers.Add(1)
				v.Grad = nil // G now belongs to x.lazy, freed after x's backward
				x.lazy = &lazyGrad{
					fill: func(dst []float32, ld, i0, i1 int) {
						for i := i0; i < i1; i++ {
							for ch := 0; ch < c; ch++ {
								o, d := (i*c+ch)*inner, ch*ld+(i-i0)*inner
								bnGradInput(dst[d:d+inner], G[o:o+inner], X[o:o+inner], mean[ch], cA[ch], cB[ch], cC[ch], scale[ch], shift[ch], relu, true)
							}
						}
					},
					free: func() { putBuf(G) },
				}
			}
		}
	}
	return v
}

// ownPlanes reports whether planes of p values are summed one at a time
// (with AVX-512, planes below sumMin share the lanes instead).
func ownPlanes(p int) bool { return !useAVX512 || p >= sumMin }

// planeStatsOf writes, for every channel plane of image i's values y
// [c, p], its first value and the sums of the values shifted by it,
// Σ(y−y₀) and Σ(y−y₀)², at st[3(i·c+ch):]; a nil st is left alone.
func planeStatsOf(st []float64, y []float32, i, c, p int) {
	if st == nil {
		return
	}
	for ch := 0; ch < c; ch++ {
		plane := y[ch*p : (ch+1)*p]
		s, ss := shiftedSums(plane, plane[0])
		j := 3 * (i*c + ch)
		st[j], st[j+1], st[j+2] = float64(plane[0]), s, ss
	}
}

// combinePlanes returns Σ(x−a) and Σ(x−a)² over channel ch's n planes of
// p values from their planeStats, a being the first plane's shift:
// Σ(x−a) = s + p·d and Σ(x−a)² = ss + 2·d·s + p·d² for a plane shifted by
// a+d, added in image order.
func combinePlanes(st []float64, n, c, ch, p int) (float64, float64) {
	a := st[3*ch]
	var s, ss float64
	for i := 0; i < n; i++ {
		j := 3 * (i*c + ch)
		d := st[j] - a
		s += st[j+1] + float64(p)*d
		ss += st[j+2] + 2*d*st[j+1] + float64(p)*d*d
	}
	return s, ss
}

// usePlaneGrad lets BatchNorm take its gradient sums from the convolution
// that reads its output (tests compare both paths).
var (
	usePlaneGrad   = true
	planeGradTaken atomic.Int64
)

// useLazyGrad lets BatchNorm hand its input gradient to the convolution
// before it as a lazyGrad (tests compare both paths and count the
// hand-overs).
var (
	useLazyGrad   = true
	lazyHandOvers atomic.Int64
)

// LayerNorm normalises the last axis of x to zero mean and unit variance,
// then scales by gamma and shifts by beta (both [D], may be nil).
func LayerNorm(x, gamma, beta *Var, eps float32) *Var {
	xs := x.Value.Shape
	d := xs[len(xs)-1]
	if (gamma != nil && gamma.Value.Size() != d) || (beta != nil && beta.Value.Size() != d) {
		panic(fmt.Sprintf("nn: LayerNorm of %v with affine parameters of the wrong size", xs))
	}
	rows := x.Value.Size() / d
	X := x.Value.Data
	out := tensor.New(xs...)
	Y := out.Data
	xhat := make([]float32, len(X))
	invstd := make([]float32, rows)
	tensor.For(rows, 32, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := X[r*d : (r+1)*d]
			mu := sum32(xr) / float64(d)
			vr := sqDev32(xr, float32(mu)) / float64(d)
			is := float32(1 / math.Sqrt(vr+float64(eps)))
			invstd[r] = is
			for j, a := range xr {
				h := (a - float32(mu)) * is
				xhat[r*d+j] = h
				if gamma != nil {
					h *= gamma.Value.Data[j]
				}
				if beta != nil {
					h += beta.Value.Data[j]
				}
				Y[r*d+j] = h
			}
		}
	})
	v := newVar(out, x, gamma, beta)
	if v.requiresGrad {
		v.backward = func() {
			G := v.Grad.Data
			if gamma.needs() || beta.needs() {
				gg, gb := gamma.gradIfNeeded(), beta.gradIfNeeded()
				for r := 0; r < rows; r++ {
					for j := 0; j < d; j++ {
						if gg != nil {
							gg[j] += G[r*d+j] * xhat[r*d+j]
						}
						if gb != nil {
							gb[j] += G[r*d+j]
						}
					}
				}
			}
			if !x.needs() {
				return
			}
			gx := x.grad()
			tensor.For(rows, 32, func(lo, hi int) {
				dxh := make([]float32, d)
				for r := lo; r < hi; r++ {
					var s, sx float32
					for j := 0; j < d; j++ {
						g := G[r*d+j]
						if gamma != nil {
							g *= gamma.Value.Data[j]
						}
						dxh[j] = g
						s += g
						sx += g * xhat[r*d+j]
					}
					ms, msx := s/float32(d), sx/float32(d)
					for j := 0; j < d; j++ {
						gx[r*d+j] += invstd[r] * (dxh[j] - ms - xhat[r*d+j]*msx)
					}
				}
			})
		}
	}
	return v
}
