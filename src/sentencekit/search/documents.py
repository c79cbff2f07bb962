"""Checks on the ids and metadata of documents being added, and default ids.

>>> check_ids(None, 3) is None
True
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sentencekit.search.segments import Snapshot


def check_ids(ids: Sequence[str] | None, n: int) -> list[str] | None:
    """Validate the ids of ``n`` new documents: non-empty strings, one per text, no repeats.

    >>> check_ids(["a", "b"], 2)
    ['a', 'b']
    """
    if ids is None:
        return None
    ids = [ids] if isinstance(ids, str) else list(ids)
    if len(ids) != n:
        raise ValueError(f"Got {len(ids)} ids for {n} texts; pass one id per text.")
    bad = [i for i in ids if not isinstance(i, str) or not i]
    if bad:
        raise TypeError(f"Document ids must be non-empty strings, got {bad[0]!r}; e.g. ids=[str(i) for i in ...].")
    duplicates = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if duplicates:
        raise ValueError(f"Duplicate ids in this add: {duplicates[:10]}. Every document needs its own id.")
    return ids


def check_metadata(metadata: Sequence[dict | None] | None, n: int) -> list[dict | None]:
    """Validate metadata: one JSON-serializable dict (or None) per text; ``None`` means none at all.

    >>> check_metadata(None, 2)
    [None, None]
    """
    if metadata is None:
        return [None] * n
    metadata = list(metadata)
    if len(metadata) != n:
        raise ValueError(f"Got {len(metadata)} metadata entries for {n} texts; pass one dict (or None) per text.")
    for i, m in enumerate(metadata):
        if m is not None and not isinstance(m, dict):
            raise TypeError(f"metadata[{i}] is {type(m).__name__}; expected a dict or None.")
        try:
            json.dumps(m)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metadata[{i}] is not JSON-serializable: {exc}") from None
    return metadata


def check_titles(titles: Sequence[str | None] | None, n: int) -> list[str | None]:
    """Validate titles: one string (or None) per text; ``None`` means none at all. Blank titles count as
    none (they would add a vector of nothing).

    >>> check_titles(["Refunds", None, "  "], 3)
    ['Refunds', None, None]
    """
    if titles is None:
        return [None] * n
    if isinstance(titles, str):
        raise TypeError("titles must be a list with one title (or None) per text, not a single string.")
    titles = list(titles)
    if len(titles) != n:
        raise ValueError(f"Got {len(titles)} titles for {n} texts; pass one title (or None) per text.")
    for i, t in enumerate(titles):
        if t is not None and not isinstance(t, str):
            raise TypeError(f"titles[{i}] is {type(t).__name__}; expected a string or None.")
    return [t if t and t.strip() else None for t in titles]


def refuse_existing(ids: Sequence[str], snap: Snapshot) -> None:
    """Raise if any id is already live in ``snap``.

    >>> refuse_existing(["new"], Snapshot({"log": []}))
    """
    taken = [i for i in ids if i in snap.live]
    if taken:
        raise ValueError(f"Document id(s) {taken[:10]} are already in the index; ids must be unique. "
                         "delete() them first to replace them, or use other ids.")


def auto_ids(manifest: dict[str, Any], snap: Snapshot, n: int) -> list[str]:
    """Running integers as strings from the manifest's counter, skipping ids already taken.

    >>> auto_ids({"next_id": 3}, Snapshot({"log": []}), 2)
    ['3', '4']
    """
    out, next_id = [], int(manifest.get("next_id", 0))
    while len(out) < n:
        if str(next_id) not in snap.live:
            out.append(str(next_id))
        next_id += 1
    return out
