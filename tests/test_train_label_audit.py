"""The label audit as a step of ``voc-train`` (flows/train.py ``audit_training_labels``): the
files it writes into a model version directory, on a small frame of the shipped sample."""

from __future__ import annotations

from collections import Counter
from html import escape

import polars as pl
import pytest

from voc.label_audit import SUSPECT_COLUMNS
from voc.tagger import labels_of


def test_label_audit_setting_defaults_on_and_reads_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from config.settings import ModelSettings, get_settings

    assert ModelSettings().label_audit is True  # tests/conftest.py turns it off for the other tests
    monkeypatch.setenv("VOC_MODEL__LABEL_AUDIT", "true")
    assert get_settings().model.label_audit is True
    monkeypatch.setenv("VOC_MODEL__LABEL_AUDIT", "false")
    assert get_settings().model.label_audit is False


def test_audit_training_labels_writes_csv_and_masked_html(sample_df: pl.DataFrame, tokenizer, tmp_path) -> None:
    """282 VOCs of the five subject classes with ≥ 25 VOCs, 3 grouped folds: label_audit.csv holds
    the flagged rows ranked per dimension, label_audit.html the health score and the top suspects
    with personal details masked and markup escaped."""
    from flows.train import audit_training_labels

    labs = labels_of(sample_df, "subject")
    count = Counter(v for v in labs if v)
    df = sample_df[[i for i, v in enumerate(labs) if v and count[v] >= 25]]
    # every title carries a phone number and markup: the report must mask the one and escape the other
    df = df.with_columns(pl.concat_str(pl.lit("<script>x</script> 연락처 010-1234-5678 "), pl.col("title")).alias("title"))
    res = audit_training_labels(tmp_path, df, None, use_reply=True, n_splits=3, tokenizer=tokenizer)
    assert res["csv"] == "label_audit.csv" and res["html"] == "label_audit.html"
    dims = {d["dimension"]: d for d in res["dimensions"]}
    assert "subject" in dims and 0 < dims["subject"]["health"] < 1 and dims["subject"]["n_classes"] == 5
    sus = pl.read_csv(tmp_path / "label_audit.csv")
    assert tuple(sus.columns) == SUSPECT_COLUMNS
    sub = sus.filter(pl.col("dimension") == "subject")
    assert sub.height == dims["subject"]["n_issues"] > 0
    assert sub["rank"].to_list() == sorted(sub["rank"].to_list())
    assert sub["issue"].all()
    html = (tmp_path / "label_audit.html").read_text("utf-8")
    assert "라벨 건강도" in html and f"{dims['subject']['health']:.3f}" in html
    assert str(sub["voc_id"][0]) in html and escape(sub["suggested_label"][0]) in html  # "major&gt;minor"
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "010-1234-5678" not in html and "[전화번호]" in html
    assert "010-1234-5678" not in (tmp_path / "label_audit.csv").read_text("utf-8")
    # where each suspect is, for the review workbook's 이전 라벨 점검 sheet (title masked too)
    first = sub.row(0, named=True)
    src = df.filter(pl.col("voc_id").cast(pl.String) == str(first["voc_id"])).row(0, named=True)
    assert (str(first["building_id"]), first["created_at"]) == (src["building_id"], src["created_at"].isoformat())
    assert "[전화번호]" in first["title"] and "010-1234-5678" not in first["title"]
    # a suspect a reviewer settled (confirmed its label) is not listed again
    again = audit_training_labels(tmp_path / "again", df, None, use_reply=True, n_splits=3, tokenizer=tokenizer,
                                  settled={(str(first["voc_id"]), "subject", first["given_label"])})
    resub = pl.read_csv(tmp_path / "again" / "label_audit.csv").filter(pl.col("dimension") == "subject")
    assert resub.height == sub.height - 1 and str(first["voc_id"]) not in resub["voc_id"].cast(pl.String).to_list()
    assert resub["voc_id"].to_list() == sub["voc_id"].to_list()[1:]  # the others, in the same order, re-ranked
    assert resub["rank"].to_list() == [r - 1 for r in sub["rank"].to_list()[1:]]
    assert {d["dimension"]: d for d in again["dimensions"]}["subject"]["n_issues"] == resub.height


def test_audit_training_labels_skips_a_single_class(sample_df: pl.DataFrame, tokenizer, tmp_path) -> None:
    labs = labels_of(sample_df, "subject")
    top = Counter(v for v in labs if v).most_common(1)[0][0]
    df = sample_df[[i for i, v in enumerate(labs) if v == top]].with_columns(
        *[pl.lit(None, dtype=pl.String).alias(f"reviewed_work_{k}") for k in ("major", "minor")]
    )
    from flows.train import audit_training_labels

    res = audit_training_labels(tmp_path, df, None, n_splits=3, tokenizer=tokenizer)
    assert "skipped" in res and not (tmp_path / "label_audit.csv").exists()


@pytest.mark.slow
def test_label_audit_task_writes_files_and_a_table_artifact(sample_df: pl.DataFrame, prefect_server, tmp_path) -> None:
    """The voc-train step (Prefect task): files in the version directory, a JSON-ready result and
    the ``voc-train-label-audit`` table artifact."""
    import json

    from prefect import flow
    from prefect.artifacts import Artifact

    from config.settings import get_settings
    from flows.train import label_audit_task

    labs = labels_of(sample_df, "subject")
    count = Counter(v for v in labs if v)
    df = sample_df[[i for i, v in enumerate(labs) if v and count[v] >= 25]]

    @flow
    def one_step() -> dict:
        return label_audit_task(get_settings(), tmp_path / "linear-test", df, None, None)

    res = one_step()
    json.dumps(res)
    assert {d["dimension"] for d in res["dimensions"]} >= {"subject"}
    assert (tmp_path / "linear-test" / "label_audit.csv").is_file()
    assert (tmp_path / "linear-test" / "label_audit.html").is_file()
    art = Artifact.get("voc-train-label-audit")
    assert art is not None and art.type == "table"
