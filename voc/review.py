"""Human-in-the-loop review: the review sheet, its merge rules and reviewer-input validation.

Pure code: no I/O, no clocks, no Prefect. The backends that store the sheet (XLSX in storage,
Google Sheets) live in ``flows/adapters/review_backends.py``.

The review sheet
----------------
One sheet per month, one row per VOC, columns :data:`REVIEW_COLUMNS` in this fixed order:

====================  =========  ================================================================
column                who        content
====================  =========  ================================================================
검토 우선             model      ``"Y"`` when a dimension tagged by a trained model has a
                                 confidence below that dimension's threshold (:func:`review_flags`)
긴급                  model      :data:`URGENT_MARK` for an urgent VOC (the tagged frame's
                                 ``urgent``, :mod:`voc.urgency`), ``""`` otherwise
반복                  model      the earlier ``voc_id`` this VOC repeats (``repeat_of``), or ``""``
검토 사유             model      why: ``"주제 신뢰도 0.31 < 기준 0.65"`` per such dimension; the
                                 first row of a 묶음 also ``"묶음 1-69204: 28건"`` (a 묶음 is one
                                 review item: only its first row is flagged)
신뢰도                model      min of the confidences of the dimensions a trained model tagged
                                 (of all tagged dimensions when none was), ``"0.00"``–``"1.00"``
voc_id                data       the key of the row (never changed by a merge)
building_id           data
건물명                data
등록일                data       ``YYYY-MM-DD``
묶음                  model      group id of a mass complaint (``voc.groups``), ``""`` alone
제목, 요청내용, 답변  data       texts (see :func:`neutralize_cell`; cut at 32,767 characters)
주제 대분류/중분류    model      the model's subject tag; a keyword guess (``subject_source ==
                                 "keyword"``) ends in :data:`GUESS_SUFFIX` (``" (추정)"``)
주제 신뢰도           model      ``"0.00"``–``"1.00"`` (``""`` when the dimension was not tagged)
작업유형 대분류/중분류 model     the model's work-type tag (keyword guesses marked the same way)
작업유형 신뢰도       model
유사 검수 VOC         model      the most similar reviewed VOCs and their labels
                                 (``voc.evidence.format_evidence``), one per line
답변 초안             model      the reply given to the most similar reviewed, replied VOC, masked
                                 (``voc.replies.format_reply_draft``: ``"[유사 0.72 · voc_id
                                 123]"`` then the draft), ``""`` below the similarity threshold
검수_주제 대분류      reviewer   the reviewer's subject major (empty = accept the model's)
검수_주제 중분류      reviewer   the reviewer's subject minor (may be filled alone)
검수_작업유형 대분류  reviewer
검수_작업유형 중분류  reviewer
묶음 적용             reviewer   ``Y`` on a done row: its labels go to its whole 묶음
                                 (:func:`merge_reviews`, group decisions)
검수완료              reviewer   ``"N"`` when written; done when :func:`is_done` (``Y``, ``예``, …)
검수 메모             reviewer   free text, kept verbatim
model_version         model      ``{kind}_{version}`` that produced the tags (hidden in the sheet)
run_id                model      the run that wrote the row (hidden in the sheet)
====================  =========  ================================================================

As a frame every column is ``Utf8`` and an empty cell is ``""`` (never null); this is what
:func:`build_review_rows` produces and what both backends read back. Extra columns a reviewer
added to the sheet are kept by :func:`merge_into_sheet` after these. Sheets written before
:data:`ADDED_COLUMNS` existed lack them: readers treat them as empty and a merge adds them.
긴급, 반복 and 답변 초안 (:data:`AID_COLUMNS`) are read by nobody: :func:`merge_reviews` never
takes a label or anything else from them.

Rows are sorted 검토 우선 first, then by ascending 신뢰도 (rows without any confidence first),
ties by ``voc_id`` (numeric ids numerically); the rows of one 묶음 follow each other from the
place of its first row.

Merge rules (``voc refresh`` / a monthly rerun)
-----------------------------------------------
* :func:`merge_into_sheet` upserts new model rows into the existing sheet by ``voc_id``: reviewer
  cells are never changed; a row the reviewer has not touched gets the new model columns; a
  touched row keeps everything; new VOCs are appended; nothing is deleted or duplicated.
* :func:`merge_reviews` folds a sheet back into the tagged frame: a valid reviewer value beats
  the model's for rows marked done; see its docstring for filled-but-not-done rows. Per
  dimension, ``subject_reviewed`` / ``work_reviewed`` say whether the result is a human label
  (a valid reviewer value, or a trained model's tag confirmed with empty cells); a keyword
  guess (shown with :data:`GUESS_SUFFIX`) is never confirmed that way. A done row with
  묶음 적용 = Y passes its labels to the other rows of its 묶음 that the reviewer left alone
  (source ``reviewer_group``). A retired class typed by hand (``국제도시국>기반시설과``) is
  read as its active successor (``voc.taxonomy.Taxonomy.successor``).
* Reviewer cells are literal values or issues: a formula (read as its formula text by the
  backends), an error value, a date or a number in a 검수_ cell is reported
  (:func:`non_literal_kind`) and is neither a label nor a confirmation; sheet rows whose
  ``voc_id`` no tagged VOC of the month has are reported by :func:`unknown_voc_id_issues`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl

from voc.schema import building_sort_key
from voc.taxonomy import DIMENSIONS, LABEL_SEP, Taxonomy, split_label

__all__ = [
    "COL_FLAG",
    "COL_REASON",
    "COL_CONFIDENCE",
    "COL_VOC_ID",
    "COL_BUILDING_ID",
    "COL_BUILDING_NAME",
    "COL_CREATED",
    "COL_TITLE",
    "COL_REQUEST",
    "COL_REPLY",
    "COL_GROUP",
    "COL_EVIDENCE",
    "COL_URGENT",
    "COL_REPEAT",
    "COL_REPLY_DRAFT",
    "URGENT_MARK",
    "AID_COLUMNS",
    "COL_GROUP_APPLY",
    "COL_DONE",
    "COL_MEMO",
    "COL_MODEL_VERSION",
    "COL_RUN_ID",
    "MODEL_TAG_COLUMNS",
    "REVIEWER_LABEL_COLUMNS",
    "REVIEWER_COLUMNS",
    "MODEL_COLUMNS",
    "CONFIDENCE_COLUMNS",
    "REVIEW_COLUMNS",
    "REVIEWED_EXTRA_COLUMNS",
    "ADDED_COLUMNS",
    "TEXT_COLUMNS",
    "SOURCE_GROUP",
    "COLUMN_GUIDE",
    "REVIEW_GUIDE_INTRO",
    "DONE_VALUES",
    "NOT_DONE_VALUES",
    "FORMULA_PREFIXES",
    "MAX_CELL_CHARS",
    "GUESS_MARK",
    "GUESS_SUFFIX",
    "mark_guess",
    "split_guess",
    "ReviewError",
    "ReviewSheetError",
    "ReviewIssue",
    "MergeStats",
    "RefreshStats",
    "neutralize_cell",
    "is_formula_like",
    "ERROR_VALUES",
    "NON_LITERAL_KINDS",
    "non_literal_kind",
    "unknown_voc_id_issues",
    "is_done",
    "review_thresholds_of",
    "review_flags",
    "build_review_rows",
    "merge_into_sheet",
    "validate_reviews",
    "merge_reviews",
    "simulate_review",
]

# --------------------------------------------------------------------------------------------
# columns

COL_FLAG = "검토 우선"
COL_REASON = "검토 사유"
COL_CONFIDENCE = "신뢰도"
COL_VOC_ID = "voc_id"
COL_BUILDING_ID = "building_id"
COL_BUILDING_NAME = "건물명"
COL_CREATED = "등록일"
COL_TITLE = "제목"
COL_REQUEST = "요청내용"
COL_REPLY = "답변"
COL_GROUP = "묶음"
COL_EVIDENCE = "유사 검수 VOC"
COL_URGENT = "긴급"
COL_REPEAT = "반복"
COL_REPLY_DRAFT = "답변 초안"
COL_GROUP_APPLY = "묶음 적용"
COL_DONE = "검수완료"
COL_MEMO = "검수 메모"
COL_MODEL_VERSION = "model_version"
COL_RUN_ID = "run_id"

MODEL_TAG_COLUMNS: dict[str, tuple[str, str, str]] = {
    "subject": ("주제 대분류", "주제 중분류", "주제 신뢰도"),
    "work": ("작업유형 대분류", "작업유형 중분류", "작업유형 신뢰도"),
}
"""Per dimension: the sheet's (major, minor, confidence) columns holding the model's tag."""

REVIEWER_LABEL_COLUMNS: dict[str, tuple[str, str]] = {
    "subject": ("검수_주제 대분류", "검수_주제 중분류"),
    "work": ("검수_작업유형 대분류", "검수_작업유형 중분류"),
}
"""Per dimension: the sheet's (major, minor) columns a reviewer fills."""

REVIEWER_COLUMNS: tuple[str, ...] = (
    *REVIEWER_LABEL_COLUMNS["subject"],
    *REVIEWER_LABEL_COLUMNS["work"],
    COL_GROUP_APPLY,
    COL_DONE,
    COL_MEMO,
)
"""Cells owned by the reviewer: a merge never changes them."""

MODEL_COLUMNS: tuple[str, ...] = (*MODEL_TAG_COLUMNS["subject"], *MODEL_TAG_COLUMNS["work"])
"""The model's tag columns (grey in the sheets)."""

CONFIDENCE_COLUMNS: tuple[str, ...] = (
    COL_CONFIDENCE,
    MODEL_TAG_COLUMNS["subject"][2],
    MODEL_TAG_COLUMNS["work"][2],
)
"""Columns holding a confidence formatted ``"0.00"`` (backends store them as numbers)."""

REVIEW_COLUMNS: tuple[str, ...] = (
    COL_FLAG,
    COL_URGENT,
    COL_REPEAT,
    COL_REASON,
    COL_CONFIDENCE,
    COL_VOC_ID,
    COL_BUILDING_ID,
    COL_BUILDING_NAME,
    COL_CREATED,
    COL_GROUP,
    COL_TITLE,
    COL_REQUEST,
    COL_REPLY,
    *MODEL_COLUMNS,
    COL_EVIDENCE,
    COL_REPLY_DRAFT,
    *REVIEWER_COLUMNS,
    COL_MODEL_VERSION,
    COL_RUN_ID,
)
"""The review sheet's columns, in sheet order (see the module docstring)."""

URGENT_MARK = "긴급"
"""The 긴급 cell of an urgent VOC (``""`` otherwise)."""

AID_COLUMNS: tuple[str, ...] = (COL_URGENT, COL_REPEAT, COL_REPLY_DRAFT)
"""Machine columns for the reader (issues 24–25): urgency, the VOC it repeats, a reply draft.
Nobody's judgement depends on them, so :func:`merge_into_sheet` brings them up to date on every
row, reviewed or not, and :func:`merge_reviews` ignores them."""

ADDED_COLUMNS: tuple[str, ...] = (COL_REASON, COL_GROUP, COL_EVIDENCE, COL_GROUP_APPLY, *AID_COLUMNS)
"""Columns added by issue 14 ("review worth a reviewer's hour") and issues 24–25
(:data:`AID_COLUMNS`): a sheet written before lacks them; every reader treats a missing one as
empty."""

TEXT_COLUMNS: tuple[str, ...] = (COL_REASON, COL_TITLE, COL_REQUEST, COL_REPLY, COL_EVIDENCE, COL_REPLY_DRAFT, COL_MEMO)
"""Columns holding running text: the backends wrap them."""

SOURCE_GROUP = "reviewer_group"
"""``{dim}_source`` of a label a reviewer gave a whole 묶음 through one decision
(:func:`merge_reviews`); ``"reviewer"`` marks a row's own label."""

COLUMN_GUIDE: dict[str, str] = {
    COL_URGENT: "긴급이면 누수·화재·가스·정전·단수·승강기 갇힘·구조 위험·보안 같은 긴급 상황을 알리는 민원입니다"
    "(제목과 요청내용의 표현으로 찾음). 필터로 긴급만 볼 수 있습니다. 분류 검수와는 관계없습니다.",
    COL_REPEAT: "같은 건물에서 30일 안에 들어온 거의 같은 민원이 있으면 그 이전 민원의 번호입니다. 비어 있으면 반복이 아닙니다.",
    COL_REPLY_DRAFT: "가장 비슷한 검수된 민원에 했던 답변(날짜·이름·연락처는 [날짜] 등으로 가림)입니다. 첫 줄은 "
    "[유사도 · 그 민원 번호]. 비슷한 민원이 없으면 비어 있습니다. 답변 작성의 출발점일 뿐 검수에는 쓰이지 않습니다.",
    COL_FLAG: "Y면 먼저 검수할 행입니다. 학습된 모델이 붙인 태그의 신뢰도가 기준보다 낮은 행으로, 지난 검수 "
    "결과로 재면 모델 오류의 대부분이 이 행들에 있습니다. 키워드 추정 태그는 기준에 쓰지 않습니다.",
    COL_REASON: "검토 우선인 이유(예: 주제 신뢰도 0.31 < 기준 0.65). 묶음의 첫 행에는 묶음 번호와 건수가 붙습니다.",
    COL_CONFIDENCE: "학습된 모델이 붙인 태그 신뢰도 중 가장 낮은 값(0~1). 행은 검토 우선, 그다음 이 값이 낮은 순입니다.",
    COL_VOC_ID: "민원 번호. 바꾸지 마세요: 검수 결과는 이 번호로 반영됩니다.",
    COL_BUILDING_ID: "건물 번호.",
    COL_BUILDING_NAME: "건물 이름.",
    COL_CREATED: "민원 등록일.",
    COL_GROUP: "같은 달 같은 건물에서 같은 일을 두고 들어온 민원 묶음(대량 민원)의 번호. 같은 번호의 행은 "
    "함께 모여 있습니다. 비어 있으면 묶음이 없습니다.",
    COL_TITLE: "민원 제목.",
    COL_REQUEST: "민원 내용(칸 안에서 줄바꿈됩니다; 칸을 늘리면 전부 보입니다).",
    COL_REPLY: "담당 부서의 답변.",
    MODEL_TAG_COLUMNS["subject"][0]: "모델이 붙인 주제 대분류. '(추정)'이 붙으면 학습된 모델이 아니라 키워드로 짐작한 값입니다.",
    MODEL_TAG_COLUMNS["subject"][1]: "모델이 붙인 주제 중분류('(추정)': 키워드 추정).",
    MODEL_TAG_COLUMNS["subject"][2]: "주제 태그가 맞을 확률로 보정된 신뢰도(0~1). 키워드 추정이면 키워드 점수일 뿐입니다.",
    MODEL_TAG_COLUMNS["work"][0]: "모델이 붙인 작업유형 대분류('(추정)': 키워드 추정).",
    MODEL_TAG_COLUMNS["work"][1]: "모델이 붙인 작업유형 중분류('(추정)': 키워드 추정).",
    MODEL_TAG_COLUMNS["work"][2]: "작업유형 태그의 신뢰도(0~1).",
    COL_EVIDENCE: "이미 검수된 민원 중 가장 비슷한 3건: 민원 번호, 검수된 분류(주제 | 작업유형), (유사도 0~1). "
    "모델 태그가 이들과 다르면 한 번 더 보세요.",
    REVIEWER_LABEL_COLUMNS["subject"][0]: "주제 대분류를 고칠 때 목록에서 고릅니다. 모델 태그가 맞으면 비워 두세요.",
    REVIEWER_LABEL_COLUMNS["subject"][1]: "주제 중분류. 목록은 고른 대분류(비어 있으면 모델의 대분류)의 중분류만 "
    "보여 줍니다. 중분류만 골라도 대분류는 자동으로 정해집니다.",
    REVIEWER_LABEL_COLUMNS["work"][0]: "작업유형 대분류를 고칠 때 고릅니다. 맞으면 비워 두세요.",
    REVIEWER_LABEL_COLUMNS["work"][1]: "작업유형 중분류(고른 대분류의 중분류만 목록에 나옵니다).",
    COL_GROUP_APPLY: "Y로 두면 이 행의 검수 결과(검수완료=Y인 행의 분류)를 같은 묶음의 다른 행에도 적용합니다. "
    "따로 검수한 행은 그 행의 결과가 우선합니다.",
    COL_DONE: "검수를 마쳤으면 Y. Y인 행만 반영됩니다. 검수_ 칸이 비어 있고 Y이면 모델 태그가 맞다는 뜻입니다"
    "('(추정)' 태그는 값을 골라야 반영됩니다).",
    COL_MEMO: "자유 메모(그대로 보관됩니다).",
    COL_MODEL_VERSION: "태그를 만든 모델(숨김 열).",
    COL_RUN_ID: "이 행을 쓴 실행(숨김 열).",
}
"""Korean explanation of every :data:`REVIEW_COLUMNS` column: the sheet's 검수 안내 and the
README's column table."""

REVIEW_GUIDE_INTRO: tuple[str, ...] = (
    "이 시트는 이번 달 민원에 모델이 붙인 분류(주제, 작업유형)를 검수하는 곳입니다.",
    "1. '검토 우선'이 Y인 행부터 봅니다. 회색 열은 모델 값이라 잠겨 있고, 노란 열만 입력합니다(암호 없는 보호).",
    "2. 모델 분류가 틀렸으면 검수_ 칸에서 목록의 값을 고르고, 맞으면 비워 둡니다. 끝나면 검수완료를 Y로 둡니다.",
    "3. '묶음'이 같은 행은 한 가지 일에 대한 대량 민원입니다. 한 행에서 분류를 정하고 검수완료=Y, "
    "묶음 적용=Y로 두면 묶음 전체에 반영됩니다(따로 검수한 행은 제외).",
    "4. '유사 검수 VOC'는 비슷한 과거 민원과 그 검수 결과입니다. 판단에 참고하세요.",
    "'긴급' 행은 붉게 표시됩니다. '반복'은 같은 민원이 30일 안에 먼저 들어온 경우, '답변 초안'은 비슷한 과거 "
    "민원의 답변입니다(참고용, 검수에 쓰이지 않음).",
    "목록에 없는 옛 부서명(개편 전 이름)을 직접 적으면 현재 부서로 바꾸어 반영합니다.",
)
"""The 검수 안내 sheet's opening lines (Korean), above the column table."""

_REVIEWER_LABEL_CELLS: tuple[str, ...] = (*REVIEWER_LABEL_COLUMNS["subject"], *REVIEWER_LABEL_COLUMNS["work"])
_MODEL_SIDE: tuple[str, ...] = tuple(c for c in REVIEW_COLUMNS if c not in REVIEWER_COLUMNS and c != COL_VOC_ID)

REVIEWED_EXTRA_COLUMNS: tuple[str, ...] = (
    "is_reviewed",
    "subject_reviewed",
    "work_reviewed",
    "review_memo",
    "model_subject_major",
    "model_subject_minor",
    "model_work_major",
    "model_work_minor",
    *_REVIEWER_LABEL_CELLS,
)
"""Columns :func:`merge_reviews` appends to ``voc.schema.TAGGED_COLUMNS`` (``is_reviewed``: at
least one dimension is a human label; ``subject_reviewed`` / ``work_reviewed``: that dimension
is)."""

DONE_VALUES: frozenset[str] = frozenset({"y", "예", "o", "true", "1", "✓"})
"""검수완료 values meaning *done*, compared after NFKC normalisation, stripping and
case-folding: ``Y y 예 O o TRUE true True 1 ✓`` (and their full-width forms, e.g. U+FF39 for ``Y``,
U+FF11 for ``1``)."""

NOT_DONE_VALUES: frozenset[str] = frozenset({"", "n", "아니오", "아니요", "x", "false", "0"})
"""검수완료 values meaning *not done* without comment; anything else is not done either but
:func:`validate_reviews` reports it (``"완료"`` is a likely typo for ``"Y"``)."""

FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make spreadsheet programs read a typed text as a formula."""

MAX_CELL_CHARS = 32_767
"""Longest text an XLSX cell holds (Google Sheets: 50,000); longer VOC texts are cut in the
sheet (display only; the labels never depend on them)."""

GUESS_MARK = "추정"
"""Word that marks a keyword guess in the sheet's model tag cells."""

GUESS_SUFFIX = f" ({GUESS_MARK})"
"""Appended to the model's tag cells (주제/작업유형 대분류, 중분류) of a dimension whose tag came
from taxonomy keywords, not from a trained model (``{dim}_source == "keyword"``): ``"시설 (추정)"``,
``"승강기 (추정)"``. It tells the reviewer the tag is a guess that a done row with empty 검수_
cells does *not* confirm (pick the value to make it a label). The suffix is part of the cell's
text, so it survives both backends unchanged; :func:`split_guess` removes it, and the model's
tag itself always comes from the tagged frame, never from these cells."""

_TRUNCATED_MARK = " …[잘림]"
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

_TAGGED_NEEDED: tuple[str, ...] = (
    "voc_id",
    "building_id",
    "building_name",
    "created_at",
    "title",
    "request_contents",
    "reply",
    "subject_major",
    "subject_minor",
    "subject_confidence",
    "work_major",
    "work_minor",
    "work_confidence",
    "model_version",
    "run_id",
)


# --------------------------------------------------------------------------------------------
# errors and results


class ReviewError(ValueError):
    """Input the review functions cannot process; the message names the column or row."""


class ReviewSheetError(ReviewError):
    """A review sheet that cannot be merged without losing data (no ``voc_id`` column,
    a duplicate ``voc_id`` among new rows, …)."""


@dataclass(frozen=True, slots=True)
class ReviewIssue:
    """One problem with a reviewer's input.

    Attributes
    ----------
    sheet_row
        1-based spreadsheet row number including the header: data row ``i`` (0-based) is
        ``i + 2``.
    voc_id
        The row's ``voc_id`` (``""`` when the cell is empty).
    column
        The sheet column holding the problem (``검수_주제 중분류``, ``검수완료``, …).
    value
        The cell's text as read.
    message
        Korean explanation for the building manager, naming the value.
    code
        Machine-readable kind: ``not_in_taxonomy``, ``minor_not_under_major``,
        ``minor_missing``, ``not_done`` (filled but not marked done: not applied),
        ``done_unrecognized`` (a 검수완료 value that is neither done nor a known "no"),
        ``duplicate_voc_id`` (the row is ignored), ``missing_voc_id`` (the row is ignored);
        ``group_not_done`` (묶음 적용 = Y on a row not marked done: not applied),
        ``group_missing`` (묶음 적용 = Y on a row without 묶음); from :func:`merge_reviews`
        only: ``tag_changed`` (a done row's empty cells do not confirm a model tag other than
        the one the sheet showed), ``group_conflict`` (two decisions for one 묶음 disagree: that
        dimension is not passed on); ``formula``, ``error_value``, ``date_value``,
        ``number_value`` (a reviewer cell that is no literal text: :func:`validate_reviews`);
        from :func:`unknown_voc_id_issues`: ``unknown_voc_id`` (a row added to the sheet or a
        ``voc_id`` changed to one the month's tagged VOCs do not have: the row is ignored).
    """

    sheet_row: int
    voc_id: str
    column: str
    value: str
    message: str
    code: str = ""

    def __str__(self) -> str:
        """``row {sheet_row} (voc_id=…) {column}='value': message``."""
        return f"row {self.sheet_row} (voc_id={self.voc_id}) {self.column}={self.value!r}: {self.message}"


@dataclass
class MergeStats:
    """What :func:`merge_into_sheet` did. ``appended + updated + kept_reviewed + unchanged`` is
    the output height.

    Attributes
    ----------
    appended
        New VOCs added at the end.
    updated
        Untouched rows whose model columns (tags, confidences, texts, flag, version) changed.
    kept_reviewed
        Rows with a reviewer label cell filled or marked done: kept exactly as they were (but
        for the :data:`AID_COLUMNS`, always brought up to date).
    unchanged
        Untouched rows whose model columns were already current, rows whose ``voc_id`` is not
        among the new rows (kept), rows without ``voc_id`` and later duplicates of a ``voc_id``
        (kept verbatim).
    not_in_new
        How many kept rows have a ``voc_id`` that is no longer among the new rows.
    dropped_blank
        Completely empty rows (every cell empty) that were dropped.
    """

    appended: int = 0
    updated: int = 0
    kept_reviewed: int = 0
    unchanged: int = 0
    not_in_new: int = 0
    dropped_blank: int = 0

    def to_dict(self) -> dict[str, int]:
        """The counts by field name (the run summary's ``review_merge``).

        Returns
        -------
        dict[str, int]
        """
        return {
            "appended": self.appended,
            "updated": self.updated,
            "kept_reviewed": self.kept_reviewed,
            "unchanged": self.unchanged,
            "not_in_new": self.not_in_new,
            "dropped_blank": self.dropped_blank,
        }


@dataclass
class RefreshStats:
    """What :func:`merge_reviews` did.

    Attributes
    ----------
    n_rows
        Rows of the tagged frame (= output rows).
    n_reviewed
        Rows with at least one dimension taken from the reviewer (``is_reviewed``; per
        dimension: ``subject_reviewed`` / ``work_reviewed`` of the frame).
    n_changed_subject, n_changed_work
        Reviewed rows whose final label differs from the model's.
    n_not_applied
        Rows with reviewer label cells filled but 검수완료 not done: not applied.
    n_group_applied
        Rows that took at least one dimension from their 묶음's decision (source
        :data:`SOURCE_GROUP`); counted in ``n_reviewed`` too.
    n_retired_mapped
        Applied reviewer values that named a retired class and were read as its successor.
    sheet_only_ids
        ``voc_id`` values of the sheet that are not in the tagged frame (not added).
    issues
        :class:`ReviewIssue` of the sheet rows whose ``voc_id`` is in the tagged frame (call
        :func:`validate_reviews` on the whole sheet for all of them), plus ``tag_changed``.
    """

    n_rows: int = 0
    n_reviewed: int = 0
    n_changed_subject: int = 0
    n_changed_work: int = 0
    n_not_applied: int = 0
    n_group_applied: int = 0
    n_retired_mapped: int = 0
    sheet_only_ids: list[str] = field(default_factory=list)
    issues: list[ReviewIssue] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The counts by field name, ``n_sheet_only`` (how many sheet-only ids) and the issues
        as text (:meth:`ReviewIssue.__str__`).

        Returns
        -------
        dict[str, Any]
        """
        return {
            "n_rows": self.n_rows,
            "n_reviewed": self.n_reviewed,
            "n_changed_subject": self.n_changed_subject,
            "n_changed_work": self.n_changed_work,
            "n_not_applied": self.n_not_applied,
            "n_group_applied": self.n_group_applied,
            "n_retired_mapped": self.n_retired_mapped,
            "n_sheet_only": len(self.sheet_only_ids),
            "issues": [str(i) for i in self.issues],
        }


# --------------------------------------------------------------------------------------------
# cells


def neutralize_cell(value: object) -> str:
    """The exact text a spreadsheet cell should hold for ``value``, safe to store as text.

    Formula injection (a VOC titled ``=HYPERLINK("http://evil","click")``) is prevented by *how*
    the backends store the text, not by changing it: the XLSX backend writes every text cell
    with ``data_type = "s"`` (and Excel's ``quotePrefix`` when :func:`is_formula_like`), the
    Google Sheets backend writes with ``valueInputOption=RAW``; neither parses formulas. So the
    text read back equals the text written, including ``=…``, ``+1``, ``-1``, ``@SUM(A1)`` and
    ``"\\t=1"``. An apostrophe prefix is deliberately *not* used: with RAW input it would be
    stored literally and the round trip would change the text.

    What this function does change is what no spreadsheet can store faithfully: ``\\r\\n`` and a
    lone ``\\r`` become ``\\n`` (XML, hence XLSX, normalises carriage returns away), and the
    control characters XML 1.0 forbids (U+0000–U+0008, U+000B, U+000C, U+000E–U+001F) are
    removed. The function is idempotent and the backends' round trip is exact for its output.

    Parameters
    ----------
    value
        Any scalar: ``None`` → ``""``; ``bool`` → ``"TRUE"``/``"FALSE"``; integral ``float`` →
        its integer text; ``date``/``datetime`` → ISO text; anything else ``str(value)``.

    Returns
    -------
    str
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        text = str(int(value)) if value.is_integer() else repr(value)
    elif isinstance(value, datetime):
        text = value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    elif isinstance(value, date):
        text = value.isoformat()
    else:
        text = str(value)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _ILLEGAL_XML.sub("", text)


def is_formula_like(text: str) -> bool:
    """Whether a spreadsheet program would read ``text`` as a formula if it were typed in.

    Parameters
    ----------
    text
        A cell's text.

    Returns
    -------
    bool
        True when ``text`` starts with one of :data:`FORMULA_PREFIXES` (``= + - @ \\t \\r``).
    """
    return bool(text) and text[0] in FORMULA_PREFIXES


ERROR_VALUES: frozenset[str] = frozenset(
    {
        "#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA",
        "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!", "#PYTHON!",
        "#EXTERNAL!", "#ERROR!",
    }
)
"""Spreadsheet error values: the seven of the Office Open XML formula grammar (ECMA-376 Part 1:
``#NULL! #DIV/0! #VALUE! #REF! #NAME? #NUM! #N/A``), Excel's ``#GETTING_DATA`` and newer ones
(Microsoft support, "How to correct a #SPILL! error" and its sibling pages: ``#SPILL! #CALC!
#FIELD! #BLOCKED! #CONNECT! #BUSY! #UNKNOWN! #PYTHON! #EXTERNAL!``) and Google Sheets'
``#ERROR!``. Compared after stripping and upper-casing."""

NON_LITERAL_KINDS: dict[str, str] = {
    "formula": "수식",
    "error_value": "오류 값",
    "date_value": "날짜",
    "number_value": "숫자",
}
"""What :func:`non_literal_kind` finds in a reviewer cell (the :class:`ReviewIssue` code) and
its Korean name in the issue message."""

_DATE_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"  # what neutralize_cell makes of a date
    r"|\d{4}\. ?\d{1,2}\. ?\d{1,2}\.?|\d{4}/\d{1,2}/\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}"  # Sheets' formatted dates
    r"|\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?"  # a time
)
_NUMBER_RE = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][+-]?\d+)?%?")


def non_literal_kind(text: str) -> str | None:
    """What a reviewer cell holds when it is not a literal text, as read back by a backend.

    The backends read a formula as its formula text (``"=VLOOKUP(B2,…)"``, never its cached
    value, which a file saved by a program other than Excel may lack), an error as its code
    (``"#N/A"``), a date as ``YYYY-MM-DD`` (Google Sheets: as formatted, ``2019. 11. 3``) and a
    number as its text (:func:`neutralize_cell`).

    Parameters
    ----------
    text
        A reviewer cell's text as read (surrounding spaces are ignored).

    Returns
    -------
    str or None
        ``"formula"`` (starts with ``=``), ``"error_value"`` (one of :data:`ERROR_VALUES`),
        ``"date_value"`` (a date or time as above), ``"number_value"`` (``3``, ``-1.5``,
        ``1,234``, ``50%``, ``1e3``); ``None`` for any other text, the empty one included.
    """
    t = text.strip()
    if not t:
        return None
    if t.startswith("="):
        return "formula"
    if t.upper() in ERROR_VALUES:
        return "error_value"
    if _DATE_RE.fullmatch(t):
        return "date_value"
    if any(ch.isdigit() for ch in t) and _NUMBER_RE.fullmatch(t):
        return "number_value"
    return None


def is_done(value: object) -> bool:
    """Whether a 검수완료 cell means *done*.

    Done (after NFKC normalisation, stripping and case-folding): ``Y``, ``y``, ``예``, ``O``,
    ``o``, ``TRUE``/``true`` (any case), ``1``, ``✓`` (see :data:`DONE_VALUES`); also the
    boolean ``True`` and the number ``1``. Anything else — empty, ``N``, ``X``, ``완료``,
    ``2`` — is not done.

    Parameters
    ----------
    value
        The cell as read: text, bool, number or None.

    Returns
    -------
    bool
    """
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value == 1
    return _norm_flag(str(value)) in DONE_VALUES


def _norm_flag(text: str) -> str:
    """A 검수완료 text NFKC-normalised, stripped and case-folded (as :data:`DONE_VALUES`)."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


def _text_cell(value: object, *, limit: int | None = None) -> str:
    """:func:`neutralize_cell` of ``value``, cut to ``limit`` characters (ending in ``" …[잘림]"``)."""
    text = neutralize_cell(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - len(_TRUNCATED_MARK)] + _TRUNCATED_MARK
    return text


def mark_guess(text: str) -> str:
    """Mark a model tag cell as a keyword guess.

    Parameters
    ----------
    text
        A tag cell's text (``"승강기"``).

    Returns
    -------
    str
        ``text`` + :data:`GUESS_SUFFIX` (``"승강기 (추정)"``); ``""`` stays ``""`` and an already
        marked text is returned as it is.
    """
    if not text or split_guess(text)[1]:
        return text
    return text + GUESS_SUFFIX


def split_guess(text: str) -> tuple[str, bool]:
    """Split the keyword-guess marker (:data:`GUESS_SUFFIX`) off a model tag cell.

    Parameters
    ----------
    text
        A tag cell's text; ``None`` counts as ``""``.

    Returns
    -------
    tuple[str, bool]
        ``(text without the marker, whether it had one)``: ``"승강기 (추정)"`` →
        ``("승강기", True)``; ``"승강기"`` → ``("승강기", False)``. Surrounding spaces are
        stripped and the marker is recognised after NFKC normalisation (a full-width
        ``（추정）`` too).
    """
    t = unicodedata.normalize("NFKC", text or "").strip()
    mark = f"({GUESS_MARK})"
    if t.endswith(mark):
        return t[: -len(mark)].strip(), True
    return (text or "").strip(), False


def _fmt_conf(value: float | None) -> str:
    """A confidence as the sheet shows it (``"0.00"``; ``""`` for None)."""
    return "" if value is None else f"{float(value):.2f}"


def _as_text_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Every column ``Utf8``, nulls ``""`` (the sheet-frame convention)."""
    return df.with_columns(
        [pl.col(c).cast(pl.Utf8, strict=False).fill_null("") for c in df.columns]
    )


def _with_added_columns(df: pl.DataFrame) -> pl.DataFrame:
    """A text frame with every :data:`ADDED_COLUMNS` column it lacks added as ``""``."""
    add = [pl.lit("").alias(c) for c in ADDED_COLUMNS if c not in df.columns]
    return df.with_columns(add) if add else df


def _natural_key(v: str) -> tuple[int, int | str]:
    """Sort key of a ``voc_id``: numeric ids numerically, then others, empty last."""
    return building_sort_key(v) if v else (2, "")


# --------------------------------------------------------------------------------------------
# building rows


_DIM_KO = {"subject": "주제", "work": "작업유형"}


def review_thresholds_of(tagger: Any, *, override: float | None = None) -> dict[str, float]:
    """The 검토 우선 threshold of each dimension a tagger's trained model tags.

    Parameters
    ----------
    tagger
        Any tagger (``voc.tagger.Tagger``). Dimensions whose ``model_labels`` are empty
        (keyword-only) never get a threshold: they never drive the priority.
    override
        A threshold for every such dimension (``ReviewSettings.low_confidence_threshold``).

    Returns
    -------
    dict
        ``{dimension: threshold}``: ``override`` when given; else the tagger's
        ``review_thresholds`` (chosen on held-out rows at training,
        ``voc.metrics.review_budget``); else, for a model trained before those existed, its
        ``low_confidence_threshold`` for the subject only (it was chosen on subject held-out
        rows; no threshold of the work type is known); else ``{}`` (nothing flagged).
    """
    trained = [d for d in DIMENSIONS if _model_labels(tagger, d)]
    if override is not None:
        return {d: float(override) for d in trained}
    # getattr: taggers pickled before review thresholds (issue 14) lack the attribute; absent = none chosen
    own = getattr(tagger, "review_thresholds", None) or {}
    if own:
        return {d: float(own[d]) for d in trained if own.get(d) is not None}
    old = getattr(tagger, "low_confidence_threshold", None)
    return {"subject": float(old)} if old is not None and "subject" in trained else {}


def _model_labels(tagger: Any, dim: str) -> list[str]:
    """The labels a tagger's trained model gives ``dim`` (``[]``: keyword-only or no such API)."""
    try:
        return list(tagger.model_labels(dim))
    except (AttributeError, KeyError):
        return []


def _fmt_pair(value: float, limit: float) -> tuple[str, str]:
    """Both numbers with the fewest decimals (2–4) that still show ``value < limit``."""
    for d in (2, 3, 4):
        a, b = f"{value:.{d}f}", f"{limit:.{d}f}"
        if a != b:
            return a, b
    return a, b


def review_flags(
    confidences: Mapping[str, Sequence[float | None]],
    sources: Mapping[str, Sequence[str | None]] | None,
    thresholds: Mapping[str, float],
) -> tuple[list[bool], list[str], list[float | None]]:
    """검토 우선, 검토 사유 and 신뢰도 of N rows.

    A dimension *drives* a row when a trained model tagged it (``source == "model"``; every
    dimension when ``sources`` is None) and it has a confidence. The row is flagged when a
    driving dimension's confidence is below that dimension's threshold (a dimension without a
    threshold never flags), or when the row has no confidence at all and some threshold exists.
    Keyword guesses (``source == "keyword"``) never flag: their confidence is a keyword score,
    not an error probability (median 0.28 on the demo month, which flagged 43 of 45 rows).

    Parameters
    ----------
    confidences
        Per dimension, N confidences in [0, 1] (None/NaN: not tagged).
    sources
        Per dimension, N sources (``model``, ``keyword``, …), or None.
    thresholds
        Per dimension, the threshold (:func:`review_thresholds_of`).

    Returns
    -------
    tuple
        N flags; N reasons (``"주제 신뢰도 0.31 < 기준 0.65"``, ``"; "``-joined, ``"신뢰도 없음"``,
        ``""``); N row confidences: the minimum over driving dimensions, else over all tagged
        dimensions, else None.
    """
    dims = [d for d in DIMENSIONS if d in confidences]
    n = len(confidences[dims[0]]) if dims else 0
    flags: list[bool] = []
    reasons: list[str] = []
    row_conf: list[float | None] = []
    for i in range(n):
        present: dict[str, float] = {}
        for d in dims:
            c = confidences[d][i]
            if c is not None and not (isinstance(c, float) and np.isnan(c)):
                present[d] = float(c)
        driving = {
            d: c for d, c in present.items() if sources is None or d not in sources or (sources[d][i] or "") == "model"
        }
        why = []
        for d, c in driving.items():
            t = thresholds.get(d)
            if t is not None and c < t:
                a, b = _fmt_pair(c, t)
                why.append(f"{_DIM_KO.get(d, d)} 신뢰도 {a} < 기준 {b}")
        if not present and thresholds:
            why.append("신뢰도 없음")
        flags.append(bool(why))
        reasons.append("; ".join(why))
        pool = driving or present
        row_conf.append(min(pool.values()) if pool else None)
    return flags, reasons, row_conf


def build_review_rows(
    tagged: pl.DataFrame,
    *,
    threshold: float | None,
    thresholds: Mapping[str, float] | None = None,
    groups: Sequence[str | None] | pl.Series | None = None,
    evidence: Sequence[Any] | None = None,
    reply_drafts: Sequence[Any] | None = None,
) -> pl.DataFrame:
    """Review-sheet rows for a tagged frame.

    Parameters
    ----------
    tagged
        ``N × C`` tagged frame (``voc.schema.TAGGED_COLUMNS``; at least ``voc_id``,
        ``building_id``, ``building_name``, ``created_at`` (Date or ``YYYY-MM-DD`` text), the
        three texts, ``{subject,work}_{major,minor,confidence}``, ``model_version``, ``run_id``).
        ``{subject,work}_source`` is optional: where it is ``"keyword"`` the dimension's tag
        cells end in :data:`GUESS_SUFFIX` (a keyword guess, shown as such to the reviewer) and
        the dimension never drives 검토 우선; without the column every dimension counts as a
        trained model's. ``urgent`` / ``repeat_of`` (:mod:`voc.urgency`) fill 긴급 and 반복;
        a frame without them gets them from ``voc.urgency.with_alert_columns``.
    threshold
        One threshold for every dimension (the old single ``low_confidence_threshold``); used
        when ``thresholds`` is None. ``None`` and no ``thresholds``: no row is flagged.
    thresholds
        Per-dimension thresholds (:func:`review_thresholds_of`); a dimension without an entry
        never flags. See :func:`review_flags` for the rule.
    groups
        N group ids (``voc.groups.near_duplicate_groups``; null/``""`` = none): the 묶음 column,
        and the rows of a group are placed together.
    evidence
        N cells of 유사 검수 VOC: text, or a list of ``voc.evidence.Neighbour``
        (``voc.evidence.tagger_evidence``), formatted by ``voc.evidence.format_evidence``.
    reply_drafts
        N cells of 답변 초안: text, None, or a ``voc.replies.SuggestedReply`` (the best one,
        formatted by ``voc.replies.format_reply_draft``).

    Returns
    -------
    pl.DataFrame
        ``N × len(REVIEW_COLUMNS)``, all ``Utf8`` (``""`` for empty), reviewer cells empty and
        검수완료 ``"N"``. Sorted 검토 우선 first, then by ascending 신뢰도 (rows without any
        first), ties by ``voc_id`` (numeric ids numerically); the members of a group follow its
        first row in that order. A group is one review item: its first row's 검토 사유 names the
        group and its size, and when members are flagged only the first row keeps 검토 우선
        (``"묶음 1-69204: 28건 중 27건 검토 우선, 이 행에서 결정하고 묶음 적용=Y"``), the others
        point to it (``"묶음 1-69204의 첫 행에서 결정 (주제 신뢰도 …)"``): one decision covers them
        (:func:`merge_reviews`). Texts pass through :func:`neutralize_cell` and are cut at
        :data:`MAX_CELL_CHARS`.

    Raises
    ------
    ReviewError
        A required column is missing, a ``voc_id`` is empty or duplicated, ``groups``,
        ``evidence`` or ``reply_drafts`` is not of length N.
    """
    ids = _checked_tagged_ids(tagged, {"groups": groups, "evidence": evidence, "reply_drafts": reply_drafts})
    n = tagged.height
    conf_by_dim = _dimension_confidences(tagged)
    sources = _dimension_sources(tagged)
    limits = dict(thresholds) if thresholds is not None else ({d: threshold for d in DIMENSIONS} if threshold is not None else {})
    flags, reasons, conf = review_flags(conf_by_dim, sources or None, limits)
    group_of = [neutralize_cell(g).strip() for g in (list(groups) if groups is not None else [""] * n)]
    order = sorted(range(n), key=lambda i: (not flags[i], -1.0 if conf[i] is None else conf[i], _natural_key(ids[i])))
    order, firsts = _group_blocks(order, group_of)
    _collapse_group_flags(firsts, group_of, flags, reasons)
    data: dict[str, list[str]] = {
        COL_FLAG: ["Y" if f else "" for f in flags],
        **_aid_cells(tagged, evidence, reply_drafts),
        COL_REASON: reasons,
        COL_CONFIDENCE: [_fmt_conf(c) for c in conf],
        COL_VOC_ID: ids,
        COL_GROUP: group_of,
        **_data_cells(tagged),
        **_model_tag_cells(tagged, sources, conf_by_dim),
        **_fresh_reviewer_cells(n),
    }
    return pl.DataFrame(
        {c: [data[c][i] for i in order] for c in REVIEW_COLUMNS},
        schema={c: pl.Utf8 for c in REVIEW_COLUMNS},
    )


def _checked_tagged_ids(tagged: pl.DataFrame, per_row: Mapping[str, Sequence[Any] | pl.Series | None]) -> list[str]:
    """The stripped ``voc_id`` cells of a tagged frame, once its columns, its ids and the length
    of each per-row input (``{name: N values or None}``) are checked (:class:`ReviewError`)."""
    missing = [c for c in _TAGGED_NEEDED if c not in tagged.columns]
    if missing:
        raise ReviewError(f"tagged frame is missing column(s) {missing}")
    ids = [neutralize_cell(v).strip() for v in tagged["voc_id"].to_list()]
    _check_unique_ids(ids, what="tagged frame")
    n = tagged.height
    for name, seq in per_row.items():
        if seq is not None and len(seq) != n:
            raise ReviewError(f"{name} has {len(seq)} values for {n} tagged rows")
    return ids


def _dimension_confidences(tagged: pl.DataFrame) -> dict[str, list[float | None]]:
    """Per dimension, the N confidences of a tagged frame (None where null or NaN)."""
    return {
        d: [None if x is None or np.isnan(x) else float(x) for x in tagged[f"{d}_confidence"].cast(pl.Float64, strict=False).to_list()]
        for d in DIMENSIONS
    }


def _dimension_sources(tagged: pl.DataFrame) -> dict[str, list[str]]:
    """Per dimension with a ``{dim}_source`` column, its N cells as stripped text."""
    return {
        d: [neutralize_cell(v).strip() for v in tagged[f"{d}_source"].to_list()]
        for d in DIMENSIONS
        if f"{d}_source" in tagged.columns
    }


def _text_cells(tagged: pl.DataFrame, col: str, *, limit: int | None = None) -> list[str]:
    """One column of ``tagged`` as N sheet cells (:func:`_text_cell`)."""
    return [_text_cell(v, limit=limit) for v in tagged[col].to_list()]


def _data_cells(tagged: pl.DataFrame) -> dict[str, list[str]]:
    """The VOC's own cells of the N rows (building, 등록일 ``YYYY-MM-DD``, texts cut at
    :data:`MAX_CELL_CHARS`, model version, run), in row order."""
    if tagged["created_at"].dtype in (pl.Date, pl.Datetime):
        created = [d.isoformat()[:10] if d is not None else "" for d in tagged["created_at"].to_list()]
    else:
        created = [neutralize_cell(d)[:10] for d in tagged["created_at"].to_list()]
    return {
        COL_BUILDING_ID: _text_cells(tagged, "building_id"),
        COL_BUILDING_NAME: _text_cells(tagged, "building_name"),
        COL_CREATED: created,
        COL_TITLE: _text_cells(tagged, "title", limit=MAX_CELL_CHARS),
        COL_REQUEST: _text_cells(tagged, "request_contents", limit=MAX_CELL_CHARS),
        COL_REPLY: _text_cells(tagged, "reply", limit=MAX_CELL_CHARS),
        COL_MODEL_VERSION: _text_cells(tagged, "model_version"),
        COL_RUN_ID: _text_cells(tagged, "run_id"),
    }


def _model_tag_cells(
    tagged: pl.DataFrame, sources: Mapping[str, Sequence[str]], conf_by_dim: Mapping[str, Sequence[float | None]]
) -> dict[str, list[str]]:
    """The model's tag and confidence cells of the N rows (:data:`MODEL_TAG_COLUMNS`); a keyword
    guess (source ``"keyword"``) gets :data:`GUESS_SUFFIX`."""
    out: dict[str, list[str]] = {}
    for dim, (col_major, col_minor, col_conf) in MODEL_TAG_COLUMNS.items():
        for col, part in ((col_major, "major"), (col_minor, "minor")):
            vals = _text_cells(tagged, f"{dim}_{part}")
            if dim in sources:
                vals = [mark_guess(v) if s == "keyword" else v for v, s in zip(vals, sources[dim])]
            out[col] = vals
        out[col_conf] = [_fmt_conf(c) for c in conf_by_dim[dim]]
    return out


def _fresh_reviewer_cells(n: int) -> dict[str, list[str]]:
    """The reviewer cells of N new rows: empty, 검수완료 ``"N"``."""
    return {
        **{c: [""] * n for c in _REVIEWER_LABEL_CELLS},
        COL_GROUP_APPLY: [""] * n,
        COL_DONE: ["N"] * n,
        COL_MEMO: [""] * n,
    }


def _aid_cells(tagged: pl.DataFrame, evidence: Sequence[Any] | None, reply_drafts: Sequence[Any] | None) -> dict[str, list[str]]:
    """유사 검수 VOC, 긴급, 반복 and 답변 초안 of the N rows of ``tagged`` (row order), as text."""
    from voc.evidence import format_evidence
    from voc.replies import format_reply_draft
    from voc.urgency import with_alert_columns

    def cells(values: Sequence[Any] | None, fmt: Callable[[Any], str]) -> list[str]:
        """N cells of text, a formatted value (``fmt``) or empty."""
        if values is None:
            return [""] * tagged.height
        return [_text_cell(v if isinstance(v, str) or v is None else fmt(v), limit=MAX_CELL_CHARS) for v in values]

    alerts = with_alert_columns(tagged.select([c for c in ("title", "request_contents", "urgent", "repeat_of") if c in tagged.columns]))
    return {
        COL_URGENT: [URGENT_MARK if u else "" for u in alerts["urgent"].to_list()],
        COL_REPEAT: [neutralize_cell(r).strip() for r in alerts["repeat_of"].to_list()],
        COL_EVIDENCE: cells(evidence, format_evidence),
        COL_REPLY_DRAFT: cells(reply_drafts, format_reply_draft),
    }


def _collapse_group_flags(firsts: Mapping[int, int], group_of: Sequence[str], flags: list[bool], reasons: list[str]) -> None:
    """One review item per 묶음: its first row carries 검토 우선 when any member has it (and says
    how many, and how to decide the group once); the other members lose theirs and point to the
    first row. ``flags``/``reasons`` are changed in place."""
    members: dict[str, list[int]] = {}
    for i, g in enumerate(group_of):
        if g:
            members.setdefault(g, []).append(i)
    for first, size in firsts.items():
        g = group_of[first]
        rows = members[g]
        k = sum(flags[i] for i in rows)
        if not k:
            reasons[first] = f"{reasons[first]}; 묶음 {g}: {size}건" if reasons[first] else f"묶음 {g}: {size}건"
            continue
        note = f"묶음 {g}: {size}건 중 {k}건 검토 우선, 이 행에서 결정하고 묶음 적용=Y"
        reasons[first] = f"{reasons[first]}; {note}" if reasons[first] else note
        flags[first] = True
        for i in rows:
            if i != first and flags[i]:
                flags[i] = False
                reasons[i] = f"묶음 {g}의 첫 행에서 결정 ({reasons[i]})"


def _group_blocks(order: list[int], group_of: Sequence[str]) -> tuple[list[int], dict[int, int]]:
    """``order`` with each group's rows moved up behind its first row (their relative order kept),
    and ``{first row: group size}`` for groups of two or more rows."""
    members: dict[str, list[int]] = {}
    for i in order:
        if group_of[i]:
            members.setdefault(group_of[i], []).append(i)
    out: list[int] = []
    firsts: dict[int, int] = {}
    for i in order:
        g = group_of[i]
        if not g:
            out.append(i)
        elif members[g][0] == i:
            out.extend(members[g])
            if len(members[g]) > 1:
                firsts[i] = len(members[g])
    return out, firsts


def _check_unique_ids(ids: Sequence[str], *, what: str) -> None:
    """Raise :class:`ReviewSheetError` for an empty or repeated id (``what`` names the frame)."""
    seen: dict[str, int] = {}
    for i, v in enumerate(ids):
        if not v:
            raise ReviewSheetError(f"{what} row {i + 1}: voc_id is empty")
        if v in seen:
            raise ReviewSheetError(f"{what} row {i + 1}: voc_id {v!r} duplicates row {seen[v] + 1}")
        seen[v] = i


# --------------------------------------------------------------------------------------------
# upsert into an existing sheet


def _touched(row: Mapping[str, str]) -> bool:
    """The reviewer worked on the row: a label cell filled, 검수완료 or 묶음 적용 done."""
    return (
        is_done(row.get(COL_DONE, ""))
        or is_done(row.get(COL_GROUP_APPLY, ""))
        or any(row.get(c, "").strip() for c in _REVIEWER_LABEL_CELLS)
    )


def _fresh_aids(fresh: Mapping[str, str] | None) -> dict[str, str]:
    """The :data:`AID_COLUMNS` cells of a new row (none without one)."""
    return {c: fresh[c] for c in AID_COLUMNS} if fresh is not None else {}


def merge_into_sheet(
    existing: pl.DataFrame | None, new_rows: pl.DataFrame
) -> tuple[pl.DataFrame, MergeStats]:
    """Idempotent upsert of a month's review sheet, keyed by ``voc_id``.

    Rules, cell by cell:

    * reviewer cells (:data:`REVIEWER_COLUMNS`: the four 검수_ cells, 묶음 적용, 검수완료, 검수
      메모) of an existing row are never changed;
    * an existing row the reviewer has not touched (검수완료 and 묶음 적용 not done *and* all four
      검수_ label cells empty; a memo alone does not count) gets the new row's model-side cells
      (flag and reason, confidences, 묶음, texts, tags, evidence, model_version, run_id);
    * a touched row keeps every cell, so the reviewer still sees what they judged — except the
      :data:`AID_COLUMNS` (긴급, 반복, 답변 초안), which nobody judges: every row gets the new ones;
    * new ``voc_id`` values are appended at the end, in ``new_rows`` order;
    * no row is deleted: rows whose ``voc_id`` is no longer in ``new_rows``, rows without a
      ``voc_id`` and later duplicates of a ``voc_id`` are kept verbatim. Only rows whose every
      cell is empty are dropped (they hold nothing);
    * existing row order is kept (sorting is the reviewer's business once the sheet exists);
      columns are :data:`REVIEW_COLUMNS` then any extra columns of ``existing`` (new rows get
      ``""`` there). A :data:`REVIEW_COLUMNS` column missing from ``existing`` is added, filled
      with the new model values for untouched rows and ``""`` otherwise.

    Running it again with the same ``new_rows`` returns the same frame.

    Parameters
    ----------
    existing
        ``M × C`` sheet as read back (any dtypes; nulls count as empty) or ``None`` when the month
        has no sheet yet.
    new_rows
        ``N × len(REVIEW_COLUMNS)`` from :func:`build_review_rows`.

    Returns
    -------
    tuple[pl.DataFrame, MergeStats]
        The merged sheet (all ``Utf8``, ``""`` for empty) and the counts.

    Raises
    ------
    ReviewSheetError
        ``existing`` has no ``voc_id`` column; ``new_rows`` lacks a :data:`REVIEW_COLUMNS`
        column, or has an empty or duplicate ``voc_id``.
    """
    missing = [c for c in REVIEW_COLUMNS if c not in new_rows.columns]
    if missing:
        raise ReviewSheetError(f"new review rows are missing column(s) {missing}")
    new = _as_text_frame(new_rows.select(REVIEW_COLUMNS))
    new_ids = [v.strip() for v in new[COL_VOC_ID].to_list()]
    _check_unique_ids(new_ids, what="new review rows")
    stats = MergeStats()
    if existing is None or (existing.height == 0 and COL_VOC_ID not in existing.columns):
        stats.appended = new.height
        return new, stats
    if COL_VOC_ID not in existing.columns:
        raise ReviewSheetError(
            f"the existing review sheet has no '{COL_VOC_ID}' column (columns: {existing.columns}); "
            "restore the header before merging"
        )
    old = _as_text_frame(existing)
    extra = [c for c in old.columns if c not in REVIEW_COLUMNS]
    columns = [*REVIEW_COLUMNS, *extra]
    new_by_id = {vid: row for vid, row in zip(new_ids, new.iter_rows(named=True))}
    out_rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for row in old.iter_rows(named=True):
        if not any(str(v).strip() for v in row.values()):
            stats.dropped_blank += 1
            continue
        merged = {c: row.get(c, "") for c in columns}
        vid = merged[COL_VOC_ID].strip()
        fresh = new_by_id.get(vid) if vid and vid not in seen else None
        if vid:
            if vid not in new_by_id:
                stats.not_in_new += 1
            seen.add(vid)
        _upsert_row(merged, fresh, stats, reviewed=_touched(merged) and bool(vid))
        out_rows.append(merged)
    for vid, row in new_by_id.items():
        if vid not in seen:
            out_rows.append({c: row.get(c, "") for c in columns})
            stats.appended += 1
    out = pl.DataFrame(
        {c: [r[c] for r in out_rows] for c in columns}, schema={c: pl.Utf8 for c in columns}
    )
    return out, stats


def _upsert_row(merged: dict[str, str], fresh: Mapping[str, str] | None, stats: MergeStats, *, reviewed: bool) -> None:
    """Bring one existing sheet row up to date in place by :func:`merge_into_sheet`'s rules
    (``fresh``: the run's row of its ``voc_id``, or None) and count it in ``stats``."""
    if reviewed:
        stats.kept_reviewed += 1
        merged.update(_fresh_aids(fresh))  # judged by nobody: always the run's latest
        return
    if fresh is None:
        stats.unchanged += 1
        return
    changed = False
    for c in _MODEL_SIDE:
        if merged[c] != fresh[c]:
            merged[c] = fresh[c]
            changed = True
    if changed:
        stats.updated += 1
    else:
        stats.unchanged += 1


# --------------------------------------------------------------------------------------------
# validation of reviewer input

_VALIDATED_SCHEMA: dict[str, Any] = {
    "sheet_row": pl.Int64,
    "voc_id": pl.Utf8,
    "ignored": pl.Boolean,
    "is_done": pl.Boolean,
    "review_subject_major": pl.Utf8,
    "review_subject_minor": pl.Utf8,
    "subject_status": pl.Utf8,
    "review_work_major": pl.Utf8,
    "review_work_minor": pl.Utf8,
    "work_status": pl.Utf8,
    "subject_mapped": pl.Boolean,
    "work_mapped": pl.Boolean,
    "review_memo": pl.Utf8,
    "group": pl.Utf8,
    "group_apply": pl.Boolean,
}
class _DimensionRules:
    """Active labels of one dimension, for validating reviewer cells; retired names resolve to
    their successors (:meth:`voc.taxonomy.Taxonomy.successor`)."""

    def __init__(self, taxonomy: Taxonomy, dimension: str) -> None:
        """The active rows of ``dimension`` in ``taxonomy``, indexed."""
        rows = taxonomy.rows_of(dimension)
        self.taxonomy = taxonomy
        self.dimension = dimension
        self.majors = set(r.major for r in rows)
        self.major_of: dict[str, str] = {r.minor: r.major for r in rows}  # unique among active rows
        self.minors_of: dict[str, list[str]] = {}
        for r in rows:
            self.minors_of.setdefault(r.major, []).append(r.minor)
        self.labels = {(r.major, r.minor) for r in rows}
        self.retired = taxonomy.retired_majors(dimension)
        self.ko = _DIM_KO.get(dimension, dimension)

    def successor(self, major: str, minor: str) -> tuple[str, str] | None:
        """The active (major, minor) a retired pair became, or None."""
        row = self.taxonomy.successor(self.dimension, major, minor)
        return (row.major, row.minor) if row is not None else None


def _unknown(value: str, what: str) -> str:
    """Message for a reviewer value outside the taxonomy; a pasted model cell with the guess
    marker gets a hint (the marker makes it no value of the taxonomy)."""
    msg = f"'{value.strip()}'은(는) 분류체계에 없는 {what}입니다"
    bare, guess = split_guess(value)
    if guess:
        msg += f" ('{GUESS_MARK}'는 모델의 키워드 추정 표시입니다; 맞다면 목록에서 '{bare}'을(를) 선택하세요)"
    return msg


_Resolved = tuple[str | None, str | None, str, bool]
"""One dimension's reviewer cells resolved: (major, minor, status, a retired name was mapped)."""

_INVALID: _Resolved = (None, None, "invalid", False)


@dataclass(frozen=True, slots=True)
class _Cells:
    """One dimension's two reviewer cells of a row, as typed, and their columns (major, minor)."""

    major: str
    minor: str
    cols: tuple[str, str]


def _check_dimension(
    rules: _DimensionRules,
    major: str,
    minor: str,
    model_minor: str,
    *,
    cols: tuple[str, str],
    issue: Callable[[str, str, str, str], None],
    model_guess: bool = False,
) -> _Resolved:
    """Resolve one dimension's reviewer cells → (major, minor, status, retired name mapped).
    ``model_minor`` is the model's minor without the guess marker; ``model_guess``: it was a
    keyword guess (never used to complete a major-only entry)."""
    a, b = major.strip(), minor.strip()
    col_a, col_b = cols
    if not a and not b:
        return None, None, "empty", False
    if LABEL_SEP in b:  # "시설>승강기" typed into the minor cell
        a2, b2 = split_label(b)
        a2, b2 = a2.strip(), b2.strip()
        if a and a != a2:
            issue(col_b, minor, f"중분류 '{b}'의 대분류 '{a2}'가 {col_a} '{a}'와 다릅니다", "minor_not_under_major")
            return _INVALID
        a, b = a2, b2
    cells = _Cells(major, minor, cols)
    if b:
        return _check_minor(rules, a, b, cells, issue)
    return _check_major_only(rules, a, cells, model_minor, issue=issue, model_guess=model_guess)


def _check_minor(
    rules: _DimensionRules, a: str, b: str, cells: _Cells, issue: Callable[[str, str, str, str], None]
) -> _Resolved:
    """A filled minor ``b`` (with major ``a`` or ``""``): an active pair, a minor whose major is
    inferred, or a retired pair typed by hand (read as its successor)."""
    col_a, col_b = cells.cols
    if a and (a, b) not in rules.labels and (succ := rules.successor(a, b)) is not None:
        return succ[0], succ[1], "valid", True  # a retired class typed by hand
    bad = False
    if a and a not in rules.majors:
        issue(col_a, cells.major, _unknown(a, f"{rules.ko} 대분류"), "not_in_taxonomy")
        bad = True
    if b not in rules.major_of:
        issue(col_b, cells.minor, _unknown(b, f"{rules.ko} 중분류"), "not_in_taxonomy")
        return _INVALID
    if bad:
        return _INVALID
    if not a:
        return rules.major_of[b], b, "valid", False
    if (a, b) not in rules.labels:
        issue(
            col_b,
            cells.minor,
            f"중분류 '{b}'은(는) 대분류 '{a}'에 속하지 않습니다 ('{rules.major_of[b]}'의 중분류)",
            "minor_not_under_major",
        )
        return _INVALID
    return a, b, "valid", False


def _check_major_only(
    rules: _DimensionRules,
    a: str,
    cells: _Cells,
    model_minor: str,
    *,
    issue: Callable[[str, str, str, str], None],
    model_guess: bool,
) -> _Resolved:
    """A major ``a`` without a minor: its only minor, or the model's minor under it (not a
    keyword guess); a retired major stands for its successor."""
    col_a, col_b = cells.cols
    successor = rules.retired.get(a)
    mapped = successor is not None
    if successor is not None:
        a = successor
    if a not in rules.majors:
        issue(col_a, cells.major, _unknown(a, f"{rules.ko} 대분류"), "not_in_taxonomy")
        return _INVALID
    minors = rules.minors_of.get(a, [])
    if len(minors) == 1:
        return a, minors[0], "valid", mapped
    model_minor = model_minor.strip()
    model_label = (a, model_minor) if (a, model_minor) in rules.labels else None
    if model_label is None and mapped and model_minor:
        model_label = rules.successor(cells.major.strip(), model_minor)
        model_label = model_label if model_label is not None and model_label[0] == a else None
    if not model_guess and model_label is not None:
        return model_label[0], model_label[1], "valid", mapped
    why = (
        f"모델의 중분류 '{model_minor}'은(는) 키워드 추정이라 그대로 쓰지 않습니다"
        if model_guess and model_label is not None
        else f"대분류 '{a}'에는 중분류가 여럿입니다 ({', '.join(minors)})"
    )
    issue(col_b, cells.minor, f"{why}; {col_b}을(를) 선택하세요", "minor_missing")
    return _INVALID


def _formula_or_error(text: str) -> str | None:
    """``"formula"`` / ``"error_value"`` for such a cell (:func:`non_literal_kind`), else None:
    the cells that take ``Y`` or an id, where a number may be meant (검수완료 ``1``)."""
    kind = non_literal_kind(text)
    return kind if kind in ("formula", "error_value") else None


def _non_literal_message(column: str, value: str, kind: str, consequence: str) -> str:
    """Korean issue message for a non-literal cell (:data:`NON_LITERAL_KINDS`) and its ``consequence``."""
    what = NON_LITERAL_KINDS[kind]
    hint = " (수식 대신 값을 직접 입력하거나 목록에서 고르세요)" if kind in ("formula", "error_value") else ""
    return f"{column}에 {what} '{value.strip()}'이(가) 있습니다; {consequence}{hint}"


def _non_literal_cells(
    rules: _DimensionRules, row: Mapping[str, str], cols: tuple[str, str], issue: Callable[[str, str, str, str], None]
) -> bool:
    """Report every 검수_ cell of one dimension that holds a formula, an error value, a date or
    a number (:func:`non_literal_kind`; a date or number that *is* a class name of the dimension
    is a value); True when there was one: the dimension is then invalid, so its cells are never
    a label and never confirm the model's tag."""
    bad = False
    for col in cols:
        text = row[col]
        kind = non_literal_kind(text)
        if kind in ("date_value", "number_value") and (text.strip() in rules.majors or text.strip() in rules.major_of):
            kind = None
        if kind is not None:
            issue(col, text, _non_literal_message(col, text, kind, "분류로 반영하지 않고, 모델 태그의 확인으로도 보지 않습니다"), kind)
            bad = True
    return bad


def validate_reviews(
    sheet: pl.DataFrame, taxonomy: Taxonomy, *, row_numbers: Sequence[int] | None = None
) -> tuple[pl.DataFrame, list[ReviewIssue]]:
    """Check reviewer cells against the taxonomy's *active* classes and resolve them.

    Per dimension (주제, 작업유형) the two 검수_ cells are resolved as follows (cells stripped):

    * both empty → status ``empty`` (a done row then confirms the model's tag);
    * minor filled: it must be an active minor of the dimension; a filled major must be an
      active major and the minor must be under it; an empty major is inferred (a minor sits
      under exactly one active major — a :class:`~voc.taxonomy.Taxonomy` invariant). A minor
      cell holding a full label ``"major>minor"`` is split;
    * major only: valid when the major has exactly one active minor (that one) or when the
      model's minor (주제 중분류 / 작업유형 중분류 of the row) is under it (the reviewer confirmed
      or corrected just the major) and is not a keyword guess (a cell marked
      :data:`GUESS_SUFFIX`: a guess never completes a reviewer's label); otherwise
      ``minor_missing``;
    * a value carrying the guess marker (a model cell pasted into a 검수_ cell) is not a
      taxonomy value: ``not_in_taxonomy``, with a hint to pick the value from the list;
    * a cell that is not a literal text (:func:`non_literal_kind`): a formula (read as its
      formula text, whatever value it shows or lacks), an error value (``#N/A``, ``#REF!``, …),
      a date or a number (unless that text is a class name of the dimension) → an issue coded
      ``formula`` / ``error_value`` / ``date_value`` / ``number_value`` naming the cell, and the
      dimension is ``invalid``: never a label and never a confirmation of the model's tag;
    * a retired name typed by hand (the dropdowns never offer one) is read as its active
      successor (:meth:`voc.taxonomy.Taxonomy.successor`): ``국제도시국`` + ``기반시설과`` →
      ``국제도시건설국>기반시설과``; a retired major alone → its successor major, then as above
      (``{dim}_mapped`` says so);
    * anything else → status ``invalid`` and a :class:`ReviewIssue` naming row, column and value.
      Invalid values are never used: the final label falls back to the model's and the row is
      not training data for that dimension.

    Also reported: label cells filled on a row not marked done (``not_done``: not applied), a
    검수완료 value that is neither done nor a known "no" (``done_unrecognized``), an empty
    ``voc_id`` on a row with reviewer input and a ``voc_id`` repeated on a later row (the later
    rows are ``ignored``; the first occurrence counts), 묶음 적용 = Y on a row not done
    (``group_not_done``) or without 묶음 (``group_missing``). A formula or an error value in
    검수완료 (the row is not done), in 묶음 적용 (no group decision) or in ``voc_id`` (the row
    is ignored) is reported as ``formula`` / ``error_value``. The 검수 메모 is free text: a
    formula there is kept as its formula text, not reported.

    Parameters
    ----------
    sheet
        ``M × C`` review sheet as read back; needs ``voc_id`` and the reviewer columns (the
        model's minor columns are used when present; 묶음 and 묶음 적용 are optional, as in
        sheets written before they existed). Nulls count as empty.
    taxonomy
        Only active rows are accepted.
    row_numbers
        ``M`` spreadsheet row numbers of the rows of ``sheet`` when it is a subset of the sheet
        (one building's rows); default data row ``i`` → ``i + 2``.

    Returns
    -------
    tuple[pl.DataFrame, list[ReviewIssue]]
        ``M`` rows in sheet order with columns ``sheet_row`` (Int64, data row i → i + 2, or
        ``row_numbers``),
        ``voc_id``, ``ignored`` (bool), ``is_done`` (bool), ``review_subject_major``,
        ``review_subject_minor``, ``subject_status``, ``review_work_major``,
        ``review_work_minor``, ``work_status`` (labels null unless status ``valid``; status ∈
        ``empty``/``valid``/``invalid``), ``subject_mapped`` / ``work_mapped`` (bool: a retired
        name was read as its successor), ``review_memo``, ``group`` (the 묶음 cell),
        ``group_apply`` (bool: done, 묶음 적용 = Y and a 묶음: a group decision); and the issues
        in row order.

    Raises
    ------
    ReviewSheetError
        ``voc_id`` or a reviewer column is missing from ``sheet``; ``row_numbers`` has not
        ``M`` entries.
    """
    needed = [COL_VOC_ID, *(c for c in REVIEWER_COLUMNS if c not in ADDED_COLUMNS)]
    missing = [c for c in needed if c not in sheet.columns]
    if missing:
        raise ReviewSheetError(f"review sheet is missing column(s) {missing}")
    df = _with_added_columns(_as_text_frame(sheet))
    rules = {d: _DimensionRules(taxonomy, d) for d in DIMENSIONS}
    issues: list[ReviewIssue] = []
    out: dict[str, list[Any]] = {k: [] for k in _VALIDATED_SCHEMA}
    first_row: dict[str, int] = {}
    if row_numbers is not None and len(row_numbers) != df.height:
        raise ReviewSheetError(f"row_numbers has {len(row_numbers)} entries for a sheet of {df.height} rows")
    for i, row in enumerate(df.iter_rows(named=True)):
        sheet_row = int(row_numbers[i]) if row_numbers is not None else i + 2
        issue = _RowIssues(issues, sheet_row, row[COL_VOC_ID].strip())
        for k, v in _validate_row(row, issue, rules, first_row).items():
            out[k].append(v)
    return pl.DataFrame(out, schema=_VALIDATED_SCHEMA), issues


@dataclass(frozen=True, slots=True)
class _RowIssues:
    """Collects the :class:`ReviewIssue` of one sheet row (its number and ``voc_id`` fixed)."""

    issues: list[ReviewIssue]
    sheet_row: int
    voc_id: str

    def __call__(self, column: str, value: str, message: str, code: str) -> None:
        """Record one issue of the row."""
        self.issues.append(ReviewIssue(self.sheet_row, self.voc_id, column, value, message, code))


def _validate_row(
    row: Mapping[str, str], issue: _RowIssues, rules: Mapping[str, _DimensionRules], first_row: dict[str, int]
) -> dict[str, Any]:
    """One text row of :func:`validate_reviews` → its output cells (:data:`_VALIDATED_SCHEMA`);
    its issues go to ``issue``, a first ``voc_id``'s row number to ``first_row``."""
    vid = issue.voc_id
    done_kind = _formula_or_error(row[COL_DONE])
    done = is_done(row[COL_DONE]) and done_kind is None
    has_labels = any(row[c].strip() for c in _REVIEWER_LABEL_CELLS)
    ignored = _check_voc_id(vid, issue, first_row, has_input=has_labels or done)
    _check_done(row, issue, done_kind=done_kind, done=done, pending=has_labels and not ignored)
    group = row[COL_GROUP].strip()
    group_apply = _check_group_apply(row, issue, ignored=ignored, done=done, has_labels=has_labels)
    out: dict[str, Any] = {"sheet_row": issue.sheet_row, "voc_id": vid, "ignored": ignored, "is_done": done}
    for dim in DIMENSIONS:
        a, b, status, mapped = _resolve_dimension(rules[dim], row, issue, ignored=ignored)
        out |= {f"review_{dim}_major": a, f"review_{dim}_minor": b, f"{dim}_status": status, f"{dim}_mapped": mapped}
    out |= {"review_memo": row[COL_MEMO], "group": group, "group_apply": group_apply and done and bool(group) and not ignored}
    return out


def _check_voc_id(vid: str, issue: _RowIssues, first_row: dict[str, int], *, has_input: bool) -> bool:
    """Whether the row is ignored (a formula or error value, an empty or a repeated ``voc_id``),
    reporting why (an empty one only when the row ``has_input``); a first ``voc_id`` is recorded."""
    if (id_kind := _formula_or_error(vid)) is not None:
        issue(COL_VOC_ID, vid, _non_literal_message(COL_VOC_ID, vid, id_kind, "이 행의 검수 내용은 반영되지 않습니다"), id_kind)
        return True
    if not vid:
        if has_input:
            issue(COL_VOC_ID, "", "voc_id가 비어 있어 이 행의 검수 내용은 반영되지 않습니다", "missing_voc_id")
        return True
    if vid in first_row:
        issue(COL_VOC_ID, vid, f"voc_id가 {first_row[vid]}행과 중복됩니다; 이 행은 반영되지 않습니다", "duplicate_voc_id")
        return True
    first_row[vid] = issue.sheet_row
    return False


def _check_done(row: Mapping[str, str], issue: _RowIssues, *, done_kind: str | None, done: bool, pending: bool) -> None:
    """Report a 검수완료 cell holding a formula or error value, an unrecognised value, or not done
    under filled label cells of a row that counts (``pending``)."""
    value = row[COL_DONE]
    if done_kind is not None:
        issue(COL_DONE, value, _non_literal_message(COL_DONE, value, done_kind, "미완료로 봅니다 (완료는 Y)"), done_kind)
    elif not done and _norm_flag(value) not in NOT_DONE_VALUES:
        issue(COL_DONE, value, f"검수완료 값 '{value}'을(를) 인식할 수 없어 미완료로 봅니다 (완료는 Y)", "done_unrecognized")
    elif not done and pending:
        issue(COL_DONE, value, "검수 값이 입력됐지만 검수완료가 Y가 아니어서 반영되지 않습니다", "not_done")


def _check_group_apply(row: Mapping[str, str], issue: _RowIssues, *, ignored: bool, done: bool, has_labels: bool) -> bool:
    """Whether 묶음 적용 is set (never for a formula or error value), reporting a setting that
    cannot apply: no 묶음, or a row neither done nor filled (else ``not_done`` says it)."""
    value, group = row[COL_GROUP_APPLY], row[COL_GROUP].strip()
    if (apply_kind := _formula_or_error(value)) is not None:
        if not ignored:
            issue(COL_GROUP_APPLY, value, _non_literal_message(COL_GROUP_APPLY, value, apply_kind, "묶음에 반영하지 않습니다"), apply_kind)
        return False
    group_apply = is_done(value)
    if group_apply and not ignored and not group:
        issue(COL_GROUP_APPLY, value, "이 행은 묶음이 없어 묶음 적용을 할 수 없습니다", "group_missing")
    elif group_apply and not ignored and not done and not has_labels:
        issue(COL_GROUP_APPLY, value, f"묶음 적용이 Y이지만 검수완료가 Y가 아니어서 묶음 {group}에 반영되지 않습니다", "group_not_done")
    return group_apply


def _resolve_dimension(rules: _DimensionRules, row: Mapping[str, str], issue: _RowIssues, *, ignored: bool) -> _Resolved:
    """One dimension's 검수_ cells of a row → (major, minor, status, mapped): an ignored row's
    are never resolved; a non-literal cell makes them invalid (:func:`_non_literal_cells`)."""
    ca, cb = REVIEWER_LABEL_COLUMNS[rules.dimension]
    model_minor, model_guess = split_guess(row.get(MODEL_TAG_COLUMNS[rules.dimension][1], ""))
    if ignored:
        return None, None, "empty" if not (row[ca].strip() or row[cb].strip()) else "invalid", False
    if _non_literal_cells(rules, row, (ca, cb), issue):
        return _INVALID  # never a label, never a confirmation
    return _check_dimension(rules, row[ca], row[cb], model_minor, cols=(ca, cb), issue=issue, model_guess=model_guess)


# --------------------------------------------------------------------------------------------
# folding reviews back into the tagged frame


def merge_reviews(
    tagged: pl.DataFrame,
    sheet: pl.DataFrame | None,
    taxonomy: Taxonomy,
    *,
    reviewed_at: str | None = None,
    row_numbers: Sequence[int] | None = None,
) -> tuple[pl.DataFrame, RefreshStats]:
    """The reviewed frame: the tagged frame with valid reviewer labels applied.

    Per row and dimension the reviewer's label is *applied* when the sheet row (first one with
    that ``voc_id``) is done (:func:`is_done`) and the dimension's cells are valid
    (:func:`validate_reviews`), or when it is done and the dimension's cells are empty — the
    reviewer confirmed the model's tag. Only a trained model's tag (``{dim}_source == "model"``)
    can be confirmed that way: a keyword guess (``keyword``) or no tag stays a machine value and
    never becomes a label unless the reviewer types or picks it. The confirmation also needs
    the sheet to have shown that tag: when the sheet row's model cells (주제/작업유형
    대분류·중분류) carry the guess marker (:data:`GUESS_SUFFIX`) the dimension was a keyword
    guess when reviewed and is not confirmed; when they hold another tag than the tagged frame
    (a rerun retagged the row after the review) it is not confirmed either and a
    ``tag_changed`` issue says so. Sheets without those cells skip these two checks. The model's
    tag always comes from ``tagged``; the sheet's model cells (marker or not) never become a
    value. Applied means: ``{dim}_major/minor`` = the reviewer's label (or the model's,
    confirmed), ``{dim}_source = "reviewer"``, ``{dim}_reviewed = True`` and
    ``reviewed_{dim}_major/minor`` = that label (what training reads). Otherwise the row's
    tagged values stay as they were (input history in ``reviewed_*`` included) and
    ``{dim}_reviewed`` is False: a done row with an invalid subject keeps the model's subject as
    a machine value (``subject_reviewed = False``), whatever happened to the work type.

    **Filled but not done** rows are *not* applied: 검수완료 is the reviewer's commit, so a
    half-finished row never reaches the labels or the training data; :func:`validate_reviews`
    reports them (``not_done``) and ``RefreshStats.n_not_applied`` counts them.

    **Group decisions.** A done row with 묶음 적용 = Y and a 묶음 (its *decision*) passes, per
    dimension, the label applied to that row itself (typed, picked or confirmed, as above) to
    the other rows of the sheet carrying the same 묶음 cell — only those, only from such an
    explicit decision — that the reviewer left alone: a member whose row is done, has a 검수_
    label cell filled or 묶음 적용 set keeps its own outcome (its own edit wins). The members get
    that label with ``{dim}_source = "reviewer_group"`` (:data:`SOURCE_GROUP`) and
    ``{dim}_reviewed = True``: the reviewer decided it for them, so it is a human label, and
    the source keeps it apart from a row-by-row one. Two decisions of one 묶음 that disagree in
    a dimension pass nothing on in it (``group_conflict`` issue). A dimension the decision row
    did not apply (a keyword guess left empty, an invalid value) passes nothing on either.

    Parameters
    ----------
    tagged
        ``N × C`` tagged frame (``voc.schema.TAGGED_COLUMNS``), unique ``voc_id``.
    sheet
        The month's review sheet as read back (``None`` or empty: nothing applied).
    taxonomy
        For validation (active classes).
    reviewed_at
        Optional timestamp text supplied by the caller (pure code reads no clock); when given, a
        last column ``reviewed_at`` holds it on ``is_reviewed`` rows and null elsewhere.
    row_numbers
        Spreadsheet row numbers of ``sheet``'s rows when it is a subset of the month's sheet,
        for the issues (:func:`validate_reviews`).

    Returns
    -------
    tuple[pl.DataFrame, RefreshStats]
        ``N`` rows in ``tagged`` order, columns ``C`` then :data:`REVIEWED_EXTRA_COLUMNS`
        (then ``reviewed_at`` when requested):
        ``is_reviewed`` (bool: at least one dimension applied — kept for compatibility; such
        rows also get ``classify_source = "reviewed"``), ``subject_reviewed`` and
        ``work_reviewed`` (bool: that dimension applied, i.e. a human label; what training and
        the database read per dimension), ``review_memo`` (the memo of the matched sheet row,
        done or not; ``""`` when none), ``model_{dim}_major/minor`` (the model's tags before the
        merge, for metrics) and the raw four 검수_ cells (``""`` when none).

    Raises
    ------
    ReviewError
        ``tagged`` lacks ``voc_id`` or a tag column, or has an empty or duplicate ``voc_id``.
    ReviewSheetError
        ``sheet`` lacks ``voc_id`` or a reviewer column (:func:`validate_reviews`).
    """
    ids = _checked_merge_ids(tagged)
    n = tagged.height
    stats = RefreshStats(n_rows=n)
    sheet_rows, raw_rows = _match_sheet_rows(sheet, taxonomy, ids, row_numbers=row_numbers, stats=stats)
    members, decisions, own_edit = _group_decisions(ids, sheet_rows, raw_rows)
    ctx = _MergeContext(ids, sheet_rows, raw_rows, members, decisions, own_edit, stats, [], [False] * n)
    cols: dict[str, list[Any]] = {}
    dim_reviewed: dict[str, list[bool]] = {}
    for dim in DIMENSIONS:
        labels = _merge_dimension(tagged, dim, ctx)
        dim_reviewed[dim] = labels.applied
        cols.update(labels.columns())
        if dim == "subject":
            stats.n_changed_subject = labels.changed
        else:
            stats.n_changed_work = labels.changed
    return _reviewed_frame(tagged, ctx, cols, dim_reviewed, reviewed_at=reviewed_at), stats


def _checked_merge_ids(tagged: pl.DataFrame) -> list[str]:
    """The stripped ``voc_id`` cells of a tagged frame :func:`merge_reviews` can fold reviews
    into (its tag, source and ``reviewed_*`` columns present, ids unique; else :class:`ReviewError`)."""
    need = ["voc_id", "classify_source"] + [
        f"{p}{d}_{k}" for d in DIMENSIONS for p in ("", "reviewed_") for k in ("major", "minor")
    ] + [f"{d}_source" for d in DIMENSIONS]
    missing = [c for c in need if c not in tagged.columns]
    if missing:
        raise ReviewError(f"tagged frame is missing column(s) {missing}")
    ids = [neutralize_cell(v).strip() for v in tagged["voc_id"].to_list()]
    _check_unique_ids(ids, what="tagged frame")
    return ids


def _match_sheet_rows(
    sheet: pl.DataFrame | None,
    taxonomy: Taxonomy,
    ids: Sequence[str],
    *,
    row_numbers: Sequence[int] | None,
    stats: RefreshStats,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
    """The validated (:func:`validate_reviews`) and the raw text row of the sheet for each tagged
    ``voc_id`` it has (the first one; ignored rows skipped); sheet-only ids, the issues of the
    tagged VOCs and ``n_not_applied`` go to ``stats``."""
    sheet_rows: dict[str, dict[str, Any]] = {}
    raw_rows: dict[str, dict[str, str]] = {}
    if sheet is None or not sheet.height:
        return sheet_rows, raw_rows
    id_set = set(ids)
    validated, issues = validate_reviews(sheet, taxonomy, row_numbers=row_numbers)
    raw = _as_text_frame(sheet)
    for vrow, rrow in zip(validated.iter_rows(named=True), raw.iter_rows(named=True)):
        vid = vrow["voc_id"]
        if vrow["ignored"] or not vid:
            continue
        if vid not in id_set:
            stats.sheet_only_ids.append(vid)
            continue
        sheet_rows[vid] = vrow
        raw_rows[vid] = rrow
    stats.issues = [i for i in issues if i.voc_id in id_set]
    stats.n_not_applied = sum(1 for i in stats.issues if i.code == "not_done")
    return sheet_rows, raw_rows


@dataclass(frozen=True, slots=True)
class _MergeContext:
    """What :func:`merge_reviews` knows of the sheet while it applies each dimension: the tagged
    ``ids`` (N), their sheet rows, 묶음 members and decisions (:func:`_group_decisions`), and
    where the results go (``stats``, ``tag_issues``, ``group_applied`` per row)."""

    ids: list[str]
    sheet_rows: dict[str, dict[str, Any]]
    raw_rows: dict[str, dict[str, str]]
    members: dict[str, list[int]]
    decisions: dict[str, list[int]]
    own_edit: list[bool]
    stats: RefreshStats
    tag_issues: list[ReviewIssue]
    group_applied: list[bool]


@dataclass
class _DimensionLabels:
    """One dimension's label columns of the tagged frame (N each) while reviews are applied."""

    dim: str
    model_major: list[Any]
    model_minor: list[Any]
    model_source: list[Any]
    major: list[Any]
    minor: list[Any]
    source: list[Any]
    reviewed_major: list[Any]
    reviewed_minor: list[Any]
    applied: list[bool]
    changed: int = 0

    @classmethod
    def of(cls, tagged: pl.DataFrame, dim: str) -> _DimensionLabels:
        """The tagged frame's current values of ``dim`` (the model's, and copies to change)."""

        def text(col: str) -> list[Any]:
            """One column of ``tagged`` as text (nulls kept)."""
            return tagged[col].cast(pl.Utf8, strict=False).to_list()

        ma, mi, src = text(f"{dim}_major"), text(f"{dim}_minor"), text(f"{dim}_source")
        rma, rmi = text(f"reviewed_{dim}_major"), text(f"reviewed_{dim}_minor")
        return cls(dim, ma, mi, src, list(ma), list(mi), list(src), list(rma), list(rmi), [False] * tagged.height)

    def apply(self, i: int, major: str, minor: str, source: str) -> None:
        """Row ``i`` takes the label (``major``, ``minor``) from ``source`` (a change when it
        differs from the model's tag)."""
        if (major, minor) != (self.model_major[i], self.model_minor[i]):
            self.changed += 1
        self.major[i], self.minor[i], self.source[i] = major, minor, source
        self.reviewed_major[i], self.reviewed_minor[i] = major, minor
        self.applied[i] = True

    def columns(self) -> dict[str, list[Any]]:
        """The dimension's output columns of :func:`merge_reviews` (text)."""
        d = self.dim
        return {
            f"{d}_major": self.major,
            f"{d}_minor": self.minor,
            f"{d}_source": self.source,
            f"reviewed_{d}_major": self.reviewed_major,
            f"reviewed_{d}_minor": self.reviewed_minor,
            f"model_{d}_major": self.model_major,
            f"model_{d}_minor": self.model_minor,
        }


def _merge_dimension(tagged: pl.DataFrame, dim: str, ctx: _MergeContext) -> _DimensionLabels:
    """One dimension of :func:`merge_reviews`: each done row's own label, then the 묶음 decisions."""
    labels = _DimensionLabels.of(tagged, dim)
    for i, vid in enumerate(ctx.ids):
        v = ctx.sheet_rows.get(vid)
        if v is None or not v["is_done"]:
            continue
        own = _own_label(ctx, labels, i)
        if own is not None:
            labels.apply(i, own[0], own[1], "reviewer")
    _pass_group_decisions(ctx, labels)
    return labels


def _own_label(ctx: _MergeContext, labels: _DimensionLabels, i: int) -> tuple[str, str] | None:
    """The label the done sheet row of tagged row ``i`` gives it in ``labels``' dimension: its
    valid cells, or a trained model's tag its empty cells confirm; None for neither."""
    dim, vid = labels.dim, ctx.ids[i]
    v = ctx.sheet_rows[vid]
    status = v[f"{dim}_status"]
    if status == "valid":
        ctx.stats.n_retired_mapped += bool(v[f"{dim}_mapped"])
        return v[f"review_{dim}_major"], v[f"review_{dim}_minor"]
    ma, mi = labels.model_major[i], labels.model_minor[i]
    if status != "empty" or not mi or labels.model_source[i] != "model":
        return None
    # confirms a trained model's tag, never a keyword guess, and only the tag the reviewer saw:
    # the sheet's model cells (when present) must show it, unmarked
    raw = ctx.raw_rows[vid]
    col_ma, col_mi = MODEL_TAG_COLUMNS[dim][:2]
    seen_a, guess_a = split_guess(raw.get(col_ma, ""))
    seen_b, guess_b = split_guess(raw.get(col_mi, ""))
    if guess_a or guess_b:
        return None
    if (seen_a or seen_b) and (seen_a, seen_b) != ((ma or "").strip(), mi.strip()):
        ctx.tag_issues.append(
            ReviewIssue(
                v["sheet_row"],
                vid,
                col_mi,
                raw.get(col_mi, ""),
                f"검수 후 모델의 {_DIM_KO[dim]} 태그가 '{ma or ''}>{mi}'(으)로 바뀌어 빈 칸 확인을"
                f" 반영하지 않습니다; 맞다면 검수_ 칸에서 값을 선택하세요",
                "tag_changed",
            )
        )
        return None
    return ma or mi, mi


def _pass_group_decisions(ctx: _MergeContext, labels: _DimensionLabels) -> None:
    """Each 묶음's decisions pass the label applied to their own rows in ``labels``' dimension to
    the members the reviewer left alone; decisions that disagree pass nothing (``group_conflict``)."""
    for g, rows in ctx.decisions.items():
        found = sorted({(labels.major[i], labels.minor[i]) for i in rows if labels.applied[i]})
        if len(found) > 1:
            first = ctx.ids[rows[0]]
            shown = ", ".join(f"{x}>{y}" for x, y in found)
            ctx.tag_issues.append(
                ReviewIssue(
                    ctx.sheet_rows[first]["sheet_row"],
                    first,
                    COL_GROUP_APPLY,
                    ctx.raw_rows[first].get(COL_GROUP_APPLY, ""),
                    f"묶음 {g}의 결정이 {_DIM_KO[labels.dim]}에서 서로 다릅니다 ({shown}); 묶음에 반영하지 않습니다",
                    "group_conflict",
                )
            )
            continue
        if not found:
            continue
        a, b = found[0]
        for i in ctx.members[g]:
            if labels.applied[i] or ctx.own_edit[i]:
                continue  # the member's own outcome wins
            labels.apply(i, a, b, SOURCE_GROUP)
            ctx.group_applied[i] = True


def _reviewed_frame(
    tagged: pl.DataFrame,
    ctx: _MergeContext,
    cols: dict[str, list[Any]],
    dim_reviewed: Mapping[str, list[bool]],
    *,
    reviewed_at: str | None,
) -> pl.DataFrame:
    """:func:`merge_reviews`' output from the dimensions' label columns ``cols`` and applied
    flags: the review flags, memo and raw 검수_ cells added, the counts and the sorted issues
    written to ``ctx.stats``."""
    n, ids, raw_rows, stats = tagged.height, ctx.ids, ctx.raw_rows, ctx.stats
    is_reviewed = [any(dim_reviewed[d][i] for d in DIMENSIONS) for i in range(n)]
    stats.n_reviewed = sum(is_reviewed)
    stats.n_group_applied = sum(ctx.group_applied)
    stats.issues = sorted([*stats.issues, *ctx.tag_issues], key=lambda x: x.sheet_row)
    csrc = tagged["classify_source"].cast(pl.Utf8, strict=False).to_list()
    cols["classify_source"] = ["reviewed" if r else c for r, c in zip(is_reviewed, csrc)]
    cols["is_reviewed"] = is_reviewed
    for dim in DIMENSIONS:
        cols[f"{dim}_reviewed"] = dim_reviewed[dim]
    cols["review_memo"] = [raw_rows.get(v, {}).get(COL_MEMO, "") for v in ids]
    for c in _REVIEWER_LABEL_CELLS:
        cols[c] = [raw_rows.get(v, {}).get(c, "") for v in ids]
    flags = {"is_reviewed", *(f"{d}_reviewed" for d in DIMENSIONS)}
    series = [pl.Series(k, v, dtype=pl.Boolean if k in flags else pl.Utf8) for k, v in cols.items()]
    out = tagged.with_columns(series)
    base = [c for c in tagged.columns if c not in (*REVIEWED_EXTRA_COLUMNS, "reviewed_at")]
    out = out.select([*base, *REVIEWED_EXTRA_COLUMNS])
    if reviewed_at is not None:
        out = out.with_columns(
            pl.Series("reviewed_at", [reviewed_at if r else None for r in is_reviewed], dtype=pl.Utf8)
        )
    return out


def unknown_voc_id_issues(
    sheet: pl.DataFrame, known_ids: Collection[str], *, row_numbers: Sequence[int] | None = None
) -> list[ReviewIssue]:
    """The sheet rows whose ``voc_id`` is not among the month's tagged VOCs: a row a reviewer
    added, or a ``voc_id`` changed by hand. Nothing of such a row is applied (no tagged row
    matches it); this says so instead of dropping it silently.

    Parameters
    ----------
    sheet
        ``M × C`` review sheet as read back (needs ``voc_id``; nulls count as empty).
    known_ids
        Every ``voc_id`` of the month's tagged VOCs (all buildings).
    row_numbers
        Spreadsheet row numbers of ``sheet``'s rows; default data row ``i`` → ``i + 2``.

    Returns
    -------
    list[ReviewIssue]
        One ``unknown_voc_id`` issue per row with a non-empty ``voc_id`` (stripped) outside
        ``known_ids``, in sheet order (column ``voc_id``, value the cell). Rows without
        ``voc_id`` and formulas there are :func:`validate_reviews`' (``missing_voc_id``,
        ``formula``).

    Raises
    ------
    ReviewSheetError
        ``sheet`` has no ``voc_id`` column.
    """
    if COL_VOC_ID not in sheet.columns:
        raise ReviewSheetError(f"review sheet is missing column(s) {[COL_VOC_ID]}")
    known = {str(k).strip() for k in known_ids}
    ids = _as_text_frame(sheet.select(COL_VOC_ID))[COL_VOC_ID].to_list()
    out: list[ReviewIssue] = []
    for i, raw in enumerate(ids):
        vid = raw.strip()
        if not vid or vid in known or _formula_or_error(vid) is not None:
            continue
        row = int(row_numbers[i]) if row_numbers is not None else i + 2
        out.append(
            ReviewIssue(
                row,
                vid,
                COL_VOC_ID,
                raw,
                f"voc_id '{vid}'은(는) 이번 달 태그된 민원에 없습니다 (새로 추가한 행이거나 voc_id를 바꾼 행); "
                "이 행의 검수 내용은 반영되지 않습니다",
                "unknown_voc_id",
            )
        )
    return out


def _group_decisions(
    ids: Sequence[str], sheet_rows: Mapping[str, Mapping[str, Any]], raw_rows: Mapping[str, Mapping[str, str]]
) -> tuple[dict[str, list[int]], dict[str, list[int]], list[bool]]:
    """For the tagged rows (``ids``) matched to sheet rows: the members of each 묶음 (row
    indices), the decisions of each 묶음 (rows done with 묶음 적용 = Y) and whether each row has
    an edit of its own (:func:`_touched`)."""
    index = {vid: i for i, vid in enumerate(ids)}
    members: dict[str, list[int]] = {}
    decisions: dict[str, list[int]] = {}
    own_edit = [False] * len(ids)
    for vid, v in sheet_rows.items():
        i = index[vid]
        own_edit[i] = _touched(raw_rows[vid])
        if v["group"]:
            members.setdefault(v["group"], []).append(i)
            if v["group_apply"]:
                decisions.setdefault(v["group"], []).append(i)
    return members, decisions, own_edit


# --------------------------------------------------------------------------------------------
# a simulated reviewer


def simulate_review(
    sheet: pl.DataFrame,
    truth: pl.DataFrame,
    *,
    fraction: float = 1.0,
    seed: int = 0,
    taxonomy: Taxonomy | None = None,
) -> pl.DataFrame:
    """A simulated reviewer for demos and tests.

    Candidates are the sheet rows not already done whose ``voc_id`` has a row in ``truth``;
    ``round(fraction × candidates)`` of them are chosen at random (seeded). On each chosen row
    and dimension with a true label: where the model's tag (주제/작업유형 대분류+중분류) differs
    from it, the two 검수_ cells are set to the true label; where it matches they stay empty,
    unless the tag is a keyword guess (marked :data:`GUESS_SUFFIX`), which empty cells do not
    confirm: the true label is entered then too.
    Every chosen row is marked 검수완료 ``"Y"`` — so a dimension *without* a true label is
    thereby confirmed as the model tagged it (pass truth for every dimension you want judged).
    Rows already done and rows not chosen are returned unchanged.

    Parameters
    ----------
    sheet
        ``M × C`` review sheet (:data:`REVIEW_COLUMNS`).
    truth
        ``voc_id`` plus ``reviewed_subject_major``, ``reviewed_subject_minor``,
        ``reviewed_work_major``, ``reviewed_work_minor`` (missing columns and nulls: no true
        label; a minor without a major takes the minor as major, as ``voc.tagger.labels_of``).
    fraction
        Share of candidates reviewed, in [0, 1].
    seed
        Seed of the random choice.
    taxonomy
        When given, a true label whose minor sits under another *active* major (a superseded
        class after a reorganisation) is entered as that active label — what the dropdown
        offers — as ``voc.tagger.canonical_labels`` does.

    Returns
    -------
    pl.DataFrame
        The sheet with the same rows, order and columns (all ``Utf8``).

    Raises
    ------
    ValueError
        ``fraction`` outside [0, 1]; ``truth`` without ``voc_id``.
    ReviewSheetError
        ``sheet`` lacks a :data:`REVIEW_COLUMNS` column (other than :data:`ADDED_COLUMNS`).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    if "voc_id" not in truth.columns:
        raise ValueError("truth needs a 'voc_id' column")
    missing = [c for c in REVIEW_COLUMNS if c not in sheet.columns and c not in ADDED_COLUMNS]
    if missing:
        raise ReviewSheetError(f"review sheet is missing column(s) {missing}")
    df = _as_text_frame(sheet)
    active: dict[str, dict[str, tuple[str, str]]] = {
        dim: {r.minor: (r.major, r.minor) for r in taxonomy.rows_of(dim)} if taxonomy is not None else {}
        for dim in DIMENSIONS
    }
    true: dict[str, dict[str, tuple[str, str] | None]] = {}
    t = _as_text_frame(truth)
    for row in t.iter_rows(named=True):
        labels: dict[str, tuple[str, str] | None] = {}
        for dim in DIMENSIONS:
            a = row.get(f"reviewed_{dim}_major", "").strip()
            b = row.get(f"reviewed_{dim}_minor", "").strip()
            labels[dim] = active[dim].get(b, (a or b, b)) if b else None
        true.setdefault(row["voc_id"].strip(), labels)
    rows = list(df.iter_rows(named=True))
    candidates = [
        i for i, r in enumerate(rows) if not is_done(r[COL_DONE]) and r[COL_VOC_ID].strip() in true
    ]
    k = round(fraction * len(candidates))
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(candidates), size=k, replace=False).tolist()) if k else []
    for j in chosen:
        r = rows[candidates[j]]
        labels = true[r[COL_VOC_ID].strip()]
        for dim in DIMENSIONS:
            lab = labels[dim]
            if lab is None:
                continue
            (seen_a, guess_a), (seen_b, guess_b) = (split_guess(r[c]) for c in MODEL_TAG_COLUMNS[dim][:2])
            if guess_a or guess_b or (seen_a, seen_b) != lab:  # a keyword guess is never left to confirm
                ca, cb = REVIEWER_LABEL_COLUMNS[dim]
                r[ca], r[cb] = lab
        r[COL_DONE] = "Y"
    return pl.DataFrame(
        {c: [r[c] for r in rows] for c in df.columns}, schema={c: pl.Utf8 for c in df.columns}
    )
