#!/usr/bin/env bash
# scripts/reproduce.sh — the README's results table on the shipped ResNet-20.
#
#   bash scripts/reproduce.sh [ITERS] [ACT_ITERS] [CALIB]
#
# Each row is one `brecq quantize` run writing results/<name>.json; rows whose
# record exists are skipped (delete it to re-run). The table is printed by
# `brecq report results/*.json` at the end. Defaults are a reduced CPU budget
# (ITERS=300, ACT_ITERS=100, CALIB=1024); the paper's is 20000 5000 1024.
set -euo pipefail
export GOEXPERIMENT=simd
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ITERS=${1:-300} ACT=${2:-100} CALIB=${3:-1024}
mkdir -p results
go build -o results/.brecq ./cmd/brecq
run() { # name, flags...
  local name=$1; shift
  local out="results/$name.json"
  if [ -f "$out" ]; then echo "skip $name ($out exists)"; return; fi
  echo "=== $name: $*"
  results/.brecq quantize --quiet --iters "$ITERS" --act-iters "$ACT" --calib "$CALIB" --json "$out" "$@" | tail -6
}
for wa in "2 4" "2 32" "4 32" "2 2" "4 4" "3 32"; do
  set -- $wa
  w=$1 a=$2
  run "w${w}a${a}-nearest"        --wbits "$w" --abits "$a" --method nearest
  run "w${w}a${a}-adaround"       --wbits "$w" --abits "$a" --method adaround
  run "w${w}a${a}-brecq-block"    --wbits "$w" --abits "$a" --method brecq --granularity block --loss mse
  run "w${w}a${a}-brecq-fisher"   --wbits "$w" --abits "$a" --method brecq --granularity block --loss fisher
done
for wa in "2 4" "2 2" "2 32"; do
  set -- $wa
  w=$1 a=$2
  run "w${w}a${a}-brecq-stage"    --wbits "$w" --abits "$a" --method brecq --granularity stage
  run "w${w}a${a}-brecq-net"      --wbits "$w" --abits "$a" --method brecq --granularity net
done
results/.brecq report results/*.json
