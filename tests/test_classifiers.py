"""The CPU classifiers as scikit-learn estimators, and their confidence machinery.

Inputs are raw texts, so scikit-learn's full ``check_estimator`` (numeric X) does not apply;
the API checks that take no data run here, plus clone / get_params / not-fitted checks and
seeded synthetic fits (whitespace tokens passed in, no Kiwi needed).
"""

import datetime as dt

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SkNotFittedError
from sklearn.utils.validation import check_is_fitted

from voc.classify.base import NotFittedError
from voc.classify.hybrid import HybridClassifier
from voc.classify.keyword import KeywordClassifier
from voc.classify.linear import (
    DEFAULT_PARAMS,
    LinearVOCClassifier,
    fit_scaling,
    is_place_name,
    name_mentions,
    recency_weights,
    title_of,
)
from voc.taxonomy import TaxonomyRow

WORDS = {
    "시설>승강기": ["엘리베이터", "승강기", "멈춤", "버튼", "층"],
    "시설>냉난방": ["에어컨", "난방", "온도", "춥다", "덥다"],
    "환경>주차": ["주차", "차량", "주차장", "불법", "견인"],
}


def synthetic(n_per_class: int = 30, seed: int = 0) -> tuple[list[str], list[str]]:
    """Seeded texts: title line + body, 3 words of the class + 2 shared noise words."""
    rng = np.random.default_rng(seed)
    noise = ["민원", "요청", "확인", "부탁", "관리"]
    texts, labels = [], []
    for lab, words in WORDS.items():
        for _ in range(n_per_class):
            body = list(rng.choice(words, 3)) + list(rng.choice(noise, 2))
            texts.append(f"{body[0]} 문의\n" + " ".join(body))
            labels.append(lab)
    return texts, labels


def ws(texts):
    return [t.split() for t in texts]


def make(**kw):
    return LinearVOCClassifier(**{**DEFAULT_PARAMS, "char_ngrams": 2000, **kw})


# ---------------------------------------------------------------------------------------------
# scikit-learn API


@pytest.mark.parametrize("est", [LinearVOCClassifier(), make(), HybridClassifier(KeywordClassifier(()), LinearVOCClassifier())])
def test_sklearn_api_checks_that_apply(est):
    from sklearn.utils.estimator_checks import (
        check_get_params_invariance,
        check_no_attributes_set_in_init,
        check_parameters_default_constructible,
        check_set_params,
    )

    name = type(est).__name__
    check_no_attributes_set_in_init(name, est)
    check_get_params_invariance(name, est)
    check_set_params(name, est)
    if isinstance(est, LinearVOCClassifier):
        check_parameters_default_constructible(name, est)


def test_clone_and_params_round_trip():
    est = make(C=0.7, title_weight=3)
    params = est.get_params()
    assert params["C"] == 0.7 and params["title_weight"] == 3 and params["calibration"] == "top1"
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert LinearVOCClassifier(**params).get_params() == params
    twin.set_params(C=2.0)
    assert twin.C == 2.0 and est.C == 0.7
    h = HybridClassifier(KeywordClassifier(()), est, alpha=100.0)
    assert clone(h).get_params()["model__C"] == 0.7  # nested params work


def test_not_fitted_errors():
    est = make()
    with pytest.raises(NotFittedError):
        est.predict(["x"], tokens=[["x"]])
    with pytest.raises(SkNotFittedError):
        check_is_fitted(est)
    with pytest.raises(NotFittedError):
        HybridClassifier(KeywordClassifier(())).predict_tags(["x"])


def test_fit_returns_self_keeps_params_and_predicts():
    texts, labels = synthetic()
    est = make()
    before = est.get_params()
    assert est.fit(texts, labels, tokens=ws(texts)) is est
    assert est.get_params() == before and est.tokenizer is None  # no hidden default stored
    check_is_fitted(est)
    assert list(est.classes_) == sorted(WORDS)
    test_texts, test_labels = synthetic(10, seed=1)
    tags = est.predict_tags(test_texts, tokens=ws(test_texts))
    assert np.mean(np.array(tags.labels) == np.array(test_labels)) > 0.9
    assert np.all((tags.confidence >= 0) & (tags.confidence <= 1)) and set(tags.source) == {"model"}
    p = est.predict_proba(test_texts, tokens=ws(test_texts))
    assert p.shape == (30, 3) and np.allclose(p.sum(axis=1), 1)
    assert est.calibration_ == "top1" and est.temperature_ > 0
    assert est.predict([], tokens=[]).shape == (0,)


def test_top1_confidence_ranks_errors_first():
    rng = np.random.default_rng(3)

    def mixed(n_per_class, noise):
        texts, labels = synthetic(n_per_class, seed=int(rng.integers(1000)))
        out = []
        for t, lab in zip(texts, labels):
            other = rng.choice([k for k in WORDS if k != lab])
            k = int(rng.integers(0, 4))  # 0–3 of the 3 class words replaced by another class's
            words = t.split("\n")[1].split()
            words[:k] = list(rng.choice(WORDS[other], k))
            out.append(f"{words[0]} 문의\n" + " ".join(words))
        return out, [str(rng.choice(list(WORDS))) if rng.random() < noise else lab for lab in labels]

    x, y = mixed(40, 0.1)
    est = make().fit(x, y, tokens=ws(x))
    assert est.top1_calibrator_ is not None
    tx, ty = mixed(40, 0.0)
    tags = est.predict_tags(tx, tokens=ws(tx))
    correct = np.array(tags.labels) == np.array(ty)
    assert 0.3 < correct.mean() < 0.95
    assert tags.confidence[~correct].mean() < tags.confidence[correct].mean()


def test_bad_input_raises():
    texts, labels = synthetic(5)
    with pytest.raises(ValueError, match="differ in length"):
        make().fit(texts, labels[:-1], tokens=ws(texts))
    with pytest.raises(ValueError, match="two distinct labels"):
        make().fit(texts[:3], ["a"] * 3, tokens=ws(texts[:3]))
    with pytest.raises(ValueError, match="calibration"):
        make(calibration="magic").fit(texts, labels, tokens=ws(texts))
    with pytest.raises(ValueError, match="sample_weight"):
        make().fit(texts, labels, tokens=ws(texts), sample_weight=[-1.0] * len(texts))


@pytest.mark.parametrize("calibration", ["sigmoid", "isotonic", "temperature", "none"])
def test_every_calibration_handles_a_singleton_class(calibration):
    texts, labels = synthetic(12)
    texts, labels = [*texts, "독특한 민원\n독특한 내용"], [*labels, "기타>기타"]  # one row only
    est = make(calibration=calibration, calibration_cv=3).fit(texts, labels, tokens=ws(texts))
    p = est.predict_proba(texts[:5], tokens=ws(texts[:5]))
    assert p.shape == (5, 4) and np.allclose(p.sum(axis=1), 1)
    d = est.decision_function(texts[:5], tokens=ws(texts[:5]))
    assert d.shape == (5, 4)


def test_anchor_recipe_is_the_production_model():
    from voc.tagger import make_classifier
    from voc.taxonomy import default_taxonomy

    a = make_classifier("anchor", default_taxonomy(), "subject", None)
    assert isinstance(a, LinearVOCClassifier)
    p = a.get_params()
    assert (p["max_features"], p["ngram_range"], p["sublinear_tf"], p["C"], p["class_weight"]) == (
        10_000, (1, 2), True, 1.0, "balanced"
    )
    assert (p["calibration"], p["calibration_cv"], p["char_ngrams"], p["title_weight"]) == ("sigmoid", 3, 0, 1)
    assert not p["name_prior"] and not p["prior_correction"] and p["recency_half_life_days"] is None


# ---------------------------------------------------------------------------------------------
# confidence pieces


def test_fit_scaling_recovers_a_temperature():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(4000, 5)) * 3
    true_t = 2.0
    p = np.exp(d / true_t)
    p /= p.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(5, p=row) for row in p])
    t, w = fit_scaling(d, y)
    assert t == pytest.approx(true_t, rel=0.1) and w == []
    # a useless extra gets a weight near 0
    t2, (w2,) = fit_scaling(d, y, [rng.normal(size=(4000, 5))])
    assert t2 == pytest.approx(true_t, rel=0.1) and abs(w2) < 0.15


def test_name_mentions_and_title():
    m = name_mentions(["친환경 조성과 관계자님께", "엘리베이터 고장"], [("친환경조성과",), ("냉난방", "공조"), ()])
    assert m.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    assert title_of("제목\n본문\n답변") == "제목" and title_of("") == ""


def test_name_prior_learns_to_trust_class_names():
    rng = np.random.default_rng(5)
    words = {"행정국>시설과": WORDS["시설>승강기"], "행정국>환경과": WORDS["시설>냉난방"], "행정국>교통과": WORDS["환경>주차"]}
    texts, labels = [], []
    for lab, ws_ in words.items():
        for _ in range(30):
            other = words[rng.choice([k for k in words if k != lab])]
            body = list(rng.choice(ws_, 2)) + list(rng.choice(other, 2))
            if rng.random() < 0.4:  # complaints that name the department they write to
                body.append(lab.split(">")[1])
            texts.append(f"{body[0]} 문의\n" + " ".join(body))
            labels.append(lab)
    est = make(name_prior=True, prior_correction=True).fit(texts, labels, tokens=ws(texts))
    assert est.name_weight_ > 0
    probe = ["문의\n엘리베이터 에어컨 주차 환경과"]  # one word of each class; the name decides
    assert est.predict(probe, tokens=ws(probe))[0] == "행정국>환경과"


def test_recency_weights_by_hand():
    w = recency_weights([dt.date(2020, 1, 1), dt.date(2020, 1, 31), dt.date(2019, 12, 2)], half_life_days=30)
    assert w.tolist() == pytest.approx([0.5, 1.0, 0.25])
    assert recency_weights([np.datetime64("2020-01-01"), np.datetime64("2020-01-31")], half_life_days=30).tolist() == [0.5, 1.0]
    with pytest.raises(ValueError):
        recency_weights([dt.date(2020, 1, 1)], half_life_days=0)
    with pytest.raises(ValueError):
        recency_weights([None], half_life_days=30)


def test_times_change_the_fit_only_with_a_half_life():
    texts, labels = synthetic(15)
    times = [dt.date(2019, 1, 1) + dt.timedelta(days=i) for i in range(len(texts))]
    a = make().fit(texts, labels, tokens=ws(texts))
    b = make(recency_half_life_days=None).fit(texts, labels, tokens=ws(texts), times=times)
    c = make(recency_half_life_days=10).fit(texts, labels, tokens=ws(texts), times=times)
    probe = ws(texts[:6])
    assert np.allclose(a.decision_function(texts[:6], tokens=probe), b.decision_function(texts[:6], tokens=probe))
    assert not np.allclose(a.decision_function(texts[:6], tokens=probe), c.decision_function(texts[:6], tokens=probe))


def test_hybrid_fits_with_times_and_keywords():
    texts, labels = synthetic(15)
    rows = [TaxonomyRow("subject", *lab.split(">"), tuple(WORDS[lab][:2])) for lab in WORDS]
    h = HybridClassifier(KeywordClassifier(rows), make(), random_state=0)
    times = [dt.date(2019, 1, 1) + dt.timedelta(days=i) for i in range(len(texts))]
    assert h.fit(texts, labels, tokens=ws(texts), times=times) is h
    assert h.alpha_ in h.cv_accuracy_
    t = h.predict_tags(texts[:4], tokens=ws(texts[:4]))
    assert len(t) == 4 and set(t.source) <= {"model", "keyword"}
    assert h.keyword.classes_ is None and h.keyword_.classes_ is not None  # the parameter was not fitted in place


def test_name_mentions_skip_addresses_and_place_names():
    texts = ["신흥동1가 38-27 공사 소음", "신흥동 행정복지센터에 문의", "신흥동 3가 12", "신흥동3가 아닌 신흥동주민센터"]
    assert name_mentions(texts, [("신흥동",)]).ravel().tolist() == [1.0, 1.0, 1.0, 1.0]
    assert name_mentions(texts, [("신흥동",)], skip_addresses=True).ravel().tolist() == [0.0, 1.0, 0.0, 1.0]
    assert [is_place_name(n) for n in ("신흥동", "운서동", "건축과", "승강기", "동", "")] == [True, True, False, False, False, False]


def test_place_options_are_off_by_default_and_fix_addresses_on_the_sample(sample_df):
    """On the shipped sample (reply text, whitespace tokens for speed): trained before 2019, the
    default sends 2019 건축과 complaints that give a 신흥동 address (신흥동3가 …, the 신선초 campaign)
    to the 신흥동 office; ``skip_addresses`` + ``place_weight`` send them back to 건축과 without
    losing accuracy overall."""
    import polars as pl

    from voc.tagger import frame_texts, labels_of

    assert not LinearVOCClassifier().skip_addresses and not LinearVOCClassifier().place_weight
    assert "skip_addresses" not in DEFAULT_PARAMS and "place_weight" not in DEFAULT_PARAMS
    df = sample_df.filter(pl.col("reviewed_subject_minor").is_not_null())
    tr, te = df.filter(pl.col("created_at") < pl.date(2019, 1, 1)), df.filter(pl.col("created_at") >= pl.date(2019, 1, 1))
    tr_x, te_x = frame_texts(tr, use_reply=True)[0], frame_texts(te, use_reply=True)[0]
    y_tr = labels_of(tr, "subject")
    truth = np.array([lab.split(">")[1] for lab in labels_of(te, "subject")], dtype=object)
    fast = {"calibration": "temperature", "calibration_cv": 2}
    minor = {}
    for name, kw in (("default", {}), ("places", {"skip_addresses": True, "place_weight": True})):
        est = LinearVOCClassifier(**{**DEFAULT_PARAMS, **fast, **kw})
        est.fit(tr_x, y_tr, tokens=ws(tr_x), times=tr["created_at"].to_list())
        minor[name] = np.array([lab.split(">")[1] for lab in est.predict(te_x, tokens=ws(te_x))], dtype=object)
        if name == "default":
            assert est.place_name_weight_ == 0.0 and not est.place_classes_.any()
        else:
            places = {c.split(">")[1] for c in est.classes_[est.place_classes_]}
            assert "신흥동" in places and "건축과" not in places and all(p.endswith(("동", "읍", "면")) for p in places)
            assert est.place_name_weight_ < est.name_weight_  # a 동 named is weaker evidence than a 과 named
    building = truth == "건축과"
    assert np.sum(minor["default"][building] == "신흥동") >= 10
    assert np.sum(minor["places"][building] == "신흥동") <= 1
    assert np.mean(minor["places"] == truth) > np.mean(minor["default"] == truth)

