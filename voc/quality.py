"""Drift flags: what changed in the labels since the model was trained (pure functions).

Two kinds of drift matter for a VOC tagger:

* **new classes** (:func:`new_classes`): reviewers used labels the model does not know (a new
  department, a renamed or moved class). The model can never produce them, so every such VOC
  is an error until the next retraining;
* **share shifts** (:func:`share_shifts`): a subject's share of this month's VOCs moved far from
  its usual share (a mass complaint, a seasonal topic, a reorganisation). Worth a look on the
  dashboard, and a warning that this month's accuracy may differ from the held-out figure.
  A shift is only reported with support: the month has at least :data:`SHIFT_MIN_VOCS` VOCs, the
  share moved by more than :data:`SHIFT_THRESHOLD` and the change is statistically significant
  (two-proportion z-test, :func:`two_proportion_p_value`, at :data:`SHIFT_ALPHA`), so a 4-VOC
  building whose one big department happened not to appear this month raises no alarm.

:func:`drift_messages` applies both to a building-month (its tagged or reviewed frame and the
earlier months) and says what it found in Korean, for the dashboard and the run summary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from voc.taxonomy import split_label

__all__ = [
    "Shift",
    "new_classes",
    "share_shifts",
    "two_proportion_p_value",
    "reviewed_labels_of",
    "drift_messages",
    "SHIFT_THRESHOLD",
    "SHIFT_MIN_COUNT",
    "SHIFT_MIN_VOCS",
    "SHIFT_ALPHA",
    "DIMENSION_NAMES",
]

SHIFT_THRESHOLD = 0.10
"""Default: flag a share that moved by more than 10 share points (0.10 absolute)."""

SHIFT_MIN_COUNT = 5
"""Default: a label is judged only when it has at least 5 VOCs this month or on average in the
previous months (smaller counts move by chance)."""

SHIFT_MIN_VOCS = 5
"""Default: no share shift is reported for a month with fewer than 5 VOCs in total (with 4 VOCs
every label's share moves by 25-point steps; nothing can be told from it)."""

SHIFT_ALPHA = 0.05
"""Default significance level of the two-proportion z-test (:func:`two_proportion_p_value`): a
share shift is reported only when p < 0.05."""


@dataclass(frozen=True, slots=True)
class Shift:
    """One label whose share moved.

    Attributes
    ----------
    label
        The label (``"major>minor"`` or a minor).
    current_share, previous_share
        Share of the current month's VOCs, and the mean share over the previous months, in
        [0, 1].
    delta
        ``current_share − previous_share`` (signed, share points as a fraction).
    current_count
        VOCs with this label in the current month.
    previous_mean_count
        Mean VOCs per previous month with this label.
    p_value
        Two-sided p-value of the two-proportion z-test of this month against the pooled previous
        months (:func:`two_proportion_p_value`); NaN when the test was not asked for.
    """

    label: str
    current_share: float
    previous_share: float
    delta: float
    current_count: int
    previous_mean_count: float
    p_value: float = math.nan


def _clean(labels: Iterable[object]) -> list[str]:
    return [str(v).strip() for v in labels if v is not None and str(v).strip()]


def new_classes(
    reviewed_labels: Iterable[str | None], model_labels: Iterable[str], *, match_minor: bool = False
) -> list[str]:
    """Reviewed labels that are not in the model's label set.

    Parameters
    ----------
    reviewed_labels
        Labels reviewers gave (any number, repeats and None/empty allowed; blanks ignored).
    model_labels
        Labels the model was trained on (:meth:`voc.tagger.Tagger.model_labels`). Empty means
        a keyword-only dimension: nothing to drift from, so nothing is reported.
    match_minor
        Also count a ``"major>minor"`` label as known when the model has its minor under another
        major (a class moved by a reorganisation; the taxonomy keeps one active major per minor).

    Returns
    -------
    list[str]
        Distinct unknown labels, most frequent first (ties by first appearance).
    """
    known = set(_clean(model_labels))
    if not known:
        return []
    known_minors = {split_label(k)[1] for k in known}
    counts: dict[str, int] = {}
    for lab in _clean(reviewed_labels):
        if lab in known or (match_minor and split_label(lab)[1] in known_minors):
            continue
        counts[lab] = counts.get(lab, 0) + 1
    return sorted(counts, key=lambda k: -counts[k])


def _shares(counts: Mapping[str, int]) -> tuple[dict[str, float], int]:
    for k, v in counts.items():
        if v is None or v < 0:
            raise ValueError(f"count of {k!r} must be a non-negative integer, got {v!r}")
    total = int(sum(counts.values()))
    return ({k: v / total for k, v in counts.items()} if total else {}), total


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test of x1/n1 against x2/n2.

    z = (x1/n1 − x2/n2) / √(p̂ (1 − p̂) (1/n1 + 1/n2)) with the pooled p̂ = (x1 + x2) / (n1 + n2),
    p = 2 · (1 − Φ(|z|)) (``scipy.stats.norm.sf``). Source: NIST/SEMATECH e-Handbook of
    Statistical Methods, §7.3.3 "How can we determine whether two processes produce the same
    proportion of defectives?" (https://www.itl.nist.gov/div898/handbook/prc/section3/prc33.htm).
    The normal approximation is rough for very small counts; callers pair it with a minimum
    month size (:data:`SHIFT_MIN_VOCS`).

    Parameters
    ----------
    x1, n1
        Successes and trials of the first sample (this month: VOCs with the label, all VOCs).
    x2, n2
        The same for the second sample (the previous months pooled).

    Returns
    -------
    float
        p in [0, 1]; 1.0 when p̂ is 0 or 1 (both samples all-or-nothing: no difference to test).

    Raises
    ------
    ValueError
        A count is negative, a sample is empty (n < 1) or x > n.
    """
    for name, x, n in (("1", x1, n1), ("2", x2, n2)):
        if n < 1 or x < 0 or x > n:
            raise ValueError(f"sample {name}: need 0 <= x <= n and n >= 1, got x={x!r}, n={n!r}")
    pooled = (x1 + x2) / (n1 + n2)
    var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if var <= 0.0:
        return 1.0
    from scipy.stats import norm

    z = (x1 / n1 - x2 / n2) / math.sqrt(var)
    return float(min(1.0, 2.0 * norm.sf(abs(z))))


def share_shifts(
    current: Mapping[str, int],
    previous: Sequence[Mapping[str, int]],
    *,
    threshold: float = SHIFT_THRESHOLD,
    min_count: int = SHIFT_MIN_COUNT,
    min_vocs: int = SHIFT_MIN_VOCS,
    alpha: float | None = SHIFT_ALPHA,
) -> list[Shift]:
    """Labels whose share of this month moved more than ``threshold`` from the previous months,
    significantly.

    The rule: share_now(l) = count_now(l) / Σ count_now; share_before(l) = mean over the
    previous months m (those with at least one VOC) of count_m(l) / Σ count_m, a label absent
    from a month counting 0 there. Label l is flagged when

    * the month has Σ count_now ≥ ``min_vocs`` VOCs,
    * |share_now(l) − share_before(l)| > ``threshold`` (strictly; differences within 1e-9 of it
      are rounding, not drift),
    * count_now(l) ≥ ``min_count`` or mean_m count_m(l) ≥ ``min_count``, and
    * (unless ``alpha`` is None) the two-proportion z-test of count_now(l) / Σ count_now against
      the pooled previous months Σ_m count_m(l) / Σ_m Σ count_m gives p < ``alpha``
      (:func:`two_proportion_p_value`).

    Absolute share points, not relative change: a class going from 1 % to 3 % triples but
    rarely matters on a dashboard, one going from 20 % to 35 % does; the test keeps chance
    moves of small buildings out.

    Parameters
    ----------
    current
        ``{label: VOC count}`` of the month under review.
    previous
        One ``{label: count}`` per previous month (e.g. the last 3–6 months), any order.
    threshold
        Absolute share change, in [0, 1] (0.10 = 10 share points).
    min_count
        Minimum VOCs this month or per previous month on average (noise guard).
    min_vocs
        Minimum VOCs of the month in total (≥ 1); smaller months give no shifts.
    alpha
        Significance level in (0, 1), or None to skip the test (the share rule alone).

    Returns
    -------
    list[Shift]
        Largest |delta| first (ties by label), each with its ``p_value`` when tested; empty
        when the current month has fewer than ``min_vocs`` VOCs or no previous month has any.

    Raises
    ------
    ValueError
        ``threshold`` outside [0, 1], negative ``min_count``, ``min_vocs`` < 1, ``alpha``
        outside (0, 1), or a negative count.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    if min_count < 0:
        raise ValueError(f"min_count must be >= 0, got {min_count!r}")
    if min_vocs < 1:
        raise ValueError(f"min_vocs must be >= 1, got {min_vocs!r}")
    if alpha is not None and not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1) or None, got {alpha!r}")
    now, total = _shares(current)
    months = [(s, t, m) for m in previous for s, t in [_shares(m)] if t > 0]
    if total < min_vocs or not months:
        return []
    labels = set(current) | {k for m in previous for k in m}
    prev_total = sum(t for _, t, _ in months)
    out = []
    for lab in labels:
        before = sum(s.get(lab, 0.0) for s, _, _ in months) / len(months)
        mean_count = sum(m.get(lab, 0) for _, _, m in months) / len(months)
        cur = now.get(lab, 0.0)
        cnt = int(current.get(lab, 0))
        delta = cur - before
        if not (abs(delta) > threshold + 1e-9 and (cnt >= min_count or mean_count >= min_count)):
            continue
        p_value = math.nan
        if alpha is not None:
            prev_cnt = int(sum(m.get(lab, 0) for _, _, m in months))
            p_value = two_proportion_p_value(cnt, total, prev_cnt, prev_total)
            if not p_value < alpha:
                continue
        out.append(Shift(lab, cur, before, delta, cnt, mean_count, p_value))
    return sorted(out, key=lambda s: (-abs(s.delta), s.label))


DIMENSION_NAMES: dict[str, str] = {"subject": "주제", "work": "작업유형"}


def reviewed_labels_of(frame: pl.DataFrame, dimension: str) -> list[str]:
    """Human labels of one dimension in a tagged or reviewed frame (``"major>minor"``).

    Two sources, both optional: rows with ``{dimension}_reviewed`` true (``is_reviewed`` when
    the frame has no per-dimension flag) contribute their ``{dimension}_major/minor`` (the
    reviewed CSV holds the reviewer's value there), and every
    row contributes its ``reviewed_{dimension}_major/minor`` input labels (reviewed history that
    came with the VOCs). Model tags of unreviewed rows are never used. Rows without a minor are
    skipped; a missing major is taken to equal the minor.
    """
    out: list[str] = []

    def take(ma: str, mi: str, mask: list[bool] | None) -> None:
        if mi not in frame.columns:
            return
        majors = frame[ma].to_list() if ma in frame.columns else [None] * frame.height
        for k, (a, b) in enumerate(zip(majors, frame[mi].to_list())):
            if (mask is None or mask[k]) and b is not None and str(b).strip():
                out.append(f"{str(a).strip() if a is not None and str(a).strip() else str(b).strip()}>{str(b).strip()}")

    flag = f"{dimension}_reviewed" if f"{dimension}_reviewed" in frame.columns else "is_reviewed"
    if flag in frame.columns:  # per dimension where the frame says so (voc.review.merge_reviews)
        take(f"{dimension}_major", f"{dimension}_minor", [bool(v) for v in frame[flag].fill_null(False).to_list()])
    take(f"reviewed_{dimension}_major", f"reviewed_{dimension}_minor", None)
    return out


def _major_counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    if column not in frame.columns:
        return {}
    vals = [str(v).strip() for v in frame[column].to_list() if v is not None and str(v).strip()]
    counts: dict[str, int] = {}
    for v in vals:
        counts[v] = counts.get(v, 0) + 1
    return counts


def drift_messages(
    *,
    reviewed: pl.DataFrame,
    model_labels: Mapping[str, Sequence[str]],
    history: pl.DataFrame | None = None,
    threshold: float = SHIFT_THRESHOLD,
    min_count: int = SHIFT_MIN_COUNT,
    max_items: int = 5,
    min_vocs: int = SHIFT_MIN_VOCS,
    alpha: float | None = SHIFT_ALPHA,
) -> list[str]:
    """Korean drift notes for one building-month (dashboard and run summary).

    Parameters
    ----------
    reviewed
        The month's tagged frame (``voc.schema.TAGGED_COLUMNS``) or reviewed frame (plus
        ``is_reviewed``), ``N × C``.
    model_labels
        ``{dimension: labels the model was trained on}`` (``[]`` for a keyword-only dimension,
        which has no label set to drift from).
    history
        Earlier months, ``M × C'`` with ``yyyymm`` and ``{dimension}_major`` (e.g. the last six
        months' tagged/reviewed rows), or None.
    threshold, min_count, min_vocs, alpha
        The :func:`share_shifts` rule, applied to the shares of the majors (대분류): no share
        note for a month with fewer than ``min_vocs`` VOCs (rows with a major of the dimension),
        and only for changes significant at ``alpha`` (two-proportion z-test).
    max_items
        Labels named per message at most.

    Returns
    -------
    list[str]
        Per dimension (주제, then 작업유형): ``"새 주제 분류: A>B, … (검수 n건) — 모델이 학습하지
        않은 분류입니다. 재학습하면 반영됩니다."`` when human labels name classes the model lacks
        (:func:`new_classes`; a label whose minor the model knows under another major is not
        new: reorganisations move a minor, see :func:`voc.tagger.canonical_labels`), then one
        ``"주제 비중 증가: 시설 50% → 80% (+30%p, 8건, 지난 2개월 평균 대비)"`` /
        ``"… 감소: …"`` per major whose share moved (:func:`share_shifts`, largest first).
        Empty when nothing drifted. New-class notes do not depend on the month's size (a label
        the model cannot produce is an error whatever the count).
    """
    out: list[str] = []
    for dim in ("subject", "work"):
        name = DIMENSION_NAMES[dim]
        labels = reviewed_labels_of(reviewed, dim)
        new = new_classes(labels, model_labels.get(dim, ()), match_minor=True)
        if new:
            shown = ", ".join(new[:max_items]) + (f" 외 {len(new) - max_items}개" if len(new) > max_items else "")
            n_rows = sum(1 for lab in labels if lab in set(new))
            out.append(f"새 {name} 분류: {shown} (검수 {n_rows}건) — 모델이 학습하지 않은 분류입니다. 재학습하면 반영됩니다.")
        if history is None or history.height == 0 or "yyyymm" not in history.columns:
            continue
        col = f"{dim}_major"
        current = _major_counts(reviewed, col)
        if not current:
            continue
        previous = [_major_counts(g, col) for _, g in history.group_by("yyyymm", maintain_order=True)]
        previous = [m for m in previous if m]
        shifts = share_shifts(
            current, previous, threshold=threshold, min_count=min_count, min_vocs=min_vocs, alpha=alpha
        )
        for sh in shifts[:max_items]:
            verb = "증가" if sh.delta > 0 else "감소"
            out.append(
                f"{name} 비중 {verb}: {sh.label} {sh.previous_share:.0%} → {sh.current_share:.0%} "
                f"({sh.delta * 100:+.0f}%p, {sh.current_count}건, 지난 {len(previous)}개월 평균 대비)"
            )
        if len(shifts) > max_items:
            out.append(f"{name} 비중이 크게 바뀐 분류가 {len(shifts) - max_items}개 더 있습니다.")
    return out
