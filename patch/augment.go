package patch

import (
	"math"
	"math/rand/v2"
)

// The augmentations work on float32 CHW patches with values in [0, 1]
// (see ToCHW): c channels of s×s pixels, p[ch*s*s + y*s + x]. All
// randomness comes from the *rand.Rand passed in.

// ToCHW converts an HWC RGB patch of size×size bytes into CHW float32 in
// [0, 1], writing into dst (length 3·size²).
func ToCHW(pix []uint8, size int, dst []float32) {
	n := size * size
	_ = dst[3*n-1]
	for i := 0; i < n; i++ {
		dst[i] = float32(pix[3*i]) / 255
		dst[n+i] = float32(pix[3*i+1]) / 255
		dst[2*n+i] = float32(pix[3*i+2]) / 255
	}
}

// Grey writes the luminance (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B)
// of a CHW RGB patch into dst (length size²): the input of colorization.
func Grey(chw []float32, size int, dst []float32) {
	n := size * size
	for i := 0; i < n; i++ {
		dst[i] = 0.299*chw[i] + 0.587*chw[n+i] + 0.114*chw[2*n+i]
	}
}

// FlipH mirrors a CHW patch left-right in place.
func FlipH(p []float32, c, s int) {
	for ch := 0; ch < c; ch++ {
		for y := 0; y < s; y++ {
			row := p[(ch*s+y)*s : (ch*s+y+1)*s]
			for i, j := 0, s-1; i < j; i, j = i+1, j-1 {
				row[i], row[j] = row[j], row[i]
			}
		}
	}
}

// FlipV mirrors a CHW patch top-bottom in place.
func FlipV(p []float32, c, s int) {
	for ch := 0; ch < c; ch++ {
		base := ch * s * s
		for i, j := 0, s-1; i < j; i, j = i+1, j-1 {
			a, b := p[base+i*s:base+(i+1)*s], p[base+j*s:base+(j+1)*s]
			for x := range a {
				a[x], b[x] = b[x], a[x]
			}
		}
	}
}

// Rot90 writes src rotated by k·90° counter-clockwise (as numpy.rot90 on
// each H×W plane) into dst; dst and src must not overlap.
func Rot90(dst, src []float32, c, s, k int) {
	k = ((k % 4) + 4) % 4
	for ch := 0; ch < c; ch++ {
		in, out := src[ch*s*s:(ch+1)*s*s], dst[ch*s*s:(ch+1)*s*s]
		for y := 0; y < s; y++ {
			for x := 0; x < s; x++ {
				var sy, sx int
				switch k {
				case 0:
					sy, sx = y, x
				case 1: // out[y][x] = in[x][s-1-y]
					sy, sx = x, s-1-y
				case 2:
					sy, sx = s-1-y, s-1-x
				case 3:
					sy, sx = s-1-x, y
				}
				out[y*s+x] = in[sy*s+sx]
			}
		}
	}
}

// rgbFromHED is the Ruifrok & Johnston (2001) stain matrix for
// haematoxylin, eosin and DAB (rows), as in scikit-image; hedFromRGB is its
// inverse.
var rgbFromHED = [3][3]float64{
	{0.65, 0.70, 0.29},
	{0.07, 0.99, 0.11},
	{0.27, 0.57, 0.78},
}

var hedFromRGB = inv3(rgbFromHED)

func inv3(m [3][3]float64) [3][3]float64 {
	a, b, c := m[0][0], m[0][1], m[0][2]
	d, e, f := m[1][0], m[1][1], m[1][2]
	g, h, i := m[2][0], m[2][1], m[2][2]
	det := a*(e*i-f*h) - b*(d*i-f*g) + c*(d*h-e*g)
	return [3][3]float64{
		{(e*i - f*h) / det, (c*h - b*i) / det, (b*f - c*e) / det},
		{(f*g - d*i) / det, (a*i - c*g) / det, (c*d - a*f) / det},
		{(d*h - e*g) / det, (b*g - a*h) / det, (a*e - b*d) / det},
	}
}

// logAdjust is scikit-image's optical-density scale, log(1e-6).
var logAdjust = math.Log(1e-6)

// HEDAdjust separates a 3-channel CHW RGB patch into stain concentrations
// (scikit-image rgb2hed), maps each stain channel k to alpha[k]·h + beta[k],
// and recombines (hed2rgb), clipping to [0, 1]; in place. Unlike rgb2hed,
// negative concentrations are kept, so alpha = 1, beta = 0 is the identity.
func HEDAdjust(p []float32, s int, alpha, beta [3]float64) {
	n := s * s
	for i := 0; i < n; i++ {
		var od [3]float64
		for ch := 0; ch < 3; ch++ {
			v := math.Max(float64(p[ch*n+i]), 1e-6)
			od[ch] = math.Log(v) / logAdjust
		}
		var st [3]float64
		for k := 0; k < 3; k++ {
			v := od[0]*hedFromRGB[0][k] + od[1]*hedFromRGB[1][k] + od[2]*hedFromRGB[2][k]
			st[k] = v*alpha[k] + beta[k]
		}
		for ch := 0; ch < 3; ch++ {
			lr := -(st[0]*rgbFromHED[0][ch] + st[1]*rgbFromHED[1][ch] + st[2]*rgbFromHED[2][ch]) * -logAdjust
			p[ch*n+i] = float32(math.Min(1, math.Max(0, math.Exp(lr))))
		}
	}
}

// BrightnessContrast scales a CHW patch by brightness, then blends it with
// its mean grey level by contrast (torchvision's adjust_brightness then
// adjust_contrast), clipping to [0, 1]; in place. Factors of 1 leave it
// unchanged.
func BrightnessContrast(p []float32, c, s int, brightness, contrast float64) {
	n := s * s
	for i := range p[:c*n] {
		p[i] = clip01(float32(brightness) * p[i])
	}
	var mean float64
	if c == 3 {
		for i := 0; i < n; i++ {
			mean += 0.2989*float64(p[i]) + 0.587*float64(p[n+i]) + 0.114*float64(p[2*n+i])
		}
		mean /= float64(n)
	} else {
		for _, v := range p[:c*n] {
			mean += float64(v)
		}
		mean /= float64(c * n)
	}
	for i := range p[:c*n] {
		p[i] = clip01(float32(contrast*float64(p[i]) + (1-contrast)*mean))
	}
}

func clip01(v float32) float32 {
	if v < 0 {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}

// GaussianBlur blurs each channel of a CHW patch with a Gaussian of the
// given sigma (pixels), truncated at 3 sigma, edges mirrored
// (scipy.ndimage.gaussian_filter, mode "reflect"); in place.
func GaussianBlur(p []float32, c, s int, sigma float64) {
	if sigma <= 0 {
		return
	}
	r := int(3*sigma + 0.5)
	k := make([]float64, 2*r+1)
	var sum float64
	for i := -r; i <= r; i++ {
		k[i+r] = math.Exp(-0.5 * float64(i*i) / (sigma * sigma))
		sum += k[i+r]
	}
	for i := range k {
		k[i] /= sum
	}
	reflect := func(i int) int {
		for i < 0 || i >= s {
			if i < 0 {
				i = -i - 1
			}
			if i >= s {
				i = 2*s - i - 1
			}
		}
		return i
	}
	tmp := make([]float64, s*s)
	for ch := 0; ch < c; ch++ {
		pl := p[ch*s*s : (ch+1)*s*s]
		for y := 0; y < s; y++ {
			for x := 0; x < s; x++ {
				var v float64
				for j := -r; j <= r; j++ {
					v += k[j+r] * float64(pl[y*s+reflect(x+j)])
				}
				tmp[y*s+x] = v
			}
		}
		for y := 0; y < s; y++ {
			for x := 0; x < s; x++ {
				var v float64
				for j := -r; j <= r; j++ {
					v += k[j+r] * tmp[reflect(y+j)*s+x]
				}
				pl[y*s+x] = float32(v)
			}
		}
	}
}

// ResizedCrop writes the box rows [top, top+h) × columns [left, left+w) of
// src, resized bilinearly to s×s (PyTorch interpolate, align_corners=False,
// no antialias), into dst.
func ResizedCrop(dst, src []float32, c, s, top, left, h, w int) {
	sy, sx := float64(h)/float64(s), float64(w)/float64(s)
	for ch := 0; ch < c; ch++ {
		in, out := src[ch*s*s:(ch+1)*s*s], dst[ch*s*s:(ch+1)*s*s]
		for y := 0; y < s; y++ {
			fy := math.Max((float64(y)+0.5)*sy-0.5, 0)
			y0 := int(fy)
			y1 := min(y0+1, h-1)
			ly := fy - float64(y0)
			for x := 0; x < s; x++ {
				fx := math.Max((float64(x)+0.5)*sx-0.5, 0)
				x0 := int(fx)
				x1 := min(x0+1, w-1)
				lx := fx - float64(x0)
				at := func(yy, xx int) float64 { return float64(in[(top+yy)*s+left+xx]) }
				v := (1-ly)*((1-lx)*at(y0, x0)+lx*at(y0, x1)) + ly*((1-lx)*at(y1, x0)+lx*at(y1, x1))
				out[y*s+x] = float32(v)
			}
		}
	}
}

// Augment configures the random augmentation of 3-channel patches. The
// zero value does nothing; DefaultAugment is a mild H&E setting.
type Augment struct {
	Flip, Rotate bool    // random horizontal/vertical flips; random 90° rotations
	HEDSigma     float64 // stain scale alpha ~ U(1-HEDSigma, 1+HEDSigma) per stain
	HEDBias      float64 // stain shift beta ~ U(-HEDBias, HEDBias) per stain
	Brightness   float64 // factor ~ U(1-Brightness, 1+Brightness)
	Contrast     float64 // factor ~ U(1-Contrast, 1+Contrast)
	BlurProb     float64 // probability of a Gaussian blur
	BlurSigma    float64 // blur sigma ~ U(0.1, BlurSigma) pixels
	CropMinScale float64 // random resized crop: area fraction ~ U(CropMinScale, 1), aspect in [3/4, 4/3]; 0 = off
}

// DefaultAugment returns the augmentation used for H&E pretraining.
func DefaultAugment() Augment {
	return Augment{Flip: true, Rotate: true, HEDSigma: 0.05, HEDBias: 0.01,
		Brightness: 0.1, Contrast: 0.1, BlurProb: 0.2, BlurSigma: 1.0, CropMinScale: 0.6}
}

// Apply augments one 3-channel s×s CHW patch in place; tmp is scratch of
// the same length (allocated when nil).
func (a Augment) Apply(p []float32, s int, rng *rand.Rand, tmp []float32) {
	const c = 3
	if len(tmp) < len(p) {
		tmp = make([]float32, len(p))
	}
	if a.CropMinScale > 0 && a.CropMinScale < 1 {
		top, left, h, w := cropBox(s, a.CropMinScale, rng)
		ResizedCrop(tmp, p, c, s, top, left, h, w)
		copy(p, tmp)
	}
	if a.Flip {
		if rng.IntN(2) == 1 {
			FlipH(p, c, s)
		}
		if rng.IntN(2) == 1 {
			FlipV(p, c, s)
		}
	}
	if a.Rotate {
		if k := rng.IntN(4); k != 0 {
			Rot90(tmp, p, c, s, k)
			copy(p, tmp)
		}
	}
	if a.HEDSigma > 0 || a.HEDBias > 0 {
		var alpha, beta [3]float64
		for k := range alpha {
			alpha[k] = 1 + a.HEDSigma*(2*rng.Float64()-1)
			beta[k] = a.HEDBias * (2*rng.Float64() - 1)
		}
		HEDAdjust(p, s, alpha, beta)
	}
	if a.Brightness > 0 || a.Contrast > 0 {
		b := 1 + a.Brightness*(2*rng.Float64()-1)
		ct := 1 + a.Contrast*(2*rng.Float64()-1)
		BrightnessContrast(p, c, s, b, ct)
	}
	if a.BlurProb > 0 && rng.Float64() < a.BlurProb {
		GaussianBlur(p, c, s, 0.1+rng.Float64()*math.Max(a.BlurSigma-0.1, 0))
	}
}

// cropBox draws a torchvision-style RandomResizedCrop box inside s×s.
func cropBox(s int, minScale float64, rng *rand.Rand) (top, left, h, w int) {
	area := float64(s * s)
	for try := 0; try < 10; try++ {
		target := area * (minScale + (1-minScale)*rng.Float64())
		ratio := math.Exp(math.Log(3.0/4) + (math.Log(4.0/3)-math.Log(3.0/4))*rng.Float64())
		w = int(math.Round(math.Sqrt(target * ratio)))
		h = int(math.Round(math.Sqrt(target / ratio)))
		if w > 0 && h > 0 && w <= s && h <= s {
			return rng.IntN(s - h + 1), rng.IntN(s - w + 1), h, w
		}
	}
	return 0, 0, s, s
}
