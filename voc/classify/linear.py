"""CPU model: TF-IDF over Kiwi morpheme tokens (and characters) + a linear SVM, with a
confidence that means "probability this tag is right".

Two recipes are built from this one estimator (``voc.tagger.make_classifier``):

* **anchor** (the model the production system runs): TF-IDF word 1–2-grams over Kiwi model
  tokens, ``max_features=10_000``, sublinear tf; ``LinearSVC(C=1, class_weight="balanced")``
  inside ``CalibratedClassifierCV(cv=3)`` (sigmoid, ensemble of the three fold models). That is
  ``LinearVOCClassifier(tokenizer)`` with its defaults.
* **default** (:data:`DEFAULT_PARAMS`; every choice measured in docs/model-quality.md): the
  anchor's word features, one unweighted SVM fit on all rows (its decisions plus class-name
  evidence give the label), rows weighted by age when dates are given, and
  ``calibration="top1"`` confidence. Character n-grams (``char_ngrams``) are available; on the
  temporal splits they helped the anchor's calibration but not the default.

Label and confidence (``calibration="temperature"`` / ``"top1"``)
------------------------------------------------------------------
From out-of-fold (OOF) SVM decisions d (N × K) of ``calibration_cv`` stratified refits:

1. scores z = d / T + β · M_minor + β_major · M_major (+ γ · log π with ``prior_correction``),
   where M are the class-name mention matrices (:func:`name_mentions`: does the text contain
   the class's minor / major name — complaints often name the department or the facility) and
   T, β, β_major, γ (and β_place for place classes with ``place_weight``) minimise the OOF
   negative log-likelihood of softmax(z) (:func:`fit_scaling`;
   temperature scaling, Guo et al., 2017, "On Calibration of Modern Neural Networks", §4.2,
   extended by a few shared evidence weights). The label is argmax z;
2. ``"top1"`` then calibrates the *top-1* confidence only (Platt, 1999, "Probabilistic Outputs
   for Support Vector Machines"): conf = σ(a · logit(p_max) + b · (d₁ − d₂) + c), a logistic
   regression on whether the OOF top-1 label was right, d₁ − d₂ the margin between the two
   largest SVM decisions. OOF rows whose class was absent from that fold's training rows are kept: they stand
   for classes the model has never seen, the commonest error when the label set drifts.

Why: with 70+ classes, the renormalised one-vs-rest sigmoid probabilities of the anchor are
small even for right tags, and the plain softmax of SVM margins (|d| ≲ 1) is nearly flat
(≈ 1/K), so neither can carry a review threshold; a calibrated top-1 confidence can.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from datetime import date
from typing import Any, Self

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from voc.classify.base import NotFittedError, Tags, check_fit_input
from voc.tokenize import KiwiTokenizer

__all__ = [
    "LinearVOCClassifier",
    "tokens_to_docs",
    "title_of",
    "recency_weights",
    "name_mentions",
    "is_place_name",
    "PLACE_NAME_PATTERN",
    "fit_scaling",
    "DEFAULT_PARAMS",
    "CALIBRATIONS",
]

CALIBRATIONS: tuple[str, ...] = ("sigmoid", "isotonic", "temperature", "top1", "none")

DEFAULT_PARAMS: dict[str, Any] = {
    "max_features": 10_000,
    "ngram_range": (1, 2),
    "sublinear_tf": True,
    "char_ngrams": 0,
    "char_ngram_range": (1, 3),
    "title_weight": 1,
    "C": 1.0,
    "class_weight": None,
    "calibration": "top1",
    "calibration_cv": 5,
    "prior_correction": False,
    "name_prior": True,
    "recency_half_life_days": 730.0,
    "confidence_folds": "shuffled",
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


def _as_days(t: Any) -> float:
    """Day number of a date (``datetime.date``/``datetime``), a ``numpy.datetime64`` or a number."""
    if isinstance(t, date):  # datetime is a date
        return float(t.toordinal())
    if isinstance(t, np.datetime64):
        return float(t.astype("datetime64[D]").astype(np.int64))
    return float(t)


def recency_weights(times: Sequence[Any], *, half_life_days: float) -> np.ndarray:
    """Row weights 0.5 ** (age / half_life_days), age = newest time − row time in days.

    Parameters
    ----------
    times
        N dates (``datetime.date``/``datetime``/``numpy.datetime64``) or day numbers.
    half_life_days
        Age at which a row counts half (> 0).

    Returns
    -------
    ndarray, shape (N,)
        Weights in (0, 1]; the newest rows weigh 1.

    Raises
    ------
    ValueError
        ``half_life_days`` ≤ 0 or a missing time.
    """
    if not half_life_days or half_life_days <= 0:
        raise ValueError(f"half_life_days must be > 0, got {half_life_days!r}")
    if any(t is None for t in times):
        raise ValueError("times: a row has no date")
    d = np.array([_as_days(t) for t in times], dtype=float)
    if len(d) == 0:
        return d
    weights: np.ndarray = 0.5 ** ((d.max() - d) / float(half_life_days))
    return weights


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return p


def _nll(z: np.ndarray, y_idx: np.ndarray) -> float:
    """Mean negative log-likelihood of softmax(z) at the true classes (N × K, N ints)."""
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y_idx)), y_idx]))


def fit_scaling(
    d: np.ndarray, y_idx: np.ndarray, extras: Sequence[np.ndarray] = ()
) -> tuple[float, list[float]]:
    """Temperature T and weights w minimising the NLL of softmax(d / T + Σ_j w_j E_j).

    Parameters
    ----------
    d
        N × K decision values (out-of-fold).
    y_idx
        N true class indices.
    extras
        Additive evidence matrices E_j, each N × K or 1 × K (e.g. log class priors).

    Returns
    -------
    (T, w)
        ``T`` in [1e-3, 1e2]; ``w`` one float per extra. With no extras this is temperature
        scaling (Guo et al., 2017, §4.2); a log-prior extra makes it a bias-corrected
        temperature scaling with one shared weight (after Alexandari et al., 2020, "Maximum
        Likelihood with Bias-Corrected Calibration is Hard-To-Beat at Label Shift Adaptation").
    """
    from scipy.optimize import minimize, minimize_scalar

    if len(y_idx) == 0:
        return 1.0, [0.0] * len(extras)
    lo, hi = np.log(1e-3), np.log(1e2)
    if not extras:
        res = minimize_scalar(lambda v: _nll(d / np.exp(v), y_idx), bounds=(lo, hi), method="bounded")
        return float(np.exp(res.x)), []

    def f(v: np.ndarray) -> float:
        z = d / np.exp(np.clip(v[0], lo, hi))
        for w, e in zip(v[1:], extras):
            z = z + w * e
        return _nll(z, y_idx)

    t0 = minimize_scalar(lambda v: _nll(d / np.exp(v), y_idx), bounds=(lo, hi), method="bounded").x
    res = minimize(f, x0=np.array([t0, *([0.0] * len(extras))]), method="Nelder-Mead",
                   options={"xatol": 1e-4, "fatol": 1e-7, "maxiter": 800})
    return float(np.exp(np.clip(res.x[0], lo, hi))), [float(w) for w in res.x[1:]]


def _name_parts(name: str) -> tuple[str, ...]:
    """Searchable parts of a class name (``"냉난방/공조"`` → ``("냉난방", "공조")``), 2+
    characters, without spaces."""
    return tuple(p for p in re.split(r"[/·,\s]+", name) if len(p) >= 2)


def _label_parts(label: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(minor parts, major parts) of a ``"major>minor"`` label (a label without ``>`` is its own
    minor and has no major parts)."""
    major, sep, minor = label.partition(">")
    return (_name_parts(minor), _name_parts(major)) if sep else (_name_parts(label), ())


def name_mentions(texts: Sequence[str], names: Sequence[Sequence[str]], *, skip_addresses: bool = False) -> np.ndarray:
    """N × K matrix, 1.0 where text i contains a part of class k's name (spaces ignored).

    With ``skip_addresses``, an occurrence immediately followed by a digit (spaces ignored) does
    not count: ``신흥동1가 38-27`` or ``운서동 2850`` is an address in the text, not the office
    the text is addressed to (a 동 class is named after its 동)."""
    out = np.zeros((len(texts), len(names)))
    pats = [re.compile("|".join(re.escape(p) for p in parts) + r"(?!\d)") if parts else None for parts in names]
    for i, t in enumerate(texts):
        flat = re.sub(r"\s+", "", t or "")
        for k, parts in enumerate(names):
            if skip_addresses:
                pat = pats[k]
                if pat is not None and pat.search(flat):
                    out[i, k] = 1.0
            elif any(p in flat for p in parts):
                out[i, k] = 1.0
    return out


PLACE_NAME_PATTERN = re.compile(r"\S+(동|읍|면)$")
"""Class names that are Korean administrative areas (동/읍/면: the community service centre of a
동 is a handling department named after its area, e.g. 신흥동, 운서동); such a name in a text is
often an address rather than the department addressed."""


def is_place_name(name: str) -> bool:
    """Whether a class (minor) name is an administrative area (:data:`PLACE_NAME_PATTERN`)."""
    return bool(PLACE_NAME_PATTERN.fullmatch((name or "").strip()))


def _top1_features(p: np.ndarray, d: np.ndarray) -> np.ndarray:
    """N × 2 features of the top-1 calibrator: logit of the top probability (N × K ``p``) and
    the margin between the two largest SVM decisions (N × K ``d``)."""
    top = np.clip(p.max(axis=1), 1e-6, 1 - 1e-6)
    if d.shape[1] >= 2:
        part = -np.partition(-d, 1, axis=1)
        margin = part[:, 0] - part[:, 1]
    else:
        margin = np.zeros(len(d))
    return np.column_stack([np.log(top / (1 - top)), margin])


class LinearVOCClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # sklearn ships no type information
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
    skip_addresses
        Class-name evidence (``name_prior``) ignores a name immediately followed by a digit
        (spaces ignored: ``신흥동1가``, ``운서동 2850``), an address rather than the department
        addressed (:func:`name_mentions`). Default False (as before).
    place_weight
        Class-name evidence of *place classes* (minor names matching
        :data:`PLACE_NAME_PATTERN`: 동/읍/면, e.g. the 신흥동 community centre) gets its own fitted
        weight β_place instead of sharing β with department names: a 동 named in a complaint is
        usually where it happened, a 과 named is usually who handles it. Default False.
        docs/model-quality.md, "Place names as evidence", measured both.
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
    name_weight_, major_name_weight_, place_name_weight_ : float
        Fitted weights β, β_major, β_place of the class-name evidence (0.0 when unused).
    place_classes_ : ndarray of bool, shape (K,)
        Which classes count as place classes (all False without ``place_weight``).
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
        prior_correction: bool = False,
        name_prior: bool = False,
        recency_half_life_days: float | None = None,
        confidence_folds: str = "shuffled",
        skip_addresses: bool = False,
        place_weight: bool = False,
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
        self.prior_correction = prior_correction
        self.name_prior = name_prior
        self.recency_half_life_days = recency_half_life_days
        self.confidence_folds = confidence_folds
        self.skip_addresses = skip_addresses
        self.place_weight = place_weight
        self.random_state = random_state

    # Class-level defaults. ``model_`` None = not fitted (the fitted state ``_check`` reads). The
    # others are what a model pickled before these options and learned values existed behaves as
    # (joblib restores only the instance attributes a model had when it was saved).
    model_: Any = None
    place_name_weight_: float = 0.0
    place_classes_: np.ndarray | None = None
    skip_addresses: bool = False
    place_weight: bool = False
    _default_tokenizer: KiwiTokenizer | None = None

    # ------------------------------------------------------------------------------------
    def get_tokenizer(self) -> KiwiTokenizer:
        """``tokenizer``, or a default :class:`KiwiTokenizer` created once per instance."""
        if self.tokenizer is not None:
            return self.tokenizer
        if self._default_tokenizer is None:
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

    def _features(self, texts: Sequence[str], tokens: Sequence[Sequence[str]] | None, *, fit: bool) -> Any:
        """``N × F`` TF-IDF features (a scipy CSR matrix); ``fit`` refits the vectorizers."""
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

    def _svm(self, y: np.ndarray | None = None) -> Any:
        """An unfitted ``LinearSVC``; ``class_weight="sqrt"`` weighs class c by √(N / (K · n_c)) of ``y``."""
        from sklearn.svm import LinearSVC

        cw: str | dict[Any, float] | None = self.class_weight
        if cw == "sqrt" and y is not None:
            labs, counts = np.unique(y, return_counts=True)
            w = np.sqrt(len(y) / (len(labs) * counts))
            cw = {lab: float(v) for lab, v in zip(labs, w)}
        elif cw == "sqrt":
            cw = None
        return LinearSVC(C=self.C, class_weight=cw, random_state=self.random_state)

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
        times: Sequence[Any] | None = None,
        sample_weight: Sequence[float] | None = None,
    ) -> Self:
        """Fit on N texts and N labels.

        Parameters
        ----------
        texts, labels
            N ``all_text`` strings and N labels.
        tokens
            The texts' Kiwi model tokens (N lists) when the caller has them.
        times
            N registration dates (``datetime.date``/``datetime``/``numpy.datetime64``, or day
            numbers); with ``recency_half_life_days`` they weight rows by age (see there).
        sample_weight
            N non-negative row weights (multiplied with the recency weights).

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
        sw = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if sw is not None and (sw.shape != (len(y),) or np.any(sw < 0) or not np.all(np.isfinite(sw))):
            raise ValueError(f"sample_weight must be {len(y)} finite non-negative floats")
        if times is not None and self.recency_half_life_days:
            rw = recency_weights(times, half_life_days=self.recency_half_life_days)
            if len(rw) != len(y):
                raise ValueError(f"times ({len(rw)}) and labels ({len(y)}) differ in length")
            sw = rw if sw is None else sw * rw
        X = self._features(texts, tokens, fit=True)
        self.classes_ = np.array(sorted(set(y.tolist())), dtype=object)
        self.temperature_ = 1.0
        self.prior_weight_ = 0.0
        self.name_weight_ = 0.0
        counts = np.array([np.sum(y == c) for c in self.classes_], dtype=float)
        self.log_prior_ = np.log((counts + 1.0) / (counts.sum() + len(counts)))
        parts = [_label_parts(str(c)) for c in self.classes_]
        self.class_names_ = [p[0] for p in parts]
        self.major_names_ = [p[1] for p in parts]
        self.major_name_weight_ = 0.0
        self.place_name_weight_ = 0.0
        self.place_classes_ = np.array([bool(self.place_weight) and is_place_name(str(c).partition(">")[2] or str(c))
                                        for c in self.classes_], dtype=bool)
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
                self.model_ = CalibratedClassifierCV(self._svm(y), method=method, cv=folds).fit(X, y, sample_weight=sw)
            else:
                self.model_ = self._svm(y).fit(X, y, sample_weight=sw)
                if method in ("temperature", "top1"):
                    self._fit_confidence(X, y, cv, texts, sw, times)
        return self

    def _oof(
        self, X: Any, y: np.ndarray, sw: np.ndarray | None, folds: Sequence[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Out-of-fold decisions (N × K, NaN rows where a row was in no test fold) and whether
        each row's class was among that fold's training classes (N booleans)."""
        k = len(self.classes_)
        index = {c: i for i, c in enumerate(self.classes_)}
        y_idx = np.array([index[v] for v in y])
        oof = np.full((len(y), k), np.nan)
        seen = np.zeros(len(y), dtype=bool)
        for tr, te in folds:
            if len(set(y[tr].tolist())) < 2:
                continue
            m = self._svm(y[tr]).fit(X[tr], y[tr], sample_weight=None if sw is None else sw[tr])
            oof[te] = _aligned_decision(m, X[te], self.classes_)
            seen[te] = np.isin(y_idx[te], [index[c] for c in m.classes_])
        return oof, seen

    def _fit_confidence(
        self, X: Any, y: np.ndarray, cv: int, texts: Sequence[str], sw: np.ndarray | None, times: Sequence[Any] | None
    ) -> None:
        """Temperature, prior and name weights from shuffled stratified OOF decisions of ``cv``
        refits; the top-1 calibrator from the same OOF rows, or, with ``times`` and
        ``confidence_folds="forward"``, from forward-chaining folds (older rows predict newer
        ones, as the model will meet its data)."""
        from sklearn.linear_model import LogisticRegression

        index = {c: i for i, c in enumerate(self.classes_)}
        y_idx = np.array([index[v] for v in y])
        oof, seen = self._oof(X, y, sw, self._folds(y, cv, shuffle=True))
        done = ~np.isnan(oof).any(axis=1)
        fit_t = done & seen
        mentions = self._mentions(texts) if self.name_prior else None
        if fit_t.sum() >= 2:
            extras: list[np.ndarray] = []
            if self.prior_correction:
                extras.append(self.log_prior_[None, :])
            if mentions is not None:
                extras.extend(m[fit_t] for m in mentions)
            self.temperature_, w = fit_scaling(oof[fit_t], y_idx[fit_t], extras)
            if self.prior_correction:
                self.prior_weight_ = w.pop(0)
            if mentions is not None:
                self.name_weight_, self.major_name_weight_ = w.pop(0), w.pop(0)
                if len(mentions) > 2:
                    self.place_name_weight_ = w.pop(0)
        if self.calibration_ != "top1":
            return
        if self.confidence_folds == "forward" and times is not None:
            days = np.array([_as_days(t) for t in times], dtype=float)
            oof, _ = self._oof(X, y, sw, _forward_folds(days, cv))
            done = ~np.isnan(oof).any(axis=1)
        if done.sum() < 2:
            return
        d = oof[done]
        p = self._scaled(d, tuple(m[done] for m in mentions) if mentions is not None else None)
        correct = p.argmax(axis=1) == y_idx[done]
        if 0 < correct.sum() < len(correct):
            self.top1_calibrator_ = LogisticRegression(C=1.0).fit(_top1_features(p, d), correct)

    def _check(self) -> None:
        if self.model_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")

    def __sklearn_is_fitted__(self) -> bool:
        return self.model_ is not None

    def model_labels(self) -> list[str]:
        """The fitted labels (``classes_``) as ``str``. Raises :class:`NotFittedError` before ``fit``."""
        self._check()
        return [str(c) for c in self.classes_]

    def decision_function(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> np.ndarray:
        """``N × K`` SVM decision values (K = ``len(classes_)``; for the ensemble calibrations,
        the mean over the fold models)."""
        self._check()
        if len(texts) == 0:
            return np.zeros((0, len(self.classes_)))
        from sklearn.calibration import CalibratedClassifierCV

        X = self._features(texts, tokens, fit=False)
        d: np.ndarray
        if isinstance(self.model_, CalibratedClassifierCV):  # sigmoid/isotonic: the fold models' mean
            d = np.mean(
                [_aligned_decision(c.estimator, X, self.classes_) for c in self.model_.calibrated_classifiers_],
                axis=0,
            )
        else:
            d = _aligned_decision(self.model_, X, self.classes_)
        return d

    def _proba_and_decision(
        self, texts: Sequence[str], tokens: Sequence[Sequence[str]] | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        self._check()
        k = len(self.classes_)
        if len(texts) == 0:
            return np.zeros((0, k)), np.zeros((0, k))
        if self.calibration_ in ("sigmoid", "isotonic"):
            X = self._features(texts, tokens, fit=False)
            return self.model_.predict_proba(X), None
        d = self.decision_function(texts, tokens=tokens)
        mentions = self._mentions(texts) if (self.name_weight_ or self.major_name_weight_ or self.place_name_weight_) else None
        return self._scaled(d, mentions), d

    def _mentions(self, texts: Sequence[str]) -> tuple[np.ndarray, ...]:
        """(minor-name, major-name) mention matrices, N × K each (:func:`name_mentions`); with
        ``place_weight``, a third: the minor-name mentions of place classes
        (``place_classes_``), which are then zero in the first."""
        skip = bool(self.skip_addresses)  # class defaults: models saved before these options
        minor = name_mentions(texts, self.class_names_, skip_addresses=skip)
        major = name_mentions(texts, self.major_names_, skip_addresses=skip)
        place = self.place_classes_
        if not self.place_weight or place is None:
            return minor, major
        return minor * ~place, major, minor * place

    def _scaled(self, d: np.ndarray, mentions: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
        """softmax(d / T + γ · log π + β · M_minor + β_major · M_major [+ β_place · M_place]), N × K."""
        z = d / self.temperature_ + self.prior_weight_ * self.log_prior_
        if mentions is not None:
            z = z + self.name_weight_ * mentions[0] + self.major_name_weight_ * mentions[1]
            if len(mentions) > 2:
                z = z + self.place_name_weight_ * mentions[2]
        return _softmax(z)

    def predict_proba(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> np.ndarray:
        """``N × K`` class probabilities, columns in ``classes_`` order."""
        return self._proba_and_decision(texts, tokens)[0]

    def predict_tags(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> Tags:
        """Label (argmax), confidence in [0, 1] (calibrated top-1 probability for ``top1``, else
        the top class probability) and source ``model`` for each of N texts."""
        p, d = self._proba_and_decision(texts, tokens)
        return self._tags_of(p, d)

    def _tags_of(self, p: np.ndarray, d: np.ndarray | None) -> Tags:
        """Tags of N rows from their N × K probabilities ``p`` and SVM decisions ``d``."""
        best = p.argmax(axis=1)
        conf = p[np.arange(len(best)), best]
        if self.top1_calibrator_ is not None and len(best):
            conf = self.top1_calibrator_.predict_proba(_top1_features(p, d))[:, 1]
        return Tags([str(self.classes_[b]) for b in best], np.asarray(conf, dtype=float), ["model"] * len(best))

    def predict_group_tags(
        self, texts: Sequence[str], groups: Sequence[str | None], *, tokens: Sequence[Sequence[str]] | None = None
    ) -> tuple[Tags, list[str]]:
        """Tags with one answer per near-duplicate group (:mod:`voc.pooling`).

        Each group's probabilities (and SVM decisions, which the top-1 calibrator reads) are the
        mean over its members (the linear opinion pool); every member gets the group's label and
        the calibrated confidence of the pooled evidence, unless its own tag is decisively
        different (:func:`voc.pooling.merge_pooled`).

        Parameters
        ----------
        texts, tokens
            As :meth:`predict_tags` (N).
        groups
            N group ids (:func:`voc.groups.near_duplicate_groups`; None = alone).

        Returns
        -------
        (Tags, list[str])
            N tags and N flags (``""`` or ``group_dissent``).

        Raises
        ------
        ValueError
            ``groups`` not of length N.
        """
        from voc.pooling import group_index, merge_pooled, pool_rows

        members = group_index(groups, len(texts))
        p, d = self._proba_and_decision(texts, tokens)
        own = self._tags_of(p, d)
        if not members:
            return own, [""] * len(texts)
        pooled = self._tags_of(pool_rows(p, members), None if d is None else pool_rows(d, members))
        return merge_pooled(own, pooled, members)

    def predict(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> np.ndarray:
        """N labels (object array)."""
        return np.array(self.predict_tags(texts, tokens=tokens).labels, dtype=object)


def _forward_folds(days: np.ndarray, n_splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Forward-chaining folds over N day numbers: rows sorted by time are cut into
    ``n_splits + 1`` blocks of equal size; fold j trains on blocks < j and predicts block j
    (j = 1..n_splits). The oldest block gets no out-of-fold decision."""
    order = np.argsort(days, kind="stable")
    blocks = np.array_split(order, n_splits + 1)
    return [(np.concatenate(blocks[:j]), blocks[j]) for j in range(1, n_splits + 1) if len(blocks[j])]


def _aligned_decision(model: Any, X: Any, classes: np.ndarray) -> np.ndarray:
    """Decision values of ``model`` as N × K columns in ``classes`` order; classes the model
    never saw get the row minimum − 1."""
    d: np.ndarray = model.decision_function(X)
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

