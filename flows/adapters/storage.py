"""Output storage: a local directory (default) or S3 (``s3://bucket[/root]``).

Keys are ``/``-separated paths relative to the storage root, always starting with the
environment prefix (``stat/voc-dev/201911/1/tagged_1_201911_full_20261122_020000.csv``); see
``docs/architecture.md`` for the layout. :func:`flows.resources.open_storage` picks the backend from the URI.

Compare-and-swap: :meth:`Storage.read_versioned` returns a key's bytes with a version token, and
:meth:`Storage.write_if` replaces the key only if it still has that version (``None``: only if it
does not exist yet), else raises :class:`StorageConflict`. Locally the version is the SHA-256 of
the bytes and the check-and-replace runs under an exclusive ``flock`` on the key's directory
(every :meth:`LocalStorage.write_bytes` takes the same lock, and writes a temporary file then
``os.replace``: readers never see half a file); on S3 the version is the ETag and the write is a
conditional ``PutObject`` (``If-Match`` / ``If-None-Match: *``), decided by the server.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable


__all__ = ["Storage", "LocalStorage", "StorageError", "StorageConflict", "join_key"]


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
        return p

    @contextmanager
    def _locked(self, p: Path) -> Iterator[None]:
        """An exclusive ``flock`` on ``p``'s directory (created if needed): serialises every
        write into that directory, across threads and processes on this host. No lock where
        ``fcntl`` is missing (Windows)."""
        p.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        fd = os.open(p.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

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
        return sorted(
            p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file() and not p.name.endswith(".part")
        )

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
            shutil.copytree(src, local_dir, dirs_exist_ok=True)
        return Path(local_dir)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"
