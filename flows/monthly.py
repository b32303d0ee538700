"""Flow ``voc-monthly``: tag a month per building, write tagged CSVs and dashboards, sync the
review sheet (``full``, ``tagging-only``), or fold reviews back in (``refresh``).

One task per building (``tag-building-95`` / ``refresh-building-95``), so one building's failure
leaves the others' outputs; every I/O step retries with backoff; the model is loaded once per
run. The run ends with a table artifact (rows and failures per building), link artifacts to the
dashboards and a markdown summary; if a building failed the flow run ends Failed and names it —
rerun with only those ``building_ids`` to complete the month.
"""

from __future__ import annotations

import io
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE as NO_CACHE
from prefect.utilities.annotations import quote

from config.settings import VocSettings, get_settings
from flows import keys
from flows.models import load_champion, require_model_or_keyword_opt_in
from flows.params import SourceParam, guard_flow_parameters, refuse_dsn_password
from flows.sources import buildings_of, open_source
from flows.retries import IO_TASK, MODEL_IO_TASK, NESTED_IO_TASK
from flows.storage import Storage, StorageError, open_storage
from voc.months import KST, check_not_future, months_before, previous_month, yyyymm
from voc.schema import building_sort_key

__all__ = ["voc_monthly", "BuildingResult", "MonthlyRunError", "SAMPLE_CREDIT"]

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
    drift: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# I/O tasks (retried)


@task(name="store-object", **NESTED_IO_TASK, cache_policy=NO_CACHE)
def store_object(storage: Storage, key: str, data: bytes, content_type: str | None = None) -> str:
    return storage.write_bytes(key, data, content_type=content_type)


@task(name="read-month", **IO_TASK, cache_policy=NO_CACHE)
def read_month(settings: VocSettings, month: str, building_ids: list[str] | None) -> pl.DataFrame:
    return open_source(settings).read_month(month, building_ids)


@task(name="load-model", **MODEL_IO_TASK, cache_policy=NO_CACHE)
def load_model(settings: VocSettings) -> tuple[Any, dict[str, Any]]:
    return load_champion(settings, open_storage(settings))


def _csv_bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_csv(buf)
    return buf.getvalue()


def _read_csv(storage: Storage, key: str) -> pl.DataFrame:
    df = pl.read_csv(io.BytesIO(storage.read_bytes(key)), infer_schema=False)
    casts = [pl.col("created_at").str.to_date("%Y-%m-%d", strict=False)]
    casts += [pl.col(c).cast(pl.Float64, strict=False) for c in ("subject_confidence", "work_confidence") if c in df.columns]
    return df.with_columns(casts)


def _history(storage: Storage, settings: VocSettings, source, month: str, building_id: str) -> pl.DataFrame | None:
    """Earlier months of one building for the dashboard: the newest reviewed (else tagged) CSV
    of each of the last six months in storage; months never run fall back to the source rows
    with their input labels as subject."""
    frames = []
    for m in months_before(month, HISTORY_MONTHS):
        ks = storage.list(keys.building_dir(settings.prefix, m, building_id))
        key = keys.latest_output(ks, "reviewed") or keys.latest_output(ks, "tagged")
        if key:
            frames.append(_read_csv(storage, key))
            continue
        rows = source.read_month(m, [building_id])
        if rows.height:
            frames.append(
                rows.with_columns(
                    pl.lit(yyyymm(m)).alias("yyyymm"),
                    *[pl.col(f"reviewed_{c}").alias(c) for c in ("subject_major", "subject_minor", "work_major", "work_minor")],
                    pl.lit(None, dtype=pl.Float64).alias("subject_confidence"),
                    pl.lit(None, dtype=pl.Float64).alias("work_confidence"),
                )
            )
    if not frames:
        return None
    cols = {
        "voc_id": pl.Utf8, "building_id": pl.Utf8, "created_at": pl.Date, "yyyymm": pl.Utf8, "title": pl.Utf8,
        "subject_major": pl.Utf8, "subject_minor": pl.Utf8, "subject_confidence": pl.Float64,
        "work_major": pl.Utf8, "work_minor": pl.Utf8, "work_confidence": pl.Float64,
    }
    return pl.concat([f.select([pl.col(c).cast(t, strict=False) for c, t in cols.items()]) for f in frames])


def _render(
    tagged: pl.DataFrame,
    *,
    settings: VocSettings,
    storage: Storage,
    source,
    tokenizer,
    month: str,
    building_id: str,
    building_name: str,
    run_id: str,
    reviewed: bool,
    history: pl.DataFrame | None,
    review_status: Any = None,
    drift: list[str] | None = None,
    low_confidence: float | None = None,
) -> bytes:
    from voc.dashboard import keyword_counts, render_dashboard, render_wordcloud_png

    from voc.dashboard import keyword_texts

    texts = keyword_texts(tagged)
    kws = keyword_counts(tokenizer.keyword_nouns_batch(texts)) if texts else []
    png = render_wordcloud_png(dict(kws)) if kws else None
    credit = SAMPLE_CREDIT if "incheon_junggu_minwon" in settings.source else None
    html = render_dashboard(
        tagged,
        building_id=building_id,
        building_name=building_name,
        month=month,
        history=history,
        keywords=kws,
        wordcloud_png=png,
        run_id=run_id,
        generated_at=datetime.now(KST).strftime("%Y-%m-%d %H:%M KST"),
        review_status=review_status,
        drift=drift or [],
        source_credit=credit,
        reviewed=reviewed,
        low_confidence=low_confidence if low_confidence is not None else DEFAULT_LOW_CONFIDENCE,
    )
    return html.encode("utf-8")


DEFAULT_LOW_CONFIDENCE = 0.5
"""Review-priority threshold when the model carries none (its held-out choice, see voc.metrics)."""


def _low_conf(df: pl.DataFrame, threshold: float | None) -> pl.Series:
    conf = pl.min_horizontal(pl.col("subject_confidence").fill_null(1.0), pl.col("work_confidence").fill_null(1.0))
    return df.select(conf < (threshold if threshold is not None else DEFAULT_LOW_CONFIDENCE)).to_series()


# --------------------------------------------------------------------------------------------
# per-building tasks


@task(cache_policy=NO_CACHE)
def tag_building(
    settings: VocSettings,
    rows: pl.DataFrame,
    tagger: Any,
    lock: Any,
    *,
    mode: str,
    month: str,
    building_id: str,
    building_name: str,
    run_id: str,
) -> BuildingResult:
    """Tag one building's month, write its tagged CSV (and dashboard in ``full``)."""
    from voc.tagger import tag_frame

    logger = get_run_logger()
    storage = open_storage(settings)
    source = open_source(settings)
    res = BuildingResult(building_id, building_name, rows=rows.height)
    with lock:  # one analyser per run; Kiwi and the model run one building at a time
        tagged = tag_frame(rows, tagger, run_id=run_id)
    res.flagged = int((tagged["flags"] != "").sum())
    res.low_confidence = int(_low_conf(tagged, getattr(tagger, "low_confidence_threshold", None)).sum())
    res.outputs["tagged"] = store_object(
        storage, keys.tagged_key(settings.prefix, month, building_id, run_id), _csv_bytes(tagged), "text/csv"
    )
    if hasattr(source, "write_tags"):
        source.write_tags(tagged, classify_source="batch", reviewed=False)
    if mode == "full":
        from voc.dashboard import ReviewStatus
        history = _history(storage, settings, source, month, building_id)
        model_labels = {d: tagger.model_labels(d) for d in tagger.taxonomy.dimensions()}
        res.drift = _drift(tagged, model_labels, history)
        with lock:
            html = _render(
                tagged, settings=settings, storage=storage, source=source, tokenizer=_tokenizer_of(tagger),
                month=month, building_id=building_id, building_name=building_name, run_id=run_id, reviewed=False,
                history=history, drift=res.drift,
                review_status=ReviewStatus(n_total=tagged.height, n_reviewed=0, n_low_confidence_unreviewed=res.low_confidence),
                low_confidence=getattr(tagger, "low_confidence_threshold", None),
            )
        res.outputs["dashboard"] = store_object(
            storage, keys.dashboard_key(settings.prefix, month, building_id, run_id), html, "text/html"
        )
        res.outputs["dashboard_latest"] = store_object(
            storage, keys.latest_dashboard_key(settings.prefix, month, building_id), html, "text/html"
        )
    logger.info("building %s: %d VOCs tagged (%d flagged)", building_id, tagged.height, res.flagged)
    return res


def _drift(month_rows: pl.DataFrame, model_labels: dict[str, list[str]], history: pl.DataFrame | None) -> list[str]:
    """Drift notes (voc.quality): reviewed labels the model never learned and subject shares
    that moved against the previous months."""
    from voc.quality import drift_messages

    return drift_messages(reviewed=month_rows, model_labels=model_labels, history=history)


def _tokenizer_of(tagger: Any):
    from voc.tokenize import KiwiTokenizer

    tok = getattr(tagger, "tokenizer", None)
    return tok if isinstance(tok, KiwiTokenizer) else KiwiTokenizer()


def write_reviewed_tags(source: Any, reviewed: pl.DataFrame) -> int:
    """The refresh's database write: the rows with at least one reviewed dimension, upserted with
    ``classify_source="reviewed"``. Per dimension, ``subject_reviewed`` / ``work_reviewed`` (from
    :func:`voc.review.merge_reviews`) decide what is a human label; the other dimension goes in as
    a machine value that never replaces a human one (:mod:`flows.db`). No-op for a source without
    ``write_tags`` (CSV). Returns the rows written."""
    if not hasattr(source, "write_tags"):
        return 0
    done = reviewed.filter(pl.col("is_reviewed"))
    return int(source.write_tags(done, classify_source="reviewed")) if done.height else 0


@task(cache_policy=NO_CACHE)
def refresh_building(
    settings: VocSettings,
    sheet: pl.DataFrame | None,
    taxonomy: Any,
    tokenizer: Any,
    lock: Any,
    *,
    month: str,
    building_id: str,
    run_id: str,
    model_labels: dict[str, list[str]],
    threshold: float | None,
) -> BuildingResult:
    """Merge the review sheet into the newest tagged CSV of one building → reviewed CSV →
    dashboard regenerated from it (run file + the month's dashboard key overwritten)."""
    from voc.dashboard import ReviewStatus
    from voc.review import merge_reviews

    storage = open_storage(settings)
    source = open_source(settings)
    ks = storage.list(keys.building_dir(settings.prefix, month, building_id))
    key = keys.latest_output(ks, "tagged")
    if key is None:
        raise FileNotFoundError(f"building {building_id}: no tagged CSV for {month}; run mode=full first")
    tagged = _read_csv(storage, key)
    name = (tagged["building_name"].drop_nulls().to_list() or [""])[0]
    res = BuildingResult(building_id, name, rows=tagged.height)
    own = None
    if sheet is not None and sheet.height:
        own = sheet.filter(pl.col("voc_id").cast(pl.Utf8).is_in(tagged["voc_id"].implode()))
    reviewed, stats = merge_reviews(tagged, own, taxonomy)
    res.reviewed = int(stats.n_reviewed)
    res.review_issues = len(stats.issues)
    issues = [asdict(i) if hasattr(i, "__dataclass_fields__") else dict(i) for i in stats.issues]
    res.outputs["reviewed"] = store_object(
        storage, keys.reviewed_key(settings.prefix, month, building_id, run_id), _csv_bytes(reviewed), "text/csv"
    )
    write_reviewed_tags(source, reviewed)
    history = _history(storage, settings, source, month, building_id)
    res.drift = _drift(reviewed, model_labels, history)
    res.low_confidence = int(_low_conf(tagged, threshold).sum())
    unreviewed_low = int((_low_conf(reviewed, threshold) & ~reviewed["is_reviewed"]).sum())
    with lock:
        html = _render(
            reviewed, settings=settings, storage=storage, source=source, tokenizer=tokenizer, month=month,
            building_id=building_id, building_name=name, run_id=run_id, reviewed=True, history=history,
            review_status=ReviewStatus(n_total=reviewed.height, n_reviewed=res.reviewed, n_low_confidence_unreviewed=unreviewed_low),
            drift=res.drift, low_confidence=threshold,
        )
    res.outputs["dashboard"] = store_object(storage, keys.dashboard_key(settings.prefix, month, building_id, run_id), html, "text/html")
    res.outputs["dashboard_latest"] = store_object(
        storage, keys.latest_dashboard_key(settings.prefix, month, building_id), html, "text/html"
    )
    res.error = "; ".join(f"row {i['sheet_row']} {i['column']}={i['value']!r}: {i['message']}" for i in issues[:20])
    return res


@task(name="sync-review-sheet", **IO_TASK, cache_policy=NO_CACHE)
def sync_review_sheet(settings: VocSettings, month: str, tagged: pl.DataFrame, taxonomy: Any, threshold: float | None) -> dict[str, Any]:
    """Upsert the month's rows into the review sheet; reviewers' cells are never overwritten."""
    from flows.review_backends import open_review_backend
    from voc.review import build_review_rows, merge_into_sheet

    backend = open_review_backend(settings, open_storage(settings))
    rows = build_review_rows(tagged, threshold=threshold)
    # compare-and-swap: a reviewer's upload between the read and the write is merged, not lost
    where, stats = backend.update_month(month, lambda existing: merge_into_sheet(existing, rows), taxonomy)
    return {"location": where, **asdict(stats)}


@task(name="read-review-sheet", **IO_TASK, cache_policy=NO_CACHE)
def read_review_sheet(settings: VocSettings, month: str) -> pl.DataFrame | None:
    from flows.review_backends import open_review_backend

    return open_review_backend(settings, open_storage(settings)).read_month(month)


# --------------------------------------------------------------------------------------------
# the flow


@flow(name="voc-monthly", log_prints=False)
def voc_monthly(
    mode: str = "full",
    month: str | int | None = None,
    building_ids: list[str] | None = None,
    storage: str | None = None,
    source: SourceParam = None,
    source_encoding: str | None = None,
) -> dict[str, Any]:
    """Run one month.

    Parameters
    ----------
    mode
        ``full`` (tag → tagged CSV → dashboard → storage → review sheet), ``tagging-only``
        (tag → tagged CSV → review sheet) or ``refresh`` (review sheet + newest tagged CSV →
        reviewed CSV → dashboard).
    month
        ``"YYYY-MM"`` (``202512`` accepted); empty → the previous month in KST.
    building_ids
        Only these buildings (default: every building with VOCs in the month; in refresh, every
        building with a tagged CSV for the month).
    storage, source, source_encoding
        Override ``VOC_STORAGE`` / ``VOC_SOURCE`` / ``VOC_SOURCE_ENCODING`` (a CSV source's
        encoding: utf-8, cp949, euc-kr).
        A ``source`` DSN with a password is refused (:mod:`flows.params`): the password goes in
        ``VOC_DB__DSN`` or ``~/.pgpass``, never in a parameter.

    Returns
    -------
    dict
        The run summary (also published as artifacts).

    Raises
    ------
    MonthlyRunError
        When a building failed; the others' outputs are kept and the error names the failed ids.
    """
    refuse_dsn_password(source, where="parameter 'source' of flow voc-monthly")
    logger = get_run_logger()
    if mode not in keys.MODES:
        raise ValueError(f"mode must be one of {keys.MODES}, got {mode!r}")
    m = check_not_future(month, datetime.now(KST)) if month not in (None, "") else previous_month()
    ids = [str(b) for b in building_ids] if building_ids else None
    settings = get_settings(storage=storage, source=source, source_encoding=source_encoding)
    run_id = keys.new_run_id(mode)  # provisional: reserved (unique) once the run will write
    logger.info("voc-monthly %s %s source=%s storage=%s", mode, m, open_source(settings).describe(), settings.storage)
    vocs = read_month(settings, m, ids) if mode in ("full", "tagging-only") else None
    if vocs is not None and vocs.height == 0:
        return _no_vocs(mode, m, run_id, ids, logger)
    tagger, meta = load_model(settings)
    if meta.get("fallback") and mode != "refresh":
        require_model_or_keyword_opt_in(settings)
    lock = threading.Lock()
    results: list[BuildingResult] = []
    futures: dict[str, Any] = {}
    extra: dict[str, Any] = {"model": f"{tagger.kind}_{tagger.version}"}
    if hasattr(tagger, "active_runtime"):  # KoBERT: onnx-int8 on CPU workers, torch-bf16 … on GPU
        extra["model_runtime"] = tagger.active_runtime
        logger.info("model %s runs as %s", extra["model"], extra["model_runtime"])
    if meta.get("fallback"):
        extra["model_note"] = "no trained model: tagged by taxonomy keywords only (no labelled history, or VOC_MODEL__ALLOW_KEYWORD_ONLY=true)"

    if vocs is not None:
        run_id, unwritable = _reserve_run_id(settings, mode, m, logger)
        present = buildings_of(vocs)
        wanted = ids or [b for b, _ in present]
        names = dict(present)
        for bid in wanted:
            rows = vocs.filter(pl.col("building_id") == bid)
            if unwritable:
                results.append(BuildingResult(bid, names.get(bid, ""), rows=rows.height, status="failed", error=unwritable))
                continue
            futures[bid] = tag_building.with_options(task_run_name=f"tag-building-{bid}").submit(
                settings, quote(rows), quote(tagger), lock, mode=mode, month=m, building_id=bid,
                building_name=names.get(bid, ""), run_id=run_id,
            )
    else:
        sheet = read_review_sheet(settings, m)
        store = open_storage(settings)
        month_keys = store.list(keys.month_dir(settings.prefix, m))
        have = sorted({k.split("/")[-2] for k in month_keys if "/tagged_" in k}, key=building_sort_key)
        wanted = ids or have
        if not wanted:
            if read_month(settings, m, ids).height == 0:
                return _no_vocs(mode, m, run_id, ids, logger)
            raise MonthlyRunError(
                f"voc-monthly refresh {m}: no tagged CSV under {keys.month_dir(settings.prefix, m)} in {settings.storage}; "
                f"run mode=full for {m} first",
                _summarise(mode, m, run_id, [], None, extra),
            )
        run_id, unwritable = _reserve_run_id(settings, mode, m, logger)
        model_labels = {d: tagger.model_labels(d) for d in tagger.taxonomy.dimensions()}
        tok = _tokenizer_of(tagger)
        for bid in wanted:
            if unwritable:
                results.append(BuildingResult(bid, status="failed", error=unwritable))
                continue
            futures[bid] = refresh_building.with_options(task_run_name=f"refresh-building-{bid}").submit(
                settings, quote(sheet), quote(tagger.taxonomy), quote(tok), lock, month=m, building_id=bid, run_id=run_id,
                model_labels=model_labels, threshold=getattr(tagger, "low_confidence_threshold", None),
            )

    for bid, fut in futures.items():
        fut.wait()
        st = fut.state
        if st.is_completed():
            results.append(fut.result())
        else:
            err = st.message or "failed"
            try:
                fut.result()
            except Exception as e:  # keep the building's own error message
                err = f"{type(e).__name__}: {e}"
            results.append(BuildingResult(bid, status="failed", error=err))

    review: dict[str, Any] | None = None
    if mode in ("full", "tagging-only"):
        ok_ids = [r.building_id for r in results if r.status == "ok"]
        tagged_frames = []
        store = open_storage(settings)
        for r in results:
            if r.status == "ok":
                tagged_frames.append(_read_csv(store, keys.tagged_key(settings.prefix, m, r.building_id, run_id)))
        if tagged_frames and ok_ids:
            try:
                review = sync_review_sheet(settings, m, pl.concat(tagged_frames), tagger.taxonomy, getattr(tagger, "low_confidence_threshold", None))
            except Exception as e:
                review = {"error": f"{type(e).__name__}: {e}"}
                logger.error("review sheet upload failed: %s", e)

    summary = _summarise(mode, m, run_id, results, review, extra)
    _publish_artifacts(summary, results)
    failed = [r.building_id for r in results if r.status != "ok"]
    if failed or (review and "error" in review):
        raise MonthlyRunError(failure_message(mode, m, results, review), summary)
    return summary


guard_flow_parameters(voc_monthly, "source")  # refused before a flow run (and its parameters) exists


@task(name="reserve-run-id", **IO_TASK, cache_policy=NO_CACHE)
def reserve_run_id(settings: VocSettings, mode: str, month: str) -> str:
    """A run id no other run in this storage has (flows.keys.reserve_run_id: a marker under
    ``{prefix}/runs/``; a run started in the same second as another takes the next second)."""
    from prefect.runtime import flow_run

    return keys.reserve_run_id(
        open_storage(settings), settings.prefix, mode, info={"mode": mode, "month": month, "flow_run_id": str(flow_run.id or "")}
    )


def _reserve_run_id(settings: VocSettings, mode: str, month: str, logger: Any) -> tuple[str, str]:
    """``(run_id, "")``, or ``(provisional id, error)`` when storage could not be written (then
    every building of the run fails with that error and the summary says so)."""
    try:
        run_id = reserve_run_id(settings, mode, month)
    except StorageError as e:
        logger.error("storage not writable, nothing tagged: %s", e)
        return keys.new_run_id(mode), f"run id not reserved, storage not writable: {e}"
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
        parts.append(f"review sheet not updated ({review['error']})")
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
        key=f"voc-{mode}-summary", markdown=f"# voc-monthly `{mode}` {month}\n- run_id: `{run_id}`\n- **{note}**: nothing written",
        description="Run summary",
    )
    return summary


def _summarise(mode: str, month: str, run_id: str, results: list[BuildingResult], review: dict | None, extra: dict) -> dict[str, Any]:
    results = sorted(results, key=lambda r: building_sort_key(r.building_id))
    return {
        "mode": mode,
        "month": month,
        "run_id": run_id,
        **extra,
        "buildings": [asdict(r) for r in results],
        "rows": sum(r.rows for r in results if r.status == "ok"),
        "failed": [r.building_id for r in results if r.status != "ok"],
        "review_sheet": review,
        "drift": {r.building_id: r.drift for r in results if r.drift},
    }


def _publish_artifacts(summary: dict[str, Any], results: list[BuildingResult]) -> None:
    table = [
        {
            "building_id": r.building_id,
            "building_name": r.building_name,
            "status": r.status,
            "rows": r.rows,
            "flagged": r.flagged,
            "low_confidence": r.low_confidence,
            "reviewed": r.reviewed,
            "review_issues": r.review_issues,
            "error": r.error[:300],
        }
        for r in sorted(results, key=lambda r: building_sort_key(r.building_id))
    ]
    create_table_artifact(key=f"voc-{summary['mode']}-buildings", table=table, description=f"VOCs per building, {summary['month']}")
    for r in results:
        url = r.outputs.get("dashboard_latest")
        if url:
            link = url if "://" in url else f"file://{url}"
            create_link_artifact(
                key=f"dashboard-{yyyymm(summary['month'])}-{_slug(r.building_id)}",
                link=link,
                link_text=f"대시보드 {r.building_name or r.building_id} {summary['month']}",
            )
    lines = [
        f"# voc-monthly `{summary['mode']}` {summary['month']}",
        f"- run_id: `{summary['run_id']}`",
        f"- model: `{summary.get('model')}`"
        + (f" as {summary['model_runtime']}" if summary.get("model_runtime") else "")
        + (f" ({summary['model_note']})" if summary.get("model_note") else ""),
        f"- VOCs: {summary['rows']} in {len(results) - len(summary['failed'])} building(s)",
    ]
    if summary["failed"]:
        lines.append(f"- **failed buildings: {', '.join(summary['failed'])}** — rerun with `building_ids` set to them")
    for bid, notes in summary.get("drift", {}).items():
        lines += [f"- drift, building {bid}: {n}" for n in notes]
    rs = summary.get("review_sheet")
    if rs:
        lines.append(f"- review sheet: {rs.get('location', rs.get('error'))}")
    create_markdown_artifact(key=f"voc-{summary['mode']}-summary", markdown="\n".join(lines), description="Run summary")


def _slug(s: str) -> str:
    return "".join(ch.lower() if ch.isalnum() else "-" for ch in s)
