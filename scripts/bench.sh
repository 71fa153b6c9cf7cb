#!/usr/bin/env bash
# scripts/bench.sh — speed on this machine (Go backend): the micro-benchmarks
# (one forward+backward pass of each convolution case and path of brecq/nn,
# ResNet-20 forward at batch 256 and one train step at batch 128), each timed
# for $BENCH_DURATION (default 5s) by github.com/janpfeifer/go-benchmarks,
# which prints mean, median and 10th / 90th percentile per call (TestBench…
# functions, see internal/microbench; `go test -bench` runs the same code as
# Go benchmarks), then `brecq bench`:
# BRECQ calibration iteration times, caching, Fisher pass, extrapolated
# whole-calibration time and peak memory, each beside the reference of the
# authors' PyTorch code (PyTorch 1.13 CPU, 2 threads, same machine; e.g.
# ~0.1 s per train step at batch 128, 3.3 ms per block weight iteration) as
# a ratio, written to results/bench.json. Extra arguments go to `brecq bench`
# (e.g. scripts/bench.sh --full). Timings are wall time: other load shows.
set -euo pipefail
export GOEXPERIMENT=simd
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dur=${BENCH_DURATION:-5s}
go test -count=1 -v -run '^TestBenchConvFwdBwd$' ./brecq/nn/ -bench_duration "$dur"
go test -count=1 -v -run '^TestBenchResNet20$' ./brecq/fptrain/ -bench_duration "$dur"
mkdir -p results
go run ./cmd/brecq bench --json results/bench.json "$@"
