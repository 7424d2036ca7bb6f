#!/usr/bin/env bash
# Runs the demo study: HER2ST section A1 (image + expression + pathologist labels), with self-supervised
# pretraining also on the unlabelled sections, ablations and the HTML report. Installs what it needs first.
# DATA (default ../shared/data/her2st) and OUT (default out/demo) can be overridden.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
data="${DATA:-../shared/data/her2st}"
out="${OUT:-out/demo}"
if [ ! -d "$data/counts" ]; then
  echo "HER2ST data not found in $data; fetching the public originals (checksummed)..." >&2
  go run ./cmd/spotfuse data fetch her2st --dir "$data"
fi
go build -o spotfuse ./cmd/spotfuse
./spotfuse study --config studies/her2st-demo.json --data "$data" --out "$out"
echo "report: $out/report.html   results: $out/results.csv"
