"""Model versions in storage: champion pointer, upload, download-once cache."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from config.settings import VocSettings
from flows.keys import champion_key, models_dir
from flows.storage import Storage, StorageError
from voc.modelstore import load_tagger, model_dir_name, read_meta
from voc.taxonomy import Taxonomy, default_taxonomy
from voc.tagger import VOCTagger

__all__ = [
    "read_champion",
    "write_champion",
    "fetch_model",
    "load_champion",
    "keyword_only_tagger",
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
    try:
        local = fetch_model(storage, settings.prefix, name, settings.model.cache_dir)
    except StorageError as e:
        raise StorageError(f"champion model {name} listed in champion.json is missing: {e}") from e
    return load_tagger(local, kobert_runtime=settings.model.kobert_runtime), read_meta(local)


class NoTrainedModelError(RuntimeError):
    """``full``/``tagging-only`` found no champion although labelled history exists."""


def require_model_or_keyword_opt_in(settings: VocSettings) -> None:
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
    from flows.sources import open_source
    from voc.schema import REVIEWED_LABEL_COLUMNS

    hist = open_source(settings).read_history(before=None)
    cols = [c for c in REVIEWED_LABEL_COLUMNS if c in hist.columns]
    labelled = hist.height > 0 and bool(cols) and hist.select(pl.any_horizontal([pl.col(c).is_not_null() for c in cols]).any()).item()
    if labelled:
        raise NoTrainedModelError(
            f"no trained model under {settings.prefix}/models in {settings.storage} — run voc-train first "
            f"(`voc train`, or the voc-train/train deployment); to tag by taxonomy keywords only, set "
            f"VOC_MODEL__ALLOW_KEYWORD_ONLY=true"
        )
