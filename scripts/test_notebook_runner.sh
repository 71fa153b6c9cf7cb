#!/usr/bin/env bash
# scripts/test_notebook_runner.sh — self-test of scripts/run_notebooks.py.
#
# Runs the runner on each fixture of scripts/testdata_notebooks and checks that
# ok.ipynb and repo.ipynb pass and every other fixture fails, with exit code 1
# and a message naming the cause. Needs the GoNB kernel (bash scripts/setup.sh).
# Closes with "N passed, N failed" for its own checks; exits 1 if any failed.
set -euo pipefail
export GOEXPERIMENT=simd

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FIX="$REPO/scripts/testdata_notebooks"
RUNNER=(/usr/bin/python3 "$REPO/scripts/run_notebooks.py")
cd "$REPO"
TMP="$(mktemp -d -t nbrunner-test.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL - $1: $2"
  [[ -f "$TMP/out" ]] && sed 's/^/       > /' "$TMP/out" | head -n 40
  return 0
}

# check NAME WANT_RC "SUBSTRING"... -- RUNNER-ARGS...
# Runs the runner with RUNNER-ARGS and checks its exit code and that its output
# (stdout+stderr) holds every SUBSTRING.
check() {
  local name=$1 want_rc=$2
  shift 2
  local want=()
  while [[ $1 != -- ]]; do want+=("$1"); shift; done
  shift
  local rc=0 start=$SECONDS
  "${RUNNER[@]}" "$@" >"$TMP/out" 2>&1 || rc=$?
  if [[ $rc != "$want_rc" ]]; then
    fail "$name" "exit code $rc, want $want_rc"
    return 0
  fi
  local s
  for s in "${want[@]}"; do
    if ! grep -qF -- "$s" "$TMP/out"; then
      fail "$name" "output lacks: $s"
      return 0
    fi
  done
  pass "$name ($((SECONDS - start)) s)"
}

if ! /usr/bin/python3 -c 'from jupyter_client.kernelspec import KernelSpecManager as K; K().get_kernel_spec("gonb")' 2>/dev/null; then
  echo "test_notebook_runner.sh: the gonb Jupyter kernel is not installed; run: bash scripts/setup.sh" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# Notebooks that must pass.
check "ok.ipynb passes" 0 "PASS scripts/testdata_notebooks/ok.ipynb" "1 passed, 0 failed" -- \
  "$FIX/ok.ipynb"
check "repo.ipynb passes (repo module wired by the first cell)" 0 "PASS scripts/testdata_notebooks/repo.ipynb" "1 passed, 0 failed" -- \
  "$FIX/repo.ipynb"

# Notebooks that must fail, with the cause named.
check "panic.ipynb fails at cell 2" 1 "FAIL scripts/testdata_notebooks/panic.ipynb" "cell 2" \
  "panic: boom from the panic fixture" "exit status 2" "0 passed, 1 failed" -- "$FIX/panic.ipynb"
check "exit.ipynb fails (os.Exit(3))" 1 "FAIL scripts/testdata_notebooks/exit.ipynb" "cell 1" \
  "exit status 3" "0 passed, 1 failed" -- "$FIX/exit.ipynb"
check "logfatal.ipynb fails (log.Fatal)" 1 "FAIL scripts/testdata_notebooks/logfatal.ipynb" "cell 1" \
  "exit status 1" "fatal from the logfatal fixture" "0 passed, 1 failed" -- "$FIX/logfatal.ipynb"
check "failtest.ipynb fails (%test fails)" 1 "FAIL scripts/testdata_notebooks/failtest.ipynb" "cell 2" \
  "--- FAIL: TestCube" "0 passed, 1 failed" -- "$FIX/failtest.ipynb"
check "compile.ipynb fails (compile error)" 1 "FAIL scripts/testdata_notebooks/compile.ipynb" "cell 1" \
  "error output" "cannot use \"not an int\"" "0 passed, 1 failed" -- "$FIX/compile.ipynb"
check "signal.ipynb fails (SIGKILL)" 1 "FAIL scripts/testdata_notebooks/signal.ipynb" "signal: killed" \
  "0 passed, 1 failed" -- "$FIX/signal.ipynb"
check "timeout.ipynb fails (--timeout 5)" 1 "FAIL scripts/testdata_notebooks/timeout.ipynb" \
  "timed out after 5 s" "0 passed, 1 failed" -- --timeout 5 "$FIX/timeout.ipynb"

# Several notebooks in one run: counted, the run fails.
check "mixed run counts passes and failures" 1 "PASS scripts/testdata_notebooks/ok.ipynb" \
  "FAIL scripts/testdata_notebooks/exit.ipynb" "FAIL scripts/testdata_notebooks/compile.ipynb" \
  "1 passed, 2 failed" -- "$FIX/ok.ipynb" "$FIX/exit.ipynb" "$FIX/compile.ipynb"

# Usage errors.
check "a missing notebook is a usage error" 2 "not found" -- "$TMP/nope.ipynb"

# --env reaches the kernel; --write saves outputs atomically; default leaves files alone.
mkdir -p "$TMP/nb"
cat >"$TMP/nb/env.ipynb" <<'EOF'
{
 "cells": [
  {"cell_type": "code", "execution_count": null, "id": "env-cell", "metadata": {}, "outputs": [],
   "source": ["import \"os\"\n", "\n", "%%\n",
              "fmt.Printf(\"BRECQ_BUDGET=%s GOEXPERIMENT=%s\\n\", os.Getenv(\"BRECQ_BUDGET\"), os.Getenv(\"GOEXPERIMENT\"))\n",
              "if os.Getenv(\"BRECQ_BUDGET\") != os.Getenv(\"WANT_BUDGET\") {\n",
              "\tpanic(\"BRECQ_BUDGET=\" + os.Getenv(\"BRECQ_BUDGET\") + \", want \" + os.Getenv(\"WANT_BUDGET\"))\n",
              "}"]}
 ],
 "metadata": {"kernelspec": {"display_name": "Go (gonb)", "language": "go", "name": "gonb"},
              "language_info": {"name": "go"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
EOF
before="$(sha256sum "$TMP/nb/env.ipynb")"
check "BRECQ_BUDGET defaults to ci" 0 "BRECQ_BUDGET=ci" "1 passed, 0 failed" -- \
  --env WANT_BUDGET=ci "$TMP/nb/env.ipynb"
if [[ "$(sha256sum "$TMP/nb/env.ipynb")" == "$before" ]]; then
  pass "without --write the notebook is not modified"
else
  fail "without --write the notebook is not modified" "env.ipynb changed"
fi
WANT_BUDGET=full check "--env BRECQ_BUDGET=full reaches the kernel (and the inherited env too)" 0 \
  "1 passed, 0 failed" -- --env BRECQ_BUDGET=full --write "$TMP/nb/env.ipynb"
if grep -qF 'BRECQ_BUDGET=full GOEXPERIMENT=simd' "$TMP/nb/env.ipynb" &&
  [[ -z "$(find "$TMP/nb" -name '.*.tmp')" ]]; then
  pass "--write saved the outputs (BRECQ_BUDGET=full GOEXPERIMENT=simd), no temp file left"
else
  fail "--write saved the outputs" "$(cat "$TMP/nb/env.ipynb")"
fi

echo "$PASSED passed, $FAILED failed"
(( FAILED == 0 ))
