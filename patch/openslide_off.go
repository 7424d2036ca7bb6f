//go:build !openslide

package patch

import (
	"fmt"
	"image"
)

// OpenSlideEnabled reports whether this build reads whole-slide formats
// through OpenSlide (build tag openslide).
const OpenSlideEnabled = false

func openSlide(path string) (image.Image, func(), error) {
	return nil, nil, fmt.Errorf("patch: %s: whole-slide format needs OpenSlide: rebuild spotfuse with "+
		"`go build -tags openslide` (needs libopenslide-dev), or convert it to a tiled TIFF with "+
		"`vips tiffsave %s out.tif --tile --pyramid --compression jpeg`", path, path)
}
