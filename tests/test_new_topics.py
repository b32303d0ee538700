"""신규 주제 후보 (voc.new_topics): clusters of low-confidence VOCs that fit no class."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from voc.new_topics import TopicOptions, c_tf_idf, low_confidence_mask, new_topic_candidates, topic_nouns
from voc.taxonomy import default_taxonomy

_SCOOTERS = [  # an unseen topic: no class of the taxonomy names shared e-scooters
    ("p1", "1", "공유 전동킥보드 인도 방치 신고",
     "아파트 앞 인도에 공유 전동킥보드가 며칠째 쓰러져 방치되어 보행이 어렵습니다. 킥보드 수거 부탁드립니다. 010-1234-5678"),
    ("p2", "2", "전동킥보드 무단 방치",
     "버스정류장 옆에 전동킥보드 여러 대가 무단으로 방치되어 있어요. 업체에 킥보드 수거 요청해주세요."),
    ("p3", "1", "킥보드 주차 문제",
     "공유 킥보드가 횡단보도 앞에 방치돼 있어 휠체어가 지나갈 수 없습니다. 전동킥보드 주차 구역을 지정해주세요."),
    ("p4", "2", "길거리 전동킥보드 방치 민원 010-1234-5678",
     "학교 앞 보도에 전동킥보드가 방치되어 아이들이 걸려 넘어질 뻔했습니다. 킥보드 견인 바랍니다."),
]


def _month(sample_df: pl.DataFrame) -> pl.DataFrame:
    """2019-11 of the shipped sample, every row a low-confidence model tag, plus the planted posts:
    four low-confidence ones, one confident and one reviewed on the same topic."""
    real = sample_df.filter(pl.col("created_at").dt.strftime("%Y%m") == "201911").select(
        "voc_id", "building_id", "title", "request_contents", "reviewed_subject_major"
    ).with_columns(
        pl.lit("model").alias("subject_source"), pl.lit(0.3).alias("subject_confidence"),
        pl.lit(None, dtype=pl.Utf8).alias("reviewed_subject_major"),
    )
    rows = [*_SCOOTERS, ("c1", "1", "전동킥보드 방치 건", "상가 앞 전동킥보드 방치, 킥보드 수거 요청합니다."),
            ("r1", "2", "킥보드 방치", "공유 전동킥보드가 인도에 방치되어 있습니다. 킥보드 수거 바랍니다.")]
    planted = pl.DataFrame({
        "voc_id": [r[0] for r in rows], "building_id": [r[1] for r in rows], "title": [r[2] for r in rows],
        "request_contents": [r[3] for r in rows], "reviewed_subject_major": [None] * 5 + ["도시관리국"],
        "subject_source": ["model"] * 6, "subject_confidence": [0.2, 0.25, 0.3, 0.35, 0.95, 0.2],
    })
    return pl.concat([real, planted], how="vertical_relaxed")


def test_planted_low_confidence_topic_is_found_with_its_keywords(sample_df) -> None:
    frame = _month(sample_df)
    found = new_topic_candidates(frame, 0.6, taxonomy=default_taxonomy())
    scooters = [c for c in found if set(c["voc_ids"]) & {"p1", "p2", "p3", "p4"}]
    assert len(scooters) == 1 and sorted(scooters[0]["voc_ids"]) == ["p1", "p2", "p3", "p4"] and scooters[0]["size"] == 4
    assert {"킥보드", "방치"} <= set(scooters[0]["keywords"]) and len(scooters[0]["keywords"]) <= 5
    assert len(scooters[0]["examples"]) == 3 and all("010-1234-5678" not in e["title"] for e in scooters[0]["examples"])
    listed = {v for c in found for v in c["voc_ids"]}
    assert "c1" not in listed and "r1" not in listed  # confident or reviewed: not a candidate
    # the month's campaign against the 신선초 construction is low-confidence here too: one cluster
    assert any("학교" in c["keywords"] and c["size"] >= 20 for c in found)
    # all confident: nothing to propose; no threshold (keyword-only subject): nothing
    assert new_topic_candidates(frame.with_columns(pl.lit(0.9).alias("subject_confidence")), 0.6) == []
    assert new_topic_candidates(frame, None) == []
    # options: a smallest cluster of 5 leaves the four planted posts out; bad options are refused
    bigger = new_topic_candidates(frame, 0.6, taxonomy=default_taxonomy(), options=TopicOptions(min_size=5, n_examples=1))
    assert bigger and not {v for c in bigger for v in c["voc_ids"]} & {"p1", "p2", "p3", "p4"}
    assert all(c["size"] >= 5 and len(c["examples"]) == 1 for c in bigger)
    with pytest.raises(ValueError, match="similarity"):
        TopicOptions(similarity=0.0)
    with pytest.raises(ValueError, match="min_size"):
        TopicOptions(min_size=1)


def test_nouns_made_per_building_give_the_same_candidates(sample_df) -> None:
    """The monthly flow's building tasks make the nouns of their own rows; concatenated in row
    order, the month's candidates are the ones the whole-month tokenization gives."""
    from voc.tokenize import KiwiTokenizer

    frame = _month(sample_df).sort("building_id", maintain_order=True)
    tok = KiwiTokenizer(num_workers=0)
    parts = [topic_nouns(part, tok) for part in frame.partition_by("building_id", maintain_order=True)]
    nouns = [n for p in parts for n in p]
    assert len(nouns) == frame.height and any("킥보드" in n for n in nouns)
    whole = new_topic_candidates(frame, 0.6, taxonomy=default_taxonomy(), tokenizer=tok)
    assert whole and new_topic_candidates(frame, 0.6, taxonomy=default_taxonomy(), nouns=nouns) == whole
    with pytest.raises(ValueError, match="nouns has"):
        new_topic_candidates(frame, 0.6, nouns=nouns[:-1])


def test_low_confidence_mask_and_c_tf_idf() -> None:
    f = pl.DataFrame({"subject_source": ["model", "keyword", "model", "reviewer"], "subject_confidence": [0.1, 0.1, 0.9, 0.1],
                      "reviewed_subject_major": [None, None, None, "x"]})
    assert low_confidence_mask(f, 0.5).to_list() == [True, False, False, False]
    W = c_tf_idf(np.array([[2, 0, 1], [0, 3, 1]]))
    # BERTopic eq. 1: tf (L1 per class) × log(1 + A / f), A = mean words per class = 3.5
    assert np.isclose(W[0, 0], 2 / 3 * np.log1p(3.5 / 2)) and np.isclose(W[1, 2], 1 / 4 * np.log1p(3.5 / 2))
    assert W[0, 1] == 0.0


def test_a_noun_with_a_space_is_one_term() -> None:
    """Kiwi can return a noun holding a space (e.g. the NNP "미필적 고의"); it must stay one term
    instead of failing the month's candidates (a KeyError on the split halves)."""
    n = 6
    frame = pl.DataFrame({
        "voc_id": [str(i) for i in range(n)], "building_id": ["1"] * n, "title": ["킥보드"] * n,
        "request_contents": ["공유 킥보드 방치"] * n, "subject_source": ["model"] * n, "subject_confidence": [0.1] * n,
    })
    nouns = [["공유", "킥보드", "미필적 고의"]] * n
    out = new_topic_candidates(frame, 0.6, nouns=nouns, options=TopicOptions(min_size=3))
    assert out and "미필적 고의" in out[0]["keywords"]
