import pickle

import numpy as np
import pytest

from voc.classify.base import Tags
from voc.tagger import VOCTagger, frame_analyses, frame_texts, tag_frame
from voc.taxonomy import default_taxonomy
from voc.tokenize import Analysis, KiwiTokenizer, Morph


def test_model_tokens_nouns_compounds_and_lemmas(tokenizer):
    toks = tokenizer.model_tokens("주차장 조명이 너무 어두워요. 화장실이 더러워요")
    assert "주차장" in toks and "조명" in toks
    assert "주차장조명" in toks  # run of consecutive nouns, joined
    assert "어둡다" in toks and "더럽다" in toks  # VA lemmas
    assert "이" not in toks and "요" not in toks


def test_keyword_nouns_exclude_dependent_nouns(tokenizer):
    nouns = tokenizer.keyword_nouns("불법 주정차 단속 때문에 할 수 있는 것이 없다는 것은 문제입니다")
    assert {"불법", "주정차", "단속", "문제"} <= set(nouns)
    assert not {"때문", "수", "것"} & set(nouns)


@pytest.fixture(scope="module")
def kiwi(tokenizer):
    """One loaded Kiwi shared by this module's tokenizers (loading one takes seconds)."""
    return tokenizer.kiwi


def fresh(kiwi, **kw) -> KiwiTokenizer:
    """A new tokenizer (own cache, own settings) over the shared analyser."""
    tok = KiwiTokenizer(**kw)
    tok._kiwi = kiwi
    return tok


def spy(tok: KiwiTokenizer) -> list[list[str]]:
    """Record the texts of every Kiwi call ``tok`` makes."""
    calls: list[list[str]] = []
    real_run = tok._run_kiwi
    tok._run_kiwi = lambda texts: calls.append(list(texts)) or real_run(texts)  # type: ignore[method-assign]  # a spy on the Kiwi call
    return calls


@pytest.fixture(scope="module")
def mixed_texts(sample_texts) -> list[str]:
    """24 real all_texts of the sample (~1,000 characters each) with blank texts and a repeat."""
    real = sample_texts[-24:]
    return [*real[:10], "", real[5], "   \n\t ", *real[10:], " "]


@pytest.fixture(scope="module")
def per_text(kiwi, mixed_texts) -> list[list[Morph]]:
    """The reference: Kiwi called once per text (``kiwi.tokenize(str)``), blank texts ``[]``."""
    return [
        [Morph(t.form, t.tag, t.lemma, t.start) for t in kiwi.tokenize(s)] if s.strip() else []
        for s in mixed_texts
    ]


def test_batch_analysis_equals_one_call_per_text_in_order(kiwi, mixed_texts, per_text):
    tok = fresh(kiwi, cache_size=100)
    calls = spy(tok)
    batch = tok.analyze(mixed_texts)
    assert [len(c) for c in calls] == [24]  # one Kiwi call for the 24 distinct non-blank texts
    assert batch == per_text
    assert [batch[i] for i in (10, 12, len(batch) - 1)] == [[], [], []]
    assert batch[11] == batch[5] and batch[0]  # the repeat gets its text's analysis
    # the derived lists read the same morphemes (served from the cache: no second Kiwi call)
    assert tok.model_tokens_batch(mixed_texts) == [tok._model_tokens(m) for m in per_text]
    assert tok.keyword_nouns_batch(mixed_texts) == [tok._keyword_nouns(m) for m in per_text]
    assert len(calls) == 1
    assert fresh(kiwi).analyze(mixed_texts[::-1]) == per_text[::-1]  # order follows the input
    # Kiwi's single-thread mode has no batch call: one call per text, same result
    single = fresh(kiwi, num_workers=0)
    single_calls = spy(single)
    assert single.analyze(mixed_texts[:8]) == per_text[:8] and single_calls == [mixed_texts[:8]]


class _NoKiwi:
    def tokenize(self, text):
        raise AssertionError(f"Kiwi called for {text!r}")


def test_cache_hits_skip_kiwi_and_misses_go_in_one_call(kiwi, mixed_texts, per_text):
    tok = fresh(kiwi, cache_size=1000)
    tok.analyze(mixed_texts[:6])
    assert len(tok._cache) == 6
    tok._kiwi = _NoKiwi()
    assert tok.analyze(mixed_texts[:6][::-1]) == per_text[:6][::-1]  # all hits: Kiwi not called
    tok._kiwi = kiwi
    calls = spy(tok)
    assert tok.analyze(mixed_texts[4:9]) == per_text[4:9]
    assert calls == [mixed_texts[6:9]]  # only the 3 misses, in one call
    small = fresh(kiwi, cache_size=2)
    small.analyze(mixed_texts[:3])
    assert list(small._cache) == mixed_texts[1:3]  # oldest dropped first
    none = fresh(kiwi)
    none.analyze(mixed_texts[:2])
    assert none._cache == {}


def test_analyze_batch_reads_one_analysis_two_ways(kiwi, mixed_texts, per_text):
    tok = fresh(kiwi, cache_size=100)
    calls = spy(tok)
    analyses = tok.analyze_batch(mixed_texts)
    assert all(isinstance(a, Analysis) for a in analyses)
    assert [a.model_tokens for a in analyses] == tok.model_tokens_batch(mixed_texts)
    assert [a.keyword_nouns for a in analyses] == tok.keyword_nouns_batch(mixed_texts)
    # a keyword limit keeps the nouns of morphemes starting before it; model tokens read everything
    cut = [len(t) // 2 for t in mixed_texts]
    limited = tok.analyze_batch(mixed_texts, keyword_chars=cut)
    assert [a.model_tokens for a in limited] == [a.model_tokens for a in analyses]
    for a, lim, m in zip(limited, cut, per_text):
        assert a.keyword_nouns == [x.form for x in m if x.tag in {"NNG", "NNP"} and len(x.form) >= 2 and x.start < lim]
    assert sum(map(len, (a.keyword_nouns for a in limited))) < sum(map(len, (a.keyword_nouns for a in analyses)))
    assert len(calls) == 1  # all of it from one analysis per text
    with pytest.raises(ValueError, match="keyword_chars has 1 values for 2 texts"):
        tok.analyze_batch(["주차", "조명"], keyword_chars=[1])
    with pytest.raises(ValueError, match=r"keyword_chars\[1\].*-3"):
        tok.analyze_batch(["주차", "조명"], keyword_chars=[1, -3])


def test_frame_analyses_model_tokens_of_all_text_nouns_of_title_and_request(kiwi, sample_df):
    rows = sample_df.tail(20)
    tok = fresh(kiwi, cache_size=100)
    with_reply = frame_analyses(rows, use_reply=True, tokenizer=tok)
    texts, _ = frame_texts(rows, use_reply=True)
    heads, _ = frame_texts(rows, use_reply=False)
    assert all(t.startswith(h) for t, h in zip(texts, heads)) and texts != heads
    assert [a.model_tokens for a in with_reply] == tok.model_tokens_batch(texts)
    alone = tok.keyword_nouns_batch(heads)  # title + request analysed on their own
    assert sum(a.keyword_nouns == b for a, b in zip(with_reply, alone)) >= 18  # boundary sentences may differ
    assert sum(map(len, (a.keyword_nouns for a in with_reply))) < sum(map(len, tok.keyword_nouns_batch(texts)))
    no_reply = frame_analyses(rows, use_reply=False, tokenizer=tok)
    assert [a.keyword_nouns for a in no_reply] == alone
    assert [a.model_tokens for a in no_reply] == tok.model_tokens_batch(heads)


class _TokenEcho:
    """A fitted 'classifier' that tags each text with its first model token."""

    def predict_tags(self, texts, *, tokens=None):
        assert tokens is not None
        return Tags([f"x>{t[0] if t else '-'}" for t in tokens], np.ones(len(texts)), ["model"] * len(texts))


def test_tag_frame_reuses_the_analyses(kiwi, sample_df):
    rows = sample_df.tail(6)
    tok = fresh(kiwi)
    tagger = VOCTagger(kind="linear", version="t", taxonomy=default_taxonomy(), classifiers={"subject": _TokenEcho()}, tokenizer=tok)
    expected = tag_frame(rows, tagger, run_id="r")
    analyses = frame_analyses(rows, use_reply=True, tokenizer=tok)
    tok._kiwi = _NoKiwi()  # tagging with the analyses must not run Kiwi again
    assert tag_frame(rows, tagger, run_id="r", analyses=analyses).equals(expected)
    assert expected["subject_minor"].to_list() == [a.model_tokens[0] if a.model_tokens else "-" for a in analyses]
    with pytest.raises(ValueError, match=r"analyses \(5\) and frame rows \(6\)"):
        tag_frame(rows, tagger, run_id="r", analyses=analyses[:5])


def test_pickle_drops_the_analyser_and_still_works(kiwi, monkeypatch):
    import kiwipiepy

    tok = fresh(kiwi, cache_size=10, num_workers=3)
    texts = ["엘리베이터 고장", "주차장 조명이 어두워요"]
    before = tok.analyze_batch(texts)
    clone = pickle.loads(pickle.dumps(tok))
    assert tok._kiwi is kiwi and len(tok._cache) == 2  # the original keeps its analyser and cache
    assert clone._kiwi is None and clone._cache == {} and (clone.cache_size, clone.num_workers) == (10, 3)
    built: list[int] = []
    monkeypatch.setattr(kiwipiepy, "Kiwi", lambda num_workers: built.append(num_workers) or kiwi)
    assert clone.analyze_batch(texts) == before and clone.model_tokens(texts[0]) == before[0].model_tokens
    assert built == [3]  # rebuilt once, on first use, with the pickled settings
    assert pickle.loads(pickle.dumps(before)) == before  # analyses travel to other processes
