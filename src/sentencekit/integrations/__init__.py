"""Adapters that plug sentencekit into other libraries: LangChain (:mod:`.langchain`), LlamaIndex
(:mod:`.llamaindex`), Haystack (:mod:`.haystack`), MTEB (:mod:`.mteb`) and vector databases (:mod:`.vectordb`:
LanceDB, PostgreSQL + pgvector).

Each is an optional extra (``pip install sentencekit[langchain]`` ...) and imports its library only when
the adapter module itself is imported: ``import sentencekit`` never does. See ``docs/integrations.md`` and
``docs/vector-databases.md``.
"""
