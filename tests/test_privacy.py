"""Personal details (e-mail, phone and resident registration numbers) are masked wherever many
people read — dashboards, the month index, Prefect artifacts — and kept in the tagged CSV.

Planted in real VOCs of the sample month 2019-11 (building 1, whose list already holds two
e-mail addresses in a reply), rendered through the pipeline, and grepped in every output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

import voc.dashboard as dashboard
from config.settings import VocSettings
from flows import monthly
from flows.adapters.model_store import keyword_only_tagger
from voc import pipeline
from voc.months import Month
from voc.privacy import EMAIL_MASK, PHONE_MASK, RRN_MASK, mask_personal_details, remove_personal_details

MONTH = Month.parse("2019-11")

PLANTED = {  # original → mask
    "hong.gildong@example.com": EMAIL_MASK,
    "010-1234-5678": PHONE_MASK,
    "01098765432": PHONE_MASK,
    "02-123-4567": PHONE_MASK,
    "032-123-4567": PHONE_MASK,
    "+82 10 2345 6789": PHONE_MASK,
    "900101-1234567": RRN_MASK,
}
SAMPLE_EMAILS = ["parksj3@naver.com", "mailron@korea.kr"]  # in building 1's list of 2019-11 today


@pytest.mark.parametrize(("text", "want"), [
    ("연락처 010-1234-5678 입니다", "연락처 [전화번호] 입니다"),
    ("01012345678로 전화", "[전화번호]로 전화"),
    ("010 1234 5678", "[전화번호]"),
    ("010.1234.5678", "[전화번호]"),
    ("02-123-4567", "[전화번호]"),
    ("(02) 123-4567", "[전화번호]"),
    ("032-123-4567", "[전화번호]"),
    ("☎032)760-6275", "☎[전화번호]"),
    ("+82 10 1234 5678", "[전화번호]"),
    ("+82-10-1234-5678", "[전화번호]"),
    ("+82 (0)2-123-4567", "[전화번호]"),
    ("070-1234-5678", "[전화번호]"),
    ("hong.gil-dong@example.co.kr 로 회신", "[이메일] 로 회신"),
    ("[이메일] : parksj3@naver.com[답변내용", "[이메일] : [이메일][답변내용"),
    ("900101-1234567", "[주민번호]"),
    ("900101-1******", "[주민번호]"),
    ("주민번호 9001011234567", "주민번호 [주민번호]"),
    # not personal: dates, times, amounts, representative numbers, file names, ids
    ("2019-11-02 14:30", "2019-11-02 14:30"),
    ("2019.11.02", "2019.11.02"),
    ("1588-1234", "1588-1234"),
    ("3,000원", "3,000원"),
    ("020180315_072825.jpg", "020180315_072825.jpg"),
    ("민원 12345678901", "민원 12345678901"),
])
def test_each_form_is_masked_and_nothing_else(text: str, want: str) -> None:
    assert mask_personal_details(text) == want
    assert mask_personal_details(want) == want  # idempotent
    removed = remove_personal_details(text)  # for keywords: no mask word either
    assert removed == text if want == text else removed.count("[") == text.count("[") and removed != text


@pytest.fixture(scope="module")
def tagger(sample_df: pl.DataFrame):
    return keyword_only_tagger()


@pytest.fixture(scope="module")
def planted(sample_df: pl.DataFrame) -> pl.DataFrame:
    """Building 1's 41 VOCs of 2019-11 with every form planted in one VOC's title, request and
    reply, and that VOC three times more (new ids): a 주요 이슈 whose title holds them."""
    rows = sample_df.filter(
        (pl.col("created_at") >= MONTH.start) & (pl.col("created_at") < MONTH.end) & (pl.col("building_id") == "1")
    )
    assert rows.height == 41 and all(any(e in r for r in rows["reply"].to_list()) for e in SAMPLE_EMAILS)
    forms = list(PLANTED)
    target = rows["voc_id"][5]
    rows = rows.with_columns(
        pl.when(pl.col("voc_id") == target)
        .then(pl.lit(f"주차 문의 {forms[0]} {forms[1]} {forms[6]}"))
        .otherwise(pl.col("title"))
        .alias("title"),
        pl.when(pl.col("voc_id") == target).then(pl.concat_str([pl.lit(" 연락: ".join(forms) + "\n"), pl.col("request_contents")]))
        .otherwise(pl.col("request_contents")).alias("request_contents"),
        pl.when(pl.col("voc_id") == target).then(pl.lit(f"담당자 {forms[3]}, {forms[4]}")).otherwise(pl.col("reply")).alias("reply"),
        pl.lit(f"본청 {forms[5]}").alias("building_name"),
    )
    copies = rows.filter(pl.col("voc_id") == target)
    return pl.concat([rows, *[copies.with_columns(pl.lit(f"{target}-{i}").alias("voc_id")) for i in range(3)]])


def _absent_and_masked(text: str, where: str) -> None:
    for original in [*PLANTED, *SAMPLE_EMAILS]:
        assert original not in text, f"{original!r} in {where}"
    for mask in set(PLANTED.values()):
        assert mask in text, f"{mask} not in {where}"


def test_dashboard_index_and_artifacts_show_masks_and_the_csv_keeps_the_text(
    planted: pl.DataFrame, tagger: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clouds: list[dict[str, int]] = []
    draw = dashboard.render_wordcloud_png
    monkeypatch.setattr(dashboard, "render_wordcloud_png", lambda freqs, **kw: (clouds.append(dict(freqs)), draw(freqs, **kw))[1])
    ctx = pipeline.DashboardContext("1", planted["building_name"][0], MONTH, "full_20191201_020000", "2019-12-01 02:00 KST")
    out = pipeline.tag_building(planted, tagger, run_id="full_20191201_020000", dashboard=ctx)
    html = out.dashboard_html.decode("utf-8")
    assert any(next(iter(PLANTED)) in g["representative"]["title"] for g in out.issues)  # the data keeps it
    _absent_and_masked(html, "the dashboard")
    issues_html = html.split('id="issues"', 1)[1].split("</section>", 1)[0]  # 주요 이슈: title and excerpt
    assert "[이메일]" in issues_html and "[주민번호]" in issues_html and "[전화번호]" in issues_html
    assert clouds and clouds[0]
    words = " ".join(clouds[0])
    assert not any(part in words for o in PLANTED for part in (o, o.split("@")[0])), words
    assert not {"이메일", "전화번호", "주민번호"} & set(clouds[0])
    # the tagged CSV (and with it the reviewer's sheet) keeps the original text
    csv_text = "\n".join(out.frame["title"].to_list() + out.frame["request_contents"].to_list() + out.frame["reply"].to_list())
    assert all(o in csv_text for o in [*PLANTED, *SAMPLE_EMAILS])

    # the month index, through the flow's own task
    s = VocSettings(storage=str(tmp_path))
    r = monthly.BuildingResult("1", planted["building_name"][0], rows=planted.height, error=f"mail {next(iter(PLANTED))}",
                               drift=[f"note {list(PLANTED)[1]}"], outputs={"dashboard_latest": "x"})
    page = monthly.update_month_index.fn(s, MONTH, [monthly._index_entry(s.prefix, MONTH, r)], "full_20191201_020000")
    index_html = Path(page).read_text("utf-8")
    assert "[전화번호]" in index_html and list(PLANTED)[5] not in index_html

    # the Prefect artifacts
    made: list[str] = []
    for name in ("create_table_artifact", "create_link_artifact", "create_markdown_artifact"):
        monkeypatch.setattr(monthly, name, lambda **kw: made.append(repr(kw)))
    summary = {"mode": "full", "month": "2019-11", "run_id": "full_20191201_020000", "model": None, "rows": planted.height,
               "failed": [], "drift": {"1": r.drift}, "review_sheet": {"error": f"sheet of {list(PLANTED)[6]}"}, "index": page}
    monthly._publish_artifacts(s, summary, [r])
    artifacts = "\n".join(made).replace("\\\\", "\\").replace("\\", "")  # markdown escapes off
    assert len(made) == 4
    for original in PLANTED:
        assert original not in artifacts, original
    assert "[전화번호]" in artifacts and "[이메일]" in artifacts and "[주민번호]" in artifacts
