"""``sentencekit serve``: the parser (standard library only, built by ``sentencekit --help``) and the
command, which loads the models, builds the FastAPI app and runs it under uvicorn.

    sentencekit serve --model sentence-transformers/all-MiniLM-L6-v2 --reranker ./my-reranker --port 8080
    SENTENCEKIT_API_KEY=secret sentencekit serve --backend onnx

On SIGTERM (or Ctrl-C) the server stops accepting connections, answers new and waiting requests 503
with ``Retry-After``, runs the queued work that can end within ``--graceful-timeout`` (503 for the
rest), and exits (:mod:`sentencekit.serve.draining_server`).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from sentencekit.serve.server_config import ServeConfig, add_serve_arguments, env_table

DESCRIPTION = (
    "Serve the embedding model (and optionally a cross-encoder and a sparse encoder) over HTTP, speaking the "
    "OpenAI (/v1/embeddings), Hugging Face TEI (/embed, /embed_sparse, /rerank, /similarity, /tokenize) and "
    "Cohere/Jina (/v1/rerank) wire formats, plus /health, /info, /metrics (Prometheus) and /docs. A --model "
    "saved as a SparseEncoder (SPLADE) is served alone on /embed_sparse. Concurrent requests "
    "are packed into shared batches by a token budget. Needs the serve extra: pip install sentencekit[serve]."
)


def add_serve_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the ``serve`` subcommand on ``sub`` (the subparsers of ``sentencekit``'s parser).

    >>> parser = argparse.ArgumentParser(prog="sentencekit")
    >>> p = add_serve_parser(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["serve", "--port", "9000"]).port
    9000
    """
    p = sub.add_parser("serve", help="serve embeddings and reranking over HTTP (OpenAI / TEI / Cohere APIs)",
                       description=DESCRIPTION,
                       epilog="Every flag can also be set by an environment variable (the flag wins):\n"
                              + env_table(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_serve_arguments(p)
    p.set_defaults(func=cmd_serve)
    return p


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until it is stopped (SIGTERM / SIGINT); returns the exit status."""
    return run_server(ServeConfig.from_args(args))


def _quiet_inference_threads() -> None:
    """The inference threads of this process sleep rather than spin-wait between model calls, so that the
    event loop (HTTP, tokenization, responses) gets the CPU: torch's OpenMP threads through
    ``OMP_WAIT_POLICY=PASSIVE`` (set before torch loads; a value the user set wins; ONNX sessions never spin
    unless ``SENTENCEKIT_ORT_SPIN=1``: :func:`sentencekit.engines.onnx_session.make_session`). Results are the
    same. Under 64 clients on 2 loaded cores (``benchmarks/serve_load.py --backend torch``), server / one batched
    ``encode``: 0.74 -> 2.53."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run_server(config: ServeConfig) -> int:
    """Load the models of ``config`` and serve them; blocks until shutdown.

    >>> run_server(ServeConfig(model="sentence-transformers/all-MiniLM-L6-v2", port=8080))  # doctest: +SKIP
    """
    try:
        import uvicorn
    except ImportError:
        print("sentencekit serve: error: FastAPI and uvicorn are needed: pip install 'sentencekit[serve]'",
              file=sys.stderr)
        return 1
    from sentencekit.serve.app import create_app
    from sentencekit.serve.draining_server import DrainingServer
    from sentencekit.serve.models import load_models

    started = time.perf_counter()
    _quiet_inference_threads()
    models = load_models(config)
    app = create_app(models, config)
    print(f"sentencekit serve: {models.describe()} loaded in {time.perf_counter() - started:.1f}s; "
          f"listening on http://{config.host}:{config.port}", file=sys.stderr, flush=True)
    graceful = config.graceful_timeout or None
    server = DrainingServer(uvicorn.Config(
        app, host=config.host, port=config.port, log_level=config.log_level, access_log=config.access_log,
        timeout_graceful_shutdown=graceful, lifespan="on",
    ), app.state.service, graceful)
    server.run()
    return 0
