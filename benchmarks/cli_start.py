"""Start-up of the CLI's headline command as a user runs it: a fresh process each time, first run (empty
``SENTENCEKIT_HOME``: the sample corpus is embedded into a stored index) then second runs (the index and
the model's ONNX export exist). Reports wall time and peak RSS of each process (``os.wait4``), and whether
a second run imported torch / transformers.

    .venv/bin/python benchmarks/cli_start.py                        # sentencekit search "How do I get a refund?"
    .venv/bin/python benchmarks/cli_start.py --runs 10 --backend torch

The ONNX export of a model is kept beside the model when that folder is writable (else under
``$SENTENCEKIT_HOME/onnx``), so a "first run" here includes the export only when neither holds it yet.
Targets (issue 13): second run <= 1.0 s wall and <= 300 MiB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parent.parent / "src")
PROBE = ("import sys\nfrom sentencekit.cli import main\nrc = main(sys.argv[1:])\n"
         "print('heavy modules:', sorted(m for m in ('torch', 'transformers', 'bm25s') if m in sys.modules), "
         "file=sys.stderr)\n"
         "sys.exit(rc)\n")


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS MiB, exit status, stderr) of one fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS (KiB on Linux)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode, err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--query", default="How do I get a refund?")
    parser.add_argument("--runs", type=int, default=5, help="second runs (default: %(default)s)")
    parser.add_argument("--backend", default=None, help="pass --backend (default: the CLI's own default)")
    parser.add_argument("--home", default=None, help="SENTENCEKIT_HOME to use (default: a new temporary folder)")
    args = parser.parse_args()

    home = Path(args.home or tempfile.mkdtemp(prefix="sk-cli-start-"))
    env = {**os.environ, "SENTENCEKIT_HOME": str(home),
           "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cli = ["search", args.query] + (["--backend", args.backend] if args.backend else [])
    command = [sys.executable, "-m", "sentencekit.cli", *cli]
    print(f"command: sentencekit {' '.join(repr(a) if ' ' in a else a for a in cli)}  (SENTENCEKIT_HOME={home})")
    try:
        rows = []
        for i in range(args.runs + 1):
            wall, rss, rc, err = run_once(command, env)
            if rc != 0:
                sys.exit(f"run {i + 1} failed (exit {rc}):\n{err}")
            rows.append((wall, rss))
            print(f"{'first' if i == 0 else 'second'} run {i if i else ''}".rstrip()
                  + f": {wall:.2f} s wall, {rss:.0f} MiB peak RSS")
        seconds = [w for w, _ in rows[1:]]
        peaks = [r for _, r in rows[1:]]
        if seconds:
            print(f"second runs: median {statistics.median(seconds):.2f} s (min {min(seconds):.2f}, max "
                  f"{max(seconds):.2f}), peak RSS max {max(peaks):.0f} MiB")
        _, _, rc, err = run_once([sys.executable, "-c", PROBE, *cli], env)
        print(next((line for line in err.splitlines() if line.startswith("heavy modules:")), err.strip()[-300:]))
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
