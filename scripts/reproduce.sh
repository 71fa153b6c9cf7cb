#!/usr/bin/env bash
# scripts/reproduce.sh — the README's results table on the shipped ResNet-20.
#
#   ITERS=300 ACT_ITERS=100 CALIB=1024 bash scripts/reproduce.sh [RUN...]
#
# Each RUN (default: all, in the order below) is one `brecq quantize` writing
# results/RUN.json; a run whose record exists is skipped (delete it to re-run).
# Block runs use --compare, so their records also hold FP and nearest top-1.
# The table is printed by `brecq report results/*.json` at the end.
# Defaults are a reduced CPU budget; the paper's is ITERS=20000 ACT_ITERS=5000.
set -euo pipefail
export GOEXPERIMENT=simd
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ITERS=${ITERS:-300} ACT=${ACT_ITERS:-100} CALIB=${CALIB:-1024}
mkdir -p results
[ -x results/.brecq ] || go build -o results/.brecq ./cmd/brecq

flags() { # RUN name → quantize flags
  local name=$1 wa=${1%%-*} rest=${1#*-}
  local w=${wa#w}; w=${w%a*}; local a=${wa#*a}
  local f="--wbits $w --abits $a"
  case $rest in
    nearest) echo "$f --method nearest" ;;
    adaround) echo "$f --method adaround" ;;
    block) echo "$f --method brecq --granularity block --loss mse --compare" ;;
    fisher) echo "$f --method brecq --granularity block --loss fisher" ;;
    stage|net) echo "$f --method brecq --granularity $rest --loss mse" ;;
    *) echo "reproduce.sh: unknown run $name" >&2; return 1 ;;
  esac
}
ALL="w2a4-block w2a4-adaround w2a4-fisher w2a32-block w2a2-block w2a2-adaround w2a2-net w2a2-stage
     w4a32-block w4a4-block w3a32-block w2a32-adaround w2a32-fisher w2a2-fisher w2a4-stage w2a4-net
     w2a32-stage w2a32-net w4a32-adaround w4a4-adaround w3a32-adaround w4a32-fisher w4a4-fisher w3a32-fisher"
for name in ${@:-$ALL}; do
  out="results/$name.json"
  if [ -f "$out" ]; then echo "skip $name ($out exists)"; continue; fi
  f=$(flags "$name")
  echo "=== $name: quantize $f --iters $ITERS --act-iters $ACT --calib $CALIB"
  results/.brecq quantize --quiet --iters "$ITERS" --act-iters "$ACT" --calib "$CALIB" --json "$out" $f | grep -E '^\|' || true
done
results/.brecq report results/*.json
