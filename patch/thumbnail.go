package patch

import (
	"image"
	"math"
)

// Thumbnail downscales img by area averaging so that it is at most
// maxWidth pixels wide (never upscales) and returns it with the scale
// applied (thumbnail px per image px).
func Thumbnail(img image.Image, maxWidth int) (*image.RGBA, float64) {
	b := img.Bounds()
	scale := 1.0
	if b.Dx() > maxWidth {
		scale = float64(maxWidth) / float64(b.Dx())
	}
	w := max(1, int(math.Round(float64(b.Dx())*scale)))
	h := max(1, int(math.Round(float64(b.Dy())*scale)))
	fx, wx := weights(float64(b.Min.X), float64(b.Dx()), w)
	fy, wy := weights(float64(b.Min.Y), float64(b.Dy()), h)
	at := pixelFunc(img)
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	row := make([]float32, 3*w)
	acc := make([]float32, 3*w)
	for k := 0; k < h; k++ {
		clear(acc)
		for j, wt := range wy[k] {
			y := fy[k] + j
			if y >= b.Max.Y {
				break
			}
			for i := 0; i < w; i++ {
				var r, g, bl float32
				for jj, wxx := range wx[i] {
					x := fx[i] + jj
					if x >= b.Max.X {
						break
					}
					pr, pg, pb := at(x, y)
					r += wxx * float32(pr)
					g += wxx * float32(pg)
					bl += wxx * float32(pb)
				}
				row[3*i], row[3*i+1], row[3*i+2] = r, g, bl
			}
			for c := range acc {
				acc[c] += wt * row[c]
			}
		}
		for i := 0; i < w; i++ {
			o := out.PixOffset(i, k)
			for c := 0; c < 3; c++ {
				out.Pix[o+c] = uint8(math.Min(255, math.Max(0, math.Round(float64(acc[3*i+c])))))
			}
			out.Pix[o+3] = 255
		}
	}
	return out, scale
}
