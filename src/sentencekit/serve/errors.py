"""Errors and their JSON bodies. Each route family answers in the shape its clients parse:

* OpenAI-style routes (``/v1/...`` and ``/embeddings``): ``{"error": {"message", "type", "param", "code"}}``,
  as the OpenAI API does (the OpenAI SDK raises ``openai.APIStatusError`` subclasses from it);
* every other route (TEI's ``/embed``, ``/rerank``, ...; ``/health``, ``/info``): TEI's
  ``{"error": "...", "error_type": "Validation|Overloaded|Backend|Unauthorized|..."}``.

>>> error_body("/embed", ApiError(413, "too many inputs", "Validation"))
{'error': 'too many inputs', 'error_type': 'Validation'}
>>> error_body("/v1/embeddings", ApiError(401, "bad key", "Unauthorized", code="invalid_api_key"))["error"]["code"]
'invalid_api_key'
"""

from __future__ import annotations

import json
from typing import Any

# TEI's error types; OpenAI's "type" for each.
_OPENAI_TYPES = {
    "Validation": "invalid_request_error",
    "Empty": "invalid_request_error",
    "Tokenizer": "invalid_request_error",
    "Unauthorized": "invalid_request_error",
    "NotFound": "invalid_request_error",
    "Backend": "invalid_request_error",
    "Overloaded": "rate_limit_error",
    "Unhealthy": "server_error",
    "Internal": "server_error",
}


class ApiError(Exception):
    """An error answered with ``status`` and a JSON body in the route family's shape.

    ``message`` says what was wrong and what to do; ``error_type`` is TEI's kind of error; ``param``
    names the request field at fault (OpenAI shape); ``headers`` go on the response (``Retry-After``).
    """

    def __init__(self, status: int, message: str, error_type: str = "Validation", *, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.error_type = status, message, error_type
        self.param, self.code, self.headers = param, code, headers or {}


def is_openai_path(path: str) -> bool:
    return path.startswith("/v1/") or path.startswith("/v2/") or path == "/embeddings"


def error_body(path: str, error: ApiError) -> dict[str, Any]:
    """The JSON body of ``error`` on the route ``path``."""
    if is_openai_path(path):
        kind = _OPENAI_TYPES.get(error.error_type, "invalid_request_error")
        return {"error": {"message": error.message, "type": kind, "param": error.param,
                          "code": error.code or error.error_type.lower()}}
    return {"error": error.message, "error_type": error.error_type}


def error_response(path: str, error: ApiError) -> Any:
    """A Starlette response carrying ``error``."""
    from starlette.responses import Response

    return Response(json.dumps(error_body(path, error)), status_code=error.status, headers=error.headers,
                    media_type="application/json")


# Field-level hints for the fields whose type is a union (pydantic lists one error per member).
FIELD_HINTS = {
    "input": "a string, a list of strings, or token ids ([int] or [[int]])",
    "inputs": "a string, a list of strings, or token ids ([int] or [[int]])",
    "documents": "a list of strings (or of {\"text\": ...} objects)",
    "texts": "a list of strings",
    "query": "a string",
    "ids": "token ids: [int] or [[int]]",
}


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """One readable message (and the field at fault) for pydantic's list of errors."""
    if not errors:
        return "invalid request", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return (f"malformed JSON body ({detail}); send one JSON object with Content-Type: application/json"
                if detail else "malformed JSON body; send one JSON object"), None
    loc = [str(x) for x in first.get("loc", ()) if x != "body"]
    if not loc:
        return "the request body must be a JSON object", None
    field = loc[0]
    if first.get("type") == "missing":
        return f"`{field}` is required", field
    if field in FIELD_HINTS and len(loc) >= 1:
        got = first.get("input")
        kind = type(got).__name__ if got is not None else "null"
        return f"`{field}` must be {FIELD_HINTS[field]}; got {kind} ({_short(got)})", field
    where = ".".join(loc)
    return f"`{where}`: {first.get('msg', 'invalid value')}", field


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."
