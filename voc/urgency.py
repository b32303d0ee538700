"""Urgent and repeated VOCs: what headquarters must see first.

Two row-level signals, appended to the tagged CSV (``voc.schema.TAGGED_COLUMNS``):

``urgent`` (bool)
    The VOC reports a safety- or service-critical situation: a water leak (누수, 물이 샘), fire,
    smoke or a gas smell (화재, 연기, 가스 냄새), a power or water outage (정전, 단수), people
    trapped in a lift (엘리베이터 갇힘), structural danger (균열, 붕괴, 싱크홀) or a security
    incident (침입, 도난). Found by a curated list of Korean text patterns (:data:`URGENT_PATTERNS`)
    on the VOC's cleaned title and request — not the office's reply, whose boilerplate
    (“누수 여부를 확인하겠습니다”) would mark routine posts. Precision first: a term is listed
    only in a wording that names the situation itself (``불이 나``, not ``불이`` which also starts
    ``불이익``/``불이행``). Measured on 200+ hand-labelled VOCs of the shipped sample:
    docs/model-quality.md "Urgent VOCs" (labels: ``tests/data/urgent_labels.csv``).

``repeat_of`` (str or null)
    The VOC is a near duplicate of an earlier VOC of the same building registered at most
    :data:`REPEAT_DAYS` days before it: the earlier VOC's ``voc_id`` (the most similar one; ties:
    the latest). Similarity = cosine of the character 2–3-gram TF-IDF of ``voc.groups`` (the
    model's history-fitted ``group_vectorizer`` when given, else one fitted on the texts compared)
    at least :data:`REPEAT_THRESHOLD`.

Pure: no I/O, no global state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "URGENT_PATTERNS",
    "NOT_PRESENT_AFTER",
    "NOT_PRESENT_BEFORE",
    "NOT_PRESENT_STRUCTURAL",
    "REPEAT_DAYS",
    "REPEAT_THRESHOLD",
    "REPEAT_MAX_ROWS",
    "urgent_reasons",
    "is_urgent",
    "urgent_flags",
    "repeat_of",
    "with_alert_columns",
    "urgent_rows",
]

URGENT_PATTERNS: dict[str, tuple[str, ...]] = {
    "누수": (
        r"누수", r"물이\s*(?:새고|샌다|샙니|샘|새서|떨어지고|흘러\s*나오|흘러내리고)", r"(?:물|빗물)(?:이|가)?\s*새어\s*(?:나오|들어오고)",
        r"빗물이\s*새", r"비가\s*새", r"천장에서\s*물", r"침수(?:되|됐|가\s*되)", r"배관\s*(?:파열|터졌)", r"수도관\s*(?:파열|터졌)",
    ),
    "화재·가스": (
        r"화재가\s*(?:났|발생했|발생하여)", r"불이\s*(?:났|나서|붙었)", r"연기가\s*(?:나고|났|피어|자욱하게\s*올라)",
        r"타는\s*냄새가", r"가스\s*(?:냄새가\s*(?:나|심)|누출|누설|가\s*새)",
    ),
    "정전·단수": (
        r"(?<![조개확수결규공내추예작])정전(?:이|되|돼|으로|사태)", r"(?<![가-힣])단수(?:가|되|돼|로)",
        r"전기가\s*(?:끊|나가|안\s*들어)", r"(?<!뜨거운\s)(?<!더운\s)물이\s*(?:안\s*나오|나오지\s*않)",
        r"누전(?:이|된|되|차단기|인듯|으로)", r"감전(?:됐|되었|사고)", r"스파크가",
    ),
    "승강기 갇힘": (r"(?:엘리베이터|엘레베이터|승강기)[^.?!\n]{0,30}갇", r"갇[^.?!\n]{0,30}(?:엘리베이터|엘레베이터|승강기)"),
    "구조 위험": (
        r"균열", r"붕괴(?!\s*사건)", r"무너(?:지|질|졌|져)", r"싱크홀", r"지반(?:이)?\s*(?:침하|내려\s*앉)",
        r"(?:추락|낙하)\s*(?:위험|사고)",
    ),
    "보안": (
        r"도난\s*(?:당했|당한|당하|사고|신고|피해)", r"도둑이\s*들(?:어|었)", r"(?:무단|외부인)\s*침입(?:했|하여|해서|한)",
        r"침입\s*흔적",
    ),
}
"""Korean text patterns per urgent category (Python ``re``; matched anywhere in the cleaned title +
request). Curated from the situations building-management headquarters treats as emergencies
(life safety, utilities, security), each written as the report of a present situation
(``정전이``, ``도둑이 들어``, ``화재가 났``) rather than the bare noun, which the sample mostly uses
for hypotheticals (``화재 위험``, ``화재시``, ``화재보험``) or inside other words (``조정전``,
``개정전``, ``시절도``). A match is further dropped when it is told as a hypothetical or as news
of elsewhere (:data:`NOT_PRESENT_AFTER`, :data:`NOT_PRESENT_BEFORE`); structural danger, whose report *is* the
risk (``붕괴 위험이 있습니다``), only drops list and administrative contexts
(:data:`NOT_PRESENT_STRUCTURAL`). Checked against 217 hand-labelled VOCs of the
shipped sample (docs/model-quality.md "Urgent VOCs")."""

NOT_PRESENT_AFTER = re.compile(
    r"^.{0,12}?(?:위험|우려|가능성|수\s*있|날\s*수|될\s*수|발생\s*시|시에|되면|하면|라도|같기|취급|뻔|줄\s*알|보험)"
)
"""Words after a match (within 12 characters) that make it a hypothetical, not a present report."""

NOT_PRESENT_BEFORE = re.compile(r"(?:(?:얼마\s*전|뉴스|제천|기억|양평동)[^.?!\n]{0,20}|(?:^|\s)이전\s*)$")
"""Words shortly before a match that make it news of another place or time (or a past event)."""

NOT_PRESENT_STRUCTURAL = re.compile(r"^.{0,15}?(?:범죄|악용|등등|뉴스|용도\s*변경)")
"""Words after a structural-danger match that make it one item of a list of fears or of an
administrative matter rather than a report of danger."""

_COMPILED = {cat: re.compile("|".join(f"(?:{p})" for p in pats)) for cat, pats in URGENT_PATTERNS.items()}

REPEAT_DAYS = 30
"""Look-back window of ``repeat_of`` in days (issue 24: "the previous 30 days")."""

REPEAT_MAX_ROWS = 20_000
"""Largest building (month plus look-back) compared pairwise; above it (a flood of posts, see
``voc.groups`` "Large cells") only identical cleaned texts count as repeats, so time and memory
stay linear in N."""

_REPEAT_CHUNK = 256
"""Rows of a building compared at a time (bounds the dense similarity block: 256 × N floats)."""

REPEAT_THRESHOLD = 0.5
"""Pairwise cosine similarity (character 2–3-gram TF-IDF) from which a VOC repeats an earlier one.
Higher than the average-linkage group cut (``voc.groups.GROUP_THRESHOLD``, 0.12, a campaign in
each writer's own words) and than the near-copy cut (0.30): a repeat is the same matter written
again, mostly in the same words."""


def urgent_reasons(text: str | None) -> list[str]:
    """Urgent categories (keys of :data:`URGENT_PATTERNS`, in that order) whose patterns occur in
    ``text``; ``[]`` for None/empty text."""
    if not text:
        return []
    return [cat for cat, rx in _COMPILED.items() if any(_present(text, m, cat) for m in rx.finditer(text))]


def _present(text: str, m: re.Match[str], category: str) -> bool:
    """Whether the match ``m`` reports a present situation (not a hypothetical or other news)."""
    if NOT_PRESENT_BEFORE.search(text[max(0, m.start() - 30):m.start()]):
        return False
    after = text[m.end():m.end() + 20]
    if category == "구조 위험":
        return not NOT_PRESENT_STRUCTURAL.search(after)
    return not NOT_PRESENT_AFTER.search(after)


def is_urgent(text: str | None) -> bool:
    """True when ``text`` reports any urgent situation (:func:`urgent_reasons`)."""
    return bool(urgent_reasons(text))


def _texts(frame: pl.DataFrame) -> list[str]:
    from voc.groups import group_texts

    return group_texts(frame)


def urgent_flags(frame: pl.DataFrame) -> pl.Series:
    """``urgent`` of each row of ``frame`` (``N × C`` with ``title`` and ``request_contents``):
    a Boolean Series named ``urgent`` of length N, from the cleaned title + request (not the reply).

    Raises
    ------
    ValueError
        ``title`` or ``request_contents`` missing.
    """
    return pl.Series("urgent", [is_urgent(t) for t in _texts(frame)], dtype=pl.Boolean)


def _dates(frame: pl.DataFrame) -> list[date | None]:
    s = frame["created_at"]
    if s.dtype == pl.Date:
        return s.to_list()
    if s.dtype == pl.Datetime:
        return [d.date() if d is not None else None for d in s.to_list()]
    return [date.fromisoformat(str(v)[:10]) if v else None for v in s.to_list()]


_REPEAT_COLUMNS = ["voc_id", "building_id", "created_at", "title", "request_contents"]
"""Columns ``repeat_of`` reads from ``frame`` and ``history``."""

_NO_DAY = -(10**9)
"""Day ordinal of a VOC without a date (never within ``days`` of a dated one)."""


@dataclass(frozen=True)
class _RepeatPool:
    """The VOCs ``repeat_of`` compares: the look-back history rows first (``offset`` of them),
    then the frame's rows, with their cleaned texts, ids, dates and rows per building."""

    texts: list[str]
    voc_ids: list[str]
    dates: list[date | None]
    offset: int
    by_building: dict[str, list[int]]


def _check_repeat_args(frame: pl.DataFrame, history: pl.DataFrame | None, days: int, threshold: float) -> None:
    """Raise ``ValueError`` for a bad ``days``/``threshold`` or a missing column (:func:`repeat_of`)."""
    if days < 0:
        raise ValueError(f"days must be >= 0, got {days!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    for name, f in (("frame", frame), ("history", history)):
        if f is None:
            continue
        missing = [c for c in _REPEAT_COLUMNS if c not in f.columns]
        if missing:
            raise ValueError(f"{name} is missing column(s) {missing}")


def _repeat_pool(frame: pl.DataFrame, history: pl.DataFrame | None, days: int) -> _RepeatPool | None:
    """History rows (not in ``frame``) dated from ``days`` before the frame's first date to its
    last, then the frame's rows; None when the frame is empty or has no date."""
    cur_dates = _dates(frame)
    known = [d for d in cur_dates if d is not None]
    if not known:
        return None
    cols = _REPEAT_COLUMNS
    past = frame.head(0).select(cols)
    if history is not None and history.height:
        ids = set(frame["voc_id"].cast(pl.Utf8).to_list())
        h = history.select(cols).filter(~pl.col("voc_id").cast(pl.Utf8).is_in(list(ids)))
        hd = _dates(h)
        lo = min(known) - timedelta(days=days)
        keep = [i for i, d in enumerate(hd) if d is not None and lo <= d <= max(known)]
        past = h[keep].with_columns(pl.col(c).cast(frame[c].dtype, strict=False) for c in cols)
    allf = pl.concat([past, frame.select(cols)], how="vertical_relaxed") if past.height else frame.select(cols)
    by_building: dict[str, list[int]] = {}
    for i, b in enumerate(allf["building_id"].to_list()):
        by_building.setdefault(str(b), []).append(i)
    return _RepeatPool(
        texts=_texts(allf),
        voc_ids=[str(v) for v in allf["voc_id"].to_list()],
        dates=_dates(past) + cur_dates,
        offset=past.height,
        by_building=by_building,
    )


def _identical_repeats(pool: _RepeatPool, rows: list[int], days: int, out: list[str | None]) -> None:
    """Fill ``out`` for one flooded building (over :data:`REPEAT_MAX_ROWS` rows): the latest
    earlier VOC with the identical cleaned text within ``days`` (linear time)."""
    dates, off = pool.dates, pool.offset
    last: dict[str, int] = {}
    for i in rows:
        key, di = pool.texts[i].strip(), dates[i]
        j = last.get(key)
        dj = dates[j] if j is not None else None
        if i >= off and key and j is not None and di is not None and dj is not None and 0 <= (di - dj).days <= days:
            out[i - off] = pool.voc_ids[j]
        if key and di is not None:
            last[key] = i


def _similar_repeats(pool: _RepeatPool, rows: list[int], X: Any, days: int, threshold: float,
                     out: list[str | None]) -> None:
    """Fill ``out`` for one building: the most similar earlier VOC (cosine of the rows of ``X``
    at least ``threshold``, within ``days``; ties: the latest), :data:`_REPEAT_CHUNK` rows at a time."""
    off = pool.offset
    idx = np.asarray(rows)
    Xb = X[idx]
    day_b = np.array([d.toordinal() if d is not None else _NO_DAY for d in (pool.dates[i] for i in rows)], dtype=np.int64)
    ok_b = np.asarray(Xb.getnnz(axis=1) > 0) & (day_b > _NO_DAY)
    for start in range(0, len(idx), _REPEAT_CHUNK):
        part = np.arange(start, min(start + _REPEAT_CHUNK, len(idx)))
        part = part[(idx[part] >= off) & ok_b[part]]
        if not part.size:
            continue
        S = (Xb[part] @ Xb.T).toarray()  # |part| × n_building cosine similarities
        gap = day_b[part][:, None] - day_b[None, :]
        earlier = np.arange(len(idx))[None, :] < part[:, None]  # history first, then frame order
        S[~(earlier & ok_b[None, :] & (gap >= 0) & (gap <= days) & (threshold - 1e-12 <= S))] = -1.0
        for a, p in enumerate(part):
            row = S[a]
            if row.max() < 0:
                continue
            best = int(np.flatnonzero(row >= row.max() - 1e-12)[-1])  # ties: the latest
            out[idx[p] - off] = pool.voc_ids[idx[best]]


def repeat_of(
    frame: pl.DataFrame,
    history: pl.DataFrame | None = None,
    *,
    vectorizer: Any | None = None,
    days: int = REPEAT_DAYS,
    threshold: float = REPEAT_THRESHOLD,
) -> pl.Series:
    """For each row of ``frame``, the ``voc_id`` of the earlier VOC of the same building it repeats,
    else null (module docstring).

    Parameters
    ----------
    frame
        ``N × C`` VOCs (``voc_id``, ``building_id``, ``created_at`` date or ISO text, ``title``,
        ``request_contents``), typically one building's month.
    history
        Earlier VOCs (same columns), or None; rows older than ``days`` before the frame's first
        date are ignored. Rows whose ``voc_id`` is also in ``frame`` are ignored.
    vectorizer
        A fitted character TF-IDF (``voc.groups.fit_group_vectorizer``; the model's
        ``group_vectorizer``), or None to fit one on the texts compared.
    days
        Largest gap in days between the VOC and the one it repeats (≥ 0; same day counts).
    threshold
        Smallest cosine similarity in [0, 1].

    Returns
    -------
    pl.Series
        ``repeat_of`` (Utf8), N values in row order. Only an *earlier* VOC counts: an earlier date,
        or the same date and a row before it in ``frame`` (history rows come first).

    Raises
    ------
    ValueError
        A required column is missing, ``days`` < 0 or ``threshold`` outside [0, 1].
    """
    from voc.groups import _features

    _check_repeat_args(frame, history, days, threshold)
    out: list[str | None] = [None] * frame.height
    pool = _repeat_pool(frame, history, days) if frame.height else None
    if pool is None:
        return pl.Series("repeat_of", out, dtype=pl.Utf8)
    small = {i for rows in pool.by_building.values() if len(rows) <= REPEAT_MAX_ROWS for i in rows}
    X = _features([t if i in small else "" for i, t in enumerate(pool.texts)], vectorizer) if small else None
    if X is None and small:
        return pl.Series("repeat_of", out, dtype=pl.Utf8)
    for rows in pool.by_building.values():
        if len(rows) > REPEAT_MAX_ROWS:  # a flood of posts: identical texts only, linear time
            _identical_repeats(pool, rows, days, out)
        else:
            _similar_repeats(pool, rows, X, days, threshold, out)
    return pl.Series("repeat_of", out, dtype=pl.Utf8)


def with_alert_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``urgent`` (Boolean) and ``repeat_of`` (Utf8) typed, added when missing —
    for tagged/reviewed CSVs written before these columns existed: ``urgent`` is then computed
    from the text when ``title``/``request_contents`` are there (else False), ``repeat_of`` null.
    A CSV's ``"true"``/``"false"`` text is read as Boolean."""
    adds: list[pl.Series | pl.Expr] = []
    if "urgent" not in frame.columns:
        if "title" in frame.columns and "request_contents" in frame.columns:
            adds.append(urgent_flags(frame))
        else:
            adds.append(pl.lit(False).alias("urgent"))
    elif frame["urgent"].dtype != pl.Boolean:
        adds.append(
            pl.col("urgent").cast(pl.Utf8).str.to_lowercase().is_in(["true", "1", "t", "yes"]).fill_null(False).alias("urgent")
        )
    if "repeat_of" not in frame.columns:
        adds.append(pl.lit(None, dtype=pl.Utf8).alias("repeat_of"))
    elif frame["repeat_of"].dtype != pl.Utf8:
        adds.append(pl.col("repeat_of").cast(pl.Utf8))
    return frame.with_columns(adds) if adds else frame


def urgent_rows(frame: pl.DataFrame, limit: int | None = None) -> list[dict[str, Any]]:
    """The urgent rows of ``frame`` (:func:`with_alert_columns` applied) as dicts ``voc_id``,
    ``created_at`` (str), ``title``, ``reasons`` (list of categories), ``repeat_of``; newest first,
    at most ``limit``. Texts are returned as stored: mask and escape them where shown."""
    f = with_alert_columns(frame).filter(pl.col("urgent"))
    texts = _texts(f) if f.height else []
    rows: list[dict[str, Any]] = [
        {
            "voc_id": str(r["voc_id"]),
            "created_at": str(r["created_at"])[:10] if r.get("created_at") is not None else "",
            "title": r.get("title") or "",
            "reasons": urgent_reasons(t),
            "repeat_of": r.get("repeat_of"),
        }
        for r, t in zip(f.iter_rows(named=True), texts)
    ]
    rows.sort(key=lambda d: d["created_at"], reverse=True)
    return rows[:limit] if limit is not None else rows

