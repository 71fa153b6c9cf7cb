#!/usr/bin/env bash
# scripts/reproduce.sh — the README's results table on the shipped ResNet-20.
#
#   bash scripts/reproduce.sh [NAME...]
#
# Runs the command lines of the manifest results/runs.txt, one run record
# each (the file named by the line's --json flag). A line whose record exists
# is skipped (delete the record to re-run it). NAMEs (record names without
# results/ and .json, e.g. w2a4-block m3-a32) restrict the run to those
# lines. The table is printed by `brecq report results/*.json` at the end.
# To add a run, add its line to results/runs.txt.
set -euo pipefail
export GOEXPERIMENT=simd
cd "$(dirname "${BASH_SOURCE[0]}")/.."
manifest=results/runs.txt
go build -o results/.brecq.new ./cmd/brecq && mv results/.brecq.new results/.brecq

# record_of LINE... → the value of the line's --json flag.
record_of() {
  local out=""
  while [ $# -gt 0 ]; do
    if [ "$1" = --json ] && [ $# -gt 1 ]; then out=$2; shift; fi
    shift
  done
  echo "$out"
}

declare -A wanted=()
for name in "$@"; do wanted[$name]=1; done
found=0
while IFS= read -r line || [ -n "$line" ]; do
  case $line in ''|'#'*) continue ;; esac
  read -r -a argv <<<"$line"
  if [ "${argv[0]}" != brecq ]; then
    echo "reproduce.sh: $manifest: line does not start with 'brecq': $line" >&2
    exit 1
  fi
  out=$(record_of "${argv[@]}")
  if [ -z "$out" ]; then
    echo "reproduce.sh: $manifest: line has no --json record: $line" >&2
    exit 1
  fi
  name=$(basename "$out" .json)
  if [ $# -gt 0 ] && [ -z "${wanted[$name]:-}" ]; then continue; fi
  found=$((found + 1))
  if [ -f "$out" ]; then echo "skip $name ($out exists)"; continue; fi
  echo "=== $name: $line"
  results/.brecq "${argv[@]:1}" | grep -E '^\|' || true
done <"$manifest"
if [ $# -gt 0 ] && [ "$found" -ne $# ]; then
  echo "reproduce.sh: some of '$*' are not in $manifest" >&2
  exit 1
fi
results/.brecq report results/*.json
