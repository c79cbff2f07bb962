"""Search over embedded corpora: corpus files and embeddings that are computed once and reused."""
