"""Evidence beside each tag: the already-reviewed VOCs most similar to a new one, with their labels.

A reviewer judges a tag faster next to precedents ("the last three complaints like this went to
건축과"). :func:`similar_reviewed` finds, for each new VOC, the ``k`` most similar VOCs of a
:class:`ReviewedPool` — the rows a model was trained on, with their reviewed labels — by cosine
similarity of the model's own TF-IDF features (``voc.classify.linear.LinearVOCClassifier``: word
1–2-grams over Kiwi model tokens; TF-IDF rows are L2-normalised, so cosine = dot product).

* :func:`build_pool` / :func:`pool_from_classifier`: the pool (ids, labels per dimension, an
  ``M × F`` sparse matrix) built once at training time (``voc.tagger.train_tagger`` stores it
  as ``tagger.evidence_pool``);
* :func:`similar_reviewed`: the neighbours of N new rows; :func:`tagger_evidence` does it from a
  tagger and texts (tokens reused when the caller has them);
* :func:`format_evidence`: the review sheet's ``유사 검수 VOC`` cell;
* :func:`neighbour_agreement`: how much the neighbours' labels agree with the model's tag (the
  measurement of docs/model-quality.md, "Evidence").

Pure: no I/O, no global state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_K",
    "Neighbour",
    "ReviewedPool",
    "build_pool",
    "pool_from_classifier",
    "linear_of",
    "similar_reviewed",
    "tagger_evidence",
    "format_evidence",
    "neighbour_agreement",
]

DEFAULT_K = 3
"""Neighbours shown per VOC (issue 14: "the 3 most similar already-reviewed VOCs")."""

@dataclass(frozen=True, slots=True)
class Neighbour:
    """One reviewed VOC cited as evidence: its ``voc_id``, cosine ``similarity`` in [0, 1] to the
    new VOC, and its reviewed ``labels`` per dimension (``"major>minor"`` or None)."""

    voc_id: str
    similarity: float
    labels: Mapping[str, str | None]


@dataclass
class ReviewedPool:
    """Reviewed VOCs to cite.

    Attributes
    ----------
    ids
        M ``voc_id`` strings.
    labels
        Per dimension, M reviewed labels (``"major>minor"``, None where the row has no label of
        that dimension).
    matrix
        ``M × F`` scipy CSR matrix, rows L2-normalised (a row without features is all zero).
    classifier
        The fitted ``LinearVOCClassifier`` whose features these are (its ``_features`` maps
        texts and Kiwi tokens to the same F columns); None when the pool was built from
        ready-made features only.
    replies
        M replies given to the reviewed VOCs (None or ``""``: none), or None when the pool was
        built without them (models trained before reply drafts: :mod:`voc.replies`).
    """

    ids: list[str]
    labels: dict[str, list[str | None]]
    matrix: Any
    classifier: Any = field(default=None, repr=False)
    replies: list[str | None] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def features(self, texts: Sequence[str], tokens: Sequence[Sequence[str]] | None = None) -> Any:
        """``N × F`` L2-normalised features of N texts (``tokens``: their Kiwi model tokens, when
        the caller has them). Raises ValueError when the pool has no classifier."""
        if self.classifier is None:
            raise ValueError("this ReviewedPool has no classifier to compute features with")
        from sklearn.preprocessing import normalize

        return normalize(self.classifier._features(list(texts), tokens, fit=False), norm="l2", copy=False)


def build_pool(
    features: Any,
    ids: Sequence[Any],
    labels: Mapping[str, Sequence[str | None]],
    *,
    classifier: Any = None,
    replies: Sequence[str | None] | None = None,
) -> ReviewedPool:
    """A :class:`ReviewedPool` from ready-made features.

    Parameters
    ----------
    features
        ``M × F`` matrix (sparse or dense) of the reviewed rows; rows are L2-normalised here.
    ids
        M ``voc_id`` values (made strings).
    labels
        Per dimension, M labels (None = no label of that dimension).
    classifier
        Optional fitted classifier that produced ``features`` (see :class:`ReviewedPool`).
    replies
        Optional M replies given to the reviewed rows (:mod:`voc.replies` offers them as drafts).

    Raises
    ------
    ValueError
        Lengths differ.
    """
    from scipy.sparse import csr_matrix
    from sklearn.preprocessing import normalize

    m = features.shape[0]
    if len(ids) != m:
        raise ValueError(f"ids ({len(ids)}) and feature rows ({m}) differ in length")
    for dim, labs in labels.items():
        if len(labs) != m:
            raise ValueError(f"labels[{dim!r}] ({len(labs)}) and feature rows ({m}) differ in length")
    if replies is not None and len(replies) != m:
        raise ValueError(f"replies ({len(replies)}) and feature rows ({m}) differ in length")
    matrix = normalize(csr_matrix(features), norm="l2", copy=True)
    return ReviewedPool(
        [str(v) for v in ids],
        {d: [str(x) if x else None for x in labs] for d, labs in labels.items()},
        matrix,
        classifier,
        None if replies is None else [str(r) if r else None for r in replies],
    )


def linear_of(classifier: Any) -> Any | None:
    """The ``LinearVOCClassifier`` inside a dimension classifier (itself, or the ``model_`` of a
    ``HybridClassifier``); None for a keyword classifier or anything without TF-IDF features."""
    from voc.classify.linear import LinearVOCClassifier

    if isinstance(classifier, LinearVOCClassifier):
        # hasattr: an unfitted classifier has no TF-IDF vocabulary (set by fit) and gives no evidence
        return classifier if hasattr(classifier, "vectorizer_") else None
    inner = getattr(classifier, "model_", None)
    if isinstance(inner, LinearVOCClassifier) and hasattr(inner, "vectorizer_"):
        return inner
    return None


def pool_from_classifier(
    classifier: Any,
    texts: Sequence[str],
    ids: Sequence[Any],
    labels: Mapping[str, Sequence[str | None]],
    *,
    tokens: Sequence[Sequence[str]] | None = None,
    replies: Sequence[str | None] | None = None,
) -> ReviewedPool | None:
    """The pool of M reviewed rows in the feature space of a fitted dimension classifier
    (:func:`linear_of`); None when it has no TF-IDF features (keyword, KoBERT) or M = 0.
    ``replies``: the M rows' replies, kept for reply drafts (:mod:`voc.replies`).

    Raises
    ------
    ValueError
        Lengths differ.
    """
    clf = linear_of(classifier)
    if clf is None or not len(texts):
        return None
    if len(ids) != len(texts) or (tokens is not None and len(tokens) != len(texts)):
        raise ValueError(f"texts ({len(texts)}), ids ({len(ids)}) and tokens differ in length")
    return build_pool(clf._features(list(texts), tokens, fit=False), ids, labels, classifier=clf, replies=replies)


def similar_reviewed(
    features: Any,
    pool: ReviewedPool,
    *,
    k: int = DEFAULT_K,
    exclude_ids: Sequence[Any] | None = None,
) -> list[list[Neighbour]]:
    """The ``k`` most similar reviewed VOCs of each of N rows.

    Parameters
    ----------
    features
        ``N × F`` features of the new rows in the pool's feature space
        (:meth:`ReviewedPool.features`); rows are L2-normalised here.
    pool
        The reviewed VOCs.
    k
        Neighbours per row (≥ 1).
    exclude_ids
        N ``voc_id`` values: a row never cites itself (a month re-tagged after its VOCs were
        reviewed and trained on).

    Returns
    -------
    list[list[Neighbour]]
        N lists, most similar first (ties: pool order), at most ``k`` each; neighbours with
        similarity 0 (no shared feature) are left out.

    Raises
    ------
    ValueError
        ``k`` < 1, a feature width other than the pool's, ``exclude_ids`` not of length N.
    """
    from scipy.sparse import csr_matrix
    from sklearn.preprocessing import normalize

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    n = features.shape[0]
    if n and features.shape[1] != pool.matrix.shape[1]:
        raise ValueError(f"features have {features.shape[1]} columns, the pool {pool.matrix.shape[1]}")
    if exclude_ids is not None and len(exclude_ids) != n:
        raise ValueError(f"exclude_ids ({len(exclude_ids)}) and feature rows ({n}) differ in length")
    if n == 0 or len(pool) == 0:
        return [[] for _ in range(n)]
    X = normalize(csr_matrix(features), norm="l2", copy=True)
    where: dict[str, list[int]] = {}
    for j, pid in enumerate(pool.ids):
        where.setdefault(pid, []).append(j)
    dims = list(pool.labels)
    out: list[list[Neighbour]] = []
    for start in range(0, n, 512):  # at most 512 × M similarities in memory
        S = (X[start : start + 512] @ pool.matrix.T).toarray()
        for r, sims in enumerate(S):
            if exclude_ids is not None:
                sims[where.get(str(exclude_ids[start + r]), [])] = -1.0
            order = np.argsort(-sims, kind="stable")[:k]
            out.append(
                [
                    Neighbour(pool.ids[j], float(min(1.0, sims[j])), {d: pool.labels[d][j] for d in dims})
                    for j in order
                    if sims[j] > 0
                ]
            )
    return out


def tagger_evidence(
    tagger: Any,
    texts: Sequence[str],
    *,
    ids: Sequence[Any] | None = None,
    tokens: Sequence[Sequence[str]] | None = None,
    k: int = DEFAULT_K,
) -> list[list[Neighbour]] | None:
    """:func:`similar_reviewed` of N ``all_text`` strings against ``tagger.evidence_pool``.

    Parameters
    ----------
    tagger
        A tagger; only one trained since issue 14 has an ``evidence_pool`` (older models, KoBERT
        and keyword-only taggers have none → None).
    texts
        N ``all_text`` strings as the tagger reads them (``voc.tagger.frame_texts`` with its
        ``use_reply``).
    ids
        N ``voc_id`` values (never cite a row itself).
    tokens
        The texts' Kiwi model tokens when the caller has them (``voc.tagger.frame_analyses``);
        else the tagger's tokenizer analyses the texts.
    k
        Neighbours per row.

    Returns
    -------
    list[list[Neighbour]] | None
        N lists, or None when the tagger has no pool.
    """
    # getattr: taggers without a pool (KoBERT, keyword-only, models pickled before issue 14) = no evidence
    pool: ReviewedPool | None = getattr(tagger, "evidence_pool", None)
    if pool is None or pool.classifier is None:
        return None
    if tokens is None and len(texts):
        tokens = tagger.tokenizer.model_tokens_batch(list(texts))
    return similar_reviewed(pool.features(texts, tokens), pool, k=k, exclude_ids=ids)


def format_evidence(neighbours: Sequence[Neighbour] | None, *, dimensions: Sequence[str] = ("subject", "work")) -> str:
    """The ``유사 검수 VOC`` cell: one line per neighbour, ``"{voc_id} {labels} ({similarity})"``,
    labels of the given dimensions that the neighbour has, joined by ``" | "``::

        69354 도시재생국>건축과 (0.62)
        69474 도시재생국>건축과 (0.58)

    ``""`` for no neighbour."""
    lines = []
    for nb in neighbours or ():
        labs = [nb.labels.get(d) for d in dimensions]
        text = " | ".join(lab for lab in labs if lab) or "-"
        lines.append(f"{nb.voc_id} {text} ({nb.similarity:.2f})")
    return "\n".join(lines)


def neighbour_agreement(
    neighbours: Sequence[Sequence[Neighbour]], predicted: Sequence[str | None], dimension: str
) -> np.ndarray:
    """Similarity-weighted share of each row's neighbours whose ``dimension`` label equals the
    row's predicted label: Σ sim·[label = predicted] / Σ sim over neighbours that have a label of
    that dimension.

    Returns
    -------
    ndarray, shape (N,)
        In [0, 1]; NaN where no neighbour has a label of ``dimension`` (or no prediction).

    Raises
    ------
    ValueError
        Lengths differ.
    """
    if len(neighbours) != len(predicted):
        raise ValueError(f"neighbours ({len(neighbours)}) and predicted ({len(predicted)}) differ in length")
    out = np.full(len(predicted), np.nan)
    for i, (nbs, pred) in enumerate(zip(neighbours, predicted)):
        pairs = [(nb.similarity, nb.labels.get(dimension)) for nb in nbs if nb.labels.get(dimension)]
        w = sum(s for s, _ in pairs)
        if pred and pairs and w > 0:
            out[i] = sum(s for s, lab in pairs if lab == pred) / w
    return out
