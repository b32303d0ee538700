"""S3Storage against a moto S3 server over real HTTP (``tests/infra.py``), faults injected in
front of it: transient 500s are retried by botocore's standard retry mode (no loop of ours),
permanent failures raise StorageError naming the key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.exceptions as bce
import pytest
from infra import MotoS3, moto_s3_server
from pydantic import SecretStr

from config.settings import S3Settings, VocSettings
from flows.adapters.retries import is_transient
from flows.adapters.s3 import S3Storage, content_type_for, parse_s3_uri
from flows.adapters.storage import Storage, StorageError
from flows.resources import open_storage

BUCKET = "voc-test"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    with moto_s3_server() as server:
        yield server


@pytest.fixture(autouse=True)
def aws_env(aws_test_env: None, moto: MotoS3) -> None:
    moto.faults.clear()


@pytest.fixture(scope="module")
def bucket(moto: MotoS3) -> str:
    boto3.client(
        "s3",
        endpoint_url=moto.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
    return BUCKET


def _storage(moto: MotoS3, root: str, **kw: object) -> S3Storage:
    params: dict[str, object] = {"botocore_attempts": 1}
    params.update(kw)
    return S3Storage.from_uri(f"s3://{BUCKET}/{root}", S3Settings(endpoint_url=moto.endpoint_url), **params)


def test_roundtrip_list_exists_content_type(moto: MotoS3, bucket: str) -> None:
    st = _storage(moto, "runs/a")
    assert isinstance(st, Storage)
    prefix = "stat/voc-dev/201911"
    html = "<html><body>대시보드</body></html>".encode()
    assert st.write_bytes(f"{prefix}/1/dashboard_1_201911.html", html) == (
        f"s3://{BUCKET}/runs/a/{prefix}/1/dashboard_1_201911.html"
    )
    st.write_bytes(f"{prefix}/1/tagged_1_201911_full.csv", b"voc_id\n1\n")
    st.write_bytes(f"{prefix}/2/tagged_2_201911_full.csv", b"voc_id\n2\n")
    st.write_bytes(f"{prefix}/review_201911.xlsx", b"PK\x03\x04")
    st.write_bytes("stat/voc-dev/2019110/x.json", b"{}")  # a sibling sharing the string prefix
    st.write_bytes("models/champion.json", b'{"kind": "hybrid"}', content_type="application/x-custom")
    assert st.read_bytes(f"{prefix}/1/dashboard_1_201911.html") == html
    assert st.exists(f"{prefix}/1/tagged_1_201911_full.csv")
    assert not st.exists(f"{prefix}/1/nothing.csv")
    assert st.list(prefix) == [
        f"{prefix}/1/dashboard_1_201911.html",
        f"{prefix}/1/tagged_1_201911_full.csv",
        f"{prefix}/2/tagged_2_201911_full.csv",
        f"{prefix}/review_201911.xlsx",
    ]
    assert st.list(f"{prefix}/1/tagged_1_201911_full.csv") == [f"{prefix}/1/tagged_1_201911_full.csv"]
    assert st.list("nothing/here") == []
    assert len(st.list("")) == 6
    raw = st.client
    ctype = {k: raw.head_object(Bucket=BUCKET, Key=f"runs/a/{k}")["ContentType"] for k in st.list("")}
    assert ctype[f"{prefix}/1/dashboard_1_201911.html"] == "text/html; charset=utf-8"
    assert ctype[f"{prefix}/2/tagged_2_201911_full.csv"] == "text/csv; charset=utf-8"
    assert ctype[f"{prefix}/review_201911.xlsx"].endswith("spreadsheetml.sheet")
    assert ctype["stat/voc-dev/2019110/x.json"] == "application/json"
    assert ctype["models/champion.json"] == "application/x-custom"
    with pytest.raises(StorageError, match=f"s3://{BUCKET}/runs/a/{prefix}/missing.csv"):
        st.read_bytes(f"{prefix}/missing.csv")


def test_upload_and_download_dir(moto: MotoS3, bucket: str, tmp_path: Path) -> None:
    st = _storage(moto, "")
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "meta.json").write_text('{"kind": "hybrid"}')
    (model / "model.joblib").write_bytes(bytes(range(256)) * 4000)  # ~1 MB binary
    (model / "sub" / "label_mapping.json").write_text("{}")
    key = "stat/voc-dev/models/hybrid_v1"
    assert st.upload_dir(model, key) == f"s3://{BUCKET}/{key}"
    assert st.list(key) == [f"{key}/meta.json", f"{key}/model.joblib", f"{key}/sub/label_mapping.json"]
    out = st.download_dir(key, tmp_path / "copy")
    for rel in ("meta.json", "model.joblib", "sub/label_mapping.json"):
        assert (out / rel).read_bytes() == (model / rel).read_bytes()
    assert not list(out.rglob("*.part"))
    # re-upload of a changed directory mirrors it (stale keys removed)
    (model / "sub" / "label_mapping.json").unlink()
    st.upload_dir(model, key)
    assert st.list(key) == [f"{key}/meta.json", f"{key}/model.joblib"]
    with pytest.raises(StorageError, match="no such directory: s3://voc-test/stat/voc-dev/models/none"):
        st.download_dir("stat/voc-dev/models/none", tmp_path / "none")


def test_transient_put_failures_are_retried(moto: MotoS3, bucket: str) -> None:
    st = _storage(moto, "retry", botocore_attempts=3)
    key = "stat/voc-dev/201911/1/dashboard_1_201911.html"
    moto.faults.fail("PUT", key, times=2, status=500)
    assert st.write_bytes(key, b"<html></html>") == f"s3://{BUCKET}/retry/{key}"
    assert moto.faults.count("PUT", key) == 3  # two injected 500s, then the real upload
    assert st.read_bytes(key) == b"<html></html>"
    # 503 SlowDown on a download, retried too
    moto.faults.fail("GET", key, times=1, status=503, code="SlowDown")
    assert st.read_bytes(key) == b"<html></html>"
    assert moto.faults.count("GET", key) == 3  # the first read, the 503, its retry


def test_default_settings_recover_one_failure_and_give_up_on_two(moto: MotoS3, bucket: str) -> None:
    """The default (``VOC_S3__BOTOCORE_ATTEMPTS`` = 2): one 500 is absorbed, two are raised (for
    the Prefect task's retries) after exactly two requests."""
    st = S3Storage.from_uri(f"s3://{BUCKET}/botocore", S3Settings(endpoint_url=moto.endpoint_url))
    moto.faults.fail("PUT", "one-500.csv", times=1)
    st.write_bytes("one-500.csv", b"x")
    assert moto.faults.count("PUT", "one-500.csv") == 2
    moto.faults.fail("PUT", "two-500.csv", times=2)
    with pytest.raises(StorageError, match=f"upload s3://{BUCKET}/botocore/two-500.csv failed"):
        st.write_bytes("two-500.csv", b"x")
    assert moto.faults.count("PUT", "two-500.csv") == 2


def test_permanent_failure_raises_storage_error_naming_key(moto: MotoS3, bucket: str, tmp_path: Path) -> None:
    st = _storage(moto, "perm", botocore_attempts=3)
    key = "stat/voc-dev/201911/2/tagged_2_201911_full.csv"
    moto.faults.fail("PUT", key, times=None, status=500)
    t0 = time.monotonic()
    with pytest.raises(StorageError, match=rf"upload s3://{BUCKET}/perm/{key} failed \(endpoint http://127.0.0.1:\d+\)"):
        st.write_bytes(key, b"x")
    assert moto.faults.count("PUT", key) == 3
    assert time.monotonic() - t0 < 5  # botocore's backoff: under 1 + 2 s
    # a non-transient error (403) is not retried
    moto.faults.clear()
    moto.faults.fail("PUT", "denied.csv", times=None, status=403, code="AccessDenied")
    with pytest.raises(StorageError, match=f"upload s3://{BUCKET}/perm/denied.csv failed"):
        st.write_bytes("denied.csv", b"x")
    assert moto.faults.count("PUT", "denied.csv") == 1
    # a file of upload_dir (managed transfer) too
    moto.faults.clear()
    moto.faults.fail("PUT", "bad-dir/f.json", times=None)
    (tmp_path / "f.json").write_text("{}")
    with pytest.raises(StorageError, match=f"upload s3://{BUCKET}/perm/bad-dir/f.json failed"):
        st.upload_dir(tmp_path, "bad-dir")
    assert moto.faults.count("PUT", "bad-dir/f.json") == 3
    with pytest.raises(StorageError, match=r"^not a directory"):
        st.upload_dir(tmp_path / "none", "bad-dir")


def test_unreachable_endpoint_raises_storage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra import free_port

    st = S3Storage(
        BUCKET,
        "x",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        botocore_attempts=2,
        connect_timeout_s=1,
    )
    with pytest.raises(StorageError, match=f"upload s3://{BUCKET}/x/k.html failed") as e:
        st.write_bytes("k.html", b"x")
    assert isinstance(e.value.__cause__, bce.EndpointConnectionError)
    assert is_transient(e.value)  # the Prefect task's retries own it


def test_from_settings_and_env_endpoint(moto: MotoS3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # VOC_S3__* settings, explicit credentials (secrets)
    settings = VocSettings(
        storage=f"s3://{BUCKET}/from-settings",
        s3=S3Settings(
            endpoint_url=moto.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=SecretStr("testing"),
            aws_secret_access_key=SecretStr("testing"),
        ),
    )
    st = open_storage(settings)
    assert isinstance(st, S3Storage) and st.root == "from-settings"
    st.write_bytes("a.csv", b"1")
    assert "testing" not in repr(st)
    # the standard AWS_ENDPOINT_URL, honoured natively by botocore
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
    st2 = S3Storage.from_settings(VocSettings(storage=f"s3://{BUCKET}/from-settings"))
    assert st2.client.meta.endpoint_url == moto.endpoint_url
    assert st2.read_bytes("a.csv") == b"1"
    with pytest.raises(StorageError, match="both"):
        S3Storage(BUCKET, aws_access_key_id=SecretStr("a"))


def test_helpers() -> None:
    assert parse_s3_uri("s3://b") == ("b", "")
    assert parse_s3_uri("s3://b/x/y/") == ("b", "x/y")
    with pytest.raises(StorageError):
        parse_s3_uri("s3:///x")
    with pytest.raises(StorageError):
        parse_s3_uri("/tmp/x")
    assert content_type_for("a/B.HTML") == "text/html; charset=utf-8"
    assert content_type_for("a/b.png") == "image/png"
    assert content_type_for("a/b.joblib") == "application/octet-stream"
