"""One answer per mass complaint: the tags of a near-duplicate group pooled over its members.

The posts of one campaign (:mod:`voc.groups`) are about one matter, so they get one tag. Each
member's own evidence is weak and noisy (a short post, a reply naming a place rather than a
department); the group's evidence is all of it. Tagging therefore pools the members' class
probabilities and gives every member the group's tag:

* **Probabilities** (a classifier that gives them, :class:`voc.classify.linear.LinearVOCClassifier`):
  the group's distribution is the mean of its members' calibrated class probabilities — the
  *linear opinion pool* (Stone 1961, "The opinion pool", Ann. Math. Statist. 32(4); Genest &
  Zidek 1986, "Combining probability distributions", Statist. Sci. 1(1)), which, unlike a
  product of probabilities, is not decided by one overconfident member
  (:func:`pool_rows`). The group's confidence comes from that pooled distribution, through the
  classifier's own calibration.
* **Labels and confidences only** (any other tagger, keyword guesses included): a
  confidence-weighted vote (:func:`vote_tags`): the group's label is the one with the largest
  summed confidence; its confidence is that sum divided by the group's size.

A member keeps its own tag when its own evidence is decisively different
(:func:`merge_pooled`): its own label differs from the group's, its own confidence is at least
:data:`DISSENT_CONFIDENCE` and above the group's. Such a row is flagged ``group_dissent`` so
that a reviewer looks at it.

Pure: no I/O, no global state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from voc.classify.base import Tags

__all__ = [
    "DISSENT_CONFIDENCE",
    "DISSENT_FLAG",
    "group_index",
    "pool_rows",
    "merge_pooled",
    "vote_tags",
]

DISSENT_CONFIDENCE = 0.8
"""Own confidence (0–1) at which a member's different tag outweighs its group's: a high bar
on purpose, since a group's members are near duplicates of one another and a tag different
from theirs is more often the member's noise than a different matter."""

DISSENT_FLAG = "group_dissent"
"""Row flag: the row kept its own tag against its near-duplicate group's."""


def group_index(groups: Sequence[str | None] | None, n: int) -> list[np.ndarray]:
    """Row indices of each group of two or more rows, in order of first appearance.

    Parameters
    ----------
    groups
        ``n`` group ids (None = alone) or None (no groups).
    n
        Number of rows.

    Raises
    ------
    ValueError
        ``groups`` not of length ``n``.
    """
    if groups is None:
        return []
    if len(groups) != n:
        raise ValueError(f"groups ({len(groups)}) and rows ({n}) differ in length")
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        if g is not None:
            members.setdefault(g, []).append(i)
    return [np.asarray(m, dtype=int) for m in members.values() if len(m) > 1]


def pool_rows(values: np.ndarray, groups: Sequence[np.ndarray]) -> np.ndarray:
    """``values`` (N × K, e.g. class probabilities or SVM decisions) with each group's rows
    replaced by the group's mean row (the linear opinion pool, module docstring); rows outside a
    group are unchanged. Returns a new array."""
    out = np.array(values, dtype=float, copy=True)
    for rows in groups:
        out[rows] = values[rows].mean(axis=0)
    return out


def merge_pooled(
    own: Tags, pooled: Tags, groups: Sequence[np.ndarray], *, dissent_confidence: float = DISSENT_CONFIDENCE
) -> tuple[Tags, list[str]]:
    """Every grouped row gets ``pooled``'s tag unless its own is decisively different.

    Parameters
    ----------
    own, pooled
        N tags each: from the row's own evidence and from its group's.
    groups
        Row indices per group (:func:`group_index`).
    dissent_confidence
        Own confidence at which a different own label is kept (:data:`DISSENT_CONFIDENCE`).

    Returns
    -------
    (Tags, list[str])
        The N tags, and N flags (``""`` or :data:`DISSENT_FLAG`).

    Raises
    ------
    ValueError
        ``own`` and ``pooled`` differ in length.
    """
    n = len(own)
    if len(pooled) != n:
        raise ValueError(f"own ({n}) and pooled ({len(pooled)}) tags differ in length")
    labels, conf, source = list(own.labels), np.asarray(own.confidence, dtype=float).copy(), list(own.source)
    flags = [""] * n
    for rows in groups:
        for i in rows.tolist():
            c_own, c_group = float(own.confidence[i]), float(pooled.confidence[i])
            if own.labels[i] != pooled.labels[i] and c_own >= dissent_confidence and c_own > c_group:
                flags[i] = DISSENT_FLAG
                continue
            labels[i], conf[i], source[i] = pooled.labels[i], c_group, pooled.source[i]
    return Tags(labels, conf, source), flags


def vote_tags(tags: Tags, groups: Sequence[np.ndarray]) -> Tags:
    """Group tags from labels and confidences alone (module docstring): per group, the label
    with the largest summed member confidence (ties: the first member's label among them), with
    confidence = that sum / group size, and the source of the group's first member with that
    label. Rows outside a group keep their tags. Returns N tags."""
    labels, conf, source = list(tags.labels), np.asarray(tags.confidence, dtype=float).copy(), list(tags.source)
    for rows in groups:
        total: dict[str, float] = {}
        for i in rows.tolist():
            total[tags.labels[i]] = total.get(tags.labels[i], 0.0) + float(tags.confidence[i])
        best = max(total, key=lambda lab: (total[lab], -next(j for j in rows.tolist() if tags.labels[j] == lab)))
        first = next(j for j in rows.tolist() if tags.labels[j] == best)
        for i in rows.tolist():
            labels[i], conf[i], source[i] = best, total[best] / len(rows), tags.source[first]
    return Tags(labels, conf, source)
