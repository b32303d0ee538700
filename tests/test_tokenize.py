import pickle

from voc.tokenize import KiwiTokenizer


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


def test_batch_matches_single_and_handles_empty(sample_df, tokenizer):
    texts = sample_df["title"].head(5).to_list() + ["", "   "]
    batch = tokenizer.model_tokens_batch(texts)
    assert batch[:5] == [tokenizer.model_tokens(t) for t in texts[:5]]
    assert batch[5:] == [[], []]


def test_pickle_drops_the_analyser_and_still_works():
    tok = KiwiTokenizer(cache_size=10)
    before = tok.model_tokens("엘리베이터 고장")
    clone = pickle.loads(pickle.dumps(tok))
    assert clone._kiwi is None and clone._cache == {}
    assert clone.model_tokens("엘리베이터 고장") == before
