"""``LoggingHandler``: sentence-transformers' log handler, which prints records through ``tqdm.write``
so that log lines do not break progress bars.

>>> import logging
>>> logging.basicConfig(level=logging.INFO, handlers=[LoggingHandler()])   # doctest: +SKIP
"""

from __future__ import annotations

import logging


class LoggingHandler(logging.Handler):
    """A :class:`logging.Handler` writing each formatted record with ``tqdm.write`` (alias of
    ``sentence_transformers.LoggingHandler``)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm  # imported here: `import sentencekit` stays light

            tqdm.write(self.format(record))
            self.flush()
        except Exception:  # noqa: BLE001 - logging.Handler's contract: report, never raise
            self.handleError(record)
