"""The plain lines the ``sentencekit`` commands print beside their results: the truncation note every
command that embeds or scores texts gives the same way, and queries shortened for display."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

# what to do about cut inputs, by the command's kind of input
ADVICE = {
    "documents": "their endings are not searched; split long documents with `sentencekit index build --chunk`",
    "queries": "only their beginnings are searched; shorten them",
    "texts": "their endings are not embedded; split long texts into chunks",
    "pairs": "the ends of long documents are not scored; rerank shorter passages",
}


@dataclass
class TruncationTally:
    """Per kind of input (``documents``, ``pairs``...): ``[inputs, truncated, max_length]`` across every
    call inside :func:`truncation_notes`."""

    counts: dict[str, list] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)

    def set_total(self, kind: str, total: int) -> None:
        """The command knows how many inputs of ``kind`` it embedded (e.g. the documents it added): say that
        rather than the inputs counted, which include the index's one-text dimension probe."""
        self.totals[kind] = total

    def add(self, kind: str, inputs: int, truncated: int, max_length: int | None) -> None:
        entry = self.counts.setdefault(kind, [0, 0, None])
        entry[0] += inputs
        entry[1] += truncated
        entry[2] = max_length

    def lines(self) -> list[str]:
        """One ``note: ...`` line per kind of input that had cut inputs."""
        out = []
        for kind, (inputs, truncated, max_length) in self.counts.items():
            inputs = max(self.totals.get(kind, inputs), truncated)
            if truncated:
                limit = f"{max_length}-token limit" if max_length else "length limit"
                out.append(f"note: {truncated} of {inputs} {kind} are longer than the model's {limit} and were "
                           f"truncated ({ADVICE.get(kind, 'their endings do not count')}).")
        return out


@contextlib.contextmanager
def truncation_notes(what: str) -> Iterator[TruncationTally]:
    """Count the inputs of every ``encode`` / ``predict`` call inside the block and the ones cut to the
    model's length, and print ONE plain line on stderr per kind at the end (embedded ``what``, reranked
    ``pairs``), e.g. ``note: 3 of 200 documents are longer than the model's 256-token limit and were
    truncated (...)``, instead of the library's ``TruncationWarning`` per call. ``what``: a key of
    ``ADVICE``."""
    from sentencekit.pipeline.batching import TRUNCATION_OBSERVERS, TruncationWarning

    tally = TruncationTally()

    def observe(info, attribute: str) -> None:  # noqa: ANN001 - an EncodeInfo
        tally.add(what if attribute == "last_encode_info" else "pairs", info.num_inputs, info.num_truncated,
                  info.max_seq_length)

    TRUNCATION_OBSERVERS.append(observe)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)  # reported below, once, in plain words
            yield tally
    finally:
        TRUNCATION_OBSERVERS.remove(observe)
        for note in tally.lines():
            print(note, file=sys.stderr)


def shorten(text: str, width: int = 100) -> str:
    """``text`` on one line, cut to ``width`` characters with ``...`` (long queries are not echoed in full)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3].rstrip() + "..."
