"""Model versions in storage: champion pointer, upload, download-once cache.

Batch tagging loads the champion's reply-aware tagger (:func:`load_champion`); the real-time
service (``flows/service/app.py``) loads every variant of a version (:func:`load_version_variants`) and
polls the pointer with :func:`read_champion_retrying`.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from config.settings import VocSettings
from flows.adapters.storage import Storage, StorageError
from flows.storage_layout import champion_key, models_dir
from voc.modelstore import load_tagger, load_variants, model_dir_name, read_meta
from voc.tagger import VOCTagger
from voc.taxonomy import Taxonomy, default_taxonomy

__all__ = [
    "read_champion",
    "read_champion_retrying",
    "champion_name",
    "ModelVersion",
    "load_version_variants",
    "write_champion",
    "fetch_model",
    "load_champion",
    "keyword_only_tagger",
    "load_model_version",
    "upload_model",
    "NoTrainedModelError",
    "require_model_or_keyword_opt_in",
]

log = logging.getLogger(__name__)


def read_champion(storage: Storage, prefix: str) -> dict[str, Any] | None:
    """``models/champion.json`` (``{"kind", "version", "name", ...}``) or None."""
    key = champion_key(prefix)
    if not storage.exists(key):
        return None
    return json.loads(storage.read_bytes(key).decode("utf-8"))


def champion_name(info: dict[str, Any]) -> str:
    """The model directory name a ``champion.json`` points at (``name``, else ``{kind}_{version}``).

    Raises
    ------
    ValueError
        Neither ``name`` nor ``kind`` and ``version`` are there (the message shows the keys).
    """
    if info.get("name"):
        return str(info["name"])
    if info.get("kind") and info.get("version"):
        return model_dir_name(str(info["kind"]), str(info["version"]))
    raise ValueError(f"champion.json names no model (keys: {sorted(info)}); expected 'name' or 'kind' + 'version'")


def read_champion_retrying(
    storage: Storage, prefix: str, *, attempts: int = 3, deadline_s: float = 60.0, first_wait_s: float = 0.5
) -> dict[str, Any] | None:
    """:func:`read_champion` retried on transient I/O errors (:func:`flows.adapters.retries.is_transient`:
    refused, reset, timed out, S3 5xx / throttling) up to ``attempts`` times, waiting
    ``first_wait_s`` then doubling (at most 4 s), and starting no attempt after ``deadline_s``
    seconds. Each attempt is itself bounded by the storage's timeouts (S3: connect + read
    timeouts, :func:`flows.adapters.retries.s3_operation_budget_s`). Other errors (malformed JSON, access
    denied) are raised at once.

    Raises
    ------
    StorageError, OSError
        The last transient error once attempts or time are used up.
    ValueError
        ``champion.json`` is not JSON.
    """
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential

    from flows.adapters.retries import is_transient

    for attempt in Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(max(1, attempts)) | stop_after_delay(deadline_s),
        wait=wait_exponential(multiplier=first_wait_s, max=4.0),
        reraise=True,
    ):
        with attempt:
            return read_champion(storage, prefix)
    return None  # pragma: no cover - Retrying either returns or raises


@dataclass(frozen=True)
class ModelVersion:
    """Every tagger variant of one model version, loaded.

    ``name`` is the directory name (``{kind}_{version}``, the tags' ``model_version``);
    ``taggers`` maps a variant (:data:`voc.modelstore.VARIANTS`) to its tagger; ``meta`` is the
    version's ``meta.json``; ``path`` the local copy."""

    name: str
    taggers: dict[str, Any]
    meta: dict[str, Any]
    path: Path
    info: dict[str, Any] = field(default_factory=dict)


def load_version_variants(
    settings: VocSettings, storage: Storage, name: str, *, info: dict[str, Any] | None = None
) -> ModelVersion:
    """Download model ``name`` once (:func:`fetch_model`) and load all its variants
    (:func:`voc.modelstore.load_variants`, KoBERT with ``settings.model.kobert_runtime``).

    Raises
    ------
    StorageError
        The version is not in storage (the message names it).
    FileNotFoundError, ValueError
        The downloaded directory is not a model version.
    """
    try:
        local = fetch_model(storage, settings.prefix, name, settings.model.cache_dir)
    except StorageError as e:
        raise StorageError(f"model {name} is missing from {settings.prefix}/models: {e}") from e
    taggers = load_variants(local, kobert_runtime=settings.model.kobert_runtime)
    return ModelVersion(name=name, taggers=taggers, meta=read_meta(local), path=local, info=dict(info or {}))


def write_champion(storage: Storage, prefix: str, info: dict[str, Any]) -> str:
    return storage.write_bytes(
        champion_key(prefix), json.dumps(info, ensure_ascii=False, indent=2).encode("utf-8"), content_type="application/json"
    )


def upload_model(storage: Storage, prefix: str, local_dir: Path) -> str:
    """Copy a saved model directory to ``{prefix}/models/{dir name}``; returns its URI."""
    return storage.upload_dir(Path(local_dir), f"{models_dir(prefix)}/{Path(local_dir).name}")


def fetch_model(storage: Storage, prefix: str, name: str, cache_dir: Path) -> Path:
    """Local copy of model ``name`` (downloaded once into ``cache_dir/<storage-hash>/name``)."""
    import hashlib

    tag = hashlib.sha1(f"{storage!r}|{prefix}".encode()).hexdigest()[:10]
    local = Path(cache_dir) / tag / name
    if (local / "meta.json").is_file():
        return local
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=cache_dir))
    try:
        storage.download_dir(f"{models_dir(prefix)}/{name}", tmp)
        read_meta(tmp)
        local.parent.mkdir(parents=True, exist_ok=True)
        if local.exists():
            shutil.rmtree(local)
        tmp.rename(local)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return local


def keyword_only_tagger(taxonomy: Taxonomy | None = None) -> VOCTagger:
    """A tagger with no trained model: both dimensions by taxonomy keywords."""
    return VOCTagger(kind="keyword", version="default", taxonomy=taxonomy or default_taxonomy())


def load_champion(settings: VocSettings, storage: Storage, *, taxonomy: Taxonomy | None = None) -> tuple[Any, dict[str, Any]]:
    """The champion tagger and its meta; a keyword-only tagger (``meta["fallback"]``) when no
    model was trained yet."""
    info = read_champion(storage, settings.prefix)
    if info is None:
        log.warning("no champion model under %s/models in %s", settings.prefix, settings.storage)
        return keyword_only_tagger(taxonomy), {"kind": "keyword", "version": "default", "fallback": True}
    name = info.get("name") or model_dir_name(info["kind"], info["version"])
    local = _fetch_listed(settings, storage, name)
    return load_tagger(local, kobert_runtime=settings.model.kobert_runtime), read_meta(local)


def _fetch_listed(settings: VocSettings, storage: Storage, name: str) -> Path:
    try:
        return fetch_model(storage, settings.prefix, name, settings.model.cache_dir)
    except StorageError as e:
        raise StorageError(f"champion model {name} listed in champion.json is missing: {e}") from e


def load_model_version(settings: VocSettings, storage: Storage, name: str) -> Any:
    """The batch tagger of model version ``name`` (``{prefix}/models/{name}``), fetched into
    ``settings.model.cache_dir`` once. Raises :class:`StorageError` when it is missing."""
    return load_tagger(_fetch_listed(settings, storage, name), kobert_runtime=settings.model.kobert_runtime)


class NoTrainedModelError(RuntimeError):
    """``full``/``tagging-only`` found no champion although labelled history exists."""


def require_model_or_keyword_opt_in(settings: VocSettings, source: Any) -> None:
    """Refuse keyword-only tagging when a model could have been trained.

    Called when no champion exists. Keyword tagging is allowed when the operator opted in
    (``VOC_MODEL__ALLOW_KEYWORD_ONLY=true``) or when the source holds no labelled VOC at all
    (a new customer: the taxonomy's keywords are all there is).

    Raises
    ------
    NoTrainedModelError
        Naming ``{prefix}/models`` and the storage, and the two ways out.
    """
    if settings.model.allow_keyword_only:
        return
    from voc.schema import REVIEWED_LABEL_COLUMNS

    hist = source.read_history(before=None)
    cols = [c for c in REVIEWED_LABEL_COLUMNS if c in hist.columns]
    labelled = hist.height > 0 and bool(cols) and hist.select(pl.any_horizontal([pl.col(c).is_not_null() for c in cols]).any()).item()
    if labelled:
        raise NoTrainedModelError(
            f"no trained model under {settings.prefix}/models in {settings.storage} — run voc-train first "
            f"(`voc train`, or the voc-train/train deployment); to tag by taxonomy keywords only, set "
            f"VOC_MODEL__ALLOW_KEYWORD_ONLY=true"
        )
