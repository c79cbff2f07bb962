"""Pipeline modules: each passes the shared ``features`` dict on (input_ids -> token_embeddings ->
sentence_embedding), and saves its own config and weights."""

from sentencekit.modules.base import Module
from sentencekit.modules.clip_model import CLIPModel
from sentencekit.modules.dense import Dense
from sentencekit.modules.logit_score import LogitScore
from sentencekit.modules.multi_vector_mask import MultiVectorMask
from sentencekit.modules.normalize import Normalize
from sentencekit.modules.pooling import Pooling
from sentencekit.modules.router import Asym, Router
from sentencekit.modules.sparse_autoencoder import SparseAutoEncoder
from sentencekit.modules.sparse_static_embedding import SparseStaticEmbedding
from sentencekit.modules.splade_pooling import SpladePooling
from sentencekit.modules.static import StaticEmbedding
from sentencekit.modules.token_pooling import BaseTokenPooling, HierarchicalTokenPooling, LambdaTokenPooling
from sentencekit.modules.transformer import Transformer

__all__ = ["Module", "Transformer", "Pooling", "Dense", "Normalize", "StaticEmbedding", "Router", "Asym",
           "SpladePooling", "SparseStaticEmbedding", "SparseAutoEncoder", "MultiVectorMask", "BaseTokenPooling",
           "HierarchicalTokenPooling", "LambdaTokenPooling", "CLIPModel", "LogitScore"]
