"""Label fixes: the label audit's suspects shown to reviewers, and their decisions as labels.

The label audit (:mod:`voc.label_audit`, confident learning) ranks the training rows whose label
is likely wrong and writes them to ``label_audit.csv`` in each model version. This module is the
pure half of the loop that brings those suspects to a person and back (the storage and workbook
half is ``flows/adapters/label_review.py``):

1. :func:`audit_sheet_rows` picks the top :data:`AUDIT_SHEET_TOP` suspects nobody has decided
   yet (lowest label-quality score first) as the rows of the review workbook's sheet
   :data:`AUDIT_SHEET` (columns :data:`AUDIT_COLUMNS`), keeping what reviewers already typed.
2. A reviewer sets 판정 (:data:`COL_VERDICT`) to 유지 (the label is right) or 수정 (it is wrong)
   and, for 수정, picks the right label in 수정 라벨 (:data:`COL_FIX_LABEL`, ``major>minor`` of
   the taxonomy). :func:`read_decisions` turns the sheet into :class:`LabelDecision` records; a
   수정 without a valid label, an unknown 판정 or a formula is a
   :class:`voc.review.ReviewIssue` naming the row and the value, never a decision. The
   machine's suggestion (제안 라벨) is shown only: it never becomes a label by itself.
3. :func:`merge_decisions` makes the month's label-fix table (columns :data:`FIX_COLUMNS`);
   unchanged decisions keep their first ``decided_at`` and provenance, so a rerun on the same
   sheet gives the same table.
4. Training applies the newest ``fix`` of each (VOC, dimension) on top of the history
   (:func:`apply_label_fixes`); the label audit no longer lists a row whose current label is
   the one a reviewer decided (:func:`drop_decided`), nor does the next sheet.

Pure functions: frames in, frames out; no files, no clocks (times are passed in).
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from voc.review import COL_BUILDING_ID, COL_CREATED, COL_TITLE, COL_VOC_ID, ReviewIssue, non_literal_kind
from voc.taxonomy import LABEL_SEP, Taxonomy, split_label

__all__ = [
    "AUDIT_SHEET",
    "AUDIT_SHEET_TOP",
    "AUDIT_COLUMNS",
    "AUDIT_REVIEWER_COLUMNS",
    "AUDIT_COLUMN_GUIDE",
    "COL_TEXT",
    "COL_DIMENSION",
    "COL_GIVEN",
    "COL_SUGGESTED",
    "COL_SCORE",
    "COL_VERDICT",
    "COL_FIX_LABEL",
    "COL_AUDIT_MEMO",
    "COL_AUDIT_MODEL",
    "VERDICT_KEEP",
    "VERDICT_FIX",
    "DIMENSION_NAMES",
    "FIX_COLUMNS",
    "FIX_SOURCE",
    "LabelDecision",
    "audit_sheet_rows",
    "audit_row_key",
    "canon_score",
    "read_decisions",
    "merge_decisions",
    "empty_fixes",
    "newest_decisions",
    "decided_keys",
    "decided_labels",
    "apply_label_fixes",
    "drop_decided",
]

AUDIT_SHEET = "이전 라벨 점검"
"""Name of the review workbook's sheet holding the label audit's suspects."""

AUDIT_SHEET_TOP = 30
"""Suspects a month's sheet shows (per workbook; per building with one workbook per building):
about half an hour of a reviewer's time at a minute a row."""

COL_TEXT = "내용"
COL_DIMENSION = "구분"
COL_GIVEN = "현재 라벨"
COL_SUGGESTED = "제안 라벨"
COL_SCORE = "점수"
COL_VERDICT = "판정"
COL_FIX_LABEL = "수정 라벨"
COL_AUDIT_MEMO = "검토자 메모"
COL_AUDIT_MODEL = "audit_model"

AUDIT_COLUMNS: tuple[str, ...] = (
    COL_VOC_ID, COL_BUILDING_ID, COL_CREATED, COL_TITLE, COL_TEXT, COL_DIMENSION, COL_GIVEN, COL_SUGGESTED,
    COL_SCORE, COL_VERDICT, COL_FIX_LABEL, COL_AUDIT_MEMO, COL_AUDIT_MODEL,
)
"""Columns of the :data:`AUDIT_SHEET` sheet, in order (``audit_model`` is hidden)."""

AUDIT_REVIEWER_COLUMNS: tuple[str, ...] = (COL_VERDICT, COL_FIX_LABEL, COL_AUDIT_MEMO)
"""The cells a reviewer fills (all others are the machine's, locked)."""

VERDICT_KEEP = "유지"
VERDICT_FIX = "수정"

DIMENSION_NAMES: dict[str, str] = {"subject": "주제", "work": "작업유형"}
"""Dimension → its name in the 구분 column."""

AUDIT_COLUMN_GUIDE: dict[str, str] = {
    COL_DIMENSION: "점검하는 분류: 주제 또는 작업유형.",
    COL_GIVEN: "이 민원에 지금 붙어 있는 라벨(대분류>중분류). 모델 학습에 쓰이는 값입니다.",
    COL_SUGGESTED: "교차 검증한 모델이 고른 라벨. 참고용이며, 검토자가 수정을 고르지 않으면 라벨이 되지 않습니다.",
    COL_SCORE: "현재 라벨의 품질 점수(0~1, confident learning). 낮을수록 라벨이 틀렸을 가능성이 큽니다.",
    COL_VERDICT: "유지: 현재 라벨이 맞습니다. 수정: 틀렸습니다(수정 라벨에 맞는 라벨을 고르세요). 비워 두면 다음에 다시 보입니다.",
    COL_FIX_LABEL: "판정이 수정일 때 맞는 라벨을 목록(분류체계의 대분류>중분류)에서 고릅니다.",
    COL_AUDIT_MEMO: "자유 메모(판정과 함께 보관됩니다).",
}
"""Korean explanation of the :data:`AUDIT_SHEET` columns worth one (header comments)."""

FIX_COLUMNS: tuple[str, ...] = (
    "voc_id", "building_id", "dimension", "old_label", "new_label", "decision", "decided_at", "source",
    "review_month", "recorded_by", "review_sheet", "sheet_row", "memo", "suggested_label", "audit_model",
)
"""Columns of a month's label-fix table (``{prefix}/label_fixes/{yyyymm}.csv``): ``decision``
is ``fix`` (``new_label`` replaces ``old_label`` in training) or ``confirm`` (the label stays,
``new_label == old_label``); ``decided_at`` ISO-8601 (KST) of the first time this decision was
recorded; ``source`` :data:`FIX_SOURCE`; ``review_month`` the workbook's month; provenance:
``recorded_by`` (``refresh …`` or ``push <file>``), ``review_sheet`` (the workbook) and
``sheet_row`` (its row on :data:`AUDIT_SHEET`, header = 1), ``memo`` (검토자 메모),
``suggested_label`` and ``audit_model`` (the audit that raised the row)."""

FIX_SOURCE = "label_audit"

_DIM_OF = {**{v: k for k, v in DIMENSION_NAMES.items()}, **{k: k for k in DIMENSION_NAMES}}


@dataclass(frozen=True)
class LabelDecision:
    """A reviewer's decision on one suspect of the :data:`AUDIT_SHEET` sheet.

    Attributes
    ----------
    voc_id, building_id, dimension
        The VOC and the dimension (``subject`` / ``work``) judged.
    old_label, new_label
        ``major>minor`` before and after (equal for ``confirm``).
    decision
        ``fix`` or ``confirm``.
    sheet_row
        Row on the sheet (header = 1).
    memo, suggested_label, audit_model
        검토자 메모, the machine's suggestion shown, the model version whose audit raised it.
    """

    voc_id: str
    building_id: str
    dimension: str
    old_label: str
    new_label: str
    decision: str
    sheet_row: int
    memo: str = ""
    suggested_label: str = ""
    audit_model: str = ""


def audit_row_key(row: dict[str, Any]) -> tuple[str, str]:
    """The key of an :data:`AUDIT_SHEET` row.

    Parameters
    ----------
    row
        One sheet row by column name (cells text or None).

    Returns
    -------
    tuple[str, str]
        ``(voc_id, dimension)``, both stripped: the 구분 name mapped back to ``subject`` /
        ``work`` (an unknown one kept as typed).
    """
    dim = str(row.get(COL_DIMENSION) or "").strip()
    return str(row.get(COL_VOC_ID) or "").strip(), _DIM_OF.get(dim, dim)


def canon_score(text: str) -> str:
    """A label-quality score as the sheet shows it.

    Parameters
    ----------
    text
        The score as read (a number's text, or anything else).

    Returns
    -------
    str
        Three decimals (``"0.123"``); ``""`` for an empty cell; a non-number stripped, as given.
    """
    t = str(text or "").strip()
    try:
        return f"{float(t):.3f}" if t else ""
    except ValueError:
        return t


def _text(frame: pl.DataFrame, col: str) -> list[str]:
    """A column as text (null ``""``); a missing column all ``""``."""
    if col not in frame.columns:
        return [""] * frame.height
    return [("" if v is None else str(v)) for v in frame[col].cast(pl.Utf8, strict=False).to_list()]


def _pick(
    suspects: pl.DataFrame, decided: Collection[tuple[str, str]], top: int, buildings: Collection[str] | None
) -> list[dict[str, str]]:
    """The undecided, judged, flagged suspects with a score, most suspicious first, ``top`` of
    them (per building when ``buildings`` is given, only those buildings)."""
    cols = {c: _text(suspects, c) for c in ("dimension", "rank", "voc_id", "given_label", "suggested_label", "score",
                                            "issue", "judged", "text", "building_id", "created_at", "title")}
    rows = [dict(zip(cols, vals)) for vals in zip(*cols.values())]
    done = {(str(v), str(d)) for v, d in decided}
    keep = []
    for r in rows:
        if r["judged"].lower() == "false" or r["issue"].lower() == "false" or not r["voc_id"].strip():
            continue
        try:
            score = float(r["score"])
        except ValueError:
            continue
        if (r["voc_id"].strip(), r["dimension"]) in done:
            continue
        if buildings is not None and r["building_id"].strip() not in buildings:
            continue
        rank = int(r["rank"]) if r["rank"].strip().isdigit() else 0
        keep.append((score, 0 if r["dimension"] == "subject" else 1, rank, r["voc_id"], r))
    keep.sort(key=lambda t: t[:4])
    taken: dict[str, int] = {}
    out = []
    for *_, r in keep:
        unit = r["building_id"].strip() if buildings is not None else ""
        if taken.get(unit, 0) < top:
            taken[unit] = taken.get(unit, 0) + 1
            out.append(r)
    return out


def audit_sheet_rows(
    suspects: pl.DataFrame,
    *,
    decided: Collection[tuple[str, str]] = (),
    existing: pl.DataFrame | None = None,
    top: int = AUDIT_SHEET_TOP,
    model: str = "",
    buildings: Collection[str] | None = None,
) -> pl.DataFrame:
    """The rows of the :data:`AUDIT_SHEET` sheet.

    Parameters
    ----------
    suspects
        ``label_audit.csv`` of a model version (:data:`voc.label_audit.SUSPECT_COLUMNS`; any
        column type; ``building_id``, ``created_at``, ``title`` may be missing: an older file).
    decided
        ``(voc_id, dimension)`` pairs a reviewer already decided (:func:`decided_keys`): never
        offered again.
    existing
        The sheet as read back (``None``: none yet): a row keeps its reviewer cells
        (:data:`AUDIT_REVIEWER_COLUMNS`); a row with reviewer input that is no longer among the
        picked suspects stays, after them, unchanged.
    top
        Rows picked (per building when ``buildings`` is given).
    model
        The model version whose audit ``suspects`` is (the hidden ``audit_model`` column).
    buildings
        Only suspects of these buildings, ``top`` per building (one workbook per building).

    Returns
    -------
    pl.DataFrame
        Columns :data:`AUDIT_COLUMNS`, every cell text (``""`` for empty): the picked suspects
        by score (lowest first), then the kept rows.
    """
    carried: dict[tuple[str, str], dict[str, str]] = {}
    old_rows: list[dict[str, str]] = []
    if existing is not None and existing.height:
        for r in existing.cast({c: pl.Utf8 for c in existing.columns}).fill_null("").iter_rows(named=True):
            row = {c: str(r.get(c) or "") for c in AUDIT_COLUMNS}
            old_rows.append(row)
            carried.setdefault(audit_row_key(row), {c: row[c] for c in AUDIT_REVIEWER_COLUMNS})
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for r in _pick(suspects, decided, top, buildings):
        key = (r["voc_id"].strip(), r["dimension"])
        seen.add(key)
        mine = carried.get(key, {})
        out.append({
            COL_VOC_ID: key[0], COL_BUILDING_ID: r["building_id"].strip(), COL_CREATED: r["created_at"][:10],
            COL_TITLE: r["title"], COL_TEXT: r["text"], COL_DIMENSION: DIMENSION_NAMES.get(r["dimension"], r["dimension"]),
            COL_GIVEN: r["given_label"], COL_SUGGESTED: r["suggested_label"], COL_SCORE: canon_score(r["score"]),
            **{c: mine.get(c, "") for c in AUDIT_REVIEWER_COLUMNS}, COL_AUDIT_MODEL: model,
        })
    for row in old_rows:
        key = audit_row_key(row)
        if key not in seen and any(row[c].strip() for c in AUDIT_REVIEWER_COLUMNS):
            seen.add(key)
            out.append(row)
    return pl.DataFrame({c: [r[c] for r in out] for c in AUDIT_COLUMNS}, schema={c: pl.Utf8 for c in AUDIT_COLUMNS})


def _norm(text: str) -> str:
    """A reviewer cell NFKC-normalised and stripped (None counts as ``""``)."""
    return unicodedata.normalize("NFKC", text or "").strip()


def _issue(i: int, vid: str, col: str, value: str, message: str, code: str) -> ReviewIssue:
    """A :class:`voc.review.ReviewIssue` of data row ``i`` (sheet row ``i + 2``), message prefixed with the sheet."""
    return ReviewIssue(i + 2, vid, col, value, f"{AUDIT_SHEET} 시트: {message}", code)


def _fix_label(value: str, dim: str, taxonomy: Taxonomy) -> str | None:
    """The active ``major>minor`` a 수정 라벨 names (a retired name mapped to its successor:
    :meth:`voc.taxonomy.Taxonomy.successor`), or None."""
    text = _norm(value)
    if LABEL_SEP not in text:
        return None
    major, minor = (p.strip() for p in split_label(text))
    row = taxonomy.successor(dim, major, minor)
    return row.label if row is not None else None


def _decide_row(i: int, row: dict[str, str], taxonomy: Taxonomy) -> LabelDecision | ReviewIssue | None:
    """One sheet row: its decision, the issue that stops it, or None (no verdict)."""
    vid, dim = audit_row_key(row)
    verdict, label = _norm(row.get(COL_VERDICT, "")), row.get(COL_FIX_LABEL, "")
    for col in (COL_VERDICT, COL_FIX_LABEL):
        kind = non_literal_kind(row.get(col, ""))
        if kind == "formula" or kind == "error_value":
            return _issue(i, vid, col, row.get(col, ""), "수식이나 오류 값이 아니라 목록의 값을 고르세요; 반영하지 않았습니다", kind)
    if not verdict:
        if label.strip():
            return _issue(i, vid, COL_FIX_LABEL, label, "판정이 비어 있어 반영하지 않았습니다(수정이면 판정에 '수정'을 고르세요)",
                          "verdict_missing")
        return None
    if not vid:
        return _issue(i, vid, COL_VOC_ID, "", "voc_id가 비어 있어 반영하지 않았습니다", "missing_voc_id")
    if dim not in DIMENSION_NAMES:
        return _issue(i, vid, COL_DIMENSION, row.get(COL_DIMENSION, ""), "구분은 주제 또는 작업유형이어야 합니다; 반영하지 않았습니다",
                      "dimension_unknown")
    old = _norm(row.get(COL_GIVEN, ""))

    def decided(new_label: str) -> LabelDecision:
        """The row's decision for ``new_label`` (``fix`` unless it is the current label)."""
        return LabelDecision(
            vid, str(row.get(COL_BUILDING_ID) or "").strip(), dim, old, new_label, "fix" if new_label != old else "confirm",
            i + 2, str(row.get(COL_AUDIT_MEMO) or ""), str(row.get(COL_SUGGESTED) or ""), str(row.get(COL_AUDIT_MODEL) or ""),
        )

    if verdict == VERDICT_KEEP:
        return decided(old)
    if verdict != VERDICT_FIX:
        return _issue(i, vid, COL_VERDICT, row.get(COL_VERDICT, ""),
                      f"판정은 '{VERDICT_KEEP}' 또는 '{VERDICT_FIX}'입니다; 반영하지 않았습니다", "verdict_unrecognized")
    if not label.strip():
        return _issue(i, vid, COL_FIX_LABEL, label, "판정이 수정인데 수정 라벨이 비어 있어 반영하지 않았습니다", "fix_label_missing")
    new = _fix_label(label, dim, taxonomy)
    if new is None:
        return _issue(i, vid, COL_FIX_LABEL, label, f"'{label}'은(는) 분류체계의 {DIMENSION_NAMES[dim]} 라벨(대분류>중분류)이 아닙니다; "
                      "반영하지 않았습니다", "not_in_taxonomy")
    return decided(new)


def read_decisions(sheet: pl.DataFrame | None, taxonomy: Taxonomy) -> tuple[list[LabelDecision], list[ReviewIssue]]:
    """The reviewers' decisions on the :data:`AUDIT_SHEET` sheet.

    Per row (``sheet_row`` = data row + 2): 판정 empty → no decision (a filled 수정 라벨 without
    it is an issue ``verdict_missing``); 유지 → ``confirm``; 수정 with a 수정 라벨 naming a class
    of the dimension in ``taxonomy`` (``major>minor``, a retired name mapped to its successor)
    → ``fix`` (``confirm`` when it is the current label). Issues (the row is not decided):
    ``fix_label_missing``, ``not_in_taxonomy`` (naming the value), ``verdict_unrecognized``,
    ``formula`` / ``error_value`` in a reviewer cell, ``missing_voc_id``,
    ``dimension_unknown``, ``duplicate_voc_id`` (a second row of the same VOC and dimension).

    Parameters
    ----------
    sheet
        The sheet as read back (all text), or None.
    taxonomy
        The taxonomy 수정 라벨 is checked against (the champion's).

    Returns
    -------
    (decisions, issues)
    """
    if sheet is None or sheet.height == 0:
        return [], []
    decisions: list[LabelDecision] = []
    issues: list[ReviewIssue] = []
    seen: set[tuple[str, str]] = set()
    rows = sheet.cast({c: pl.Utf8 for c in sheet.columns}).fill_null("").iter_rows(named=True)
    for i, row in enumerate(rows):
        got = _decide_row(i, row, taxonomy)
        if isinstance(got, ReviewIssue):
            issues.append(got)
        elif got is not None:
            key = (got.voc_id, got.dimension)
            if key in seen:
                issues.append(_issue(i, got.voc_id, COL_VOC_ID, got.voc_id, "같은 민원·구분의 행이 위에 있어 이 행은 반영하지 않았습니다",
                                     "duplicate_voc_id"))
                continue
            seen.add(key)
            decisions.append(got)
    return decisions, issues


def empty_fixes() -> pl.DataFrame:
    """A label-fix table without rows.

    Returns
    -------
    pl.DataFrame
        ``0 × len(FIX_COLUMNS)``, every column ``Utf8``.
    """
    return pl.DataFrame(schema={c: pl.Utf8 for c in FIX_COLUMNS})


def merge_decisions(
    previous: pl.DataFrame | None,
    decisions: Sequence[LabelDecision],
    *,
    month: str,
    decided_at: str,
    recorded_by: str,
    review_sheet: str,
) -> pl.DataFrame:
    """The month's label-fix table after reading its sheet's ``decisions``.

    A decision equal to the one ``previous`` holds for the same (VOC, dimension) (same
    ``decision``, labels and memo) keeps ``previous``'s row (its ``decided_at`` and provenance):
    the same sheet read twice gives the same table. Other decisions get ``decided_at``,
    ``recorded_by`` and ``review_sheet``. A (VOC, dimension) no longer decided on the sheet is
    dropped. Rows sorted by dimension, then ``voc_id``.

    Parameters
    ----------
    previous
        The month's table as stored (any columns read as text), or None when there is none.
    decisions
        :func:`read_decisions` of the month's sheet.
    month
        ``YYYYMM`` of the review sheet (``review_month``).
    decided_at
        ISO timestamp (seconds, with offset) given to new or changed decisions.
    recorded_by
        Who read the sheet (``"refresh <run>"``, ``"push <file>"``).
    review_sheet
        Where the sheet is (the workbook's URI).

    Returns
    -------
    pl.DataFrame
        Columns :data:`FIX_COLUMNS`, all text.
    """
    before: dict[tuple[str, str], dict[str, str]] = {}
    if previous is not None:
        for r in previous.cast({c: pl.Utf8 for c in previous.columns}).fill_null("").iter_rows(named=True):
            before[(str(r.get("voc_id") or ""), str(r.get("dimension") or ""))] = {c: str(r.get(c) or "") for c in FIX_COLUMNS}
    rows = []
    for d in decisions:
        new = {
            "voc_id": d.voc_id, "building_id": d.building_id, "dimension": d.dimension, "old_label": d.old_label,
            "new_label": d.new_label, "decision": d.decision, "decided_at": decided_at, "source": FIX_SOURCE,
            "review_month": month, "recorded_by": recorded_by, "review_sheet": review_sheet, "sheet_row": str(d.sheet_row),
            "memo": d.memo, "suggested_label": d.suggested_label, "audit_model": d.audit_model,
        }
        old = before.get((d.voc_id, d.dimension))
        if old is not None and all(old[c] == new[c] for c in ("decision", "old_label", "new_label", "memo")):
            new = old
        rows.append(new)
    rows.sort(key=lambda r: (r["dimension"], r["voc_id"]))
    return pl.DataFrame({c: [r[c] for r in rows] for c in FIX_COLUMNS}, schema={c: pl.Utf8 for c in FIX_COLUMNS})


def newest_decisions(fixes: pl.DataFrame) -> pl.DataFrame:
    """The newest decision of each (VOC, dimension) of a label-fix table.

    Parameters
    ----------
    fixes
        A label-fix table (:data:`FIX_COLUMNS`; every month's, stacked).

    Returns
    -------
    pl.DataFrame
        One row per (``voc_id``, ``dimension``): the newest by ``decided_at`` (ties: the later
        ``review_month``, then the later row), in the order of ``fixes``.
    """
    if fixes.height == 0:
        return fixes
    return (
        fixes.with_row_index("__order")
        .sort(["decided_at", "review_month", "__order"])
        .unique(["voc_id", "dimension"], keep="last", maintain_order=True)
        .sort("__order")
        .drop("__order")
    )


def decided_keys(fixes: pl.DataFrame) -> set[tuple[str, str]]:
    """The VOCs and dimensions a label-fix table decides.

    Parameters
    ----------
    fixes
        A label-fix table (:data:`FIX_COLUMNS`).

    Returns
    -------
    set[tuple[str, str]]
        ``(voc_id, dimension)`` of every decision (fix or confirm).
    """
    return set(zip(fixes["voc_id"].to_list(), fixes["dimension"].to_list())) if fixes.height else set()


def decided_labels(fixes: pl.DataFrame) -> set[tuple[str, str, str]]:
    """The labels reviewers settled.

    Parameters
    ----------
    fixes
        A label-fix table (:data:`FIX_COLUMNS`; every month's, stacked).

    Returns
    -------
    set[tuple[str, str, str]]
        ``(voc_id, dimension, label)`` with the newest decision's ``new_label`` (the fixed
        label, or the confirmed one).
    """
    top = newest_decisions(fixes)
    return set(zip(top["voc_id"].to_list(), top["dimension"].to_list(), top["new_label"].to_list())) if top.height else set()


def apply_label_fixes(df: pl.DataFrame, fixes: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """``df`` (a training frame with ``reviewed_{dim}_major/minor``) with the newest decision of
    each (VOC, dimension) applied where it is a ``fix``: that dimension's label becomes
    ``new_label`` (split at ``>``). A ``confirm`` changes nothing; a VOC ``df`` lacks is skipped.

    Parameters
    ----------
    df
        ``N × C`` training frame with ``voc_id`` and, per dimension fixed,
        ``reviewed_{dim}_major/minor`` (a dimension without them is left alone).
    fixes
        A label-fix table (:data:`FIX_COLUMNS`; every month's, stacked).

    Returns
    -------
    (frame, applied)
        Same columns, types and row order; ``applied`` = (row, dimension) labels changed.
    """
    top = newest_decisions(fixes).filter(pl.col("decision") == "fix") if fixes.height else fixes
    applied = 0
    for dim in DIMENSION_NAMES:
        ma, mi = f"reviewed_{dim}_major", f"reviewed_{dim}_minor"
        part = top.filter(pl.col("dimension") == dim) if top.height else top
        if part.height == 0 or ma not in df.columns or mi not in df.columns:
            continue
        pairs = [split_label(v) for v in part["new_label"].to_list()]
        new = pl.DataFrame({"voc_id": part["voc_id"].to_list(), "__ma": [p[0] for p in pairs], "__mi": [p[1] for p in pairs]},
                           schema={"voc_id": pl.Utf8, "__ma": pl.Utf8, "__mi": pl.Utf8})
        joined = df.select(pl.col("voc_id").cast(pl.Utf8)).join(new, on="voc_id", how="left", maintain_order="left")
        hit = joined["__ma"].is_not_null()
        differs = [(df[c].cast(pl.Utf8) != joined[j]).fill_null(True) for c, j in ((ma, "__ma"), (mi, "__mi"))]
        changed = hit & (differs[0] | differs[1])
        applied += int(changed.sum())
        df = df.with_columns(
            pl.when(hit).then(joined["__ma"]).otherwise(pl.col(ma)).cast(df.schema[ma]).alias(ma),
            pl.when(hit).then(joined["__mi"]).otherwise(pl.col(mi)).cast(df.schema[mi]).alias(mi),
        )
    return df, applied


def drop_decided(audit: Any, settled: Collection[tuple[str, str, str]]) -> Any:
    """A :class:`voc.label_audit.DimensionAudit` without the rows a reviewer settled
    (``(voc_id, dimension, label)`` of :func:`decided_labels` equal to the row's VOC, the
    audit's dimension and its given label), re-ranked from 1. Health, overlaps and counts of
    rows and classes are the audit's own (the settled rows still took part in it).

    Parameters
    ----------
    audit
        A :class:`voc.label_audit.DimensionAudit`.
    settled
        :func:`decided_labels` of the label-fix tables.

    Returns
    -------
    voc.label_audit.DimensionAudit
        ``audit`` itself when nothing of its dimension is settled, else a copy with fewer
        ``issues`` rows (``rank`` 1…k).
    """
    mine = {(v, lab) for v, d, lab in settled if d == audit.dimension}
    if not mine:
        return audit
    gone = pl.DataFrame({"voc_id": [v for v, _ in mine], "given_label": [lab for _, lab in mine]},
                        schema={"voc_id": pl.Utf8, "given_label": pl.Utf8})
    keep = audit.issues.join(gone, on=["voc_id", "given_label"], how="anti", maintain_order="left")
    return dataclasses.replace(audit, issues=keep.with_columns(pl.int_range(1, keep.height + 1, dtype=pl.Int64).alias("rank")))
