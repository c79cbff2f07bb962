"""The model families users instantiate: :class:`SentenceTransformer` (embeddings) and
:class:`CrossEncoder` (pair scores). Each is a thin class over the shared base (``model_base``), an engine
(``sentencekit.engines``) and its pipeline (``sentencekit.pipeline``)."""
