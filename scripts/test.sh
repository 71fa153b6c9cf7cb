#!/usr/bin/env bash
# scripts/test.sh — the whole test suite: format, vet, staticcheck (pinned as
# a go.mod tool), Go tests, the notebook runner's self-test and every
# notebook, headless.
#
#   bash scripts/test.sh            # CI budget (BRECQ_BUDGET=ci: reduced sizes)
#   BRECQ_BUDGET=full bash scripts/test.sh
#
# Needs what scripts/setup.sh installs (Jupyter, the GoNB kernel,
# dataset-fashion-mnist). Prints one "N passed, N failed" line per part and a
# closing one; exits non-zero if anything failed.
set -uo pipefail
export GOEXPERIMENT=simd
export BRECQ_BUDGET="${BRECQ_BUDGET:-ci}"
export GOMLX_BACKEND="${GOMLX_BACKEND:-}"
[ -z "$GOMLX_BACKEND" ] && unset GOMLX_BACKEND
cd "$(dirname "${BASH_SOURCE[0]}")/.."

passed=0 failed=0
part() { # name, command...
  local name=$1; shift
  local t0=$SECONDS
  echo "=== $name"
  if "$@"; then
    passed=$((passed + 1)); echo "--- ok: $name ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1)); echo "--- FAILED: $name ($((SECONDS - t0)) s)"
  fi
}

gofmt_clean() {
  local out; out=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
  [ -z "$out" ] || { echo "gofmt would change: $out"; return 1; }
}

part "gofmt" gofmt_clean
part "go vet" go vet ./...
part "staticcheck" go tool staticcheck ./...
part "go test" go test -count=1 -timeout 20m ./...
part "notebook runner self-test" bash scripts/test_notebook_runner.sh
part "notebooks (BRECQ_BUDGET=$BRECQ_BUDGET)" /usr/bin/python3 scripts/run_notebooks.py --allow-empty

echo
echo "test.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
