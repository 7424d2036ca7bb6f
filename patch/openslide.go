//go:build openslide

package patch

/*
#cgo pkg-config: openslide
#include <stdlib.h>
#include <openslide.h>
*/
import "C"

import (
	"fmt"
	"image"
	"image/color"
	"unsafe"
)

// OpenSlideEnabled reports whether this build reads whole-slide formats
// through OpenSlide (build tag openslide).
const OpenSlideEnabled = true

// slideTile is the side of the regions read from OpenSlide and cached.
const slideTile = 512

// slideImage is level 0 of a whole-slide image read through OpenSlide in
// slideTile×slideTile regions, two rows of them kept (LRU, as TIFFLevel).
// Transparent pixels (outside the scanned area) read as white glass.
type slideImage struct {
	path     string
	osr      *C.openslide_t
	w, h     int
	across   int
	cache    map[int]*tileEntry
	clock    int
	last     *tileEntry
	lastIdx  int
	buf      []uint32
	maxCache int
	err      error
}

// openSlide opens path with OpenSlide.
func openSlide(path string) (image.Image, func(), error) {
	cs := C.CString(path)
	defer C.free(unsafe.Pointer(cs))
	if C.openslide_detect_vendor(cs) == nil {
		return nil, nil, fmt.Errorf("patch: %s: OpenSlide does not recognise this file", path)
	}
	osr := C.openslide_open(cs)
	if osr == nil {
		return nil, nil, fmt.Errorf("patch: %s: OpenSlide cannot open it", path)
	}
	if e := C.openslide_get_error(osr); e != nil {
		msg := C.GoString(e)
		C.openslide_close(osr)
		return nil, nil, fmt.Errorf("patch: %s: OpenSlide: %s", path, msg)
	}
	var w, h C.int64_t
	C.openslide_get_level0_dimensions(osr, &w, &h)
	if w <= 0 || h <= 0 || w > 1<<31 || h > 1<<31 {
		C.openslide_close(osr)
		return nil, nil, fmt.Errorf("patch: %s: OpenSlide reports a %d×%d image", path, w, h)
	}
	across := (int(w) + slideTile - 1) / slideTile
	s := &slideImage{path: path, osr: osr, w: int(w), h: int(h), across: across,
		maxCache: min(max(CacheTiles, 2*across+8), MaxCacheTiles),
		cache:    map[int]*tileEntry{}, buf: make([]uint32, slideTile*slideTile)}
	return s, func() { C.openslide_close(s.osr); s.osr = nil }, nil
}

func (s *slideImage) ColorModel() color.Model { return color.RGBAModel }
func (s *slideImage) Bounds() image.Rectangle { return image.Rect(0, 0, s.w, s.h) }
func (s *slideImage) Err() error              { return s.err }
func (s *slideImage) bandHeight() int         { return slideTile }

func (s *slideImage) At(x, y int) color.Color {
	r, g, b := s.rgb8(x, y)
	return color.RGBA{r, g, b, 255}
}

func (s *slideImage) rgb8(x, y int) (uint8, uint8, uint8) {
	if x < 0 || y < 0 || x >= s.w || y >= s.h {
		return 0, 0, 0
	}
	tx, ty := x/slideTile, y/slideTile
	idx := ty*s.across + tx
	e := s.last
	if e == nil || s.lastIdx != idx {
		var err error
		if e, err = s.tile(idx, tx, ty); err != nil {
			if s.err == nil {
				s.err = err
			}
			return 0, 0, 0
		}
		s.last, s.lastIdx = e, idx
	}
	i := 3 * ((y-ty*slideTile)*slideTile + (x - tx*slideTile))
	return e.rgb[i], e.rgb[i+1], e.rgb[i+2]
}

func (s *slideImage) tile(idx, tx, ty int) (*tileEntry, error) {
	s.clock++
	if e, ok := s.cache[idx]; ok {
		e.used = s.clock
		return e, nil
	}
	C.openslide_read_region(s.osr, (*C.uint32_t)(unsafe.Pointer(&s.buf[0])),
		C.int64_t(tx*slideTile), C.int64_t(ty*slideTile), 0, slideTile, slideTile)
	if e := C.openslide_get_error(s.osr); e != nil {
		return nil, fmt.Errorf("patch: %s: OpenSlide reading region (%d, %d): %s", s.path, tx*slideTile, ty*slideTile, C.GoString(e))
	}
	rgb := make([]uint8, 3*slideTile*slideTile)
	for i, p := range s.buf { // premultiplied ARGB
		a := p >> 24
		r, g, b := (p>>16)&0xff, (p>>8)&0xff, p&0xff
		if a == 0 {
			r, g, b = 255, 255, 255
		} else if a < 255 { // composite the premultiplied colour on white
			r = r + (255 - a)
			g = g + (255 - a)
			b = b + (255 - a)
		}
		rgb[3*i], rgb[3*i+1], rgb[3*i+2] = uint8(r), uint8(g), uint8(b)
	}
	evictLRU(s.cache, s.maxCache, s.clock)
	e := &tileEntry{rgb: rgb, used: s.clock}
	s.cache[idx] = e
	return e, nil
}
