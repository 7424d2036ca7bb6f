#!/usr/bin/env bash
# Generates tiled TIFFs for the lazy tiled reader (package patch).
#
#   testdata/gen_bigtiff.sh fixtures
#       writes the small committed fixtures patch/testdata/tiled/*.tif
#       (< 200 KB in all) from a seeded ImageMagick plasma texture: one
#       per supported compression, edge tiles included, one pyramid.
#   testdata/gen_bigtiff.sh big OUT.tif [SRC.jpg] [SIDE]
#       writes a SIDE×SIDE (default 20000) pyramidal JPEG-compressed tiled
#       TIFF made by enlarging SRC (default the her2st C2 full-resolution
#       JPEG) — for the peak-memory measurement in docs/robustness.md.
#       Never commit it (about 100–300 MB).
#
# Needs vips (apt install libvips-tools) and ImageMagick (fixtures only).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
fixtures)
  out=patch/testdata/tiled
  mkdir -p "$out"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # 200×168: not a multiple of the 64-pixel tiles, so edge tiles are padded.
  convert -seed 7 -size 200x168 plasma:pink-purple -blur 0x1.5 -depth 8 -type TrueColor "$tmp/src.png"
  vips crop "$tmp/src.png" "$tmp/small.png" 0 0 96 80
  vips tiffsave "$tmp/small.png" "$out/none.tif" --tile --tile-width 64 --tile-height 64 --compression none --strip
  vips tiffsave "$tmp/src.png" "$out/deflate.tif" --tile --tile-width 64 --tile-height 64 --compression deflate --predictor horizontal --strip
  vips tiffsave "$tmp/small.png" "$out/lzw.tif" --tile --tile-width 64 --tile-height 64 --compression lzw --predictor none --strip
  vips tiffsave "$tmp/src.png" "$out/jpeg_pyramid.tif" --tile --tile-width 64 --tile-height 64 --compression jpeg --Q 90 --pyramid --strip
  vips colourspace "$tmp/small.png" "$tmp/grey.png" b-w
  vips tiffsave "$tmp/grey.png" "$out/grey_bigtiff.tif" --tile --tile-width 32 --tile-height 32 --compression deflate --bigtiff --strip
  ls -l "$out"
  ;;
big)
  dst="${2:?output path}"
  src="${3:-../shared/data/her2st/images/C2_HE.jpg}"
  side="${4:-20000}"
  tmp=$(mktemp -d "$(dirname "$dst")/bigtiff.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  w=$(vipsheader -f width "$src")
  h=$(vipsheader -f height "$src")
  scale=$(python3 -c "print(max($side/$w, $side/$h))")
  vips resize "$src" "$tmp/big.v" "$scale"
  vips crop "$tmp/big.v" "$tmp/crop.v" 0 0 "$side" "$side"
  vips tiffsave "$tmp/crop.v" "$dst" --tile --tile-width 256 --tile-height 256 --pyramid --compression jpeg --Q 85 --bigtiff
  echo "$dst: ${side}×${side} from $src enlarged ×$scale"
  ;;
*)
  sed -n '2,16p' "$0"
  exit 2
  ;;
esac
