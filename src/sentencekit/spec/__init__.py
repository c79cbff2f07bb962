"""Reading model folders without torch: :func:`read_spec` gives the one validated description
(:class:`ModelSpec`) that every engine, the index fingerprint, the CLI and the server use."""

from sentencekit.spec.model_spec import ModelSpec, ModuleEntry, read_spec

__all__ = ["ModelSpec", "ModuleEntry", "read_spec"]
