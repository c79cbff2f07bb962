"""Issue 12 item 13: a save killed at any step leaves a loadable model, and load and the next save recover.

``atomic_directory`` swaps folders with two renames (target -> .NAME.old-*, .NAME.tmp-* -> target). The
unit tests build the states a kill leaves by hand; the slow tests SIGKILL a real saving subprocess at each
step (paused through ``sentencekit.files._fault_hook``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sentencekit.files import SAVE_COMPLETE_MARKER, atomic_directory, recover_directory
from sentencekit.format import is_foreign_entry
from sentencekit.hub import resolve_model

SRC = Path(__file__).resolve().parents[1] / "src"


def _folder(path: Path, content: str, *, complete: bool = False) -> Path:
    path.mkdir(parents=True)
    (path / "modules.json").write_text(content, encoding="utf-8")
    if complete:
        (path / SAVE_COMPLETE_MARKER).write_text("", encoding="utf-8")
    return path


def _content(target: Path) -> str:
    return (target / "modules.json").read_text(encoding="utf-8")


# -- the states a kill leaves, built by hand (fast) ---------------------------------------------------------------


def test_recover_prefers_the_complete_new_folder(tmp_path):
    target = tmp_path / "model"
    _folder(tmp_path / ".model.old-1234abcd", "old")
    _folder(tmp_path / ".model.tmp-xyz", "new", complete=True)
    assert recover_directory(target) == tmp_path / ".model.tmp-xyz"
    assert _content(target) == "new"
    assert not (target / SAVE_COMPLETE_MARKER).exists()  # the marker never stays in a model folder


def test_recover_restores_the_old_folder_when_the_new_one_is_incomplete(tmp_path):
    target = tmp_path / "model"
    _folder(tmp_path / ".model.old-1234abcd", "old")
    _folder(tmp_path / ".model.tmp-xyz", "half written")  # no marker: never used
    assert recover_directory(target) == tmp_path / ".model.old-1234abcd"
    assert _content(target) == "old"
    assert (tmp_path / ".model.tmp-xyz").is_dir()  # loading deletes nothing


def test_recover_does_nothing_when_the_target_exists_or_nothing_is_left(tmp_path):
    target = _folder(tmp_path / "model", "current")
    _folder(tmp_path / ".model.tmp-xyz", "new", complete=True)
    assert recover_directory(target) is None
    assert _content(target) == "current"
    assert recover_directory(tmp_path / "other") is None
    assert recover_directory(tmp_path / "missing-parent" / "model") is None


def test_resolve_model_recovers_a_local_folder(tmp_path):
    _folder(tmp_path / ".model.old-1234abcd", "old")
    assert resolve_model(tmp_path / "model").path == (tmp_path / "model").resolve()
    assert _content(tmp_path / "model") == "old"


def test_next_save_recovers_then_cleans_leftovers_and_keeps_notes(tmp_path):
    target = tmp_path / "model"
    # a save killed after its swap: new model in place (marker still there), notes still in the old folder
    _folder(target, "previous", complete=True)
    old = _folder(tmp_path / ".model.old-1234abcd", "older")
    (old / "notes.txt").write_text("mine", encoding="utf-8")
    _folder(tmp_path / ".model.tmp-dead", "half written")  # a save killed while writing
    with atomic_directory(target, keep=is_foreign_entry) as tmp:
        (tmp / "modules.json").write_text("newest", encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert sorted(p.name for p in target.iterdir()) == ["modules.json", "notes.txt"]
    assert _content(target) == "newest"


def test_save_over_a_missing_target_finishes_the_killed_swap_first(tmp_path):
    target = tmp_path / "model"
    old = _folder(tmp_path / ".model.old-1234abcd", "old")
    (old / "notes.txt").write_text("mine", encoding="utf-8")
    # a save that fails still puts the model back
    with pytest.raises(RuntimeError, match="bad input"), atomic_directory(target, keep=is_foreign_entry):
        raise RuntimeError("bad input")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert _content(target) == "old"
    with atomic_directory(target, keep=is_foreign_entry) as tmp:
        (tmp / "modules.json").write_text("newest", encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (target / "notes.txt").read_text(encoding="utf-8") == "mine"  # carried from the restored folder


# -- a real save SIGKILLed at each step (slow: fresh interpreters) --------------------------------------------------

SAVER = """
import sys, time
from pathlib import Path
import sentencekit.files as files
import sentencekit.model_card as model_card
from sentencekit import SentenceTransformer

src, target, step, ready = sys.argv[1:5]
model = SentenceTransformer(src, device="cpu", similarity_fn_name="dot")

def pause(name):
    if name == step:
        Path(ready).write_text(name)
        time.sleep(600)  # killed here by the test

files._fault_hook = pause
write_card = model_card.write_model_card
def card_then_pause(*args, **kwargs):
    write_card(*args, **kwargs)
    pause("writing")
model_card.write_model_card = card_then_pause
model.save(target)
"""


def _save_and_kill(tiny_st_dir: Path, target: Path, step: str, tmp_path: Path) -> None:
    script = tmp_path / "saver.py"
    script.write_text(SAVER, encoding="utf-8")
    ready = tmp_path / f"ready-{step}"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, str(script), str(tiny_st_dir), str(target), step, str(ready)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None:
            pytest.fail(f"the saver exited ({proc.returncode}) before step {step}: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the saver never reached step {step}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("step, loads_as", [
    ("writing", "cosine"),          # killed while writing the new folder: the old model is untouched
    ("before_swap", "cosine"),      # new folder complete, not yet swapped: the old model is untouched
    ("between_renames", "dot"),     # no folder at the target: load finishes the swap with the new model
    ("after_swap", "dot"),          # swapped, leftovers not cleaned yet
])
def test_save_killed_at_each_step_recovers(tiny_st_dir, tmp_path, step, loads_as):
    from sentencekit import SentenceTransformer

    parent = tmp_path / "models"
    target = parent / "model"
    SentenceTransformer(str(tiny_st_dir), device="cpu", similarity_fn_name="cosine").save(target)
    (target / "notes.txt").write_text("mine", encoding="utf-8")

    _save_and_kill(tiny_st_dir, target, step, tmp_path)
    left = sorted(p.name for p in parent.iterdir())
    assert ("model" in left) == (step != "between_renames"), left
    assert len(left) == 2, left  # the target (or a leftover) and one folder of the killed save

    loaded = SentenceTransformer(str(target), device="cpu")  # load recovers
    assert loaded.similarity_fn_name == loads_as
    assert loaded.encode("hello world").shape == (32,)

    loaded.save(target)  # the next save cleans every leftover and keeps the user's notes
    assert sorted(p.name for p in parent.iterdir()) == ["model"]
    assert (target / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert not (target / SAVE_COMPLETE_MARKER).exists()
    assert SentenceTransformer(str(target), device="cpu").similarity_fn_name == loads_as
