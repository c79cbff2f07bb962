"""The fingerprint guard the framework adapters share: document embedders write the model's fingerprint
into each document's metadata under :data:`FINGERPRINT_KEY`; the query side compares it with its own
model's and refuses documents embedded by another model (their vectors are not comparable).

Torch-free and library-free: the adapters call it with their own documents' metadata.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: metadata key under which adapters record the fingerprint of the model that embedded a document
FINGERPRINT_KEY = "sentencekit_fingerprint"


def check_fingerprints(metadata: Iterable[tuple[Any, Mapping[str, Any] | None]], expected: str, *,
                       where: str, hint: str = "") -> None:
    """Raise ``ValueError`` if any ``(document id, metadata)`` records a fingerprint other than ``expected``.

    Documents without a recorded fingerprint pass (they were embedded by something this guard cannot
    see). The message names the first mismatching document, both fingerprints and what to do (``hint``, when
    given, is appended: another cause the caller knows of).

    >>> check_fingerprints([("d1", {FINGERPRINT_KEY: "aa"})], "aa", where="test")
    >>> check_fingerprints([("d1", {FINGERPRINT_KEY: "bb"})], "aa", where="test")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: test: document 'd1' was embedded by model fingerprint bb, but the query model's fingerprint is aa...
    """
    for doc_id, meta in metadata:
        found = (meta or {}).get(FINGERPRINT_KEY)
        if found is not None and found != expected:
            raise ValueError(
                f"{where}: document {doc_id!r} was embedded by model fingerprint {found}, but the query model's "
                f"fingerprint is {expected}. Vectors of two different models are not comparable: query with the "
                f"model that embedded the documents, or re-embed the documents with this model.{hint}")

