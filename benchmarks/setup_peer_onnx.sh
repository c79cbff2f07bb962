#!/usr/bin/env bash
# A second peer environment (.venv-peer-onnx) for sentence-transformers' ONNX backends: optimum-onnx pins
# transformers < 4.58, which sentence-transformers 6.x refuses, so these run with sentence-transformers 5.x.
# benchmarks/compare_peers.py drives it as a worker process. Nothing here is installed into .venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-peer-onnx"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" torch
"$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" -r "$ROOT/benchmarks/requirements-peer-onnx.txt"
echo "$VENV/bin/python"
