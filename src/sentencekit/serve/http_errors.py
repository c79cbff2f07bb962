"""The server's error: :class:`ApiError` (a status, a readable message, TEI's kind of error), and one
readable message for pydantic's validation errors.

Its JSON body is not decided here: each route family writes errors in the shape its clients parse (see
``RouteFamily.error_body`` in :mod:`sentencekit.serve.routes.route_family`).

>>> ApiError(413, "too many inputs", "Validation", param="input").status
413
"""

from __future__ import annotations

import json
from typing import Any


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
