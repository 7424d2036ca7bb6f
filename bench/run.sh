#!/usr/bin/env bash
# Compare spotfuse's engine with PyTorch on conv4 and resnet18 (batch 64,
# 64×64 images, same thread count) in one run. Needs Debian's python3-torch
# and python3-torchvision for the peer; prints the load average first because
# other processes on the machine skew every number.
#   bench/run.sh [extra spotfuse bench flags]
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
go build -o /tmp/spotfuse-bench ./cmd/spotfuse
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
/tmp/spotfuse-bench bench --model conv4 "$@"
echo
/tmp/spotfuse-bench bench --model resnet18 --layers=false "$@"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
