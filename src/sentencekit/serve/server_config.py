"""Settings of ``sentencekit serve``: every command-line flag has an environment-variable twin
(``--max-batch-tokens`` / ``SENTENCEKIT_MAX_BATCH_TOKENS``), as TEI and Infinity do; a flag given on the
command line wins over the variable. Standard library only (it is imported by ``sentencekit --help``).

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_serve_arguments(parser)
>>> config = ServeConfig.from_args(parser.parse_args(["--model", "my-model", "--port", "9000"]))
>>> config.model, config.host, config.port
('my-model', '127.0.0.1', 9000)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from sentencekit.hub import DEFAULT_MODEL  # stdlib-only module


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _optional_text(text: str) -> str | None:
    return text or None  # an empty variable (SENTENCEKIT_API_KEY=) means "not set"


@dataclass(frozen=True)
class Option:
    """One setting: its flag, environment variable, type, default and help."""

    dest: str
    flag: str
    env: str
    type: Callable[[str], Any]
    default: Any
    help: str
    choices: tuple[str, ...] | None = None


OPTIONS: tuple[Option, ...] = (
    Option("model", "--model", "SENTENCEKIT_MODEL", str, DEFAULT_MODEL,
           "embedding model: folder or Hugging Face id; a saved SparseEncoder (SPLADE) here is served alone, on "
           "/embed_sparse"),
    Option("reranker", "--reranker", "SENTENCEKIT_RERANKER", _optional_text, None,
           "cross-encoder (or multi-vector ColBERT model: late-interaction MaxSim scores) for /rerank and "
           "/v1/rerank (without one, those routes answer 424)"),
    Option("sparse_model", "--sparse-model", "SENTENCEKIT_SPARSE_MODEL", _optional_text, None,
           "sparse encoder (SPLADE; any *ForMaskedLM folder loads as one) for TEI's /embed_sparse, beside --model "
           "(without one, /embed_sparse answers 424)"),
    Option("host", "--host", "SENTENCEKIT_HOST", str, "127.0.0.1",
           "address to listen on; 0.0.0.0 exposes the server to the network"),
    Option("port", "--port", "SENTENCEKIT_PORT", _port, 8080, "port to listen on"),
    Option("api_key", "--api-key", "SENTENCEKIT_API_KEY", _optional_text, None,
           "require 'Authorization: Bearer KEY' (or 'X-API-Key: KEY') on every route but /health and the docs"),
    Option("max_batch_tokens", "--max-batch-tokens", "SENTENCEKIT_MAX_BATCH_TOKENS", _positive_int, 16384,
           "token budget of one batch taken from the queue: concurrent requests are packed up to it"),
    Option("max_client_batch_size", "--max-client-batch-size", "SENTENCEKIT_MAX_CLIENT_BATCH_SIZE", _positive_int,
           256, "most inputs (texts, documents) in one request; more get 413"),
    Option("max_concurrent_requests", "--max-concurrent-requests", "SENTENCEKIT_MAX_CONCURRENT_REQUESTS",
           _positive_int, 512, "most inference requests in flight; more get 429 with Retry-After"),
    Option("admission_wait_ms", "--admission-wait-ms", "SENTENCEKIT_ADMISSION_WAIT_MS", _non_negative_float,
           1000.0, "a request past --max-concurrent-requests waits up to this long for a slot before its 429 (0: "
           "answer 429 at once); keeps clients that retry at once from swamping the server with 429s"),
    Option("backend", "--backend", "SENTENCEKIT_BACKEND", str, "auto",
           "auto (default: onnx on the CPU when onnxruntime is installed, the model exports and no CUDA GPU is in "
           "use (openvino instead for float32 on AVX-512 x86 CPUs when openvino is installed), else torch), "
           "torch, onnx (ONNX Runtime, torch-free once the model's export exists) or openvino (OpenVINO running "
           "the same graph)", ("auto", "torch", "onnx", "openvino")),
    Option("served_model_name", "--served-model-name", "SENTENCEKIT_SERVED_MODEL_NAME", _optional_text, None,
           "model name reported in responses and /v1/models (default: the model's folder name)"),
    Option("payload_limit", "--payload-limit", "SENTENCEKIT_PAYLOAD_LIMIT", _positive_int, 2_000_000,
           "largest request body in bytes; larger bodies get 413"),
    Option("auto_truncate", "--auto-truncate", "SENTENCEKIT_AUTO_TRUNCATE", _bool, True,
           "cut inputs longer than the model's max length when a request does not say truncate (true/false)"),
    Option("batch_wait_ms", "--batch-wait-ms", "SENTENCEKIT_BATCH_WAIT_MS", _non_negative_float, 0.0,
           "wait up to this long for more requests before running a batch that is not full (0: run at once; "
           "requests still share batches while the model is busy)"),
    Option("device", "--device", "SENTENCEKIT_DEVICE", _optional_text, None,
           "cpu, cuda, cuda:1, mps (default: best available; onnx runs on the CPU)"),
    Option("threads", "--threads", "SENTENCEKIT_THREADS", _positive_int, None,
           "CPU threads for inference (torch intra-op, or ONNX Runtime intra-op with --backend onnx)"),
    Option("compute_dtype", "--compute-dtype", "SENTENCEKIT_COMPUTE_DTYPE", str, "float32",
           "float32; bfloat16 (torch, CPUs with AVX-512 BF16 / AMX); int8 (onnx); auto",
           ("auto", "float32", "bfloat16", "int8")),
    Option("local_files_only", "--local-files-only", "SENTENCEKIT_LOCAL_FILES_ONLY", _bool, False,
           "never contact the Hugging Face Hub (true/false)"),
    Option("graceful_timeout", "--graceful-timeout", "SENTENCEKIT_GRACEFUL_TIMEOUT", _non_negative_float, 30.0,
           "seconds to finish in-flight requests after SIGTERM before cancelling them (0: no limit)"),
    Option("log_level", "--log-level", "SENTENCEKIT_LOG_LEVEL", str, "info", "uvicorn log level",
           ("critical", "error", "warning", "info", "debug")),
    Option("allow_url_inputs", "--allow-url-inputs", "SENTENCEKIT_ALLOW_URL_INPUTS", _bool, False,
           "fetch http(s) URLs sent as image inputs (\"modality\": \"image\"; true/false; off: data URIs only)"),
    Option("access_log", "--access-log", "SENTENCEKIT_ACCESS_LOG", _bool, False,
           "log every request (true/false; off by default: it costs throughput)"),
)


@dataclass
class ServeConfig:
    """The server's settings (see ``OPTIONS`` for each one's flag, variable and meaning).

    >>> ServeConfig(model="my-model").port
    8080
    """

    model: str = DEFAULT_MODEL
    reranker: str | None = None
    sparse_model: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str | None = None
    max_batch_tokens: int = 16384
    max_client_batch_size: int = 256
    max_concurrent_requests: int = 512
    admission_wait_ms: float = 1000.0
    backend: str = "auto"
    served_model_name: str | None = None
    payload_limit: int = 2_000_000
    auto_truncate: bool = True
    batch_wait_ms: float = 0.0
    device: str | None = None
    threads: int | None = None
    compute_dtype: str = "float32"
    local_files_only: bool = False
    graceful_timeout: float = 30.0
    log_level: str = "info"
    access_log: bool = False
    allow_url_inputs: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ServeConfig:
        """The settings an ``argparse`` namespace (filled by :func:`add_serve_arguments`) holds; raises
        ``ValueError`` naming an environment variable whose value does not parse."""
        values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        for value in values.values():
            if isinstance(value, InvalidEnv):
                raise ValueError(f"{value.env}={value.raw!r}: {value.problem}")
        return cls(**values)


@dataclass(frozen=True)
class InvalidEnv:
    """An environment variable whose value does not parse. Kept as the flag's default and reported by
    :meth:`ServeConfig.from_args`, so that a bad variable breaks ``serve`` only, not every command."""

    env: str
    raw: str
    problem: str


def _env_default(option: Option, environ: dict[str, str]) -> Any:
    raw = environ.get(option.env)
    if raw is None:
        return option.default
    try:
        value = option.type(raw)
    except argparse.ArgumentTypeError as exc:
        return InvalidEnv(option.env, raw, str(exc))
    if option.choices and value not in option.choices:
        return InvalidEnv(option.env, raw, f"choose from {', '.join(option.choices)}")
    return value


_METAVARS = {"model": "NAME_OR_PATH", "reranker": "NAME_OR_PATH", "sparse_model": "NAME_OR_PATH", "api_key": "KEY",
             "host": "HOST", "served_model_name": "NAME", "batch_wait_ms": "MS",
             "admission_wait_ms": "MS", "graceful_timeout": "SECONDS", "device": "DEVICE"}


def add_serve_arguments(parser: argparse.ArgumentParser, environ: dict[str, str] | None = None) -> None:
    """Add every ``serve`` flag to ``parser``, each defaulting to its environment variable when set."""
    environ = dict(os.environ if environ is None else environ)
    for option in OPTIONS:
        default = _env_default(option, environ)
        plain = "none" if option.default is None else option.default
        shown = "" if "default:" in option.help else f"default: {plain}; "
        kwargs: dict[str, Any] = {"dest": option.dest, "default": default,
                                  "help": f"{option.help} ({shown}env {option.env})"}
        if option.type is _bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = option.type
            if option.choices:
                kwargs["choices"] = option.choices
            kwargs["metavar"] = _METAVARS.get(option.dest, "N" if option.type in (_positive_int, _port) else None)
        flags = [option.flag] + (["-m"] if option.dest == "model" else []) + (["-p"] if option.dest == "port" else [])
        parser.add_argument(*flags, **kwargs)


def env_table() -> str:
    """The flag / variable pairs, for ``--help``."""
    width = max(len(o.flag) for o in OPTIONS)
    return "\n".join(f"  {o.flag:<{width}}  {o.env}" for o in OPTIONS)
