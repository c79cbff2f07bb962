"""Errors raised by :class:`~sentencekit.search.index.EmbeddingIndex`.

>>> issubclass(IndexMismatchError, ValueError)
True
"""

from __future__ import annotations


class IndexFormatError(ValueError):
    """An index folder is missing, damaged, or written by an unknown format version. Damage (a file
    cut short, emptied, unparsable, or not matching the manifest's recorded size) names the file and
    points to ``sentencekit index verify`` / ``repair`` (:mod:`sentencekit.search.integrity`).

    >>> str(IndexFormatError("no manifest.json in /tmp/x"))
    'no manifest.json in /tmp/x'
    """


class IndexMismatchError(ValueError):
    """The model or settings given do not match those the index was built with, so its vectors and the
    new ones would not be comparable. The message lists every recorded vs given value.

    >>> str(IndexMismatchError("dimension: recorded 384, given 256"))
    'dimension: recorded 384, given 256'
    """


class IndexLockTimeout(TimeoutError):
    """Another process held the index's writer lock for longer than the timeout.

    >>> issubclass(IndexLockTimeout, TimeoutError)
    True
    """


class IndexReadOnlyError(RuntimeError):
    """The index was opened without a model (inspection only), so it can neither embed nor search.

    >>> issubclass(IndexReadOnlyError, RuntimeError)
    True
    """
