"""Where sentencekit keeps what it builds for you: ``$SENTENCEKIT_HOME`` (default
``$XDG_CACHE_HOME/sentencekit`` or ``~/.cache/sentencekit``), and which trained models the main job
picks up from there.

``sentencekit search --rerank auto`` (the default) uses a reranker only where one was shown to help: the
QA reranker that ``examples/train_insuranceqa_reranker.py --install`` trains (question -> answering
passage, the main job's task). A reranker trained on STS-B is never picked: it scores how similar two
sentences are, not whether a passage answers a question, and on the sample corpus's 30 labelled
queries it made results worse (MRR@10 0.774 -> 0.515, ``examples/search_quality.py``). It stays usable
by path (``--rerank PATH``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sentencekit.spec.home import sentencekit_home

#: the reranker ``--rerank auto`` uses when it is installed
RERANKER_NAME = "insuranceqa-reranker"


def installed_model_dir(name: str) -> Path:
    """``$SENTENCEKIT_HOME/models/NAME``: where the example training scripts install what they train."""
    return sentencekit_home() / "models" / name


def default_reranker_dir() -> Path:
    """Folder of the reranker ``--rerank auto`` uses (``examples/train_insuranceqa_reranker.py --install``)."""
    return installed_model_dir(RERANKER_NAME)


def installed_reranker() -> Path | None:
    """:func:`default_reranker_dir` when a model is installed there, else ``None``."""
    folder = default_reranker_dir()
    return folder if (folder / "config.json").is_file() else None


def install_model(folder: str | os.PathLike, name: str) -> Path:
    """Copy the saved model ``folder`` to :func:`installed_model_dir` ``(name)``, replacing what is there.

    The copy is made beside the target and renamed into place, so a reader never sees half a model; an
    interrupted install leaves the previous model (or nothing) and a ``.tmp`` folder the next one removes.
    Raises ``FileNotFoundError`` when ``folder`` holds no ``config.json``.
    """
    source = Path(folder)
    if not (source / "config.json").is_file():
        raise FileNotFoundError(f"{source} is not a saved model folder (no config.json); save the model first")
    target = installed_model_dir(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = target.with_name(target.name + ".tmp"), target.with_name(target.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
    return target
