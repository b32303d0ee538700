"""Flow ``voc-train``: fit a challenger on every reviewed VOC, compare it with the champion on
the same held-out rows, promote it or keep it as a candidate.

The flow orchestrates (load the data and the champion, store the model version, log, publish
artifacts); what is trained and whether it is promoted is decided by the pure training core
:mod:`voc.training`.

Training data = all reviewed rows ever (no date filter except ``until``): labels that arrive
with the source (reviewed history), rows marked reviewed in PostgreSQL, and every ``reviewed_*``
CSV that ``refresh`` wrote to storage (a reviewer's value beats an input label).

Each model version holds two taggers of the same kind, fitted on the same rows with the same
held-out split (:mod:`voc.modelstore`, "Variants"): ``reply`` (title + request + reply, what the
monthly batch tags with) and ``registration`` (title + request, what ``voc serve`` tags a newly
registered VOC with). With ``VOC_MODEL__USE_REPLY=false`` the one tagger trained is the
registration-time one.

Promotion applies to the pair (:func:`voc.training.decide`): each variant is compared with the
champion measured on that variant's held-out rows reading the same fields (a champion without a
registration variant is measured through its reply-aware tagger given no reply, as the service
would use it, :func:`voc.training.champion_as`), and the challenger becomes champion only when
**neither variant is worse**; otherwise it is stored with status ``candidate``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE as NO_CACHE

from config.settings import VocSettings, get_settings
from flows.adapters.model_store import champion_name, fetch_model, read_champion, upload_model, write_champion
from flows.adapters.retries import MODEL_IO_TASK
from flows.adapters.sources import TrainingRowSource, VocSource
from flows.adapters.storage import Storage
from flows.outcome import fail_with_reason
from flows.resources import open_source, open_storage
from flows.secrets_guard import SourceParam, guard_flow_parameters, refuse_dsn_password
from flows.storage_layout import latest_output, parse_output_key
from voc.csvsafe import read_csv_bytes
from voc.mdtext import md_code, md_escape
from voc.model_kinds import model_kind
from voc.modelstore import (
    load_variants,
    model_dir_name,
    new_version,
    read_meta,
    save_variants,
    update_meta,
    variant_paths,
)
from voc.months import month_range, parse_month
from voc.recipes import selection_lines, selection_summary
from voc.schema import LABEL_COLUMNS, validate_voc_frame
from voc.tagger import KiwiTagger, Tagger, frame_texts
from voc.taxonomy import Taxonomy, default_taxonomy
from voc.tokenize import KiwiTokenizer
from voc.training import (
    ChallengerRecipe,
    TrainingDecision,
    challenger_taxonomy,
    decide,
    measure_champion,
    train_challenger,
)

__all__ = ["voc_train", "training_frame", "reviewed_overlay", "label_counts"]


_DIMS: tuple[str, ...] = ("subject", "work")


def _dimension_mask(df: pl.DataFrame, dim: str) -> pl.Expr:
    """Rows of a reviewed CSV (read as text) whose ``dim`` is a human label of this review:
    ``{dim}_reviewed`` (written since per-dimension flags exist), else ``{dim}_source ==
    "reviewer"`` (older CSVs, where ``is_reviewed`` meant *some* dimension)."""
    if f"{dim}_reviewed" in df.columns:
        return pl.col(f"{dim}_reviewed").str.to_lowercase().is_in(["true", "1"]).fill_null(False)
    if f"{dim}_source" in df.columns:
        return (pl.col(f"{dim}_source") == "reviewer").fill_null(False)
    return pl.lit(True)


def reviewed_overlay(storage: Storage, prefix: str) -> pl.DataFrame | None:
    """Rows marked reviewed in the newest ``reviewed_*.csv`` of every (month, building) in
    storage, as a VOC frame whose ``reviewed_{dim}_*`` columns hold the human labels of this
    review *per dimension*: what the reviewer set or confirmed where ``{dim}_reviewed`` is true,
    null elsewhere (the source keeps that dimension's own label, see :func:`training_frame`);
    None if none."""
    keys = [  # anchored on the key layout: a building named "models" or "reviewed_x" is a building
        k for k in storage.list(prefix)
        if (p := parse_output_key(k)) is not None and p.kind == "reviewed" and p.ext == "csv" and p.prefix == prefix
    ]
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(k.rsplit("/", 1)[0], []).append(k)
    frames = []
    for ks in groups.values():
        key = latest_output(ks, "reviewed")
        if key is None:
            continue
        df = read_csv_bytes(storage.read_bytes(key))  # undoes the formula escape exactly
        if "is_reviewed" not in df.columns:
            continue
        df = df.filter(pl.col("is_reviewed").str.to_lowercase().is_in(["true", "1"]))
        if df.height == 0:
            continue
        # refresh (voc.review.merge_reviews) wrote the labels into reviewed_*: a reviewer's value or
        # confirmation of a trained model's tag where {dim}_reviewed, else the input's own label
        # (which the source has anyway). Only the flagged dimensions are read; the final tags
        # (subject_major, …) may be machine guesses and are never read as labels.
        df = df.with_columns(
            [
                pl.when(_dimension_mask(df, d)).then(pl.col(f"reviewed_{d}_{k}")).otherwise(None).alias(f"reviewed_{d}_{k}")
                for d in _DIMS
                for k in ("major", "minor")
                if f"reviewed_{d}_{k}" in df.columns
            ]
        )
        frames.append(df.drop([c for c in LABEL_COLUMNS if c in df.columns]))
    if not frames:
        return None
    out = pl.concat([f.select(sorted(set.intersection(*(set(x.columns) for x in frames)))) for f in frames], how="vertical")
    return validate_voc_frame(out)


def training_frame(source: VocSource, storage: Storage, prefix: str, *, until: str | None) -> pl.DataFrame:
    """Every reviewed VOC registered before ``until`` (all when None).

    Source labels first; reviewed rows from PostgreSQL (``read_training_rows``) and from
    storage's reviewed CSVs override them per ``voc_id`` *and dimension*: a dimension with a
    human label in the later frame replaces the earlier one, a dimension without one (null
    ``reviewed_{dim}_*``: not reviewed there) keeps the earlier label. Both readers return a
    dimension's label only where that dimension is flagged human-reviewed. Last, the reviewers'
    fixes of audited labels (``{prefix}/label_fixes/*.csv``, :mod:`flows.adapters.label_review`): the
    newest decision per VOC and dimension, where it is a ``fix``, sets that label
    (:func:`voc.label_fixes.apply_label_fixes`).
    """
    frames = [source.read_history(before=until)]
    if isinstance(source, TrainingRowSource):
        frames.append(source.read_training_rows())
    overlay = reviewed_overlay(storage, prefix)
    if overlay is not None:
        frames.append(overlay)
    base = frames[0]
    for extra in frames[1:]:
        if extra.height == 0:
            continue
        if until:
            extra = extra.filter(pl.col("created_at") < month_range(parse_month(until))[0])
        label_cols = [f"reviewed_{c}" for c in LABEL_COLUMNS]
        has = extra.filter(pl.any_horizontal([pl.col(c).is_not_null() for c in label_cols]))
        if has.height == 0:
            continue
        has = _conform(has, base.schema).unique("voc_id", keep="last", maintain_order=True)
        earlier = (
            base.filter(pl.col("voc_id").is_in(has["voc_id"].implode()))
            .unique("voc_id", keep="first", maintain_order=True)
            .select("voc_id", *[pl.col(c).alias(f"__earlier_{c}") for c in label_cols])
        )
        has = has.join(earlier, on="voc_id", how="left")
        merged = []
        for d in _DIMS:
            ma, mi = f"reviewed_{d}_major", f"reviewed_{d}_minor"
            labelled = pl.col(ma).is_not_null() | pl.col(mi).is_not_null()
            merged += [
                pl.when(labelled).then(pl.col(c)).otherwise(pl.col(f"__earlier_{c}")).alias(c) for c in (ma, mi)
            ]
        has = has.with_columns(merged).select(base.columns)
        base = pl.concat([base.filter(~pl.col("voc_id").is_in(has["voc_id"].implode())), has], how="vertical")
    return _with_label_fixes(base, storage, prefix)


def _with_label_fixes(base: pl.DataFrame, storage: Storage, prefix: str) -> pl.DataFrame:
    """``base`` with the reviewers' label fixes applied (newest decision wins; a ``confirm``
    changes nothing, a machine suggestion alone never reaches here)."""
    from flows.adapters.label_review import read_label_fixes
    from voc.label_fixes import apply_label_fixes

    fixes = read_label_fixes(storage, prefix)
    return apply_label_fixes(base, fixes)[0] if fixes.height else base


def _conform(df: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """``df`` with exactly ``schema``'s columns and types: a column the source carries but a
    reviewed CSV or the database does not (a customer's extra ``department`` column) is null."""
    return df.select(
        [
            (pl.col(c).cast(t, strict=False) if c in df.columns else pl.lit(None, dtype=t)).alias(c)
            for c, t in schema.items()
        ]
    )


def label_counts(df: pl.DataFrame) -> dict[str, int]:
    """Labelled VOCs per dimension in a training frame: rows whose ``reviewed_{dim}_minor`` is set
    (``{"subject": n, "work": m}``). The cycle grows these by exactly the newly reviewed labels."""
    return {
        d: int(df[f"reviewed_{d}_minor"].is_not_null().sum()) if f"reviewed_{d}_minor" in df.columns else 0
        for d in ("subject", "work")
    }


@task(name="load-training-data", task_run_name="load-training-data", **MODEL_IO_TASK, cache_policy=NO_CACHE)
def load_training_data(settings: VocSettings, until: str | None) -> tuple[pl.DataFrame, pl.DataFrame, Taxonomy | None]:
    say = _step_logger("load-training-data")
    source = open_source(settings)
    storage = open_storage(settings)
    say(f"reading reviewed VOCs from {source.describe()} and reviewed CSVs under {settings.prefix}")
    df = training_frame(source, storage, settings.prefix, until=until)
    say(f"{df.height} training VOCs; reading every VOC's labels for the taxonomy")
    everything = source.read_history(before=None)
    say("reading the taxonomy")
    tax = source.read_taxonomy()
    if tax is None and settings.taxonomy_path:
        tax = Taxonomy.from_csv_text(Path(settings.taxonomy_path).read_text("utf-8"))
    return df, everything, tax


def _recipe(settings: VocSettings, kind: str) -> ChallengerRecipe:
    """What ``voc-train`` trains for ``kind``: its seed, recipe selection and the trainer options
    the kind reads from ``VOC_MODEL__*`` (:attr:`voc.model_kinds.ModelKind.settings_options`)."""
    m = settings.model
    options = {opt: getattr(m, name) for opt, name in model_kind(kind).settings_options.items()}
    return ChallengerRecipe(kind=kind, seed=m.seed, select=m.select_recipe, options=options)


def _step_logger(step: str) -> Any:
    """``say(line)``: logs ``"{step}: {line} (t s)"`` at INFO on the run logger, ``t`` the seconds
    since this call, so a long step shows where it is (the first line within a second)."""
    logger, t0 = get_run_logger(), time.perf_counter()

    def say(line: str) -> None:
        logger.info("%s: %s (%.1f s)", step, line, time.perf_counter() - t0)

    return say


@task(name="fit-challenger", task_run_name="fit-challenger-{kind}-{version}", cache_policy=NO_CACHE)
def fit_challenger(
    settings: VocSettings, df: pl.DataFrame, everything: pl.DataFrame, base_tax: Taxonomy | None, kind: str, version: str
) -> tuple[Any, Any, Taxonomy, list[str]]:
    """The challenger's main tagger (:func:`voc.training.train_challenger`), its report, the
    taxonomy it was trained with (:func:`voc.training.challenger_taxonomy`) and notes."""
    say = _step_logger("fit-challenger")
    tok = KiwiTokenizer(cache_size=200_000)  # Kiwi's analyser loads on first use, in the next step
    n_all = df.height + everything.filter(~pl.col("voc_id").is_in(df["voc_id"].implode())).height
    say(f"resolving the taxonomy on {n_all} VOCs (loads Kiwi; Kiwi nouns of {df.height} training VOCs when their "
        "labels are not the configured taxonomy's: about a minute on 1,000 VOCs, 2 cores)")
    taxonomy, notes = challenger_taxonomy(
        df, everything, base_tax or default_taxonomy(), use_reply=settings.model.use_reply, tokenizer=tok
    )
    say(f"taxonomy: {', '.join(f'{d} {len(taxonomy.rows_of(d))} classes' for d in taxonomy.dimensions())}; fitting {kind}")
    tagger, report, more = train_challenger(
        df, taxonomy, _recipe(settings, kind), version=version, use_reply=settings.model.use_reply, tokenizer=tok,
        progress=get_run_logger().info,
    )
    return tagger, report, taxonomy, notes + more


@task(name="fit-registration-variant", task_run_name="fit-registration-variant-{kind}-{version}", cache_policy=NO_CACHE)
def fit_registration_variant(
    settings: VocSettings, df: pl.DataFrame, taxonomy: Taxonomy, kind: str, version: str, tokenizer: KiwiTokenizer | None
) -> tuple[Any, Any]:
    """The registration-time tagger of the challenger: same kind, taxonomy, rows and held-out
    split as the reply-aware one, reading title + request only (what exists when a VOC is filed)."""
    tok = tokenizer if isinstance(tokenizer, KiwiTokenizer) else KiwiTokenizer(cache_size=200_000)
    tagger, report, _ = train_challenger(
        df, taxonomy, _recipe(settings, kind), version=version, use_reply=False, tokenizer=tok, progress=get_run_logger().info
    )
    return tagger, report


@task(name="add-cpu-runtime", task_run_name="add-cpu-runtime-{local.name}", cache_policy=NO_CACHE)
def add_cpu_runtime(
    settings: VocSettings, tagger: Any, local: Path, df: pl.DataFrame, holdout_ids: dict[str, list[str]]
) -> dict[str, Any]:
    """Write the int8 ONNX Runtime copy of a KoBERT model into its saved directory, checked on
    the held-out rows (:func:`voc.classify.kobert_onnx.add_int8_runtime`). Returns the check
    (``kept``, ``reason``, per-head agreement) or ``{"kept": None, "reason": ...}`` when skipped."""
    from voc.classify import kobert_onnx

    if not settings.model.kobert_int8:
        return {"kept": None, "reason": "int8 copy disabled (VOC_MODEL__KOBERT_INT8=false)", "runtime": "torch"}
    if not kobert_onnx.onnx_runtime_available():
        return {"kept": None, "reason": f"no int8 copy: {kobert_onnx.INSTALL_HINT}", "runtime": "torch"}
    ids = sorted(set().union(*(set(v) for v in holdout_ids.values()))) if holdout_ids else []
    rows = df.filter(pl.col("voc_id").is_in(ids)) if ids else df.head(0)
    if rows.height == 0:  # tiny training sets: check on the training rows rather than nothing
        rows = df.head(200)
    texts, _ = frame_texts(rows, use_reply=tagger.use_reply)
    try:
        return kobert_onnx.add_int8_runtime(tagger, local, texts, min_agreement=settings.model.kobert_int8_min_agreement)
    except Exception as e:  # noqa: BLE001 - the trained model must not be lost to a failed export; CPU workers use fp32
        import shutil

        shutil.rmtree(local / kobert_onnx.ONNX_DIR, ignore_errors=True)
        get_run_logger().warning("int8 copy of %s failed: %s", local.name, e)
        return {"kept": None, "reason": f"no int8 copy: export failed ({type(e).__name__}: {e})", "runtime": "torch"}


def audit_training_labels(
    local_dir: Path, df: pl.DataFrame, taxonomy: Taxonomy | None, *, use_reply: bool = True, seed: int = 0,
    n_splits: int = 5, tokenizer: KiwiTokenizer | None = None, settled: Any = (),
) -> dict[str, Any]:
    """The label audit of a training frame (:mod:`voc.label_audit`, confident learning), written
    into the model version directory ``local_dir`` before it is published: ``label_audit.csv``
    (every likely label error, columns :data:`voc.label_audit.SUSPECT_COLUMNS`) and
    ``label_audit.html`` (health score, top suspects, overlapping classes; texts masked).

    ``df`` is the training frame (its ``reviewed_*`` labels, canonicalised by ``taxonomy``);
    every dimension with at least two labelled classes is audited (``voc.label_audit.audit_frame``).
    Rows a reviewer settled (``settled``: ``(voc_id, dimension, label)``,
    :func:`voc.label_fixes.decided_labels`) are left out of the suspects
    (:func:`voc.label_fixes.drop_decided`); the CSV carries each suspect's building, date and
    masked title for the review workbook's 이전 라벨 점검 sheet.

    Returns
    -------
    dict
        JSON-ready ``{"csv", "html", "dimensions": [{dimension, n_rows, n_classes, n_issues,
        health, …}]}``; ``{"skipped": reason}`` when no dimension has two classes or too few
        building-months to fold.
    """
    from voc.label_audit import audit_frame, write_audit_report

    try:
        audits = audit_frame(df, taxonomy, use_reply=use_reply, n_splits=n_splits, seed=seed, tokenizer=tokenizer)
    except ValueError as e:  # e.g. one building-month only: nothing to cross-validate
        return {"skipped": str(e)}
    if not audits:
        return {"skipped": "no dimension holds labelled rows of at least two classes"}
    from voc.label_fixes import drop_decided

    audits = [drop_decided(a, settled) for a in audits]
    shown = df.select(pl.concat_str([pl.col("title").fill_null(""), pl.col("request_contents").fill_null("")], separator=" "))
    details = {r["voc_id"]: r for r in df.select("voc_id", "building_id", "created_at", "title").iter_rows(named=True)}
    # title + request as filed; write_audit_report masks personal details ([전화번호], [이름], …)
    return write_audit_report(local_dir, audits, dict(zip(df["voc_id"].to_list(), shown.to_series().to_list())),
                              title=Path(local_dir).name, details=details)


@task(name="label-audit", task_run_name="label-audit-{local_dir.name}", cache_policy=NO_CACHE)
def label_audit_task(
    settings: VocSettings, local_dir: Path, df: pl.DataFrame, taxonomy: Taxonomy | None, tokenizer: KiwiTokenizer | None
) -> dict[str, Any]:
    """:func:`audit_training_labels` as a step of ``voc-train``, plus a Prefect table artifact of
    the top suspects (cells escaped with :mod:`voc.mdtext`). An audit that fails is logged and
    recorded (``{"skipped": reason}``); it never costs the trained model."""
    from voc.label_audit import REPORT_TOP

    say = _step_logger("label-audit")
    say(f"auditing the labels of {df.height} training VOCs (confident learning, 5 grouped folds)")
    tok = tokenizer if isinstance(tokenizer, KiwiTokenizer) else None
    try:
        from flows.adapters.label_review import read_label_fixes
        from voc.label_fixes import decided_labels

        settled = decided_labels(read_label_fixes(open_storage(settings), settings.prefix))  # reviewers decided these
        res = audit_training_labels(local_dir, df, taxonomy, use_reply=settings.model.use_reply,
                                    seed=settings.model.seed, tokenizer=tok, settled=settled)
    except Exception as e:  # noqa: BLE001 - the audit is advice: a failure must not lose the model
        get_run_logger().warning("label audit failed: %s: %s", type(e).__name__, e)
        return {"skipped": f"{type(e).__name__}: {e}"}
    if "skipped" in res:
        say(f"skipped: {res['skipped']}")
        return res
    sus = pl.read_csv(Path(local_dir) / res["csv"], infer_schema=False)
    rows = [
        {k: md_escape(r[k] or "") for k in ("dimension", "rank", "voc_id", "given_label", "suggested_label", "score", "text")}
        for d in sus["dimension"].unique(maintain_order=True).to_list()
        for r in sus.filter(pl.col("dimension") == d).head(REPORT_TOP).iter_rows(named=True)
    ]
    if rows:
        create_table_artifact(key="voc-train-label-audit", table=rows,
                              description="Likely label errors of the training rows (lowest label quality first)")
    say("; ".join(f"{d['dimension']} health {d['health']:.3f}, {d['n_issues']} suspects" for d in res["dimensions"]))
    return res


@task(name="publish-model", task_run_name="publish-model-{local_dir.name}", **MODEL_IO_TASK, cache_policy=NO_CACHE)
def publish_model(settings: VocSettings, local_dir: Path, promote: bool, info: dict[str, Any]) -> str:
    storage = open_storage(settings)
    uri = upload_model(storage, settings.prefix, local_dir)
    if promote:
        write_champion(storage, settings.prefix, info)
    return uri


@flow(name="voc-train", log_prints=False)
@fail_with_reason()  # the run's Failed state message is the reason ("ValueError: …")
def voc_train(
    until: str | int | None = None,
    model: str | None = None,
    storage: str | None = None,
    source: SourceParam = None,
    kobert_base: str | None = None,
    source_encoding: str | None = None,
) -> dict[str, Any]:
    """Train a challenger (reply-aware and registration-time variants) on all reviewed VOCs
    registered before ``until`` ("YYYY-MM"; default: everything) and promote it to champion when
    neither variant's held-out macro-F1 is below the champion's on the same held-out rows
    (:func:`voc.training.decide`). ``storage``, ``source``, ``source_encoding`` override
    ``VOC_STORAGE``, ``VOC_SOURCE``, ``VOC_SOURCE_ENCODING``; a ``source`` DSN with a password is
    refused (:mod:`flows.secrets_guard`: the password goes in ``VOC_DB__DSN`` or ``~/.pgpass``).

    Returns the summary dict (also published as Prefect artifacts).
    """
    refuse_dsn_password(source, where="parameter 'source' of flow voc-train")
    logger = get_run_logger()
    settings = _train_settings(model=model, storage=storage, source=source, kobert_base=kobert_base,
                               source_encoding=source_encoding)
    until_m = parse_month(until) if until not in (None, "") else None
    version = new_version()
    logger.info("voc-train %s %s: loading the training data (reviewed VOCs before %s)", settings.model.kind, version, until_m or "now")
    df, everything, base_tax = load_training_data(settings, until_m)
    labels = label_counts(df)
    logger.info(
        "training %s on %d VOCs (labels: %s) before %s",
        settings.model.kind, df.height, ", ".join(f"{d} {n}" for d, n in labels.items()), until_m or "now",
    )
    variants, taxonomy, notes = _fit_variants(settings, df, everything, base_tax, version)
    champ_info, decision = _decide_promotion(settings, df, taxonomy, variants)
    tagger, report = next(iter(variants.values()))  # the main variant
    name = model_dir_name(tagger.kind, version)
    meta, variant_meta = _version_meta(settings, name, until_m, df, variants, notes, decision, champ_info)
    uri, meta, audit = _store_version(settings, name, version, variants, meta, variant_meta, df, decision)
    summary = _summary(name, uri, meta, decision, variants, audit)
    _publish_train_artifacts(summary, report.metrics)
    logger.info("model %s: %s (%s)", name, meta["status"], decision.reason)
    return summary


def _train_settings(**given: str | None) -> VocSettings:
    """Settings of a ``voc-train`` run: the environment's, with the flow's parameters applied
    (``storage``, ``source``, ``source_encoding``; ``model`` and ``kobert_base`` into ``model``)."""
    settings = get_settings(storage=given["storage"], source=given["source"], source_encoding=given["source_encoding"])
    update = {k: v for k, v in {"kind": given["model"], "kobert_base": given["kobert_base"]}.items() if v}
    if update:
        settings = settings.model_copy(update={"model": settings.model.model_copy(update=update)})
    return settings


def _fit_variants(
    settings: VocSettings, df: pl.DataFrame, everything: pl.DataFrame, base_tax: Taxonomy | None, version: str
) -> tuple[dict[str, tuple[Any, Any]], Taxonomy, list[str]]:
    """The challenger's taggers by variant, main first: reply-aware unless
    ``VOC_MODEL__USE_REPLY=false`` (then the main one is the registration-time one); a reply-aware
    main gets a registration-time twin (``VOC_MODEL__REGISTRATION_VARIANT``). Also the taxonomy
    they were trained with and the notes for the model's warnings."""
    tagger, report, taxonomy, notes = fit_challenger(settings, df, everything, base_tax, settings.model.kind, version)
    main = "reply" if tagger.use_reply else "registration"
    variants: dict[str, tuple[Any, Any]] = {main: (tagger, report)}
    if main == "reply" and settings.model.registration_variant:
        get_run_logger().info("training the registration-time variant (title + request) of %s", tagger.kind)
        variants["registration"] = fit_registration_variant(
            settings, df, tagger.taxonomy, tagger.kind, version, _kiwi_of(tagger)
        )
    return variants, taxonomy, notes


def _kiwi_of(tagger: Tagger) -> KiwiTokenizer | None:
    """The Kiwi analyser a Kiwi-token tagger already holds (shared by the next fits), else None."""
    return tagger.kiwi_tokenizer if isinstance(tagger, KiwiTagger) else None

def _decide_promotion(
    settings: VocSettings, df: pl.DataFrame, taxonomy: Taxonomy, variants: dict[str, tuple[Any, Any]]
) -> tuple[dict[str, Any] | None, TrainingDecision]:
    """The champion's pointer (None when there is none) and the decision
    (:func:`voc.training.decide`) after measuring the champion on each variant's held-out rows
    (:func:`voc.training.measure_champion`). A champion that cannot be fetched, loaded or
    measured is logged and treated as absent: it must not block a new model."""
    store = open_storage(settings)
    champ_info = read_champion(store, settings.prefix)
    measured = None
    if champ_info is not None:
        try:
            champ_dir = fetch_model(store, settings.prefix, champion_name(champ_info), settings.model.cache_dir)
            champions = load_variants(champ_dir, kobert_runtime="torch")  # compared as trained, in full precision
            measured = measure_champion(champions, df, taxonomy, {v: rep.holdout_ids for v, (_, rep) in variants.items()})
        except Exception as e:  # noqa: BLE001 - an unreadable champion must not block a new model
            get_run_logger().warning("champion %s could not be evaluated (%s); treating as absent", champ_info.get("name"), e)
    return champ_info, decide({v: rep for v, (_, rep) in variants.items()}, measured, n_rows=df.height)


def _version_meta(
    settings: VocSettings,
    name: str,
    until: str | None,
    df: pl.DataFrame,
    variants: dict[str, tuple[Any, Any]],
    notes: list[str],
    decision: TrainingDecision,
    champ_info: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``meta.json`` fields of the version and of each variant (:func:`voc.modelstore.save_variants`).
    Keys as stored since the first versions (``status``, ``decision``, ``champion_metrics_same_rows``)."""
    champ = decision.champion_metrics or {}
    variant_meta = {
        v: {
            "n_train": rep.n_train,
            "n_holdout": rep.n_holdout,
            "metrics": rep.metrics,
            "fallback_dimensions": rep.fallback_dimensions,
            "warnings": rep.warnings,
            "review_threshold": _review_threshold(rep),
            "champion_metrics_same_rows": champ.get(v),
            "decision": decision.variants[v].reason,
            "recipe_selection": rep.selection,
        }
        for v, (_, rep) in variants.items()
    }
    main, (_, report) = next(iter(variants.items()))
    meta = {
        "name": name,
        "until": until,
        "n_rows": decision.n_rows,
        "labels": label_counts(df),
        "n_train": report.n_train,
        "n_holdout": report.n_holdout,
        "metrics": report.metrics,
        "fallback_dimensions": report.fallback_dimensions,
        "warnings": report.warnings + notes,
        "review_threshold": variant_meta[main]["review_threshold"],
        "status": decision.status,
        "decision": decision.reason,
        "champion_before": champ_info.get("name") if champ_info else None,
        "champion_metrics_same_rows": champ.get(main),
        "source": open_source(settings).describe(),
    }
    return meta, variant_meta


def _store_version(
    settings: VocSettings,
    name: str,
    version: str,
    variants: dict[str, tuple[Any, Any]],
    meta: dict[str, Any],
    variant_meta: dict[str, dict[str, Any]],
    df: pl.DataFrame,
    decision: TrainingDecision,
) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """Save the version locally (its taggers with their review thresholds, the int8 CPU copy of
    kinds that have one, the label audit), upload it and, when promoted, point the champion at
    it. Returns the uploaded URI, the final ``meta.json`` and the audit (None when off)."""
    for v, (t, _) in variants.items():
        if t.low_confidence_threshold is None and variant_meta[v]["review_threshold"] is not None:
            t.low_confidence_threshold = variant_meta[v]["review_threshold"]
    tagger = next(iter(variants.values()))[0]
    with tempfile.TemporaryDirectory() as tmp:
        local = save_variants(Path(tmp) / name, {v: t for v, (t, _) in variants.items()}, meta, variant_meta)
        if model_kind(tagger.kind).cpu_runtime:
            for v, (t, rep) in variants.items():
                vdir = variant_paths(local)[v]
                cpu = add_cpu_runtime(settings, t, vdir, df, rep.holdout_ids)
                vmeta = update_meta(vdir, {"cpu_runtime": cpu})
                if cpu.get("kept") is False:
                    update_meta(vdir, {"warnings": [*vmeta["warnings"], cpu["reason"]]})
                get_run_logger().info("CPU runtime of %s (%s): %s", name, v, cpu.get("reason"))
            meta = read_meta(local)
        audit: dict[str, Any] | None = None
        if settings.model.label_audit:
            audit = label_audit_task(settings, local, df, tagger.taxonomy, _kiwi_of(tagger))
        info = {"kind": tagger.kind, "version": version, "name": name, "promoted_reason": decision.reason}
        uri = publish_model(settings, local, decision.promote, info)
    return uri, meta, audit


def _summary(
    name: str,
    uri: str,
    meta: dict[str, Any],
    decision: TrainingDecision,
    variants: dict[str, tuple[Any, Any]],
    audit: dict[str, Any] | None,
) -> dict[str, Any]:
    """The flow's return value (printed by ``voc train --json``; JSON-native). Keys as before:
    ``status`` is ``champion`` or ``candidate`` (:data:`voc.training.NOT_PROMOTED`)."""
    report = next(iter(variants.values()))[1]
    summary: dict[str, Any] = {
        "model": name,
        "uri": uri,
        "status": meta["status"],
        "decision": decision.reason,
        "n_rows": decision.n_rows,
        "labels": meta["labels"],
        "n_train": report.n_train,
        "n_holdout": report.n_holdout,
        "fallback_dimensions": report.fallback_dimensions,
        "warnings": meta["warnings"],
        "metrics": _summary_metrics(report.metrics),
        "variants": {
            v: {"metrics": _summary_metrics(rep.metrics), "n_holdout": rep.n_holdout, "decision": decision.variants[v].reason}
            for v, (_, rep) in variants.items()
        },
        "recipes": {v: selection_summary(rep.selection) for v, (_, rep) in variants.items()},
    }
    if "cpu_runtime" in meta:
        summary["cpu_runtime"] = meta["cpu_runtime"]
    if audit is not None:
        summary["label_audit"] = (
            {**audit, "csv": f"{uri.rstrip('/')}/{audit['csv']}", "html": f"{uri.rstrip('/')}/{audit['html']}"}
            if "csv" in audit else audit
        )
    return summary


def _summary_metrics(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d: {k: m.get(k) for k in ("accuracy", "macro_f1", "weighted_f1", "ece", "review_capture")} for d, m in metrics.items()}


def _review_threshold(report: Any) -> float | None:
    """The held-out confidence threshold below which rows go to review first (subject's, else
    the first measured dimension's); None without held-out metrics."""
    sub = report.metrics.get("subject") or next(iter(report.metrics.values()), None)
    return sub.get("review_threshold") if sub else None


guard_flow_parameters(voc_train, "source")  # refused before a flow run (and its parameters) exists


def _publish_train_artifacts(summary: dict[str, Any], metrics: dict[str, dict[str, Any]]) -> None:
    rows = []
    for dim, m in metrics.items():
        for lab, pc in sorted(m.get("per_class", {}).items(), key=lambda kv: -kv[1]["support"]):
            rows.append({"dimension": md_escape(dim), "label": md_escape(lab),  # string cells render as Markdown
                         **{k: round(v, 4) if isinstance(v, float) else md_escape(v) if isinstance(v, str) else v for k, v in pc.items()}})
    if rows:
        create_table_artifact(key="voc-train-per-class", table=rows, description="Held-out precision/recall/F1 per class")
    # every interpolated string escaped (voc.mdtext): warnings and decisions quote labels and names
    md = [f"# voc-train: {md_code(summary['model'])} → **{md_escape(summary['status'])}**", "",
          f"- decision: {md_escape(summary['decision'])}",
          f"- rows: {summary['n_rows']} (train {summary['n_train']}, held-out {summary['n_holdout']})",
          "- labelled VOCs: " + ", ".join(f"{md_escape(d)} {n}" for d, n in summary["labels"].items())]
    for dim, m in summary["metrics"].items():
        md.append(f"- {md_escape(dim)}: " + ", ".join(f"{md_escape(k)} {v:.4f}" for k, v in m.items() if isinstance(v, float)))
    if summary["fallback_dimensions"]:
        md.append(f"- keyword fallback: {', '.join(md_escape(d) for d in summary['fallback_dimensions'])}")
    cpu = summary.get("cpu_runtime")
    if cpu:
        md.append(f"- CPU runtime: {md_escape(cpu.get('runtime'))} ({md_escape(cpu.get('reason'))})")
    md += selection_lines(summary.get("recipes", {}))
    audit = summary.get("label_audit")
    if audit and "csv" in audit:
        md += [f"- label audit ({md_escape(d['dimension'])}): health {d['health']:.3f}, {d['n_issues']} likely label errors "
               f"→ {md_code(audit['csv'])}" for d in audit["dimensions"]]
    elif audit:
        md.append(f"- label audit skipped: {md_escape(audit['skipped'])}")
    md += [f"- note: {md_escape(w)}" for w in summary["warnings"]]
    create_markdown_artifact(key="voc-train-summary", markdown="\n".join(md), description="Training summary")
    # the flow's return value, printed by `voc train --json`: JSON-native or the run fails (no
    # default=, which would turn anything into a string); every test that trains runs this
    json.dumps(summary)
