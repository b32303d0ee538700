"""S3 (or S3-compatible: MinIO, moto) storage for ``s3://bucket[/root]`` (implements
:class:`flows.adapters.storage.Storage`).

Why boto3 directly and not ``prefect_aws.S3Bucket``: the storage is used outside Prefect as well
(CLI, tests, the model store, the real-time service), and a Block needs a Prefect API to be
saved/loaded; boto3 gives direct control over Content-Type, pagination, conditional writes,
error codes (``NoSuchKey`` vs. a transient 5xx) and retry behaviour, which the flows' retry
semantics depend on. prefect-aws is therefore not a dependency.

Configuration (:class:`config.settings.S3Settings`, env ``VOC_S3__*``):

* endpoint: ``VOC_S3__ENDPOINT_URL``, else the standard ``AWS_ENDPOINT_URL_S3`` /
  ``AWS_ENDPOINT_URL`` variables, which botocore (>= 1.31) honours natively (checked by
  ``tests/test_s3.py``); path-style addressing is used whenever a custom endpoint is set;
* credentials: ``VOC_S3__AWS_ACCESS_KEY_ID`` + ``VOC_S3__AWS_SECRET_ACCESS_KEY`` (secrets,
  never logged) or boto3's default chain (env, ``~/.aws``, instance role);
* time and retries: botocore's own (boto3 guide, "Retries"): every HTTP request has a connect
  timeout (``VOC_S3__CONNECT_TIMEOUT_S``, 5 s) and a read timeout (``VOC_S3__READ_TIMEOUT_S``,
  20 s: per socket read), and the ``standard`` retry mode makes at most
  ``VOC_S3__BOTOCORE_ATTEMPTS`` attempts (default 2) on connection errors, timeouts, 5xx and
  throttling, with jittered exponential backoff. There is no retry loop here: what botocore
  gives up on is raised, and the Prefect task's retries (:data:`flows.adapters.retries.IO_TASK`)
  own it. One request fails within :func:`flows.adapters.retries.s3_operation_budget_s` (53 s
  with the defaults). s3transfer's own download retries are off (``num_download_attempts=1``)
  so that they do not multiply botocore's.

Compare-and-swap (:meth:`S3Storage.read_versioned`, :meth:`S3Storage.write_if`): the version is
the object's ETag as read, and the write is a conditional ``PutObject`` with ``If-Match: <ETag>``
(or ``If-None-Match: *`` for a key that must not exist yet). S3 answers 412 when the object
changed, 409 when a concurrent conditional write is in flight, 404 when it was deleted: each
raises :class:`flows.adapters.storage.StorageConflict` (the caller re-reads:
:func:`flows.adapters.storage.update_with_cas`). AWS S3 supports both headers on ``PutObject``
since 2024-11 (MinIO and moto too); a store that ignores them gives no protection.

When botocore's attempts are exhausted, or on a permanent error (403, missing bucket), a
:class:`flows.adapters.storage.StorageError` naming the ``s3://`` URI of the key and the endpoint is
raised (chained to the botocore error, which decides whether Prefect retries), so the Prefect
task of that building retries or fails and the other buildings of the run go on.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import boto3
import botocore.exceptions as bce
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from pydantic import SecretStr

from config.settings import S3Settings, VocSettings
from flows.adapters.storage import StorageConflict, StorageError, join_key

__all__ = ["S3Storage", "CONTENT_TYPES", "content_type_for", "parse_s3_uri"]

T = TypeVar("T")

CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
"""Content-Type by file suffix (dashboards open in a browser straight from S3)."""

_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_ONE_DOWNLOAD_ATTEMPT = TransferConfig(num_download_attempts=1)
"""s3transfer retries a timed-out download 5 times by default; botocore's and Prefect's retries suffice."""


def content_type_for(key: str) -> str:
    """Content-Type of a key by its suffix (:data:`CONTENT_TYPES`, then :mod:`mimetypes`)."""
    suffix = Path(key).suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` → ``("bucket", "a/b")``.

    Raises
    ------
    StorageError
        Not an ``s3://`` URI or no bucket.
    """
    if not uri.startswith("s3://"):
        raise StorageError(f"not an s3:// URI: {uri!r}")
    bucket, _, root = uri[len("s3://") :].partition("/")
    if not bucket:
        raise StorageError(f"no bucket in {uri!r}; expected s3://bucket[/root]")
    return bucket, root.strip("/")


def _status(e: bce.ClientError) -> tuple[int, str]:
    resp = getattr(e, "response", {}) or {}
    status = int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return status, str(resp.get("Error", {}).get("Code") or "")


def _is_missing(e: BaseException) -> bool:
    if isinstance(e, bce.ClientError):
        status, code = _status(e)
        return status == 404 or code in _MISSING_CODES
    return False


class S3Storage:
    """Storage under ``s3://bucket/root`` (root may be empty).

    Parameters
    ----------
    bucket
        Bucket name (must exist).
    root
        Key prefix every key is relative to (no leading/trailing ``/``).
    endpoint_url
        Custom endpoint; None: ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (botocore reads them
        itself) or AWS.
    region_name
        AWS region; None: the default chain (``AWS_DEFAULT_REGION``, ``~/.aws/config``).
    aws_access_key_id, aws_secret_access_key
        Explicit credentials (both or neither); None: boto3's default chain.
    botocore_attempts
        Total attempts botocore makes per HTTP request (``standard`` retry mode, the first included).
    connect_timeout_s, read_timeout_s
        Socket timeouts in seconds (connect; each read of the answer).
    client
        A ready boto3 S3 client (overrides the connection parameters above).
    """

    def __init__(
        self,
        bucket: str,
        root: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        aws_access_key_id: SecretStr | None = None,
        aws_secret_access_key: SecretStr | None = None,
        botocore_attempts: int = 2,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 20.0,
        client: Any | None = None,
    ) -> None:
        if not bucket:
            raise StorageError("S3Storage needs a bucket name")
        self.bucket = bucket
        self.root = root.strip("/")
        if client is None:
            if (aws_access_key_id is None) != (aws_secret_access_key is None):
                raise StorageError("set both VOC_S3__AWS_ACCESS_KEY_ID and VOC_S3__AWS_SECRET_ACCESS_KEY, or neither")
            custom = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            config = Config(
                retries={"mode": "standard", "total_max_attempts": max(1, int(botocore_attempts))},
                connect_timeout=connect_timeout_s,
                read_timeout=read_timeout_s,
                s3={"addressing_style": "path"} if custom else None,
                signature_version="s3v4",  # SigV4 everywhere, presigned links included (SigV2 is retired)
            )
            session = boto3.session.Session(
                aws_access_key_id=aws_access_key_id.get_secret_value() if aws_access_key_id else None,
                aws_secret_access_key=aws_secret_access_key.get_secret_value() if aws_secret_access_key else None,
                region_name=region_name,
            )
            client = session.client("s3", endpoint_url=endpoint_url or None, config=config)
        self.client = client

    @classmethod
    def from_uri(cls, uri: str, s3: S3Settings | None = None, **kwargs: Any) -> S3Storage:
        """Storage for ``s3://bucket[/root]`` configured by ``s3`` (default :class:`S3Settings` ())."""
        bucket, root = parse_s3_uri(uri)
        s3 = s3 or S3Settings()
        params: dict[str, Any] = {
            "endpoint_url": s3.endpoint_url,
            "region_name": s3.region_name,
            "aws_access_key_id": s3.aws_access_key_id,
            "aws_secret_access_key": s3.aws_secret_access_key,
            "botocore_attempts": s3.botocore_attempts,
            "connect_timeout_s": s3.connect_timeout_s,
            "read_timeout_s": s3.read_timeout_s,
        }
        params.update(kwargs)
        return cls(bucket, root, **params)

    @classmethod
    def from_settings(cls, settings: VocSettings) -> S3Storage:
        """Storage for ``settings.storage`` (``s3://bucket[/root]``) with ``settings.s3``."""
        return cls.from_uri(settings.storage, settings.s3)

    # -- helpers ----------------------------------------------------------------------------
    def _key(self, key: str) -> str:
        return join_key(self.root, key)

    def uri(self, key: str) -> str:
        """``s3://bucket/root/key``."""
        return f"s3://{join_key(self.bucket, self._key(key))}"

    def presigned_url(self, key: str, *, expires_s: int) -> str:
        """An HTTPS URL a browser can open without credentials for ``expires_s`` seconds
        (SigV4 query signature, computed locally: no request is made)."""
        return str(
            self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=int(expires_s)
            )
        )

    @property
    def endpoint(self) -> str:
        """The endpoint URL the client talks to (no credentials in it)."""
        return str(getattr(getattr(self.client, "meta", None), "endpoint_url", "") or "AWS S3")

    def _call(self, what: str, key: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` (botocore retries inside it); classify what it raises.

        Raises
        ------
        StorageError
            Missing key; a permanent error; a transient one botocore gave up on. The message
            names the key's ``s3://`` URI and the endpoint; the botocore error is the cause
            (:func:`flows.adapters.retries.is_transient` decides on it whether Prefect retries).
        """
        try:
            return fn()
        except StorageError:  # already classified (a StorageConflict of a conditional write)
            raise
        except Exception as e:  # classified below, re-raised as StorageError
            if _is_missing(e):
                raise StorageError(f"no such key: {self.uri(key)}") from e
            raise StorageError(f"{what} {self.uri(key)} failed (endpoint {self.endpoint}): {e}") from e

    # -- Storage ----------------------------------------------------------------------------
    def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        """Upload ``data`` to ``key`` (Content-Type from the suffix unless given); return its URI."""
        ctype = content_type or content_type_for(key)
        self._call(
            "upload",
            key,
            lambda: self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=ctype),
        )
        return self.uri(key)

    def read_bytes(self, key: str) -> bytes:
        """Download ``key``; :class:`StorageError` when it does not exist."""

        def get() -> bytes:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return obj["Body"].read()

        return self._call("download", key, get)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and its ETag (the version for :meth:`write_if`), read in one
        ``GetObject``; ``None`` when the key does not exist."""

        def get() -> tuple[bytes, str]:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return obj["Body"].read(), str(obj["ETag"])

        try:
            return self._call("download", key, get)
        except StorageError as e:
            if e.__cause__ is not None and _is_missing(e.__cause__):
                return None
            raise

    def write_if(self, key: str, data: bytes, *, version: str | None, content_type: str | None = None) -> str:
        """Upload ``data`` to ``key`` only if the object still has the ETag ``version``
        (``None``: only if there is no object yet): a conditional ``PutObject``.

        Raises
        ------
        StorageConflict
            S3 refused the condition (412), a concurrent conditional write won (409) or the
            object was deleted (404 with ``If-Match``).
        StorageError
            Any other failure, as :meth:`write_bytes`.
        """
        ctype = content_type or content_type_for(key)
        cond = {"IfMatch": version} if version is not None else {"IfNoneMatch": "*"}

        def put() -> Any:
            try:
                return self.client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=ctype, **cond
                )
            except bce.ClientError as e:
                status, code = _status(e)
                if status in (409, 412) or code in _CONFLICT_CODES or (version is not None and _is_missing(e)):
                    what = "was created" if version is None else ("was deleted" if _is_missing(e) else "changed")
                    raise StorageConflict(f"{self.uri(key)} {what} since it was read (HTTP {status} {code})") from e
                raise

        self._call("upload", key, put)
        return self.uri(key)

    def exists(self, key: str) -> bool:
        def head() -> bool:
            try:
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
                return True
            except bce.ClientError as e:
                if _is_missing(e):
                    return False
                raise

        return self._call("head", key, head)

    def list(self, prefix: str) -> list[str]:
        """Keys (relative to the root) at ``prefix`` or under ``prefix/``, sorted.

        Like a directory: ``list("2019-1")`` does not return ``2019-11/…``.
        """
        full = self._key(prefix)

        def run() -> list[str]:
            out = []
            paginator = self.client.get_paginator("list_objects_v2")
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if full:
                kwargs["Prefix"] = full
            for page in paginator.paginate(**kwargs):
                for obj in page.get("Contents", ()):
                    k = obj["Key"]
                    if not full or k == full or k.startswith(full + "/"):
                        out.append(k)
            return out

        keys = self._call("list", prefix, run)
        cut = len(self.root) + 1 if self.root else 0
        return sorted(k[cut:] for k in keys)

    def upload_dir(self, local_dir: Path, key_prefix: str) -> str:
        """Upload every file under ``local_dir`` to ``key_prefix/<relative path>`` (multipart for
        large files); keys under the prefix that the directory does not have are deleted, so the
        prefix mirrors the directory. Returns the prefix's URI."""
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise StorageError(f"not a directory: {local_dir}")
        uploaded = set()
        for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            rel = path.relative_to(local_dir).as_posix()
            key = join_key(key_prefix, rel)
            extra = {"ContentType": content_type_for(rel)}
            self._call(
                "upload",
                key,
                partial(self.client.upload_file, str(path), self.bucket, self._key(key), ExtraArgs=extra),
            )
            uploaded.add(key)
        stale = [k for k in self.list(key_prefix) if k not in uploaded]
        for i in range(0, len(stale), 1000):
            batch = [{"Key": self._key(k)} for k in stale[i : i + 1000]]
            self._call(
                "delete",
                key_prefix,
                partial(self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}),
            )
        return self.uri(key_prefix)

    def download_dir(self, key_prefix: str, local_dir: Path) -> Path:
        """Download every key under ``key_prefix`` into ``local_dir`` (same relative paths).

        Raises
        ------
        StorageError
            Nothing under the prefix, or a download failed after its retries.
        """
        keys = [k for k in self.list(key_prefix) if k != join_key(key_prefix)]
        if not keys:
            raise StorageError(f"no such directory: {self.uri(key_prefix)}")
        local_dir = Path(local_dir)
        base = join_key(key_prefix)
        for key in keys:
            rel = key[len(base) + 1 :] if base else key
            dest = (local_dir / rel).resolve()
            if local_dir.resolve() not in dest.parents:
                raise StorageError(f"key escapes the target directory: {self.uri(key)}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".part")
            self._call(
                "download",
                key,
                partial(self.client.download_file, self.bucket, self._key(key), str(tmp), Config=_ONE_DOWNLOAD_ATTEMPT),
            )
            os.replace(tmp, dest)
        return local_dir

    def __repr__(self) -> str:
        return f"S3Storage({self.uri('')!r})"
