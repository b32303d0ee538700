"""Mass complaints: VOCs of one building and month that are about the same thing.

A campaign (parents of one school writing, each in their own words, against one construction
project; owners of one hotel against one licence) fills a month with posts whose texts differ
but whose names and topic coincide. :func:`near_duplicate_groups` finds them so that a reviewer
decides such a group once (``voc.review``: the 묶음 column and the group decision) and the
dashboard shows it as one issue (:func:`group_summaries`).

Method
------
Text of a VOC = its cleaned title + request (:func:`group_texts`, ``voc.text.build_all_texts``
without the reply: the office's answers repeat boilerplate that would pull unrelated posts
together). Features = TF-IDF of character 2–3-grams within words (``analyzer="char_wb"``,
sublinear tf, rows L2-normalised), so that names Kiwi splits or misses (``신선초``, ``골든튤립``)
still match. Within each (``building_id``, month of ``created_at``) cell the rows are clustered by
**average linkage** on cosine distance (``scipy.cluster.hierarchy``; deterministic) and the tree
is cut at distance ``1 − threshold``: a group's members are on average at least ``threshold``
similar to each other, which, unlike single linkage, does not chain unrelated posts through one
that mentions two topics.

The IDF must come from more than the month: in a building-month of 40 posts every word of a
campaign is "common". :func:`fit_group_vectorizer` fits it on a reference corpus (the training
history: ``voc.tagger.train_tagger`` stores one with the model as ``group_vectorizer``), and
:data:`GROUP_THRESHOLD` is the cut for such a vectorizer. Without one the vectorizer is fitted
on the frame itself and the cut is :data:`NEAR_COPY_THRESHOLD`, which only groups near copies.

Thresholds, measured on the shipped sample (``python benchmarks/review_budget.py``, its ``groups``
lines; see docs/model-quality.md "Mass complaints (묶음)"):

* with IDF from history, 0.12: building 1 in 2019-11 (41 posts) forms one group of the 28 posts
  against the 신선초등학교 construction plus one group of 3 posts about one demolition next to
  the writers' houses, building 2 in 2018-08 (127 posts) one group of the 120 posts against the
  골든튤립 licence plus a pair; 0.10–0.18 give the same groups, 0.20 shrinks them to 27 and 118;
* without reference IDF, 0.30: groups are near copies (the same post twice, "… 2", "… 3").

Large cells
-----------
Average linkage needs the cell's N × N distance matrix, so it runs on cells of at most
:data:`MAX_CELL_ROWS` VOCs. A larger cell (a flood of posts: 200,000 in one building-month) is
grouped in time and memory linear in N by MinHash LSH (Broder 1997; banding as in Leskovec,
Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3.4): each text's set of the same character
2–3-grams (hashed, ``sklearn`` ``HashingVectorizer``) gets a :data:`LARGE_CELL_NUM_PERM`-value MinHash
signature (``datasketch.MinHash``), rows sharing a band of signature values are candidates, a
candidate pair is kept when its estimated Jaccard similarity is at least
:data:`LARGE_CELL_JACCARD`, and groups are the connected components of the kept pairs
(``scipy.sparse.csgraph``). This finds copies and near copies (the same post re-sent, a form
letter with names changed); it does **not** find a campaign written in each writer's own words:
on the shipped sample such posts have a character-n-gram Jaccard similarity of about 0.12 (median
of the pairs average linkage groups in 2019-11), no higher than unrelated posts of the same
month (median 0.06, 99th percentile 0.12), so no set-similarity cut separates them.

Pure: no I/O, no global state; the same frame gives the same ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from voc.text import build_all_texts, clean_text

__all__ = [
    "GROUP_THRESHOLD",
    "NEAR_COPY_THRESHOLD",
    "CHAR_NGRAM_RANGE",
    "MAX_CELL_ROWS",
    "LARGE_CELL_JACCARD",
    "LARGE_CELL_NUM_PERM",
    "LARGE_CELL_BANDS",
    "GROUP_COLUMN",
    "group_texts",
    "fit_group_vectorizer",
    "history_vectorizer",
    "near_duplicate_groups",
    "group_summaries",
]

GROUP_THRESHOLD = 0.12
"""Average-linkage cosine cut with a vectorizer fitted on history (module docstring: the
campaign of building 1 in 2019-11 is one group from 0.10 to 0.15; 0.12 is the middle)."""

NEAR_COPY_THRESHOLD = 0.30
"""Cut when the IDF comes from the frame itself: at 0.10 such a fit groups unrelated posts of
small months (IDF of 40 texts is nearly flat); at 0.30 only near copies remain."""

CHAR_NGRAM_RANGE: tuple[int, int] = (2, 3)
"""Character n-gram lengths (within words). 2–3 characters are one or two Hangul syllables: a
morpheme stem, without Kiwi."""

MAX_CELL_ROWS = 5_000
"""Largest building-month grouped by average linkage: the N × N distance matrix of a cell is held
in memory (5,000 rows: 200 MB as float64); a larger cell is grouped by MinHash LSH (module
docstring, "Large cells")."""

LARGE_CELL_JACCARD = 0.5
"""Estimated Jaccard similarity of two texts' character 2–3-gram sets above which a large cell
links them: near copies. Unrelated posts of one month of the shipped sample stay below 0.15
(largest pair 0.146); a re-sent post with a changed sentence stays well above 0.5."""

LARGE_CELL_NUM_PERM = 128
"""MinHash signature length (standard error of a Jaccard estimate ≈ sqrt(J(1 − J)/128) ≈ 0.044
at J = 0.5)."""

LARGE_CELL_BANDS = 32
"""LSH bands of ``LARGE_CELL_NUM_PERM / LARGE_CELL_BANDS`` = 4 signature values: a pair of
Jaccard similarity s becomes a candidate with probability 1 − (1 − s⁴)³² (MMDS ch. 3.4): 0.87 at
s = 0.5, ≥ 0.9999 at 0.7, 0.007 at 0.12."""

_LARGE_CHUNK_ROWS = 2_000
"""Texts hashed at a time in a large cell (bounds the n-gram matrix held at once)."""

GROUP_COLUMN = "group_id"
"""Name of the Series :func:`near_duplicate_groups` returns."""

_REQUIRED = ("voc_id", "building_id", "created_at", "title", "request_contents")


def group_texts(frame: pl.DataFrame) -> list[str]:
    """Cleaned title + request of each row (``voc.text.build_all_texts`` without the reply), N
    strings in row order (``""`` for a row without text).

    Raises
    ------
    ValueError
        ``title`` or ``request_contents`` missing.
    """
    missing = [c for c in ("title", "request_contents") if c not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing column(s) {missing}")
    texts, _ = build_all_texts(frame["title"].to_list(), frame["request_contents"].to_list(), None, with_reply=False)
    return texts


def fit_group_vectorizer(texts: Sequence[str], *, max_features: int | None = 100_000) -> Any:
    """A character 2–3-gram TF-IDF (sklearn ``TfidfVectorizer``, ``analyzer="char_wb"``, sublinear
    tf, L2 rows) fitted on ``texts``: the reference corpus whose IDF says which character runs are
    rare (the training history; :func:`group_texts` of it). ``max_features`` caps the vocabulary
    (most frequent n-grams; the shipped sample has about 60,000).

    Raises
    ------
    ValueError
        ``texts`` is empty or holds no character n-gram.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not any(t and t.strip() for t in texts):
        raise ValueError("fit_group_vectorizer needs at least one non-empty text")
    vec = TfidfVectorizer(
        analyzer="char_wb", ngram_range=CHAR_NGRAM_RANGE, sublinear_tf=True, lowercase=True, max_features=max_features
    )
    return vec.fit([t or "" for t in texts])


def history_vectorizer(frame: pl.DataFrame) -> Any | None:
    """:func:`fit_group_vectorizer` on the :func:`group_texts` of a reference frame (the training
    history), or None when every text is empty."""
    texts = group_texts(frame)
    return fit_group_vectorizer(texts) if any(t.strip() for t in texts) else None


def _cells(frame: pl.DataFrame) -> list[tuple[str, str, list[int]]]:
    """(building_id, yyyymm, row indices) per building-month, buildings in natural order and months
    ascending (the order group numbers are given in)."""
    from voc.schema import building_sort_key

    created = frame["created_at"]
    if created.dtype in (pl.Date, pl.Datetime):
        months = [d.strftime("%Y%m") if d is not None else "" for d in created.to_list()]
    else:
        months = [str(d or "")[:7].replace("-", "") for d in created.to_list()]
    buildings = ["" if b is None else str(b) for b in frame["building_id"].to_list()]
    cells: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(buildings, months)):
        cells.setdefault(key, []).append(i)
    order = sorted(cells, key=lambda k: (building_sort_key(k[0]) if k[0] else (2, ""), k[1]))
    return [(b, m, cells[(b, m)]) for b, m in order]


def _features(texts: Sequence[str], vectorizer: Any | None) -> Any:
    from sklearn.preprocessing import normalize

    if vectorizer is None:
        vectorizer = fit_group_vectorizer(texts) if any(t.strip() for t in texts) else None
        if vectorizer is None:
            return None
    return normalize(vectorizer.transform(list(texts)), norm="l2", copy=False)


def _cluster(X: Any, threshold: float) -> np.ndarray:
    """Flat cluster labels (0..) of the rows of ``X`` (L2 rows) by average linkage on cosine
    distance, cut at 1 − threshold; rows without any feature are singletons."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = X.shape[0]
    if n < 2:
        return np.arange(n)
    S = (X @ X.T).toarray()
    D = S.astype(np.float64, copy=False)  # one N × N matrix, turned into distances in place
    np.subtract(1.0, D, out=D)
    np.clip(D, 0.0, 2.0, out=D)
    np.fill_diagonal(D, 0.0)
    empty = np.asarray(X.getnnz(axis=1) == 0)
    D[empty, :] = 2.0  # no text: never closer than "opposite" to anything
    D[:, empty] = 2.0
    np.fill_diagonal(D, 0.0)
    Z = linkage(squareform(D, checks=False), method="average")
    clusters: np.ndarray = fcluster(Z, t=1.0 - threshold, criterion="distance")  # 1-based cluster ids
    return clusters - 1


def _lsh_components(texts: Sequence[str], *, jaccard: float = LARGE_CELL_JACCARD) -> np.ndarray:
    """Component labels (0..) of N texts linked when their MinHash-estimated character-n-gram
    Jaccard similarity is at least ``jaccard`` (module docstring, "Large cells"); texts without
    any n-gram are singletons. Memory: the N × :data:`LARGE_CELL_NUM_PERM` signature matrix
    (uint32: 512 bytes a text) plus one band's keys; time linear in N."""
    from datasketch import MinHash
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.feature_extraction.text import HashingVectorizer

    n = len(texts)
    hasher = HashingVectorizer(
        analyzer="char_wb", ngram_range=CHAR_NGRAM_RANGE, lowercase=True, n_features=2**30,
        binary=True, norm=None, alternate_sign=False,
    )
    sig = np.zeros((n, LARGE_CELL_NUM_PERM), dtype=np.uint32)  # datasketch values are < 2**32
    empty = np.zeros(n, dtype=bool)
    for start in range(0, n, _LARGE_CHUNK_ROWS):
        H = hasher.transform([t or "" for t in texts[start : start + _LARGE_CHUNK_ROWS]])
        rows = [H.indices[H.indptr[i] : H.indptr[i + 1]].tolist() for i in range(H.shape[0])]
        for i, m in enumerate(MinHash.generator(rows, num_perm=LARGE_CELL_NUM_PERM, hashfunc=int)):
            sig[start + i] = m.hashvalues
            empty[start + i] = not rows[i]
    live = np.flatnonzero(~empty)
    r = LARGE_CELL_NUM_PERM // LARGE_CELL_BANDS
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    for band in range(LARGE_CELL_BANDS):
        # the band's r values as one 64-bit key (a rare key collision only adds a candidate)
        vals = sig[live, band * r : (band + 1) * r].astype(np.uint64)
        keys = np.zeros(live.size, dtype=np.uint64)
        for j in range(r):
            keys = keys * np.uint64(0x9E3779B97F4A7C15) + vals[:, j]  # wraps mod 2**64
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        leader = live[first[inverse.ravel()]]  # each row's bucket's first row
        cand = live[leader != live]
        lead = leader[leader != live]
        keep = (sig[cand] == sig[lead]).mean(axis=1) >= jaccard
        src.append(cand[keep])
        dst.append(lead[keep])
    a, b = (np.concatenate(src), np.concatenate(dst)) if src else (np.array([], int), np.array([], int))
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(n, n))
    components: np.ndarray = connected_components(graph, directed=False)[1]  # (n_components, labels)
    return components


def near_duplicate_groups(
    frame: pl.DataFrame,
    *,
    threshold: float | None = None,
    vectorizer: Any | None = None,
    min_size: int = 2,
) -> pl.Series:
    """Group ids of the mass complaints of each building-month (module docstring: method and
    thresholds).

    Parameters
    ----------
    frame
        ``N × C`` VOC or tagged frame with ``voc_id``, ``building_id``, ``created_at`` (Date or
        ``YYYY-MM-DD`` text), ``title``, ``request_contents``.
    threshold
        Average cosine similarity within a group, in (0, 1]; default :data:`GROUP_THRESHOLD` with
        a ``vectorizer``, :data:`NEAR_COPY_THRESHOLD` without. A cell of more than
        :data:`MAX_CELL_ROWS` VOCs is grouped by MinHash LSH at :data:`LARGE_CELL_JACCARD` instead
        (near copies; module docstring, "Large cells"), in time and memory linear in its size.
    vectorizer
        :func:`fit_group_vectorizer` fitted on a reference corpus (``tagger.group_vectorizer``);
        None: fitted on each building-month's own texts.
    min_size
        Groups smaller than this get no id (≥ 2).

    Returns
    -------
    pl.Series
        ``group_id`` (Utf8), N values in row order: ``"{building_id}-{anchor voc_id}"`` for the
        members of a group of ≥ ``min_size`` rows (the anchor is the group's earliest VOC, ties by
        ``voc_id``: ``"1-69204"``), null otherwise. An id names its group by content, not by a
        running number, so a rerun that adds VOCs to the month keeps the ids of the groups whose
        earliest member stays (what a reviewer's group decision refers to, ``voc.review``).

    Raises
    ------
    ValueError
        A required column is missing; ``threshold`` outside (0, 1]; ``min_size`` < 2.
    """
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing column(s) {missing}")
    if threshold is None:
        threshold = GROUP_THRESHOLD if vectorizer is not None else NEAR_COPY_THRESHOLD
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    if min_size < 2:
        raise ValueError(f"min_size must be >= 2, got {min_size!r}")
    texts = group_texts(frame)
    ids = [str(v) for v in frame["voc_id"].to_list()]
    created = [str(v) for v in frame["created_at"].to_list()]
    out: list[str | None] = [None] * frame.height
    for _building, _month, rows in _cells(frame):
        if len(rows) < min_size:
            continue
        if len(rows) > MAX_CELL_ROWS:
            labels = _lsh_components([texts[i] for i in rows])
        else:
            X = _features([texts[i] for i in rows], vectorizer)
            if X is None:
                continue
            labels = _cluster(X, threshold)
        members: dict[int, list[int]] = {}
        for r, lab in zip(rows, labels):
            members.setdefault(int(lab), []).append(r)
        groups = [m for m in members.values() if len(m) >= min_size]
        for m in groups:
            anchor = min(m, key=lambda i: (created[i], _id_key(ids[i])))
            gid = f"{_building}-{ids[anchor]}"
            for i in m:
                out[i] = gid
    return pl.Series(GROUP_COLUMN, out, dtype=pl.Utf8)


def _most_central(texts: Sequence[str], vectorizer: Any | None) -> int:
    """Index of the text whose features have the largest summed cosine similarity to all the
    texts' (0 when none has a feature). Σ_j x_i·x_j = x_i·(Σ_j x_j): two passes over the rows in
    chunks of :data:`_LARGE_CHUNK_ROWS`, never the N × N similarities, so a group of 100,000
    copies costs as much memory as one of 2,000."""
    if vectorizer is None:
        vectorizer = fit_group_vectorizer(texts) if any(t.strip() for t in texts) else None
        if vectorizer is None:
            return 0
    chunks = range(0, len(texts), _LARGE_CHUNK_ROWS)
    total = None
    for s in chunks:
        part = np.asarray(_features(texts[s : s + _LARGE_CHUNK_ROWS], vectorizer).sum(axis=0)).ravel()
        total = part if total is None else total + part
    scores = np.concatenate(
        [np.asarray(_features(texts[s : s + _LARGE_CHUNK_ROWS], vectorizer) @ total).ravel() for s in chunks]
    )
    return int(np.argmax(scores))


def _id_key(v: str) -> tuple[int, int | str]:
    return (0, int(v)) if v.isdigit() else (1, v)


def _label(major: Any, minor: Any) -> str | None:
    a, b = (str(major).strip() if major is not None else ""), (str(minor).strip() if minor is not None else "")
    if not b:
        return None
    from voc.taxonomy import join_label

    return join_label(a or b, b)


def group_summaries(
    frame: pl.DataFrame,
    group_ids: Sequence[str | None] | pl.Series,
    *,
    min_size: int = 3,
    vectorizer: Any | None = None,
    top_k: int = 3,
) -> list[dict[str, Any]]:
    """One summary per group of at least ``min_size`` rows, for the dashboard's 주요 이슈.

    Parameters
    ----------
    frame
        ``N × C`` tagged (or VOC) frame with ``voc_id``, ``building_id``, ``created_at``,
        ``title``, ``request_contents``; ``subject_major/minor`` and ``work_major/minor`` when
        present give the top tags.
    group_ids
        N group ids in row order (:func:`near_duplicate_groups`; null/``""`` = no group).
    min_size
        Smallest group summarised.
    vectorizer
        As for :func:`near_duplicate_groups`; picks the representative.
    top_k
        Tags listed per dimension.

    Returns
    -------
    list[dict]
        Largest group first (ties: group id). Keys: ``group_id`` (str), ``building_id`` (str),
        ``size`` (int), ``voc_ids`` (list[str], row order), ``representative`` (dict
        ``voc_id``, ``title``, ``request``: the member whose text is on average most similar to
        the other members'; its request cleaned and cut at 300 characters with ``…``),
        ``first_date`` and ``last_date`` (``datetime.date``), ``top_subject`` and ``top_work``
        (lists of ``(label "major>minor", count)``, most frequent first, at most ``top_k``;
        empty when the frame has no such tags).

    Raises
    ------
    ValueError
        A required column is missing, or ``group_ids`` is not of length N.
    """
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing column(s) {missing}")
    gids = list(group_ids.to_list() if isinstance(group_ids, pl.Series) else group_ids)
    if len(gids) != frame.height:
        raise ValueError(f"group_ids ({len(gids)}) and frame rows ({frame.height}) differ in length")
    members: dict[str, list[int]] = {}
    for i, g in enumerate(gids):
        if g is not None and str(g).strip():
            members.setdefault(str(g).strip(), []).append(i)
    texts = group_texts(frame)
    ids = [str(v) for v in frame["voc_id"].to_list()]
    titles = frame["title"].to_list()
    created = frame["created_at"].to_list()
    if frame["created_at"].dtype not in (pl.Date, pl.Datetime):
        from datetime import date

        created = [date.fromisoformat(str(d)[:10]) if d else None for d in created]
    elif frame["created_at"].dtype == pl.Datetime:
        created = [d.date() if d is not None else None for d in created]
    tags = {
        dim: [_label(a, b) for a, b in zip(frame[f"{dim}_major"].to_list(), frame[f"{dim}_minor"].to_list())]
        if f"{dim}_major" in frame.columns and f"{dim}_minor" in frame.columns
        else [None] * frame.height
        for dim in ("subject", "work")
    }
    out: list[dict[str, Any]] = []
    for gid, rows in members.items():
        if len(rows) < min_size:
            continue
        rep = rows[_most_central([texts[i] for i in rows], vectorizer)]
        request = clean_text(frame["request_contents"][rep]).text
        if len(request) > 300:
            request = request[:299].rstrip() + "…"
        dates = [created[i] for i in rows if created[i] is not None]
        out.append(
            {
                "group_id": gid,
                "building_id": str(frame["building_id"][rows[0]]),
                "size": len(rows),
                "voc_ids": [ids[i] for i in rows],
                "representative": {"voc_id": ids[rep], "title": titles[rep] or "", "request": request},
                "first_date": min(dates) if dates else None,
                "last_date": max(dates) if dates else None,
                "top_subject": Counter(t for i in rows if (t := tags["subject"][i])).most_common(top_k),
                "top_work": Counter(t for i in rows if (t := tags["work"][i])).most_common(top_k),
            }
        )
    out.sort(key=lambda d: (-d["size"], d["group_id"]))
    return out
