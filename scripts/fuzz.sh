#!/usr/bin/env bash
# Runs every Go fuzz target of spotfuse for longer than scripts/test.sh does:
#
#   scripts/fuzz.sh [seconds] [package-pattern]
#
# seconds per target (default 60), packages matching the optional pattern
# (default all). Prints one line per target with its executions; a crash
# stops the script and leaves the failing input under
# <package>/testdata/fuzz/<Target>/ (commit it with the fix, so it becomes
# a regression test run by plain `go test`). FUZZ_PARALLEL sets the fuzzing
# workers (default 2). FUZZ_MINIMIZE bounds the minimisation of each new
# interesting input (default 200x executions; Go's default of 60 s per
# input eats the whole budget, and minimisation runs are not counted in the
# execs printed).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
secs="${1:-60}"
pattern="${2:-.}"
par="${FUZZ_PARALLEL:-2}"
minimize="${FUZZ_MINIMIZE:-200x}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
for pkg in $(go list ./... | grep -E -- "$pattern"); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    start=$(date +%s)
    if go test -run='^$' -fuzz="^${target}\$" -fuzztime="${secs}s" -fuzzminimizetime="$minimize" -parallel="$par" "$pkg" >"$log" 2>&1; then
      res=ok
    else
      res=FAIL
      status=1
    fi
    execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
    printf '%-45s %-22s %-4s execs %10s  %4ss\n' "${pkg#github.com/spotfuse/spotfuse/}" "$target" "$res" "$execs" "$(( $(date +%s) - start ))"
    if [ "$res" = FAIL ]; then
      grep -v '^fuzz: elapsed' "$log" | tail -30
    fi
  done
done
exit $status
