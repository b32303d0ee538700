"""Flow ``voc-monthly``: tag a month per building, write tagged CSVs and dashboards, sync the
review sheet (``full``, ``tagging-only``), or fold reviews back in (``refresh``). A ``full`` or
``tagging-only`` rerun of a month with finished reviews folds them in too (:func:`tag_building`),
so the dashboard, the month index and the counts keep the reviewers' work.

One task per building (``tag-building-95`` / ``refresh-building-95``), so one building's failure
leaves the others' outputs. Each building task only reads its inputs, calls the pure pipeline
(:mod:`voc.pipeline`) and writes what it returns; the tasks run on the task runner
``VOC_TASK_RUNNER`` names (:mod:`flows.runners`: threads, a local Dask cluster, or a remote one)
and receive plain data only — settings, frames, a :class:`flows.resources.ModelRef` — opening
their adapters and loading the model once per process (:mod:`flows.resources`). Every I/O step
retries with backoff; the month is parsed once (:class:`voc.months.Month`). The run ends with a
table artifact (rows and failures per building), link artifacts to the dashboards and a markdown
summary; if a building failed the flow run ends Failed and names it —
rerun with only those ``building_ids`` to complete the month.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE as NO_CACHE

from config.settings import VocSettings, get_settings
from flows import storage_layout as layout
from flows.adapters.model_store import require_model_or_keyword_opt_in
from flows.adapters.retries import IO_TASK, MODEL_IO_TASK, NESTED_IO_TASK
from flows.adapters.sources import TagSink, VocSource, buildings_of
from flows.adapters.storage import Storage, StorageError
from flows.outcome import fail_with_reason
from flows.resources import ModelRef, browser_link, resources
from flows.runners import describe_task_runner, make_task_runner
from flows.secrets_guard import SourceParam, guard_flow_parameters, refuse_dsn_password
from voc import pipeline
from voc.csvsafe import csv_bytes, read_csv_bytes
from voc.mdtext import md_code, md_escape, md_link_destination
from voc.months import KST, Month, check_not_future, previous_month
from voc.pipeline import DashboardContext, combine_history, history_from_source_rows
from voc.portfolio import index_extras
from voc.privacy import mask_personal_details
from voc.schema import building_sort_key
from voc.tagger import KiwiTagger, ReportsRuntime, Tagger

__all__ = ["voc_monthly", "tag_month", "refresh_month", "BuildingResult", "MonthlyRunError", "SAMPLE_CREDIT"]

HISTORY_MONTHS = 6
SAMPLE_CREDIT = "데이터 출처: 인천광역시 중구청 민원 게시판 (Incheon Jung-gu office complaint board, via 2hy03/Civil_Complaint)"


class MonthlyRunError(RuntimeError):
    """Raised at the end of a run in which at least one building failed (others completed)."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass
class BuildingResult:
    building_id: str
    building_name: str = ""
    rows: int = 0
    status: str = "ok"
    error: str = ""
    flagged: int = 0
    low_confidence: int = 0
    reviewed: int = 0
    review_issues: int = 0
    group_applied: int = 0
    retired_mapped: int = 0
    issue_groups: int = 0  # 주요 이슈: groups of 3+ near-duplicate VOCs
    estimated: dict[str, int] = field(default_factory=dict)
    """Per dimension, VOCs whose shown tag is a keyword guess (``{dim}_source == "keyword"``, 추정)."""
    drift: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    review_aids: dict[str, Any] = field(default_factory=dict, repr=False)
    """묶음 ids and evidence of the tagged rows, for the month's review sheet (not in the summary)."""


# --------------------------------------------------------------------------------------------
# I/O tasks (retried)


@task(name="store-object", **NESTED_IO_TASK, cache_policy=NO_CACHE)
def store_object(storage: Storage, key: str, data: bytes, content_type: str | None = None) -> str:
    return storage.write_bytes(key, data, content_type=content_type)


def _store(building_id: str, kind: str) -> Any:
    """:func:`store_object` whose task run reads ``store-{kind}-{building_id}`` in the UI
    (``store-tagged-95``, ``store-dashboard-95``) instead of ``store-object-55c``."""
    return store_object.with_options(task_run_name=f"store-{kind}-{building_id}")


@task(name="read-month", task_run_name="read-month-{month.yyyymm}", **IO_TASK, cache_policy=NO_CACHE)
def read_month(settings: VocSettings, month: Month, building_ids: list[str] | None) -> pl.DataFrame:
    return resources(settings).source.read_month(month, building_ids)


@task(name="resolve-model", task_run_name="resolve-model", **IO_TASK, cache_policy=NO_CACHE)
def resolve_model(settings: VocSettings) -> ModelRef:
    """The champion named by ``models/champion.json`` (keyword-only when none)."""
    return resources(settings).champion()


def _load_model(settings: VocSettings, model: ModelRef) -> Tagger:
    """The tagger of ``model``, downloaded and loaded once per process (flow process, worker)."""
    return resources(settings).tagger(model)


load_model = task(name="load-model", task_run_name="load-model-{model.label}", **MODEL_IO_TASK, cache_policy=NO_CACHE)(_load_model)
"""``load-model`` in the flow process (30 minutes per attempt)."""

load_model_in_building = task(name="load-model", **NESTED_IO_TASK, cache_policy=NO_CACHE)(_load_model)
"""``load-model`` inside a building task: no Prefect timeout, which cannot interrupt a task in a
worker thread (Prefect warns once per building instead); the storage's own per-call timeouts
bound each transfer."""


def _building_tagger(settings: VocSettings, model: ModelRef, building_id: str) -> Tagger:
    """The tagger for a building task: the process's loaded one, else ``load-model-{building_id}``
    (a task run only where the model is loaded: once per Dask worker; none with threads, whose
    flow process loaded it), so a month of N buildings does not add N task runs that do nothing."""
    cached = resources(settings).loaded_tagger(model)
    if cached is not None:
        return cached
    tagger: Tagger = load_model_in_building.with_options(task_run_name=f"load-model-{building_id}")(settings, model)
    return tagger


@task(name="read-history", task_run_name="read-history-{building_id}", **NESTED_IO_TASK, cache_policy=NO_CACHE)
def read_history(settings: VocSettings, month: Month, building_id: str) -> pl.DataFrame | None:
    """Earlier months of one building for the dashboard: the newest reviewed (else tagged) CSV
    of each of the last :data:`HISTORY_MONTHS` months in storage; months never run fall back to
    the source rows with their input labels (:func:`voc.pipeline.history_from_source_rows`)."""
    res = resources(settings)
    frames = []
    for m in month.before(HISTORY_MONTHS):
        ks = res.storage.list(layout.building_dir(settings.prefix, m, building_id))
        key = layout.latest_output(ks, "reviewed") or layout.latest_output(ks, "tagged")
        if key:
            frames.append(read_output_csv(res.storage, key))
            continue
        rows = res.source.read_month(m, [building_id])
        if rows.height:
            frames.append(history_from_source_rows(rows, m))
    return combine_history(frames)


def _csv_bytes(df: pl.DataFrame) -> bytes:
    """The tagged/reviewed CSV people open: text cells that a spreadsheet would run as a formula
    are escaped (:func:`voc.csvsafe.csv_bytes`, OWASP "CSV Injection")."""
    return csv_bytes(df)


def read_output_csv(storage: Storage, key: str) -> pl.DataFrame:
    """A tagged/reviewed CSV this system wrote, with dates and confidences typed."""
    return typed_output_csv(storage.read_bytes(key))


def typed_output_csv(data: bytes) -> pl.DataFrame:
    """The bytes of a tagged/reviewed CSV as :func:`read_output_csv` reads them back: dates and
    confidences typed, alert columns added to CSVs older than them."""
    df = read_csv_bytes(data)  # undoes the formula escape exactly
    casts = [pl.col("created_at").str.to_date("%Y-%m-%d", strict=False)]
    casts += [pl.col(c).cast(pl.Float64, strict=False) for c in ("subject_confidence", "work_confidence") if c in df.columns]
    from voc.urgency import with_alert_columns  # urgent/repeat_of: typed, added to CSVs older than them

    return with_alert_columns(df.with_columns(casts))


def _dashboard_context(settings: VocSettings, month: Month, building_id: str, building_name: str, run_id: str) -> DashboardContext:
    return DashboardContext(
        building_id=building_id,
        building_name=building_name,
        month=month,
        run_id=run_id,
        generated_at=datetime.now(KST).strftime("%Y-%m-%d %H:%M KST"),
        source_credit=SAMPLE_CREDIT if "incheon_junggu_minwon" in settings.source else None,
    )


@task(name="store-dashboard", **NESTED_IO_TASK, cache_policy=NO_CACHE)
def store_dashboard(storage: Storage, run_key: str, latest_key: str, html: bytes) -> dict[str, str]:
    """The dashboard under the run's key, then its copy under the month's latest key (one task
    run per building: a retry writes both again, the same bytes)."""
    return {
        "dashboard": storage.write_bytes(run_key, html, content_type="text/html"),
        "dashboard_latest": storage.write_bytes(latest_key, html, content_type="text/html"),
    }


def _store_dashboards(settings: VocSettings, storage: Storage, month: Month, building_id: str, run_id: str, html: bytes) -> dict[str, str]:
    """``store-dashboard-{building_id}``: the run's dashboard and the month's latest copy."""
    run_key = layout.dashboard_key(settings.prefix, month, building_id, run_id)
    latest_key = layout.latest_dashboard_key(settings.prefix, month, building_id)
    store = store_dashboard.with_options(task_run_name=f"store-dashboard-{building_id}")
    stored: dict[str, str] = store(storage, run_key, latest_key, html)
    return stored


# --------------------------------------------------------------------------------------------
# per-building tasks: read → voc.pipeline → write; only plain data in and out


@task(cache_policy=NO_CACHE)
def tag_building(
    settings: VocSettings,
    rows: pl.DataFrame,
    model: ModelRef,
    *,
    mode: str,
    month: Month,
    building_id: str,
    building_name: str,
    run_id: str,
    sheet: pl.DataFrame | None = None,
) -> BuildingResult:
    """Tag one building's month (:func:`voc.pipeline.tag_building`), write its tagged CSV, its
    tags to the database (PostgreSQL source) and, in ``full``, its dashboard.

    ``sheet``: the month's review sheet when a reviewer already finished rows of this building
    (:func:`has_done_reviews`; a rerun of a reviewed month), else None. Then the new tags are
    merged with it as a refresh does (:func:`voc.pipeline.refresh_building`): the tagged CSV
    stays model output, and a reviewed CSV, the reviewed labels in the database, the dashboard
    and the counts (reviewed, low confidence unreviewed) come from the merged rows, so a rerun
    never hides the reviewers' work."""
    logger = get_run_logger()
    res = resources(settings)
    tagger = _building_tagger(settings, model, building_id)
    history = read_history(settings, month, building_id) if mode == "full" else None
    ctx = _dashboard_context(settings, month, building_id, building_name, run_id) if mode == "full" else None
    threshold = settings.review.low_confidence_threshold
    merged = None
    with res.cpu_lock:  # per process: parallel buildings come from processes (Dask), not threads
        out = pipeline.tag_building(
            rows, tagger, run_id=run_id, history=history, dashboard=ctx if sheet is None else None, review_threshold=threshold,
            progress=lambda line: logger.info("building %s: %s", building_id, line),
        )
        if sheet is not None:
            merged = pipeline.refresh_building(out.frame, sheet, tagger, history=history, dashboard=ctx, review_threshold=threshold)
    shown = merged or out
    result = BuildingResult(
        building_id, building_name, rows=out.frame.height, flagged=out.flagged, low_confidence=shown.low_confidence,
        reviewed=shown.reviewed, review_issues=len(shown.review_issues), group_applied=shown.group_applied,
        retired_mapped=shown.retired_mapped, issue_groups=len(shown.issues) if ctx is not None else 0,
        estimated=estimated_counts(shown.frame), drift=shown.drift,
        review_aids={
            "groups": out.groups, "evidence": out.evidence, "reply_drafts": out.reply_drafts,
            "index": index_extras(shown.frame, shown.issues),
        },
    )
    tagged_csv = _csv_bytes(out.frame)
    result.review_aids.update(_month_aids(settings, tagger, tagged_csv))
    result.outputs["tagged"] = _store(building_id, "tagged")(
        res.storage, layout.tagged_key(settings.prefix, month, building_id, run_id), tagged_csv, "text/csv"
    )
    if isinstance(res.source, TagSink):  # PostgreSQL: the tags go back to voc_classification
        res.source.write_tags(out.frame, classify_source="batch", reviewed=False)
    if merged is not None:
        result.outputs["reviewed"] = _store(building_id, "reviewed")(
            res.storage, layout.reviewed_key(settings.prefix, month, building_id, run_id), _csv_bytes(merged.frame), "text/csv"
        )
        write_reviewed_tags(res.source, merged.frame)
        result.error = _review_issue_text(merged.review_issues)
    if shown.dashboard_html is not None:
        result.outputs.update(_store_dashboards(settings, res.storage, month, building_id, run_id, shown.dashboard_html))
    logger.info(
        "building %s: %d VOCs tagged (%d flagged)%s", building_id, out.frame.height, out.flagged,
        f", {shown.reviewed} reviewed kept from the review sheet" if merged is not None else "",
    )
    return result


def _month_aids(settings: VocSettings, tagger: Tagger, tagged_csv: bytes) -> dict[str, Any]:
    """What the month's steps after tagging need of one building, made in its task (in parallel on
    a Dask cluster) instead of in the flow process: ``tagged``, its tagged CSV as
    :func:`read_output_csv` reads it back (the review sheet's and the new topics' rows), and
    ``topic_nouns``, the Kiwi nouns :func:`month_new_topics` clusters
    (:func:`voc.new_topics.topic_nouns` with the tagger's tokenizer; None when the subject has no
    threshold, or the tagger no Kiwi tokenizer: then the flow makes them as before)."""
    from voc.new_topics import topic_nouns
    from voc.review import review_thresholds_of

    tagged = typed_output_csv(tagged_csv)
    nouns = None
    override = settings.review.low_confidence_threshold
    if isinstance(tagger, KiwiTagger) and review_thresholds_of(tagger, override=override).get("subject") is not None:
        with resources(settings).cpu_lock:
            nouns = topic_nouns(tagged, tagger.kiwi_tokenizer)
    return {"tagged": tagged, "topic_nouns": nouns}


def estimated_counts(frame: pl.DataFrame) -> dict[str, int]:
    """Per dimension (``subject``, ``work``), the rows of ``frame`` whose tag is a keyword guess
    (``{dim}_source == "keyword"``: 추정, no trained model behind it; a reviewer's label has
    source ``reviewer``). Dimensions without a ``_source`` column count 0."""
    return {
        d: int((frame[f"{d}_source"] == "keyword").sum()) if f"{d}_source" in frame.columns else 0
        for d in ("subject", "work")
    }


def has_done_reviews(sheet: pl.DataFrame | None, voc_ids: pl.Series) -> bool:
    """Whether a reviewer finished (검수완료 done, :func:`voc.review.is_done`) any row of the
    review ``sheet`` whose ``voc_id`` is among ``voc_ids`` (one building's VOCs)."""
    from voc.review import COL_DONE, COL_VOC_ID, is_done

    if sheet is None or not sheet.height or COL_VOC_ID not in sheet.columns or COL_DONE not in sheet.columns:
        return False
    ids = set(voc_ids.cast(pl.Utf8).to_list())
    return any(
        is_done(done) for vid, done in zip(sheet[COL_VOC_ID].cast(pl.Utf8).to_list(), sheet[COL_DONE].to_list())
        if vid is not None and vid.strip() in ids
    )


def _review_issue_text(issues: list[dict[str, Any]]) -> str:
    """The first 20 rejected review cells as one line (a building's ``error`` text)."""
    return "; ".join(f"row {i['sheet_row']} {i['column']}={i['value']!r}: {i['message']}" for i in issues[:20])


def write_reviewed_tags(source: VocSource, reviewed: pl.DataFrame) -> int:
    """The refresh's database write: the rows with at least one reviewed dimension, upserted with
    ``classify_source="reviewed"``. Per dimension, ``subject_reviewed`` / ``work_reviewed`` (from
    :func:`voc.review.merge_reviews`) decide what is a human label; the other dimension goes in as
    a machine value that never replaces a human one (:mod:`flows.adapters.db`). No-op for a source that
    is no :class:`flows.adapters.sources.TagSink` (CSV). Returns the rows written."""
    if not isinstance(source, TagSink):
        return 0
    done = reviewed.filter(pl.col("is_reviewed"))
    return int(source.write_tags(done, classify_source="reviewed")) if done.height else 0


@task(cache_policy=NO_CACHE)
def refresh_building(
    settings: VocSettings,
    sheet: pl.DataFrame | None,
    model: ModelRef,
    *,
    month: Month,
    building_id: str,
    run_id: str,
) -> BuildingResult:
    """Merge the review sheet into the newest tagged CSV of one building
    (:func:`voc.pipeline.refresh_building`) → reviewed CSV, database, dashboard (run file + the
    month's dashboard key overwritten)."""
    res = resources(settings)
    ks = res.storage.list(layout.building_dir(settings.prefix, month, building_id))
    key = layout.latest_output(ks, "tagged")
    if key is None:
        raise FileNotFoundError(f"building {building_id}: no tagged CSV for {month}; run mode=full first")
    tagged = read_output_csv(res.storage, key)
    name = (tagged["building_name"].drop_nulls().to_list() or [""])[0]
    tagger = _building_tagger(settings, model, building_id)
    history = read_history(settings, month, building_id)
    ctx = _dashboard_context(settings, month, building_id, name, run_id)
    with res.cpu_lock:
        out = pipeline.refresh_building(
            tagged, sheet, tagger, history=history, dashboard=ctx, review_threshold=settings.review.low_confidence_threshold
        )
    result = BuildingResult(
        building_id, name, rows=out.frame.height, reviewed=out.reviewed, review_issues=len(out.review_issues),
        group_applied=out.group_applied, retired_mapped=out.retired_mapped, issue_groups=len(out.issues),
        low_confidence=out.low_confidence, estimated=estimated_counts(out.frame), drift=out.drift,
        review_aids={"index": index_extras(out.frame, out.issues)},
    )
    result.outputs["reviewed"] = _store(building_id, "reviewed")(
        res.storage, layout.reviewed_key(settings.prefix, month, building_id, run_id), _csv_bytes(out.frame), "text/csv"
    )
    write_reviewed_tags(res.source, out.frame)
    if out.dashboard_html is not None:  # always rendered in a refresh
        result.outputs.update(_store_dashboards(settings, res.storage, month, building_id, run_id, out.dashboard_html))
    result.error = _review_issue_text(out.review_issues)
    return result


@dataclass(frozen=True)
class AuditStep:
    """The ``full`` run's 이전 라벨 점검 sheet: the champion whose label audit it shows."""

    model_name: str | None


@task(name="sync-review-sheet", task_run_name="sync-review-sheet-{month.yyyymm}", **IO_TASK, cache_policy=NO_CACHE)
def sync_review_sheet(
    settings: VocSettings,
    month: Month,
    tagged: pl.DataFrame,
    taxonomy: Any,
    thresholds: dict[str, float],
    groups: list[str | None] | None = None,
    evidence: list[Any] | None = None,
    reply_drafts: list[str] | None = None,
    audit: AuditStep | None = None,
) -> dict[str, Any]:
    """Upsert the month's rows into the review sheet (검토 우선 by ``thresholds`` per dimension,
    묶음 ``groups``, ``evidence`` and 답변 초안 ``reply_drafts``: N entries each, row order of
    ``tagged``; 긴급/반복 from its ``urgent``/``repeat_of``); reviewers' cells are never overwritten.
    With ``audit`` (the ``full`` run), the workbook's 이전 라벨 점검 sheet is updated in the same
    write (:func:`flows.adapters.label_review.audit_sheet_change`) and its outcome is the
    result's ``"label_audit"`` (``{"rows", "location", "model"}``, ``{"skipped": …}`` or
    ``{"error": …}``: the sheet is advice, so its failure never fails the review sheet)."""
    from flows.adapters.label_review import AuditSheetBackend
    from voc.review import build_review_rows, merge_into_sheet

    rows = build_review_rows(
        tagged, threshold=None, thresholds=thresholds, groups=groups, evidence=evidence, reply_drafts=reply_drafts
    )
    backend = resources(settings).review_backend
    change, label_audit = _audit_change(settings, backend, audit) if audit is not None else (None, None)
    # compare-and-swap: a reviewer's upload between the read and the write is merged, not lost
    def merge(existing: pl.DataFrame | None) -> Any:
        """The month's rows merged into the sheet as read (reviewer cells kept)."""
        return merge_into_sheet(existing, rows)

    if change is not None and isinstance(backend, AuditSheetBackend):
        where, stats = backend.update_month(month, merge, taxonomy, audit=change)
        label_audit = {**(label_audit or {}), "location": where}
    else:
        where, stats = backend.update_month(month, merge, taxonomy)
    out: dict[str, Any] = {"location": where, **asdict(stats)}
    if label_audit is not None:
        out["label_audit"] = label_audit
    return out


def _audit_change(settings: VocSettings, backend: Any, audit: AuditStep) -> tuple[Any, dict[str, Any]]:
    """``(change for update_month's audit= or None, the step's outcome so far)``; the change
    records its row count into that outcome, and an error in it leaves the sheet as it was."""
    from flows.adapters import label_review

    try:
        change, outcome = label_review.audit_sheet_change(resources(settings).storage, backend, settings.prefix, audit.model_name)
    except Exception as e:  # noqa: BLE001 - the sheet is advice: the review sheet is written without it
        return None, {"error": f"{type(e).__name__}: {e}"}
    if change is None:
        return None, outcome
    return guard_audit_change(change, outcome), outcome


def guard_audit_change(change: Any, outcome: dict[str, Any]) -> Any:
    """``change`` (an :data:`flows.adapters.review_backends.AuditChange` giving ``(rows, n)``)
    that records ``n`` as ``outcome["rows"]``; on an error it gives the sheet as read (none: no
    sheet) and records ``outcome["error"]``, so the review sheet is written all the same."""

    def guarded(existing: pl.DataFrame | None, buildings: frozenset[str] | None) -> tuple[pl.DataFrame, int]:
        """``change``; on an error, the sheet as read and the error recorded."""
        try:
            rows, n = change(existing, buildings)
        except Exception as e:  # noqa: BLE001 - advice only: keep the sheet, report the error
            outcome.pop("rows", None)
            outcome["error"] = f"{type(e).__name__}: {e}"
            return (existing if existing is not None else pl.DataFrame()), 0
        outcome["rows"] = n
        return rows, n

    return guarded


@task(name="read-review-sheet", task_run_name="read-review-sheet-{month.yyyymm}", **IO_TASK, cache_policy=NO_CACHE)
def read_review_sheet(settings: VocSettings, month: Month) -> pl.DataFrame | None:
    return resources(settings).review_backend.read_month(month)


@task(name="label-audit-sheet", task_run_name="label-audit-sheet-refresh-{month.yyyymm}", **IO_TASK, cache_policy=NO_CACHE)
def label_audit_sheet(settings: VocSettings, month: Month, taxonomy: Any, run_id: str) -> dict[str, Any]:
    """``refresh``: the reviewers' decisions on the workbook's 이전 라벨 점검 sheet become the month's
    label fixes (``{prefix}/label_fixes/{yyyymm}.csv``, :func:`flows.adapters.label_review.apply_audit_sheet`).
    ``full`` writes that sheet with the review sheet (``sync-review-sheet``, :class:`AuditStep`)."""
    from flows.adapters import label_review

    res = resources(settings)
    return label_review.apply_audit_sheet(
        res.storage, res.review_backend, settings.prefix, month, taxonomy, recorded_by=f"refresh {run_id}"
    )


@task(name="read-month-voc-ids", task_run_name="read-month-voc-ids", **IO_TASK, cache_policy=NO_CACHE)
def read_month_voc_ids(settings: VocSettings, month_keys: list[str]) -> list[str]:
    """Every ``voc_id`` of the month: the newest tagged CSV of each building in ``month_keys``
    (the month folder's listing)."""
    per_building: dict[str, list[str]] = {}
    for k in month_keys:
        if (p := layout.parse_output_key(k)) and p.kind == "tagged":
            per_building.setdefault(p.building_id, []).append(k)
    storage = resources(settings).storage
    ids: list[str] = []
    for ks in per_building.values():
        key = layout.latest_output(ks, "tagged")
        if key is not None:
            ids += read_output_csv(storage, key)["voc_id"].drop_nulls().to_list()
    return ids


def attach_unknown_rows(sheet: pl.DataFrame, known_ids: list[str], results: list[BuildingResult]) -> list[str]:
    """Report the review sheet's rows whose ``voc_id`` no tagged VOC of the month has (a row a
    reviewer added, a ``voc_id`` changed by hand: :func:`voc.review.unknown_voc_id_issues`).
    Each goes to the refreshed building its ``building_id`` cell names — counted in its
    ``review_issues`` and listed in its ``error`` text, like the other review issues — and the
    rest (no such building in this run) are returned as lines for the run summary."""
    from voc.review import COL_BUILDING_ID, unknown_voc_id_issues

    issues = unknown_voc_id_issues(sheet, known_ids)
    if not issues:
        return []
    cells = sheet[COL_BUILDING_ID].cast(pl.Utf8).fill_null("").to_list() if COL_BUILDING_ID in sheet.columns else []
    ok = {r.building_id: r for r in results if r.status == "ok"}
    orphans: list[str] = []
    for i in issues:
        line = f"row {i.sheet_row} {i.column}={i.value!r}: {i.message}"
        bid = cells[i.sheet_row - 2].strip() if cells else ""
        r = ok.get(bid)
        if r is None:
            orphans.append(line)
            continue
        r.review_issues += 1
        r.error = f"{r.error}; {line}" if r.error else line
    return orphans


# --------------------------------------------------------------------------------------------
# the flow


@flow(name="voc-monthly", log_prints=False)
@fail_with_reason(plain=(MonthlyRunError,))  # the run's Failed state message is the reason
def voc_monthly(
    mode: str = "full",
    month: str | int | None = None,
    building_ids: list[str] | None = None,
    storage: str | None = None,
    source: SourceParam = None,
    source_encoding: str | None = None,
) -> dict[str, Any]:
    """Run one month: :func:`tag_month` (``full``, ``tagging-only``) or :func:`refresh_month`.

    Parameters
    ----------
    mode
        ``full`` (tag → tagged CSV → dashboard → storage → review sheet), ``tagging-only``
        (tag → tagged CSV → review sheet) — both also write a reviewed CSV, merged with the
        review sheet, for each building a reviewer already worked on — or ``refresh`` (review sheet + newest tagged CSV →
        reviewed CSV → dashboard).
    month
        ``"YYYY-MM"`` (``202512`` accepted); empty → the previous month in KST.
    building_ids
        Only these buildings (default: every building with VOCs in the month; in refresh, every
        building with a tagged CSV for the month).
    storage, source, source_encoding
        Override ``VOC_STORAGE`` / ``VOC_SOURCE`` / ``VOC_SOURCE_ENCODING`` (a CSV source's
        encoding: utf-8, cp949, euc-kr).
        A ``source`` DSN with a password is refused (:mod:`flows.secrets_guard`): the password goes in
        ``VOC_DB__DSN`` or ``~/.pgpass``, never in a parameter.

    Returns
    -------
    dict
        The run summary (also published as artifacts).

    Raises
    ------
    MonthlyRunError
        When a building failed; the others' outputs are kept and the error names the failed ids.
        As a flow run (deployment, UI) the run ends Failed with that one line as its state message
        (:func:`flows.outcome.fail_with_reason`); a direct call raises it.
    """
    refuse_dsn_password(source, where="parameter 'source' of flow voc-monthly")
    logger = get_run_logger()
    if mode not in layout.MODES:
        raise ValueError(f"mode must be one of {layout.MODES}, got {mode!r}")
    m = check_not_future(month, datetime.now(KST)) if month not in (None, "") else Month(previous_month())
    ids = [str(b) for b in building_ids] if building_ids else None
    settings = get_settings(storage=storage, source=source, source_encoding=source_encoding)
    res = resources(settings)
    run_id = layout.new_run_id(mode)  # provisional: reserved (unique) once the run will write
    logger.info(
        "voc-monthly %s %s source=%s storage=%s runner=%s",
        mode, m, res.source.describe(), settings.storage, describe_task_runner(settings),
    )
    if mode == "refresh":
        return refresh_month(settings, m, ids, run_id, logger)
    return tag_month(settings, mode, m, ids, run_id, logger)


guard_flow_parameters(voc_monthly, "source")  # refused before a flow run (and its parameters) exists


@dataclass(frozen=True)
class _RunModel:
    """The model of a run: its reference (sent to the building tasks), the tagger loaded in the
    flow process (taxonomy, thresholds) and the summary fields that describe it."""

    ref: ModelRef
    tagger: Tagger
    extra: dict[str, Any]


def _run_model(settings: VocSettings, mode: str, logger: Any) -> _RunModel:
    """``resolve-model`` and ``load-model`` in the flow process (a missing model fails here); a
    tagging run without a trained model needs the keyword-only opt-in
    (:func:`flows.adapters.model_store.require_model_or_keyword_opt_in`)."""
    model = resolve_model(settings)
    tagger = load_model(settings, model)  # in this process too: taxonomy, threshold, and a missing model fails here
    if model.name is None and mode != "refresh":
        require_model_or_keyword_opt_in(settings, resources(settings).source)
    extra: dict[str, Any] = {"model": f"{tagger.kind}_{tagger.version}", "task_runner": describe_task_runner(settings)}
    if isinstance(tagger, ReportsRuntime):  # KoBERT: onnx-int8 on CPU workers, torch-bf16 … on GPU
        extra["model_runtime"] = tagger.active_runtime
        logger.info("model %s runs as %s", extra["model"], extra["model_runtime"])
    if model.name is None:
        extra["model_note"] = (
            "no trained model: tagged by taxonomy keywords only (no labelled history, or VOC_MODEL__ALLOW_KEYWORD_ONLY=true)"
        )
    return _RunModel(model, tagger, extra)


def tag_month(
    settings: VocSettings, mode: str, m: Month, ids: list[str] | None, run_id: str, logger: Any
) -> dict[str, Any]:
    """Modes ``full`` and ``tagging-only`` of :func:`voc_monthly`: read the month, tag each building
    (``tag-building-{id}``; a building a reviewer already worked on also merges the review sheet),
    sync the review sheet, then :func:`_finish_month`. ``run_id`` is the provisional id (the
    summary of an empty month); the run reserves its own once it will write.

    Raises
    ------
    MonthlyRunError
        A building failed, or the review sheet was not read or not updated.
    """
    vocs = read_month(settings, m, ids)
    if vocs.height == 0:
        return _no_vocs(mode, m, run_id, ids, logger)
    run = _run_model(settings, mode, logger)
    results: list[BuildingResult] = []
    submissions: list[tuple[str, Any, dict[str, Any]]] = []  # (building_id, task, parameters)
    sheet: pl.DataFrame | None = None  # the month's review sheet (a rerun keeps its reviews)
    sheet_error = ""
    run_id, unwritable = _reserve_run_id(settings, mode, m, logger)
    present = buildings_of(vocs)
    wanted = ids or [b for b, _ in present]
    names = dict(present)
    if not unwritable:
        try:  # a rerun of a reviewed month: the buildings merge the reviews as refresh does
            sheet = read_review_sheet(settings, m)
        except Exception as e:  # noqa: BLE001 - tag anyway; the run ends failed and says so
            sheet_error = f"review sheet not read ({type(e).__name__}: {e}): reviewed labels not shown; rerun"
            logger.error("%s", sheet_error)
    for bid, rows in _split_buildings(vocs, wanted):
        if unwritable:
            results.append(BuildingResult(bid, names.get(bid, ""), rows=rows.height, status="failed", error=unwritable))
            continue
        submissions.append((
            bid,
            tag_building.with_options(task_run_name=f"tag-building-{bid}"),
            {"settings": settings, "rows": rows, "model": run.ref, "mode": mode, "month": m,
             "building_id": bid, "building_name": names.get(bid, ""), "run_id": run_id,
             "sheet": sheet if has_done_reviews(sheet, rows["voc_id"]) else None},
        ))
    results += _run_buildings(settings, submissions)
    review = _sync_month_review(settings, m, run_id, results, run, logger, audit=AuditStep(run.ref.name) if mode == "full" else None)
    if sheet_error and not (review and "error" in review):
        review = {**(review or {}), "error": sheet_error}
    return _finish_month(settings, mode, m, run_id, results, review, run.extra, logger)


def _label_audit_step(settings: VocSettings, m: Month, run: _RunModel, run_id: str, logger: Any) -> None:
    """``label-audit-sheet`` (``refresh``: the workbook's 이전 라벨 점검 decisions become the month's
    label fixes) into ``run.extra["label_audit"]``; issues are logged, and a failure is reported
    there without failing the run (the sheet is advice; its decisions are read again next time).
    ``full`` writes the sheet with the review sheet (:class:`AuditStep`)."""
    try:
        run.extra["label_audit"] = label_audit_sheet(settings, m, run.tagger.taxonomy, run_id)
        for issue in run.extra["label_audit"].get("issues", []):
            logger.warning("이전 라벨 점검: %s", issue)
    except Exception as e:  # noqa: BLE001 - the sheet is advice: the run's outputs stand
        run.extra["label_audit"] = {"error": f"{type(e).__name__}: {e}"}
        logger.error("이전 라벨 점검 sheet: %s", run.extra["label_audit"]["error"])


def _sync_month_review(
    settings: VocSettings, m: Month, run_id: str, results: list[BuildingResult], run: _RunModel, logger: Any,
    *, audit: AuditStep | None = None,
) -> dict[str, Any] | None:
    """After tagging: the month's review sheet (``sync-review-sheet``, from the run's tagged CSVs
    and the buildings' review aids; with ``audit``, its 이전 라벨 점검 sheet in the same write,
    outcome in ``run.extra["label_audit"]``) and the new-topic candidates
    (``run.extra["new_topics"]``). Returns the sheet's stats, ``{"error": …}`` when the upload
    failed, None when no building completed."""
    ok = [r for r in results if r.status == "ok"]
    if not ok:
        return None
    from voc.review import review_thresholds_of

    storage = resources(settings).storage
    tagged_all = pl.concat([  # the tasks' own tagged rows; a result without them: read back
        aid if (aid := r.review_aids.get("tagged")) is not None
        else read_output_csv(storage, layout.tagged_key(settings.prefix, m, r.building_id, run_id))
        for r in ok
    ])
    nouns = None
    if all(r.review_aids.get("topic_nouns") is not None for r in ok):
        nouns = [n for r in ok for n in r.review_aids["topic_nouns"]]
    groups = [g for r in ok for g in r.review_aids.get("groups") or [None] * r.rows]
    evidence = None
    if all(r.review_aids.get("evidence") is not None for r in ok):
        evidence = [e for r in ok for e in r.review_aids["evidence"]]
    # 답변 초안: from the neighbour search the tagging made (the model's reviewed, replied VOCs)
    drafts = [d for r in ok for d in r.review_aids.get("reply_drafts") or [""] * r.rows]
    review: dict[str, Any] | None
    try:
        review = sync_review_sheet(
            settings, m, tagged_all, run.tagger.taxonomy,
            review_thresholds_of(run.tagger, override=settings.review.low_confidence_threshold), groups, evidence,
            drafts, audit,
        )
        if (label_audit := review.pop("label_audit", None)) is not None:
            run.extra["label_audit"] = label_audit
            if "error" in label_audit:
                logger.error("이전 라벨 점검 sheet: %s", label_audit["error"])
    except Exception as e:  # noqa: BLE001 - the tagged outputs stand; the summary reports the failed upload
        review = {"error": f"{type(e).__name__}: {e}"}
        logger.error("review sheet upload failed: %s", e)
    try:  # 신규 주제 후보 (voc.new_topics): shown for a person to judge, never a class by itself
        run.extra["new_topics"] = month_new_topics(run.tagger, tagged_all, settings.review.low_confidence_threshold, nouns)
    except Exception as e:  # noqa: BLE001 - a hint only: the run's outputs stand
        logger.warning("new-topic candidates not computed: %s: %s", type(e).__name__, e)
    return review


def refresh_month(settings: VocSettings, m: Month, ids: list[str] | None, run_id: str, logger: Any) -> dict[str, Any]:
    """Mode ``refresh`` of :func:`voc_monthly`: fold the review sheet into each building's newest
    tagged CSV (``refresh-building-{id}``; every building with one, or ``ids``), report sheet rows
    no tagged VOC has, then :func:`_finish_month`.

    Raises
    ------
    MonthlyRunError
        No tagged CSV for a month that has VOCs (run ``full`` first), or a building failed.
    """
    mode = "refresh"
    run = _run_model(settings, mode, logger)
    storage = resources(settings).storage
    sheet = read_review_sheet(settings, m)
    month_keys = storage.list(layout.month_dir(settings.prefix, m))
    have = sorted({p.building_id for k in month_keys if (p := layout.parse_output_key(k)) and p.kind == "tagged"}, key=building_sort_key)
    wanted = ids or have
    if not wanted:
        if read_month(settings, m, ids).height == 0:
            return _no_vocs(mode, m, run_id, ids, logger)
        raise MonthlyRunError(
            f"voc-monthly refresh {m}: no tagged CSV under {layout.month_dir(settings.prefix, m)} in {settings.storage}; "
            f"run mode=full for {m} first",
            _summarise(mode, m, run_id, [], None, run.extra),
        )
    run_id, unwritable = _reserve_run_id(settings, mode, m, logger)
    results: list[BuildingResult] = []
    submissions: list[tuple[str, Any, dict[str, Any]]] = []  # (building_id, task, parameters)
    for bid in wanted:
        if unwritable:
            results.append(BuildingResult(bid, status="failed", error=unwritable))
            continue
        submissions.append((
            bid,
            refresh_building.with_options(task_run_name=f"refresh-building-{bid}"),
            {"settings": settings, "sheet": sheet, "model": run.ref, "month": m, "building_id": bid, "run_id": run_id},
        ))
    results += _run_buildings(settings, submissions)
    if sheet is not None and sheet.height:
        orphans = attach_unknown_rows(sheet, read_month_voc_ids(settings, month_keys), results)
        if orphans:
            run.extra["review_sheet_issues"] = orphans
            logger.warning("review sheet: %d row(s) with a voc_id no tagged VOC of %s has: %s", len(orphans), m, "; ".join(orphans[:5]))
    if not unwritable:
        _label_audit_step(settings, m, run, run_id, logger)
    return _finish_month(settings, mode, m, run_id, results, None, run.extra, logger)


def _finish_month(
    settings: VocSettings,
    mode: str,
    m: Month,
    run_id: str,
    results: list[BuildingResult],
    review: dict[str, Any] | None,
    extra: dict[str, Any],
    logger: Any,
) -> dict[str, Any]:
    """The end of every mode: the month index and the portfolio (``full``, ``refresh``), the review
    sheet's link, the summary and its artifacts.

    Raises
    ------
    MonthlyRunError
        A building failed or ``review`` holds an error (the summary is attached).
    """
    if mode in ("full", "refresh") and any(r.status == "ok" for r in results):
        try:
            extra["index"] = update_month_index(
                settings, m, [_index_entry(settings.prefix, m, r) for r in results if r.status == "ok"], run_id,
                new_topics=extra.get("new_topics"),
            )
        except Exception as e:  # noqa: BLE001 - the buildings' outputs stand; the summary says what is missing
            extra["index_error"] = f"{type(e).__name__}: {e}"
            logger.error("month index not updated: %s", e)
        try:
            extra["portfolio"] = update_portfolio(settings, m, run_id)
        except Exception as e:  # noqa: BLE001 - as the month index: the summary says what is missing
            extra["portfolio_error"] = f"{type(e).__name__}: {e}"
            logger.error("portfolio page not updated: %s", e)
    try:  # where reviewers get the sheet: presigned (S3, VOC_REVIEW__LINK_EXPIRY_S), file:// or the Sheets URL
        from flows.links import review_link

        res = resources(settings)
        if link := review_link(settings, res.storage, m, backend=res.review_backend):
            extra["review_link"] = link
    except Exception as e:  # noqa: BLE001 - a missing link must not fail the run
        logger.warning("no review sheet link: %s: %s", type(e).__name__, e)
    summary = _summarise(mode, m, run_id, results, review, extra)
    _publish_artifacts(settings, summary, results)
    failed = [r.building_id for r in results if r.status != "ok"]
    if failed or (review and "error" in review):
        raise MonthlyRunError(failure_message(mode, m, results, review), summary)
    return summary


def month_new_topics(
    tagger: Tagger, tagged: pl.DataFrame, override: float | None = None, nouns: list[list[str]] | None = None
) -> list[dict[str, Any]]:
    """The month's new-topic candidates (:func:`voc.new_topics.new_topic_candidates`) from the
    run's tagged rows of all buildings: low-confidence subject tags (the tagger's review threshold,
    or ``override``: ``VOC_REVIEW__LOW_CONFIDENCE_THRESHOLD``), the tagger's Kiwi tokenizer and
    taxonomy. ``nouns``: the rows' :func:`voc.new_topics.topic_nouns`, made by the building
    tasks (None: tokenized here). ``[]`` when the subject has no trained model (no confidence)."""
    from voc.new_topics import new_topic_candidates
    from voc.review import review_thresholds_of

    return new_topic_candidates(
        tagged, review_thresholds_of(tagger, override=override).get("subject"),
        taxonomy=tagger.taxonomy, tokenizer=tagger.kiwi_tokenizer if isinstance(tagger, KiwiTagger) else None, nouns=nouns,
    )


def _split_buildings(vocs: pl.DataFrame, wanted: list[str]) -> list[tuple[str, pl.DataFrame]]:
    """``(building_id, rows)`` for each wanted building, rows in input order (one pass)."""
    parts = {str(k[0]): f for k, f in vocs.partition_by("building_id", as_dict=True, maintain_order=True).items()}
    empty = vocs.clear()
    return [(bid, parts.get(bid, empty)) for bid in wanted]


def _run_buildings(settings: VocSettings, submissions: list[tuple[str, Any, dict[str, Any]]]) -> list[BuildingResult]:
    """Run the building tasks on the configured task runner (:mod:`flows.runners`) and collect
    one :class:`BuildingResult` per building: its own, or ``failed`` with its error."""
    if not submissions:
        return []
    results = []
    with make_task_runner(settings) as runner:
        futures = [(bid, runner.submit(t, parameters=params)) for bid, t, params in submissions]
        for bid, fut in futures:
            fut.wait()
            st = fut.state
            if st.is_completed():
                results.append(fut.result())
                continue
            err = st.message or "failed"
            try:
                fut.result()
            except Exception as e:  # noqa: BLE001 - keep the building's own error message
                err = f"{type(e).__name__}: {e}"
            results.append(BuildingResult(bid, status="failed", error=err))
    return results


@task(name="reserve-run-id", task_run_name="reserve-run-id-{mode}", **IO_TASK, cache_policy=NO_CACHE)
def reserve_run_id(settings: VocSettings, mode: str, month: str) -> str:
    """A run id no other run in this storage has (flows.storage_layout.reserve_run_id: a marker under
    ``{prefix}/runs/``; a run started in the same second as another takes the next second)."""
    from prefect.runtime import flow_run

    return layout.reserve_run_id(
        resources(settings).storage, settings.prefix, mode, info={"mode": mode, "month": month, "flow_run_id": str(flow_run.id or "")}
    )


def _reserve_run_id(settings: VocSettings, mode: str, month: str, logger: Any) -> tuple[str, str]:
    """``(run_id, "")``, or ``(provisional id, error)`` when storage could not be written (then
    every building of the run fails with that error and the summary says so)."""
    try:
        run_id = reserve_run_id(settings, mode, month)
    except StorageError as e:
        logger.error("storage not writable, nothing tagged: %s", e)
        return layout.new_run_id(mode), f"run id not reserved, storage not writable: {e}"
    logger.info("run_id=%s", run_id)
    return run_id, ""


def failure_message(mode: str, month: str, results: list[BuildingResult], review: dict[str, Any] | None) -> str:
    """What failed and what completed, truthfully ("buildings failed: 1, 2; none completed")."""
    failed = [r.building_id for r in sorted(results, key=lambda r: building_sort_key(r.building_id)) if r.status != "ok"]
    done = [r.building_id for r in sorted(results, key=lambda r: building_sort_key(r.building_id)) if r.status == "ok"]
    parts = []
    if failed:
        parts.append(f"buildings failed: {', '.join(failed)}")
        parts.append(f"completed: {', '.join(done)}" if done else "none completed")
    if review and "error" in review:
        parts.append(f"review sheet: {review['error']}" if "location" in review else f"review sheet not updated ({review['error']})")
    rerun = f" Rerun with building_ids={failed}." if failed else " Rerun the same run; reviewers' cells are kept."
    return f"voc-monthly {mode} {month}: " + "; ".join(parts) + "." + rerun


def no_vocs_message(month: str) -> str:
    """The one message every surface (CLI, summary, artifact) gives for an empty month."""
    return f"no VOCs for {month}"


def _no_vocs(mode: str, month: str, run_id: str, ids: list[str] | None, logger: Any) -> dict[str, Any]:
    note = no_vocs_message(month) + (f" in buildings {', '.join(ids)}" if ids else "")
    logger.warning("%s: nothing tagged, nothing written", note)
    summary = _summarise(mode, month, run_id, [], None, {"model": None, "note": note})
    create_markdown_artifact(
        key=f"voc-{mode}-summary",
        markdown=f"# voc-monthly {md_code(mode)} {_md(month)}\n- run_id: {md_code(run_id)}\n- **{_md(note)}**: nothing written",
        description="Run summary",
    )
    return summary


def _result_dict(r: BuildingResult) -> dict[str, Any]:
    """A building's line of the run summary (JSON-native; the review aids stay out)."""
    return {name: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
            for name, v in vars(r).items() if name != "review_aids"}  # a dataclass: its fields, in order


def _summarise(mode: str, month: str, run_id: str, results: list[BuildingResult], review: dict | None, extra: dict) -> dict[str, Any]:
    results = sorted(results, key=lambda r: building_sort_key(r.building_id))
    return {
        "mode": mode,
        "month": month,
        "run_id": run_id,
        **extra,
        "buildings": [_result_dict(r) for r in results],
        "rows": sum(r.rows for r in results if r.status == "ok"),
        "failed": [r.building_id for r in results if r.status != "ok"],
        "review_sheet": review,
        "drift": {r.building_id: r.drift for r in results if r.drift},
    }


def _dashboard_href(prefix: str, month: Month, building_id: str) -> str:
    """The link from the month index to a building's latest dashboard, relative and
    percent-encoded (:func:`flows.storage_layout.relative_href`): ``a:b`` links ``a%3Ab/dashboard_a%3Ab_201911.html``."""
    return layout.relative_href(layout.latest_dashboard_key(prefix, month, building_id), layout.month_dir(prefix, month))


def _index_entry(prefix: str, month: Month, r: BuildingResult) -> dict[str, Any]:
    """One building of the month index; its link is relative to the index page."""
    href = _dashboard_href(prefix, month, r.building_id)
    return {
        "building_id": r.building_id,
        "building_name": r.building_name,
        "n_vocs": r.rows,
        "n_reviewed": r.reviewed,
        "n_low_confidence_unreviewed": r.low_confidence,
        "n_estimated": dict(r.estimated),
        "dashboard_href": href,
        "drift": list(r.drift),
        **r.review_aids.get("index", {}),  # n_urgent, n_repeat, mass_issues (voc.portfolio.index_extras)
    }


@task(name="update-month-index", task_run_name="update-month-index-{month.yyyymm}", **IO_TASK, cache_policy=NO_CACHE)
def update_month_index(
    settings: VocSettings, month: Month, entries: list[dict[str, Any]], run_id: str, new_topics: list[dict[str, Any]] | None = None
) -> str:
    """Merge this run's buildings into ``{prefix}/{yyyymm}/index.json`` (compare-and-swap: a
    concurrent run's buildings are kept) and re-render ``index.html`` from it
    (:func:`voc.dashboard.render_month_index`). Returns the page's URI.

    ``new_topics`` (:func:`month_new_topics`), when given, replaces the month's stored list under
    the key ``new_topics`` (a list, where buildings are mappings; a building whose id is
    ``new_topics`` keeps its entry and the list is not stored); None keeps the stored one.

    The page's links (:mod:`flows.links`): relative locally; on S3 absolute — public-base-URL or
    presigned links, which expire, so each run renders them afresh (``index.json`` keeps the
    relative ones) — plus a link to the month's review sheet when there is one."""
    from flows import links
    from flows.adapters.storage import update_with_cas
    from voc.dashboard import render_month_index

    storage = resources(settings).storage

    def merge(current: bytes | None) -> tuple[bytes, dict[str, Any]]:
        listed = json.loads(current.decode("utf-8")) if current is not None else {}
        listed.update({e["building_id"]: e for e in entries})
        if new_topics is not None and not isinstance(listed.get(NEW_TOPICS_KEY), dict):
            listed[NEW_TOPICS_KEY] = new_topics
        for bid, e in listed.items():  # links written unencoded by older versions are repaired
            if isinstance(e, dict):
                e["dashboard_href"] = _dashboard_href(settings.prefix, month, bid)
        return json.dumps(listed, ensure_ascii=False, indent=1).encode("utf-8"), listed

    _, listed = update_with_cas(
        storage, layout.month_index_data_key(settings.prefix, month), merge, content_type="application/json"
    )
    now = datetime.now(KST)
    try:
        review_href = links.review_link(settings, storage, month, backend=resources(settings).review_backend, in_index=True)
    except Exception as e:  # noqa: BLE001 - the index lists the dashboards without it
        review_href = None
        logging.getLogger(__name__).warning("month index without the review sheet link: %s: %s", type(e).__name__, e)
    html = render_month_index(
        month,
        [{**listed[b], "dashboard_url": links.index_dashboard_url(settings, storage, month, b)}
         for b in sorted(listed, key=building_sort_key) if isinstance(listed[b], dict)],
        run_id=run_id,
        generated_at=now.strftime("%Y-%m-%d %H:%M KST"),
        source_credit=SAMPLE_CREDIT if "incheon_junggu_minwon" in settings.source else None,
        review_href=review_href,
        review_label=(
            f"검수 시트 열기 ({month.yyyymm})" if settings.review.backend == "gsheets"
            else f"검수 시트 내려받기 (review_{month.yyyymm}.xlsx)"
        ),
        links_valid_until=links.links_valid_until(settings, storage, now=now),
    )
    return storage.write_bytes(layout.month_index_key(settings.prefix, month), html.encode("utf-8"), content_type="text/html")


NEW_TOPICS_KEY = "new_topics"
"""Key of the month's new-topic candidates in ``{prefix}/{yyyymm}/index.json`` (beside the buildings)."""

PORTFOLIO_LOOKBACK_MONTHS = 24
"""Months before the run's month (and after it, up to now) whose indexes the portfolio reads."""


def _portfolio_links(
    settings: VocSettings, storage: Storage, month: Month, index: dict[str, Any]
) -> tuple[str, dict[str, str]]:
    """The portfolio's link to ``month``'s index and, on storage that presigns (a private S3
    bucket), absolute links to its buildings' dashboards (:mod:`flows.links`); locally the link is
    relative and the dashboards' links are derived from the index's ``dashboard_href``."""
    from flows import links

    key = layout.month_index_key(settings.prefix, month)
    if not links.absolute_links(storage):
        return layout.relative_href(key, settings.prefix), {}
    dash = {bid: links.index_dashboard_url(settings, storage, month, bid) or ""
            for bid, e in index.items() if isinstance(e, dict) and e.get("dashboard_href")}
    return browser_link(settings, storage, key), dash


@task(name="update-portfolio", **IO_TASK, cache_policy=NO_CACHE)
def update_portfolio(settings: VocSettings, month: Month, run_id: str) -> str:
    """Rebuild ``{prefix}/index.json`` and ``{prefix}/index.html`` (:mod:`voc.portfolio`) from the
    stored month indexes (``{prefix}/{yyyymm}/index.json``) of the :data:`PORTFOLIO_LOOKBACK_MONTHS`
    months before ``month`` up to the current month — stored outputs only, nothing re-tagged.
    Returns the page's URI."""
    from voc.months import parse_month
    from voc.portfolio import build_portfolio, render_portfolio

    storage = resources(settings).storage
    now = datetime.now(KST)
    end = max(parse_month(month), parse_month(now.strftime("%Y-%m")))
    y, mo = int(end[:4]), int(end[5:7])
    months: dict[str, dict[str, Any]] = {}
    hrefs: dict[str, str] = {}
    dash: dict[str, dict[str, str]] = {}
    for k in range(PORTFOLIO_LOOKBACK_MONTHS + 1 + (y - int(month[:4])) * 12 + mo - int(month[5:7])):
        yy, mm = divmod(y * 12 + mo - 1 - k, 12)
        ym = parse_month(f"{yy:04d}-{mm + 1:02d}")
        got = storage.read_versioned(layout.month_index_data_key(settings.prefix, ym))
        if got is None:
            continue
        key = ym.replace("-", "")
        months[key] = json.loads(got[0].decode("utf-8"))
        hrefs[key], dash[key] = _portfolio_links(settings, storage, Month(ym), months[key])
    data = build_portfolio(months, month_hrefs=hrefs, dashboard_hrefs=dash)
    storage.write_bytes(
        layout.portfolio_data_key(settings.prefix), json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8"),
        content_type="application/json",
    )
    html = render_portfolio(data, generated_at=now.strftime("%Y-%m-%d %H:%M KST"), run_id=run_id)
    return storage.write_bytes(layout.portfolio_key(settings.prefix), html.encode("utf-8"), content_type="text/html")


def _publish_artifacts(settings: VocSettings, summary: dict[str, Any], results: list[BuildingResult]) -> None:
    """The run's Prefect artifacts: the per-building table, the dashboard / index / portfolio /
    review-sheet links and the markdown summary (every string escaped as Markdown)."""
    from voc.dashboard import estimated_text, review_state_text

    table = [
        {
            "building_id": md_escape(r.building_id),  # Prefect renders every string cell as Markdown
            "building_name": _md(r.building_name),
            "status": r.status,
            "rows": r.rows,
            "flagged": r.flagged,
            "low_confidence": r.low_confidence,
            "reviewed": r.reviewed,
            "검수": review_state_text(r.rows, r.reviewed, r.low_confidence) if r.status == "ok" else "",
            "추정": estimated_text(r.estimated),
            "긴급": int(r.review_aids.get("index", {}).get("n_urgent", 0)),  # voc.urgency (voc.portfolio.index_extras)
            "반복": int(r.review_aids.get("index", {}).get("n_repeat", 0)),
            "review_issues": r.review_issues,
            "error": md_escape(mask_personal_details(r.error)[:300]),
        }
        for r in sorted(results, key=lambda r: building_sort_key(r.building_id))
    ]
    create_table_artifact(key=f"voc-{summary['mode']}-buildings", table=table, description=f"VOCs per building, {summary['month']}")
    portfolio_link = _publish_link_artifacts(settings, summary, results)
    lines = _summary_lines(summary, results, portfolio_link)
    create_markdown_artifact(key=f"voc-{summary['mode']}-summary", markdown="\n".join(lines), description="Run summary")


def _publish_link_artifacts(settings: VocSettings, summary: dict[str, Any], results: list[BuildingResult]) -> str | None:
    """Link artifacts to each building's latest dashboard, the month index, the portfolio and the
    review sheet (those the run wrote); returns the portfolio's Markdown link destination, if any."""
    storage = resources(settings).storage
    month = Month.parse(summary["month"])
    for r in results:
        if r.outputs.get("dashboard_latest"):
            latest = layout.latest_dashboard_key(settings.prefix, month, r.building_id)
            create_link_artifact(
                key=f"dashboard-{month.yyyymm}-{_slug(r.building_id)}",
                link=md_link_destination(browser_link(settings, storage, latest)),
                link_text=_md(f"대시보드 {r.building_name or r.building_id} {summary['month']}"),  # Prefect writes [text](link)
            )
    if summary.get("index"):
        create_link_artifact(
            key=f"dashboard-index-{month.yyyymm}",
            link=md_link_destination(browser_link(settings, storage, layout.month_index_key(settings.prefix, month))),
            link_text=f"{summary['month']} 건물별 대시보드 목록",
        )
    portfolio_link = None
    if summary.get("portfolio"):
        portfolio_link = md_link_destination(browser_link(settings, storage, layout.portfolio_key(settings.prefix)))
        create_link_artifact(key="voc-portfolio", link=portfolio_link, link_text="VOC 포트폴리오 · 전체 건물")
    if summary.get("review_link"):
        create_link_artifact(
            key=f"review-sheet-{month.yyyymm}",
            link=md_link_destination(summary["review_link"]),
            link_text=f"{summary['month']} 검수 시트",
        )
    return portfolio_link


def _summary_lines(summary: dict[str, Any], results: list[BuildingResult], portfolio_link: str | None) -> list[str]:
    """The markdown summary artifact's lines: run, model, VOC counts, review state, urgent and
    repeated VOCs, new-topic candidates, failures, drift and the review sheet's state."""
    from voc.dashboard import estimated_text, review_state_text

    lines = [
        f"# voc-monthly {md_code(summary['mode'])} {_md(summary['month'])}",
        f"- run_id: {md_code(summary['run_id'])}",
        f"- model: {md_code(summary.get('model'))}"
        + (f" as {_md(summary['model_runtime'])}" if summary.get("model_runtime") else "")
        + (f" ({_md(summary['model_note'])})" if summary.get("model_note") else ""),
        f"- VOCs: {summary['rows']} in {len(results) - len(summary['failed'])} building(s)",
    ]
    ok = [r for r in results if r.status == "ok"]
    if ok:
        lines.append(f"- {review_state_text(sum(r.rows for r in ok), sum(r.reviewed for r in ok), sum(r.low_confidence for r in ok))}")
        guessed = estimated_text({d: sum(r.estimated.get(d, 0) for r in ok) for d in ("subject", "work")})
        if guessed:
            lines.append(f"- 키워드 추정 태그 {guessed}: 학습된 모델 없이 짐작한 값, 신뢰도 없음")
        ix = [r.review_aids.get("index", {}) for r in ok]
        n_urgent = sum(int(i.get("n_urgent", 0)) for i in ix)
        n_repeat = sum(int(i.get("n_repeat", 0)) for i in ix)
        lines.append(f"- 긴급 VOC {n_urgent}건 · 30일 내 반복 {n_repeat}건")
    if portfolio_link:
        lines.append(f"- [VOC 포트폴리오 · 전체 건물]({portfolio_link})")
    for t in summary.get("new_topics") or ():  # voc.new_topics: a person decides; never a class by itself
        examples = " / ".join(_md(e.get("title", "")) for e in t.get("examples") or ())
        lines.append(f"- 신규 주제 후보 ({int(t.get('size', 0))}건): {_md(', '.join(t.get('keywords') or ()))} — 예: {examples}")
    if summary.get("new_topics"):
        lines.append("- 신규 주제 후보: taxonomy에 추가할지 검토하세요 — 자동으로 분류에 추가되지 않습니다")
    if summary["failed"]:
        lines.append(f"- **failed buildings: {', '.join(_md(b) for b in summary['failed'])}** — rerun with `building_ids` set to them")
    for bid, notes in summary.get("drift", {}).items():
        lines += [f"- drift, building {_md(bid)}: {_md(n)}" for n in notes]
    rs = summary.get("review_sheet")
    if rs:
        lines.append(f"- review sheet: {_md(rs['location'])}" if "location" in rs else f"- review sheet: {_md(str(rs.get('error')))}")
        if "location" in rs and rs.get("error"):
            lines.append(f"- **review sheet: {_md(str(rs['error']))}**")
    if summary.get("review_link"):
        lines.append(f"- [검수 시트 열기/내려받기]({md_link_destination(summary['review_link'])}) (`voc review pull`/`push`)")
    lines += [f"- review sheet row not applied: {_md(line)}" for line in summary.get("review_sheet_issues", [])[:20]]
    return lines


def _md(text: object) -> str:
    """``text`` as literal Markdown text (:func:`voc.mdtext.md_escape`: every ASCII punctuation
    character escaped, line breaks as spaces, so no id, name or note becomes a link, an HTML tag,
    emphasis, a table cell break or a heading), personal details masked."""
    return md_escape(mask_personal_details(str(text)))


def _slug(s: str) -> str:
    """A Prefect artifact key part (lowercase ASCII letters, digits, ``-`` only) for any
    building id: the id itself when it already is one, else its ASCII letters and digits (others
    as ``-``) and 8 hex digits of its SHA-256, so ``본관`` and ``별관`` keep distinct keys."""
    if re.fullmatch(r"[a-z0-9-]+", s):
        return s
    ascii_part = "".join(ch.lower() if ch.isascii() and ch.isalnum() else "-" for ch in s)[:40]
    return f"{ascii_part}-{hashlib.sha256(s.encode('utf-8')).hexdigest()[:8]}"
