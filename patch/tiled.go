package patch

import (
	"bytes"
	"cmp"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/image/tiff/lzw"

	"github.com/spotfuse/spotfuse/section"
)

// ErrNotTiled is returned (wrapped) by OpenTiledTIFF for a file that is not
// a tiled TIFF; callers then decode it whole.
var ErrNotTiled = errors.New("not a tiled TIFF")

// TiledTIFF is a tiled (optionally pyramidal) TIFF or BigTIFF read lazily:
// only the tiles a caller touches are read and decoded, and at most
// CacheTiles decoded tiles are kept, so memory stays bounded whatever the
// image size. It implements image.Image for level 0 (full resolution);
// Level returns the reduced-resolution levels of a pyramid.
//
// Supported: 8-bit grey, RGB or RGBA (alpha ignored), chunky planar
// configuration, compression none, LZW, Deflate (Adobe and old-style) or
// JPEG (with shared JPEGTables, YCbCr or RGB), horizontal predictor for LZW
// and Deflate. Other layouts give an error naming the file and the tag.
type TiledTIFF struct {
	path   string
	f      *os.File
	levels []*TIFFLevel
}

// TIFFLevel is one tiled image (IFD) of a TiledTIFF; it implements
// image.Image and is safe for use by one goroutine at a time.
type TIFFLevel struct {
	path          string
	r             io.ReaderAt
	size          int64
	w, h          int
	tw, th        int
	spp           int // samples per pixel
	photometric   int
	compression   int
	predictor     int
	offsets       []uint64
	counts        []uint64
	jpegTables    []byte
	tilesAcross   int
	cache         map[int]*tileEntry
	clock         int
	last          *tileEntry // fast path: the tile of the previous pixel
	lastIdx       int
	maxCacheTiles int
	err           error // first error of At/rgb8
}

type tileEntry struct {
	rgb  []uint8 // tw×th×3
	used int
}

// A TIFFLevel keeps the decoded tiles of two tile rows (LRU), at least
// CacheTiles and at most MaxCacheTiles tiles or MaxCacheBytes: with
// 256×256 tiles, 12–192 MiB.
const (
	CacheTiles    = 64
	MaxCacheTiles = 1024
	MaxCacheBytes = 256 << 20 // caps the cache whatever the tile size
)

// TIFF tags and values used here.
const (
	tagNewSubfileType  = 254
	tagImageWidth      = 256
	tagImageLength     = 257
	tagBitsPerSample   = 258
	tagCompression     = 259
	tagPhotometric     = 262
	tagStripOffsets    = 273
	tagSamplesPerPixel = 277
	tagPlanarConfig    = 284
	tagPredictor       = 317
	tagTileWidth       = 322
	tagTileLength      = 323
	tagTileOffsets     = 324
	tagTileByteCounts  = 325
	tagSampleFormat    = 339
	tagJPEGTables      = 347

	compNone       = 1
	compLZW        = 5
	compJPEG       = 7
	compDeflate    = 8
	compDeflateOld = 32946

	photoMinIsBlack = 1
	photoRGB        = 2
	photoYCbCr      = 6
)

// maxIFDs and maxTiles bound what a (possibly corrupt) header can make the
// reader allocate.
const (
	maxIFDs    = 64
	maxEntries = 4096
	maxTileDim = 4096
)

// OpenTiledTIFF opens a tiled TIFF. A file that is a valid TIFF stored in
// strips (or not a TIFF at all) gives an error wrapping ErrNotTiled.
func OpenTiledTIFF(path string) (*TiledTIFF, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("patch: %w", err)
	}
	levels, err := parseTIFF(path, f, fi.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	for _, l := range levels {
		// Two rows of tiles, so a band of spots decodes each tile once,
		// within the bounds.
		l.maxCacheTiles = max(1, min(max(CacheTiles, 2*l.tilesAcross+8), MaxCacheTiles, MaxCacheBytes/(3*l.tw*l.th)))
	}
	return &TiledTIFF{path: path, f: f, levels: levels}, nil
}

// Close releases the file.
func (t *TiledTIFF) Close() error { return t.f.Close() }

// Levels returns the number of tiled images in the file (1 + pyramid levels).
func (t *TiledTIFF) Levels() int { return len(t.levels) }

// Level returns level i (0 = full resolution), in file order.
func (t *TiledTIFF) Level(i int) *TIFFLevel { return t.levels[i] }

// ColorModel, Bounds and At make TiledTIFF an image.Image of level 0.
func (t *TiledTIFF) ColorModel() color.Model { return color.RGBAModel }

// Bounds returns the full-resolution image rectangle.
func (t *TiledTIFF) Bounds() image.Rectangle { return t.levels[0].Bounds() }

// At returns the full-resolution pixel at (x, y).
func (t *TiledTIFF) At(x, y int) color.Color { return t.levels[0].At(x, y) }

// ColorModel returns color.RGBAModel.
func (l *TIFFLevel) ColorModel() color.Model { return color.RGBAModel }

// Bounds returns the level's rectangle.
func (l *TIFFLevel) Bounds() image.Rectangle { return image.Rect(0, 0, l.w, l.h) }

// At returns the pixel at (x, y) (transparent black outside the image or
// when its tile cannot be decoded; use RGB to see the error).
func (l *TIFFLevel) At(x, y int) color.Color {
	r, g, b, err := l.RGB(x, y)
	if err != nil {
		return color.RGBA{}
	}
	return color.RGBA{r, g, b, 255}
}

// visitOrder returns the order in which to crop the spots of sec: spot
// order for a decoded image, and for a lazily read one band by band (bands
// one tile high, spots by x within a band), so each tile is decoded about
// once whatever order the spots are listed in (Space Ranger lists them by
// barcode, spatially at random).
func visitOrder(sec *section.Section, img image.Image) []int {
	order := make([]int, len(sec.Spots))
	for i := range order {
		order[i] = i
	}
	lazy, ok := img.(rgbImage)
	if !ok || sec.Image == nil {
		return order
	}
	band := float64(lazy.bandHeight())
	key := func(i int) (float64, float64) {
		x, y := sec.Image.FromFullres.Apply(sec.Spots[i].X, sec.Spots[i].Y)
		if math.IsNaN(x + y) {
			return math.Inf(1), 0
		}
		return math.Floor(y / band), x
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ya, xa := key(a)
		yb, xb := key(b)
		if c := cmp.Compare(ya, yb); c != 0 {
			return c
		}
		return cmp.Compare(xa, xb)
	})
	return order
}

// rgbImage is implemented by lazily read images that give 8-bit RGB
// directly; pixelFunc uses it, and Err reports a failed read afterwards.
type rgbImage interface {
	image.Image
	rgb8(x, y int) (r, g, b uint8)
	Err() error
	bandHeight() int // height of a row of tiles
}

// OpenImage opens an image for patch extraction: a tiled TIFF lazily
// (TiledTIFF, bounded memory), a whole-slide format through OpenSlide when
// built with -tags openslide, anything else (PNG, JPEG, stripped TIFF)
// decoded whole. Call close when done with the image.
func OpenImage(path string) (img image.Image, close func(), err error) {
	t, err := OpenTiledTIFF(path)
	if err == nil {
		return t, func() { t.Close() }, nil
	}
	if !errors.Is(err, ErrNotTiled) {
		if OpenSlideEnabled && isSlide(path) { // e.g. an .svs with JPEG 2000 tiles
			return openSlide(path)
		}
		return nil, nil, err
	}
	if isSlide(path) {
		return openSlide(path)
	}
	img, err = Decode(path)
	if err != nil {
		return nil, nil, err
	}
	return img, func() {}, nil
}

// slideExts are the whole-slide formats OpenSlide reads that are not plain
// tiled TIFFs (an Aperio .svs usually is one and is read by TiledTIFF).
var slideExts = []string{".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide"}

func isSlide(path string) bool {
	return slices.Contains(slideExts, strings.ToLower(filepath.Ext(path)))
}

// rgb8 is RGB without the error, for the resampler; the first error is
// kept and reported by Err.
func (l *TIFFLevel) rgb8(x, y int) (uint8, uint8, uint8) {
	r, g, b, err := l.RGB(x, y)
	if err != nil && l.err == nil {
		l.err = err
	}
	return r, g, b
}

// Err returns the first error met by At (a tile that could not be read or
// decoded), or nil.
func (l *TIFFLevel) Err() error { return l.err }

// Err returns the first error met reading full-resolution pixels, or nil.
func (t *TiledTIFF) Err() error { return t.levels[0].err }

func (t *TiledTIFF) rgb8(x, y int) (uint8, uint8, uint8) { return t.levels[0].rgb8(x, y) }

func (t *TiledTIFF) bandHeight() int { return t.levels[0].th }

func (l *TIFFLevel) bandHeight() int { return l.th }

// Overview returns the smallest level at least minWidth pixels wide (level 0
// when none is) and its pixels per full-resolution pixel.
func (t *TiledTIFF) Overview(minWidth int) (*TIFFLevel, float64) {
	best := t.levels[0]
	for _, l := range t.levels[1:] {
		if l.w >= minWidth && l.w < best.w {
			best = l
		}
	}
	return best, float64(best.w) / float64(t.levels[0].w)
}

// OpenThumbnail returns the image at path downscaled to at most maxWidth
// pixels wide and its scale (thumbnail px per full-resolution px). A tiled
// pyramid is read from its smallest sufficient level, tile by tile; other
// images are decoded whole.
func OpenThumbnail(path string, maxWidth int) (*image.RGBA, float64, error) {
	img, done, err := OpenImage(path)
	if err != nil {
		return nil, 0, err
	}
	defer done()
	src, pre := image.Image(img), 1.0
	if t, ok := img.(*TiledTIFF); ok {
		src, pre = t.Overview(maxWidth)
	}
	thumb, scale := Thumbnail(src, maxWidth)
	if lazy, ok := src.(rgbImage); ok && lazy.Err() != nil {
		return nil, 0, lazy.Err()
	}
	return thumb, scale * pre, nil
}

// TileSize returns the tile width and height.
func (l *TIFFLevel) TileSize() (int, int) { return l.tw, l.th }

// RGB returns the 8-bit colour of pixel (x, y), decoding its tile if it is
// not cached.
func (l *TIFFLevel) RGB(x, y int) (r, g, b uint8, err error) {
	if x < 0 || y < 0 || x >= l.w || y >= l.h {
		return 0, 0, 0, fmt.Errorf("patch: %s: pixel (%d, %d) outside the %d×%d image", l.path, x, y, l.w, l.h)
	}
	tx, ty := x/l.tw, y/l.th
	idx := ty*l.tilesAcross + tx
	e := l.last
	if e == nil || l.lastIdx != idx {
		if e, err = l.tile(idx); err != nil {
			return 0, 0, 0, err
		}
		l.last, l.lastIdx = e, idx
	}
	i := 3 * ((y-ty*l.th)*l.tw + (x - tx*l.tw))
	return e.rgb[i], e.rgb[i+1], e.rgb[i+2], nil
}

// evictLRU drops the least recently used tile of cache when it holds limit
// tiles or more; clock is the current access time.
func evictLRU(cache map[int]*tileEntry, limit, clock int) {
	if len(cache) < limit {
		return
	}
	old, oldest := -1, clock+1
	for k, e := range cache {
		if e.used < oldest {
			old, oldest = k, e.used
		}
	}
	delete(cache, old)
}

// tile returns decoded tile idx from the cache or the file.
func (l *TIFFLevel) tile(idx int) (*tileEntry, error) {
	l.clock++
	if e, ok := l.cache[idx]; ok {
		e.used = l.clock
		return e, nil
	}
	rgb, err := l.decodeTile(idx)
	if err != nil {
		return nil, err
	}
	evictLRU(l.cache, l.maxCacheTiles, l.clock)
	e := &tileEntry{rgb: rgb, used: l.clock}
	l.cache[idx] = e
	return e, nil
}

// decodeTile reads and decodes tile idx into tw×th×3 RGB bytes.
func (l *TIFFLevel) decodeTile(idx int) ([]uint8, error) {
	off, n := l.offsets[idx], l.counts[idx]
	bad := func(format string, a ...any) error {
		return fmt.Errorf("patch: %s: tile %d: %s", l.path, idx, fmt.Sprintf(format, a...))
	}
	if off > uint64(l.size) || n > uint64(l.size)-off {
		return nil, bad("bytes [%d, %d) lie beyond the end of the file (%d bytes): the file is truncated", off, off+n, l.size)
	}
	raw := make([]byte, n)
	if _, err := l.r.ReadAt(raw, int64(off)); err != nil {
		return nil, bad("%v", err)
	}
	want := l.tw * l.th * l.spp
	var pix []byte
	switch l.compression {
	case compNone:
		pix = raw
	case compDeflate, compDeflateOld:
		zr, err := zlib.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, bad("deflate: %v", err)
		}
		if pix, err = readAtMost(zr, want); err != nil {
			return nil, bad("deflate: %v", err)
		}
	case compLZW:
		var err error
		if pix, err = readAtMost(lzw.NewReader(bytes.NewReader(raw), lzw.MSB, 8), want); err != nil {
			return nil, bad("LZW: %v", err)
		}
	case compJPEG:
		return l.decodeJPEGTile(raw, bad)
	}
	if len(pix) < want {
		return nil, bad("%d bytes of pixels, want %d (%d×%d×%d)", len(pix), want, l.tw, l.th, l.spp)
	}
	if l.predictor == 2 {
		for y := 0; y < l.th; y++ {
			row := pix[y*l.tw*l.spp : (y+1)*l.tw*l.spp]
			for i := l.spp; i < len(row); i++ {
				row[i] += row[i-l.spp]
			}
		}
	}
	rgb := make([]uint8, l.tw*l.th*3)
	switch l.spp {
	case 1:
		for i := 0; i < l.tw*l.th; i++ {
			v := pix[i]
			rgb[3*i], rgb[3*i+1], rgb[3*i+2] = v, v, v
		}
	case 3:
		copy(rgb, pix[:want])
	default: // RGB + extra samples: drop them
		for i := 0; i < l.tw*l.th; i++ {
			copy(rgb[3*i:3*i+3], pix[l.spp*i:])
		}
	}
	return rgb, nil
}

// readAtMost reads up to n bytes (a tile's worth) from r, growing the
// buffer as data arrives (a corrupt header cannot make it allocate a
// whole tile for a few compressed bytes).
func readAtMost(r io.Reader, n int) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, int64(n)))
}

// decodeJPEGTile decodes an (abbreviated) JPEG tile, prefixing the shared
// JPEGTables.
func (l *TIFFLevel) decodeJPEGTile(raw []byte, bad func(string, ...any) error) ([]uint8, error) {
	stream := raw
	if len(l.jpegTables) >= 4 && len(raw) >= 2 {
		// tables: SOI … EOI; tile: SOI … EOI → SOI tables… tile…EOI
		stream = make([]byte, 0, len(l.jpegTables)+len(raw))
		stream = append(stream, l.jpegTables[:len(l.jpegTables)-2]...)
		stream = append(stream, raw[2:]...)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(stream))
	if err != nil {
		return nil, bad("JPEG: %v", err)
	}
	if cfg.Width > l.tw+16 || cfg.Height > l.th+16 { // bound the decoder's allocation
		return nil, bad("JPEG tile is %d×%d, want %d×%d", cfg.Width, cfg.Height, l.tw, l.th)
	}
	img, err := jpeg.Decode(bytes.NewReader(stream))
	if err != nil {
		return nil, bad("JPEG: %v", err)
	}
	b := img.Bounds()
	if b.Dx() < l.tw || b.Dy() < l.th {
		return nil, bad("JPEG tile is %d×%d, want %d×%d", b.Dx(), b.Dy(), l.tw, l.th)
	}
	at := pixelFunc(img)
	rgb := make([]uint8, l.tw*l.th*3)
	for y := 0; y < l.th; y++ {
		for x := 0; x < l.tw; x++ {
			i := 3 * (y*l.tw + x)
			rgb[i], rgb[i+1], rgb[i+2] = at(b.Min.X+x, b.Min.Y+y)
		}
	}
	return rgb, nil
}

// tiffReader walks the IFDs of a TIFF or BigTIFF.
type tiffReader struct {
	path string
	r    io.ReaderAt
	size int64
	bo   binary.ByteOrder
	big  bool
}

func (t *tiffReader) errorf(format string, a ...any) error {
	return fmt.Errorf("patch: %s: %s", t.path, fmt.Sprintf(format, a...))
}

func (t *tiffReader) read(off uint64, n int) ([]byte, error) {
	if off > uint64(t.size) || uint64(n) > uint64(t.size)-off {
		return nil, t.errorf("structure at byte %d (+%d) lies beyond the end of the file (%d bytes): the file is truncated", off, n, t.size)
	}
	b := make([]byte, n)
	if _, err := t.r.ReadAt(b, int64(off)); err != nil {
		return nil, t.errorf("%v", err)
	}
	return b, nil
}

// tiffField is one IFD entry with its values read.
type tiffField struct {
	typ  uint16
	vals []uint64
	raw  []byte // for UNDEFINED/BYTE fields (JPEGTables)
}

var typeSize = map[uint16]int{1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8, 18: 8}

// parseTIFF reads every IFD and returns the tiled ones as levels.
func parseTIFF(path string, r io.ReaderAt, size int64) ([]*TIFFLevel, error) {
	t := &tiffReader{path: path, r: r, size: size}
	hdr := make([]byte, 16)
	if n, _ := r.ReadAt(hdr, 0); n < 8 {
		return nil, fmt.Errorf("patch: %s: %w (file too short)", path, ErrNotTiled)
	}
	switch string(hdr[:2]) {
	case "II":
		t.bo = binary.LittleEndian
	case "MM":
		t.bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("patch: %s: %w (no TIFF byte-order mark)", path, ErrNotTiled)
	}
	var next uint64
	switch t.bo.Uint16(hdr[2:]) {
	case 42:
		next = uint64(t.bo.Uint32(hdr[4:]))
	case 43:
		if t.bo.Uint16(hdr[4:]) != 8 {
			return nil, t.errorf("BigTIFF with offset size %d, want 8", t.bo.Uint16(hdr[4:]))
		}
		t.big = true
		next = t.bo.Uint64(hdr[8:])
	default:
		return nil, fmt.Errorf("patch: %s: %w (bad TIFF version %d)", path, ErrNotTiled, t.bo.Uint16(hdr[2:]))
	}
	var levels []*TIFFLevel
	seen := map[uint64]bool{}
	for i := 0; next != 0; i++ {
		if i >= maxIFDs || seen[next] {
			return nil, t.errorf("more than %d IFDs or an IFD loop at byte %d", maxIFDs, next)
		}
		seen[next] = true
		fields, nxt, err := t.ifd(next)
		if err != nil {
			return nil, err
		}
		next = nxt
		if _, tiled := fields[tagTileOffsets]; !tiled {
			if i == 0 {
				if _, strips := fields[tagStripOffsets]; strips {
					return nil, fmt.Errorf("patch: %s: %w (stored in strips)", path, ErrNotTiled)
				}
			}
			continue // e.g. a stripped label or macro image of an SVS
		}
		l, err := t.level(i, fields)
		if err != nil {
			return nil, err
		}
		if len(levels) == 0 || l.w < levels[0].w { // full resolution first, then reductions
			levels = append(levels, l)
		}
	}
	if len(levels) == 0 {
		return nil, fmt.Errorf("patch: %s: %w (no tiled image)", path, ErrNotTiled)
	}
	return levels, nil
}

// ifd reads the IFD at off.
func (t *tiffReader) ifd(off uint64) (map[uint16]tiffField, uint64, error) {
	cntSize, entSize, offSize := 2, 12, 4
	if t.big {
		cntSize, entSize, offSize = 8, 20, 8
	}
	b, err := t.read(off, cntSize)
	if err != nil {
		return nil, 0, err
	}
	var n uint64
	if t.big {
		n = t.bo.Uint64(b)
	} else {
		n = uint64(t.bo.Uint16(b))
	}
	if n > maxEntries {
		return nil, 0, t.errorf("IFD at byte %d has %d entries", off, n)
	}
	body, err := t.read(off+uint64(cntSize), int(n)*entSize+offSize)
	if err != nil {
		return nil, 0, err
	}
	fields := map[uint16]tiffField{}
	for k := 0; k < int(n); k++ {
		e := body[k*entSize:]
		tag, typ := t.bo.Uint16(e), t.bo.Uint16(e[2:])
		var count uint64
		var inline []byte
		if t.big {
			count, inline = t.bo.Uint64(e[4:]), e[12:20]
		} else {
			count, inline = uint64(t.bo.Uint32(e[4:])), e[8:12]
		}
		sz, ok := typeSize[typ]
		if !ok {
			continue // unknown type: skip, as readers must
		}
		if count > uint64(t.size) {
			return nil, 0, t.errorf("tag %d claims %d values, more than the file holds", tag, count)
		}
		data := inline[:min(len(inline), sz*int(count))]
		if uint64(sz)*count > uint64(len(inline)) {
			var p uint64
			if t.big {
				p = t.bo.Uint64(inline)
			} else {
				p = uint64(t.bo.Uint32(inline))
			}
			if data, err = t.read(p, sz*int(count)); err != nil {
				return nil, 0, fmt.Errorf("%w (values of tag %d)", err, tag)
			}
		}
		f := tiffField{typ: typ}
		switch typ {
		case 3, 8:
			for j := 0; j < int(count); j++ {
				f.vals = append(f.vals, uint64(t.bo.Uint16(data[2*j:])))
			}
		case 4, 9, 13:
			for j := 0; j < int(count); j++ {
				f.vals = append(f.vals, uint64(t.bo.Uint32(data[4*j:])))
			}
		case 16, 17, 18:
			for j := 0; j < int(count); j++ {
				f.vals = append(f.vals, t.bo.Uint64(data[8*j:]))
			}
		case 1, 6, 7:
			f.raw = data
			for _, c := range data[:min(len(data), 16)] {
				f.vals = append(f.vals, uint64(c))
			}
		}
		fields[tag] = f
	}
	tail := body[int(n)*entSize:]
	var next uint64
	if t.big {
		next = t.bo.Uint64(tail)
	} else {
		next = uint64(t.bo.Uint32(tail))
	}
	return fields, next, nil
}

// level checks a tiled IFD and builds its TIFFLevel.
func (t *tiffReader) level(i int, fields map[uint16]tiffField) (*TIFFLevel, error) {
	get := func(tag uint16, def uint64) uint64 {
		if f, ok := fields[tag]; ok && len(f.vals) > 0 {
			return f.vals[0]
		}
		return def
	}
	bad := func(format string, a ...any) error {
		return t.errorf("image %d: %s", i, fmt.Sprintf(format, a...))
	}
	w, h := get(tagImageWidth, 0), get(tagImageLength, 0)
	tw, th := get(tagTileWidth, 0), get(tagTileLength, 0)
	if w == 0 || h == 0 || w > 1<<24 || h > 1<<24 {
		return nil, bad("image size %d×%d", w, h)
	}
	if tw == 0 || th == 0 || tw > maxTileDim || th > maxTileDim || tw%16 != 0 || th%16 != 0 {
		return nil, bad("tile size %d×%d (TIFF wants multiples of 16, at most %d)", tw, th, maxTileDim)
	}
	spp := get(tagSamplesPerPixel, 1)
	if spp != 1 && spp != 3 && spp != 4 {
		return nil, bad("%d samples per pixel; only grey (1), RGB (3) and RGBA (4) are supported", spp)
	}
	if bps := fields[tagBitsPerSample]; len(bps.vals) > 0 {
		for _, v := range bps.vals {
			if v != 8 {
				return nil, bad("%d bits per sample; only 8-bit images are supported", v)
			}
		}
	}
	if f := get(tagSampleFormat, 1); f != 1 {
		return nil, bad("sample format %d; only unsigned integers are supported", f)
	}
	if pc := get(tagPlanarConfig, 1); pc != 1 && spp > 1 {
		return nil, bad("planar configuration %d (separate planes) is not supported; re-save with contiguous (chunky) samples", pc)
	}
	comp, photo, pred := int(get(tagCompression, 1)), int(get(tagPhotometric, photoRGB)), int(get(tagPredictor, 1))
	switch comp {
	case compNone, compLZW, compDeflate, compDeflateOld:
		if photo != photoRGB && photo != photoMinIsBlack {
			return nil, bad("photometric interpretation %d with compression %d is not supported (want RGB or grey)", photo, comp)
		}
	case compJPEG:
		if spp == 4 {
			return nil, bad("JPEG tiles with 4 samples per pixel are not supported")
		}
	default:
		return nil, bad("compression %d is not supported (want none, LZW, Deflate or JPEG); convert with e.g. "+
			"`vips tiffsave in out.tif --tile --pyramid --compression jpeg`", comp)
	}
	if pred != 1 && pred != 2 {
		return nil, bad("predictor %d is not supported", pred)
	}
	across := (w + tw - 1) / tw
	down := (h + th - 1) / th
	offs, cnts := fields[tagTileOffsets].vals, fields[tagTileByteCounts].vals
	if uint64(len(offs)) != across*down || len(cnts) != len(offs) {
		return nil, bad("%d tile offsets and %d byte counts for %d×%d tiles", len(offs), len(cnts), across, down)
	}
	return &TIFFLevel{
		path: t.path, r: t.r, size: t.size,
		w: int(w), h: int(h), tw: int(tw), th: int(th), spp: int(spp),
		photometric: photo, compression: comp, predictor: pred,
		offsets: offs, counts: cnts, jpegTables: fields[tagJPEGTables].raw,
		tilesAcross: int(across), cache: map[int]*tileEntry{}, maxCacheTiles: CacheTiles,
	}, nil
}
