"""Adapters opened from settings: the VOC source, the output storage, the review backend and the
model, bundled once per run and once per worker process.

This module is the only place that knows which backend a setting names (``postgresql://`` →
:class:`flows.adapters.db.PostgresSource`, ``s3://`` → :class:`flows.adapters.s3.S3Storage`, …), so the backend
modules import only the base interfaces (:mod:`flows.adapters.sources`, :mod:`flows.adapters.storage`) and never
each other. It keeps three registries, filled at the end of the section "registries":

* sources (:func:`register_source`): a name, ``claims(settings)`` and ``open(settings)``; the
  first registered kind that claims ``settings.source`` opens it (``postgresql``, then ``csv``);
* storages (:func:`register_storage`): URI scheme of ``settings.storage`` → factory (``s3``; ``""``
  = a local directory);
* review backends (:func:`register_review_backend`): ``settings.review.backend`` → factory
  (``xlsx``, ``gsheets``).

A new backend = its module under ``flows/adapters/`` plus one ``register_*`` line there.
Optional capabilities are protocols checked with ``isinstance``:
:class:`flows.adapters.sources.TagSink` (a source that takes tags back),
:class:`flows.adapters.sources.TrainingRowSource`, :class:`flows.adapters.storage.PresigningStorage`.

Layering (see ``docs/architecture.md``)::

    voc/            pure library: pipeline, tagger, review merge, dashboard (no I/O)
    flows/*.py      Prefect flows and tasks: read → call voc.pipeline → write
    flows/resources adapters from settings (this module), cached per process
    flows/db, s3, storage, sources, review_backends   the adapters themselves

Per-process cache: :func:`resources` returns the same :class:`Resources` for equal settings within
one process, so the building tasks of a run share one CSV parse, one PostgreSQL pool and one
loaded model whether they run as threads of the flow process or on Dask worker processes (each
worker opens its own bundle on its first task). Only plain data crosses task boundaries:
settings, frames, :class:`ModelRef`.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import pickle
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.settings import VocSettings
from flows.adapters.sources import CsvSource, SourceError, VocSource
from flows.adapters.storage import LocalStorage, PresigningStorage, Storage
from flows.secrets_guard import SOURCE_NOT_FOUND

if TYPE_CHECKING:  # imported where used: the review backends load openpyxl/gspread, voc.tagger scikit-learn
    from flows.adapters.review_backends import ReviewBackend
    from voc.tagger import Tagger

__all__ = [
    "Resources",
    "ModelRef",
    "resources",
    "browser_link",
    "open_source",
    "open_storage",
    "open_review_backend",
    "close_all",
    "SourceKind",
    "register_source",
    "register_storage",
    "register_review_backend",
    "storage_scheme",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# registries: which adapter a setting names (one registration per backend)


@dataclass(frozen=True)
class SourceKind:
    """A registered VOC source: ``claims(settings)`` says whether ``settings.source`` names one of
    its kind, ``open(settings)`` opens it."""

    name: str
    claims: Callable[[VocSettings], bool]
    open: Callable[[VocSettings], VocSource]


ReviewBackendFactory = Callable[[VocSettings, Callable[[], Storage]], "ReviewBackend"]
"""``(settings, storage) -> backend``; ``storage()`` opens the run's storage when the backend keeps
its sheets there (called at most once)."""

_SOURCES: dict[str, SourceKind] = {}
_STORAGES: dict[str, Callable[[VocSettings], Storage]] = {}
_REVIEW_BACKENDS: dict[str, ReviewBackendFactory] = {}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def register_source(name: str, claims: Callable[[VocSettings], bool], open: Callable[[VocSettings], VocSource]) -> None:
    """Register a VOC source kind (replacing one of that name). :func:`open_source` asks the
    registered kinds in registration order; the first whose ``claims`` is true opens the source."""
    _SOURCES[name] = SourceKind(name, claims, open)


def register_storage(scheme: str, factory: Callable[[VocSettings], Storage]) -> None:
    """Register the storage of URI scheme ``scheme`` (``s3`` for ``s3://bucket``; ``""`` for a
    local path, a value without ``scheme://``)."""
    _STORAGES[scheme] = factory


def register_review_backend(name: str, factory: ReviewBackendFactory) -> None:
    """Register the review backend ``VOC_REVIEW__BACKEND=name`` selects."""
    _REVIEW_BACKENDS[name] = factory


def storage_scheme(uri: str) -> str:
    """The scheme of a storage URI (``s3`` for ``s3://bucket/root``), ``""`` for a local path."""
    m = _SCHEME.match(uri)
    return m.group(1).lower() if m else ""


def _review_backend_factory(name: str) -> ReviewBackendFactory:
    try:
        return _REVIEW_BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"VOC_REVIEW__BACKEND={name!r} is not a review backend; registered: {', '.join(_REVIEW_BACKENDS)}"
        ) from None


def open_source(settings: VocSettings) -> VocSource:
    """A new source for ``settings.source``: the first registered kind that claims it — PostgreSQL
    for a DSN (``postgresql://`` URL, libpq keywords) or ``postgres`` (+ ``VOC_DB__DSN``), a CSV
    file in the VOC schema (``source_encoding``) for an existing file. Prefer :func:`resources`
    in flows: it opens each source once per process.

    Raises
    ------
    flows.adapters.sources.SourceError
        No kind claims the value (neither an existing file nor a DSN; the message does not repeat
        the value: a mistyped DSN may hold a secret, and the message reaches logs and run states).
    """
    for kind in _SOURCES.values():
        if kind.claims(settings):
            return kind.open(settings)
    raise SourceError(SOURCE_NOT_FOUND)


def open_storage(settings: VocSettings) -> Storage:
    """A new storage for ``settings.storage``, by its URI scheme: ``s3://bucket[/root]`` → S3, a
    path without scheme → a local directory. Keys passed to it are relative to the root and start
    with ``settings.prefix``.

    Raises
    ------
    ValueError
        A ``scheme://`` no storage is registered for (the message names the registered ones).
    """
    scheme = storage_scheme(settings.storage)
    factory = _STORAGES.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" if s else "a local path" for s in _STORAGES)
        raise ValueError(f"VOC_STORAGE: no storage for {scheme}:// URIs; use {known}")
    return factory(settings)


def open_review_backend(settings: VocSettings, storage: Storage | None = None) -> ReviewBackend:
    """The backend ``settings.review.backend`` names: ``xlsx`` →
    :class:`flows.adapters.review_backends.XlsxReviewBackend` in ``storage`` (default: :func:`open_storage`
    of ``settings``) under ``settings.prefix`` — :class:`flows.adapters.review_backends.PerBuildingXlsxReviewBackend`
    (one workbook per building) with ``VOC_REVIEW__PER_BUILDING=true``; ``gsheets`` →
    :class:`flows.adapters.review_backends.GSheetsReviewBackend` (``settings.review``; always one
    spreadsheet per month).

    Raises
    ------
    ValueError
        The name is not a registered backend.
    flows.adapters.review_backends.ReviewBackendError
        ``gsheets`` without usable credentials (see ``make_gspread_client``).
    """
    factory = _review_backend_factory(settings.review.backend)
    return factory(settings, lambda: storage if storage is not None else open_storage(settings))


def _postgres(settings: VocSettings) -> VocSource:
    from flows.adapters.db import PostgresSource

    return PostgresSource.from_settings(settings)


def _csv(settings: VocSettings) -> VocSource:
    return CsvSource(settings.source, encoding=settings.source_encoding)


def _s3(settings: VocSettings) -> Storage:
    from flows.adapters.s3 import S3Storage

    return S3Storage.from_settings(settings)


def _xlsx(settings: VocSettings, storage: Callable[[], Storage]) -> ReviewBackend:
    from flows.adapters.review_backends import PerBuildingXlsxReviewBackend, XlsxReviewBackend

    cls = PerBuildingXlsxReviewBackend if settings.review.per_building else XlsxReviewBackend
    return cls(storage(), settings.prefix)


def _gsheets(settings: VocSettings, storage: Callable[[], Storage]) -> ReviewBackend:
    from flows.adapters.review_backends import GSheetsReviewBackend

    return GSheetsReviewBackend(settings.review)


register_source("postgresql", lambda s: s.source_is_postgres, _postgres)
register_source("csv", lambda s: Path(s.source).is_file(), _csv)
register_storage("", lambda s: LocalStorage(s.storage))
register_storage("s3", _s3)
register_review_backend("xlsx", _xlsx)
register_review_backend("gsheets", _gsheets)


@dataclass(frozen=True)
class ModelRef:
    """Which model a run tags with, as plain data a worker process can receive.

    ``name`` is a model version directory (``linear_20261120_040000``) under
    ``{prefix}/models``; ``None`` means no trained model: taxonomy keywords only.
    """

    name: str | None
    kind: str = "keyword"
    version: str = "default"
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def label(self) -> str:
        return f"{self.kind}_{self.version}"


def browser_link(settings: VocSettings, storage: Storage, key: str, *, expires_s: int | None = None) -> str:
    """A link a browser opens for ``key`` (Prefect artifacts, the month index): ``{public_base_url}/{key}``
    when ``VOC_PUBLIC_BASE_URL`` is set; else a presigned HTTPS URL for S3 valid ``expires_s``
    seconds (default ``VOC_S3__PRESIGN_EXPIRY_S``; SigV4 allows at most 7 days) or a ``file://``
    URL for a local directory."""
    if settings.public_base_url:
        from urllib.parse import quote

        return f"{settings.public_base_url.rstrip('/')}/{quote(key)}"
    if isinstance(storage, PresigningStorage):
        return str(storage.presigned_url(key, expires_s=settings.s3.presign_expiry_s if expires_s is None else expires_s))
    from pathlib import Path

    return Path(storage.uri(key)).as_uri()


class Resources:
    """The adapters of one settings value, opened lazily and kept for the process's life.

    Attributes are created on first use; :meth:`close` releases the source's connections.
    ``cpu_lock`` serialises the CPU-bound part of building tasks that share this process (the
    thread runner): the Kiwi analyser and the model are used by one building at a time per
    process, and parallelism comes from processes (Dask), not threads.
    """

    def __init__(self, settings: VocSettings) -> None:
        self.settings = settings
        self.cpu_lock = threading.Lock()
        self._lock = threading.Lock()
        self._source: VocSource | None = None
        self._storage: Storage | None = None
        self._review: ReviewBackend | None = None
        self._taggers: dict[ModelRef, Tagger] = {}
        _review_backend_factory(settings.review.backend)  # an unknown name fails here, before a run reads anything

    @property
    def source(self) -> VocSource:
        with self._lock:
            if self._source is None:
                self._source = open_source(self.settings)
            return self._source

    @property
    def storage(self) -> Storage:
        with self._lock:
            if self._storage is None:
                self._storage = open_storage(self.settings)
            return self._storage

    @property
    def review_backend(self) -> ReviewBackend:
        storage = self.storage
        with self._lock:
            if self._review is None:
                self._review = open_review_backend(self.settings, storage)
            return self._review

    def champion(self) -> ModelRef:
        """The current champion as a :class:`ModelRef` (reads ``models/champion.json``; a
        keyword-only reference when none was trained). Raises :class:`flows.adapters.storage.StorageError`."""
        from flows.adapters.model_store import champion_name, read_champion

        info = read_champion(self.storage, self.settings.prefix)
        if info is None:
            return ModelRef(None, meta={"kind": "keyword", "version": "default", "fallback": True})
        return ModelRef(champion_name(info), kind=str(info.get("kind", "")), version=str(info.get("version", "")), meta=dict(info))

    def loaded_tagger(self, ref: ModelRef) -> Tagger | None:
        """The tagger of ``ref`` if this process loaded it already (:meth:`tagger`), else None."""
        with self._lock:
            return self._taggers.get(ref)

    def tagger(self, ref: ModelRef) -> Tagger:
        """The tagger ``ref`` names, downloaded (once, into ``model.cache_dir``) and loaded once
        per process. Raises :class:`flows.adapters.storage.StorageError` when the version is missing."""
        with self._lock:
            hit = self._taggers.get(ref)
        if hit is not None:
            return hit
        from flows.adapters.model_store import keyword_only_tagger, load_model_version
        from voc.tagger import KiwiTagger

        tagger = keyword_only_tagger() if ref.name is None else load_model_version(self.settings, self.storage, ref.name)
        if self.settings.task_runner != "thread" and isinstance(tagger, KiwiTagger):
            # Dask: one worker process per core, so each Kiwi analyser gets one thread (its
            # default, one thread per core, would put cores² threads on the machine)
            tagger.kiwi_tokenizer.num_workers = 1
        with self._lock:
            return self._taggers.setdefault(ref, tagger)

    def close(self) -> None:
        """Release the source's connections (a later use reopens them)."""
        with self._lock:
            src, self._source = self._source, None
        if src is not None:
            src.close()


_BUNDLES: dict[str, Resources] = {}
_BUNDLES_LOCK = threading.Lock()


def _settings_key(settings: VocSettings) -> str:
    # pickle keeps SecretStr values (model_dump_json would mask them and merge two DSNs)
    return hashlib.sha256(pickle.dumps(settings)).hexdigest()


def resources(settings: VocSettings) -> Resources:
    """The process's :class:`Resources` for ``settings`` (created on first call)."""
    key = _settings_key(settings)
    with _BUNDLES_LOCK:
        bundle = _BUNDLES.get(key)
        if bundle is None:
            bundle = _BUNDLES[key] = Resources(settings)
        return bundle


@atexit.register
def close_all() -> None:
    """Close every bundle of this process (at interpreter exit; tests call it too)."""
    with _BUNDLES_LOCK:
        bundles = list(_BUNDLES.values())
        _BUNDLES.clear()
    for b in bundles:
        try:
            b.close()
        except Exception as e:  # noqa: BLE001 - closing at exit must not mask the run's outcome
            log.warning("closing %r failed: %s", b.settings.storage, e)
