"""New-topic candidates (신규 주제 후보): what the taxonomy may be missing.

A month's VOCs (all buildings) that the model tagged with **low confidence** and that **cluster
together** are a hint that people write about something no class covers. This module finds such
clusters and describes them for a person to judge; it never adds a class (the taxonomy changes
only by hand: the taxonomy CSV, ``VOC_TAXONOMY_PATH``).

Method
------
1. **Candidates**: rows whose ``{dimension}_source`` is ``model`` (not a keyword guess, not a
   reviewer), whose ``{dimension}_confidence`` is below the review threshold, and that no reviewer
   labelled (``reviewed_{dimension}_major`` empty). At most :data:`MAX_ROWS` of them, the least
   confident first, are clustered (average linkage needs an N × N matrix).
2. **Features**: the Kiwi NNG/NNP nouns (``voc.tokenize.KiwiTokenizer.keyword_nouns``) of each
   row's cleaned title + request (``voc.groups.group_texts``: not the office's reply, whose
   boilerplate is shared by every post), TF-IDF weighted (sublinear tf, L2 rows) with the IDF of
   *all* the month's rows, so words every post uses weigh little.
3. **Clusters**: average linkage on cosine distance (``scipy.cluster.hierarchy``, deterministic),
   cut at ``1 −`` :data:`CLUSTER_SIMILARITY`; clusters of at least :data:`MIN_CLUSTER_SIZE` rows.
4. **Keywords**: class-based TF-IDF (c-TF-IDF) as in BERTopic (Grootendorst 2022, "BERTopic:
   Neural topic modeling with a class-based TF-IDF procedure", arXiv:2203.05794, eq. 1):
   ``W(t, c) = tf(t, c) · log(1 + A / f(t))`` with ``tf(t, c)`` the frequency of noun ``t`` in
   class ``c`` (L1-normalised per class), ``f(t)`` its frequency over all classes and ``A`` the
   average number of nouns per class. The classes are the clusters plus one background class of
   all the month's other rows, so a cluster's keywords are what sets it apart from the month. Only
   nouns found in at least two of the cluster's rows are keywords.
5. **Fits an existing class**: a cluster is dropped when at least half of its top keywords are
   keywords of one active class of the dimension (``voc.taxonomy.TaxonomyRow.keywords``): the
   taxonomy already names that topic, and the rows only need review.

Pure: no I/O, no global state; the same frame gives the same candidates.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from voc.privacy import mask_personal_details

__all__ = [
    "CLUSTER_SIMILARITY",
    "MIN_CLUSTER_SIZE",
    "N_KEYWORDS",
    "N_EXAMPLES",
    "MAX_ROWS",
    "TopicOptions",
    "low_confidence_mask",
    "c_tf_idf",
    "new_topic_candidates",
    "topic_nouns",
]

CLUSTER_SIMILARITY = 0.2
"""Average cosine similarity (noun TF-IDF) of a cluster's rows: the tree is cut at distance
``1 − 0.2``. On the shipped sample (every row of 2019-09…12 taken as low-confidence, plus four posts
about one unseen topic) it gives the planted cluster and the month's campaign, and no cluster of
unrelated posts (``tests/test_new_topics.py``)."""

MIN_CLUSTER_SIZE = 3
"""Fewest rows of a candidate (issue 24: clusters of 3 or more)."""

N_KEYWORDS = 5
"""c-TF-IDF keywords listed per candidate."""

N_EXAMPLES = 3
"""Example titles listed per candidate (masked)."""

MAX_ROWS = 5_000
"""Most low-confidence rows clustered (the least confident); bounds the N × N distance matrix
(5,000² float64 = 200 MB, as ``voc.groups.MAX_CELL_ROWS``)."""


def _blank(v: Any) -> bool:
    return v is None or not str(v).strip()


def low_confidence_mask(frame: pl.DataFrame, threshold: float, *, dimension: str = "subject") -> pl.Series:
    """``N`` booleans: rows the model tagged in ``dimension`` (``{dimension}_source == "model"``)
    with ``{dimension}_confidence`` < ``threshold`` and no reviewer label
    (``reviewed_{dimension}_major`` empty or absent).

    Raises
    ------
    ValueError
        ``{dimension}_confidence`` or ``{dimension}_source`` missing, or ``threshold`` not in [0, 1].
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    conf, src, rev = f"{dimension}_confidence", f"{dimension}_source", f"reviewed_{dimension}_major"
    missing = [c for c in (conf, src) if c not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing column(s) {missing}")
    c = frame[conf].cast(pl.Float64, strict=False)
    m = (frame[src].cast(pl.Utf8) == "model").fill_null(False) & (c < threshold).fill_null(False)
    if rev in frame.columns:
        m = m & pl.Series([_blank(v) for v in frame[rev].to_list()], dtype=pl.Boolean)
    return m.alias("low_confidence")


def c_tf_idf(counts: Any) -> np.ndarray:
    """Class-based TF-IDF (BERTopic, Grootendorst 2022, arXiv:2203.05794, eq. 1).

    Parameters
    ----------
    counts
        ``K × V`` term counts per class (dense or scipy sparse), K ≥ 1.

    Returns
    -------
    numpy.ndarray
        ``K × V`` weights ``tf(t, c) · log(1 + A / f(t))``: ``tf`` the class's L1-normalised
        counts, ``f(t)`` the term's count over all classes, ``A`` the mean count per class. A term
        that occurs nowhere weighs 0.
    """
    X = np.asarray(counts.toarray() if hasattr(counts, "toarray") else counts, dtype=np.float64)
    per_class = X.sum(axis=1, keepdims=True)
    tf = np.divide(X, per_class, out=np.zeros_like(X), where=per_class > 0)
    f = X.sum(axis=0)
    A = float(per_class.mean()) if X.size else 0.0
    idf = np.log1p(np.divide(A, f, out=np.zeros_like(f), where=f > 0))
    weights: np.ndarray = tf * idf[None, :]
    return weights


def _cluster(X: Any, similarity: float) -> np.ndarray:
    """Average-linkage labels (0..) of the L2 rows of ``X`` cut at cosine distance 1 − similarity;
    rows without features are singletons."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = X.shape[0]
    if n < 2:
        return np.arange(n)
    D = 1.0 - (X @ X.T).toarray()
    np.clip(D, 0.0, 2.0, out=D)
    empty = np.asarray(X.getnnz(axis=1) == 0)
    D[empty, :] = 2.0
    D[:, empty] = 2.0
    np.fill_diagonal(D, 0.0)
    labels: np.ndarray = fcluster(linkage(squareform(D, checks=False), method="average"), t=1.0 - similarity, criterion="distance")
    return labels - 1


@dataclass(frozen=True, slots=True)
class TopicOptions:
    """How :func:`new_topic_candidates` clusters the low-confidence rows and lists a candidate.

    Attributes
    ----------
    similarity
        Average cosine similarity (noun TF-IDF) in (0, 1] a cluster's rows must reach; default
        :data:`CLUSTER_SIMILARITY`.
    min_size
        Smallest cluster, rows (≥ 2); default :data:`MIN_CLUSTER_SIZE`.
    n_keywords, n_examples
        Keywords and example titles listed per candidate; defaults :data:`N_KEYWORDS`,
        :data:`N_EXAMPLES`.
    max_rows
        Most low-confidence rows clustered (the least confident); default :data:`MAX_ROWS`.

    Raises
    ------
    ValueError
        ``similarity`` outside (0, 1] or ``min_size`` < 2.
    """

    similarity: float = CLUSTER_SIMILARITY
    min_size: int = MIN_CLUSTER_SIZE
    n_keywords: int = N_KEYWORDS
    n_examples: int = N_EXAMPLES
    max_rows: int = MAX_ROWS

    def __post_init__(self) -> None:
        if not 0.0 < self.similarity <= 1.0:
            raise ValueError(f"similarity must be in (0, 1], got {self.similarity!r}")
        if self.min_size < 2:
            raise ValueError(f"min_size must be >= 2, got {self.min_size!r}")


@dataclass(frozen=True, slots=True)
class _MonthRows:
    """The month's rows as :func:`new_topic_candidates` lists them: ids, buildings, titles,
    confidences (null → 1.0) and Kiwi nouns, N each, in row order."""

    ids: list[str]
    buildings: list[str]
    titles: list[str]
    conf: np.ndarray
    nouns: list[list[str]]


def _as_tokens(doc: list[str]) -> list[str]:
    """The TF-IDF analyser of already tokenised documents: the tokens themselves."""
    return doc


def topic_nouns(frame: pl.DataFrame, tokenizer: Any | None = None) -> list[list[str]]:
    """The Kiwi nouns :func:`new_topic_candidates` clusters: those of each row's cleaned title +
    request (:func:`voc.groups.group_texts`), N lists in row order. Each row's nouns depend on
    that row only, so a month's lists can be made per building and concatenated.

    Parameters
    ----------
    frame
        ``N × C`` rows with ``title`` and ``request_contents``.
    tokenizer
        A ``voc.tokenize.KiwiTokenizer``; None → a new single-threaded one.

    Raises
    ------
    ValueError
        ``title`` or ``request_contents`` missing.
    """
    from voc.groups import group_texts

    if tokenizer is None:
        from voc.tokenize import KiwiTokenizer

        tokenizer = KiwiTokenizer(num_workers=0)
    return list(tokenizer.keyword_nouns_batch(group_texts(frame)))


def _month_rows(frame: pl.DataFrame, dimension: str, tokenizer: Any | None, nouns: Sequence[Sequence[str]] | None) -> _MonthRows:
    """Read the month's rows and the nouns of their cleaned title + request (``nouns`` when
    given, else :func:`topic_nouns` with ``tokenizer``)."""
    if nouns is not None and len(nouns) != frame.height:
        raise ValueError(f"nouns has {len(nouns)} lists for {frame.height} rows")
    return _MonthRows(
        ids=[str(v) for v in frame["voc_id"].to_list()],
        buildings=[str(v) for v in frame["building_id"].to_list()],
        titles=[str(v) if v is not None else "" for v in frame["title"].to_list()],
        conf=frame[f"{dimension}_confidence"].cast(pl.Float64, strict=False).fill_null(1.0).to_numpy(),
        nouns=[list(n) for n in nouns] if nouns is not None else topic_nouns(frame, tokenizer),
    )


def _least_confident(cand: np.ndarray, conf: np.ndarray, max_rows: int) -> np.ndarray:
    """The at most ``max_rows`` least confident of the row indices ``cand``, in row order."""
    if cand.size > max_rows:
        cand = np.sort(cand[np.argsort(conf[cand], kind="stable")[:max_rows]])
    return cand


def _class_counts(clusters: list[np.ndarray], cand: np.ndarray, nouns: list[list[str]], terms: list[str]) -> np.ndarray:
    """``(K + 1) × V`` noun counts of the c-TF-IDF classes: each of the K clusters, then every
    other row of the month as one background class."""
    vocab = {t: j for j, t in enumerate(terms)}
    counts = np.zeros((len(clusters) + 1, len(vocab)), dtype=np.float64)
    in_cluster = np.zeros(len(nouns), dtype=bool)
    for k, c in enumerate(clusters):
        for i in cand[c]:
            in_cluster[i] = True
            for t in nouns[i]:
                counts[k, vocab[t]] += 1
    for i in np.flatnonzero(~in_cluster):
        for t in nouns[i]:
            counts[-1, vocab[t]] += 1
    return counts


def _cluster_keywords(weights: np.ndarray, terms: list[str], nouns: list[list[str]], rows: np.ndarray, n: int) -> list[str]:
    """Up to ``n`` nouns of a cluster, highest c-TF-IDF ``weights`` first, each found in at least
    two of its ``rows``."""
    doc_freq = Counter(t for i in rows for t in set(nouns[i]))
    order = np.argsort(-weights, kind="stable")
    return [terms[j] for j in order if weights[j] > 0 and doc_freq[terms[j]] >= 2][:n]


def _candidate(month: _MonthRows, rows: np.ndarray, Xc: Any, keywords: list[str], n_examples: int) -> dict[str, Any]:
    """One candidate's JSON-native dict (:func:`new_topic_candidates`); the examples are the rows
    most similar to the rest of the cluster (``Xc``: its L2 TF-IDF rows)."""
    central = np.asarray((Xc @ Xc.T).sum(axis=1)).ravel()
    ex = [int(rows[j]) for j in np.argsort(-central, kind="stable")[:n_examples]]
    blds = month.buildings
    return {
        "keywords": keywords,
        "size": int(rows.size),
        "mean_confidence": round(float(month.conf[rows].mean()), 3),
        "buildings": list(dict.fromkeys(blds[i] for i in rows)),
        "examples": [{"voc_id": month.ids[i], "building_id": blds[i], "title": mask_personal_details(month.titles[i])} for i in ex],
        "voc_ids": [month.ids[i] for i in rows],
    }


def new_topic_candidates(
    frame: pl.DataFrame,
    threshold: float | None,
    *,
    dimension: str = "subject",
    taxonomy: Any | None = None,
    tokenizer: Any | None = None,
    options: TopicOptions = TopicOptions(),
    nouns: Sequence[Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """New-topic candidates of one month (module docstring).

    Parameters
    ----------
    frame
        ``N × C`` tagged (or reviewed) rows of the month, all buildings: ``voc_id``,
        ``building_id``, ``title``, ``request_contents``, ``{dimension}_confidence``,
        ``{dimension}_source``, optionally ``reviewed_{dimension}_major``.
    threshold
        The review threshold of ``dimension`` (``voc.review.review_thresholds_of``), in [0, 1];
        None (no trained model for the dimension: no confidence) → ``[]``.
    taxonomy
        ``voc.taxonomy.Taxonomy`` whose active classes' keywords drop clusters that fit one; None
        keeps every cluster.
    tokenizer
        A ``voc.tokenize.KiwiTokenizer`` (the tagger's); None → a new single-threaded one.
    options
        Cluster similarity, smallest cluster, keywords and example titles listed per candidate,
        most rows clustered (:class:`TopicOptions`; the module's constants by default).
    nouns
        N noun lists, :func:`topic_nouns` of ``frame`` made beforehand (say per building, in
        parallel); None → made here with ``tokenizer``.

    Returns
    -------
    list of dict
        Largest first (ties: first row), each JSON-native: ``keywords`` (up to ``options.n_keywords``
        nouns, highest c-TF-IDF first), ``size`` (rows), ``mean_confidence`` (rounded to 3),
        ``buildings`` (distinct ``building_id``, in row order), ``examples`` (up to ``options.n_examples``
        of ``voc_id``, ``building_id``, ``title`` masked by ``voc.privacy.mask_personal_details``:
        the rows most similar to the rest of the cluster) and ``voc_ids`` (all rows, row order).

    Raises
    ------
    ValueError
        A required column is missing, ``threshold`` outside [0, 1] or ``nouns`` not N lists (bad options are refused
        when :class:`TopicOptions` is made).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    if threshold is None or frame.height == 0:
        return []
    missing = [c for c in ("voc_id", "building_id", "title", "request_contents") if c not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing column(s) {missing}")
    low = np.asarray(low_confidence_mask(frame, threshold, dimension=dimension).to_numpy(), dtype=bool)
    if low.sum() < options.min_size:
        return []
    month = _month_rows(frame, dimension, tokenizer, nouns)
    cand = _least_confident(np.flatnonzero(low), month.conf, options.max_rows)
    docs = [list(n) for n in month.nouns]  # token lists as they are: a Kiwi noun may hold a space ("미필적 고의")
    if not any(docs[i] for i in cand):
        return []
    vec = TfidfVectorizer(analyzer=_as_tokens, sublinear_tf=True, norm=None).fit(docs)
    X = normalize(vec.transform([docs[i] for i in cand]), norm="l2")
    labels = _cluster(X, options.similarity)
    clusters = [np.flatnonzero(labels == k) for k in np.unique(labels)]
    clusters = [c for c in clusters if c.size >= options.min_size and X[c].getnnz() > 0]
    if not clusters:
        return []
    clusters.sort(key=lambda c: (-c.size, int(c[0])))
    terms = list(vec.get_feature_names_out())
    W = c_tf_idf(_class_counts(clusters, cand, month.nouns, terms))
    class_keywords = []
    if taxonomy is not None:
        class_keywords = [set(r.keywords) for r in taxonomy.rows_of(dimension) if r.keywords]
    out = []
    for k, c in enumerate(clusters):
        keywords = _cluster_keywords(W[k], terms, month.nouns, cand[c], options.n_keywords)
        if not keywords:
            continue
        if any(len(set(keywords) & kw) >= math.ceil(len(keywords) / 2) for kw in class_keywords):
            continue  # the taxonomy already names this topic
        out.append(_candidate(month, cand[c], X[c], keywords, options.n_examples))
    return out
