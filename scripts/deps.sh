#!/usr/bin/env bash
# Installs the system packages spotfuse needs to build and test on Debian:
# a C compiler for cgo and OpenBLAS. Sourced by demo.sh and test.sh.
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN=local
missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
dpkg -s libopenblas-dev >/dev/null 2>&1 || missing+=(libopenblas-dev)
for p in ${EXTRA_PACKAGES:-}; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v go >/dev/null 2>&1 || { echo "Go 1.26 is required (https://go.dev/dl)" >&2; exit 1; }
