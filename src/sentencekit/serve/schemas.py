"""Request and response bodies (pydantic), following the wire formats of OpenAI (``/v1/embeddings``),
Hugging Face TEI (``/embed``, ``/rerank``, ``/similarity``, ``/tokenize``, ``/decode``) and Cohere / Jina
(``/v1/rerank``). Unknown fields are ignored, as those servers do; wrong types answer 422.

Response models document the OpenAPI schema; the routes write their JSON directly (faster than
validating every float).

>>> EmbeddingRequest(input=["hello", "world"]).encoding_format
'float'
>>> TEIEmbedRequest(inputs="hello").normalize
True
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

#: a string, strings, one token-id array or several (OpenAI and TEI accept all four)
TextInputs = StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
Direction = Literal["right", "Right", "left", "Left"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- OpenAI -----------------------------------------------------------------------------------------
class EmbeddingRequest(_Request):
    """``POST /v1/embeddings`` (OpenAI). Token-id inputs are ids of the served model's own tokenizer."""

    input: TextInputs = Field(description="text, texts, or token ids of the served model's tokenizer")
    model: StrictStr | None = Field(None, description="accepted and echoed; the server has one embedding model")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="base64: little-endian float32 bytes (what the OpenAI SDK asks for by default)")
    dimensions: StrictInt | None = Field(None, description="keep the first N dimensions (Matryoshka), renormalized")
    user: StrictStr | None = None
    modality: Literal["text", "image"] = Field(
        "text", description="image: input holds data:image/...;base64 URIs (URLs with --allow-url-inputs), as Infinity")


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str
    index: int


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- TEI --------------------------------------------------------------------------------------------
class TEIEmbedRequest(_Request):
    """``POST /embed`` (TEI)."""

    inputs: TextInputs
    normalize: StrictBool = True
    truncate: StrictBool | None = Field(None, description="cut inputs over the max length (default: --auto-truncate)")
    truncation_direction: Direction = "right"
    prompt_name: StrictStr | None = None
    dimensions: StrictInt | None = None


class SimilarityInputs(BaseModel):
    source_sentence: StrictStr
    sentences: list[StrictStr]


class TEISimilarityRequest(_Request):
    """``POST /similarity`` (TEI): the similarity of ``source_sentence`` to each of ``sentences``."""

    inputs: SimilarityInputs
    truncate: StrictBool | None = None
    truncation_direction: Direction = "right"
    prompt_name: StrictStr | None = None


class TEIEmbedSparseRequest(_Request):
    """``POST /embed_sparse`` (TEI, SPLADE models): texts only (token ids answer 422)."""

    inputs: TextInputs
    truncate: StrictBool | None = Field(None, description="cut inputs over the max length (default: --auto-truncate)")
    truncation_direction: Direction = "right"
    prompt_name: StrictStr | None = None


class SparseValue(BaseModel):
    """One active term of a sparse embedding: its vocabulary id and weight."""

    index: int
    value: float


class TEIRerankRequest(_Request):
    """``POST /rerank`` (TEI)."""

    query: StrictStr
    texts: list[StrictStr]
    raw_scores: StrictBool = False
    return_text: StrictBool = False
    truncate: StrictBool | None = None
    truncation_direction: Direction = "right"


class TEIRank(BaseModel):
    index: int
    score: float
    text: str | None = None


class TokenizeRequest(_Request):
    """``POST /tokenize`` (TEI): the embedding model's tokens of each input, untruncated."""

    inputs: StrictStr | list[StrictStr]
    add_special_tokens: StrictBool = True
    prompt_name: StrictStr | None = None


class SimpleToken(BaseModel):
    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


class DecodeRequest(_Request):
    """``POST /decode`` (TEI): text of token ids."""

    ids: list[StrictInt] | list[list[StrictInt]]
    skip_special_tokens: StrictBool = True


# -- Cohere / Jina ----------------------------------------------------------------------------------
class Document(BaseModel):
    text: StrictStr


class RerankRequest(_Request):
    """``POST /v1/rerank`` (Cohere / Jina; also ``/v2/rerank``)."""

    query: StrictStr
    documents: list[StrictStr | Document]
    model: StrictStr | None = None
    top_n: StrictInt | None = Field(None, description="return only the best N (default: all)")
    return_documents: StrictBool = False
    raw_scores: StrictBool = False


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: Document | None = None


class RerankUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class RerankResponse(BaseModel):
    id: str
    object: Literal["rerank"] = "rerank"
    model: str
    results: list[RerankResult]
    usage: RerankUsage


# -- status -----------------------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok"] = "ok"


# -- errors (each family answers in its own shape) --------------------------------------------------
class ErrorTEI(BaseModel):
    """TEI's error body (TEI and status routes, and unknown paths)."""

    error: str
    error_type: str


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class ErrorOpenAI(BaseModel):
    """OpenAI's error body (``/v1/...`` routes: OpenAI and Cohere / Jina)."""

    error: ErrorDetail
