"""voc.groups on the shipped sample: mass complaints grouped per building and month.

The sample holds two campaigns, read post by post: in 2019-11, 28 posts of building 1 (본청)
against the high-rise planned 10–12 m from 신선초등학교 (each parent in their own words), and
in 2018-08, about 120 posts of building 2 (영종) against a second business licence of the
골든튤립 hotel. The only other group of 2019-11 is three posts by neighbours of one building
demolition on 신흥동1가 (2019-11-01/02: safety net, noise and dust, fire lane).
"""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from voc.groups import (
    GROUP_THRESHOLD,
    fit_group_vectorizer,
    group_summaries,
    group_texts,
    near_duplicate_groups,
)

DEMOLITION = {"67535", "67593", "67737"}


def month_of(df: pl.DataFrame, ym: str) -> pl.DataFrame:
    return df.filter(pl.col("created_at").dt.strftime("%Y%m") == ym)


@pytest.fixture(scope="module")
def vectorizer(sample_df):
    """IDF from the history a model trained for 2019-11 would have: every VOC before it."""
    return fit_group_vectorizer(group_texts(sample_df.filter(pl.col("created_at") < date(2019, 11, 1))))


@pytest.fixture(scope="module")
def nov(sample_df):
    return month_of(sample_df, "201911")


def mentions(frame: pl.DataFrame, word: str) -> set[str]:
    return {r["voc_id"] for r in frame.iter_rows(named=True) if word in f"{r['title']} {r['request_contents']}"}


def test_the_school_campaign_is_one_group_and_nothing_unrelated_is_grouped(nov, vectorizer):
    g = near_duplicate_groups(nov, vectorizer=vectorizer)
    assert g.name == "group_id" and g.dtype == pl.Utf8 and g.len() == nov.height
    by_group: dict[str, set[str]] = {}
    for vid, gid in zip(nov["voc_id"].to_list(), g.to_list()):
        if gid is not None:
            by_group.setdefault(gid, set()).add(vid)
    campaign = mentions(nov.filter(pl.col("building_id") == "1"), "신선")
    assert len(campaign) == 28
    largest = max(by_group.values(), key=len)
    assert largest == campaign, "the whole campaign, and only it"
    assert by_group == {"1-69204": campaign, "1-67535": DEMOLITION}
    # read: the three demolition posts are about one demolition next to the writer's house
    demo = nov.filter(pl.col("voc_id").is_in(list(DEMOLITION)))
    assert all("철거" in f"{r['title']} {r['request_contents']}" for r in demo.iter_rows(named=True))
    assert g.filter(nov["building_id"] == "2").null_count() == 4, "building 2's four VOCs stand alone"


def test_groups_are_deterministic_and_independent_of_row_order(nov, vectorizer):
    a = near_duplicate_groups(nov, vectorizer=vectorizer)
    shuffled = nov.sample(fraction=1.0, shuffle=True, seed=3)
    b = near_duplicate_groups(shuffled, vectorizer=vectorizer)
    assert dict(zip(nov["voc_id"], a)) == dict(zip(shuffled["voc_id"], b))


def test_the_threshold_has_room_and_the_hotel_campaign_groups_too(sample_df, nov, vectorizer):
    """0.10–0.15 give the same 2019-11 groups (GROUP_THRESHOLD = 0.12 sits in the middle); in
    2018-08 building 2's licence campaign is one group of ~120 posts naming the hotel."""
    base = near_duplicate_groups(nov, vectorizer=vectorizer, threshold=GROUP_THRESHOLD)
    for t in (0.10, 0.15):
        assert near_duplicate_groups(nov, vectorizer=vectorizer, threshold=t).equals(base), t
    aug = month_of(sample_df, "201808").filter(pl.col("building_id") == "2")
    g = near_duplicate_groups(aug, vectorizer=vectorizer)
    top = g.drop_nulls().value_counts(sort=True).row(0)
    members = aug.filter(g == top[0])
    assert 110 <= top[1] <= aug.height == 127
    named = mentions(members, "튤립") | mentions(members, "복수")
    assert len(named) >= 0.95 * members.height


def test_without_reference_idf_only_near_copies_group(nov):
    """IDF from the month alone (an old model without a group vectorizer): the near-copy cut
    keeps only pairs that share most of their text — read: two copies of one post (69354/69474,
    69356/69489), posts repeating one template's sentences (the other school pairs) and the same
    demolition told twice — never two different matters."""
    g = near_duplicate_groups(nov)
    pairs = {frozenset(nov.filter(g == gid)["voc_id"].to_list()) for gid in g.drop_nulls().unique()}
    assert pairs == {
        frozenset(p)
        for p in (("67535", "67593"), ("69204", "69514"), ("69229", "69413"), ("69252", "69345"), ("69354", "69474"), ("69356", "69489"))
    }
    campaign = mentions(nov, "신선")
    assert all(p <= campaign or p <= DEMOLITION for p in pairs)


def test_group_summaries_for_the_dashboard(nov, vectorizer):
    tagged = nov.with_columns(
        pl.col("reviewed_subject_major").alias("subject_major"),
        pl.col("reviewed_subject_minor").alias("subject_minor"),
        pl.lit("작업").alias("work_major"),
        pl.lit("안내/회신").alias("work_minor"),
    )
    g = near_duplicate_groups(tagged, vectorizer=vectorizer)
    out = group_summaries(tagged, g, vectorizer=vectorizer)
    assert [s["size"] for s in out] == [28, 3]
    s = out[0]
    assert s["group_id"] == "1-69204" and s["building_id"] == "1" and len(s["voc_ids"]) == 28
    assert s["representative"]["voc_id"] in s["voc_ids"] and "신선" in s["representative"]["title"]
    assert 0 < len(s["representative"]["request"]) <= 300
    assert (s["first_date"], s["last_date"]) == (date(2019, 11, 25), date(2019, 11, 30))
    assert s["top_subject"] == [("도시재생국>건축과", 28)] and s["top_work"] == [("작업>안내/회신", 28)]
    assert group_summaries(tagged, g, min_size=4, vectorizer=vectorizer)[0]["size"] == 28
    assert len(group_summaries(tagged, g, min_size=4)) == 1
    assert group_summaries(tagged, [None] * tagged.height) == []


def test_bad_input_names_the_problem(nov, vectorizer):
    with pytest.raises(ValueError, match="request_contents"):
        near_duplicate_groups(nov.drop("request_contents"))
    with pytest.raises(ValueError, match="threshold"):
        near_duplicate_groups(nov, threshold=0)
    with pytest.raises(ValueError, match="min_size"):
        near_duplicate_groups(nov, min_size=1)
    with pytest.raises(ValueError, match="group_ids"):
        group_summaries(nov, ["x"])
    with pytest.raises(ValueError, match="non-empty"):
        fit_group_vectorizer(["", " "])
    empty = nov.head(3).with_columns(pl.lit("").alias("title"), pl.lit("").alias("request_contents"))
    assert near_duplicate_groups(empty).null_count() == 3


def test_a_cell_above_max_cell_rows_is_grouped_by_lsh_without_all_pairs(sample_df, vectorizer, monkeypatch):
    """Issue 21: a building-month above MAX_CELL_ROWS crashed (NameError) after tagging. With the
    limit lowered to 50, building 2's 2018-08 (127 VOCs) takes the large-cell path: no N × N
    matrix is built, and what it groups is near copies inside the average-linkage 골든튤립
    campaign (read: form letters sent many times, module docstring "Large cells")."""
    import voc.groups as groups

    aug = month_of(sample_df, "201808").filter(pl.col("building_id") == "2")
    exact = near_duplicate_groups(aug, vectorizer=vectorizer)
    campaign = set(aug.filter(exact == exact.drop_nulls().value_counts(sort=True).row(0)[0])["voc_id"])

    def no_all_pairs(*_a, **_k):
        raise AssertionError("average linkage ran on a large cell")

    monkeypatch.setattr(groups, "MAX_CELL_ROWS", 50)
    monkeypatch.setattr(groups, "_cluster", no_all_pairs)
    g = near_duplicate_groups(aug, vectorizer=vectorizer)
    assert g.len() == aug.height and g.dtype == pl.Utf8
    members: dict[str, set[str]] = {}
    for vid, gid in zip(aug["voc_id"].to_list(), g.to_list()):
        if gid is not None:
            members.setdefault(gid, set()).add(vid)
    assert sum(len(m) for m in members.values()) >= 60, "the form letters are found"
    assert all(m <= campaign for m in members.values()), "nothing outside the campaign"
    assert all(gid.startswith("2-") and gid[2:] in m for gid, m in members.items()), "id = building-anchor"
    assert near_duplicate_groups(aug.reverse(), vectorizer=vectorizer).reverse().equals(g), "order-free"
    summaries = group_summaries(aug, g, vectorizer=vectorizer)
    assert summaries and all(s["representative"]["voc_id"] in s["voc_ids"] for s in summaries)


def test_large_cell_groups_copies_of_a_post_and_leaves_empty_texts_alone(nov, monkeypatch):
    """Three re-sent copies of one post (new ids, later dates) join it; rows without text never
    group, however many there are."""
    import voc.groups as groups

    monkeypatch.setattr(groups, "MAX_CELL_ROWS", 5)
    b1 = nov.filter(pl.col("building_id") == "1")
    post = b1.filter(pl.col("voc_id") == "67535")
    copies = pl.concat([post.with_columns(pl.lit(f"9000{i}").alias("voc_id")) for i in range(3)])
    blank = b1.head(4).with_columns(
        pl.lit("").alias("title"), pl.lit("").alias("request_contents"), (pl.lit("8000") + pl.col("voc_id")).alias("voc_id")
    )
    frame = pl.concat([b1, copies, blank])
    g = dict(zip(frame["voc_id"].to_list(), near_duplicate_groups(frame).to_list()))
    assert g["90000"] == g["90001"] == g["90002"] == g["67535"] is not None
    assert all(g[v] is None for v in blank["voc_id"].to_list())
