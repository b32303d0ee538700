"""`voc train --model kobert` then `voc run --mode full` with a tiny KoBERT base built locally
(SentencePiece trained on the shipped texts + a small random BERT): the production code path,
no download."""

from __future__ import annotations

import polars as pl
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytestmark = [pytest.mark.slow, pytest.mark.kobert]


def test_kobert_train_then_full(tmp_path, prefect_server, monkeypatch):
    from flows.cli.main import app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VOC_MODEL__KOBERT_EPOCHS", "1")
    monkeypatch.setenv("VOC_MODEL__KOBERT_INT8_MIN_AGREEMENT", "0.5")  # the check itself: tests/test_kobert_onnx.py
    runner = CliRunner()
    base, storage = tmp_path / "tiny-kobert", tmp_path / "data"
    r = runner.invoke(app, ["kobert", "build-tiny-base", str(base)], catch_exceptions=False)
    assert r.exit_code == 0 and (base / "config.json").is_file() and (base / "vocab.txt").is_file()
    r = runner.invoke(
        app,
        ["train", "--model", "kobert", "--kobert-base", str(base), "--until", "2019-11", "--storage", str(storage), "--json"],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    import json

    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["model"].startswith("kobert_") and summary["status"] == "champion"
    assert summary["fallback_dimensions"] == ["work"] and summary["n_holdout"]["subject"] > 100
    model_dir = storage / "stat" / "voc-dev" / "models" / summary["model"]
    assert (model_dir / "heads.json").is_file() and (model_dir / "meta.json").is_file()
    # the int8 CPU copy was written, checked on the held-out rows and recorded
    assert summary["cpu_runtime"]["kept"] is True and summary["cpu_runtime"]["n_texts"] == summary["n_holdout"]["subject"]
    assert (model_dir / "onnx" / "model.int8.onnx").is_file()
    assert json.loads((model_dir / "meta.json").read_text("utf-8"))["cpu_runtime"]["runtime"] == "onnx-int8"

    r = runner.invoke(app, ["run", "--mode", "full", "--month", "2019-11", "--storage", str(storage), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    run = json.loads(r.output.strip().splitlines()[-1])
    assert run["model"] == summary["model"] and run["rows"] == 45 and run["failed"] == []
    assert run["model_runtime"] == "onnx-int8"  # a CPU worker tags with the int8 copy
    tagged = pl.concat(
        [pl.read_csv(p, infer_schema=False) for p in (storage / "stat" / "voc-dev" / "201911").glob("*/tagged_*.csv")]
    )
    assert tagged.height == 45 and tagged["voc_id"].n_unique() == 45
    assert set(tagged["subject_source"]) == {"model"} and set(tagged["work_source"]) == {"keyword"}
    assert (tagged["model_version"] == summary["model"]).all()
