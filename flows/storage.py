"""Output storage: a local directory (default) or S3 (``s3://bucket[/root]``).

Keys are ``/``-separated paths relative to the storage root, always starting with the
environment prefix (``stat/voc-dev/201911/1/tagged_1_201911_full_20261122_020000.csv``); see
``docs/architecture.md`` for the layout. :func:`open_storage` picks the backend from the URI.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol, runtime_checkable

from config.settings import VocSettings

__all__ = ["Storage", "LocalStorage", "StorageError", "open_storage", "join_key"]


class StorageError(RuntimeError):
    """A storage operation failed (missing key, unreachable endpoint); the message names the key."""


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


class LocalStorage:
    """Storage in a local directory (``root``), created on first write."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root != p and self.root not in p.parents:
            raise StorageError(f"key escapes the storage root: {key!r}")
        return p

    def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, p)  # atomic: readers never see half a file
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


def open_storage(settings: VocSettings) -> Storage:
    """The backend for ``settings.storage``: ``s3://bucket[/root]`` → S3, anything else a local
    directory. Keys passed to it are relative to the root and start with ``settings.prefix``."""
    if settings.storage.startswith("s3://"):
        from flows.s3 import S3Storage

        return S3Storage.from_settings(settings)
    return LocalStorage(settings.storage)
