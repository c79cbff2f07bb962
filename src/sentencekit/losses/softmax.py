"""SoftmaxLoss: the SBERT paper's NLI objective, a trainable classifier on (u, v, |u - v|)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sentencekit.losses._base import EmbeddingLoss, check_columns, fullname, labels_on


class SoftmaxLoss(EmbeddingLoss):
    """(text1, text2) columns with an integer class label. A linear classifier (part of this loss, trained
    with it) reads the concatenation of ``u, v`` (``concatenation_sent_rep``), ``|u - v|``
    (``..._difference``) and ``u * v`` (``..._multiplication``); ``loss_fct`` is cross-entropy.

    >>> import torch
    >>> from sentencekit import SentenceTransformer
    >>> from sentencekit.losses import SoftmaxLoss
    >>> model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")       # doctest: +SKIP
    >>> loss = SoftmaxLoss(model, model.get_sentence_embedding_dimension(), num_labels=3)  # doctest: +SKIP
    >>> columns = [["A man is eating.", "A man is eating."], ["Someone eats.", "Nobody eats."]]
    >>> loss([model.tokenize(texts) for texts in columns], torch.tensor([0, 2])).backward()  # doctest: +SKIP
    """

    citation = """
@inproceedings{reimers-2019-sentence-bert,
    title = "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",
    author = "Reimers, Nils and Gurevych, Iryna",
    booktitle = "Proceedings of the 2019 Conference on Empirical Methods in Natural Language Processing",
    month = "11",
    year = "2019",
    publisher = "Association for Computational Linguistics",
    url = "https://arxiv.org/abs/1908.10084",
}
"""

    def __init__(self, model: nn.Module, sentence_embedding_dimension: int, num_labels: int,
                 concatenation_sent_rep: bool = True, concatenation_sent_difference: bool = True,
                 concatenation_sent_multiplication: bool = False,
                 loss_fct: nn.Module = nn.CrossEntropyLoss()) -> None:  # noqa: B008 (as in sentence-transformers)
        super().__init__(model)
        self.sentence_embedding_dimension = sentence_embedding_dimension
        self.num_labels = num_labels
        self.concatenation_sent_rep = concatenation_sent_rep
        self.concatenation_sent_difference = concatenation_sent_difference
        self.concatenation_sent_multiplication = concatenation_sent_multiplication
        num_vectors = 2 * concatenation_sent_rep + concatenation_sent_difference + concatenation_sent_multiplication
        if num_vectors == 0:
            raise ValueError("SoftmaxLoss needs at least one of the concatenation_sent_* options.")
        device = getattr(model, "device", None)
        self.classifier = nn.Linear(num_vectors * sentence_embedding_dimension, num_labels, device=device)
        self.loss_fct = loss_fct

    def classifier_logits(self, embeddings: list[Tensor]) -> Tensor:
        """Class logits ``[batch, num_labels]`` of (text1, text2) embeddings."""
        check_columns(self, embeddings, 2)
        u, v = embeddings
        if u.shape[-1] != self.sentence_embedding_dimension:
            raise ValueError(f"SoftmaxLoss was built for {self.sentence_embedding_dimension}-dimensional embeddings, "
                             f"got {u.shape[-1]} (its classifier cannot read truncated embeddings).")
        vectors = [u, v] if self.concatenation_sent_rep else []
        if self.concatenation_sent_difference:
            vectors.append(torch.abs(u - v))
        if self.concatenation_sent_multiplication:
            vectors.append(u * v)
        features = torch.cat(vectors, dim=1)
        return self.classifier(features.to(self.classifier.weight.dtype))

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        logits = self.classifier_logits(embeddings)
        return self.loss_fct(logits, labels_on(labels, logits, self).view(-1))

    def get_config_dict(self) -> dict[str, Any]:
        return {"sentence_embedding_dimension": self.sentence_embedding_dimension, "num_labels": self.num_labels,
                "concatenation_sent_rep": self.concatenation_sent_rep,
                "concatenation_sent_difference": self.concatenation_sent_difference,
                "concatenation_sent_multiplication": self.concatenation_sent_multiplication,
                "loss_fct": fullname(self.loss_fct)}
