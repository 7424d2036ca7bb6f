#!/bin/sh
# screenshot.sh REPORT.html OUT.png [WIDTHxHEIGHT]
#
# Renders a spotfuse HTML report to a PNG with headless Chromium (Debian
# package "chromium"), offline: no network, no GPU, a throw-away profile.
# The window defaults to 1400x4000 CSS px; the page is cut at that height.
set -eu
if [ $# -lt 2 ]; then
	echo "usage: $0 REPORT.html OUT.png [WIDTHxHEIGHT]" >&2
	exit 2
fi
report=$1
out=$2
size=${3:-1400x4000}
if [ ! -f "$report" ]; then
	echo "$0: $report: no such file" >&2
	exit 1
fi
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$chrome" ]; then
	echo "$0: chromium not found (apt-get install chromium)" >&2
	exit 1
fi
abs=$(cd "$(dirname "$report")" && pwd)/$(basename "$report")
case $out in
/*) outabs=$out ;;
*) outabs=$(pwd)/$out ;;
esac
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$chrome" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync \
	--hide-scrollbars --user-data-dir="$profile" \
	--window-size="$(echo "$size" | tr x ,)" --screenshot="$outabs" "file://$abs" >/dev/null 2>&1 || {
	echo "$0: chromium failed on $abs" >&2
	exit 1
}
[ -s "$outabs" ] || { echo "$0: no screenshot written to $outabs" >&2; exit 1; }
echo "$outabs"
