"""``python -m sentencekit``: the same command line as the ``sentencekit`` script (``sentencekit.cli:main``)."""

from __future__ import annotations

import sys

from sentencekit.cli import main

if __name__ == "__main__":
    sys.exit(main())
