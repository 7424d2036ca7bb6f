package preprocess

import (
	"math"
	"slices"
)

// Loess returns the degree-2 local regression (Cleveland's loess, Gaussian
// family, no robustness iterations) of y on x evaluated at every x, with
// tricube weights over the ⌊span·n⌋ nearest neighbours.
//
// This is the "direct" loess computation; it agrees with scikit-misc's
// loess(surface="direct") (see testdata/gen_golden.py). scanpy's seurat_v3
// calls scikit-misc with the default surface="interpolate" (a k-d tree with
// interpolation between vertices), an approximation of this direct fit, so
// genes near the HVG cut-off may differ (on 100 HER2ST spots: 200 of 200
// top genes shared).
func Loess(x, y []float64, span float64) []float64 {
	n := len(x)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case x[a] < x[b]:
			return -1
		case x[a] > x[b]:
			return 1
		}
		return 0
	})
	xs := make([]float64, n)
	ys := make([]float64, n)
	for k, i := range order {
		xs[k], ys[k] = x[i], y[i]
	}
	q := int(math.Floor(float64(n) * span))
	q = min(max(q, 3), n)
	fit := make([]float64, n)
	lo := 0
	for k := range n {
		x0 := xs[k]
		// Slide the q-wide window [lo, lo+q) to hold the q nearest points.
		for lo+q < n && xs[lo+q]-x0 < x0-xs[lo] {
			lo++
		}
		h := math.Max(x0-xs[lo], xs[lo+q-1]-x0)
		var s [5]float64 // Σw·uᵖ, p = 0..4
		var t [3]float64 // Σw·uᵖ·y, p = 0..2
		add := func(j int, w float64) {
			u := xs[j] - x0
			up := w
			for p := 0; p < 5; p++ {
				s[p] += up
				if p < 3 {
					t[p] += up * ys[j]
				}
				up *= u
			}
		}
		if h == 0 {
			for j := lo; j < lo+q; j++ {
				add(j, 1)
			}
		} else {
			// Points tied at distance h outside the window get weight 0.
			for j := lo; j < lo+q; j++ {
				r := math.Abs(xs[j]-x0) / h
				if r < 1 {
					w := 1 - r*r*r
					add(j, w*w*w)
				}
			}
		}
		fit[order[k]] = localQuadratic(s, t)
	}
	return fit
}

// localQuadratic solves the 3 × 3 weighted normal equations for the
// intercept, falling back to a local line or mean when singular.
func localQuadratic(s [5]float64, t [3]float64) float64 {
	a := [3][3]float64{{s[0], s[1], s[2]}, {s[1], s[2], s[3]}, {s[2], s[3], s[4]}}
	if v, ok := solve3(a, t); ok {
		return v
	}
	det := s[0]*s[2] - s[1]*s[1]
	if math.Abs(det) > 1e-12*math.Abs(s[0]*s[2]) && det != 0 {
		return (s[2]*t[0] - s[1]*t[1]) / det
	}
	return t[0] / s[0]
}

// solve3 returns the first component of a⁻¹b by Cramer's rule.
func solve3(a [3][3]float64, b [3]float64) (float64, bool) {
	det := a[0][0]*(a[1][1]*a[2][2]-a[1][2]*a[2][1]) -
		a[0][1]*(a[1][0]*a[2][2]-a[1][2]*a[2][0]) +
		a[0][2]*(a[1][0]*a[2][1]-a[1][1]*a[2][0])
	scale := math.Abs(a[0][0] * a[1][1] * a[2][2])
	if det == 0 || math.Abs(det) < 1e-10*scale {
		return 0, false
	}
	d0 := b[0]*(a[1][1]*a[2][2]-a[1][2]*a[2][1]) -
		a[0][1]*(b[1]*a[2][2]-a[1][2]*b[2]) +
		a[0][2]*(b[1]*a[2][1]-a[1][1]*b[2])
	return d0 / det, true
}
