"""``sentencekit serve``: an HTTP server for embeddings and reranking that the clients people already use
speak to: the OpenAI SDK (``/v1/embeddings``), Hugging Face TEI clients (``/embed``, ``/rerank``, ...) and
Cohere/Jina rerank clients (``/v1/rerank``).

Concurrent requests are queued and packed into shared forward passes by a token budget (dynamic
batching); one model instance serves every request from a single inference thread.

    sentencekit serve --model sentence-transformers/all-MiniLM-L6-v2 --port 8080

>>> from openai import OpenAI                                              # doctest: +SKIP
>>> client = OpenAI(base_url="http://127.0.0.1:8080/v1", api_key="unused")
>>> len(client.embeddings.create(model="all-MiniLM-L6-v2", input=["hello"]).data[0].embedding)
384

This package's ``__init__``, ``server_config`` and ``serve_cli`` modules import only the standard library, so that
``sentencekit --help`` stays fast; FastAPI, uvicorn and the model load inside the command.
"""

from __future__ import annotations

from sentencekit.serve.server_config import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def create_app(*args, **kwargs):  # noqa: ANN002, ANN003 - thin lazy wrapper, see sentencekit.serve.app
    """Build the FastAPI application (imports FastAPI on first use); see :func:`sentencekit.serve.app.create_app`."""
    from sentencekit.serve.app import create_app as _create_app

    return _create_app(*args, **kwargs)
