package report

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strconv"
	"sync"

	xfont "golang.org/x/image/font"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
	"gonum.org/v1/plot/font/liberation"
)

type legendItem struct {
	label  string
	color  color.NRGBA
	hollow bool
}

var (
	fontsOnce             sync.Once
	sansRegular, sansBold *opentype.Font
)

// sans returns the Liberation Sans fonts that gonum/plot also uses.
func sans() (regular, bold *opentype.Font) {
	fontsOnce.Do(func() {
		for _, f := range liberation.Collection() {
			if f.Font.Variant != "Sans" || f.Font.Style != xfont.StyleNormal {
				continue
			}
			switch f.Font.Weight {
			case xfont.WeightNormal:
				sansRegular = f.Face
			case xfont.WeightBold:
				sansBold = f.Face
			}
		}
	})
	return sansRegular, sansBold
}

func newFace(f *opentype.Font, px float64) (xfont.Face, error) {
	if f == nil {
		return nil, fmt.Errorf("Liberation Sans font not available")
	}
	return opentype.NewFace(f, &opentype.FaceOptions{Size: px, DPI: 72, Hinting: xfont.HintingFull})
}

func textWidth(face xfont.Face, s string) int {
	return xfont.MeasureString(face, s).Ceil()
}

func drawText(dst draw.Image, face xfont.Face, x, baseline int, s string, c color.Color) {
	d := xfont.Drawer{Dst: dst, Src: image.NewUniform(c), Face: face, Dot: fixed.P(x, baseline)}
	d.DrawString(s)
}

// composeMap frames a drawn map: title above, legend (categories) or colour
// bar (values) below, on white.
func composeMap(m *SpatialMap, titleText string, base *image.RGBA, legend []legendItem) (image.Image, error) {
	bw, bh := base.Bounds().Dx(), base.Bounds().Dy()
	W := max(bw, 560)
	fontPx := math.Max(13, math.Min(25, float64(W)/40))
	reg, bold := sans()
	face, err := newFace(reg, fontPx)
	if err != nil {
		return nil, err
	}
	defer face.Close()
	titleFace, err := newFace(bold, fontPx*1.15)
	if err != nil {
		return nil, err
	}
	defer titleFace.Close()

	pad := int(fontPx * 0.7)
	rowH := int(fontPx * 1.6)
	y := pad
	var title []string
	if titleText != "" {
		title = wrapWords(titleText, float64(W-2*pad), func(s string) float64 { return float64(textWidth(titleFace, s)) })
	}
	titleTop := y
	if len(title) > 0 {
		y += int(fontPx*1.15*1.3)*len(title) + pad/2
	}
	mapTop := y
	y += bh + pad

	// Lay out the legend in rows that wrap at the frame width.
	type placed struct {
		item legendItem
		x, y int
	}
	var items []placed
	sw := int(fontPx)
	x := pad
	for _, it := range legend {
		w := sw + pad/2 + textWidth(face, it.label)
		if x > pad && x+w > W-pad {
			x = pad
			y += rowH
		}
		items = append(items, placed{it, x, y})
		x += w + int(fontPx*1.4)
	}
	if len(items) > 0 {
		y += rowH
	}
	barTop, barW, barH := 0, 0, 0
	if m.Values != nil {
		barTop = y
		barW, barH = min(W-2*pad, 520), int(fontPx)
		if m.ValueLabel != "" {
			barTop += rowH
		}
		y = barTop + barH + int(fontPx*0.4) + rowH
	}
	H := y + pad/2

	out := image.NewRGBA(image.Rect(0, 0, W, H))
	draw.Draw(out, out.Bounds(), image.White, image.Point{}, draw.Src)
	ink := color.NRGBA{0x22, 0x22, 0x22, 0xFF}
	for i, l := range title {
		drawText(out, titleFace, pad, titleTop+int(fontPx*1.15*(1.3*float64(i)+1)), l, ink)
	}
	mapLeft := (W - bw) / 2
	draw.Draw(out, image.Rect(mapLeft, mapTop, mapLeft+bw, mapTop+bh), base, image.Point{}, draw.Src)
	for _, p := range items {
		cy := float64(p.y) + float64(rowH)/2
		style := spotCategory
		if p.item.hollow {
			style = spotHollow
		}
		drawSpot(out, float64(p.x)+float64(sw)/2, cy, float64(sw)/2, math.Max(1.2, fontPx/10), p.item.color, style)
		drawText(out, face, p.x+sw+pad/2, p.y+rowH/2+int(fontPx*0.36), p.item.label, ink)
	}
	if m.Values != nil {
		lo, hi := valueRange(m)
		x0 := pad
		if m.ValueLabel != "" {
			drawText(out, face, x0, barTop-int(fontPx*0.45), m.ValueLabel, ink)
		}
		for i := range barW {
			c := Viridis(float64(i) / float64(barW-1))
			draw.Draw(out, image.Rect(x0+i, barTop, x0+i+1, barTop+barH), image.NewUniform(c), image.Point{}, draw.Src)
		}
		tickY := barTop + barH
		for k := range 5 {
			t := float64(k) / 4
			tx := x0 + int(math.Round(t*float64(barW-1)))
			draw.Draw(out, image.Rect(tx, tickY, tx+1, tickY+int(fontPx*0.35)), image.NewUniform(ink), image.Point{}, draw.Src)
			s := strconv.FormatFloat(lo+t*(hi-lo), 'g', 3, 64)
			w := textWidth(face, s)
			lx := min(max(tx-w/2, pad/2), W-w-pad/2)
			drawText(out, face, lx, tickY+int(fontPx*0.4)+int(fontPx), s, ink)
		}
	}
	return out, nil
}
