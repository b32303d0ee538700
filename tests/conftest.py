"""Shared fixtures: the shipped real sample, a tokenizer, and one Prefect test server per session."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from config.settings import sample_csv_path
from voc.schema import validate_voc_frame

REPO = Path(__file__).resolve().parents[1]

# The end-to-end tests run the train flow many times; recipe selection (several fits on temporal
# folds) and the second, registration-time variant multiply its cost without being what those
# tests check; so does the label audit. Tests of each set the variable back (tests/test_recipes.py, tests/test_serve.py).
os.environ.setdefault("VOC_MODEL__SELECT_RECIPE", "false")
os.environ.setdefault("VOC_MODEL__REGISTRATION_VARIANT", "false")
os.environ.setdefault("VOC_MODEL__LABEL_AUDIT", "false")  # 30–60 s per training; tests/test_train_label_audit.py


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    """The shipped real complaints (Incheon Jung-gu office board, via 2hy03/Civil_Complaint)."""
    return sample_csv_path()


@pytest.fixture(scope="session")
def sample_raw(sample_csv: Path) -> pl.DataFrame:
    """The sample as read from CSV, every column a string (1,054 rows)."""
    return pl.read_csv(sample_csv, infer_schema=False)


@pytest.fixture(scope="session")
def sample_df(sample_raw: pl.DataFrame) -> pl.DataFrame:
    """The validated sample (31 duplicate voc_ids merged: 996 VOCs)."""
    return validate_voc_frame(sample_raw)


@pytest.fixture(scope="session")
def tokenizer():
    """One Kiwi analyser for the session, caching analyses by text: the tests train and tag on
    the same 996 real texts, and Kiwi is most of the cost (the cache is the tokenizer's own,
    the results are the same as uncached: tests/test_tokenize.py)."""
    from voc.tokenize import KiwiTokenizer

    return KiwiTokenizer(cache_size=20_000)


@pytest.fixture(scope="session")
def sample_texts(sample_df: pl.DataFrame) -> list[str]:
    """``all_text`` (title + request + reply) of each sample VOC, in frame order."""
    from voc.tagger import frame_texts

    return frame_texts(sample_df, use_reply=True)[0]


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch intra-op thread for a KoBERT test module: the test hosts are small shared VMs
    where torch's default (one thread per core) oversubscribes the CPU and runs 10–30 × slower."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def prefect_server():
    """One ephemeral Prefect API for the whole session (starting one costs 5–10 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=600):  # minutes on a loaded 2-core machine
        yield


@pytest.fixture()
def aws_test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and region for the local moto S3 server; the host's AWS profile,
    session token and endpoint overrides are removed so no test can reach a real account."""
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
