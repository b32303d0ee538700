import pytest

from voc.tagger import frame_texts, labels_of
from voc.taxonomy import (
    Taxonomy,
    TaxonomyError,
    TaxonomyRow,
    default_taxonomy,
    derive_taxonomy,
    join_label,
    split_label,
)


def test_default_taxonomy_shape():
    tax = default_taxonomy()
    assert len(tax.labels("subject")) == 21 and len(tax.labels("work")) == 11
    assert tax.fallback_label("subject") == "기타>기타"
    assert "시설>냉난방/공조" in tax.labels("subject")
    assert all(r.keywords for r in tax.rows_of("subject") if r.major != "기타")
    assert Taxonomy.from_csv_text(tax.to_csv_text()) == tax


@pytest.mark.parametrize(
    "rows,msg",
    [
        ([TaxonomyRow("subject", "시설", "승강기"), TaxonomyRow("subject", "시설", "승강기")], "duplicate class"),
        ([TaxonomyRow("subject", "", "승강기")], "field 'major' is empty"),
        ([TaxonomyRow("subject", "시설", " ")], "field 'minor' is empty"),
        ([TaxonomyRow("subject", "시설", "승강기"), TaxonomyRow("subject", "환경", "승강기")], "already under active major"),
        ([TaxonomyRow("colour", "a", "b")], "dimension must be"),
        ([TaxonomyRow("work", "a>b", "c")], "may not contain"),
        ([TaxonomyRow("work", "a", "b", priority=-1)], "priority"),
    ],
)
def test_invalid_taxonomies_name_the_row(rows, msg):
    with pytest.raises(TaxonomyError, match=msg) as e:
        Taxonomy(tuple(rows))
    assert "taxonomy row" in str(e.value)


def test_reorganised_minor_is_allowed_when_old_pair_is_inactive():
    tax = Taxonomy((TaxonomyRow("subject", "도시관리국", "교통운수과", active=False), TaxonomyRow("subject", "도시재생국", "교통운수과")))
    assert tax.labels("subject") == ["도시재생국>교통운수과"]
    assert len(tax.labels("subject", active_only=False)) == 2


def test_label_helpers():
    assert split_label(join_label("시설", "승강기")) == ("시설", "승강기")
    assert split_label("기타") == ("기타", "기타")


def test_derive_from_real_history(sample_df, tokenizer):
    df = sample_df.head(300)
    labels = labels_of(df, "subject")
    texts, _ = frame_texts(df, use_reply=True)
    rows = derive_taxonomy("subject", labels, tokenizer.keyword_nouns_batch(texts), dates=df["created_at"].to_list())
    tax = Taxonomy(tuple(rows))  # validates: at most one active major per minor
    present = {lab for lab in labels if lab}
    assert set(tax.labels("subject", active_only=False)) == present
    # 교통 departments carry traffic words as keywords
    traffic = [r for r in rows if r.minor in ("교통행정과", "교통운영과") and r.active]
    assert traffic and any(any(k in ("주차", "교통", "주정차", "단속", "견인") for k in r.keywords) for r in traffic)
