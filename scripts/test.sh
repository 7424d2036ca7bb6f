#!/usr/bin/env bash
# Runs the spotfuse test suite: vet, all tests with the OpenBLAS backend,
# the engine tests again with the pure-Go backend, and a short run of every
# fuzz target. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
go vet ./...
go test -count=1 ./...
CGO_ENABLED=0 go test -count=1 -tags purego ./tensor/... ./nn/...
# The OpenSlide reader is built only with -tags openslide; test it when the
# library is installed (apt install libopenslide-dev), else say so.
if pkg-config --exists openslide 2>/dev/null; then
  go test -count=1 -tags openslide ./patch/...
else
  echo "skipping -tags openslide tests: libopenslide-dev not installed"
fi
# Each fuzz target briefly (seed corpus + a few seconds of new inputs).
fuzztime="${FUZZTIME:-4s}"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >/tmp/spotfuse-fuzz.log 2>&1 || { cat /tmp/spotfuse-fuzz.log; exit 1; }
    echo "fuzz $pkg $target: ok ($(grep -o 'execs: [0-9]*' /tmp/spotfuse-fuzz.log | tail -1))"
  done
done
