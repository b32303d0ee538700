"""Output storage: a local directory (default) or S3 (``s3://bucket[/root]``).

Keys are ``/``-separated paths relative to the storage root, always starting with the
environment prefix (``stat/voc-dev/201911/1/tagged_1_201911_full_20261122_020000.csv``); see
``docs/architecture.md`` for the layout. :func:`flows.resources.open_storage` picks the backend from the URI.

Compare-and-swap: :meth:`Storage.read_versioned` returns a key's bytes with a version token, and
:meth:`Storage.write_if` replaces the key only if it still has that version (``None``: only if it
does not exist yet), else raises :class:`StorageConflict`; :func:`update_with_cas` is the
read–modify–write loop over the two. Locally the version is the SHA-256 of the bytes and the
check-and-replace runs under an exclusive lock of the key's directory (``filelock.FileLock`` on
``{root}/.locks/<hash of the directory>.lock``, :data:`LOCK_TIMEOUT_S`; every
:meth:`LocalStorage.write_bytes` takes the same lock, and writes a temporary file then
``os.replace``: readers never see half a file); on S3 the version is the ETag and the write is a
conditional ``PutObject`` (``If-Match`` / ``If-None-Match: *``), decided by the server.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from filelock import FileLock, Timeout

__all__ = [
    "Storage",
    "PresigningStorage",
    "LocalStorage",
    "StorageError",
    "StorageConflict",
    "join_key",
    "update_with_cas",
    "CAS_ATTEMPTS",
    "LOCK_TIMEOUT_S",
]

log = logging.getLogger(__name__)
R = TypeVar("R")

CAS_ATTEMPTS = 5
"""Read–modify–write rounds :func:`update_with_cas` makes before giving up."""

LOCK_TIMEOUT_S = 60.0
"""Seconds a local write waits for its directory's lock (held only while one file is replaced)."""

_LOCK_DIR = ".locks"
"""Directory under a :class:`LocalStorage` root holding the lock files (not a key: never listed)."""


class StorageError(RuntimeError):
    """A storage operation failed (missing key, unreachable endpoint); the message names the key."""


class StorageConflict(StorageError):
    """A conditional write found the key changed (or created, or deleted) since it was read:
    re-read, redo the change, write again."""


def join_key(*parts: str) -> str:
    """Join key parts with ``/``, dropping empty parts and stray slashes."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


@runtime_checkable
class Storage(Protocol):
    """What the flows need from a storage backend."""

    def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        """Store ``data`` at ``key``; return its URI (local path or ``s3://``)."""

    def read_bytes(self, key: str) -> bytes:
        """Raise :class:`StorageError` when the key does not exist."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""

    def uri(self, key: str) -> str: ...

    def upload_dir(self, local_dir: Path, key_prefix: str) -> str:
        """Copy a directory tree under ``key_prefix``; return its URI."""

    def download_dir(self, key_prefix: str, local_dir: Path) -> Path:
        """Copy every key under ``key_prefix`` into ``local_dir``; return ``local_dir``."""

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The key's bytes and a version token for :meth:`write_if`; ``None`` when it does not exist."""

    def write_if(self, key: str, data: bytes, *, version: str | None, content_type: str | None = None) -> str:
        """Store ``data`` at ``key`` only if the key still has ``version`` (``None``: only if the key
        does not exist); return its URI. Raise :class:`StorageConflict` otherwise."""


@runtime_checkable
class PresigningStorage(Storage, Protocol):
    """A storage that hands out links a browser opens without credentials (S3): the month index
    then links absolutely (:mod:`flows.links`), the artifacts get presigned HTTPS URLs."""

    def presigned_url(self, key: str, *, expires_s: int) -> str:
        """An HTTPS URL of ``key`` valid ``expires_s`` seconds."""
        ...


def update_with_cas(
    storage: Storage,
    key: str,
    modify: Callable[[bytes | None], tuple[bytes, R]],
    *,
    attempts: int = CAS_ATTEMPTS,
    content_type: str | None = None,
) -> tuple[str, R]:
    """Read–modify–write of one key by compare-and-swap: read ``key`` with its version
    (:meth:`Storage.read_versioned`), ``modify`` its bytes (``None``: no such key) into new bytes
    and a result, write them with :meth:`Storage.write_if` on that version; when another writer
    came first (:class:`StorageConflict`), start again from a fresh read.

    Parameters
    ----------
    storage
        Any :class:`Storage`.
    key
        The key to update.
    modify
        ``current bytes or None -> (new bytes, result)``; called once per round, so it must not
        have side effects beyond its return value.
    attempts
        Rounds before giving up (at least 1).
    content_type
        Content-Type of the written object (default: by the key's suffix).

    Returns
    -------
    tuple
        The key's URI and the ``result`` of the round that was written.

    Raises
    ------
    StorageConflict
        Every round met a concurrent write; nothing was overwritten.
    StorageError
        The read or the write failed otherwise.
    """
    rounds = max(1, int(attempts))
    for attempt in range(1, rounds + 1):
        current = storage.read_versioned(key)
        data, result = modify(current[0] if current is not None else None)
        version = current[1] if current is not None else None
        try:
            return storage.write_if(key, data, version=version, content_type=content_type), result
        except StorageConflict as e:
            log.warning("%s was written by someone else meanwhile (%s); re-reading (attempt %d/%d)", key, e, attempt, rounds)
    raise StorageConflict(
        f"{storage.uri(key)} changed during each of {rounds} attempts to update it; nothing was overwritten"
    )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalStorage:
    """Storage in a local directory (``root``), created on first write."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root != p and self.root not in p.parents:
            raise StorageError(f"key escapes the storage root: {key!r}")
        if p != self.root and p.relative_to(self.root).parts[0] == _LOCK_DIR:
            raise StorageError(f"key inside the storage's lock directory: {key!r}")
        return p

    @contextmanager
    def _locked(self, p: Path) -> Iterator[None]:
        """An exclusive lock of ``p``'s directory (created if needed): serialises every write
        into that directory, across threads and processes on this host (``filelock``).

        Raises
        ------
        StorageError
            The lock was not free within :data:`LOCK_TIMEOUT_S` (the cause is ``filelock.Timeout``,
            a ``TimeoutError``: transient for the flows' retries).
        """
        p.parent.mkdir(parents=True, exist_ok=True)
        rel = p.parent.relative_to(self.root).as_posix()
        lock_file = self.root / _LOCK_DIR / f"{hashlib.sha256(rel.encode('utf-8')).hexdigest()[:32]}.lock"
        lock_file.parent.mkdir(exist_ok=True)
        try:
            with FileLock(lock_file, timeout=LOCK_TIMEOUT_S):
                yield
        except Timeout as e:
            key = p.relative_to(self.root).as_posix()
            raise StorageError(f"{key}: its directory is still locked after {LOCK_TIMEOUT_S:g} s ({lock_file})") from e

    @staticmethod
    def _replace(p: Path, data: bytes) -> None:
        tmp = p.with_name(f"{p.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, p)  # atomic: readers never see half a file
        finally:
            tmp.unlink(missing_ok=True)

    def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        p = self._path(key)
        with self._locked(p):
            self._replace(p, data)
        return str(p)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The bytes and their SHA-256 (the version), ``None`` when the key does not exist."""
        if not self.exists(key):
            return None
        try:
            data = self.read_bytes(key)
        except StorageError:  # removed between the two calls
            return None
        return data, _digest(data)

    def write_if(self, key: str, data: bytes, *, version: str | None, content_type: str | None = None) -> str:
        """Replace ``key`` with ``data`` if its content still has ``version`` (``None``: if it does
        not exist), checked and replaced under the directory's lock.

        Raises
        ------
        StorageConflict
            The key changed, appeared or disappeared since ``version`` was read.
        """
        p = self._path(key)
        with self._locked(p):
            current = _digest(p.read_bytes()) if p.is_file() else None
            if current != version:
                what = "was created" if version is None else ("was deleted" if current is None else "changed")
                raise StorageConflict(f"{key} {what} since it was read in {self.root}")
            self._replace(p, data)
        return str(p)

    def read_bytes(self, key: str) -> bytes:
        p = self._path(key)
        if not p.is_file():
            raise StorageError(f"no such key in {self.root}: {key}")
        return p.read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        files = (p for p in base.rglob("*") if p.is_file() and not p.name.endswith(".part"))
        keys = (p.relative_to(self.root).as_posix() for p in files)
        return sorted(k for k in keys if not k.startswith(f"{_LOCK_DIR}/"))

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def upload_dir(self, local_dir: Path, key_prefix: str) -> str:
        dest = self._path(key_prefix)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(local_dir, dest)
        return str(dest)

    def download_dir(self, key_prefix: str, local_dir: Path) -> Path:
        src = self._path(key_prefix)
        if not src.is_dir():
            raise StorageError(f"no such directory in {self.root}: {key_prefix}")
        if Path(local_dir).resolve() != src:
            shutil.copytree(src, local_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(_LOCK_DIR))
        return Path(local_dir)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"
