"""One answer per mass complaint (voc/pooling.py, LinearVOCClassifier.predict_group_tags,
tag_frame with groups): pooled evidence, dissent kept and flagged, nothing lost."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from voc.classify.base import Tags
from voc.pooling import DISSENT_FLAG, group_index, merge_pooled, pool_rows, vote_tags


def test_group_index_and_pool_rows():
    members = group_index(["a", None, "a", "b", "c", "b"], 6)
    assert [m.tolist() for m in members] == [[0, 2], [3, 5]]  # singletons ("c") and None are alone
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    q = pool_rows(p, members)
    assert q[0].tolist() == pytest.approx([0.6, 0.4]) and q[2].tolist() == q[0].tolist()
    assert q[1].tolist() == [0.2, 0.8] and q[3].tolist() == pytest.approx([0.5, 0.5])
    assert p[0].tolist() == [0.9, 0.1]  # the input is not changed
    assert group_index(None, 3) == []
    with pytest.raises(ValueError, match="differ in length"):
        group_index(["a"], 2)


def test_merge_keeps_a_decisive_dissenter_and_flags_it():
    own = Tags(["x", "y", "y", "z"], np.array([0.95, 0.5, 0.4, 0.3]), ["model"] * 4)
    pooled = Tags(["y", "y", "y", "z"], np.array([0.6, 0.6, 0.6, 0.3]), ["model"] * 4)
    tags, flags = merge_pooled(own, pooled, [np.array([0, 1, 2])])
    assert tags.labels == ["x", "y", "y", "z"] and flags == [DISSENT_FLAG, "", "", ""]
    assert tags.confidence.tolist() == pytest.approx([0.95, 0.6, 0.6, 0.3])
    # a confident but not decisive member (below the bar) follows its group
    own2 = Tags(["x", "y", "y"], np.array([0.7, 0.5, 0.4]), ["model"] * 3)
    tags2, flags2 = merge_pooled(own2, Tags(["y"] * 3, np.array([0.6] * 3), ["model"] * 3), [np.array([0, 1, 2])])
    assert tags2.labels == ["y", "y", "y"] and flags2 == ["", "", ""]


def test_vote_tags_sums_confidences():
    t = Tags(["a", "b", "b", "c"], np.array([0.9, 0.3, 0.3, 0.2]), ["keyword", "keyword", "keyword", "model"])
    got = vote_tags(t, [np.array([0, 1, 2])])
    assert got.labels == ["a", "a", "a", "c"]
    assert got.confidence.tolist() == pytest.approx([0.3, 0.3, 0.3, 0.2])
    assert got.source == ["keyword", "keyword", "keyword", "model"]


def test_linear_group_tags_give_every_member_one_tag(sample_df, tokenizer):
    """The demo month's mass complaint (building 1, 2019-11: the posts against the construction next
    to 신선초등학교) gets one tag from a model trained on the months before."""
    from voc.groups import fit_group_vectorizer, group_texts, near_duplicate_groups
    from voc.recipes import recipe
    from voc.tagger import canonical_labels, frame_texts, labels_of
    from voc.taxonomy import default_taxonomy

    train = sample_df.filter(pl.col("created_at") < pl.date(2019, 11, 1))
    test = sample_df.filter((pl.col("created_at") >= pl.date(2019, 11, 1)) & (pl.col("created_at") < pl.date(2019, 12, 1))
                            & (pl.col("building_id") == "1"))
    labs = [lab.split(">")[-1] if lab else None for lab in labels_of(train, "subject")]
    keep = [i for i, lab in enumerate(labs) if lab]
    texts, _ = frame_texts(train, use_reply=True)
    clf = recipe("default").make(tokenizer).fit([texts[i] for i in keep], [labs[i] for i in keep],
                                                times=[train["created_at"][i] for i in keep])
    groups = near_duplicate_groups(test, vectorizer=fit_group_vectorizer(group_texts(train))).to_list()
    big = max(set(g for g in groups if g), key=groups.count)
    assert groups.count(big) >= 25
    t_texts, _ = frame_texts(test, use_reply=True)
    own = clf.predict_tags(t_texts)
    tags, flags = clf.predict_group_tags(t_texts, groups)
    members = [i for i, g in enumerate(groups) if g == big]
    kept = [i for i in members if flags[i] != DISSENT_FLAG]
    assert len({tags.labels[i] for i in kept}) == 1 and len({round(float(tags.confidence[i]), 6) for i in kept}) == 1
    assert all(flags[i] == DISSENT_FLAG for i in members if tags.labels[i] != tags.labels[kept[0]])
    outside = [i for i, g in enumerate(groups) if g is None]
    assert [tags.labels[i] for i in outside] == [own.labels[i] for i in outside]
    assert len(tags) == test.height
    truth = canonical_labels(labels_of(test, "subject"), default_taxonomy(), "subject")
    right = sum(tags.labels[i] == (truth[i] or "").split(">")[-1] for i in range(test.height))
    assert right / test.height >= 0.8
