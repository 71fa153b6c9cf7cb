#!/usr/bin/python3
"""Execute GoNB notebooks headless and fail honestly.

    /usr/bin/python3 scripts/run_notebooks.py [options] [NOTEBOOK.ipynb ...]

Runs every notebooks/*.ipynb (or the notebooks given) with the "gonb" Jupyter
kernel through nbclient, one fresh kernel per notebook, started in the
notebook's folder. A notebook fails at its first cell that
  - has an "error" output or an execute_reply with status "error" (GoNB
    reports compile errors, `go get` errors and bad special commands so), or
  - wrote to stderr one of the markers of a failed program: GoNB only appends
    "exit status N" / "signal: S" to the cell's stderr when the cell's program
    (or a `!` shell command) fails, and `jupyter nbconvert --execute` would
    exit 0 on that. Matched, anchored at the start of a line: "exit status N"
    (N != 0), "signal: ", "panic: ", "fatal error: ", "goroutine N [",
    "--- FAIL: ", "FAIL", and compiler-style "file.go:L:C: " lines;
    "--- FAIL: " and "FAIL" lines on stdout count too (go test prints there).
    Ordinary logging (klog's "I1127 ..." lines, log.Printf's dated lines)
    never starts a line with these, so it does not trigger.
  - timed out (--timeout seconds per cell) or the kernel died.
Remaining cells of a failed notebook are not run.

The kernel inherits this process's environment (plus --env KEY=VAL and the
"env" map of the kernel's kernel.json, which wins: setup.sh pins
GOEXPERIMENT=simd and PATH there). BRECQ_BUDGET defaults to "ci" here
(notebooks read it to pick a reduced or full budget); pass
--env BRECQ_BUDGET=full for the full runs.

Prints each notebook's wall time and closes with a line "N passed, N failed".
Exit status: 0 if all passed, 1 if any failed, 2 on bad usage/setup.
"""

import argparse
import glob
import os
import re
import sys
import tempfile
import time

DEBIAN_PYTHON = "/usr/bin/python3"

try:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
except ImportError as e:  # e.g. a pyenv python3 earlier on PATH, without Jupyter
    if os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON) and os.path.exists(DEBIAN_PYTHON):
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON] + sys.argv)
    sys.exit(f"run_notebooks.py: {e}; install Debian's Jupyter (bash scripts/setup.sh) and run with {DEBIAN_PYTHON}")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Markers of a failed program in a cell's stderr, each anchored at a line start.
STDERR_MARKERS = [
    # GoNB's jpyexec writes cmd.Wait()'s error: "exit status 3", "signal: killed"
    # (optionally after "^C" when interrupted).
    ("exit status", re.compile(r"^(?:\^C\s*)?exit status (?P<code>-?\d+)\s*$", re.M)),
    ("signal", re.compile(r"^(?:\^C\s*)?signal: \S.*$", re.M)),
    ("panic", re.compile(r"^panic: .*$", re.M)),
    ("fatal error", re.compile(r"^fatal error: .*$", re.M)),
    ("goroutine trace", re.compile(r"^goroutine \d+ \[.*$", re.M)),
    ("test failure", re.compile(r"^(?:\s*--- FAIL: .*|FAIL(?:\s.*)?)$", re.M)),
    ("compile error", re.compile(r"^(?:\S+/)?[\w.\-]+\.go:\d+:\d+: .*$", re.M)),
]
# go test binaries (%test cells) report on stdout.
STDOUT_MARKERS = [
    ("test failure", re.compile(r"^(?:\s*--- FAIL: .*|FAIL(?:\s.*)?)$", re.M)),
]

MAX_REPORT_LINES = 40


def stream_text(cell, name):
    return "".join(
        o.get("text", "") for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == name
    )


def excerpt(text, max_lines=MAX_REPORT_LINES):
    lines = text.rstrip("\n").splitlines()
    if len(lines) > max_lines:
        lines = lines[: max_lines // 2] + [f"... ({len(lines) - max_lines} lines cut) ..."] + lines[-max_lines // 2:]
    return "\n".join("    | " + line for line in lines)


def cell_failure(cell, reply):
    """Returns a description of why the executed cell failed, or None."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            tb = "\n".join(out.get("traceback") or [])
            body = tb if tb.strip() else f"{out.get('ename', '')}: {out.get('evalue', '')}"
            desc = f"error output ({out.get('ename', '?')}):\n" + excerpt(strip_ansi(body))
            # GoNB ≥ 0.11.5 reports a failed program as an error output that
            # says only "exit status N"; the reason (panic, log.Fatal, a
            # failed test) is in the stderr / stdout streams: show them too.
            for name in ("stderr", "stdout"):
                text = strip_ansi(stream_text(cell, name))
                if text.strip():
                    desc += f"\n{name} was:\n" + excerpt(text)
            return desc
    if reply is not None and reply.get("content", {}).get("status") == "error":
        c = reply["content"]
        return "execute_reply status error:\n" + excerpt(strip_ansi(f"{c.get('ename', '')}: {c.get('evalue', '')}"))
    found, shown = [], []
    for name, markers in (("stderr", STDERR_MARKERS), ("stdout", STDOUT_MARKERS)):
        # GoNB streams a program's output in arbitrary chunks (a panic arrives
        # as a dozen stream outputs): join them before matching lines.
        text = strip_ansi(stream_text(cell, name))
        hit = False
        for label, rx in markers:
            for m in rx.finditer(text):
                if label == "exit status" and int(m.group("code")) == 0:
                    continue
                found.append(f"{label} in {name}: {m.group(0).strip()!r}")
                hit = True
                break
        if hit:
            shown.append(f"{name} was:\n" + excerpt(text))
    if found:
        return "; ".join(found) + "\n" + "\n".join(shown)
    return None


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(s):
    return ANSI.sub("", s)


def clear_cell(cell):
    if cell.get("cell_type") == "code":
        cell["outputs"] = []
        cell["execution_count"] = None


def write_atomically(nb, path):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        except OSError:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run_notebook(path, args, env):
    """Runs one notebook; returns (ok, message)."""
    nb = nbformat.read(path, as_version=4)
    nbdir = os.path.dirname(os.path.abspath(path))
    replies = {}

    def on_cell_executed(cell, cell_index, execute_reply):
        replies[cell_index] = execute_reply

    client = NotebookClient(
        nb,
        kernel_name=args.kernel,
        timeout=args.timeout,
        startup_timeout=args.startup_timeout,
        allow_errors=True,  # we judge the outputs ourselves, cell by cell
        record_timing=False,  # keep execution timestamps out of saved notebooks
        resources={"metadata": {"path": nbdir}},
        on_cell_executed=on_cell_executed,
    )
    failure = None
    kernel_log = tempfile.TemporaryFile(mode="w+b")
    try:
        # The kernel gets env (inherited environment + --env) and, as any
        # Jupyter kernel, the "env" map of its kernel.json on top; its own
        # stderr (GoNB's klog) goes to a log shown if the kernel dies.
        with client.setup_kernel(env=env, cwd=nbdir, stderr=kernel_log, stdout=kernel_log):
            for index, cell in enumerate(nb.cells):
                if failure is not None:
                    clear_cell(cell)  # not run: do not keep stale outputs
                    continue
                if cell.get("cell_type") != "code" or not cell.get("source", "").strip():
                    continue
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    failure = (index, f"timed out after {args.timeout} s (--timeout)")
                    continue
                except DeadKernelError as e:
                    failure = (index, f"kernel died ({e}); kernel log:\n" + excerpt(read_log(kernel_log)))
                    continue
                why = cell_failure(cell, replies.get(index))
                if why:
                    failure = (index, why)
    except (CellTimeoutError, DeadKernelError, RuntimeError, TimeoutError) as e:
        if failure is None:
            failure = (None, f"kernel failure: {type(e).__name__}: {e}\nkernel log:\n" + excerpt(read_log(kernel_log)))
    finally:
        kernel_log.close()

    if args.write:
        write_atomically(nb, path)
    if failure is None:
        return True, ""
    index, why = failure
    where = f"cell {index}" if index is not None else "kernel"
    src = ""
    if index is not None:
        first = nb.cells[index].get("source", "").strip().splitlines()
        src = f" (source starts {first[0][:60]!r})" if first else ""
    return False, f"{where}{src}: {why}"


def read_log(f):
    try:
        f.flush()
        f.seek(0)
        return f.read().decode("utf-8", "replace")[-8000:]
    except (OSError, ValueError):
        return ""


def main():
    p = argparse.ArgumentParser(
        description="Execute GoNB notebooks headless; fail on cell errors and failed Go programs.")
    p.add_argument("notebooks", nargs="*",
                   help="notebooks to run (default: notebooks/*.ipynb of the repo)")
    p.add_argument("--timeout", type=int, default=1800, help="per-cell timeout in seconds (default 1800)")
    p.add_argument("--startup-timeout", type=int, default=120, help="kernel start timeout in seconds (default 120)")
    p.add_argument("--write", action="store_true",
                   help="save each executed notebook with its outputs back in place (atomically)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VAL",
                   help="set KEY=VAL in the kernel's environment (repeatable), e.g. --env BRECQ_BUDGET=full")
    p.add_argument("--kernel", default="gonb", help="Jupyter kernel name (default gonb)")
    p.add_argument("--allow-empty", action="store_true",
                   help="exit 0 when there is no notebook to run (default: that is an error)")
    args = p.parse_args()

    env = dict(os.environ)
    env.setdefault("GOEXPERIMENT", "simd")
    env.setdefault("BRECQ_BUDGET", "ci")
    home_bin = os.path.join(os.path.expanduser("~"), "go", "bin")
    env["PATH"] = os.pathsep.join([home_bin, "/usr/local/go/bin", env.get("PATH", "/usr/bin:/bin")])
    for kv in args.env:
        if "=" not in kv:
            p.error(f"--env wants KEY=VAL, got {kv!r}")
        k, v = kv.split("=", 1)
        env[k] = v

    try:
        spec = KernelSpecManager().get_kernel_spec(args.kernel)
    except NoSuchKernel:
        print(f"run_notebooks.py: no Jupyter kernel {args.kernel!r}; run: bash scripts/setup.sh", file=sys.stderr)
        return 2
    if spec.argv and not os.path.exists(spec.argv[0]):
        print(f"run_notebooks.py: kernel {args.kernel!r} runs {spec.argv[0]}, which does not exist; "
              "run: bash scripts/setup.sh", file=sys.stderr)
        return 2
    for k in sorted(set(env) & set(spec.env or {})):
        if k != "PATH" and any(kv.startswith(k + "=") for kv in args.env) and spec.env[k] != env[k]:
            print(f"run_notebooks.py: warning: kernel.json pins {k}={spec.env[k]}, which overrides --env {k}={env[k]}",
                  file=sys.stderr)

    paths = args.notebooks or sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))
    missing = [x for x in paths if not os.path.isfile(x)]
    if missing:
        print(f"run_notebooks.py: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    if not paths:
        print("run_notebooks.py: no notebooks to run (notebooks/*.ipynb is empty)",
              file=sys.stderr if not args.allow_empty else sys.stdout)
        print("0 passed, 0 failed")
        return 0 if args.allow_empty else 2

    budget = env.get("BRECQ_BUDGET", "")
    print(f"running {len(paths)} notebook(s) with kernel {args.kernel!r}, BRECQ_BUDGET={budget}, "
          f"timeout {args.timeout} s/cell", flush=True)
    passed = failed = 0
    total_start = time.monotonic()
    for path in paths:
        rel = os.path.relpath(path)
        if rel.startswith(".."):
            rel = os.path.abspath(path)
        start = time.monotonic()
        try:
            ok, msg = run_notebook(path, args, env)
        except Exception as e:  # a broken notebook file, a kernel that will not start, ...
            ok, msg = False, f"{type(e).__name__}: {e}"
        took = time.monotonic() - start
        if ok:
            passed += 1
            print(f"PASS {rel} ({took:.1f} s)", flush=True)
        else:
            failed += 1
            print(f"FAIL {rel} ({took:.1f} s): {msg}", flush=True)
    print(f"total {time.monotonic() - total_start:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
