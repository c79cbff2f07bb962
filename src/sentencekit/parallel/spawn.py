"""How pool workers are started: spawned, without re-running the caller's script when they can.

multiprocessing's *spawn* start method makes each child re-import the parent's ``__main__`` (the script
run as ``python script.py``) as ``__mp_main__``, so that objects whose classes live in that script can be
unpickled there. A script that starts a pool at top level, without ``if __name__ == "__main__":``, then
starts a pool again inside every worker while it bootstraps, and the worker dies.

Workers here need ``__main__`` only if the model they receive names something defined in it (a subclass
of ``SentenceTransformer`` written in the script, say). :func:`needs_user_main` checks that by pickling the
model without its weights and looking for ``__main__`` in the stream; when it is absent,
:func:`spawning` starts the workers with a clean ``__main__``: the preparation data a spawned child reads
before anything else (``multiprocessing.spawn.get_preparation_data``) is passed through without its
``init_main_from_path`` / ``init_main_from_name`` entries. The child keeps the parent's ``sys.path``,
working directory and ``sys.argv``, so every importable module is still importable. The hook is
installed once, and changes nothing except for processes this thread starts inside :func:`spawning`, so
other code's processes behave as multiprocessing documents.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing.spawn
import pickle
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

_MAIN_KEYS = ("init_main_from_path", "init_main_from_name")
_local = threading.local()
_install_lock = threading.Lock()
_original: Callable[[str], dict[str, Any]] | None = None


class _NameScanner(pickle.Pickler):
    """Pickles an object, leaving out arrays and tensors (only which classes and functions it names matter)."""

    def persistent_id(self, obj: Any) -> Any:
        numpy = sys.modules.get("numpy")
        torch = sys.modules.get("torch")
        if numpy is not None and isinstance(obj, numpy.ndarray):
            return id(obj)
        if torch is not None and isinstance(obj, torch.Tensor):
            return id(obj)
        return None


def needs_user_main(payload: Any) -> bool:
    """Whether unpickling ``payload`` needs the parent's ``__main__`` (it names a class or function defined
    in the running script). ``True`` as well when the payload cannot be scanned (the safe default)."""
    if getattr(sys.modules.get("__main__"), "__file__", None) is None:
        return False  # an interactive session or ``python -c``: there is no script to re-run anyway
    sink = io.BytesIO()
    try:
        _NameScanner(sink, protocol=pickle.HIGHEST_PROTOCOL).dump(payload)
    except Exception:  # noqa: BLE001 - e.g. an object only multiprocessing's own pickler handles
        return True
    return b"__main__" in sink.getvalue()


def _preparation_data(name: str) -> dict[str, Any]:
    assert _original is not None
    data = _original(name)
    if getattr(_local, "clean_main", False):
        for key in _MAIN_KEYS:
            data.pop(key, None)
    return data


def _install() -> None:
    global _original
    with _install_lock:
        if _original is None:
            _original = multiprocessing.spawn.get_preparation_data
            multiprocessing.spawn.get_preparation_data = _preparation_data


@contextlib.contextmanager
def spawning(*, clean_main: bool) -> Iterator[None]:
    """Processes started by this thread inside the block skip re-running ``__main__`` if ``clean_main``."""
    if clean_main:
        _install()
    previous = getattr(_local, "clean_main", False)
    _local.clean_main = clean_main
    try:
        yield
    finally:
        _local.clean_main = previous
