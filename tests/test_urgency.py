"""Urgent and repeated VOCs (voc.urgency) on the shipped sample."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from voc.groups import group_texts
from voc.schema import TAGGED_COLUMNS, validate_voc_frame
from voc.urgency import is_urgent, repeat_of, urgent_flags, urgent_reasons, urgent_rows, with_alert_columns

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "voc/datasets/incheon_junggu_minwon/voc.csv"


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return validate_voc_frame(pl.read_csv(SAMPLE, infer_schema_length=0))


def test_urgent_meets_the_precision_goal_on_the_hand_labelled_sample(sample: pl.DataFrame) -> None:
    """tests/data/urgent_labels.csv (217 VOCs labelled by reading them; README there)."""
    labels = pl.read_csv(ROOT / "tests/data/urgent_labels.csv", schema_overrides={"voc_id": pl.Utf8})
    d = sample.join(labels, on="voc_id")
    assert d.height == labels.height >= 200
    pred = urgent_flags(d).to_list()
    truth = d["urgent"].to_list()
    tp = sum(p and t for p, t in zip(pred, truth))
    assert tp / sum(pred) >= 0.9 and tp / sum(truth) >= 0.7


def test_hypotheticals_and_words_inside_words_are_not_urgent() -> None:
    assert urgent_reasons("우리 아파트 정전이 되어 엘리베이터가 멈췄어요") == ["정전·단수"]
    assert is_urgent("엘리베이터에 30분 동안 갇혀 있었습니다")
    assert is_urgent("천장에서 물이 떨어지고 있어요") and is_urgent("집 벽에 균열이 생겼습니다")
    assert not is_urgent("관리규약 개정전 동의를 받았습니다")  # 개정전 is not 정전
    assert not is_urgent("담배꽁초로 화재 위험이 있습니다")  # a fear, not a fire
    assert not is_urgent("그 시절도 아니고") and not is_urgent("") and not is_urgent(None)


def test_repeat_of_names_the_earlier_post_of_the_same_building(sample: pl.DataFrame) -> None:
    month = sample.filter(pl.col("created_at").dt.strftime("%Y%m") == "201911")
    history = sample.filter(pl.col("created_at").dt.strftime("%Y%m") < "201911")
    rep = repeat_of(month, history)
    assert rep.len() == month.height and 0 < rep.is_not_null().sum() < month.height
    by_id = dict(zip(sample["voc_id"].to_list(), sample.iter_rows(named=True)))
    for vid, earlier in zip(month["voc_id"].to_list(), rep.to_list()):
        if earlier is None:
            continue
        a, b = by_id[vid], by_id[earlier]
        assert a["building_id"] == b["building_id"] and 0 <= (a["created_at"] - b["created_at"]).days <= 30
    # a post re-sent the next day repeats the first; nothing repeats itself
    one = month.head(1)
    again = one.with_columns(pl.lit("again").alias("voc_id"), pl.col("created_at") + pl.duration(days=1))
    assert repeat_of(pl.concat([one, again])).to_list() == [None, one["voc_id"][0]]
    assert repeat_of(pl.concat([one, again.with_columns(pl.col("created_at") + pl.duration(days=40))])).to_list() == [None, None]


def test_older_csvs_get_the_new_columns_and_the_tagged_order_ends_with_them(sample: pl.DataFrame) -> None:
    assert TAGGED_COLUMNS[-2:] == ("urgent", "repeat_of")
    old = sample.head(50).select("voc_id", "building_id", "created_at", "title", "request_contents")
    f = with_alert_columns(old)
    assert f["urgent"].dtype == pl.Boolean and f["repeat_of"].dtype == pl.Utf8
    csvish = f.with_columns(pl.col("urgent").cast(pl.Utf8).str.to_lowercase())
    assert with_alert_columns(csvish)["urgent"].to_list() == f["urgent"].to_list()
    rows = urgent_rows(with_alert_columns(sample))
    assert rows and all(r["reasons"] for r in rows) and rows == sorted(rows, key=lambda r: r["created_at"], reverse=True)
    assert len(rows) == sum(bool(urgent_reasons(t)) for t in group_texts(sample))


def test_dashboard_lists_urgent_vocs_at_the_top_masked(sample: pl.DataFrame) -> None:
    from voc.dashboard import DashboardContent, DashboardContext, DashboardOptions, render_dashboard

    month = sample.filter((pl.col("created_at").dt.strftime("%Y%m") == "201911") & (pl.col("building_id") == "1"))
    urgent_row = month.head(1).with_columns(
        pl.lit("u-1").alias("voc_id"), pl.lit("지하 주차장 천장에서 물이 떨어지고 있어요 010-1234-5678").alias("title")
    )
    frame = pl.concat([month, urgent_row]).with_columns(
        pl.col("created_at").dt.strftime("%Y%m").alias("yyyymm"),
        pl.lit("기타").alias("subject_major"), pl.lit("기타").alias("subject_minor"), pl.lit(0.9).alias("subject_confidence"),
        pl.lit("model").alias("subject_source"), pl.lit("기타").alias("work_major"), pl.lit("기타").alias("work_minor"),
        pl.lit(0.9).alias("work_confidence"), pl.lit("model").alias("work_source"), pl.lit("batch").alias("classify_source"),
        pl.lit("hybrid_x").alias("model_version"), pl.lit("").alias("flags"), pl.lit("full_1").alias("run_id"),
    ).pipe(with_alert_columns).select(TAGGED_COLUMNS)
    where = DashboardContext("1", "본청", "2019-11", "full_1", "2019-12-01 02:00 KST")
    page = render_dashboard(frame, where, DashboardContent(), DashboardOptions(embed_font=False))
    box = page[page.index('id="urgent"'):]
    assert "누수" in box[:2000] and "u-1" in box[:4000] and "010-1234-5678" not in page
    assert page.index('id="urgent"') < page.index('id="pre-review"') if 'id="pre-review"' in page else True
    # a frame without the column (an older CSV) renders without the box
    older = frame.drop("urgent", "repeat_of")
    assert 'id="urgent"' not in render_dashboard(older, where, options=DashboardOptions(embed_font=False))


def test_realtime_api_declares_the_urgent_field() -> None:
    from flows.service.app import TagResult

    assert TagResult.model_fields["urgent"].annotation is bool


def test_a_flood_of_posts_counts_identical_texts_only(sample: pl.DataFrame, monkeypatch) -> None:
    import voc.urgency as urgency

    month = sample.filter((pl.col("created_at").dt.strftime("%Y%m") == "201911") & (pl.col("building_id") == "1"))
    again = month.head(1).with_columns(pl.lit("again").alias("voc_id"))
    frame = pl.concat([month, again])
    monkeypatch.setattr(urgency, "REPEAT_MAX_ROWS", 10)
    rep = repeat_of(frame)
    assert rep.to_list()[-1] == month["voc_id"][0] and rep.is_not_null().sum() == 1
