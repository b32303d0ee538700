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

Share notes only count what can be trusted (given the month's 묶음 ids and review thresholds):

* a **near-duplicate group** (one mass complaint, ``voc.groups.near_duplicate_groups``) is one
  event, not one VOC per post: 28 parents writing about one construction are one matter;
* a share **alert** must hold whatever the unconfirmed tags turn out to be
  (:func:`confirmed_tags`: low-confidence model tags and keyword guesses nobody reviewed). A
  change that needs them is a softer ``검수 후 확인`` note (:data:`PENDING_PREFIX`); one that
  only exists when a group's posts are counted one by one is a ``집단 민원`` note
  (:data:`GROUP_PREFIX`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from voc.taxonomy import split_label

__all__ = [
    "Shift",
    "ShiftRule",
    "new_classes",
    "share_shifts",
    "two_proportion_p_value",
    "reviewed_labels_of",
    "drift_messages",
    "confirmed_tags",
    "PENDING_PREFIX",
    "is_alert",
    "GROUP_PREFIX",
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

PENDING_PREFIX = "검수 후 확인"
"""Start of a share note that exists only through unconfirmed tags (low-confidence model tags or
keyword guesses nobody reviewed): a change to look at once the month is reviewed, not an alert."""

GROUP_PREFIX = "집단 민원"
"""Start of a note on a share change that exists only when the posts of a near-duplicate group
(a mass complaint) are counted one by one."""

def is_alert(note: str) -> bool:
    """Whether a drift note of :func:`drift_messages` is an alert, not a softer note (one starting
    with :data:`PENDING_PREFIX` or :data:`GROUP_PREFIX`)."""
    return not str(note).startswith((PENDING_PREFIX, GROUP_PREFIX))


_REVIEWER_SOURCES = frozenset({"reviewer", "reviewer_group"})
_REST = "\x00rest"  # the other labels, in a two-label count (never a real label: labels are stripped text)


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


def _check_rule(threshold: float, min_count: int, min_vocs: int, alpha: float | None) -> None:
    """Raise ``ValueError`` for share-shift rule parameters out of range (:func:`share_shifts`)."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    if min_count < 0:
        raise ValueError(f"min_count must be >= 0, got {min_count!r}")
    if min_vocs < 1:
        raise ValueError(f"min_vocs must be >= 1, got {min_vocs!r}")
    if alpha is not None and not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1) or None, got {alpha!r}")


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
    _check_rule(threshold, min_count, min_vocs, alpha)
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


@dataclass(frozen=True, slots=True)
class ShiftRule:
    """The share-shift rule of :func:`share_shifts` as one value (:func:`drift_messages`).

    Attributes
    ----------
    threshold
        Absolute share change in [0, 1]; default :data:`SHIFT_THRESHOLD` (0.10 = 10 share points).
    min_count
        Fewest VOCs of a label this month or per previous month on average; default
        :data:`SHIFT_MIN_COUNT`.
    min_vocs
        Fewest VOCs of the month in total (≥ 1); default :data:`SHIFT_MIN_VOCS`.
    alpha
        Significance level in (0, 1) of the two-proportion z-test, or None to skip the test;
        default :data:`SHIFT_ALPHA`.

    Raises
    ------
    ValueError
        A parameter out of range (as :func:`share_shifts`).
    """

    threshold: float = SHIFT_THRESHOLD
    min_count: int = SHIFT_MIN_COUNT
    min_vocs: int = SHIFT_MIN_VOCS
    alpha: float | None = SHIFT_ALPHA

    def __post_init__(self) -> None:
        _check_rule(self.threshold, self.min_count, self.min_vocs, self.alpha)

    def shifts(self, current: Mapping[str, int], previous: Sequence[Mapping[str, int]]) -> list[Shift]:
        """:func:`share_shifts` of ``current`` against ``previous`` under this rule."""
        return share_shifts(current, previous, threshold=self.threshold, min_count=self.min_count,
                            min_vocs=self.min_vocs, alpha=self.alpha)


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


def confirmed_tags(frame: pl.DataFrame, dimension: str, thresholds: Mapping[str, float] | None) -> list[bool]:
    """Per row, whether its ``dimension`` tag can be trusted for a share alert.

    A tag is confirmed when a reviewer gave or confirmed it (``{dimension}_reviewed`` true, or
    ``{dimension}_source`` ``reviewer``/``reviewer_group``; ``is_reviewed`` when the frame has
    neither column), or when a trained model gave it (``{dimension}_source == "model"``, or no
    source column) with a confidence at or above ``thresholds[dimension]`` — the same review
    threshold below which 검토 우선 flags the row (``voc.review.review_flags``). A keyword guess
    (source ``keyword``) is never confirmed: its confidence is a keyword score, not an error
    probability. A model dimension without a threshold in ``thresholds`` counts as confident
    (nothing would flag it for review).

    Parameters
    ----------
    frame
        ``N × C`` tagged or reviewed frame; uses ``{dimension}_confidence``/``_source``/
        ``_reviewed`` and ``is_reviewed`` when present.
    dimension
        ``"subject"`` or ``"work"``.
    thresholds
        ``{dimension: review threshold in [0, 1]}`` (``voc.review.review_thresholds_of``), or
        None: every tag is confirmed (no confidence information; the rule before thresholds).

    Returns
    -------
    list[bool]
        N flags in row order.
    """
    n = frame.height
    cols = frame.columns

    def texts(col: str) -> list[str] | None:
        return [str(v).strip() if v is not None else "" for v in frame[col].to_list()] if col in cols else None

    def flags(col: str) -> list[bool] | None:
        if col not in cols:
            return None
        return [str(v).strip().lower() in ("true", "1", "y", "yes", "t") for v in frame[col].to_list()]

    sources = texts(f"{dimension}_source")
    reviewed = flags(f"{dimension}_reviewed")
    if reviewed is None:
        reviewed = [s in _REVIEWER_SOURCES for s in sources] if sources is not None else (flags("is_reviewed") or [False] * n)
    elif sources is not None:
        reviewed = [r or s in _REVIEWER_SOURCES for r, s in zip(reviewed, sources)]
    if thresholds is None:
        return [True] * n
    limit = thresholds.get(dimension)
    conf_col = f"{dimension}_confidence"
    confs = frame[conf_col].cast(pl.Float64, strict=False).to_list() if conf_col in cols else [None] * n
    out = []
    for i in range(n):
        src = sources[i] if sources is not None else "model"
        c = confs[i]
        confident = src == "model" and (
            limit is None or (c is not None and not math.isnan(c) and c >= limit)
        )
        out.append(bool(reviewed[i] or confident))
    return out


@dataclass(frozen=True, slots=True)
class _Event:
    """One VOC, or one near-duplicate group counted once."""

    label: str
    confirmed: bool
    rows: int  # VOCs behind the event (1 for a single VOC)
    unconfirmed_rows: int  # of them, rows with that label whose tag is not confirmed


def _events(labels: Sequence[str | None], confirmed: Sequence[bool], groups: Sequence[str | None] | None) -> list[_Event]:
    """Rows with a label as events: a row without a group is one event; the labelled rows of a
    group are one event carrying their most common label (ties: the first seen), confirmed when
    at least half of the rows with that label are."""
    singles: list[_Event] = []
    members: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        if lab is None:
            continue
        g = groups[i] if groups is not None else None
        g = str(g).strip() if g is not None else ""
        if g:
            members.setdefault(g, []).append(i)
        else:
            singles.append(_Event(lab, bool(confirmed[i]), 1, 0 if confirmed[i] else 1))
    for rows in members.values():
        counts: dict[str, int] = {}
        for i in rows:
            lab = labels[i]
            if lab is not None:  # always: members hold labelled rows only
                counts[lab] = counts.get(lab, 0) + 1
        top = max(counts, key=lambda k: counts[k])  # dicts keep insertion order: ties → first seen
        with_top = [i for i in rows if labels[i] == top]
        n_conf = sum(1 for i in with_top if confirmed[i])
        singles.append(_Event(top, 2 * n_conf >= len(with_top), len(rows), len(with_top) - n_conf))
    return singles


def _holds(label: str, count: int, total: int, previous: Sequence[Mapping[str, int]], up: bool, rule: ShiftRule) -> bool:
    """Whether ``label`` at ``count`` of ``total`` events still shows the shift (up or down) of
    :func:`share_shifts` against ``previous`` (the label against all others)."""
    cur = {label: count, _REST: max(0, total - count)}
    prev = [{label: m.get(label, 0), _REST: sum(m.values()) - m.get(label, 0)} for m in previous]
    return any(s.label == label and (s.delta > 0) == up for s in rule.shifts(cur, prev))


@dataclass(frozen=True, slots=True)
class _ShareMonth:
    """One dimension of a building-month as its share notes count it (:func:`drift_messages`)."""

    name: str  # the dimension in Korean (DIMENSION_NAMES)
    majors: list[str | None]  # N majors in row order (None: no major)
    confirmed: list[bool]  # N flags of confirmed_tags
    events: list[_Event]  # the rows with a major as events (a group counts once)
    previous: list[dict[str, int]]  # major counts of each earlier month with any
    per_voc: dict[str, int]  # this month's major counts, one per VOC
    group_ids: list[str | None] | None  # N 묶음 ids, or None
    span: str  # "지난 n개월 평균 대비"


_VERB = {True: "증가", False: "감소"}


def _group_id_list(group_ids: Sequence[str | None] | pl.Series | None, n: int) -> list[str | None] | None:
    """``group_ids`` as a list of ``n`` ids (None stays None); ``ValueError`` for another length."""
    if group_ids is None:
        return None
    gids = list(group_ids.to_list() if isinstance(group_ids, pl.Series) else group_ids)
    if len(gids) != n:
        raise ValueError(f"group_ids has {len(gids)} values for {n} rows of the month")
    return gids


def _new_class_notes(reviewed: pl.DataFrame, dim: str, model_labels: Sequence[str], max_items: int) -> list[str]:
    """The ``새 … 분류`` note of one dimension (human labels the model lacks), or none."""
    labels = reviewed_labels_of(reviewed, dim)
    new = new_classes(labels, model_labels, match_minor=True)
    if not new:
        return []
    shown = ", ".join(new[:max_items]) + (f" 외 {len(new) - max_items}개" if len(new) > max_items else "")
    n_rows = sum(1 for lab in labels if lab in set(new))
    return [f"새 {DIMENSION_NAMES[dim]} 분류: {shown} (검수 {n_rows}건) — 모델이 학습하지 않은 분류입니다. 재학습하면 반영됩니다."]


def _share_month(reviewed: pl.DataFrame, dim: str, history: pl.DataFrame, group_ids: list[str | None] | None,
                 thresholds: Mapping[str, float] | None) -> _ShareMonth | None:
    """Count one dimension's majors of the month (as events) and of each earlier month; None when
    the month has no major of it."""
    col = f"{dim}_major"
    if col not in reviewed.columns:
        return None
    majors = [str(v).strip() if v is not None and str(v).strip() else None for v in reviewed[col].to_list()]
    if not any(majors):
        return None
    previous = [_major_counts(g, col) for _, g in history.group_by("yyyymm", maintain_order=True)]
    previous = [m for m in previous if m]
    confirmed = confirmed_tags(reviewed, dim, thresholds)
    return _ShareMonth(
        name=DIMENSION_NAMES[dim],
        majors=majors,
        confirmed=confirmed,
        events=_events(majors, confirmed, group_ids),
        previous=previous,
        per_voc=_major_counts(reviewed, col),
        group_ids=group_ids,
        span=f"지난 {len(previous)}개월 평균 대비",
    )


def _event_shifts(month: _ShareMonth, per_voc: list[Shift] | None, rule: ShiftRule) -> list[Shift]:
    """Share shifts of the month's events; with groups, only those the per-VOC count
    (``per_voc``) shows the same way too (history is counted per VOC)."""
    counts: dict[str, int] = {}
    for e in month.events:
        counts[e.label] = counts.get(e.label, 0) + 1
    shifts = rule.shifts(counts, month.previous)
    if per_voc is not None:
        # a move the per-VOC count does not show too is an artefact of counting a group once
        # (a 30-post campaign is not a "decrease" of its label)
        both = {(sh.label, sh.delta > 0) for sh in per_voc}
        shifts = [sh for sh in shifts if (sh.label, sh.delta > 0) in both]
    return shifts


_Found = list[tuple[Shift, list[_Event]]]


def _alerts_and_pending(month: _ShareMonth, shifts: Sequence[Shift], rule: ShiftRule) -> tuple[_Found, _Found]:
    """Split ``shifts`` (each with its label's events) into alerts, which hold whatever the
    unconfirmed events turn out to be, and pending ones, which need them."""
    total = len(month.events)
    n_unconfirmed = sum(1 for e in month.events if not e.confirmed)
    alerts: _Found = []
    pending: _Found = []
    for sh in shifts:
        mine = [e for e in month.events if e.label == sh.label]
        if n_unconfirmed:
            sure = sum(1 for e in mine if e.confirmed)
            # an increase must hold with every unconfirmed event elsewhere; a decrease with
            # every unconfirmed event on this label
            bound = sure if sh.delta > 0 else sure + n_unconfirmed
            if not _holds(sh.label, bound, total, month.previous, sh.delta > 0, rule):
                pending.append((sh, mine))
                continue
        alerts.append((sh, mine))
    return alerts, pending


def _alert_notes(month: _ShareMonth, alerts: _Found, max_items: int) -> list[str]:
    """``… 비중 증가/감소`` alerts (at most ``max_items``, then how many more)."""
    out = []
    for sh, mine in alerts[:max_items]:
        grouped = [e for e in mine if e.rows > 1]
        note = f" — 집단 민원 {len(grouped)}건 = VOC {sum(e.rows for e in grouped)}건 포함" if grouped else ""
        out.append(
            f"{month.name} 비중 {_VERB[sh.delta > 0]}: {sh.label} {sh.previous_share:.0%} → {sh.current_share:.0%} "
            f"({sh.delta * 100:+.0f}%p, {sh.current_count}건{note}, {month.span})"
        )
    if len(alerts) > max_items:
        out.append(f"{month.name} 비중이 크게 바뀐 분류가 {len(alerts) - max_items}개 더 있습니다.")
    return out


def _pending_notes(month: _ShareMonth, pending: _Found, max_items: int) -> list[str]:
    """``검수 후 확인 — …`` notes (:data:`PENDING_PREFIX`), at most ``max_items``."""
    out = []
    for sh, mine in pending[:max_items]:
        weak = sum(1 for e in mine if not e.confirmed)
        out.append(
            f"{PENDING_PREFIX} — {month.name} 비중 {_VERB[sh.delta > 0]}?: {sh.label} {sh.previous_share:.0%} → "
            f"{sh.current_share:.0%} ({sh.delta * 100:+.0f}%p, {sh.current_count}건 중 검수 전 저신뢰·추정 {weak}건, "
            f"{month.span}) — 검수 전 분류에 기대는 변화라 알림이 아닙니다."
        )
    return out


def _group_notes(month: _ShareMonth, per_voc: Sequence[Shift], shown: Sequence[Shift], max_items: int) -> list[str]:
    """``집단 민원 …`` notes (:data:`GROUP_PREFIX`): per-VOC shifts not ``shown`` as event shifts
    and made mostly by the groups' posts, at most ``max_items``."""
    gids = month.group_ids or []
    shown_labels = {(sh.label, sh.delta > 0) for sh in shown}
    notes = []
    for sh in per_voc:
        if (sh.label, sh.delta > 0) in shown_labels:
            continue
        in_groups: dict[str, list[int]] = {}
        for i, (lab, g) in enumerate(zip(month.majors, gids)):
            if lab == sh.label and g is not None and str(g).strip():
                in_groups.setdefault(str(g).strip(), []).append(i)
        rows = [i for r in in_groups.values() for i in r]
        if 2 * len(rows) <= sh.current_count:
            continue  # not mostly a group's posts: a side effect of another label's group
        size = sum(1 for g in gids if g is not None and str(g).strip() in in_groups)
        weak = sum(1 for i in rows if not month.confirmed[i])
        tail = " 검수 전 저신뢰·추정 분류이니 검수 후 확인하세요." if 2 * weak > len(rows) else ""
        notes.append(
            f"{GROUP_PREFIX} {len(in_groups)}건 (VOC {size}건): {month.name} {sh.label} 비중 "
            f"{sh.previous_share:.0%} → {sh.current_share:.0%} ({sh.current_count}건 중 묶음 {len(rows)}건)는 "
            f"비슷한 VOC 묶음을 하나하나 센 값입니다 — 묶음을 1건으로 세면 뚜렷한 변화가 아닙니다 (주요 이슈 참고).{tail}"
        )
    return notes[:max_items]


def _share_notes(month: _ShareMonth, rule: ShiftRule, max_items: int) -> list[str]:
    """One dimension's share notes: alerts, then pending notes, then group notes."""
    per_voc = rule.shifts(month.per_voc, month.previous) if month.group_ids is not None else None
    shifts = _event_shifts(month, per_voc, rule)
    alerts, pending = _alerts_and_pending(month, shifts, rule)
    out = _alert_notes(month, alerts, max_items) + _pending_notes(month, pending, max_items)
    if per_voc is not None:  # what the per-VOC rule would have said: changes made by the groups' posts
        out.extend(_group_notes(month, per_voc, shifts, max_items))
    return out


def drift_messages(
    *,
    reviewed: pl.DataFrame,
    model_labels: Mapping[str, Sequence[str]],
    history: pl.DataFrame | None = None,
    rule: ShiftRule = ShiftRule(),
    max_items: int = 5,
    group_ids: Sequence[str | None] | pl.Series | None = None,
    thresholds: Mapping[str, float] | None = None,
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
        months' tagged/reviewed rows), or None. Counted one row per VOC, as tagged (their
        groups and confidences are not re-examined).
    rule
        The :func:`share_shifts` rule (:class:`ShiftRule`; the module's defaults), applied to the
        shares of the majors (대분류): no share note for a month with fewer than
        ``rule.min_vocs`` events (rows with a major of the dimension, a group counting once),
        and only for changes significant at ``rule.alpha`` (two-proportion z-test).
    max_items
        Labels named per message at most.
    group_ids
        N 묶음 ids in row order (``voc.groups.near_duplicate_groups``; null = no group), or
        None (every VOC is its own event). The rows of one group with a major count as **one**
        event labelled with their most common major.
    thresholds
        ``{dimension: review threshold}`` (``voc.review.review_thresholds_of``), or None (every
        tag is trusted). Given, tags that are not confirmed (:func:`confirmed_tags`:
        low-confidence or keyword tags nobody reviewed) cannot carry a share alert on their own.

    Returns
    -------
    list[str]
        Per dimension (주제, then 작업유형):

        * ``"새 주제 분류: A>B, … (검수 n건) — 모델이 학습하지 않은 분류입니다. 재학습하면
          반영됩니다."`` when human labels name classes the model lacks (:func:`new_classes`; a
          label whose minor the model knows under another major is not new: reorganisations
          move a minor, see :func:`voc.tagger.canonical_labels`). Independent of the month's
          size (a label the model cannot produce is an error whatever the count);
        * alerts ``"주제 비중 증가: 시설 50% → 80% (+30%p, 8건, 지난 2개월 평균 대비)"`` /
          ``"… 감소: …"`` per major whose share of the month's events moved
          (:func:`share_shifts`, largest first) — with ``group_ids``, only where the per-VOC
          count moved the same way too (history is counted per VOC; a move that exists only
          because a group counts once is dropped) — and only where the shift also holds when
          every unconfirmed event is counted against the major (an increase) or for it (a
          decrease). ``8건`` counts events; a group among them is named
          (``집단 민원 1건 = VOC 28건 포함``);
        * ``"검수 후 확인 — 주제 비중 증가: …"`` for a shift of the events that needs the
          unconfirmed ones (:data:`PENDING_PREFIX`; only with ``thresholds``);
        * ``"집단 민원 1건 (VOC 28건): 주제 A 비중 0% → 66% (27건 중 묶음 27건)는 …"`` for a
          shift that appears only when the groups' posts are counted one by one, and mostly
          through them (:data:`GROUP_PREFIX`; only with ``group_ids``; ends in ``검수 후
          확인하세요`` when most of those posts' tags are unconfirmed): the mass complaint is one
          matter (주요 이슈), not a change of shares.

        Empty when nothing drifted. Without ``group_ids`` and ``thresholds`` the notes are the
        per-VOC rule over all tags.

    Raises
    ------
    ValueError
        ``group_ids`` is not of length N (invalid rule parameters are refused when the
        :class:`ShiftRule` is made).
    """
    gids = _group_id_list(group_ids, reviewed.height)
    out: list[str] = []
    for dim in ("subject", "work"):
        out.extend(_new_class_notes(reviewed, dim, model_labels.get(dim, ()), max_items))
        if history is None or history.height == 0 or "yyyymm" not in history.columns:
            continue
        month = _share_month(reviewed, dim, history, gids, thresholds)
        if month is not None:
            out.extend(_share_notes(month, rule, max_items))
    return out
