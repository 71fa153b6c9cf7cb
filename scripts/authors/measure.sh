#!/usr/bin/env bash
# The comparison with the authors' code at their budget (2 000 weight / 500 activation iterations
# per unit, 1 024 calibration images, batch 32, seed 1) on the shipped ResNet-20:
# W2A4 block and layer, W2A2 block and layer (seeds 1, 2, 3, 5: the W2A2 result spreads over several
# points between seeds in both codes), nearest at W2A4 and W2A2 — brecq with --authors (the
# activation stage as their code runs it) and --unit-losses (each unit's whole-cache loss before and
# after each stage, as compare.py --unit-losses records for theirs).
#
#   bash scripts/authors/measure.sh ~/src/BRECQ
#
# Each brecq run record that already exists in results/ is kept (delete it to re-run); then the
# authors' code runs on every record (results/authors/<record>.json) and the table is printed.
# On an idle 2-core machine: ~15 min per brecq reconstruction run, a few minutes per authors' run.
set -euo pipefail
authors=${1:?usage: measure.sh <local clone of github.com/yhhhli/BRECQ>}
cd "$(dirname "$0")/../.."
export GOEXPERIMENT=simd
bin=$(mktemp -d)/brecq
go build -o "$bin" ./cmd/brecq

common=(--iters 2000 --act-iters 500 --calib 1024 --authors --unit-losses --seed 1 --quiet)
run() { # name, flags...
	local name=$1; shift
	if [[ -f results/$name.json ]]; then echo "keep results/$name.json"; return; fi
	"$bin" quantize "${common[@]}" "$@" --json "results/$name.json"
}
run w2a2-block-authors-2000    --wbits 2 --abits 2 --method brecq --granularity block
run w2a2-adaround-authors-2000 --wbits 2 --abits 2 --method adaround --granularity layer
for seed in 2 3 5; do
	common=(--iters 2000 --act-iters 500 --calib 1024 --authors --unit-losses --seed $seed --quiet)
	run w2a2-block-authors-2000-seed$seed --wbits 2 --abits 2 --method brecq --granularity block
	run w2a2-adaround-authors-2000-seed$seed --wbits 2 --abits 2 --method adaround --granularity layer
done
common=(--iters 2000 --act-iters 500 --calib 1024 --authors --unit-losses --seed 1 --quiet)
run w2a4-adaround-authors-2000 --wbits 2 --abits 4 --method adaround --granularity layer
run w2a4-block-authors-2000    --wbits 2 --abits 4 --method brecq --granularity block
run w2a4-nearest-authors       --wbits 2 --abits 4 --method nearest
run w2a2-nearest-authors       --wbits 2 --abits 2 --method nearest

recs=(results/w2a4-nearest-authors.json results/w2a2-nearest-authors.json results/w2a4-block-authors-2000.json
      results/w2a2-block-authors-2000.json results/w2a2-block-authors-2000-seed2.json
      results/w2a2-block-authors-2000-seed3.json results/w2a2-block-authors-2000-seed5.json
      results/w2a2-adaround-authors-2000.json results/w2a2-adaround-authors-2000-seed2.json
      results/w2a2-adaround-authors-2000-seed3.json results/w2a2-adaround-authors-2000-seed5.json
      results/w2a4-adaround-authors-2000.json)
todo=()
for r in "${recs[@]}"; do
	[[ -f results/authors/$(basename "$r") ]] || todo+=("$r")
done
if ((${#todo[@]})); then
	/usr/bin/python3 scripts/authors/compare.py --authors-repo "$authors" --unit-losses \
		--out-dir results/authors "${todo[@]}"
fi
/usr/bin/python3 scripts/authors/compare.py --table-only results/authors "${recs[@]}"
