"""Every Python example of docs/integrations.md runs against the real frameworks, with the tiny model
fixtures standing in for all-MiniLM-L6-v2 and for the cross-encoder folder the page calls
``path/to/reranker``."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import sys
import types
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parent.parent / "docs" / "integrations.md"
# section title -> the module its example needs
SECTIONS = {"LangChain": "langchain_core", "LlamaIndex": "llama_index.core", "Haystack": "haystack", "MTEB": "mteb"}


def examples() -> dict[str, str]:
    """The ```python block of each ``## <section>`` of the page."""
    found = {}
    for section in re.split(r"^## ", PAGE.read_text(encoding="utf-8"), flags=re.M)[1:]:
        title = section.splitlines()[0].strip()
        blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
        if blocks:
            found[title] = "\n".join(blocks)
    return found


def test_the_page_has_one_example_per_adapter():
    assert sorted(examples()) == sorted(SECTIONS)


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_example_runs(section, tiny_st_dir, tiny_ce_dir, monkeypatch):
    module = SECTIONS[section]
    pytest.importorskip(module, reason=f"{module} is not installed (pip install sentencekit[...], see the page)")
    if module == "mteb" and importlib.util.find_spec("sentence_transformers") is None:
        # mteb.evaluate imports sentence_transformers to recognise its models (see test_integrations_mteb.py)
        stand_in = types.ModuleType("sentence_transformers")
        stand_in.SentenceTransformer = type("SentenceTransformer", (), {})
        stand_in.CrossEncoder = type("CrossEncoder", (), {})
        monkeypatch.setitem(sys.modules, "sentence_transformers", stand_in)
    code = examples()[section]
    assert 'SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")' in code
    code = code.replace('SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")',
                        f'SentenceTransformer({str(tiny_st_dir)!r}, device="cpu")')
    code = code.replace('"path/to/reranker"', repr(str(tiny_ce_dir)))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"{PAGE.name}#{section}", "exec"), {"__name__": f"docs_example_{section}"})
    printed = out.getvalue().splitlines()
    assert printed, f"the {section} example printed nothing"
