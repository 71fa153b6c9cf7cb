#!/usr/bin/env bash
# scripts/reproduce.sh — the README's results table on the shipped ResNet-20.
#
#   ITERS=300 ACT_ITERS=100 CALIB=1024 bash scripts/reproduce.sh [RUN...]
#
# Each RUN (default: all, in the order below) is one `brecq quantize` writing
# results/RUN.json; a run whose record exists is skipped (delete it to re-run).
# RUN is wWaA-METHOD[-cN][-iN][-aN]: METHOD one of nearest adaround block fisher
# fisher50 (Fisher weights mixed half-half with MSE) stage net qdrop; the optional suffixes override the calibration size (c),
# the weight iterations (i) and the activation iterations (a) of that run,
# e.g. w2a4-block-c128 or w2a2-block-a500. A RUN named mB-aA (e.g. m2.5-a32)
# is `brecq mixed` at a budget of B average bits per weight, BRECQ block MSE,
# with the sensitivity cached in results/sensitivity.json; a suffix -kXYZ
# searches bit-widths X, Y, Z instead of 2, 4, 8 (e.g. m3-a32-k234).
# Block runs use --compare, so their records also hold FP and nearest top-1.
# The table is printed by `brecq report results/*.json` at the end.
# Defaults are a reduced CPU budget; the paper's is ITERS=20000 ACT_ITERS=5000.
set -euo pipefail
export GOEXPERIMENT=simd
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ITERS=${ITERS:-300} ACT=${ACT_ITERS:-100} CALIB=${CALIB:-1024}
mkdir -p results
go build -o results/.brecq.new ./cmd/brecq && mv results/.brecq.new results/.brecq

flags() { # RUN name → brecq subcommand and flags
  local name=$1 wa=${1%%-*} rest=${1#*-} extra=""
  if [[ $name =~ ^m([0-9.]+)-a([0-9]+)(-k([2-8]+))?$ ]]; then
    local sens=results/sensitivity.json cands=""
    if [ -n "${BASH_REMATCH[4]}" ]; then
      sens=results/sensitivity-k${BASH_REMATCH[4]}.json
      cands=" --candidates $(echo "${BASH_REMATCH[4]}" | sed 's/./&,/g; s/,$//')"
    fi
    echo "mixed --budget ${BASH_REMATCH[1]} --abits ${BASH_REMATCH[2]} --method brecq --granularity block --loss mse --sens $sens$cands"
    return
  fi
  while [[ $rest =~ ^(.*)-([cia])([0-9]+)$ ]]; do
    rest=${BASH_REMATCH[1]}
    case ${BASH_REMATCH[2]} in
      c) extra="$extra --calib ${BASH_REMATCH[3]}" ;;
      i) extra="$extra --iters ${BASH_REMATCH[3]}" ;;
      a) extra="$extra --act-iters ${BASH_REMATCH[3]}" ;;
    esac
  done
  local w=${wa#w}; w=${w%a*}; local a=${wa#*a}
  local f="quantize --wbits $w --abits $a$extra"
  case $rest in
    nearest) echo "$f --method nearest" ;;
    adaround) echo "$f --method adaround" ;;
    block) echo "$f --method brecq --granularity block --loss mse --compare" ;;
    fisher) echo "$f --method brecq --granularity block --loss fisher" ;;
    fisher50) echo "$f --method brecq --granularity block --loss fisher --fisher-mix 0.5" ;;
    stage|net) echo "$f --method brecq --granularity $rest --loss mse" ;;
    qdrop) echo "$f --method qdrop --granularity block --loss mse" ;;
    *) echo "reproduce.sh: unknown run $name" >&2; return 1 ;;
  esac
}
ALL="w2a4-block w2a4-adaround w2a4-fisher w2a32-block w2a2-block w2a2-adaround w2a2-net w2a2-stage
     w4a32-block w4a4-block w3a32-block w2a32-adaround w2a32-fisher w2a2-fisher w2a4-stage w2a4-net
     w2a32-stage w2a32-net w4a32-adaround w4a4-adaround w3a32-adaround w4a32-fisher w4a4-fisher w3a32-fisher
     w2a4-qdrop w2a2-qdrop w3a2-block w3a2-adaround w3a2-fisher w2a2-block-a500 w2a2-adaround-a500
     w2a4-block-c128 w2a4-adaround-c128 w2a4-fisher-c128 m2.5-a32 m3-a32 m3.5-a32"
for name in ${@:-$ALL}; do
  out="results/$name.json"
  if [ -f "$out" ]; then echo "skip $name ($out exists)"; continue; fi
  f=$(flags "$name")
  echo "=== $name: ${f%% *} --iters $ITERS --act-iters $ACT --calib $CALIB ${f#* } (later flags win)"
  # The subcommand, then the budget flags, then the run's own (which win).
  results/.brecq ${f%% *} --quiet --iters "$ITERS" --act-iters "$ACT" --calib "$CALIB" --json "$out" ${f#* } | grep -E '^\|' || true
done
results/.brecq report results/*.json
