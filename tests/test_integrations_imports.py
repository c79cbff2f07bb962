"""The framework adapters are optional: ``import sentencekit`` (and its model classes, and the
``sentencekit.integrations`` package) never imports LangChain, LlamaIndex, Haystack or MTEB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FRAMEWORKS = ("langchain_core", "llama_index", "haystack", "mteb", "sentence_transformers")


@pytest.mark.slow
def test_import_sentencekit_imports_no_framework():
    code = (
        "import sys, json, sentencekit\n"
        "sentencekit.SentenceTransformer, sentencekit.CrossEncoder, sentencekit.evaluation\n"
        "import sentencekit.integrations, sentencekit.integrations.metadata_guard\n"
        "import sentencekit.integrations.model_loading\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r})))\n"
    )
    src = Path(__file__).resolve().parent.parent / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.slow
def test_the_check_would_see_an_adapter_import():
    """The check above can fail: importing an adapter does bring its framework in."""
    pytest.importorskip("langchain_core")
    src = Path(__file__).resolve().parent.parent / "src"
    env = {**os.environ, "PYTHONPATH": str(src)}
    code = "import sys, sentencekit.integrations.langchain; print('langchain_core' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True"
