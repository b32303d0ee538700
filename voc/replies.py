"""Reply drafts: the answers already given to the most similar reviewed VOCs.

For a new VOC, :func:`suggest_replies` takes its most similar reviewed training VOCs
(:func:`voc.evidence.similar_reviewed`: cosine similarity of the model's own TF-IDF features)
that carry a reply, keeps at most :data:`MAX_SUGGESTIONS` whose similarity reaches
:data:`MIN_SIMILARITY`, and offers each one's reply as a draft with its particulars masked
(:func:`mask_reply`). The best one (first) is the draft to start from; below the threshold
nothing is offered. A draft is the earlier reply with dates, times, names and personal contact
details replaced by placeholders; nothing is filled in or invented.

Pure: no I/O, no global state. The replies travel with the evidence pool
(``voc.evidence.ReviewedPool.replies``, set by ``voc.tagger.train_tagger``); a model trained
before that has none, and then no suggestion is made.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voc.privacy import mask_personal_details

__all__ = [
    "MIN_SIMILARITY",
    "MAX_SUGGESTIONS",
    "DATE_MASK",
    "TIME_MASK",
    "NAME_MASK",
    "SuggestedReply",
    "format_reply_draft",
    "mask_reply",
    "suggest_replies",
    "tagger_reply_suggestions",
]

MIN_SIMILARITY = 0.5
"""Cosine similarity (0–1) a reviewed VOC needs before its reply is offered. Measured on the
shipped sample (docs/model-quality.md, "Reply drafts"; ``benchmarks/reply_drafts.py``)."""

MAX_SUGGESTIONS = 3
"""Similar replied VOCs offered per VOC (issue 25: "up to 3")."""

DATE_MASK = "[날짜]"
TIME_MASK = "[시각]"
NAME_MASK = "[담당자]"

_TITLES = "주무관|팀장|과장|계장|국장|실장|소장|주사보|주사|반장|동장"
_NOT_NAME_END = "과국팀실소구시청부단터"  # a department or office, not a person: 교통행정과 주무관, 지원센터 소장
_DATE_PATTERNS = (
    r"(?<!\d)\d{4}\s*[.\-/년]\s*\d{1,2}\s*[.\-/월]\s*\d{1,2}(?:\s*일)?(?!\d)",  # 2019.11.3, 2019년 11월 3일
    r"(?<!\d)\d{2}\s*[.\-/]\s*\d{1,2}\s*[.\-/]\s*\d{1,2}(?!\d)(?!\s*\d)",  # 19.11.03
    r"(?<!\d)\d{4}\s*년\s*\d{1,2}\s*월",  # 2019년 11월
    r"(?<!\d)\d{1,2}\s*월\s*\d{1,2}\s*일",  # 11월 3일
    r"(?<!\d)\d{4}\s*년",  # 2019년
    r"(?<![\d.])\d{1,2}\s*월(?=\s*(?:중|말|초|경|까지|부터|에|이내|\s|[.,)]|$))",  # 10월중
    r"(?<!\d)\d{1,2}\s*일(?=\s*(?:까지|부터|경|에)\b)",  # 15일까지
)
_TIME_PATTERNS = (
    r"(?:오전|오후|새벽|저녁|밤)\s*\d{1,2}\s*시(?:\s*\d{1,2}\s*분)?",  # 오후 3시 30분
    r"(?<![\d.])\d{1,2}\s*:\s*\d{2}(?!\d)",  # 14:30
    r"(?<!\d)\d{1,2}\s*시\s*\d{1,2}\s*분",  # 3시 30분
)
_DATE_RE = re.compile("|".join(f"(?:{p})" for p in _DATE_PATTERNS))
_TIME_RE = re.compile("|".join(f"(?:{p})" for p in _TIME_PATTERNS))
# a 2–4-syllable Hangul word right before a title (홍길동 주무관, 홍길동 주무관에게) or after a role
# and a colon (담당자: 홍길동)
_NAME_BEFORE_TITLE = re.compile(rf"(?<![가-힣])([가-힣]{{1,3}}[^\s{_NOT_NAME_END}\W\d_])(\s*)(?=(?:{_TITLES}))")
_NAME_AFTER_ROLE = re.compile(
    r"((?:담당자|담당|주무관|작성자)\s*[:：]\s*)([가-힣]{2,4})(?![가-힣])"  # 담당자: 홍길동
    r"|((?:담당자|주무관|팀장)\s+)([가-힣]{2,3})(?=\s*(?:[,.)(\n]|$))"  # 주무관 홍길동, / 주무관 홍길동(
)


@dataclass(frozen=True, slots=True)
class SuggestedReply:
    """One offered reply: the reviewed ``voc_id`` it was written for, the cosine ``similarity``
    (0–1) of that VOC to the new one, its reviewed ``subject`` (``"major>minor"`` or None) and the
    masked ``draft``."""

    voc_id: str
    similarity: float
    subject: str | None
    draft: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (similarity rounded to 3 decimals)."""
        return {"voc_id": self.voc_id, "similarity": round(self.similarity, 3), "subject": self.subject, "draft": self.draft}


def format_reply_draft(suggestion: SuggestedReply | None) -> str:
    """The 답변 초안 text of one VOC (the review sheet's cell, the dashboard's draft): a first line
    naming the source, ``"[유사 0.72 · voc_id 123]"`` (cosine similarity, 2 decimals, and the
    reviewed VOC the reply was written for), then the masked draft; ``""`` for None."""
    if suggestion is None:
        return ""
    return f"[유사 {suggestion.similarity:.2f} · voc_id {suggestion.voc_id}]\n{suggestion.draft}"


def mask_reply(text: str) -> str:
    """An earlier reply with its particulars replaced by placeholders: personal contact details
    (:func:`voc.privacy.mask_personal_details`: ``[이메일]``, ``[주민번호]``, ``[전화번호]``), dates
    (``2019년 11월 3일``, ``2019.11.03``, ``10월중`` → :data:`DATE_MASK`), times (``오후 3시``,
    ``14:30`` → :data:`TIME_MASK`) and names of staff next to a title or role (``홍길동 주무관``,
    ``담당자: 홍길동`` → :data:`NAME_MASK`; a department before a title, ``교통행정과 주무관``, is
    kept). Office numbers without an area code (``760-7579``) are kept: they are the department's.
    Idempotent; nothing is added but placeholders."""
    out = mask_personal_details(text or "")
    out = _TIME_RE.sub(TIME_MASK, out)
    out = _DATE_RE.sub(DATE_MASK, out)
    out = _NAME_AFTER_ROLE.sub(lambda m: (m.group(1) or m.group(3)) + NAME_MASK, out)
    out = _NAME_BEFORE_TITLE.sub(lambda m: NAME_MASK + m.group(2), out)
    return out


def suggest_replies(
    neighbours: Sequence[Sequence[Any]],
    replies: dict[str, str | None],
    *,
    min_similarity: float = MIN_SIMILARITY,
    max_suggestions: int = MAX_SUGGESTIONS,
) -> list[list[SuggestedReply]]:
    """Reply suggestions for N VOCs from their neighbours.

    Parameters
    ----------
    neighbours
        N lists of :class:`voc.evidence.Neighbour`, most similar first.
    replies
        ``voc_id`` → the reply given to that reviewed VOC (None or blank: no reply).
    min_similarity
        Cosine similarity (0–1) a neighbour needs.
    max_suggestions
        At most this many per VOC (≥ 1).

    Returns
    -------
    list[list[SuggestedReply]]
        N lists, most similar first; empty where no replied neighbour reaches the threshold.

    Raises
    ------
    ValueError
        ``max_suggestions`` < 1 or ``min_similarity`` outside [0, 1].
    """
    if max_suggestions < 1:
        raise ValueError(f"max_suggestions must be >= 1, got {max_suggestions!r}")
    if not 0 <= min_similarity <= 1:
        raise ValueError(f"min_similarity must lie in [0, 1], got {min_similarity!r}")
    out: list[list[SuggestedReply]] = []
    for nbs in neighbours:
        row: list[SuggestedReply] = []
        for nb in nbs:
            reply = replies.get(nb.voc_id)
            if nb.similarity < min_similarity or not reply or not reply.strip():
                continue
            row.append(SuggestedReply(nb.voc_id, float(nb.similarity), nb.labels.get("subject"), mask_reply(reply.strip())))
            if len(row) == max_suggestions:
                break
        out.append(row)
    return out


def tagger_reply_suggestions(
    tagger: Any,
    texts: Sequence[str],
    *,
    tokens: Sequence[Sequence[str]] | None = None,
    ids: Sequence[Any] | None = None,
    min_similarity: float = MIN_SIMILARITY,
    max_suggestions: int = MAX_SUGGESTIONS,
) -> list[list[SuggestedReply]]:
    """:func:`suggest_replies` for N ``all_text`` strings against ``tagger.evidence_pool``
    (its neighbours among the 10 most similar; ``ids``: never suggest a VOC's own reply). N empty
    lists when the tagger's pool has no replies (a model trained before reply drafts, KoBERT,
    keyword-only)."""
    from voc.evidence import tagger_evidence

    # getattr: taggers without a pool (KoBERT, keyword-only, older pickles) and pools saved before
    # reply drafts (no ``replies``) both mean no draft
    pool = getattr(tagger, "evidence_pool", None)
    pool_replies = getattr(pool, "replies", None)
    if pool is None or not pool_replies:
        return [[] for _ in texts]
    neighbours = tagger_evidence(tagger, texts, ids=ids, tokens=tokens, k=max(10, max_suggestions))
    if neighbours is None:
        return [[] for _ in texts]
    return suggest_replies(neighbours, dict(zip(pool.ids, pool_replies)), min_similarity=min_similarity,
                           max_suggestions=max_suggestions)
