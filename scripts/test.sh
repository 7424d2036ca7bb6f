#!/usr/bin/env bash
# Runs the spotfuse test suite: vet, all tests (AVX-512 kernels where the CPU
# has them), the engine tests again without them (OpenBLAS and Go loops),
# with the pure-Go backend, and with cgo off (AVX-512 kernels, no BLAS), the
# OpenSlide reader, and a short run of every fuzz target. Installs what it needs first. Ends with one
# line "tests: N passed, M failed" (test packages and fuzz targets).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRA_PACKAGES="libopenslide-dev pkg-config" source scripts/deps.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
passed=0
failed=0
count() { # count ok/FAIL package lines of a go test run in $log
  passed=$((passed + $(grep -c '^ok ' "$log" || true)))
  failed=$((failed + $(grep -c '^FAIL' "$log" || true)))
}
run() { # run a go test command, show its output, count its packages
  "$@" 2>&1 | tee "$log" || true
  count
  return 0
}
go vet ./...
run go test -count=1 ./...
SPOTFUSE_NOSIMD=1 run go test -count=1 ./tensor/... ./nn/... ./sgemm/...
CGO_ENABLED=0 run go test -count=1 -tags purego ./tensor/... ./nn/...
CGO_ENABLED=0 run go test -count=1 ./tensor/... ./nn/... ./sgemm/...
# The OpenSlide reader is built only with -tags openslide.
if pkg-config --exists openslide 2>/dev/null; then
  run go test -count=1 -tags openslide ./patch/...
else
  echo "skipping -tags openslide tests: libopenslide-dev not installed"
fi
# Each fuzz target briefly (seed corpus + a few seconds of new inputs).
fuzztime="${FUZZTIME:-4s}"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    # go test -fuzz sometimes ends with a bare "context deadline exceeded" when
    # the time runs out mid-input (no failing input is written): run such a
    # target once more; a real crash names its failing input and fails.
    if go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >"$log" 2>&1 ||
       { grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input' "$log" &&
         go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >"$log" 2>&1; }; then
      passed=$((passed + 1))
      echo "fuzz $pkg $target: ok ($(grep -o 'execs: [0-9]*' "$log" | tail -1))"
    else
      failed=$((failed + 1))
      cat "$log"
      echo "fuzz $pkg $target: FAIL"
    fi
  done
done
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
