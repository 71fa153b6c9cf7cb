#!/usr/bin/env bash
# scripts/setup.sh — installs everything the notebooks (and their tests) need.
#
#   bash scripts/setup.sh [--no-apt] [--quiet] [--check]
#
# Idempotent: a second run changes nothing and takes a few seconds. Works on a
# fresh Debian 12 machine as root with no network but Debian's packages and the
# Go module proxy. Steps:
#   1. apt: dataset-fashion-mnist, Debian's Jupyter and, for the cross-check
#      tests only, python3-torch/torchvision/pil (apt-get update only if
#      a package is missing; skipped with --no-apt, which only verifies).
#   2. go mod download (the repo's module graph).
#   3. the tools pinned in go.mod: gonb and goimports are built inside the repo
#      (so go.mod's versions are used); gopls is built as
#      golang.org/x/tools/gopls@<version in go.mod> — see the note at that step.
#   4. registers the GoNB Jupyter kernel and pins GOEXPERIMENT=simd and a PATH
#      with the Go toolchain, goimports and gopls in its kernel.json "env".
#   5. --check: runs scripts/testdata_notebooks/ok.ipynb through the runner.
#   6. npm ci in scripts/ort: onnxruntime-node for the ONNX export tests
#      (skipped with a warning when node/npm are missing).
# Flags: --no-apt skip installing Debian packages (they are still verified);
#        --quiet  print only failures and the closing summary;
#        --check  end with a smoke run of one tiny notebook.
set -euo pipefail
export GOEXPERIMENT=simd
export DEBIAN_FRONTEND=noninteractive

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APT_PACKAGES=(
  dataset-fashion-mnist
  jupyter-core jupyter-client jupyter-nbconvert python3-nbconvert
  python3-nbclient python3-ipykernel jupyter-notebook python3-notebook
  # test-only cross-checks against PyTorch / torchvision / PIL (never used by the product)
  python3-torch python3-torchvision python3-pil
)
# Debian's Jupyter runs on Debian's python; a pyenv python3 earlier on PATH has
# no Jupyter, so these are always called by absolute path.
PY=/usr/bin/python3
JUPYTER=/usr/bin/jupyter

DO_APT=1 QUIET=0 CHECK=0
for arg in "$@"; do
  case "$arg" in
    --no-apt) DO_APT=0 ;;
    --quiet) QUIET=1 ;;
    --check) CHECK=1 ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (use --no-apt, --quiet, --check)" >&2; exit 2 ;;
  esac
done

LOG="$(mktemp -t brecq-setup.XXXXXX.log)"
trap 'rm -f "$LOG"' EXIT

say() { if (( ! QUIET )); then echo "$@"; fi; }
die() {
  echo "setup.sh: FAILED: $1" >&2
  shift
  for line in "$@"; do echo "  $line" >&2; done
  exit 1
}
# step DESCRIPTION HINT CMD...: runs CMD; output goes to the terminal, or to a
# log shown only on failure with --quiet. On failure: names the step, shows the
# output tail and the hint, exits 1.
step() {
  local what=$1 hint=$2
  shift 2
  say "==> $what"
  if (( QUIET )); then
    if ! "$@" >"$LOG" 2>&1; then
      echo "--- last lines of: $* ---" >&2
      tail -n 40 "$LOG" >&2
      die "$what" "$hint"
    fi
  elif ! "$@"; then
    die "$what" "command: $*" "$hint"
  fi
}

# --- 0. sanity -----------------------------------------------------------
[[ -f "$REPO/go.mod" ]] || die "no go.mod in $REPO" "run this script from a checkout of the repo"
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || die "the Go toolchain is not on PATH" \
  "install Go (see go.mod's 'go' line) and put its bin/ on PATH, e.g. export PATH=/usr/local/go/bin:\$PATH"
cd "$REPO"

# --- 1. Debian packages ----------------------------------------------------
missing_packages() {
  local p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}
mapfile -t MISSING < <(missing_packages)
if (( ${#MISSING[@]} )); then
  if (( ! DO_APT )); then
    die "Debian packages missing: ${MISSING[*]}" \
      "run without --no-apt, or: apt-get update && apt-get install -y ${MISSING[*]}"
  fi
  SUDO=()
  if (( EUID != 0 )); then
    command -v sudo >/dev/null 2>&1 || die "installing ${MISSING[*]} needs root" "run as root, or install them yourself and pass --no-apt"
    SUDO=(sudo -E)
  fi
  step "apt-get update" "check that Debian's package mirror is reachable (/etc/apt/sources.list*)" \
    "${SUDO[@]}" apt-get update -qq
  step "apt-get install ${MISSING[*]}" "see the apt output above; try: apt-get install -y ${MISSING[*]}" \
    "${SUDO[@]}" apt-get install -y -qq "${MISSING[@]}"
  mapfile -t STILL < <(missing_packages)
  (( ${#STILL[@]} == 0 )) || die "still not installed after apt-get: ${STILL[*]}" "apt-get install -y ${STILL[*]}"
else
  say "==> Debian packages already installed (${#APT_PACKAGES[@]} packages)"
fi
[[ -x "$JUPYTER" && -x "$PY" ]] || die "$JUPYTER or $PY is missing" "apt-get install -y ${APT_PACKAGES[*]}"
"$PY" -c 'import nbclient, nbformat, jupyter_client, ipykernel, notebook' 2>"$LOG" || {
  cat "$LOG" >&2
  die "$PY cannot import nbclient/nbformat/jupyter_client/ipykernel/notebook" "apt-get install -y ${APT_PACKAGES[*]}"
}
[[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] ||
  die "Fashion-MNIST files are not in /usr/share/datasets/fashion-mnist" "apt-get install -y dataset-fashion-mnist"

# --- 2. Go modules -----------------------------------------------------------
step "go mod download" "check the Go module proxy is reachable (go env GOPROXY) and go.mod/go.sum are consistent" \
  go mod download

# --- 3. Go tools pinned in go.mod --------------------------------------------
GOBIN_DIR="$(go env GOBIN)"
[[ -n "$GOBIN_DIR" ]] || GOBIN_DIR="$(go env GOPATH | cut -d: -f1)/bin"
GOROOT_BIN="$(go env GOROOT)/bin"
export PATH="$GOBIN_DIR:$GOROOT_BIN:$PATH"
# Run inside the repo, `go install PKG` (no @version) builds the version that
# go.mod's require/tool lines pin.
step "go install gonb goimports (versions from go.mod)" \
  "both must be 'tool' lines of go.mod: grep -A8 '^tool' go.mod" \
  go install github.com/janpfeifer/gonb golang.org/x/tools/cmd/goimports
# gopls cannot be built inside this module: MVS raises golang.org/x/tools to
# the version the repo needs (v0.52.0), and gopls v0.23.0 only compiles with
# its own x/tools (undefined: astutil.UnparenEnclosingCursor, ...). So build it
# as its own main module, at the version go.mod records for it.
GOPLS_VERSION="$(go list -m -f '{{.Version}}' golang.org/x/tools/gopls 2>"$LOG")" ||
  { cat "$LOG" >&2; die "go.mod does not pin golang.org/x/tools/gopls" "add it: go get -tool golang.org/x/tools/gopls@v0.23.0"; }
step "go install golang.org/x/tools/gopls@$GOPLS_VERSION" \
  "gopls newer than v0.23.0 needs a newer Go; check the proxy is reachable" \
  go install "golang.org/x/tools/gopls@$GOPLS_VERSION"
for tool in gonb goimports gopls; do
  [[ -x "$GOBIN_DIR/$tool" ]] || die "$GOBIN_DIR/$tool was not built" "see the go install output above"
done
GONB_VERSION="$(go list -m -f '{{.Version}}' github.com/janpfeifer/gonb)"
GOIMPORTS_VERSION="$(go list -m -f '{{.Version}}' golang.org/x/tools)"
"$GOBIN_DIR/gopls" version >"$LOG" 2>&1 || { cat "$LOG" >&2; die "gopls does not run" "rebuild: go install golang.org/x/tools/gopls@$GOPLS_VERSION"; }

# --- 4. Jupyter kernel -------------------------------------------------------
step "register the GoNB kernel (gonb --install)" \
  "gonb needs goimports and gopls on PATH (they are in $GOBIN_DIR)" \
  "$GOBIN_DIR/gonb" --install --logtostderr --raw_error
KERNEL_DIR="$("$JUPYTER" kernelspec list --json 2>/dev/null |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)["kernelspecs"]["gonb"]["resource_dir"])' 2>/dev/null)" ||
  die "jupyter does not list the gonb kernel after gonb --install" \
    "check JUPYTER_DATA_DIR / ~/.local/share/jupyter/kernels/gonb, then: $JUPYTER kernelspec list"
KERNEL_JSON="$KERNEL_DIR/kernel.json"
# The kernel inherits the environment of whatever starts Jupyter; pin what Go
# cells need so `jupyter notebook` started from any shell works. jupyter_client
# (>= 7) replaces ${PATH} with the launching environment's PATH; the trailing
# system dirs keep `!` shell cells working for clients that do not substitute.
KERNEL_PATH="$GOROOT_BIN:$GOBIN_DIR:\${PATH}:/usr/local/bin:/usr/bin:/bin"
"$PY" - "$KERNEL_JSON" "$KERNEL_PATH" <<'PYEOF' || die "could not edit $KERNEL_JSON" "check the file is valid JSON and writable; rerun setup.sh"
import json, os, sys, tempfile
path, kernel_path = sys.argv[1], sys.argv[2]
with open(path) as f:
    spec = json.load(f)
env = spec.get("env") or {}
env["GOEXPERIMENT"] = "simd"
env["PATH"] = kernel_path
spec["env"] = env
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".kernel.json.")
with os.fdopen(fd, "w") as f:
    json.dump(spec, f, indent=1)
    f.write("\n")
os.chmod(tmp, 0o644)
os.replace(tmp, path)
PYEOF
"$PY" - "$KERNEL_JSON" "$GOBIN_DIR/gonb" <<'PYEOF' || die "$KERNEL_JSON is not as expected" "rerun setup.sh; if it persists, delete $(dirname "$KERNEL_JSON") and rerun"
import json, sys
spec = json.load(open(sys.argv[1]))
assert spec["argv"][0] == sys.argv[2], f"kernel argv[0] is {spec['argv'][0]}, want {sys.argv[2]}"
assert "-raw_error=true" in spec["argv"], "kernel was not registered with --raw_error"
assert spec["env"]["GOEXPERIMENT"] == "simd"
PYEOF

# --- 5. optional smoke run -----------------------------------------------------
if (( CHECK )); then
  step "smoke run: scripts/testdata_notebooks/ok.ipynb" \
    "run it by hand: $PY scripts/run_notebooks.py scripts/testdata_notebooks/ok.ipynb" \
    "$PY" "$REPO/scripts/run_notebooks.py" "$REPO/scripts/testdata_notebooks/ok.ipynb"
fi

# --- 6. ONNX Runtime (npm) for the ONNX export tests ---------------------------
# onnxruntime-node, pinned by scripts/ort/package-lock.json, ships the Linux
# x64 CPU library inside the npm package; --ignore-scripts skips its
# postinstall, which only fetches CUDA binaries from nuget.org. Without node /
# npm the ONNX Runtime tests skip (with a message saying how to install).
ORT_DIR="$REPO/scripts/ort"
ORT_STATUS="not installed (no node/npm: apt-get install nodejs npm; the ONNX Runtime tests skip)"
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  ort_want="$(node -p "require('$ORT_DIR/package-lock.json').packages['node_modules/onnxruntime-node'].version")"
  ort_have="$(node -p "require('$ORT_DIR/node_modules/onnxruntime-node/package.json').version" 2>/dev/null || true)"
  if [[ "$ort_have" != "$ort_want" ]]; then
    step "npm ci in scripts/ort (onnxruntime-node $ort_want)" \
      "check the npm registry is reachable (npm config get registry); then: cd scripts/ort && npm ci --ignore-scripts" \
      npm ci --prefix "$ORT_DIR" --ignore-scripts --no-audit --no-fund
  else
    say "==> onnxruntime-node $ort_want already installed in scripts/ort"
  fi
  node -e "require('$ORT_DIR/node_modules/onnxruntime-node')" 2>"$LOG" || {
    cat "$LOG" >&2
    die "onnxruntime-node does not load" "rm -rf $ORT_DIR/node_modules and rerun setup.sh"
  }
  ORT_STATUS="onnxruntime-node $ort_want ($ORT_DIR, node $(node --version))"
else
  echo "setup.sh: warning: node/npm not found; ONNX Runtime not installed (its tests will skip)" >&2
fi

# --- summary -------------------------------------------------------------------
cat <<EOF
setup.sh: OK
  go        $(go version | cut -d' ' -f3-) (GOEXPERIMENT=$GOEXPERIMENT)
  gonb      $GONB_VERSION  $GOBIN_DIR/gonb
  goimports x/tools $GOIMPORTS_VERSION  $GOBIN_DIR/goimports
  gopls     $GOPLS_VERSION  $GOBIN_DIR/gopls
  jupyter   notebook $("$PY" -c 'import notebook; print(notebook.__version__)'), nbclient $("$PY" -c 'import nbclient; print(nbclient.__version__)')  ($JUPYTER, $PY)
  kernel    $KERNEL_JSON (env: GOEXPERIMENT=simd, PATH=$KERNEL_PATH)
  data      /usr/share/datasets/fashion-mnist
  ort       $ORT_STATUS
Open the notebooks:  $JUPYTER notebook notebooks/
Run them headless:   $PY scripts/run_notebooks.py   (BRECQ_BUDGET=ci by default there; --env BRECQ_BUDGET=full)
EOF
