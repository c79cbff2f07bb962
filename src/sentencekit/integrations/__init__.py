"""Adapters that plug sentencekit models into other libraries: LangChain (:mod:`.langchain`), LlamaIndex
(:mod:`.llamaindex`), Haystack (:mod:`.haystack`) and MTEB (:mod:`.mteb`).

Each is an optional extra (``pip install sentencekit[langchain]`` ...) and imports its library only when
the adapter module itself is imported: ``import sentencekit`` never does. See ``docs/integrations.md``.
"""
