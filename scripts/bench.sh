#!/usr/bin/env bash
# scripts/bench.sh — speed on this machine (Go backend): 3x3 convolution
# forward+backward GFLOP/s, ResNet-20 forward images/s at batch 256 and
# train-step time at batch 128 (go test benchmarks), then `brecq bench`:
# BRECQ calibration iteration times, caching, Fisher pass, extrapolated
# whole-calibration time and peak memory, each beside the reference of the
# authors' PyTorch code (PyTorch 1.13 CPU, 2 threads, same machine; e.g.
# ~0.1 s per train step at batch 128, 3.3 ms per block weight iteration) as
# a ratio, written to results/bench.json. Extra arguments go to `brecq bench`
# (e.g. scripts/bench.sh --full). Timings are wall time: other load shows.
set -euo pipefail
export GOEXPERIMENT=simd
cd "$(dirname "${BASH_SOURCE[0]}")/.."
count=${BENCH_COUNT:-3}
go test -run '^$' -bench 'Conv3x3FwdBwd' -benchtime 10x -count "$count" ./brecq/nn/
go test -run '^$' -bench 'Forward256|TrainStep128' -benchtime 5x -count "$count" ./brecq/fptrain/
mkdir -p results
go run ./cmd/brecq bench --json results/bench.json "$@"
