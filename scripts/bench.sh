#!/usr/bin/env bash
# scripts/bench.sh — speed of the FP engine on this machine (Go backend):
# 3x3 convolution forward+backward GFLOP/s, ResNet-20 forward images/s at
# batch 256 and train-step time at batch 128. Reference (PyTorch 1.13 CPU,
# 2 threads, same machine): ~0.1 s per train step at batch 128.
set -euo pipefail
export GOEXPERIMENT=simd
cd "$(dirname "${BASH_SOURCE[0]}")/.."
count=${BENCH_COUNT:-3}
go test -run '^$' -bench 'Conv3x3FwdBwd' -benchtime 10x -count "$count" ./brecq/nn/
go test -run '^$' -bench 'Forward256|TrainStep128' -benchtime 5x -count "$count" ./brecq/fptrain/
