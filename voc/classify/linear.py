"""CPU model: TF-IDF over Kiwi morpheme tokens + calibrated linear SVM.

Production anchor (production-notes.md): TF-IDF (max_features 10,000, word 1–2-grams, sublinear
tf) over Kiwi tokens, ``LinearSVC(C=1, class_weight="balanced")`` wrapped in
``CalibratedClassifierCV(cv=3)`` for probabilities.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Self

import numpy as np

from voc.classify.base import NotFittedError, Tags, check_fit_input
from voc.tokenize import KiwiTokenizer

__all__ = ["LinearVOCClassifier", "tokens_to_docs"]


def tokens_to_docs(tokens: Sequence[Sequence[str]]) -> list[str]:
    """Kiwi token lists → space-joined documents (Kiwi tokens contain no spaces)."""
    return [" ".join(t) for t in tokens]


class LinearVOCClassifier:
    """TF-IDF + LinearSVC, calibrated.

    Parameters
    ----------
    tokenizer
        Produces model tokens; default :class:`~voc.tokenize.KiwiTokenizer`.
    max_features, ngram_range, sublinear_tf
        TF-IDF settings over morpheme tokens (production: 10,000, (1, 2), True).
    char_ngrams
        Also unite character n-grams (2–4, ``char_wb``) of the raw text; 0 disables.
    C
        LinearSVC regularisation (production: 1.0).
    calibration_cv
        Folds of ``CalibratedClassifierCV`` (production: 3); lowered to the smallest class count
        when a class is rarer; below 2 the SVM decision is squashed by softmax instead.
    random_state
        Seed for the SVM and calibration folds.
    """

    def __init__(
        self,
        tokenizer: KiwiTokenizer | None = None,
        *,
        max_features: int = 10_000,
        ngram_range: tuple[int, int] = (1, 2),
        sublinear_tf: bool = True,
        char_ngrams: int = 0,
        C: float = 1.0,
        calibration_cv: int = 3,
        random_state: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_features = max_features
        self.ngram_range = ngram_range
        self.sublinear_tf = sublinear_tf
        self.char_ngrams = char_ngrams
        self.C = C
        self.calibration_cv = calibration_cv
        self.random_state = random_state

    # ------------------------------------------------------------------------------------
    def _tok(self) -> KiwiTokenizer:
        if self.tokenizer is None:
            self.tokenizer = KiwiTokenizer()
        return self.tokenizer

    def _features(self, texts: Sequence[str], tokens: Sequence[Sequence[str]] | None, *, fit: bool):
        from scipy.sparse import hstack

        if tokens is None:
            tokens = self._tok().model_tokens_batch(texts)
        docs = tokens_to_docs(tokens)
        if fit:
            from sklearn.feature_extraction.text import TfidfVectorizer

            self.vectorizer_ = TfidfVectorizer(
                token_pattern=r"\S+",
                lowercase=False,
                ngram_range=self.ngram_range,
                max_features=self.max_features,
                sublinear_tf=self.sublinear_tf,
            )
            X = self.vectorizer_.fit_transform(docs)
            if self.char_ngrams:
                self.char_vectorizer_ = TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(2, 4),
                    max_features=self.char_ngrams,
                    sublinear_tf=True,
                )
                X = hstack([X, self.char_vectorizer_.fit_transform(texts)]).tocsr()
            return X
        X = self.vectorizer_.transform(docs)
        if self.char_ngrams:
            X = hstack([X, self.char_vectorizer_.transform(texts)]).tocsr()
        return X

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        tokens: Sequence[Sequence[str]] | None = None,
    ) -> Self:
        """Fit on N texts and N labels.

        Raises
        ------
        ValueError
            Lengths differ, an empty label, or fewer than two classes.
        """
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import LinearSVC

        y = np.array(check_fit_input(texts, labels), dtype=object)
        X = self._features(texts, tokens, fit=True)
        svm = LinearSVC(C=self.C, class_weight="balanced", random_state=self.random_state)
        min_count = min(Counter(y.tolist()).values())
        cv = min(self.calibration_cv, min_count)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if cv >= 2:
                self.model_ = CalibratedClassifierCV(svm, cv=cv).fit(X, y)
                self.calibrated_ = True
            else:
                self.model_ = svm.fit(X, y)
                self.calibrated_ = False
        self.classes_ = np.array(self.model_.classes_, dtype=object)
        return self

    def _check(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("LinearVOCClassifier is not fitted; call fit() first")

    def predict_proba(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> np.ndarray:
        """``N × K`` class probabilities, columns in ``classes_`` order."""
        self._check()
        if len(texts) == 0:
            return np.zeros((0, len(self.classes_)))
        X = self._features(texts, tokens, fit=False)
        if self.calibrated_:
            return self.model_.predict_proba(X)
        d = self.model_.decision_function(X)
        if d.ndim == 1:
            d = np.stack([-d, d], axis=1)
        e = np.exp(d - d.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict_tags(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> Tags:
        p = self.predict_proba(texts, tokens=tokens)
        best = p.argmax(axis=1)
        return Tags(
            [str(self.classes_[b]) for b in best],
            p[np.arange(len(best)), best],
            ["model"] * len(best),
        )

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return np.array(self.predict_tags(texts).labels, dtype=object)
