"""Real-time tagging service (``voc serve``): a FastAPI app that tags a VOC the moment it is
registered.

Endpoints (JSON; every ``/v1/…`` path needs ``Authorization: Bearer <key>``):

* ``POST /v1/tag``: ``{title, request_contents, reply?, voc_id?, building_id?}`` → the tags
  (:class:`TagResult`). Without a reply (absent, null or blank) the version's
  **registration-time** tagger answers (title + request); with one, the **reply-aware** tagger.
  A version trained before variants existed has no registration tagger: its reply-aware tagger
  then reads title + request with an empty reply and the answer says ``variant:
  "reply_fallback"``. Texts go through exactly the batch path: :func:`voc.schema.validate_voc_frame`
  (control characters removed and flagged), :func:`voc.tagger.tag_frame` (``voc.text`` cleaning,
  the tagger, ``empty_text`` rows at confidence 0), so a text gets the same tags here as in
  the monthly run with the same tagger.
* ``POST /v1/tag:batch``: ``{"items": [TagRequest, …]}``, at most ``VOC_SERVE__MAX_BATCH`` (256).
* ``GET /healthz`` (the process answers), ``GET /readyz`` (a model is loaded: its version; 503
  before), ``GET /metrics`` (Prometheus text: requests by endpoint and status, latency histogram,
  VOCs tagged by variant, the served model version, reloads, write-through results). These three
  need no key (probes and scrapers).
* ``GET /review``, ``GET /review/{yyyymm}/{building_id}.xlsx``, ``POST /review/{yyyymm}``: the
  reviewers' upload page, only with ``VOC_SERVE__REVIEWER_KEYS`` (HTTP Basic, the reviewer key as
  password; :mod:`flows.service.review_upload`).
* ``POST /v1/admin/reload`` (admin key): read ``models/champion.json`` now and swap in the version
  it names.

Model reload: a thread reads ``{prefix}/models/champion.json`` every
``VOC_SERVE__RELOAD_INTERVAL_S`` seconds (:func:`flows.adapters.model_store.read_champion_retrying`: transient
storage errors retried within ``VOC_SERVE__CHAMPION_READ_DEADLINE_S``); when it names another
version, that version is downloaded, loaded and warmed up beside the one serving, then swapped in
by replacing one reference (:class:`ModelHolder`); it shares the served version's Kiwi analyser,
so a swap costs no second analyser. A request uses the version it started with, so nothing is
dropped or mixed during a swap. A failed poll keeps the current version and is retried
at the next interval (``/readyz`` shows the last error).

Limits and errors: no key or a wrong key → 401 (checked before the body is read; the header must
be exactly ``Bearer <b64token>`` of RFC 6750 §2.1, scheme case-insensitive, nothing around it;
keys are compared in constant time and never logged; the access log shows paths without query
strings); a body over ``VOC_SERVE__MAX_BODY_BYTES`` (64 KiB; batch:
``VOC_SERVE__MAX_BATCH_BODY_BYTES``) → 413; a missing field or a wrong type → 422 whose ``detail``
names the field (``loc``, with the item's index in a batch); a text with a NUL, a lone UTF-16
surrogate (``"\\ud800"``) or invalid UTF-8 bytes (:func:`text_problem`) → 422 naming the field;
an unsafe ``voc_id``/``building_id`` (a path, control characters: :func:`voc.schema.id_problem`)
→ 422; no model loaded yet → 503.

Write-through (``VOC_SERVE__WRITE_THROUGH=true`` with a PostgreSQL source): every tag with a
``voc_id`` is upserted into ``voc_classification`` by :meth:`flows.adapters.db.PostgresSource.write_tags`
with ``classify_source = realtime`` (registration-time tag) or ``realtime_reply`` (tagged with the
reply), so the priority rule keeps batch and reviewed rows (flows/adapters/db.py). A failed write does not
fail the request: the answer says ``write_through: "error"`` and the metric counts it.

Tagging runs on one worker thread per process (the CPU taggers are single-threaded; Kiwi and
scikit-learn are not shared across threads); run ``--workers`` processes for more cores.
"""

from __future__ import annotations

import codecs
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal

import anyio
import polars as pl
from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from config.settings import ServeSettings, VocSettings, get_settings
from flows.adapters.model_store import ModelVersion, champion_name, load_version_variants, read_champion_retrying
from flows.adapters.storage import Storage
from flows.resources import open_storage
from flows.storage_layout import new_run_id
from voc.months import KST
from voc.replies import tagger_reply_suggestions
from voc.schema import id_problem, validate_voc_frame
from voc.tagger import KiwiTagger, Tagger, frame_texts, tag_frame
from voc.tokenize import KiwiTokenizer

__all__ = [
    "TagRequest",
    "TagResult",
    "BatchRequest",
    "BatchResult",
    "ServeConfigError",
    "ErrorBody",
    "ValidationErrorBody",
    "BEARER",
    "error_responses",
    "ModelHolder",
    "ServeMetrics",
    "WriteThrough",
    "choose_variant",
    "tag_requests",
    "create_app",
    "create_app_from_env",
    "check_settings",
    "serve_forever",
    "REPLY_FALLBACK",
    "text_problem",
    "BEARER_CREDENTIALS",
    "PathOnlyAccessLog",
]

log = logging.getLogger("flows.service.app")

REPLY_FALLBACK = "reply_fallback"
"""``variant`` of an answer without a reply from a version that has no registration tagger: its
reply-aware tagger read title + request with an empty reply."""

CLASSIFY_SOURCE: dict[str, str] = {"reply": "realtime_reply", "registration": "realtime", REPLY_FALLBACK: "realtime"}
"""``voc_classification.classify_source`` of a write-through row, by variant (flows/adapters/db.py rule)."""

Variant = Literal["reply", "registration", "reply_fallback"]


class ServeConfigError(ValueError):
    """The service cannot start with these settings (no API key, write-through without PostgreSQL)."""


# --------------------------------------------------------------------------------------------
# request and response bodies


_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be a VOC text of the API, or None when it can.

    Refused: a NUL character (U+0000; PostgreSQL text cannot hold it) and a lone UTF-16 surrogate
    (U+D800–U+DFFF: not a Unicode scalar value, so not encodable as UTF-8; a JSON ``"\\ud800"``
    escape, or an invalid UTF-8 byte of the body, which :class:`_Utf8JsonRequest` reads as
    U+DC80–U+DCFF). Other control characters are accepted, removed and flagged (``control``) as in
    the batch path. The message names the character and its 0-based position, never the text.
    """
    m = _NOT_TEXT.search(value)
    if m is None:
        return None
    i, cp = m.start(), ord(m.group())
    if cp == 0:
        return f"contains a NUL character (U+0000) at position {i}"
    if 0xDC80 <= cp <= 0xDCFF:
        return (
            f"contains a lone surrogate U+{cp:04X} at position {i} "
            f"(the invalid UTF-8 byte 0x{cp - 0xDC00:02X}, or a JSON escape): not Unicode text"
        )
    return f"contains a lone UTF-16 surrogate U+{cp:04X} at position {i}: not Unicode text"


class TagRequest(BaseModel):
    """One VOC to tag. Texts are strings (``""`` allowed: tagged with the ``empty_text`` flag)
    without NUL or lone surrogates (:func:`text_problem`); ids are strings or integers (kept as
    text) and must be safe ids (:func:`voc.schema.id_problem`). Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    title: StrictStr = Field(description="VOC 제목")
    request_contents: StrictStr = Field(description="VOC 요청 내용")
    reply: StrictStr | None = Field(None, description="작업자 답변; absent/blank → the registration-time tagger")
    voc_id: StrictStr | StrictInt | None = Field(None, description="Id of the VOC; needed for write-through")
    building_id: StrictStr | StrictInt | None = Field(None, description="Site / building id (echoed back)")

    @field_validator("title", "request_contents", "reply", mode="after")
    @classmethod
    def _unicode_text(cls, v: str | None) -> str | None:
        problem = None if v is None else text_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v

    @field_validator("voc_id", "building_id", mode="after")
    @classmethod
    def _safe_id(cls, v: str | int | None) -> str | None:
        if v is None:
            return None
        s = str(v)
        problem = id_problem(s)
        if problem is not None:
            raise ValueError(f"not a safe id: {problem}")
        return s

    @property
    def has_reply(self) -> bool:
        return bool(self.reply and self.reply.strip())


class SuggestedReply(BaseModel):
    """A reply draft (:mod:`voc.replies`): the answer given to a similar reviewed training VOC,
    with dates, times, staff names and contact details masked as placeholders (``[날짜]``,
    ``[시각]``, ``[담당자]``, ``[전화번호]``, …); nothing is filled in. Offered only when the
    similarity reaches ``voc.replies.MIN_SIMILARITY``."""

    voc_id: str = Field(description="The reviewed training VOC whose reply this is")
    similarity: float = Field(description="Cosine similarity of that VOC to this one, 0–1 (model TF-IDF features)")
    subject: str | None = Field(description="Its reviewed subject, major>minor")
    draft: str = Field(description="Its reply with particulars masked as placeholders")

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "voc_id": "69354",
                "similarity": 0.62,
                "subject": "도시재생국>건축과",
                "draft": "구정업무 참여에 감사드리며 … [날짜]중으로 현장 확인 후 조치하겠습니다. 담당자: [담당자] ([전화번호])",
            }
        }
    )


class TagResult(BaseModel):
    """Tags of one VOC. ``*_confidence`` in [0, 1] (0 for ``empty_text``), null for a keyword
    guess; ``*_source`` is the method that produced the tag (``model`` or ``keyword``);
    ``*_estimated`` is true for a keyword guess (추정: taxonomy keywords, no trained model, so no
    confidence — :func:`present_guesses`); ``model_version`` =
    ``{kind}_{version}`` (the batch's ``model_version``); ``variant`` = the tagger that answered
    (``registration``, ``reply`` or ``reply_fallback``); ``flags`` as in the tagged CSV
    (``empty_text``, ``control``, ``html``, ``truncated``, …); ``write_through``: null when off,
    else ``written`` / ``kept_existing`` (the priority rule kept a better row) / ``submitted``
    (batch: see ``rows_written``) / ``no_voc_id`` / ``error``."""

    voc_id: str | None
    subject_major: str | None
    subject_minor: str | None
    subject_confidence: float | None = Field(
        description="Calibrated probability that the subject tag is right, 0–1 (0 for empty_text); "
        "null when subject_estimated (a keyword guess has no confidence)"
    )
    work_major: str | None
    work_minor: str | None
    work_confidence: float | None = Field(
        description="As subject_confidence, for the work type; null when work_estimated"
    )
    subject_source: str | None = Field(description="How the subject tag was made: model (a trained model) or keyword (a guess)")
    work_source: str | None = Field(description="How the work-type tag was made: model or keyword")
    subject_estimated: bool = Field(
        False, description="True when the subject tag is a keyword guess (추정, subject_source = keyword): show it as a guess"
    )
    work_estimated: bool = Field(False, description="True when the work-type tag is a keyword guess (추정, work_source = keyword)")
    model_version: str
    variant: Variant
    flags: list[str]
    urgent: bool = Field(
        False, description="True for a safety/service-critical VOC (누수, 화재·가스, 정전·단수, 승강기 갇힘, 구조 위험, 보안; "
        "voc.urgency text patterns on the title and request): route it at once"
    )
    write_through: str | None = None
    suggested_replies: list[SuggestedReply] = Field(
        default_factory=list,
        description="Up to 3 reply drafts from the most similar reviewed, replied training VOCs, best first "
        "(empty below the similarity threshold or for a model trained without replies)",
    )


class BatchRequest(BaseModel):
    """Up to ``VOC_SERVE__MAX_BATCH`` VOCs."""

    items: list[TagRequest]


class BatchResult(BaseModel):
    """Results in request order; ``rows_written``: rows write-through inserted or updated (null when
    write-through is off; rows the priority rule kept are not counted)."""

    results: list[TagResult]
    model_version: str
    rows_written: int | None = None


class ErrorBody(BaseModel):
    """An error answer (401, 413, 503): what went wrong, in words."""

    detail: str


class ValidationErrorBody(BaseModel):
    """A 422 answer: one entry per problem, ``loc`` naming the field (with the item's index in a
    batch), ``msg``, ``type`` and the offending ``input``."""

    detail: list[dict[str, Any]]


BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="`Authorization: Bearer <key>`: a key of VOC_SERVE__API_KEYS (the admin key for /v1/admin/…).",
)
"""The HTTP bearer security scheme the OpenAPI document declares for every ``/v1/…`` path.
Only documentation: :class:`_Gate` checks the key before FastAPI sees the request."""


def _documented(
    description: str, example: Any, *, model: type[BaseModel] = ErrorBody, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": model, "description": description, "content": {"application/json": {"example": {"detail": example}}}
    }
    if headers:
        out["headers"] = headers
    return out


def error_responses(body_limit_setting: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a tagging endpoint: 401, 413, 422 and 503 with an example each
    (the bodies :class:`_Gate`, the validation handler and ``served`` really send).
    ``body_limit_setting``: the setting that bounds the request body, named in the 413 text."""
    return {
        401: _documented(
            "No bearer key, or a wrong one (checked before the body is read).", "missing or wrong API key",
            headers={"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
        ),
        413: _documented(f"The request body is longer than {body_limit_setting} bytes.", "request body over 65536 bytes"),
        422: _documented(
            "A missing field, a wrong type, a text with a NUL or lone surrogate, an unsafe id, too many items.",
            [{"type": "missing", "loc": ["body", "title"], "msg": "Field required", "input": {"request_contents": "엘리베이터 고장"}}],
            model=ValidationErrorBody,
        ),
        503: _documented(
            "No model loaded yet (the service is starting or cannot read the champion).", "no model loaded yet (loading)",
            headers={"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}},
        ),
    }


# --------------------------------------------------------------------------------------------
# tagging (pure: no I/O)


def choose_variant(taggers: dict[str, Tagger], has_reply: bool) -> tuple[str, Tagger]:
    """The variant (and tagger) that answers a request.

    With a reply: ``reply`` (else ``registration``, for a version trained without the reply).
    Without: ``registration``, else :data:`REPLY_FALLBACK` (the reply-aware tagger, empty reply).

    Raises
    ------
    ValueError
        ``taggers`` is empty.
    """
    if not taggers:
        raise ValueError("a model version without taggers")
    if has_reply:
        name = "reply" if "reply" in taggers else "registration"
        return name, taggers[name]
    if "registration" in taggers:
        return "registration", taggers["registration"]
    return REPLY_FALLBACK, taggers["reply"]


def tag_requests(items: Sequence[TagRequest], taggers: dict[str, Tagger], *, run_id: str, today: str) -> list[dict[str, Any]]:
    """Tag N requests with a version's taggers through the batch path.

    Each request goes to :func:`choose_variant`'s tagger; per variant one frame of its requests
    (placeholder ids, ``created_at = today``, the reply only for the ``reply`` variant) passes
    :func:`voc.schema.validate_voc_frame` and :func:`voc.tagger.tag_frame`.

    Parameters
    ----------
    items
        N requests.
    taggers
        Variant name → tagger (:func:`voc.modelstore.load_variants`).
    run_id
        Written into the tagged frame (unused in the answer).
    today
        ``YYYY-MM-DD`` for ``created_at`` (tags do not depend on it).

    Returns
    -------
    list of dict
        N dicts in request order with the :class:`TagResult` fields (``write_through`` None).
    """
    groups: dict[str, list[int]] = {}
    chosen: dict[str, Tagger] = {}
    for i, it in enumerate(items):
        name, tagger = choose_variant(taggers, it.has_reply)
        groups.setdefault(name, []).append(i)
        chosen[name] = tagger
    out: list[dict[str, Any]] = [{} for _ in items]
    for name, idx in groups.items():
        frame = validate_voc_frame(
            pl.DataFrame(
                {
                    "voc_id": [f"r{i}" for i in idx],
                    "building_id": ["serve"] * len(idx),
                    "building_name": [""] * len(idx),
                    "created_at": [today] * len(idx),
                    "title": [items[i].title for i in idx],
                    "request_contents": [items[i].request_contents for i in idx],
                    "reply": [(items[i].reply or "") if name == "reply" else "" for i in idx],
                },
                schema={c: pl.Utf8 for c in ("voc_id", "building_id", "building_name", "created_at", "title", "request_contents", "reply")},
            )
        )
        tagged = tag_frame(frame, chosen[name], run_id=run_id, classify_source=CLASSIFY_SOURCE[name])
        drafts = tagger_reply_suggestions(chosen[name], frame_texts(frame, use_reply=chosen[name].use_reply)[0])
        for i, row, sugg in zip(idx, tagged.iter_rows(named=True), drafts):
            out[i] = {
                "voc_id": items[i].voc_id,
                **{
                    k: row[k]
                    for k in (
                        "subject_major", "subject_minor", "subject_confidence", "work_major", "work_minor",
                        "work_confidence", "subject_source", "work_source", "model_version",
                    )
                },
                "variant": name,
                "flags": [f for f in (row["flags"] or "").split(";") if f],
                "urgent": bool(row.get("urgent")),
                "write_through": None,
                "suggested_replies": [d.to_dict() for d in sugg],
            }
    return out


GUESS_SOURCE = "keyword"
"""``{dim}_source`` of a keyword guess (추정): the taxonomy's keyword scorer, not a trained model."""


def present_guesses(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` (a :func:`tag_requests` dict) as the API answers it: per dimension,
    ``{dim}_estimated`` = whether its tag is a keyword guess (``{dim}_source == "keyword"``) and,
    for a guess, ``{dim}_confidence`` = None — a keyword score is no probability and must not be
    read as one. ``{dim}_source`` is kept. Changes and returns ``result``; write-through has
    already stored the batch path's values (:class:`WriteThrough`)."""
    for dim in ("subject", "work"):
        guess = result.get(f"{dim}_source") == GUESS_SOURCE
        result[f"{dim}_estimated"] = guess
        if guess:
            result[f"{dim}_confidence"] = None
    return result


# --------------------------------------------------------------------------------------------
# the model being served, and its reload


def _kiwi_tokenizers(taggers: dict[str, Tagger]) -> dict[int, KiwiTokenizer]:
    """The Kiwi tokenizers of a version's taggers (:class:`voc.tagger.KiwiTagger`), by ``min_noun_len``."""
    out: dict[int, KiwiTokenizer] = {}
    for tagger in taggers.values():
        if isinstance(tagger, KiwiTagger):
            out.setdefault(tagger.kiwi_tokenizer.min_noun_len, tagger.kiwi_tokenizer)
    return out


def _prepare_for_serving(taggers: dict[str, Tagger], *, reuse: dict[int, KiwiTokenizer], lock: threading.Lock) -> None:
    """Make a freshly loaded version ready to answer.

    Its taggers share one Kiwi analyser per ``min_noun_len`` (Kiwi's model takes ~0.4 GB per
    instance): the served version's (``reuse``) when there is one, so a swap builds no second
    analyser; else the first tagger's, set up without a per-text cache (training saves taggers
    with a 200,000-text cache that would grow with every request) and single-threaded (a process
    tags on one thread; more cores = more ``--workers``). Then one tagging call per tagger, under
    ``lock`` (the analyser may be serving requests), so that the first request pays for nothing.
    Only the analyser of a :class:`voc.tagger.KiwiTagger` (``kiwi_tokenizer``) is replaced: it is
    the only tokenizer ``VOCTagger.tag`` uses.
    """
    pool = dict(reuse)
    for tagger in taggers.values():
        if not isinstance(tagger, KiwiTagger):
            continue
        tok = tagger.kiwi_tokenizer
        if tok.min_noun_len in pool:
            tagger.kiwi_tokenizer = pool[tok.min_noun_len]
            continue
        tok.cache_size = 0
        tok._cache.clear()
        if tok._kiwi is None:
            tok.num_workers = 0  # Kiwi on the calling thread
        pool[tok.min_noun_len] = tok
    for tagger in taggers.values():
        with lock:
            tagger.tag(["엘리베이터 고장 신고합니다"])


@dataclass(frozen=True)
class Served:
    """A loaded model version and when it was swapped in (ISO, KST)."""

    version: ModelVersion
    loaded_at: str


class ModelHolder:
    """The model version being served, swapped atomically.

    :meth:`current` returns one immutable :class:`Served`; a request reads it once and tags with
    it, whatever a concurrent swap does. :meth:`check` (the poller and the admin endpoint; one at
    a time) reads ``champion.json`` and, when it names another version, loads and warms it
    up *before* replacing the reference.
    """

    def __init__(self, settings: VocSettings, storage: Storage, *, on_swap: Callable[[Served | None, Served], None] | None = None) -> None:
        self.settings = settings
        self.storage = storage
        self._on_swap = on_swap
        self._served: Served | None = None
        self._check_lock = threading.Lock()
        self._tag_lock = threading.Lock()
        self.last_poll_at: str | None = None
        self.last_error: str | None = None

    def current(self) -> Served | None:
        return self._served

    def tag(self, items: Sequence[TagRequest], served: Served, *, run_id: str, today: str) -> list[dict[str, Any]]:
        """:func:`tag_requests` with ``served``'s taggers, one call at a time per process (the
        Kiwi analyser and the models are not shared between threads)."""
        with self._tag_lock:
            return tag_requests(items, served.version.taggers, run_id=run_id, today=today)

    def check(self) -> dict[str, Any]:
        """Read the champion pointer and swap in the version it names when it differs.

        Returns
        -------
        dict
            ``result`` (``swapped``, ``unchanged`` or ``no_champion``), ``model_version`` (now
            served, or None) and ``previous``.

        Raises
        ------
        Exception
            Whatever reading the pointer or loading the version raised (the served version
            stays); recorded in :attr:`last_error`.
        """
        with self._check_lock:
            self.last_poll_at = datetime.now(KST).isoformat(timespec="seconds")
            before = self._served
            try:
                info = read_champion_retrying(
                    self.storage, self.settings.prefix, deadline_s=self.settings.serve.champion_read_deadline_s
                )
                if info is None:
                    self.last_error = f"no champion under {self.settings.prefix}/models in {self.settings.storage}: run voc train"
                    return {"result": "no_champion", "model_version": before.version.name if before else None, "previous": None}
                name = champion_name(info)
                if before is not None and before.version.name == name:
                    self.last_error = None
                    return {"result": "unchanged", "model_version": name, "previous": name}
                version = load_version_variants(self.settings, self.storage, name, info=info)
                _prepare_for_serving(
                    version.taggers, reuse=_kiwi_tokenizers(before.version.taggers) if before else {}, lock=self._tag_lock
                )
            except Exception as e:
                self.last_error = f"{type(e).__name__}: {e}"
                raise
            served = Served(version, datetime.now(KST).isoformat(timespec="seconds"))
            self._served = served  # the swap: one reference assignment
            self.last_error = None
            if self._on_swap is not None:
                self._on_swap(before, served)
            log.info(
                "serving model %s (variants: %s)%s",
                name, ", ".join(version.taggers), f", replacing {before.version.name}" if before else "",
            )
            return {"result": "swapped", "model_version": name, "previous": before.version.name if before else None}


def _poll_forever(holder: ModelHolder, interval_s: float, stop: threading.Event, metrics: ServeMetrics) -> None:
    """Check at once, then every ``interval_s`` seconds until ``stop`` is set. A failed check is
    retried at the next interval and logged in one line when its message differs from the last
    one logged (a storage down for an hour is one warning, not 120)."""
    last_logged: str | None = None
    while True:
        message = None
        try:
            res = holder.check()
            metrics.reloads.labels(result=res["result"]).inc()
            if res["result"] == "no_champion":
                message = holder.last_error
        except Exception as e:  # noqa: BLE001 - the poller must outlive a bad poll
            metrics.reloads.labels(result="error").inc()
            served = holder.current()
            message = f"champion check failed ({type(e).__name__}: {e}); serving {served.version.name if served else 'nothing'}"
        if message is not None and message != last_logged:
            log.warning("%s", message)
        last_logged = message
        if stop.wait(interval_s):
            return


# --------------------------------------------------------------------------------------------
# metrics


_ENDPOINTS = ("/v1/tag", "/v1/tag:batch", "/v1/admin/reload", "/healthz", "/readyz", "/metrics")


class ServeMetrics:
    """The service's Prometheus metrics, in a registry of their own (one per app).

    With ``PROMETHEUS_MULTIPROC_DIR`` set (``voc serve --workers N`` sets it), :meth:`render`
    aggregates every worker process (prometheus-client's multiprocess mode)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "voc_serve_requests", "HTTP requests by endpoint, method and status code", ["endpoint", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "voc_serve_request_duration_seconds",
            "Seconds from receiving a request to the end of its response, by endpoint",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.tagged = Counter("voc_serve_tagged_vocs", "VOCs tagged, by variant", ["variant"], registry=r)
        self.model_info = Gauge(
            "voc_serve_model_info", "The model version being served (1) and earlier ones (0)", ["model_version", "variants"],
            registry=r, multiprocess_mode="max",
        )
        self.reloads = Counter(
            "voc_serve_model_checks", "Champion checks by result (swapped, unchanged, no_champion, error)", ["result"], registry=r
        )
        self.writes = Counter("voc_serve_write_through", "Write-through upserts by result", ["result"], registry=r)

    def on_swap(self, before: Served | None, after: Served) -> None:
        if before is not None:
            self.model_info.labels(model_version=before.version.name, variants=",".join(before.version.taggers)).set(0)
        self.model_info.labels(model_version=after.version.name, variants=",".join(after.version.taggers)).set(1)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            reg = CollectorRegistry()
            multiprocess.MultiProcessCollector(reg)
            return generate_latest(reg)
        return generate_latest(self.registry)


# --------------------------------------------------------------------------------------------
# write-through


class WriteThrough:
    """Upserts real-time tags into PostgreSQL (:meth:`flows.adapters.db.PostgresSource.write_tags`), with
    the service's shorter statement timeout. The DSN stays a secret (the source never shows it)."""

    def __init__(self, settings: VocSettings) -> None:
        from flows.adapters.db import PostgresSource

        db = settings.db.model_copy(
            update={
                "statement_timeout_s": settings.serve.db_statement_timeout_s,
                "connect_timeout_s": min(settings.db.connect_timeout_s, 5),
            }
        )
        self.source = PostgresSource.from_settings(settings.model_copy(update={"db": db}))

    def describe(self) -> str:
        return self.source.describe()

    def write(self, results: list[dict[str, Any]], *, run_id: str, metrics: ServeMetrics) -> tuple[list[str], int | None]:
        """Upsert every result that has a ``voc_id``, one call per classify_source.

        Returns
        -------
        tuple
            Per result its status (``no_voc_id``, ``error`` or ``submitted``) and the rows
            written (None when every call failed)."""
        statuses = ["no_voc_id" if r["voc_id"] is None else "submitted" for r in results]
        written: int | None = None
        by_source: dict[str, list[int]] = {}
        for i, r in enumerate(results):
            if r["voc_id"] is not None:
                by_source.setdefault(CLASSIFY_SOURCE[r["variant"]], []).append(i)
        for source, idx in by_source.items():
            cols = (
                "voc_id", "subject_major", "subject_minor", "subject_confidence",
                "work_major", "work_minor", "work_confidence", "model_version",
            )
            frame = pl.DataFrame(
                {**{c: [results[i][c] for i in idx] for c in cols}, "run_id": [run_id] * len(idx)},
                schema={**{c: pl.Float64 if c.endswith("_confidence") else pl.Utf8 for c in cols}, "run_id": pl.Utf8},
            )
            try:
                n = self.source.write_tags(frame, classify_source=source)
            except Exception as e:  # noqa: BLE001 - the tags are still answered; the failure is counted
                log.warning("write-through of %d tag(s) to %s failed: %s", len(idx), self.describe(), e)
                metrics.writes.labels(result="error").inc(len(idx))
                for i in idx:
                    statuses[i] = "error"
                continue
            written = (written or 0) + n
            metrics.writes.labels(result="written").inc(n)
            metrics.writes.labels(result="kept_existing").inc(len(idx) - n)
        return statuses, written

    def close(self) -> None:
        self.source.close()


# --------------------------------------------------------------------------------------------
# reading a JSON body: invalid UTF-8 and lone surrogates become 422s naming the field


_NOT_READ = object()


class _Utf8JsonRequest(Request):
    """A request whose JSON body is read as UTF-8 (RFC 8259 §8.1; a leading BOM is skipped) with
    ``surrogateescape``: an invalid byte becomes the lone surrogate U+DC80–U+DCFF *inside the
    string it was in*, so that :meth:`TagRequest._unicode_text` refuses it naming the field
    (``loc``) instead of the whole body failing with a 400 that names nothing. An invalid byte
    outside a string is a JSON syntax error (422 ``json_invalid`` with its offset)."""

    _parsed: Any = _NOT_READ
    """The parsed body once :meth:`json` ran (class default: not read yet)."""

    async def json(self) -> Any:
        if self._parsed is _NOT_READ:
            body = await self.body()
            if body.startswith(codecs.BOM_UTF8):
                body = body[len(codecs.BOM_UTF8):]
            self._parsed = self._json = json.loads(body.decode("utf-8", "surrogateescape"))  # _json: Starlette's cache too
        return self._parsed


class _Utf8JsonRoute(APIRoute):
    """Route class of the app: endpoints read bodies through :class:`_Utf8JsonRequest` (FastAPI's
    documented way to customise request parsing: a custom ``APIRoute.get_route_handler``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(_Utf8JsonRequest(request.scope, request.receive))

        return handle


def _encodable(value: Any) -> Any:
    """``value`` with every lone surrogate of its strings written as ``\\udXXX`` (lists, tuples,
    dicts walked), so that a 422 that echoes the offending input can be encoded as UTF-8."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8") if _NOT_TEXT.search(value) else value
    if isinstance(value, (list, tuple)):
        return [_encodable(v) for v in value]
    if isinstance(value, dict):
        return {k: _encodable(v) for k, v in value.items()}
    return value


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 (``{"detail": [{loc, msg, type, input}, …]}``) with inputs made encodable
    (:func:`_encodable`): the default handler fails with a 500 on a lone surrogate it echoes."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _encodable(jsonable_encoder(exc.errors()))}, status_code=422)


# --------------------------------------------------------------------------------------------
# the gate: metrics, authentication and body limit before FastAPI sees a request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def _json_error(send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


B64TOKEN = rb"[A-Za-z0-9\-._~+/]+=*"
"""RFC 6750 §2.1 ``b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="``."""

BEARER_CREDENTIALS = re.compile(rb"[Bb][Ee][Aa][Rr][Ee][Rr] +(" + B64TOKEN + rb")")
"""RFC 6750 §2.1 ``credentials = "Bearer" 1*SP b64token``, matched against the whole header value
(``fullmatch``: nothing before the scheme or after the token). The scheme is case-insensitive
(RFC 7235 §2.1 / RFC 9110 §11.1: ``bearer`` is accepted); one or more spaces (``1*SP``, not tabs)
separate it from the token."""


class _Gate:
    """ASGI middleware: per request, (1) counts and times it for :class:`ServeMetrics`;
    (2) on ``/v1/…`` checks the bearer key (admin key for ``/v1/admin/…``) before reading the
    body → 401; (3) reads the body up to the endpoint's limit → 413 beyond it, then hands it
    to the app."""

    def __init__(
        self, app: Any, *, keys: list[bytes], admin_key: bytes | None, limits: dict[str, int], default_limit: int,
        metrics: ServeMetrics,
    ) -> None:
        self.app = app
        self.keys = keys
        self.admin_key = admin_key
        self.limits = limits
        self.default_limit = default_limit
        self.metrics = metrics

    @staticmethod
    def _bearer(scope: Scope) -> bytes | None:
        """The b64token of the one ``Authorization`` header when it is exactly RFC 6750 §2.1
        ``credentials = "Bearer" 1*SP b64token`` (:data:`BEARER_CREDENTIALS`), else None
        (absent, repeated, another scheme, whitespace around the value, a character outside
        b64token)."""
        values = [v for k, v in scope.get("headers") or () if k == b"authorization"]
        if len(values) != 1:
            return None
        m = BEARER_CREDENTIALS.fullmatch(values[0])
        return m.group(1) if m else None

    def _authorised(self, token: bytes | None, admin: bool) -> bool:
        if token is None:
            return False
        allowed = [self.admin_key] if admin else [*self.keys, self.admin_key]
        ok = False
        digest = hashlib.sha256(token).digest()
        for key in allowed:  # every key compared, in constant time (SHA-256 digests: no length leak)
            if key is not None and hmac.compare_digest(digest, hashlib.sha256(key).digest()):
                ok = True
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in _ENDPOINTS else "other"
        method = scope.get("method", "GET")
        status = {"code": 500}
        t0 = time.perf_counter()

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            if path.startswith("/v1/"):
                admin = path.startswith("/v1/admin/")
                token = self._bearer(scope)
                if not self._authorised(token, admin):
                    client = (scope.get("client") or ("?",))[0]
                    log.info("401 %s %s from %s: %s", method, path, client, "no bearer key" if token is None else "wrong key")
                    await _json_error(
                        send_counted, 401, "missing or wrong API key" + (" (admin key needed)" if admin else ""),
                        [(b"www-authenticate", b"Bearer")],
                    )
                    return
                body = await self._read_body(receive, self.limits.get(path, self.default_limit))
                if body is None:
                    await _json_error(
                        send_counted, 413,
                        f"request body over {self.limits.get(path, self.default_limit)} bytes",
                        [(b"connection", b"close")],
                    )
                    return
                delivered = False

                async def replay() -> Message:
                    nonlocal delivered
                    if not delivered:
                        delivered = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await receive()

                await self.app(scope, replay, send_counted)
            else:
                await self.app(scope, receive, send_counted)
        finally:
            self.metrics.requests.labels(endpoint=endpoint, method=method, status=str(status["code"])).inc()
            self.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - t0)

    @staticmethod
    async def _read_body(receive: Receive, limit: int) -> bytes | None:
        """The whole body, or None as soon as it exceeds ``limit`` bytes (a declared
        Content-Length is not trusted: the bytes are counted)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"") or b""
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


# --------------------------------------------------------------------------------------------
# the app


def create_app(settings: VocSettings, *, storage: Storage | None = None) -> FastAPI:
    """The FastAPI app of ``voc serve``.

    Parameters
    ----------
    settings
        ``settings.serve`` (:class:`config.settings.ServeSettings`) for keys, limits, polling and
        write-through; ``storage``/``env`` for where the champion lives; ``db`` for write-through.
    storage
        Overrides ``open_storage(settings)`` (tests).

    Raises
    ------
    ServeConfigError
        No API key; write-through asked without a PostgreSQL source.
    """
    check_settings(settings)
    access = logging.getLogger("uvicorn.access")  # also when uvicorn runs the app with its own log config
    if not any(isinstance(f, PathOnlyAccessLog) for f in access.filters):
        access.addFilter(PathOnlyAccessLog())
    conf = settings.serve
    keys = [k.get_secret_value().encode() for k in conf.api_keys if k.get_secret_value().strip()]
    admin_key = conf.admin_key.get_secret_value().encode() if conf.admin_key and conf.admin_key.get_secret_value().strip() else None
    metrics = ServeMetrics()
    holder = ModelHolder(settings, storage if storage is not None else open_storage(settings), on_swap=metrics.on_swap)
    writer = WriteThrough(settings) if conf.write_through else None

    # /docs and /redoc load Swagger UI and ReDoc from the app itself (fastapi-offline's bundled
    # assets under /static-offline-docs): they work on a network without a CDN
    app = FastAPIOffline(
        title="voc real-time tagging",
        description="Tags a VOC (subject and work type) the moment it is registered.",
        lifespan=_lifespan(settings, holder, writer, metrics),
    )
    app.router.route_class = _Utf8JsonRoute  # before the routes below are added
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.state.holder = holder
    app.state.metrics = metrics
    _add_tag_routes(app, conf, holder, writer, metrics, run_id=new_run_id("serve"))
    _add_operator_routes(app, holder, metrics)
    if conf.reviewer_buildings():  # the reviewers' upload page (flows/service/review_upload.py); absent (404) without keys
        from flows.service.review_upload import review_router

        app.include_router(review_router(settings))

    app.add_middleware(
        _Gate,
        keys=keys,
        admin_key=admin_key,
        limits={"/v1/tag": conf.max_body_bytes, "/v1/tag:batch": conf.max_batch_body_bytes},
        default_limit=conf.max_body_bytes,
        metrics=metrics,
    )
    return app


def _lifespan(
    settings: VocSettings, holder: ModelHolder, writer: WriteThrough | None, metrics: ServeMetrics
) -> Callable[[FastAPI], Any]:
    """The app's lifespan: a tagging limiter of one thread, the champion poller
    (:func:`_poll_forever`, every ``VOC_SERVE__RELOAD_INTERVAL_S``) while the app runs, the
    write-through connections closed at the end."""
    conf = settings.serve

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.tag_limiter = anyio.CapacityLimiter(1)
        stop = threading.Event()
        poller = threading.Thread(
            target=_poll_forever, args=(holder, conf.reload_interval_s, stop, metrics), name="voc-champion-poller", daemon=True
        )
        poller.start()
        log.info(
            "voc serve: champion %s/models in %s, polled every %g s%s",
            settings.prefix, settings.storage, conf.reload_interval_s,
            f"; write-through to {writer.describe()}" if writer else "",
        )
        try:
            yield
        finally:
            stop.set()
            poller.join(timeout=5)
            if writer is not None:
                writer.close()

    return lifespan


def _served(holder: ModelHolder) -> Served:
    """The version being served; 503 (``Retry-After: 5``) before one is loaded."""
    s = holder.current()
    if s is None:
        raise HTTPException(503, detail=f"no model loaded yet ({holder.last_error or 'loading'})", headers={"Retry-After": "5"})
    return s


def _add_tag_routes(
    app: FastAPI, conf: ServeSettings, holder: ModelHolder, writer: WriteThrough | None, metrics: ServeMetrics, *, run_id: str
) -> None:
    """``POST /v1/tag`` and ``POST /v1/tag:batch`` (module docstring): tagging on the app's one
    worker thread, write-through when configured, keyword guesses presented (:func:`present_guesses`)."""

    async def tag(items: list[TagRequest]) -> tuple[Served, list[dict[str, Any]], int | None]:
        s = _served(holder)
        today = datetime.now(KST).date().isoformat()
        results = await anyio.to_thread.run_sync(
            partial(holder.tag, items, s, run_id=run_id, today=today), limiter=app.state.tag_limiter
        )
        for r in results:
            metrics.tagged.labels(variant=r["variant"]).inc()
        written = None
        if writer is not None:
            statuses, written = await anyio.to_thread.run_sync(partial(writer.write, results, run_id=run_id, metrics=metrics))
            for r, st in zip(results, statuses):
                r["write_through"] = st
        return s, [present_guesses(r) for r in results], written

    @app.post(
        "/v1/tag", response_model=TagResult, dependencies=[Security(BEARER)], responses=error_responses("VOC_SERVE__MAX_BODY_BYTES")
    )
    async def tag_one(req: TagRequest) -> dict[str, Any]:
        """Tag one VOC: the registration-time tagger without a reply, the reply-aware one with."""
        _, results, written = await tag([req])
        r = results[0]
        if r["write_through"] == "submitted":
            r["write_through"] = "written" if written else "kept_existing"
        return r

    @app.post(
        "/v1/tag:batch",
        response_model=BatchResult,
        dependencies=[Security(BEARER)],
        responses=error_responses("VOC_SERVE__MAX_BATCH_BODY_BYTES"),
    )
    async def tag_batch(req: BatchRequest) -> dict[str, Any]:
        """Tag up to ``max_batch`` VOCs (each by the rule of ``/v1/tag``), results in request order."""
        if len(req.items) > conf.max_batch:
            raise RequestValidationError(
                [{
                    "type": "too_long", "loc": ("body", "items"),
                    "msg": f"at most {conf.max_batch} VOCs per call, got {len(req.items)}", "input": None,
                }]
            )
        if not req.items:
            s = _served(holder)
            return {"results": [], "model_version": s.version.name, "rows_written": 0 if writer else None}
        s, results, written = await tag(req.items)
        return {"results": results, "model_version": results[0]["model_version"], "rows_written": written}


def _add_operator_routes(app: FastAPI, holder: ModelHolder, metrics: ServeMetrics) -> None:
    """``POST /v1/admin/reload`` (admin key), ``GET /healthz``, ``GET /readyz``, ``GET /metrics``."""

    @app.post("/v1/admin/reload", dependencies=[Security(BEARER)])
    async def admin_reload() -> dict[str, Any]:
        """Read ``models/champion.json`` now; swap in the version it names when it differs."""
        try:
            res = await anyio.to_thread.run_sync(holder.check)
        except Exception as e:  # noqa: BLE001 - reported to the caller; the served version stays
            metrics.reloads.labels(result="error").inc()
            still = holder.current()
            raise HTTPException(502, detail=f"reload failed ({type(e).__name__}: {e}); still serving "
                                f"{still.version.name if still else 'nothing'}") from None
        metrics.reloads.labels(result=res["result"]).inc()
        return res

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """200 with the served version once a model is loaded, else 503."""
        s = holder.current()
        body = {
            "ready": s is not None,
            "model_version": s.version.name if s else None,
            "variants": list(s.version.taggers) if s else [],
            "loaded_at": s.loaded_at if s else None,
            "last_poll_at": holder.last_poll_at,
            "last_error": holder.last_error,
        }
        return JSONResponse(body, status_code=200 if s is not None else 503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


def create_app_from_env() -> FastAPI:
    """:func:`create_app` with settings from the environment (uvicorn's ``--factory`` entry:
    ``flows.service.app:create_app_from_env``, one call per worker process)."""
    return create_app(get_settings())


def check_settings(settings: VocSettings) -> None:
    """Refuse settings the service cannot start with, before any process is started.

    Raises
    ------
    ServeConfigError
        No API key; write-through without a PostgreSQL source.
    """
    conf = settings.serve
    if not any(k.get_secret_value().strip() for k in conf.api_keys):
        raise ServeConfigError(
            "no API key: set VOC_SERVE__API_KEYS to a JSON list of bearer keys, e.g. '[\"<key>\"]' (env or .env)"
        )
    named = [(f"VOC_SERVE__API_KEYS[{i}]", k) for i, k in enumerate(conf.api_keys)] + [("VOC_SERVE__ADMIN_KEY", conf.admin_key)]
    for name, key in named:
        value = key.get_secret_value() if key is not None else ""
        if value.strip() and not re.fullmatch(B64TOKEN, value.encode("utf-8")):
            raise ServeConfigError(
                f"{name} (not shown) is not an RFC 6750 b64token (letters, digits, - . _ ~ + / and trailing =): "
                "no Authorization header could carry it"
            )
    if conf.write_through and not settings.source_is_postgres:
        raise ServeConfigError(
            "VOC_SERVE__WRITE_THROUGH=true needs a PostgreSQL source: VOC_SOURCE=postgres with VOC_DB__DSN "
            "(VOC_SOURCE is not a PostgreSQL source; value not shown)"
        )


class PathOnlyAccessLog(logging.Filter):
    """Logging filter of uvicorn's access log: the request target loses its query string
    (``GET /v1/tag?key=… HTTP/1.1`` → ``GET /v1/tag HTTP/1.1``), so that a key or other secret a
    client puts in the URL is never written to the log. uvicorn logs an access line as
    ``'%s - "%s %s HTTP/%s" %d'`` with ``(client, method, path?query, http_version, status)``;
    its path is percent-encoded, so the first ``?`` starts the query. Records of any other shape
    pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration plus this module's logger on its console handler (INFO);
    the access log shows paths without query strings (:class:`PathOnlyAccessLog`)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg["loggers"]["flows"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    cfg.setdefault("filters", {})["path_only"] = {"()": f"{__name__}.PathOnlyAccessLog"}
    cfg["handlers"]["access"]["filters"] = ["path_only"]
    cfg["loggers"]["uvicorn.access"]["filters"] = ["path_only"]
    return cfg


def serve_forever(
    *,
    host: str | None = None,
    port: int | None = None,
    storage: str | None = None,
    workers: int | None = None,
    reload_interval_s: float | None = None,
) -> None:
    """Run the service under uvicorn until SIGINT/SIGTERM (in-flight requests finish first).

    Arguments override ``VOC_SERVE__HOST``, ``VOC_SERVE__PORT``, ``VOC_STORAGE``,
    ``VOC_SERVE__WORKERS``, ``VOC_SERVE__RELOAD_INTERVAL_S``; they are passed to the worker
    processes through the environment (each builds its app with :func:`create_app_from_env`).
    With several workers, Prometheus metrics are aggregated across them through
    ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary directory unless set).

    Raises
    ------
    ServeConfigError
        :func:`check_settings`.
    """
    import tempfile

    import uvicorn

    if storage is not None:
        os.environ["VOC_STORAGE"] = storage
    if reload_interval_s is not None:
        os.environ["VOC_SERVE__RELOAD_INTERVAL_S"] = repr(float(reload_interval_s))
    settings = get_settings()
    check_settings(settings)
    conf = settings.serve
    n = workers if workers is not None else conf.workers
    metrics_dir = None
    if n > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="voc-serve-metrics-")
    try:
        uvicorn.run(
            "flows.service.app:create_app_from_env",
            factory=True,
            host=host or conf.host,
            port=port if port is not None else conf.port,
            workers=n,
            log_config=log_config(),
            timeout_graceful_shutdown=30,
        )
    finally:
        if metrics_dir is not None:
            import shutil

            shutil.rmtree(metrics_dir, ignore_errors=True)
