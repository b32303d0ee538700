"""CPU model: TF-IDF over Kiwi morpheme tokens (and characters) + a linear SVM, with calibrated
confidence.

Two recipes are built from this one estimator (``voc.tagger.make_classifier``):

* **anchor** (the production model, production-notes.md): TF-IDF word 1–2-grams over Kiwi model
  tokens, ``max_features=10_000``, sublinear tf; ``LinearSVC(C=1, class_weight="balanced")``
  inside ``CalibratedClassifierCV(cv=3)`` (sigmoid, ensemble of the three fold models). Use
  ``LinearVOCClassifier(tokenizer)`` with its defaults.
* **default** (:data:`DEFAULT_PARAMS`, measured in docs/model-quality.md): the word features
  united with character 1–3-grams of the text, the title's n-grams counted twice, one SVM fit
  on all rows (its argmax is the label) and ``calibration="top1"`` confidence.

Confidence (``calibration``)
----------------------------
With 70+ classes, class-wise calibrated and renormalised one-vs-rest probabilities are small
(a correct top class often gets 0.1–0.3), and the plain softmax of SVM margins is flatter still
(≈ 0.02 for 70 classes), so neither can drive a review threshold. ``"temperature"`` and
``"top1"`` fix it on out-of-fold (OOF) decisions of ``calibration_cv`` refits:

1. temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks", §4.2):
   p = softmax(d / T), the decision values d (N × K) of the SVM divided by one T > 0 that
   minimises the OOF negative log-likelihood; the argmax is unchanged;
2. ``"top1"`` adds Platt scaling (Platt, 1999) of the *top-1* confidence only:
   conf = σ(a · logit(p_max) + b · (d₁ − d₂) + c) fitted by logistic regression on whether the
   OOF top-1 label was right, where d₁ − d₂ is the margin between the two best classes. OOF rows
   whose class was absent from that fold's training rows are kept: they stand for the classes a
   model has never seen, the commonest error in a drifting label set.

The confidence is "the probability this tag is right", which is what the review threshold
(:func:`voc.metrics.choose_review_threshold`) and the ECE (:func:`voc.metrics.expected_calibration_error`)
need.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from voc.classify.base import NotFittedError, Tags, check_fit_input
from voc.tokenize import KiwiTokenizer

__all__ = ["LinearVOCClassifier", "tokens_to_docs", "title_of", "DEFAULT_PARAMS", "CALIBRATIONS"]

CALIBRATIONS: tuple[str, ...] = ("sigmoid", "isotonic", "temperature", "top1", "none")

DEFAULT_PARAMS: dict[str, Any] = {
    "max_features": 10_000,
    "ngram_range": (1, 2),
    "sublinear_tf": True,
    "char_ngrams": 30_000,
    "char_ngram_range": (1, 3),
    "title_weight": 2,
    "C": 0.5,
    "class_weight": "balanced",
    "calibration": "top1",
    "calibration_cv": 5,
}
"""Settings of the default CPU model (``make_classifier("linear")``); chosen on temporal splits
of the shipped sample, see docs/model-quality.md (``benchmarks/experiments.py``)."""


def tokens_to_docs(tokens: Sequence[Sequence[str]]) -> list[str]:
    """Kiwi token lists → space-joined documents (Kiwi tokens contain no spaces)."""
    return [" ".join(t) for t in tokens]


def title_of(text: str) -> str:
    """The title part of an ``all_text``: its first line (``voc.text.build_all_text`` joins title,
    request and reply by newlines; an empty title makes this the request's first line)."""
    return (text or "").split("\n", 1)[0]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _fit_temperature(d: np.ndarray, y_idx: np.ndarray) -> float:
    """T > 0 minimising the mean NLL of softmax(d / T) at the true classes (N × K, N ints).

    Solved over log T with a bounded scalar search (the NLL is smooth and unimodal in T for
    fixed logits, Guo et al. 2017 §4.2). Returns 1.0 when there are no rows."""
    from scipy.optimize import minimize_scalar

    if len(y_idx) == 0:
        return 1.0
    rows = np.arange(len(y_idx))

    def nll(log_t: float) -> float:
        z = d / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, y_idx]))

    res = minimize_scalar(nll, bounds=(np.log(1e-3), np.log(1e2)), method="bounded")
    return float(np.exp(res.x))


def _top1_features(p: np.ndarray, d: np.ndarray) -> np.ndarray:
    """N × 2 features of the top-1 calibrator: logit of the top probability and the decision
    margin between the two best classes."""
    top = np.clip(p.max(axis=1), 1e-6, 1 - 1e-6)
    if d.shape[1] >= 2:
        part = -np.partition(-d, 1, axis=1)
        margin = part[:, 0] - part[:, 1]
    else:
        margin = np.zeros(len(d))
    return np.column_stack([np.log(top / (1 - top)), margin])


class LinearVOCClassifier(ClassifierMixin, BaseEstimator):
    """TF-IDF (Kiwi tokens, optionally characters) + LinearSVC with calibrated confidence.

    A scikit-learn estimator over raw ``all_text`` strings (``clone``, ``get_params`` and
    ``set_params`` work; learned state ends in ``_``).

    Parameters
    ----------
    tokenizer
        Produces model tokens when ``fit``/``predict_*`` get no ``tokens``; default: a
        :class:`~voc.tokenize.KiwiTokenizer` created on first use (never stored back into this
        parameter).
    max_features, ngram_range, sublinear_tf
        TF-IDF over morpheme tokens (production: 10,000, (1, 2), True). ``max_features=None``
        keeps the whole vocabulary.
    char_ngrams
        Maximum number of character n-gram features (``analyzer="char_wb"``) united with the
        word features; 0 disables them (production).
    char_ngram_range
        Character n-gram lengths, default (1, 3). Hangul syllables are whole morpheme pieces, so
        short character n-grams catch names of places and departments that Kiwi splits or drops.
    title_weight
        How many times the title's features are counted (1 = as in the text, production). The
        title is :func:`title_of` the text; its word tokens are the text's tokens whose form
        occurs in the title.
    C
        LinearSVC regularisation (production: 1.0).
    class_weight
        ``"balanced"`` (production) or ``None``.
    calibration
        ``"sigmoid"`` / ``"isotonic"``: ``CalibratedClassifierCV`` with the ensemble of
        ``calibration_cv`` fold models (production: sigmoid, 3); ``"temperature"``: one SVM on all
        rows, softmax of its decisions with an OOF-fitted temperature; ``"top1"``: temperature,
        plus a top-1 confidence calibrator (module docstring); ``"none"``: softmax of the raw
        decisions.
    calibration_cv
        Folds for calibration (stratified; classes rarer than the fold count still take part:
        they fall in some folds only). Below 2 or with fewer than 2 rows per fold, calibration
        is skipped (``calibration_`` says ``"none"``).
    random_state
        Seed of the SVM and the calibration folds.

    Attributes
    ----------
    classes_ : ndarray of str, shape (K,)
        Sorted labels.
    model_
        The fitted scikit-learn classifier that gives the label (``LinearSVC`` or
        ``CalibratedClassifierCV``).
    vectorizer_, char_vectorizer_
        Fitted TF-IDF vectorizers (the latter only with ``char_ngrams``).
    calibration_ : str
        The calibration actually used.
    temperature_ : float
        Softmax temperature (``temperature``/``top1``; 1.0 otherwise).
    top1_calibrator_
        Fitted ``LogisticRegression`` over :func:`_top1_features` (``top1``), or None.
    """

    def __init__(
        self,
        tokenizer: KiwiTokenizer | None = None,
        *,
        max_features: int | None = 10_000,
        ngram_range: tuple[int, int] = (1, 2),
        sublinear_tf: bool = True,
        char_ngrams: int = 0,
        char_ngram_range: tuple[int, int] = (1, 3),
        title_weight: int = 1,
        C: float = 1.0,
        class_weight: str | None = "balanced",
        calibration: str = "sigmoid",
        calibration_cv: int = 3,
        random_state: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_features = max_features
        self.ngram_range = ngram_range
        self.sublinear_tf = sublinear_tf
        self.char_ngrams = char_ngrams
        self.char_ngram_range = char_ngram_range
        self.title_weight = title_weight
        self.C = C
        self.class_weight = class_weight
        self.calibration = calibration
        self.calibration_cv = calibration_cv
        self.random_state = random_state

    # ------------------------------------------------------------------------------------
    def get_tokenizer(self) -> KiwiTokenizer:
        """``tokenizer``, or a default :class:`KiwiTokenizer` created once per instance."""
        if self.tokenizer is not None:
            return self.tokenizer
        if getattr(self, "_default_tokenizer", None) is None:
            self._default_tokenizer = KiwiTokenizer()
        return self._default_tokenizer

    def _docs(self, texts: Sequence[str], tokens: Sequence[Sequence[str]] | None) -> tuple[list[str], list[str]]:
        if tokens is None:
            tokens = self.get_tokenizer().model_tokens_batch(texts)
        if len(tokens) != len(texts):
            raise ValueError(f"tokens ({len(tokens)}) and texts ({len(texts)}) differ in length")
        texts = [t or "" for t in texts]
        w = int(self.title_weight)
        if w <= 1:
            return tokens_to_docs(tokens), list(texts)
        docs, chars = [], []
        for text, toks in zip(texts, tokens):
            title = title_of(text)
            extra = [t for t in toks if t in title]
            docs.append(" ".join([*toks, *(extra * (w - 1))]))
            chars.append(text + ("\n" + title) * (w - 1))
        return docs, chars

    def _features(self, texts: Sequence[str], tokens: Sequence[Sequence[str]] | None, *, fit: bool):
        from scipy.sparse import hstack

        docs, chars = self._docs(texts, tokens)
        if fit:
            from sklearn.feature_extraction.text import TfidfVectorizer

            self.vectorizer_ = TfidfVectorizer(
                token_pattern=r"\S+",
                lowercase=False,
                ngram_range=tuple(self.ngram_range),
                max_features=self.max_features,
                sublinear_tf=self.sublinear_tf,
            )
            X = self.vectorizer_.fit_transform(docs)
            if self.char_ngrams:
                self.char_vectorizer_ = TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=tuple(self.char_ngram_range),
                    max_features=self.char_ngrams,
                    sublinear_tf=True,
                )
                X = hstack([X, self.char_vectorizer_.fit_transform(chars)]).tocsr()
            return X
        X = self.vectorizer_.transform(docs)
        if self.char_ngrams:
            X = hstack([X, self.char_vectorizer_.transform(chars)]).tocsr()
        return X

    def _svm(self):
        from sklearn.svm import LinearSVC

        return LinearSVC(C=self.C, class_weight=self.class_weight, random_state=self.random_state)

    def _folds(self, y: np.ndarray, n_splits: int, *, shuffle: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        """Stratified folds that tolerate classes rarer than ``n_splits``."""
        from sklearn.model_selection import StratifiedKFold

        skf = StratifiedKFold(
            n_splits=n_splits, shuffle=shuffle, random_state=self.random_state if shuffle else None
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(skf.split(np.zeros(len(y)), y))

    # ------------------------------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        tokens: Sequence[Sequence[str]] | None = None,
    ) -> Self:
        """Fit on N texts and N labels (``tokens``: the texts' Kiwi model tokens, N lists, when
        the caller has them).

        Raises
        ------
        ValueError
            Lengths differ, an empty label, fewer than two classes, or an unknown
            ``calibration``.
        """
        from sklearn.calibration import CalibratedClassifierCV

        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        y = np.array(check_fit_input(texts, labels), dtype=object)
        X = self._features(texts, tokens, fit=True)
        self.classes_ = np.array(sorted(set(y.tolist())), dtype=object)
        self.temperature_ = 1.0
        self.top1_calibrator_ = None
        cv = int(self.calibration_cv)
        method = self.calibration if (cv >= 2 and len(y) >= 2 * cv) else "none"
        self.calibration_ = method
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method in ("sigmoid", "isotonic"):
                # production: CalibratedClassifierCV(cv=3), i.e. unshuffled StratifiedKFold; the
                # folds are passed explicitly so that classes with fewer rows than folds take part
                folds = self._folds(y, cv, shuffle=False)
                self.model_ = CalibratedClassifierCV(self._svm(), method=method, cv=folds).fit(X, y)
            else:
                self.model_ = self._svm().fit(X, y)
                if method in ("temperature", "top1"):
                    self._fit_confidence(X, y, cv)
        return self

    def _fit_confidence(self, X, y: np.ndarray, cv: int) -> None:
        """Temperature (and top-1 calibrator) from OOF decisions of ``cv`` refits."""
        from sklearn.linear_model import LogisticRegression

        k = len(self.classes_)
        index = {c: i for i, c in enumerate(self.classes_)}
        y_idx = np.array([index[v] for v in y])
        oof = np.full((len(y), k), np.nan)
        seen = np.zeros(len(y), dtype=bool)
        for tr, te in self._folds(y, cv, shuffle=True):
            if len(set(y[tr].tolist())) < 2:
                continue
            m = self._svm().fit(X[tr], y[tr])
            d = m.decision_function(X[te])
            if d.ndim == 1:
                d = np.column_stack([-d, d])
            cols = np.array([index[c] for c in m.classes_])
            block = np.full((len(te), k), np.nan)
            block[:, cols] = d
            # classes absent from this fold's training rows: just below the row's lowest score
            low = np.nanmin(block, axis=1, keepdims=True) - 1.0
            oof[te] = np.where(np.isnan(block), low, block)
            seen[te] = np.isin(y_idx[te], cols)
        done = ~np.isnan(oof).any(axis=1)
        fit_t = done & seen
        if fit_t.sum() >= 2:
            self.temperature_ = _fit_temperature(oof[fit_t], y_idx[fit_t])
        if self.calibration_ != "top1" or done.sum() < 2:
            return
        d = oof[done]
        p = _softmax(d / self.temperature_)
        correct = p.argmax(axis=1) == y_idx[done]
        if 0 < correct.sum() < len(correct):
            self.top1_calibrator_ = LogisticRegression(C=1.0).fit(_top1_features(p, d), correct)

    def _check(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def decision_function(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> np.ndarray:
        """``N × K`` SVM decision values (K = ``len(classes_)``; for the ensemble calibrations,
        the mean over the fold models)."""
        self._check()
        if len(texts) == 0:
            return np.zeros((0, len(self.classes_)))
        X = self._features(texts, tokens, fit=False)
        if hasattr(self.model_, "calibrated_classifiers_"):
            d = np.mean(
                [_aligned_decision(c.estimator, X, self.classes_) for c in self.model_.calibrated_classifiers_],
                axis=0,
            )
        else:
            d = _aligned_decision(self.model_, X, self.classes_)
        return d

    def _proba_and_decision(self, texts: Sequence[str], tokens) -> tuple[np.ndarray, np.ndarray | None]:
        self._check()
        k = len(self.classes_)
        if len(texts) == 0:
            return np.zeros((0, k)), np.zeros((0, k))
        if self.calibration_ in ("sigmoid", "isotonic"):
            X = self._features(texts, tokens, fit=False)
            return self.model_.predict_proba(X), None
        d = self.decision_function(texts, tokens=tokens)
        return _softmax(d / self.temperature_), d

    def predict_proba(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> np.ndarray:
        """``N × K`` class probabilities, columns in ``classes_`` order."""
        return self._proba_and_decision(texts, tokens)[0]

    def predict_tags(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> Tags:
        """Label (argmax), confidence in [0, 1] (calibrated top-1 probability for ``top1``, else
        the top class probability) and source ``model`` for each of N texts."""
        p, d = self._proba_and_decision(texts, tokens)
        best = p.argmax(axis=1)
        conf = p[np.arange(len(best)), best]
        if self.top1_calibrator_ is not None and len(best):
            conf = self.top1_calibrator_.predict_proba(_top1_features(p, d))[:, 1]
        return Tags([str(self.classes_[b]) for b in best], np.asarray(conf, dtype=float), ["model"] * len(best))

    def predict(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> np.ndarray:
        """N labels (object array)."""
        return np.array(self.predict_tags(texts, tokens=tokens).labels, dtype=object)


def _aligned_decision(model: Any, X, classes: np.ndarray) -> np.ndarray:
    """Decision values of ``model`` as N × K columns in ``classes`` order; classes the model
    never saw get the row minimum − 1."""
    d = model.decision_function(X)
    if d.ndim == 1:
        d = np.column_stack([-d, d])
    mc = list(model.classes_)
    if len(mc) == len(classes) and all(a == b for a, b in zip(mc, classes)):
        return d
    index = {c: i for i, c in enumerate(classes)}
    out = np.full((d.shape[0], len(classes)), np.nan)
    out[:, [index[c] for c in mc]] = d
    low = np.nanmin(out, axis=1, keepdims=True) - 1.0
    return np.where(np.isnan(out), low, out)

