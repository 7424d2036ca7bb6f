package report

import (
	"hash/fnv"
	"image/color"
	"math"
	"slices"
	"strings"
)

// HER2STClasses are the seven pathologist region labels of the HER2ST data
// set, in the order legends list them.
var HER2STClasses = []string{
	"invasive cancer",
	"cancer in situ",
	"immune infiltrate",
	"breast glands",
	"connective tissue",
	"adipose tissue",
	"undetermined",
}

// classColors gives every HER2ST class a fixed colour from the Okabe–Ito
// palette, which stays distinguishable under the common colour-vision
// deficiencies.
var classColors = map[string]color.NRGBA{
	"invasive cancer":   {0xD5, 0x5E, 0x00, 0xFF}, // vermillion
	"cancer in situ":    {0xCC, 0x79, 0xA7, 0xFF}, // reddish purple
	"immune infiltrate": {0x00, 0x72, 0xB2, 0xFF}, // blue
	"breast glands":     {0x00, 0x9E, 0x73, 0xFF}, // bluish green
	"connective tissue": {0x56, 0xB4, 0xE9, 0xFF}, // sky blue
	"adipose tissue":    {0xF0, 0xE4, 0x42, 0xFF}, // yellow
	"undetermined":      {0x99, 0x99, 0x99, 0xFF}, // grey
}

// extraColors are used for category names outside HER2STClasses (Paul Tol's
// "muted" scheme, also colour-blind safe).
var extraColors = []color.NRGBA{
	{0x33, 0x22, 0x88, 0xFF}, // indigo
	{0x88, 0xCC, 0xEE, 0xFF}, // cyan
	{0x44, 0xAA, 0x99, 0xFF}, // teal
	{0x11, 0x77, 0x33, 0xFF}, // green
	{0x99, 0x99, 0x33, 0xFF}, // olive
	{0xDD, 0xCC, 0x77, 0xFF}, // sand
	{0xCC, 0x66, 0x77, 0xFF}, // rose
	{0x88, 0x22, 0x55, 0xFF}, // wine
	{0xAA, 0x44, 0x99, 0xFF}, // purple
	{0x66, 0x33, 0x00, 0xFF}, // brown
}

// unlabelledColor outlines spots whose category is "".
var unlabelledColor = color.NRGBA{0xBB, 0xBB, 0xBB, 0xFF}

// ClassColor returns the colour of a category. HER2ST class names (matched
// case-insensitively, surrounding space ignored) have fixed colours; any
// other name gets a colour chosen by a hash of the name, so the same name has
// the same colour in every map and every run.
func ClassColor(name string) color.NRGBA {
	key := strings.ToLower(strings.TrimSpace(name))
	if key == "" {
		return unlabelledColor
	}
	if c, ok := classColors[key]; ok {
		return c
	}
	return extraColors[hashIndex(key, len(extraColors))]
}

func hashIndex(s string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(s))
	return int(h.Sum32() % uint32(n))
}

// categoryColors assigns colours to a set of category names: HER2ST names
// keep their fixed colours; other names start at their hashed colour and,
// when two of them would collide within the set, the later one (in sorted
// order) moves on to the next free colour. The result depends only on the
// set, not on the order the names were seen in.
func categoryColors(names []string) map[string]color.NRGBA {
	out := map[string]color.NRGBA{}
	used := map[int]bool{}
	var others []string
	for _, n := range names {
		key := strings.ToLower(strings.TrimSpace(n))
		if _, ok := classColors[key]; ok || key == "" {
			out[n] = ClassColor(n)
			continue
		}
		others = append(others, n)
	}
	slices.Sort(others)
	others = slices.Compact(others)
	for _, n := range others {
		i := hashIndex(strings.ToLower(strings.TrimSpace(n)), len(extraColors))
		for k := 0; k < len(extraColors) && used[i]; k++ {
			i = (i + 1) % len(extraColors)
		}
		used[i] = true
		out[n] = extraColors[i]
	}
	return out
}

// legendOrder returns the categories present in cats, ordered by the given
// palette order first, then HER2ST order, then alphabetically. The empty
// category (unlabelled) comes last.
func legendOrder(cats []string, order []string) []string {
	present := map[string]bool{}
	for _, c := range cats {
		present[c] = true
	}
	var out []string
	seen := map[string]bool{}
	add := func(c string) {
		if present[c] && !seen[c] && c != "" {
			seen[c] = true
			out = append(out, c)
		}
	}
	for _, c := range order {
		add(c)
	}
	for _, c := range HER2STClasses {
		add(c)
	}
	var rest []string
	for c := range present {
		if !seen[c] && c != "" {
			rest = append(rest, c)
		}
	}
	slices.Sort(rest)
	out = append(out, rest...)
	if present[""] {
		out = append(out, "")
	}
	return out
}

// Modality colours used by curves and bars (Okabe–Ito), so image,
// expression and fused runs look the same in every chart.
var (
	colorImage      = color.NRGBA{0xE6, 0x9F, 0x00, 0xFF} // orange
	colorExpression = color.NRGBA{0x00, 0x72, 0xB2, 0xFF} // blue
	colorFused      = color.NRGBA{0x00, 0x9E, 0x73, 0xFF} // bluish green
	seriesColors    = []color.NRGBA{
		{0xCC, 0x79, 0xA7, 0xFF}, // reddish purple
		{0x56, 0xB4, 0xE9, 0xFF}, // sky blue
		{0xD5, 0x5E, 0x00, 0xFF}, // vermillion
		{0x55, 0x55, 0x55, 0xFF}, // dark grey
		{0xF0, 0xE4, 0x42, 0xFF}, // yellow
		{0x00, 0x00, 0x00, 0xFF}, // black
	}
)

// modalityColor returns the fixed colour of a method name that mentions a
// modality ("fused…", "expression…"/"gene…", "image…"/"H&E…"), and ok=false
// otherwise.
func modalityColor(name string) (c color.NRGBA, ok bool) {
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "fus") || strings.Contains(n, "concat") || strings.Contains(n, "gated"):
		return colorFused, true
	case strings.Contains(n, "expr") || strings.Contains(n, "gene") || strings.Contains(n, "rna"):
		return colorExpression, true
	case strings.Contains(n, "image") || strings.Contains(n, "h&e") || strings.Contains(n, "histo"):
		return colorImage, true
	}
	return color.NRGBA{}, false
}

// methodStyle is how one method is drawn in curves and bars.
type methodStyle struct {
	color  color.NRGBA
	dashed bool
}

// methodStyles styles a list of method names: names mentioning a modality
// get that modality's colour (further methods of the same modality get a
// darker, then a lighter shade, alternating solid and dashed lines); the
// others take the remaining colours in order.
func methodStyles(names []string) []methodStyle {
	out := make([]methodStyle, len(names))
	seen := map[color.NRGBA]int{}
	k := 0
	for i, n := range names {
		c, ok := modalityColor(n)
		if !ok {
			out[i] = methodStyle{color: seriesColors[k%len(seriesColors)], dashed: k >= len(seriesColors)}
			k++
			continue
		}
		k := seen[c]
		seen[c]++
		switch k % 3 {
		case 0:
			out[i] = methodStyle{color: c}
		case 1:
			out[i] = methodStyle{color: darken(c, 0.6)}
		case 2:
			out[i] = methodStyle{color: lighten(c, 0.45)}
		}
		// Alternate solid and dashed: the first six members of a modality
		// get six different (shade, dash) pairs.
		out[i].dashed = k%2 == 1
	}
	return out
}

func lighten(c color.NRGBA, f float64) color.NRGBA {
	l := func(v uint8) uint8 { return uint8(math.Round(float64(v) + (255-float64(v))*f)) }
	return color.NRGBA{l(c.R), l(c.G), l(c.B), c.A}
}

// viridis anchors at 0, 1/8, …, 1 (matplotlib's viridis), interpolated
// linearly; perceptually uniform and colour-blind friendly.
var viridis = [...][3]float64{
	{0x44, 0x01, 0x54}, {0x46, 0x32, 0x7e}, {0x36, 0x5c, 0x8d}, {0x27, 0x7f, 0x8e},
	{0x1f, 0xa1, 0x87}, {0x4a, 0xc1, 0x6d}, {0x9f, 0xda, 0x3a}, {0xd0, 0xe1, 0x1c}, {0xfd, 0xe7, 0x25},
}

// Viridis maps t in [0, 1] (clamped) to the viridis colour map.
func Viridis(t float64) color.NRGBA {
	if math.IsNaN(t) {
		return color.NRGBA{0x80, 0x80, 0x80, 0xFF}
	}
	t = math.Max(0, math.Min(1, t))
	f := t * float64(len(viridis)-1)
	i := int(f)
	if i >= len(viridis)-1 {
		i = len(viridis) - 2
	}
	u := f - float64(i)
	var c [3]uint8
	for k := range c {
		c[k] = uint8(math.Round(viridis[i][k]*(1-u) + viridis[i+1][k]*u))
	}
	return color.NRGBA{c[0], c[1], c[2], 0xFF}
}

// blues is a sequential white-to-dark-blue ramp for confusion matrices.
func blues(t float64) color.NRGBA {
	lo := [3]float64{0xF7, 0xFB, 0xFF}
	mid := [3]float64{0x6B, 0xAE, 0xD6}
	hi := [3]float64{0x08, 0x30, 0x6B}
	t = math.Max(0, math.Min(1, t))
	a, b, u := lo, mid, t*2
	if t > 0.5 {
		a, b, u = mid, hi, (t-0.5)*2
	}
	var c [3]uint8
	for k := range c {
		c[k] = uint8(math.Round(a[k]*(1-u) + b[k]*u))
	}
	return color.NRGBA{c[0], c[1], c[2], 0xFF}
}
