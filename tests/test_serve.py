"""The real-time tagging service (``voc serve``, flows/service/app.py).

Fast tests run the app in-process (FastAPI's TestClient) against a tiny linear model trained here
on the shipped sample's 2012-2014 rows (both variants, cached for the session). Slow tests start
the real command (``python -m flows.cli.main serve`` → uvicorn) on a free port: endpoints, keys, logs,
a champion swap under traffic, 3,000 requests at concurrency 32, and write-through into a
throwaway PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl
import pytest
from fastapi.testclient import TestClient
from infra import free_port, pg_available, temp_database
from pydantic import SecretStr

from config.settings import ServeSettings, VocSettings
from flows.adapters.model_store import load_champion, write_champion
from flows.adapters.storage import LocalStorage
from flows.service.app import REPLY_FALLBACK, ServeConfigError, TagRequest, choose_variant, create_app
from voc.modelstore import save_tagger, save_variants
from voc.schema import validate_voc_frame
from voc.tagger import resolve_taxonomy, tag_frame, train_tagger
from voc.taxonomy import default_taxonomy

REPO = Path(__file__).resolve().parents[1]
PREFIX = "stat/voc-dev"
KEY = "test-key-4f1c9a"  # the tagging key; must never show in a log
ADMIN = "admin-key-77d0e2"
PAIR = "linear_20260101_000000"  # two variants: the champion
SINGLE = "linear_20250101_000000"  # one reply-aware tagger, as versions were saved before variants
TAG_FIELDS = (
    "subject_major", "subject_minor", "subject_confidence", "subject_source",
    "work_major", "work_minor", "work_confidence", "work_source", "model_version",
)



def _as_answered(row: dict) -> dict:
    """A batch-path tag row as the API answers it: a keyword guess (``{dim}_source ==
    "keyword"``) has ``{dim}_estimated`` true and no confidence. Changes and returns ``row``."""
    for dim in ("subject", "work"):
        row[f"{dim}_estimated"] = row[f"{dim}_source"] == "keyword"
        if row[f"{dim}_estimated"]:
            row[f"{dim}_confidence"] = None
    return row


@dataclass
class Store:
    root: Path
    reply: object
    registration: object


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory, sample_df: pl.DataFrame, tokenizer) -> Store:
    """A storage root with two model versions of the linear kind trained on the 296 VOCs of
    2012-2014: ``PAIR`` (reply + registration variants, the champion) and ``SINGLE`` (the
    reply-aware tagger alone, an older layout)."""
    root = tmp_path_factory.mktemp("serve-store")
    train = sample_df.filter(pl.col("created_at") < pl.date(2015, 1, 1))
    tax, _ = resolve_taxonomy(default_taxonomy(), train, tokenizer=tokenizer)
    reply, rr = train_tagger(train, tax, kind="linear", version="20260101_000000", tokenizer=tokenizer)
    reg, rg = train_tagger(train, reply.taxonomy, kind="linear", version="20260101_000000", use_reply=False, tokenizer=tokenizer)
    models = root / PREFIX / "models"
    save_variants(
        models / PAIR, {"reply": reply, "registration": reg}, {"name": PAIR},
        {"reply": {"metrics": rr.metrics}, "registration": {"metrics": rg.metrics}},
    )
    old = copy.copy(reply)  # the same fitted classifiers under another version
    old.version = "20250101_000000"
    save_tagger(old, models / SINGLE, {"name": SINGLE})
    write_champion(LocalStorage(root), PREFIX, {"kind": "linear", "version": "20260101_000000", "name": PAIR})
    return Store(root, reply, reg)


def _settings(store: Store, tmp: Path, **serve: object) -> VocSettings:
    conf = {"api_keys": [SecretStr(KEY)], "admin_key": SecretStr(ADMIN), "reload_interval_s": 3600.0, **serve}
    return VocSettings(storage=str(store.root), model={"cache_dir": tmp / "cache"}, serve=ServeSettings(**conf))


def _wait_ready(get, timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            r = get("/readyz")
            if r.status_code == 200:
                return r.json()
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"not ready within {timeout_s} s")


@pytest.fixture(scope="module")
def client(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(_settings(store, tmp_path_factory.mktemp("serve-app")))
    with TestClient(app) as c:
        _wait_ready(c.get)
        yield c


AUTH = {"Authorization": f"Bearer {KEY}"}


def _plain_rows(sample_df: pl.DataFrame, n: int, *, with_reply: bool) -> pl.DataFrame:
    """``n`` sample VOCs of 2019 (outside training) without input flags, with or without a reply."""
    has_reply = pl.col("reply").str.strip_chars() != ""
    return sample_df.filter(
        (pl.col("created_at") >= pl.date(2019, 1, 1)) & (pl.col("input_flags") == "") & (has_reply if with_reply else ~has_reply)
    ).head(n)


# --------------------------------------------------------------------------------------------
# fast: the app in-process


def test_same_tags_as_the_batch_path(client: TestClient, store: Store, sample_df: pl.DataFrame) -> None:
    """A VOC gets the tags the monthly run gives it with the same tagger: registration variant
    without a reply (batch = tag_frame with that tagger), reply-aware with one. A keyword guess
    (the sample has no work-type labels: ``work_source == "keyword"``) is answered as a guess:
    ``work_estimated`` true and no confidence."""
    with_reply = _plain_rows(sample_df, 25, with_reply=True)
    assert with_reply.height == 25
    for variant, tagger, rows, send_reply in (
        ("registration", store.registration, with_reply, False),
        ("reply", store.reply, with_reply, True),
    ):
        batch = tag_frame(rows, tagger, run_id="t").select(*TAG_FIELDS, pl.col("flags").str.split(";")).to_dicts()
        for b in batch:
            b["flags"] = [f for f in b["flags"] if f]
            _as_answered(b)
        assert any(b["work_estimated"] for b in batch) and not any(b["subject_estimated"] for b in batch)
        bodies = [
            {"title": r["title"], "request_contents": r["request_contents"], **({"reply": r["reply"]} if send_reply else {})}
            for r in rows.iter_rows(named=True)
        ]
        single = [client.post("/v1/tag", json=b, headers=AUTH).json() for b in bodies]
        many = client.post("/v1/tag:batch", json={"items": bodies}, headers=AUTH).json()["results"]
        for got in (single, many):
            assert [g["variant"] for g in got] == [variant] * rows.height
            assert [{k: g[k] for k in (*TAG_FIELDS, "subject_estimated", "work_estimated", "flags")} for g in got] == batch
    # the two variants read different texts: they disagree somewhere (else the test proves nothing)
    reg = tag_frame(with_reply, store.registration, run_id="t")["subject_confidence"].to_list()
    rep = tag_frame(with_reply, store.reply, run_id="t")["subject_confidence"].to_list()
    assert reg != rep


def test_keyword_guesses_are_documented_in_the_openapi_schema(client: TestClient) -> None:
    """The answer's schema says which tags are guesses: ``*_estimated`` booleans, and the
    confidences say they are null for a guess."""
    props = client.app.openapi()["components"]["schemas"]["TagResult"]["properties"]
    for dim in ("subject", "work"):
        assert props[f"{dim}_estimated"]["type"] == "boolean"
        assert "keyword guess" in props[f"{dim}_estimated"]["description"]
        assert "null when" in props[f"{dim}_confidence"]["description"]
        assert "keyword" in props[f"{dim}_source"]["description"]


def test_suggested_replies_are_masked_replies_of_similar_training_vocs(client: TestClient, store: Store, sample_df: pl.DataFrame) -> None:
    """A VOC worded like a replied training VOC gets that VOC's reply as the first draft, masked;
    an unrelated text gets no draft (below the similarity threshold). Issue 25."""
    from voc.replies import MIN_SIMILARITY, mask_reply

    pool = store.registration.evidence_pool
    replied = [(i, r) for i, r in zip(pool.ids, pool.replies) if r and "년" in r]
    vid, reply = replied[0]
    row = sample_df.filter(pl.col("voc_id") == vid).row(0, named=True)
    r = client.post("/v1/tag", headers=AUTH, json={"title": row["title"], "request_contents": row["request_contents"]})
    assert r.status_code == 200, r.text
    got = r.json()["suggested_replies"]
    assert 1 <= len(got) <= 3 and got[0]["voc_id"] == vid and got[0]["similarity"] >= MIN_SIMILARITY
    assert got[0]["draft"] == mask_reply(reply.strip()) and got[0]["draft"] != reply.strip()
    assert [g["similarity"] for g in got] == sorted((g["similarity"] for g in got), reverse=True)
    none = client.post("/v1/tag", headers=AUTH, json={"title": "가나다", "request_contents": "라마바"}).json()
    assert none["suggested_replies"] == []
    schema = client.app.openapi()["components"]["schemas"]
    assert "draft" in schema["SuggestedReply"]["example"]


def test_blank_reply_uses_the_registration_tagger_and_batch_keeps_order(client: TestClient, sample_df: pl.DataFrame) -> None:
    rows = _plain_rows(sample_df, 3, with_reply=True).to_dicts()
    items = [
        {"title": rows[0]["title"], "request_contents": rows[0]["request_contents"], "reply": "   "},
        {"title": rows[1]["title"], "request_contents": rows[1]["request_contents"], "reply": rows[1]["reply"], "voc_id": 17},
        {"title": rows[2]["title"], "request_contents": rows[2]["request_contents"], "reply": None, "voc_id": "V-3"},
    ]
    res = client.post("/v1/tag:batch", json={"items": items}, headers=AUTH).json()
    assert [r["variant"] for r in res["results"]] == ["registration", "reply", "registration"]
    assert [r["voc_id"] for r in res["results"]] == [None, "17", "V-3"]
    assert res["model_version"] == PAIR and res["rows_written"] is None
    assert all(r["write_through"] is None for r in res["results"])


def test_empty_and_dirty_texts_are_tagged_and_flagged(client: TestClient) -> None:
    r = client.post("/v1/tag", json={"title": "", "request_contents": "  "}, headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["flags"] == ["empty_text"]
    assert body["subject_confidence"] == 0.0 and not body["subject_estimated"]
    assert body["work_confidence"] is None and body["work_estimated"]  # a keyword guess: no number at all
    assert body["subject_major"] and body["work_minor"]  # still tagged (fallback class), as in batch
    dirty = client.post(
        "/v1/tag",
        json={"title": "<b>주차장</b> 조명\x07 고장 😀", "request_contents": "지하 2층 조명이 꺼졌습니다 010-1234-5678"},
        headers=AUTH,
    ).json()
    assert set(dirty["flags"]) == {"control", "emoji", "html"}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"request_contents": "x"}, ["body", "title"]),
        ({"title": 3, "request_contents": "x"}, ["body", "title"]),
        ({"title": "x"}, ["body", "request_contents"]),
        ({"title": "x", "request_contents": "y", "reply": ["a"]}, ["body", "reply"]),
        ({"title": "x", "request_contents": "y", "voc_id": "../etc"}, ["body", "voc_id"]),
        ({"title": "x", "request_contents": "y", "building_id": "a/b"}, ["body", "building_id"]),
    ],
)
def test_bad_input_is_422_naming_the_field(client: TestClient, body: dict, loc: list[str]) -> None:
    r = client.post("/v1/tag", json=body, headers=AUTH)
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [loc]


def test_bad_batches(client: TestClient) -> None:
    one = {"title": "가로등 고장", "request_contents": "꺼져 있습니다"}
    r = client.post("/v1/tag:batch", json={"items": [one, {"title": 1, "request_contents": "x"}]}, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "items", 1, "title"]
    r = client.post("/v1/tag:batch", json={"items": [one] * 257}, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "items"] and "256" in r.json()["detail"][0]["msg"]
    assert client.post("/v1/tag:batch", json={"items": [one] * 256}, headers=AUTH).status_code == 200
    assert client.post("/v1/tag:batch", json={"items": []}, headers=AUTH).json()["results"] == []
    r = client.post("/v1/tag", content=b"{not json", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        (b'{"title": "\\ud800", "request_contents": "x"}', ["body", "title"]),  # a JSON escape of a lone surrogate
        (b'{"title": "x", "request_contents": "ab\\udfff"}', ["body", "request_contents"]),
        (b'{"title": "x", "request_contents": "y", "reply": "\\udc80"}', ["body", "reply"]),
        ('{"title": "가로등", "request_contents": "꺼짐 '.encode() + b"\xff\xfe" + '고장"}'.encode(), ["body", "request_contents"]),
        (b'{"title": "\xc3\x28", "request_contents": "x"}', ["body", "title"]),  # a truncated 2-byte sequence
        (b'{"title": "a\\u0000b", "request_contents": "x"}', ["body", "title"]),  # NUL
        (b'{"title": "x", "request_contents": "y", "voc_id": "\\ud800"}', ["body", "voc_id"]),
    ],
    ids=["surrogate-title", "surrogate-request", "surrogate-reply", "bad-utf8", "bad-utf8-2", "nul", "surrogate-id"],
)
def test_text_that_is_not_unicode_is_422_naming_the_field(client: TestClient, raw: bytes, loc: list) -> None:
    """A lone surrogate, invalid UTF-8 or a NUL is a 422 naming the field (was: 500 / 400)."""
    r = client.post("/v1/tag", content=raw, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [loc]
    r.content.decode("utf-8")  # the answer itself is valid UTF-8


def test_a_batch_names_the_item_that_is_not_unicode(client: TestClient) -> None:
    one = '{"title": "가로등 고장", "request_contents": "꺼져 있습니다"}'
    items = [one] * 3 + ['{"title": "\\ud800", "request_contents": "x"}', one, '{"title": "x", "request_contents": "a\\u0000"}']
    body = ('{"items": [' + ", ".join(items) + "]}").encode()
    r = client.post("/v1/tag:batch", content=body, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert [e["loc"] for e in detail] == [["body", "items", 3, "title"], ["body", "items", 5, "request_contents"]]
    assert "surrogate" in detail[0]["msg"] and "NUL" in detail[1]["msg"]
    # a BOM before the body is still fine, and a bad byte outside any string is a JSON error
    ok = client.post("/v1/tag", content=b"\xef\xbb\xbf" + one.encode(), headers={**AUTH, "content-type": "application/json"})
    assert ok.status_code == 200
    bad_utf8 = b'{"title": "x", \xff "request_contents": "y"}'
    r = client.post("/v1/tag", content=bad_utf8, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    big = {"title": "x", "request_contents": "가" * 22_000}  # 66 KB of UTF-8
    assert len(json.dumps(big, ensure_ascii=False).encode()) > 65_536
    r = client.post("/v1/tag", content=json.dumps(big, ensure_ascii=False).encode(), headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413
    assert client.post("/v1/tag", json={"title": "x", "request_contents": "가" * 20_000}, headers=AUTH).status_code == 200
    # the batch endpoint has its own (larger) limit: several such VOCs fit
    big = {"items": [{"title": "x", "request_contents": "가" * 20_000}] * 3}
    assert client.post("/v1/tag:batch", json=big, headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/tag", {}),
        ("/v1/tag", {"Authorization": "Bearer wrong-key"}),
        ("/v1/tag", {"Authorization": f"Basic {KEY}"}),
        ("/v1/tag", {"Authorization": "Bearer "}),
        ("/v1/tag", {"Authorization": f" Bearer {KEY}"}),  # RFC 6750 §2.1: nothing around the credentials
        ("/v1/tag", {"Authorization": f"Bearer {KEY} "}),
        ("/v1/tag", {"Authorization": f"Bearer\t{KEY}"}),  # 1*SP: spaces only
        ("/v1/tag", {"Authorization": f"Bearer{KEY}"}),
        ("/v1/tag", {"Authorization": f"Bearer {KEY},x"}),  # outside b64token
        ("/v1/tag", {"Authorization": f"Bearer {KEY}=a"}),  # "=" only at the end
        ("/v1/tag", {"Authorization": f"Bearer Bearer {KEY}"}),
        ("/v1/tag", {"Authorization": f"Token {KEY}"}),
        ("/v1/tag", [("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {KEY}")]),  # repeated
        ("/v1/tag:batch", {"Authorization": f"Bearer {KEY}x"}),
        ("/v1/admin/reload", {"Authorization": f"Bearer {KEY}"}),  # a tagging key is no admin key
    ],
)
def test_no_or_wrong_key_is_401(client: TestClient, path: str, headers: dict) -> None:
    r = client.post(path, json={"title": "x", "request_contents": "y"}, headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert KEY not in r.text


@pytest.mark.parametrize("value", [f"Bearer {KEY}", f"bearer {KEY}", f"BEARER {KEY}", f"Bearer   {KEY}"])
def test_bearer_credentials_of_rfc_6750(client: TestClient, value: str) -> None:
    """``"Bearer" 1*SP b64token``; the scheme is case-insensitive (RFC 7235 §2.1)."""
    assert client.post("/v1/tag", json={"title": "x", "request_contents": "y"}, headers={"Authorization": value}).status_code == 200


def test_a_key_that_no_header_can_carry_is_refused_at_start(store: Store, tmp_path: Path) -> None:
    from flows.service.app import BEARER_CREDENTIALS, check_settings

    assert BEARER_CREDENTIALS.fullmatch(b"Bearer abc-._~+/09==") and not BEARER_CREDENTIALS.fullmatch(b"Bearer ab=c")
    for bad in (" lead", "has space", "ключ", "semi;colon"):
        with pytest.raises(ServeConfigError, match=r"API_KEYS\[0\].*b64token") as ei:
            check_settings(_settings(store, tmp_path, api_keys=[SecretStr(bad)]))
        assert bad not in str(ei.value)


def test_access_log_never_shows_the_query_string(client: TestClient) -> None:
    """uvicorn's access line with a key in the query: the path alone is written, through the
    access handler of ``voc serve``'s log config and through the filter :func:`create_app` puts
    on uvicorn's access logger (the ``client`` fixture made an app)."""
    import io
    import logging

    from uvicorn.logging import AccessFormatter

    from flows.service.app import PathOnlyAccessLog, log_config

    conf = log_config()
    assert conf["handlers"]["access"]["filters"] == ["path_only"]
    assert conf["filters"]["path_only"]["()"] == "flows.service.app.PathOnlyAccessLog"
    access = logging.getLogger("uvicorn.access")
    assert any(isinstance(f, PathOnlyAccessLog) for f in access.filters)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(AccessFormatter(conf["formatters"]["access"]["fmt"], use_colors=False))
    old_level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        access.info('%s - "%s %s HTTP/%s" %d', "10.0.0.1:5000", "POST", f"/v1/tag?api_key={KEY}&x=1", "1.1", 200)
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)
    assert out.getvalue().strip() == 'INFO:     10.0.0.1:5000 - "POST /v1/tag HTTP/1.1" 200 OK'
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', ("c", "GET", "/healthz?k=1", "1.1", 200), None
    )
    assert PathOnlyAccessLog().filter(record) and record.getMessage() == 'c - "GET /healthz HTTP/1.1" 200'


def test_probes_need_no_key_and_admin_key_also_tags(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] and ready["model_version"] == PAIR and ready["variants"] == ["reply", "registration"]
    r = client.post("/v1/tag", json={"title": "x", "request_contents": "y"}, headers={"Authorization": f"bearer {ADMIN}"})
    assert r.status_code == 200


def test_metrics(client: TestClient) -> None:
    client.post("/v1/tag", json={"title": "가로등", "request_contents": "고장"}, headers=AUTH)
    client.post("/v1/tag", json={}, headers={"Authorization": "Bearer nope"})
    text = client.get("/metrics").text
    assert re.search(r'voc_serve_requests_total\{endpoint="/v1/tag",method="POST",status="200"\} [1-9]', text)
    assert re.search(r'voc_serve_requests_total\{endpoint="/v1/tag",method="POST",status="401"\} [1-9]', text)
    assert re.search(r'voc_serve_request_duration_seconds_bucket\{endpoint="/v1/tag",le="\+Inf"\} [1-9]', text)
    assert f'voc_serve_model_info{{model_version="{PAIR}",variants="reply,registration"}} 1.0' in text
    assert re.search(r'voc_serve_tagged_vocs_total\{variant="registration"\} [1-9]', text)


@pytest.mark.slow  # a Prefect flow run end to end
def test_admin_reload_swaps_to_an_old_single_variant_model(store: Store, tmp_path: Path) -> None:
    """A version without a registration tagger still serves: its reply-aware tagger reads title +
    request with an empty reply and says so (``reply_fallback``); batch loading is unchanged."""
    settings = _settings(store, tmp_path)
    app = create_app(settings)
    with TestClient(app) as c:
        assert _wait_ready(c.get)["model_version"] == PAIR
        admin = {"Authorization": f"Bearer {ADMIN}"}
        assert c.post("/v1/admin/reload", headers=admin).json()["result"] == "unchanged"
        write_champion(LocalStorage(store.root), PREFIX, {"kind": "linear", "version": "20250101_000000", "name": SINGLE})
        try:
            res = c.post("/v1/admin/reload", headers=admin).json()
            assert res == {"result": "swapped", "model_version": SINGLE, "previous": PAIR}
            ready = c.get("/readyz").json()
            assert ready["model_version"] == SINGLE and ready["variants"] == ["reply"]
            no_reply = c.post("/v1/tag", json={"title": "가로등 고장", "request_contents": "꺼져 있어요"}, headers=AUTH).json()
            assert no_reply["variant"] == REPLY_FALLBACK and no_reply["model_version"] == SINGLE
            tagger, meta = load_champion(settings, LocalStorage(store.root))
            assert tagger.use_reply and meta["name"] == SINGLE
            frame = validate_voc_frame(pl.DataFrame({
                "voc_id": ["a"], "building_id": ["1"], "building_name": [""], "created_at": ["2026-01-01"],
                "title": ["가로등 고장"], "request_contents": ["꺼져 있어요"], "reply": [""],
            }))
            expected = _as_answered(tag_frame(frame, tagger, run_id="t").select(TAG_FIELDS).to_dicts()[0])
            assert {k: no_reply[k] for k in expected} == expected
            info = 'voc_serve_model_info{model_version="linear_20260101_000000",variants="reply,registration"} 0.0'
            assert info in c.get("/metrics").text
        finally:
            write_champion(LocalStorage(store.root), PREFIX, {"kind": "linear", "version": "20260101_000000", "name": PAIR})
        assert c.post("/v1/admin/reload", headers=admin).json()["model_version"] == PAIR


def test_a_bad_champion_keeps_the_served_version(client: TestClient, store: Store) -> None:
    """A pointer to a missing version, or one that is not JSON: reload answers 502 naming the
    problem, the served version stays and keeps answering, /readyz shows the error."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    pointer = store.root / PREFIX / "models" / "champion.json"
    good = pointer.read_bytes()
    try:
        write_champion(LocalStorage(store.root), PREFIX, {"kind": "linear", "version": "29990101_000000"})
        r = client.post("/v1/admin/reload", headers=admin)
        assert r.status_code == 502 and "linear_29990101_000000" in r.json()["detail"] and PAIR in r.json()["detail"]
        ready = client.get("/readyz").json()
        assert ready["model_version"] == PAIR and "linear_29990101_000000" in ready["last_error"]
        pointer.write_text("{not json", "utf-8")
        r = client.post("/v1/admin/reload", headers=admin)
        assert r.status_code == 502 and "JSONDecodeError" in r.json()["detail"]
        assert client.post("/v1/tag", json={"title": "가로등", "request_contents": "고장"}, headers=AUTH).json()["model_version"] == PAIR
    finally:
        pointer.write_bytes(good)
    assert client.post("/v1/admin/reload", headers=admin).json()["result"] == "unchanged"
    assert client.get("/readyz").json()["last_error"] is None


def test_champion_reads_retry_transient_errors_only() -> None:
    from flows.adapters.model_store import read_champion_retrying

    class Flaky:
        def __init__(self, errors: list[BaseException]) -> None:
            self.errors, self.calls = errors, 0

        def exists(self, key: str) -> bool:
            self.calls += 1
            if self.errors:
                raise self.errors.pop(0)
            return True

        def read_bytes(self, key: str) -> bytes:
            return b'{"name": "linear_1"}'

    flaky = Flaky([ConnectionResetError("reset"), TimeoutError("slow")])
    assert read_champion_retrying(flaky, PREFIX, first_wait_s=0.01) == {"name": "linear_1"} and flaky.calls == 3
    denied = Flaky([PermissionError("denied")])
    with pytest.raises(PermissionError):
        read_champion_retrying(denied, PREFIX, first_wait_s=0.01)
    assert denied.calls == 1
    down = Flaky([ConnectionRefusedError("refused")] * 5)
    with pytest.raises(ConnectionRefusedError):
        read_champion_retrying(down, PREFIX, attempts=3, first_wait_s=0.01)
    assert down.calls == 3


def test_no_champion_is_not_ready_and_tagging_says_503(tmp_path: Path, store: Store) -> None:
    settings = _settings(store, tmp_path).model_copy(update={"storage": str(tmp_path / "empty")})
    with TestClient(create_app(settings)) as c:
        deadline = time.monotonic() + 30
        while c.get("/readyz").json()["last_poll_at"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
        r = c.get("/readyz")
        assert r.status_code == 503 and "voc train" in r.json()["last_error"]
        t = c.post("/v1/tag", json={"title": "x", "request_contents": "y"}, headers=AUTH)
        assert t.status_code == 503 and t.headers["retry-after"] == "5"
        assert c.get("/healthz").status_code == 200


def test_settings_keys_are_secret_and_required(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store: Store) -> None:
    from config.settings import get_settings

    monkeypatch.setenv("VOC_SERVE__API_KEYS", json.dumps([KEY, "second-key"]))
    monkeypatch.setenv("VOC_SERVE__ADMIN_KEY", ADMIN)
    s = get_settings()
    assert [k.get_secret_value() for k in s.serve.api_keys] == [KEY, "second-key"]
    assert KEY not in repr(s) and ADMIN not in repr(s) and KEY not in s.model_dump_json()
    with pytest.raises(ServeConfigError, match="VOC_SERVE__API_KEYS"):
        create_app(_settings(store, tmp_path, api_keys=[]))
    with pytest.raises(ServeConfigError, match="PostgreSQL"):
        create_app(_settings(store, tmp_path, write_through=True))


def test_choose_variant() -> None:
    both = {"reply": "R", "registration": "G"}
    assert choose_variant(both, True) == ("reply", "R") and choose_variant(both, False) == ("registration", "G")
    assert choose_variant({"reply": "R"}, False) == (REPLY_FALLBACK, "R")
    assert choose_variant({"registration": "G"}, True) == ("registration", "G")
    assert TagRequest(title="a", request_contents="b", reply=" \n").has_reply is False
    with pytest.raises(ValueError, match="without taggers"):
        choose_variant({}, True)


# --------------------------------------------------------------------------------------------
# slow: the real command under uvicorn


@contextmanager
def running_server(store: Store, tmp: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """``python -m flows.cli.main serve`` on a free port (champion polled every second); yields the
    base URL, the process and its log file; stops it (SIGTERM) afterwards."""
    port = free_port()
    log = tmp / f"serve-{port}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VOC_")}
    full_env.update(
        VOC_SERVE__API_KEYS=json.dumps([KEY]), VOC_SERVE__ADMIN_KEY=ADMIN, VOC_MODEL__CACHE_DIR=str(tmp / "cache"),
        PYTHONUNBUFFERED="1", **env,
    )
    cmd = [sys.executable, "-m", "flows.cli", "serve", "--port", str(port), "--storage", str(store.root), "--reload-interval", "1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            try:
                _wait_ready(c.get)
            except AssertionError:
                raise AssertionError(f"server not ready; log:\n{log.read_text(errors='replace')[-3000:]}") from None
        yield url, proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _bodies(sample_df: pl.DataFrame, n: int, *, max_chars: int | None = None) -> list[dict]:
    """``n`` request bodies cycling over the sample's real texts (each field cut to ``max_chars``
    when given); every fourth with its reply."""
    rows = sample_df.select("title", "request_contents", "reply").to_dicts()
    cut = (lambda t: t[:max_chars]) if max_chars else (lambda t: t)
    out = []
    for i in range(n):
        r = rows[i % len(rows)]
        body = {"title": cut(r["title"]), "request_contents": cut(r["request_contents"])}
        if i % 4 == 0 and r["reply"].strip():
            body["reply"] = cut(r["reply"])
        out.append(body)
    return out


async def _hammer(url: str, bodies: list[dict], concurrency: int) -> Counter:
    """POST every body to /v1/tag from ``concurrency`` connections; status codes counted
    (a transport error counts as its exception name)."""
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    seen: Counter = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60, limits=limits) as c:

        async def worker() -> None:
            while not queue.empty():
                b = queue.get_nowait()
                try:
                    seen[(await c.post("/v1/tag", json=b)).status_code] += 1
                except httpx.HTTPError as e:
                    seen[type(e).__name__] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return seen


@pytest.mark.slow
def test_real_server_keys_logs_and_swap_under_traffic(store: Store, tmp_path: Path, sample_df: pl.DataFrame) -> None:
    """Against uvicorn: probes, a tag, 401 for a wrong key with neither key in the log, then a new
    champion picked up by the poller while requests keep flowing: none fails, both versions answer."""
    with running_server(store, tmp_path) as (url, _, log), httpx.Client(base_url=url, timeout=30) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").json()["model_version"] == PAIR
        assert c.get("/healthz", params={"api_key": KEY}).status_code == 200  # a key in the query: not logged
        wrong = "wrong-key-9b8c7d"
        r = c.post("/v1/tag", json={"title": "x", "request_contents": "y"}, headers={"Authorization": f"Bearer {wrong}"})
        assert r.status_code == 401
        ok = c.post("/v1/tag", json={"title": "가로등 고장", "request_contents": "꺼졌어요", "voc_id": "V1"}, headers=AUTH)
        assert ok.status_code == 200 and ok.json()["variant"] == "registration"

        versions: Counter = Counter()
        errors: list[str] = []
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(base_url=url, timeout=30, headers=AUTH) as t:
                body = _bodies(sample_df, 1)[0]
                while not stop.is_set():
                    try:
                        resp = t.post("/v1/tag", json=body)
                        if resp.status_code != 200:
                            errors.append(f"{resp.status_code} {resp.text[:200]}")
                        else:
                            versions[resp.json()["model_version"]] += 1
                    except httpx.HTTPError as e:
                        errors.append(repr(e))

        threads = [threading.Thread(target=traffic) for _ in range(4)]
        for th in threads:
            th.start()
        try:
            time.sleep(2)
            write_champion(LocalStorage(store.root), PREFIX, {"kind": "linear", "version": "20250101_000000", "name": SINGLE})
            deadline = time.monotonic() + 120
            while c.get("/readyz").json()["model_version"] != SINGLE and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(2)
        finally:
            stop.set()
            for th in threads:
                th.join()
            write_champion(LocalStorage(store.root), PREFIX, {"kind": "linear", "version": "20260101_000000", "name": PAIR})
        assert errors == []
        assert versions[PAIR] > 0 and versions[SINGLE] > 0, versions
        assert 'voc_serve_model_checks_total{result="swapped"} 2.0' in c.get("/metrics").text
    text = log.read_text(errors="replace")
    assert "401" in text and "wrong key" in text and f"serving model {SINGLE}" in text
    assert '"GET /healthz HTTP/1.1" 200' in text  # the access log is on, path only
    assert wrong not in text and KEY not in text and ADMIN not in text and "api_key" not in text


@pytest.mark.slow
def test_load_3000_requests_at_concurrency_32(store: Store, tmp_path: Path, sample_df: pl.DataFrame) -> None:
    """3,000 real texts at concurrency 32: no error, resident memory grows by under 10 % once the
    server has warmed up (first 300 requests). Texts are cut to 200 characters per field to
    bound the test's time (speed is measured by benchmarks/serve.py, not here)."""
    with running_server(store, tmp_path) as (url, proc, _):
        warm = asyncio.run(_hammer(url, _bodies(sample_df, 300, max_chars=200), 32))
        assert warm == Counter({200: 300})
        before = _rss_kb(proc.pid)
        t0 = time.monotonic()
        seen = asyncio.run(_hammer(url, _bodies(sample_df, 3000, max_chars=200), 32))
        elapsed = time.monotonic() - t0
        after = _rss_kb(proc.pid)
    assert seen == Counter({200: 3000}), seen
    assert after < before * 1.10, f"RSS {before} kB → {after} kB after 3,000 requests ({elapsed:.0f} s)"


_pg = pg_available()


@pytest.mark.slow
@pytest.mark.skipif(_pg is not None, reason=_pg or "")
def test_write_through_respects_the_priority_rule(store: Store, tmp_path: Path) -> None:
    """With a PostgreSQL source: a registration-time tag is stored as ``realtime``, a reply-aware
    one as ``realtime_reply``; neither replaces a batch or reviewed row, and ``realtime`` does not
    replace ``realtime_reply``."""
    from flows.adapters.db import PostgresSource, apply_migrations

    with temp_database() as dsn:
        apply_migrations(dsn)
        with PostgresSource(dsn) as src:
            seed = pl.DataFrame({
                "voc_id": ["BATCH", "REVIEWED"], "subject_major": ["S0", "S1"], "subject_minor": ["s0", "s1"],
                "subject_confidence": [0.5, 1.0], "work_major": ["W0", "W1"], "work_minor": ["w0", "w1"],
                "work_confidence": [0.5, 1.0], "model_version": ["m", "m"], "run_id": ["r", "r"],
            })
            src.write_tags(seed.head(1), classify_source="batch")
            src.write_tags(seed.tail(1), classify_source="reviewed", reviewed=True)
        env = {"VOC_SOURCE": "postgres", "VOC_DB__DSN": dsn, "VOC_SERVE__WRITE_THROUGH": "true"}
        text = {"title": "가로등이 고장났어요", "request_contents": "공원 앞 가로등 세 개가 밤새 꺼져 있습니다"}
        with (
            running_server(store, tmp_path, **env) as (url, _, log),
            httpx.Client(base_url=url, timeout=30, headers=AUTH) as c,
        ):

            def tag(voc_id: str | None, reply: str | None = None) -> dict:
                r = c.post("/v1/tag", json={**text, "voc_id": voc_id, **({"reply": reply} if reply else {})})
                assert r.status_code == 200, r.text
                return r.json()

            assert tag("BATCH")["write_through"] == "kept_existing"
            assert tag("REVIEWED", reply="교체했습니다")["write_through"] == "kept_existing"
            assert tag(None)["write_through"] == "no_voc_id"
            first = tag("NEW")
            assert first["write_through"] == "written" and first["variant"] == "registration"
            with_reply = tag("NEW", reply="가로등 전구를 교체했습니다")
            assert with_reply["write_through"] == "written" and with_reply["variant"] == "reply"
            assert tag("NEW")["write_through"] == "kept_existing"  # realtime never replaces realtime_reply
            items = [{**text, "voc_id": "B1"}, {**text, "voc_id": "B2", "reply": "점검 완료"}, text]
            batch = c.post("/v1/tag:batch", json={"items": items}).json()
            assert batch["rows_written"] == 2
            assert [r["write_through"] for r in batch["results"]] == ["submitted", "submitted", "no_voc_id"]
            assert re.search(r'voc_serve_write_through_total\{result="written"\} 4.0', c.get("/metrics").text)
        with PostgresSource(dsn) as src:
            rows = {r["voc_id"]: r for r in src.read_tags().iter_rows(named=True)}
        assert rows["BATCH"]["classify_source"] == "batch" and rows["BATCH"]["subject_major"] == "S0"
        assert rows["REVIEWED"]["classify_source"] == "reviewed" and rows["REVIEWED"]["subject_major"] == "S1"
        assert rows["NEW"]["classify_source"] == "realtime_reply" and rows["NEW"]["model_version"] == PAIR
        assert {k: rows["NEW"][k] for k in ("subject_minor", "work_minor")} == {k: with_reply[k] for k in ("subject_minor", "work_minor")}
        assert rows["B1"]["classify_source"] == "realtime" and rows["B2"]["classify_source"] == "realtime_reply"
        assert rows["NEW"]["run_id"].startswith("serve_")
        assert set(rows) == {"BATCH", "REVIEWED", "NEW", "B1", "B2"}
        assert "write-through to postgresql://postgres@127.0.0.1" in log.read_text()


@pytest.mark.slow
def test_train_flow_stores_both_variants_and_gates_the_pair(store: Store, tmp_path: Path, prefect_server, monkeypatch) -> None:
    """``voc-train`` over an older single-variant champion: the new version holds the reply-aware
    tagger and the registration-time one with their held-out metrics; each was compared with the
    champion on its own held-out rows (the old champion's registration-time answer = its reply
    tagger given no reply), and the status is the pair rule applied to those measurements."""
    import shutil

    from flows.adapters.model_store import read_champion
    from flows.train import voc_train
    from voc.modelstore import REGISTRATION_DIR, decide_pair_promotion, read_meta

    monkeypatch.setenv("VOC_MODEL__REGISTRATION_VARIANT", "true")  # conftest turns both off for speed
    monkeypatch.setenv("VOC_MODEL__SELECT_RECIPE", "true")
    root = tmp_path / "data"
    shutil.copytree(store.root / PREFIX / "models" / SINGLE, root / PREFIX / "models" / SINGLE)
    write_champion(LocalStorage(root), PREFIX, {"kind": "linear", "version": "20250101_000000", "name": SINGLE})
    summary = voc_train(until="2015-01", storage=str(root))
    assert set(summary["variants"]) == {"reply", "registration"}
    # the recipe of each variant was chosen on temporal folds, with every candidate's score kept
    for v in ("reply", "registration"):
        chosen = summary["recipes"][v]["subject"]
        assert {"default", "anchor"} <= set(chosen["candidates"]) and chosen["recipe"] in chosen["candidates"]
        anchor, pick = chosen["candidates"]["anchor"], chosen["candidates"][chosen["recipe"]]
        assert (pick["macro_f1"], pick["accuracy"]) >= (anchor["macro_f1"], anchor["accuracy"]) or chosen["recipe"] == "anchor"
    d = root / PREFIX / "models" / summary["model"]
    meta, sub = read_meta(d), read_meta(d / REGISTRATION_DIR)
    assert meta["variant"] == "reply" and meta["use_reply"] and sub["variant"] == "registration" and not sub["use_reply"]
    for v in ("reply", "registration"):
        listed = meta["variants"][v]
        assert listed["metrics"]["subject"]["macro_f1"] > 0 and listed["n_holdout"]["subject"] > 20
        assert listed["champion_metrics_same_rows"]["subject"]["macro_f1"] > 0  # the old champion was measured
    assert sub["metrics"] == meta["variants"]["registration"]["metrics"]
    again = decide_pair_promotion(
        {v: meta["variants"][v]["metrics"] for v in meta["variants"]},
        {v: meta["variants"][v]["champion_metrics_same_rows"] for v in meta["variants"]},
    )
    assert summary["status"] == ("champion" if again.promote else "candidate") == meta["status"]
    assert summary["decision"] == again.reason
    assert read_champion(LocalStorage(root), PREFIX)["name"] == (summary["model"] if again.promote else SINGLE)


@pytest.fixture(scope="module")
def docs_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app over empty storage (no model: /docs and the schema need none)."""
    root = tmp_path_factory.mktemp("serve-docs")
    conf = ServeSettings(api_keys=[SecretStr(KEY)], reload_interval_s=3600.0)
    app = create_app(VocSettings(storage=str(root), model={"cache_dir": root / "cache"}, serve=conf))
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_their_assets_from_the_service(docs_client: TestClient, page: str) -> None:
    """Issue 22: Swagger UI and ReDoc work without internet: every script, stylesheet and icon the
    page references is a local path that the service answers with 200 (no CDN)."""
    html = docs_client.get(page)
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']|(?:url|openapi_url)\s*:\s*["']([^"']+)["']""", html.text)
    urls = [a or b for a, b in urls]
    assets = [u for u in urls if u.endswith((".js", ".css", ".png", ".ico"))]
    assert len(assets) >= (3 if page == "/docs" else 2), urls
    assert not [u for u in urls if "://" in u or u.startswith("//")], "no external URL: " + ", ".join(urls)
    for u in {*assets, "/openapi.json"}:
        r = docs_client.get(u)
        assert r.status_code == 200 and len(r.content) > 100, u


def test_openapi_declares_bearer_auth_and_the_error_answers(docs_client: TestClient) -> None:
    """The schema declares the HTTP bearer scheme on the /v1 paths and documents 401, 413, 422 and
    503 with an example each, in the bodies the service really sends."""
    spec = docs_client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearer"]["description"],
    }
    for path in ("/v1/tag", "/v1/tag:batch", "/v1/admin/reload"):
        assert spec["paths"][path]["post"]["security"] == [{"bearer": []}], path
    for path in ("/healthz", "/readyz", "/metrics"):
        assert "security" not in spec["paths"][path]["get"], path
    for path in ("/v1/tag", "/v1/tag:batch"):
        responses = spec["paths"][path]["post"]["responses"]
        for code in ("401", "413", "422", "503"):
            example = responses[code]["content"]["application/json"]["example"]
            assert "detail" in example and responses[code]["description"], (path, code)
        assert responses["401"]["content"]["application/json"]["example"]["detail"] == "missing or wrong API key"
        assert isinstance(responses["422"]["content"]["application/json"]["example"]["detail"], list)
        assert "Retry-After" in responses["503"]["headers"]
    # the documented bodies are the real ones
    r = docs_client.post("/v1/tag", json={"title": "t", "request_contents": "r"})
    assert r.status_code == 401 and r.json() == {"detail": "missing or wrong API key"}
    r = docs_client.post("/v1/tag", json={"title": "t", "request_contents": "r"}, headers=AUTH)
    assert r.status_code == 503 and r.json()["detail"].startswith("no model loaded yet") and r.headers["retry-after"]
