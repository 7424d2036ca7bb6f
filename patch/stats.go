package patch

import (
	"fmt"
	"math"
)

// StatsNames names the entries of ColourTextureStats, in order.
var StatsNames = []string{
	"r_mean", "g_mean", "b_mean", "r_sd", "g_sd", "b_sd",
	"h_mean", "e_mean", "d_mean", "h_sd", "e_sd", "d_sd",
	"grey_hist_0", "grey_hist_1", "grey_hist_2", "grey_hist_3",
	"grey_hist_4", "grey_hist_5", "grey_hist_6", "grey_hist_7",
	"grad_mean", "grad_sd",
	"glcm_contrast", "glcm_homogeneity", "glcm_energy", "glcm_correlation",
}

// statsHEDFromRGB is the inverse of the Ruifrok & Johnston (2001) H&E-DAB
// stain matrix [[0.65 0.70 0.29] [0.07 0.99 0.11] [0.27 0.57 0.78]]
// (scikit-image hed_from_rgb), computed once.
var statsHEDFromRGB = invert3([3][3]float64{
	{0.65, 0.70, 0.29},
	{0.07, 0.99, 0.11},
	{0.27, 0.57, 0.78},
})

func invert3(m [3][3]float64) [3][3]float64 {
	det := m[0][0]*(m[1][1]*m[2][2]-m[1][2]*m[2][1]) -
		m[0][1]*(m[1][0]*m[2][2]-m[1][2]*m[2][0]) +
		m[0][2]*(m[1][0]*m[2][1]-m[1][1]*m[2][0])
	var r [3][3]float64
	for i := range 3 {
		for j := range 3 {
			// Cofactor of m[j][i] (transpose for the adjugate).
			a, b := (j+1)%3, (j+2)%3
			c, d := (i+1)%3, (i+2)%3
			r[i][j] = (m[a][c]*m[b][d] - m[a][d]*m[b][c]) / det
		}
	}
	return r
}

// ColourTextureStats returns a hand-crafted baseline feature vector of one
// HWC RGB patch of size × size pixels (len(pix) = 3·size²), with the
// entries named by StatsNames:
//
//   - RGB: per-channel mean and population sd of intensities in [0, 1];
//   - HED: mean and sd of the haematoxylin, eosin and DAB optical densities
//     of scikit-image's rgb2hed (Ruifrok & Johnston colour deconvolution);
//   - grey histogram: fraction of pixels in 8 equal bins of luminance
//     0.2125 R + 0.7154 G + 0.0721 B (scikit-image rgb2gray) in [0, 1];
//   - gradient: mean and sd of the luminance gradient magnitude, with
//     central differences inside and one-sided ones at the border (numpy
//     gradient), in luminance units per pixel;
//   - GLCM: contrast, homogeneity, energy and correlation of the symmetric,
//     normalised grey-level co-occurrence matrix at distance 1 on 16 levels
//     (level = ⌊16·luminance⌋, capped at 15), averaged over the angles 0°,
//     45°, 90° and 135° (scikit-image graycomatrix/graycoprops; correlation
//     is 1 when a level distribution has zero variance).
func ColourTextureStats(pix []uint8, size int) ([]float32, error) {
	if size < 2 || len(pix) != 3*size*size {
		return nil, fmt.Errorf("patch: stats need a 3×%d×%d patch of at least 2×2 pixels, got %d bytes", size, size, len(pix))
	}
	n := size * size
	out := make([]float64, 0, len(StatsNames))

	var rgbSum, rgbSq, hedSum, hedSq [3]float64
	grey := make([]float64, n)
	hist := make([]float64, 8)
	logAdjust := math.Log(1e-6)
	for p := range n {
		var rgb, od [3]float64
		for c := range 3 {
			v := float64(pix[3*p+c]) / 255
			rgb[c] = v
			rgbSum[c] += v
			rgbSq[c] += v * v
			od[c] = math.Log(math.Max(v, 1e-6)) / logAdjust
		}
		for k := range 3 {
			s := od[0]*statsHEDFromRGB[0][k] + od[1]*statsHEDFromRGB[1][k] + od[2]*statsHEDFromRGB[2][k]
			s = math.Max(s, 0)
			hedSum[k] += s
			hedSq[k] += s * s
		}
		g := 0.2125*rgb[0] + 0.7154*rgb[1] + 0.0721*rgb[2]
		grey[p] = g
		hist[min(int(g*8), 7)]++
	}
	meanSD := func(sum, sq [3]float64) {
		for c := range 3 {
			out = append(out, sum[c]/float64(n))
		}
		for c := range 3 {
			m := sum[c] / float64(n)
			out = append(out, math.Sqrt(math.Max(sq[c]/float64(n)-m*m, 0)))
		}
	}
	meanSD(rgbSum, rgbSq)
	meanSD(hedSum, hedSq)
	for _, h := range hist {
		out = append(out, h/float64(n))
	}
	gm, gsd := gradientStats(grey, size)
	out = append(out, gm, gsd)
	out = append(out, glcmStats(grey, size)...)

	f := make([]float32, len(out))
	for i, v := range out {
		f[i] = float32(v)
	}
	return f, nil
}

// gradientStats returns the mean and population sd of the gradient
// magnitude of the size × size image g.
func gradientStats(g []float64, size int) (mean, sd float64) {
	diff := func(a, b, span float64) float64 { return (b - a) / span }
	var sum, sq float64
	for y := range size {
		for x := range size {
			var gx, gy float64
			switch x {
			case 0:
				gx = diff(g[y*size], g[y*size+1], 1)
			case size - 1:
				gx = diff(g[y*size+x-1], g[y*size+x], 1)
			default:
				gx = diff(g[y*size+x-1], g[y*size+x+1], 2)
			}
			switch y {
			case 0:
				gy = diff(g[x], g[size+x], 1)
			case size - 1:
				gy = diff(g[(y-1)*size+x], g[y*size+x], 1)
			default:
				gy = diff(g[(y-1)*size+x], g[(y+1)*size+x], 2)
			}
			m := math.Hypot(gx, gy)
			sum += m
			sq += m * m
		}
	}
	n := float64(size * size)
	mean = sum / n
	return mean, math.Sqrt(math.Max(sq/n-mean*mean, 0))
}

// glcmStats returns contrast, homogeneity, energy and correlation of the
// 16-level co-occurrence matrix at distance 1, averaged over 4 angles.
func glcmStats(g []float64, size int) []float64 {
	const levels = 16
	q := make([]int, len(g))
	for i, v := range g {
		q[i] = min(int(v*levels), levels-1)
	}
	// Offsets (dy, dx) for angles 0, π/4, π/2, 3π/4 as scikit-image:
	// row offset round(sin θ), column offset round(cos θ).
	offsets := [4][2]int{{0, 1}, {1, 1}, {1, 0}, {1, -1}}
	res := make([]float64, 4)
	var p [levels][levels]float64
	for _, off := range offsets {
		p = [levels][levels]float64{}
		var total float64
		for y := range size {
			for x := range size {
				y2, x2 := y+off[0], x+off[1]
				if y2 < 0 || y2 >= size || x2 < 0 || x2 >= size {
					continue
				}
				a, b := q[y*size+x], q[y2*size+x2]
				p[a][b]++
				p[b][a]++ // symmetric
				total += 2
			}
		}
		var contrast, homog, energy, mi, mj float64
		for i := range levels {
			for j := range levels {
				v := p[i][j] / total
				p[i][j] = v
				d := float64(i - j)
				contrast += v * d * d
				homog += v / (1 + d*d)
				energy += v * v
				mi += float64(i) * v
				mj += float64(j) * v
			}
		}
		var vi, vj, cov float64
		for i := range levels {
			for j := range levels {
				di, dj := float64(i)-mi, float64(j)-mj
				vi += p[i][j] * di * di
				vj += p[i][j] * dj * dj
				cov += p[i][j] * di * dj
			}
		}
		corr := 1.0
		if math.Sqrt(vi) >= 1e-15 && math.Sqrt(vj) >= 1e-15 {
			corr = cov / math.Sqrt(vi*vj)
		}
		res[0] += contrast / 4
		res[1] += homog / 4
		res[2] += math.Sqrt(energy) / 4
		res[3] += corr / 4
	}
	return res
}
