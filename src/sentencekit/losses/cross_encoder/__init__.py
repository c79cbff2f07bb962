"""Cross-encoder (reranker) losses, with sentence-transformers' names, arguments and defaults.

Each takes a ``CrossEncoder`` and is called as ``loss(inputs, labels)``: ``inputs`` are the batch's raw text
columns (e.g. ``[queries, documents]``; ``[queries, docs_lists]`` for the listwise ListNetLoss / LambdaLoss),
from which the loss builds and scores the (query, document) pairs.

>>> from sentencekit.losses.cross_encoder import BinaryCrossEntropyLoss, LambdaLoss, NDCGLoss2PPScheme
>>> BinaryCrossEntropyLoss.__name__
'BinaryCrossEntropyLoss'
"""

from sentencekit.losses.cross_encoder.binary_cross_entropy import BinaryCrossEntropyLoss
from sentencekit.losses.cross_encoder.cross_encoder_margin_mse import MarginMSELoss
from sentencekit.losses.cross_encoder.cross_encoder_mnrl import MultipleNegativesRankingLoss
from sentencekit.losses.cross_encoder.cross_encoder_mse import MSELoss
from sentencekit.losses.cross_encoder.cross_entropy import CrossEntropyLoss
from sentencekit.losses.cross_encoder.lambda_loss import (
    BaseWeightingScheme,
    LambdaLoss,
    LambdaRankScheme,
    NDCGLoss1Scheme,
    NDCGLoss2PPScheme,
    NDCGLoss2Scheme,
    NoWeightingScheme,
)
from sentencekit.losses.cross_encoder.listnet import ListNetLoss

__all__ = [
    "BaseWeightingScheme",
    "BinaryCrossEntropyLoss",
    "CrossEntropyLoss",
    "LambdaLoss",
    "LambdaRankScheme",
    "ListNetLoss",
    "MSELoss",
    "MarginMSELoss",
    "MultipleNegativesRankingLoss",
    "NDCGLoss1Scheme",
    "NDCGLoss2PPScheme",
    "NDCGLoss2Scheme",
    "NoWeightingScheme",
]
