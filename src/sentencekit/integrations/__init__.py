"""Adapters between sentencekit and other libraries (vector databases, frameworks); each imports its library
only when used."""
