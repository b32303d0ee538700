"""voc.evidence: the reviewed VOCs most similar to a new one, on the shipped sample.

Features here are a character TF-IDF (no Kiwi, so the tests stay fast); the product uses the
linear model's own TF-IDF through the same functions (tests/test_review_budget.py checks that
path with a trained tagger).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

from voc.evidence import Neighbour, build_pool, format_evidence, neighbour_agreement, similar_reviewed
from voc.groups import group_texts
from voc.tagger import labels_of


@pytest.fixture(scope="module")
def setup(sample_df):
    """Pool = every labelled VOC before 2019-11 plus the labelled ones of 2019-11; queries = the
    2019-11 VOCs."""
    labelled = sample_df.filter(pl.col("reviewed_subject_minor").is_not_null())
    pool_rows = labelled.filter(pl.col("created_at") < date(2019, 12, 1))
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), sublinear_tf=True).fit(group_texts(pool_rows))
    pool = build_pool(
        vec.transform(group_texts(pool_rows)),
        pool_rows["voc_id"].to_list(),
        {"subject": labels_of(pool_rows, "subject"), "work": labels_of(pool_rows, "work")},
    )
    queries = sample_df.filter(pl.col("created_at").dt.strftime("%Y%m") == "201911")
    return pool, vec, pool_rows, queries


def test_neighbours_are_the_most_similar_reviewed_vocs(setup):
    pool, vec, pool_rows, queries = setup
    X = vec.transform(group_texts(queries))
    got = similar_reviewed(X, pool, k=3)
    assert len(got) == queries.height and all(len(n) == 3 for n in got)
    S = cosine_similarity(X, vec.transform(group_texts(pool_rows)))
    ids = pool_rows["voc_id"].to_list()
    for i, nbs in enumerate(got):
        best = np.argsort(-S[i], kind="stable")[:3]
        assert [nb.voc_id for nb in nbs] == [ids[j] for j in best]
        assert [nb.similarity for nb in nbs] == pytest.approx([min(1.0, S[i, j]) for j in best])
        assert nbs[0].labels["subject"] == labels_of(pool_rows, "subject")[best[0]]
        assert nbs[0].labels["work"] is None, "the sample has no work-type labels"


def test_a_row_never_cites_itself_and_finds_its_copy(setup):
    pool, vec, _, queries = setup
    ids = queries["voc_id"].to_list()
    X = vec.transform(group_texts(queries))
    plain = similar_reviewed(X, pool, k=3)
    own = similar_reviewed(X, pool, k=3, exclude_ids=ids)
    i = ids.index("69474")  # a parent posted 69354 and, two days later, nearly the same text again
    assert plain[i][0].voc_id == "69474" and plain[i][0].similarity == pytest.approx(1.0)
    assert own[i][0].voc_id == "69354" and own[i][0].similarity > 0.7 > own[i][1].similarity
    assert all(nb.voc_id != v for v, nbs in zip(ids, own) for nb in nbs)
    assert own[i][0].labels["subject"] == "도시재생국>건축과"


def test_cell_text_and_agreement(setup):
    pool, vec, _, queries = setup
    ids = queries["voc_id"].to_list()
    nbs = similar_reviewed(vec.transform(group_texts(queries)), pool, k=3, exclude_ids=ids)
    i = ids.index("69474")
    cell = format_evidence(nbs[i])
    lines = cell.split("\n")
    assert len(lines) == 3 and lines[0].startswith("69354 도시재생국>건축과 (0.")
    hand = [Neighbour("1", 0.6, {"subject": "a>b"}), Neighbour("2", 0.3, {"subject": "c>d"}), Neighbour("3", 0.1, {"subject": None})]
    agree = neighbour_agreement([hand, hand, [], hand], ["a>b", "c>d", "a>b", None], "subject")
    assert agree[:2] == pytest.approx([0.6 / 0.9, 0.3 / 0.9]) and np.isnan(agree[2]) and np.isnan(agree[3])
    assert format_evidence([]) == "" and format_evidence(None) == ""
    assert format_evidence([Neighbour("9", 0.5, {"subject": None, "work": None})]) == "9 - (0.50)"


def test_bad_input(setup):
    pool, vec, _, queries = setup
    X = vec.transform(group_texts(queries))
    with pytest.raises(ValueError, match="k must be"):
        similar_reviewed(X, pool, k=0)
    with pytest.raises(ValueError, match="columns"):
        similar_reviewed(X[:, :10], pool)
    with pytest.raises(ValueError, match="exclude_ids"):
        similar_reviewed(X, pool, exclude_ids=["1"])
    with pytest.raises(ValueError, match="ids"):
        build_pool(X, ["1"], {"subject": [None] * X.shape[0]})
    with pytest.raises(ValueError, match="no classifier"):
        pool.features(["text"])
    assert similar_reviewed(X[:0], pool) == []
