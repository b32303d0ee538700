"""Label audit: rank the labelled history's likely label errors, classes that overlap, and a
label-health score per dimension.

Method (confident learning: Northcutt, Jiang & Chuang 2021, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 70, 1373–1411; implemented by ``cleanlab``):

1. **Out-of-fold probabilities.** The labelled rows are cut into ``n_splits`` folds by group
   (:class:`sklearn.model_selection.GroupKFold`; the callers' groups are building-months, so a
   month's mass complaint never sits on both sides). Each fold's rows are scored by a recipe of
   :data:`voc.recipes.RECIPES` (``default`` unless told) fitted on the other folds
   (:meth:`voc.classify.linear.LinearVOCClassifier.predict_proba`), columns aligned to every
   class of the dimension (a class the fold's training rows lack gets probability 0).
2. **Label issues.** :func:`cleanlab.filter.find_label_issues` (``prune_by_noise_rate``) flags
   the rows whose given label the confident joint says is likely wrong; every row's score is
   :func:`cleanlab.rank.get_label_quality_scores` (``self_confidence``: the out-of-fold
   probability of the given label, 0–1, low = likely wrong). The frame is ranked by score,
   lowest first; ``suggested_label`` is the out-of-fold argmax.
   A row whose class no other fold holds (a class with all its rows in one fold, e.g. a
   singleton) cannot be judged: it is kept with ``judged = False`` and ranked last.
3. **Overlapping classes** (merge candidates): :func:`cleanlab.dataset.find_overlapping_classes`
   (pairs of classes the model confuses both ways, by estimated joint probability).
4. **Health**: :func:`cleanlab.dataset.overall_label_health_score` (1 − the estimated share of
   wrong labels, 0–1).

Pure library code: seeded, one thread; the only I/O is :func:`write_audit_report` (the files
``voc-train`` writes into a model version directory). ``voc labels audit`` (flows/cli/labels.py) runs it
on a source's labelled history.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "DimensionAudit",
    "audit_frame",
    "out_of_fold_proba",
    "audit_labels",
    "building_month_groups",
    "flip_labels",
    "top_k_recall",
    "suspects_frame",
    "SUSPECT_COLUMNS",
    "SUSPECT_DETAIL_COLUMNS",
    "audit_report_html",
    "write_audit_report",
]

ISSUE_COLUMNS: tuple[str, ...] = ("rank", "voc_id", "given_label", "suggested_label", "score", "issue", "judged")
"""Columns of :attr:`DimensionAudit.issues`, in order."""


@dataclass(frozen=True)
class DimensionAudit:
    """The audit of one dimension.

    Attributes
    ----------
    dimension
        ``"subject"`` or ``"work"``.
    issues
        One row per labelled VOC, ranked (``rank`` 1 = most likely wrong): ``voc_id``,
        ``given_label`` and ``suggested_label`` (``"major>minor"``), ``score`` (label quality
        0–1, low = likely wrong; null where not judged), ``issue`` (flagged by
        ``find_label_issues``), ``judged`` (False: the row's class had no training rows in its
        fold).
    overlaps
        Merge candidates: ``class_a``, ``class_b``, ``n_overlapping`` (estimated rows labelled one
        but belonging to the other, both ways), ``joint_probability``; most overlapping first.
    health
        Overall label-health score 0–1 (1 − estimated share of wrong labels).
    n_rows, n_classes
        Labelled rows and classes audited.
    recipe, n_splits
        The recipe and fold count the probabilities came from.
    """

    dimension: str
    issues: pl.DataFrame
    overlaps: pl.DataFrame
    health: float
    n_rows: int
    n_classes: int
    recipe: str
    n_splits: int

    @property
    def n_issues(self) -> int:
        """Rows flagged by ``find_label_issues``."""
        return int(self.issues["issue"].sum())

    def summary(self) -> dict[str, Any]:
        """JSON-ready ``{dimension, n_rows, n_classes, n_issues, health, recipe, n_splits, overlaps}``
        (the five most overlapping pairs)."""
        return {
            "dimension": self.dimension,
            "n_rows": self.n_rows,
            "n_classes": self.n_classes,
            "n_issues": self.n_issues,
            "health": round(self.health, 4),
            "recipe": self.recipe,
            "n_splits": self.n_splits,
            "overlaps": self.overlaps.head(5).to_dicts(),
        }


def building_month_groups(building_ids: Sequence[Any], times: Sequence[Any]) -> list[str]:
    """``"building|YYYY-MM"`` per row: the fold groups of :func:`audit_labels`.

    Raises
    ------
    ValueError
        Lengths differ, or a time is not a date (names the row and value).
    """
    from voc.recipes import _month_name, _month_number

    if len(building_ids) != len(times):
        raise ValueError(f"building_ids ({len(building_ids)}) and times ({len(times)}) differ in length")
    return [f"{b}|{_month_name(_month_number(t, i))}" for i, (b, t) in enumerate(zip(building_ids, times))]


def out_of_fold_proba(
    texts: Sequence[str],
    labels: Sequence[str],
    times: Sequence[Any],
    tokens: Sequence[Sequence[str]],
    groups: Sequence[str],
    *,
    recipe: str = "default",
    n_splits: int = 5,
    seed: int = 0,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Out-of-fold class probabilities of ``recipe`` over grouped folds.

    Parameters
    ----------
    texts, labels, times, tokens, groups
        N texts (``all_text``), N labels, N registration dates, the N texts' Kiwi model tokens and
        N fold groups (rows of a group always share a fold).
    recipe
        Name in :data:`voc.recipes.RECIPES`.
    n_splits
        Folds (at most the number of distinct groups).
    seed
        ``random_state`` of every fit.

    Returns
    -------
    (probs, classes, seen)
        ``probs`` N × K (rows sum to 1 where the fold saw any class), ``classes`` the K sorted
        labels (column order), ``seen`` N booleans: the row's own class was among its fold's
        training classes.

    Raises
    ------
    ValueError
        Lengths differ, fewer than two distinct groups or two classes, unknown recipe.
    """
    from sklearn.model_selection import GroupKFold

    from voc.recipes import recipe as named_recipe

    n = len(texts)
    if not (len(labels) == len(times) == len(tokens) == len(groups) == n):
        raise ValueError(
            f"texts ({n}), labels ({len(labels)}), times ({len(times)}), tokens ({len(tokens)}) and "
            f"groups ({len(groups)}) differ in length"
        )
    spec = named_recipe(recipe)
    y = np.asarray([str(v) for v in labels], dtype=object)
    classes = sorted(set(y.tolist()))
    if len(classes) < 2:
        raise ValueError(f"label audit needs at least two classes, got {len(classes)}")
    k = min(n_splits, len(set(groups)))
    if k < 2:
        raise ValueError(f"label audit needs rows from at least two groups (building-months), got {len(set(groups))}")
    col = {c: j for j, c in enumerate(classes)}
    probs = np.zeros((n, len(classes)), dtype=float)
    seen = np.zeros(n, dtype=bool)
    for tr, te in GroupKFold(n_splits=k).split(np.zeros(n), y, groups=list(groups)):
        if len(set(y[tr].tolist())) < 2:
            continue  # nothing to learn: the fold's rows stay unjudged (probability 0)
        clf = spec.make(None, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit([texts[i] for i in tr], y[tr].tolist(), tokens=[tokens[i] for i in tr],
                    times=[times[i] for i in tr])
            p = clf.predict_proba([texts[i] for i in te], tokens=[tokens[i] for i in te])
        cols = [col[str(c)] for c in clf.classes_]
        probs[np.ix_(te, cols)] = p
        known = set(str(c) for c in clf.classes_)
        seen[te] = [y[i] in known for i in te]
    return probs, classes, seen


def audit_labels(
    voc_ids: Sequence[Any],
    texts: Sequence[str],
    labels: Sequence[str],
    times: Sequence[Any],
    tokens: Sequence[Sequence[str]],
    groups: Sequence[str],
    *,
    dimension: str = "subject",
    recipe: str = "default",
    n_splits: int = 5,
    seed: int = 0,
) -> DimensionAudit:
    """Audit one dimension's labels (module docstring: method and sources).

    Parameters
    ----------
    voc_ids, texts, labels, times, tokens, groups
        N labelled rows: ids, ``all_text``, ``"major>minor"`` labels, registration dates, Kiwi
        model tokens and fold groups (:func:`building_month_groups`).
    dimension
        Name recorded in the result.
    recipe, n_splits, seed
        As :func:`out_of_fold_proba`.

    Returns
    -------
    DimensionAudit

    Raises
    ------
    ValueError
        As :func:`out_of_fold_proba`; ``voc_ids`` of another length.
    """
    from cleanlab.dataset import find_overlapping_classes, overall_label_health_score
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    if len(voc_ids) != len(texts):
        raise ValueError(f"voc_ids ({len(voc_ids)}) and texts ({len(texts)}) differ in length")
    probs, classes, seen = out_of_fold_proba(texts, labels, times, tokens, groups, recipe=recipe,
                                             n_splits=n_splits, seed=seed)
    col = {c: j for j, c in enumerate(classes)}
    y_idx = np.array([col[str(v)] for v in labels], dtype=int)
    # cleanlab wants rows that sum to 1: a fold that saw none of the classes keeps a uniform row
    sums = probs.sum(axis=1, keepdims=True)
    p = np.where(sums > 0, probs / np.where(sums > 0, sums, 1.0), 1.0 / len(classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flagged = find_label_issues(y_idx, p, filter_by="prune_by_noise_rate", n_jobs=1)
        quality = get_label_quality_scores(y_idx, p, method="self_confidence")
        over = find_overlapping_classes(labels=y_idx, pred_probs=p, class_names=classes)
        health = float(overall_label_health_score(y_idx, p, verbose=False))
    flagged = np.asarray(flagged, dtype=bool) & seen
    order = sorted(range(len(y_idx)), key=lambda i: (not seen[i], float(quality[i]), str(voc_ids[i])))
    best = p.argmax(axis=1)
    issues = pl.DataFrame(
        {
            "rank": list(range(1, len(order) + 1)),
            "voc_id": [str(voc_ids[i]) for i in order],
            "given_label": [classes[y_idx[i]] for i in order],
            "suggested_label": [classes[best[i]] for i in order],
            "score": [round(float(quality[i]), 4) if seen[i] else None for i in order],
            "issue": [bool(flagged[i]) for i in order],
            "judged": [bool(seen[i]) for i in order],
        },
        schema={"rank": pl.Int64, "voc_id": pl.String, "given_label": pl.String, "suggested_label": pl.String,
                "score": pl.Float64, "issue": pl.Boolean, "judged": pl.Boolean},
    )
    overlaps = pl.DataFrame(
        {
            "class_a": [str(v) for v in over["Class Name A"]],
            "class_b": [str(v) for v in over["Class Name B"]],
            "n_overlapping": [int(v) for v in over["Num Overlapping Examples"]],
            "joint_probability": [round(float(v), 5) for v in over["Joint Probability"]],
        },
        schema={"class_a": pl.String, "class_b": pl.String, "n_overlapping": pl.Int64, "joint_probability": pl.Float64},
    ).filter(pl.col("n_overlapping") > 0)
    return DimensionAudit(dimension, issues, overlaps, health, len(y_idx), len(classes), recipe, n_splits)


def flip_labels(labels: Sequence[str], *, share: float = 0.05, same_major: float = 0.5, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """A seeded noisy copy of ``"major>minor"`` labels, for measuring the audit.

    ``round(share · N)`` rows (chosen at random) get another class of the label set; with
    probability ``same_major`` one of the same major when it has another class, else any other.

    Returns
    -------
    (noisy, flipped)
        The N noisy labels and the sorted indices of the flipped rows.

    Raises
    ------
    ValueError
        ``share`` or ``same_major`` outside [0, 1], or fewer than two classes.
    """
    if not 0 <= share <= 1 or not 0 <= same_major <= 1:
        raise ValueError(f"share ({share}) and same_major ({same_major}) must lie in [0, 1]")
    classes = sorted(set(map(str, labels)))
    if len(classes) < 2:
        raise ValueError("flipping needs at least two classes")
    rng = np.random.default_rng(seed)
    noisy = [str(v) for v in labels]
    rows = np.sort(rng.choice(len(noisy), size=round(share * len(noisy)), replace=False))
    for i in rows:
        old = noisy[i]
        major = old.partition(">")[0]
        kin = [c for c in classes if c != old and c.partition(">")[0] == major]
        pool = kin if kin and rng.random() < same_major else [c for c in classes if c != old]
        noisy[i] = pool[int(rng.integers(len(pool)))]
    return noisy, rows


def top_k_recall(audit: DimensionAudit, flipped_ids: Sequence[Any], *, k: int | None = None) -> float:
    """Share (0–1) of ``flipped_ids`` among the audit's top ``k`` ranked rows (``k`` defaults
    to the number flipped)."""
    want = {str(v) for v in flipped_ids}
    if not want:
        return 1.0
    top = set(audit.issues.head(len(want) if k is None else k)["voc_id"].to_list())
    return len(want & top) / len(want)


SUSPECT_DETAIL_COLUMNS: tuple[str, ...] = ("building_id", "created_at", "title")
"""Where a suspect is, for the reviewers' sheet (``voc.label_fixes``): building, registration
date (``YYYY-MM-DD``) and masked title; empty when not given."""

SUSPECT_COLUMNS: tuple[str, ...] = ("dimension", *ISSUE_COLUMNS, "text", *SUSPECT_DETAIL_COLUMNS)
"""Columns of :func:`suspects_frame` and of ``label_audit.csv``, in order."""

REPORT_TOP = 50
"""Suspects per dimension shown in ``label_audit.html``."""

_REPORT_TEMPLATE = """<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>라벨 점검 {{ title }}</title>
<style>body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin-bottom:1.5em}
th,td{border:1px solid #ccc;padding:.25em .5em;font-size:.9em;vertical-align:top}th{background:#f3f3f3}
td.num{text-align:right}td.text{max-width:40em}</style></head><body>
<h1>라벨 점검 {{ title }}</h1>
<p>confident learning (Northcutt et al. 2021, cleanlab): 교차 검증 확률로 본 오라벨 의심 VOC. 점수가 낮을수록 의심이 큽니다.
개인정보는 가려져 있습니다.</p>
{% for a in audits %}
<h2>{{ a.dimension }}: 라벨 건강도 {{ "%.3f"|format(a.health) }}</h2>
<p>라벨된 VOC {{ a.n_rows }}건, 분류 {{ a.n_classes }}개, 오라벨 의심 {{ a.n_issues }}건 (상위 {{ a.rows|length }}건 표시)</p>
<table><thead><tr><th>순위</th><th>VOC</th><th>주어진 라벨</th><th>제안 라벨</th><th>점수</th><th>내용</th></tr></thead><tbody>
{% for r in a.rows %}<tr><td class="num">{{ r.rank }}</td><td>{{ r.voc_id }}</td><td>{{ r.given_label }}</td>
<td>{{ r.suggested_label }}</td><td class="num">{{ "%.3f"|format(r.score) }}</td><td class="text">{{ r.text }}</td></tr>
{% endfor %}</tbody></table>
{% if a.overlaps %}<h3>겹치는 분류 쌍 (병합 후보)</h3>
<table><thead><tr><th>분류 A</th><th>분류 B</th><th>겹치는 VOC</th><th>결합 확률</th></tr></thead><tbody>
{% for o in a.overlaps %}<tr><td>{{ o.class_a }}</td><td>{{ o.class_b }}</td><td class="num">{{ o.n_overlapping }}</td>
<td class="num">{{ "%.4f"|format(o.joint_probability) }}</td></tr>
{% endfor %}</tbody></table>{% endif %}
{% endfor %}
</body></html>
"""


def suspects_frame(audits: Sequence[DimensionAudit], texts_by_id: dict[str, str], *, max_chars: int = 200,
                   details: dict[str, dict[str, Any]] | None = None) -> pl.DataFrame:
    """The flagged rows (``issue``) of every audit, ranked per dimension, with a masked text.

    Parameters
    ----------
    audits
        One :class:`DimensionAudit` per dimension.
    texts_by_id
        ``voc_id`` → display text (title + request); masked here with
        :func:`voc.privacy.mask_personal_details` and cut to ``max_chars`` characters.
    details
        ``voc_id`` → ``{"building_id", "created_at", "title"}`` (:data:`SUSPECT_DETAIL_COLUMNS`;
        the title masked here too, dates written ``YYYY-MM-DD``); missing ones are empty.

    Returns
    -------
    pl.DataFrame
        Columns :data:`SUSPECT_COLUMNS`; zero rows when nothing is flagged.
    """
    from voc.privacy import mask_personal_details

    def shown(voc_id: str) -> str:
        text = mask_personal_details(str(texts_by_id.get(voc_id) or ""))
        return text if len(text) <= max_chars else text[: max_chars - 1] + "…"

    frames = [
        a.issues.filter(pl.col("issue")).select(pl.lit(a.dimension).alias("dimension"), pl.all())
        for a in audits
    ]
    schema = {"dimension": pl.String, **{c: t for c, t in zip(ISSUE_COLUMNS, (pl.Int64, pl.String, pl.String, pl.String,
                                                                          pl.Float64, pl.Boolean, pl.Boolean))}}
    out = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=schema)
    ids = out["voc_id"].to_list()
    info = details or {}

    def detail(voc_id: str, col: str) -> str:
        v = (info.get(voc_id) or {}).get(col)
        v = "" if v is None else str(v)[:10] if col == "created_at" else str(v)
        return mask_personal_details(v) if col == "title" else v

    return out.with_columns(
        pl.Series("text", [shown(v) for v in ids], dtype=pl.String),
        *[pl.Series(c, [detail(v, c) for v in ids], dtype=pl.String) for c in SUSPECT_DETAIL_COLUMNS],
    ).select(SUSPECT_COLUMNS)


def audit_report_html(audits: Sequence[DimensionAudit], suspects: pl.DataFrame, *, title: str = "", top: int = REPORT_TOP) -> str:
    """A small self-contained HTML page (jinja2, autoescape on): per dimension the label-health
    score, the ``top`` most likely label errors (given / suggested label, score, masked text) and
    the overlapping class pairs. ``suspects`` is :func:`suspects_frame`'s output."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    dims = [
        {"dimension": a.dimension, "health": a.health, "n_rows": a.n_rows, "n_classes": a.n_classes,
         "n_issues": a.n_issues,
         "rows": suspects.filter(pl.col("dimension") == a.dimension).sort("rank").head(top).to_dicts(),
         "overlaps": a.overlaps.head(10).to_dicts()}
        for a in audits
    ]
    return env.from_string(_REPORT_TEMPLATE).render(title=title, audits=dims)


def write_audit_report(directory: Any, audits: Sequence[DimensionAudit], texts_by_id: dict[str, str], *,
                       title: str = "", top: int = REPORT_TOP, details: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write ``label_audit.csv`` (:func:`suspects_frame`: every flagged row, columns
    :data:`SUSPECT_COLUMNS`, ``details`` as there) and ``label_audit.html``
    (:func:`audit_report_html`) into ``directory`` (created if missing).

    Returns
    -------
    dict
        JSON-ready ``{"csv": file name, "html": file name, "dimensions": [summary per audit]}``
        (:meth:`DimensionAudit.summary`).

    Raises
    ------
    OSError
        The directory cannot be written.
    """
    from pathlib import Path

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    suspects = suspects_frame(audits, texts_by_id, details=details)
    suspects.write_csv(d / "label_audit.csv")
    (d / "label_audit.html").write_text(audit_report_html(audits, suspects, title=title, top=top), "utf-8")
    return {"csv": "label_audit.csv", "html": "label_audit.html", "dimensions": [a.summary() for a in audits]}


def audit_frame(
    df: pl.DataFrame, taxonomy: Any, *, use_reply: bool = True, recipe: str = "default", n_splits: int = 5,
    seed: int = 0, tokenizer: Any = None,
) -> list[DimensionAudit]:
    """Audit every dimension of a labelled VOC frame: :func:`audit_labels` per dimension.

    Parameters
    ----------
    df
        A validated VOC frame (:func:`voc.schema.validate_voc_frame`), ``n`` rows with
        ``reviewed_*`` labels (empty where unlabelled).
    taxonomy
        A :class:`voc.taxonomy.Taxonomy` to canonicalise labels with (as training does), or None.
    use_reply, recipe, n_splits, seed
        As :func:`audit_labels`; ``use_reply`` adds the reply to each text.
    tokenizer
        A :class:`voc.tokenize.KiwiTokenizer` to reuse (one is made otherwise); Kiwi runs once per text.

    Returns
    -------
    list of DimensionAudit
        One per dimension (``subject``, ``work``) holding labelled rows of at least two classes.

    Raises
    ------
    ValueError
        From :func:`audit_labels`, e.g. when the rows span too few building-months to fold.
    """
    from voc.tagger import canonical_labels, frame_texts, labels_of
    from voc.tokenize import KiwiTokenizer

    tok = tokenizer or KiwiTokenizer()
    texts, _ = frame_texts(df, use_reply=use_reply)
    labs = {d: labels_of(df, d) for d in ("subject", "work")}
    if taxonomy is not None:
        labs = {d: canonical_labels(v, taxonomy, d) for d, v in labs.items()}
    rows = sorted({i for v in labs.values() for i, lab in enumerate(v) if lab})
    token_of = dict(zip(rows, tok.model_tokens_batch([texts[i] for i in rows])))
    ids, times = df["voc_id"].to_list(), df["created_at"].to_list()
    groups = building_month_groups(df["building_id"].to_list(), times)
    out = []
    for dim, v in labs.items():
        idx = [i for i, lab in enumerate(v) if lab]
        given = [lab for lab in v if lab]  # the labels of idx, in its order
        if len(set(given)) < 2:
            continue
        out.append(audit_labels([ids[i] for i in idx], [texts[i] for i in idx], given,
                                [times[i] for i in idx], [token_of[i] for i in idx], [groups[i] for i in idx],
                                dimension=dim, recipe=recipe, n_splits=n_splits, seed=seed))
    return out
