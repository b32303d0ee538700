"""Named CPU-model recipes, and the choice of one on the customer's own history.

A *recipe* is a named parameter set of :class:`voc.classify.linear.LinearVOCClassifier`
(:data:`RECIPES`). ``anchor`` is the production baseline (the model the production system runs: TF-IDF word
1–2-grams over Kiwi tokens, 10,000 features, sublinear tf, ``LinearSVC(C=1, balanced)`` in
``CalibratedClassifierCV(cv=3)``), ``default`` is :data:`voc.classify.linear.DEFAULT_PARAMS`
(chosen on the shipped sample, docs/model-quality.md). The default leans on *class-name
evidence* (complaints and replies that name the department); on data without such names it can
fall below the anchor, so the recipe is chosen per customer, at training time
(:func:`select_recipe`):

1. the training rows (never the fixed held-out split of :func:`voc.tagger.holdout_mask`) are
   cut into **rolling-origin folds** (:func:`rolling_origin_folds`; Tashman, 2000,
   "Out-of-sample tests of forecasting accuracy", §2.2): fold j trains on every row registered
   before month ``origin_j`` and is tested on the rows of the months ``origin_j`` … up to the
   next origin; the test blocks together are the last ``test_share`` of the rows;
2. every candidate recipe (:data:`CANDIDATES`) is fitted on each fold's training rows and labels
   its test rows; its scores are accuracy and macro-F1 (over the classes present in the truth)
   of the pooled test rows of all folds;
3. the choice (:func:`choose`): among the candidates **not worse than** ``anchor`` on accuracy
   **and** macro-F1 (ties allowed; ``anchor`` itself always qualifies) whose **worst test
   month** is at most :data:`WORST_MONTH_TOLERANCE` below ``anchor``'s worst month, the best is
   the highest macro-F1, then the highest accuracy; the choice is the **earliest** candidate in
   the list whose macro-F1 and accuracy are both within one standard error of the best's (the
   one-standard-error rule: Breiman, Friedman, Olshen & Stone 1984, *Classification and
   Regression Trees* §3.4.3; Hastie, Tibshirani & Friedman 2009, *The Elements of Statistical
   Learning* §7.10). The list puts the preferred recipe first, so a candidate replaces it only
   when it wins by more than the folds' noise. If no candidate qualifies besides ``anchor``, the
   choice is ``anchor``.

Mass complaints count once: the test rows are weighted by 1 / (size of their near-duplicate
group) (``groups``, from :func:`voc.groups.near_duplicate_groups`), so a campaign of 120 posts
in one month weighs as much as one complaint. The folds are whole months and groups never
cross a building-month, so no group is split between a fold's training and test rows. The
standard errors come from a cluster bootstrap over the groups of the test rows
(:data:`BOOTSTRAP_ROUNDS` resamples, seeded; Efron & Tibshirani 1993, *An Introduction to the
Bootstrap* §6; clusters as Field & Welsh 2007, "Bootstrapping clustered data", JRSS B 69(3)).

Kiwi runs once per text: callers pass the training rows' model tokens, and every recipe and
fold reads them (the recipes differ after tokenization). Everything is seeded and runs in one
thread, so the same rows give the same choice.

Cost: each fold fits every candidate once (three origins up to :data:`FEW_FOLDS_ABOVE`
training rows, two above); a recipe whose confidence side cannot change the label (no
class-name evidence, no prior term, one-SVM calibration) is scored with ``calibration="none"``:
the same labels (argmax of the SVM decisions) without the out-of-fold refits. Measured on 5,000
VOCs in docs/model-quality.md ("Recipe selection", "Time budget"), where the three regimes the
selection was checked on are reported.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np

from voc.classify.linear import DEFAULT_PARAMS, LinearVOCClassifier
from voc.tokenize import KiwiTokenizer

__all__ = [
    "Recipe",
    "RECIPES",
    "CANDIDATES",
    "BASELINE",
    "FEW_FOLDS_ABOVE",
    "WORST_MONTH_TOLERANCE",
    "MIN_MONTH_WEIGHT",
    "BOOTSTRAP_ROUNDS",
    "group_weights",
    "Fold",
    "CandidateScore",
    "Selection",
    "rolling_origin_folds",
    "score_recipes",
    "choose",
    "select_recipe",
    "recipe",
    "selection_summary",
    "selection_lines",
]

BASELINE = "anchor"
"""The production recipe (the model the production system runs), which no selected recipe may be
worse than."""

WORST_MONTH_TOLERANCE = 0.05
"""Largest drop (accuracy, 0–1) of a candidate's worst test month below the baseline's worst
month that the selection accepts. Months count when they hold at least
:data:`MIN_MONTH_WEIGHT` complaints (a mass complaint counting once)."""

MIN_MONTH_WEIGHT = 5.0
"""Complaints (group-weighted) a test month needs to count in the worst-month guard."""

BOOTSTRAP_ROUNDS = 200
"""Cluster-bootstrap resamples for the standard errors of the one-standard-error rule."""

FEW_FOLDS_ABOVE = 2_000
"""Training rows above which :func:`select_recipe` uses two origins instead of three: the test
blocks still hold the last 30 % of the rows, with one refit per recipe fewer (5,000 VOCs within
the time budget of docs/model-quality.md, "Time budget")."""


@dataclass(frozen=True)
class Recipe:
    """A named parameter set of :class:`~voc.classify.linear.LinearVOCClassifier`.

    Attributes
    ----------
    name
        Key in :data:`RECIPES` (also what ``meta.json`` records).
    description
        One line: what differs from the default or the anchor.
    params
        Keyword arguments of ``LinearVOCClassifier`` (``{}`` = its defaults = the anchor).
    """

    name: str
    description: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def make(self, tokenizer: KiwiTokenizer | None = None, *, seed: int = 0) -> LinearVOCClassifier:
        """An unfitted classifier of this recipe (``random_state=seed``)."""
        return LinearVOCClassifier(tokenizer, random_state=seed, **dict(self.params))

    def scoring_params(self) -> dict[str, Any]:
        """Parameters that give this recipe's *labels* at the least cost: ``calibration="none"``
        when the calibration only changes the confidence (``temperature``/``top1`` without
        class-name evidence or a prior term: the label is then the argmax of the one SVM's
        decisions either way). Other recipes are scored as they are."""
        full = {**LinearVOCClassifier().get_params(), **dict(self.params)}
        full.pop("tokenizer", None)
        full.pop("random_state", None)
        if full["calibration"] in ("temperature", "top1") and not full["name_prior"] and not full["prior_correction"]:
            full["calibration"] = "none"
        return full


def _default(**changes: Any) -> dict[str, Any]:
    return {**DEFAULT_PARAMS, **changes}


_CHARS = {"char_ngrams": 10_000, "char_ngram_range": (2, 3)}
_PLACES = {"skip_addresses": True, "place_weight": True}  # docs/model-quality.md, "Place names as evidence"

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("default", "DEFAULT_PARAMS: one SVM, class-name evidence, recency weights, top-1 confidence",
               _default()),
        Recipe("anchor", "production recipe: LinearSVC(C=1, balanced) in CalibratedClassifierCV(cv=3)", {}),
        Recipe("default_no_names", "default without class-name evidence", _default(name_prior=False)),
        Recipe("no_names_balanced", "default without class-name evidence, class_weight='balanced'",
               _default(name_prior=False, class_weight="balanced")),
        Recipe("no_names_no_recency", "default without class-name evidence and without recency weights",
               _default(name_prior=False, recency_half_life_days=None)),
        Recipe("default_no_recency", "default without recency weights", _default(recency_half_life_days=None)),
        Recipe("default_recent", "default with a one-year recency half-life (registration-time text)",
               _default(recency_half_life_days=365.0)),
        Recipe("default_balanced", "default with class_weight='balanced'", _default(class_weight="balanced")),
        Recipe("no_names_chars", "default without class-name evidence, + character 2–3-grams (10k)",
               _default(name_prior=False, **_CHARS)),
        Recipe("places", "default; names followed by a digit are addresses, 동/읍/면 class names weighted apart",
               _default(**_PLACES)),
        Recipe("places_recent", "places with a one-year recency half-life",
               _default(recency_half_life_days=365.0, **_PLACES)),
        Recipe("places_recent_sqrt", "places_recent with class weights (n/n_k)^½",
               _default(recency_half_life_days=365.0, class_weight="sqrt", **_PLACES)),
    )
}
"""Every named recipe (:func:`recipe` looks one up)."""

CANDIDATES: tuple[str, ...] = (
    "places_recent_sqrt",
    "default",
    "anchor",
    "default_no_names",
    "no_names_balanced",
    "no_names_chars",
)
"""The recipes :func:`select_recipe` compares by default, in preference order (the
one-standard-error rule keeps the earliest candidate within the noise of the best): the default
with addresses and place names read as weaker evidence, a one-year recency half-life and √
class weights (best on the temporal splits with and without the reply: docs/model-quality.md,
"Place names as evidence"), the default, the baseline, the default without class-name evidence
(with and without balanced class weights), and character n-grams (docs/model-quality.md,
"Recipe selection", gives each one's reason and what was left out). ``default_recent`` left the
list: with the reply it chose a month-losing recipe on fold noise (docs/model-quality.md,
"Selection month by month")."""


def recipe(name: str) -> Recipe:
    """The recipe called ``name``.

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones).
    """
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}") from None


# --------------------------------------------------------------------------------------------
# rolling-origin folds


@dataclass(frozen=True)
class Fold:
    """One rolling-origin fold: ``train`` and ``test`` are row indices (ints) into the rows
    given to :func:`rolling_origin_folds`; the test rows were registered in months ``origin`` …
    ``until`` ("YYYY-MM"), every training row before ``origin``."""

    origin: str
    until: str
    train: np.ndarray
    test: np.ndarray

    def describe(self) -> dict[str, Any]:
        """JSON-ready ``{origin, until, n_train, n_test}``."""
        return {"origin": self.origin, "until": self.until, "n_train": len(self.train), "n_test": len(self.test)}


def _month_number(t: Any, row: int) -> int:
    """Months since year 0 of a date-like value (``date``, ``datetime``, ``numpy.datetime64``,
    ISO string)."""
    if isinstance(t, (date, datetime)):
        return t.year * 12 + t.month - 1
    if isinstance(t, np.datetime64) and not np.isnat(t):
        return int(t.astype("datetime64[M]").astype(np.int64)) + 1970 * 12
    if isinstance(t, str) and len(t) >= 7 and t[4] == "-" and t[:4].isdigit() and t[5:7].isdigit():
        return int(t[:4]) * 12 + int(t[5:7]) - 1
    raise ValueError(f"row {row + 1}: field 'created_at' is not a date: {t!r}")


def _month_name(m: int) -> str:
    return f"{m // 12:04d}-{m % 12 + 1:02d}"


def rolling_origin_folds(
    times: Sequence[Any],
    labels: Sequence[str],
    *,
    n_folds: int = 3,
    test_share: float = 0.3,
    min_train: int = 30,
    min_test: int = 5,
) -> list[Fold]:
    """Rolling-origin (expanding-window) folds over whole months.

    Origin j (j = 0 … ``n_folds`` − 1) is the month boundary nearest to row
    N · (1 − ``test_share`` + j · ``test_share`` / ``n_folds``) in time order (the later one on a
    tie); fold j trains on the rows before origin j and tests on the rows from origin j up to
    origin j + 1 (the last fold: to the newest month). So the test blocks are consecutive whole
    months, each about ``test_share`` / ``n_folds`` of the rows, and every row is tested at most
    once; origins that coincide are merged.

    Parameters
    ----------
    times
        N registration dates (``date``/``datetime``/``numpy.datetime64`` or ``"YYYY-MM…"``).
    labels
        N labels; a fold whose training rows hold fewer than two classes is dropped.
    n_folds, test_share
        Number of origins and share of the rows in the test blocks together (0 < share < 1).
    min_train, min_test
        Folds with fewer training or test rows are dropped.

    Returns
    -------
    list[Fold]
        In time order; fewer than ``n_folds`` (possibly none) when months are few (all rows in
        one month give no fold) or the rows are too few.

    Raises
    ------
    ValueError
        Lengths differ, a time is not a date (names the row), ``n_folds`` < 1 or ``test_share``
        outside (0, 1).
    """
    if len(times) != len(labels):
        raise ValueError(f"times ({len(times)}) and labels ({len(labels)}) differ in length")
    if n_folds < 1:
        raise ValueError(f"n_folds must be ≥ 1, got {n_folds}")
    if not 0 < test_share < 1:
        raise ValueError(f"test_share must lie in (0, 1), got {test_share}")
    n = len(times)
    if n == 0:
        return []
    months = np.array([_month_number(t, i) for i, t in enumerate(times)], dtype=np.int64)
    y = np.asarray([str(v) for v in labels], dtype=object)
    uniq = np.unique(months)
    before = np.searchsorted(np.sort(months), uniq, side="left")  # rows registered before each month
    origins: list[int] = []
    for j in range(n_folds):
        target = n * (1.0 - test_share + j * test_share / n_folds)
        gap = np.abs(before - target)
        o = int(uniq[np.nonzero(gap == gap.min())[0][-1]])
        if o not in origins:
            origins.append(o)
    folds: list[Fold] = []
    for j, o in enumerate(origins):
        end = origins[j + 1] if j + 1 < len(origins) else int(uniq[-1]) + 1
        tr = np.nonzero(months < o)[0]
        te = np.nonzero((months >= o) & (months < end))[0]
        if len(tr) < min_train or len(te) < min_test or len(set(y[tr].tolist())) < 2:
            continue
        folds.append(Fold(_month_name(o), _month_name(int(months[te].max())), tr, te))
    return folds


# --------------------------------------------------------------------------------------------
# scoring and choosing


@dataclass(frozen=True)
class CandidateScore:
    """A recipe's scores on the pooled test rows of the folds (accuracy, macro-F1 in [0, 1],
    group-weighted: :func:`group_weights`), per fold (``folds``: ``{origin, until, n_train,
    n_test, accuracy, macro_f1}``), the seconds its fits took, the accuracy of its worst test
    month (``worst_month``, ``None`` when no month holds :data:`MIN_MONTH_WEIGHT` complaints)
    and ``worst_month_name`` ("YYYY-MM"), and the cluster-bootstrap standard errors of the two
    scores (0 when not measured)."""

    recipe: str
    accuracy: float
    macro_f1: float
    folds: tuple[dict[str, Any], ...] = ()
    seconds: float = 0.0
    worst_month: float | None = None
    worst_month_name: str | None = None
    se_accuracy: float = 0.0
    se_macro_f1: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "worst_month": self.worst_month,
            "worst_month_name": self.worst_month_name,
            "se_accuracy": round(self.se_accuracy, 4),
            "se_macro_f1": round(self.se_macro_f1, 4),
            "folds": [dict(f) for f in self.folds],
            "seconds": round(self.seconds, 1),
        }


@dataclass(frozen=True)
class Selection:
    """What :func:`select_recipe` did.

    Attributes
    ----------
    chosen
        The recipe name to train with.
    reason
        One line saying why (scores of the choice and of the baseline, or why no folds ran).
    baseline
        ``anchor``.
    candidates
        Every candidate's scores, in candidate order (empty when no fold could be built).
    folds
        ``{origin, until, n_train, n_test}`` per fold.
    seconds
        Wall time of the selection.
    """

    chosen: str
    reason: str
    baseline: str = BASELINE
    candidates: tuple[CandidateScore, ...] = ()
    folds: tuple[dict[str, Any], ...] = ()
    seconds: float = 0.0

    def recipe(self) -> Recipe:
        """The chosen :class:`Recipe`."""
        return recipe(self.chosen)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record for ``meta.json`` and run summaries."""
        return {
            "chosen": self.chosen,
            "reason": self.reason,
            "baseline": self.baseline,
            "rule": (
                "earliest candidate within one standard error of the best (highest macro-F1, then accuracy) "
                "among recipes not below the baseline on both and whose worst month is at most "
                f"{WORST_MONTH_TOLERANCE:.0%} below the baseline's; mass complaints count once"
            ),
            "folds": [dict(f) for f in self.folds],
            "candidates": [c.to_dict() for c in self.candidates],
            "seconds": round(self.seconds, 1),
        }


def group_weights(groups: Sequence[str | None] | None, n: int) -> np.ndarray:
    """``n`` row weights: 1 / (size of the row's near-duplicate group), 1 for a row alone.

    Parameters
    ----------
    groups
        ``n`` group ids (:func:`voc.groups.near_duplicate_groups`; None = alone) or None (every
        row alone).
    n
        Number of rows.

    Raises
    ------
    ValueError
        ``groups`` not of length ``n``.
    """
    from voc.pooling import group_index

    w = np.ones(n)
    for rows in group_index(groups, n):
        w[rows] = 1.0 / len(rows)
    return w


def _scores(y_true: Sequence[str], y_pred: Sequence[str], weights: np.ndarray | None = None) -> tuple[float, float]:
    """(accuracy, macro-F1 over the classes present in ``y_true``), as ``voc.metrics``, each row
    counted with its weight (default 1)."""
    from sklearn.metrics import f1_score

    if len(y_true) == 0:
        return 0.0, 0.0
    yt, yp = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    w = np.ones(len(yt)) if weights is None else np.asarray(weights, dtype=float)
    present = sorted(set(yt.tolist()))
    acc = float(np.sum(w * (yt == yp)) / np.sum(w))
    return acc, float(f1_score(yt, yp, labels=present, average="macro", sample_weight=w, zero_division=0))


def _worst_month(months: np.ndarray, correct: np.ndarray, w: np.ndarray) -> tuple[float | None, str | None]:
    """(accuracy, "YYYY-MM") of the test month with the lowest weighted accuracy among those
    with at least :data:`MIN_MONTH_WEIGHT` weight, or (None, None)."""
    worst: tuple[float | None, str | None] = (None, None)
    for m in np.unique(months):
        sel = months == m
        if w[sel].sum() + 1e-9 < MIN_MONTH_WEIGHT:
            continue
        acc = float(np.sum(w[sel] * correct[sel]) / np.sum(w[sel]))
        if worst[0] is None or acc < worst[0]:
            worst = (acc, _month_name(int(m)))
    return worst


def _bootstrap_se(
    truth: Sequence[str], pred: Sequence[str], w: np.ndarray, clusters: Sequence[str], *, seed: int
) -> tuple[float, float]:
    """Cluster-bootstrap standard errors of (accuracy, macro-F1): :data:`BOOTSTRAP_ROUNDS`
    resamples of the clusters (a near-duplicate group, or a row alone) with replacement."""
    keys = sorted(set(clusters))
    if len(keys) < 2:
        return 0.0, 0.0
    index = {k: i for i, k in enumerate(keys)}
    cid = np.array([index[c] for c in clusters])
    members = [np.nonzero(cid == i)[0] for i in range(len(keys))]
    rng = np.random.default_rng(seed)
    yt, yp = np.asarray(truth, dtype=object), np.asarray(pred, dtype=object)
    accs, f1s = [], []
    for _ in range(BOOTSTRAP_ROUNDS):
        rows = np.concatenate([members[i] for i in rng.integers(0, len(keys), len(keys))])
        a, f = _scores(yt[rows].tolist(), yp[rows].tolist(), w[rows])
        accs.append(a)
        f1s.append(f)
    return float(np.std(accs, ddof=1)), float(np.std(f1s, ddof=1))


def score_recipes(
    texts: Sequence[str],
    labels: Sequence[str],
    times: Sequence[Any],
    folds: Sequence[Fold],
    *,
    tokens: Sequence[Sequence[str]],
    recipes: Sequence[str] = CANDIDATES,
    seed: int = 0,
    progress: Any = None,
    groups: Sequence[str | None] | None = None,
) -> list[CandidateScore]:
    """Fit each recipe on each fold's training rows and score its labels on the test rows.

    Parameters
    ----------
    texts, labels, times, tokens
        N ``all_text`` strings, N labels, N dates and the N texts' Kiwi model tokens (computed
        once by the caller; every recipe and fold reads them).
    folds
        From :func:`rolling_origin_folds` over ``times``.
    recipes
        Names in :data:`RECIPES`.
    seed
        ``random_state`` of every fit (and of the bootstrap).
    progress
        Optional callable receiving one line per recipe.
    groups
        N near-duplicate group ids (None = alone), or None: test rows are weighted by
        :func:`group_weights` and resampled by group for the standard errors.

    Returns
    -------
    list[CandidateScore]
        One per recipe, in ``recipes`` order; group-weighted scores over the pooled test rows of
        all folds, the worst test month and the standard errors.

    Raises
    ------
    ValueError
        Lengths differ or an unknown recipe.
    """
    n = len(texts)
    if not (len(labels) == len(times) == len(tokens) == n):
        raise ValueError(f"texts ({n}), labels ({len(labels)}), times ({len(times)}) and tokens ({len(tokens)}) differ in length")
    specs = [recipe(r) for r in recipes]
    y = [str(v) for v in labels]
    weights = group_weights(groups, n)
    months = np.array([_month_number(t, i) for i, t in enumerate(times)], dtype=np.int64)
    test_rows = [int(i) for f in folds for i in f.test.tolist()]
    clusters = [f"row:{i}" if groups is None or groups[i] is None else str(groups[i]) for i in test_rows]
    out: list[CandidateScore] = []
    for spec in specs:
        t0 = time.perf_counter()
        params = spec.scoring_params()
        truth: list[str] = []
        pred: list[str] = []
        per_fold: list[dict[str, Any]] = []
        for f in folds:
            tr, te = f.train.tolist(), f.test.tolist()
            clf = LinearVOCClassifier(None, random_state=seed, **params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.fit([texts[i] for i in tr], [y[i] for i in tr], tokens=[tokens[i] for i in tr],
                        times=[times[i] for i in tr])
                got = list(clf.predict_tags([texts[i] for i in te], tokens=[tokens[i] for i in te]).labels)
            want = [y[i] for i in te]
            acc, f1 = _scores(want, got, weights[te])
            per_fold.append({**f.describe(), "accuracy": round(acc, 4), "macro_f1": round(f1, 4)})
            truth += want
            pred += got
        w = weights[test_rows]
        acc, f1 = _scores(truth, pred, w)
        correct = np.asarray(truth, dtype=object) == np.asarray(pred, dtype=object)
        worst, worst_name = _worst_month(months[test_rows], correct, w)
        se_acc, se_f1 = _bootstrap_se(truth, pred, w, clusters, seed=seed)
        out.append(CandidateScore(spec.name, acc, f1, tuple(per_fold), time.perf_counter() - t0,
                                  worst, worst_name, se_acc, se_f1))
        if progress is not None:
            shown = f"; worst month {worst_name} {worst:.3f}" if worst is not None else ""
            progress(f"recipe {spec.name}: accuracy {acc:.3f}, macro-F1 {f1:.3f}{shown}")
    return out


_EPS = 1e-9  # scores closer than this are ties (they come from the same pooled rows)


def choose(scores: Sequence[CandidateScore], *, baseline: str = BASELINE) -> tuple[str, str]:
    """The selection rule (module docstring, step 3), as ``(recipe name, reason)``.

    Candidates without a worst month or standard errors (0) are judged on the pooled scores
    alone, as before those were measured.

    Raises
    ------
    ValueError
        ``baseline`` is not among ``scores``.
    """
    base = next((s for s in scores if s.recipe == baseline), None)
    if base is None:
        raise ValueError(f"the baseline recipe {baseline!r} must be among the candidates, got {[s.recipe for s in scores]}")

    def month_ok(s: CandidateScore) -> bool:
        if s.worst_month is None or base.worst_month is None:
            return True
        return s.worst_month >= base.worst_month - WORST_MONTH_TOLERANCE - _EPS

    ok = [s for s in scores if s.accuracy >= base.accuracy - _EPS and s.macro_f1 >= base.macro_f1 - _EPS and month_ok(s)]
    best = ok[0]
    for s in ok[1:]:  # strictly better only: earlier candidates win ties
        if s.macro_f1 > best.macro_f1 + _EPS or (abs(s.macro_f1 - best.macro_f1) <= _EPS and s.accuracy > best.accuracy + _EPS):
            best = s
    # one-standard-error rule: the earliest candidate within the best's noise
    chosen = next(
        s for s in ok
        if s.macro_f1 >= best.macro_f1 - best.se_macro_f1 - _EPS and s.accuracy >= best.accuracy - best.se_accuracy - _EPS
    )
    shown = f"macro-F1 {chosen.macro_f1:.3f}, accuracy {chosen.accuracy:.3f}"
    if chosen is not best:
        shown += (
            f"; within one standard error of {best.recipe} ({best.macro_f1:.3f} ± {best.se_macro_f1:.3f}, "
            f"{best.accuracy:.3f} ± {best.se_accuracy:.3f})"
        )
    dropped = [s.recipe for s in scores if s not in ok and s.accuracy >= base.accuracy - _EPS and s.macro_f1 >= base.macro_f1 - _EPS]
    if dropped:
        shown += f"; worst month too far below {baseline}'s: {', '.join(dropped)}"
    if chosen.recipe == baseline:
        others = [s.recipe for s in scores if s.recipe != baseline]
        return baseline, f"{baseline} ({shown}): no other candidate ({', '.join(others)}) ties or beats it on both"
    return chosen.recipe, f"{chosen.recipe} ({shown}) vs {baseline} (macro-F1 {base.macro_f1:.3f}, accuracy {base.accuracy:.3f})"


def select_recipe(
    texts: Sequence[str],
    labels: Sequence[str],
    times: Sequence[Any],
    *,
    tokens: Sequence[Sequence[str]],
    recipes: Sequence[str] = CANDIDATES,
    baseline: str = BASELINE,
    fallback: str = "default",
    n_folds: int | None = None,
    test_share: float = 0.3,
    seed: int = 0,
    progress: Any = None,
    groups: Sequence[str | None] | None = None,
) -> Selection:
    """Choose the recipe for one dimension on the customer's own labelled training rows.

    Rolling-origin folds over ``times`` (:func:`rolling_origin_folds`), every recipe scored
    on them (:func:`score_recipes`), the rule of :func:`choose`.

    Parameters
    ----------
    texts, labels, times, tokens
        The N training rows (``all_text``, ``"major>minor"`` label, registration date, Kiwi
        model tokens). Pass only training rows: the held-out rows of the champion gate must not
        take part.
    recipes
        Candidate names (must include ``baseline``).
    fallback
        The recipe kept when no fold can be built (all rows in one month, too few rows); the
        reason says so.
    n_folds
        Origins; default 3, or 2 above :data:`FEW_FOLDS_ABOVE` rows.
    test_share, seed, progress, groups
        As :func:`rolling_origin_folds` and :func:`score_recipes` (``groups``: N near-duplicate
        group ids of the rows, so a mass complaint counts once).

    Returns
    -------
    Selection

    Raises
    ------
    ValueError
        Lengths differ, a bad date (names the row), an unknown recipe, or ``baseline`` not among
        ``recipes``.
    """
    for r in (*recipes, fallback):
        recipe(r)
    if baseline not in recipes:
        raise ValueError(f"the baseline recipe {baseline!r} must be among the candidates {list(recipes)}")
    t0 = time.perf_counter()
    if n_folds is None:
        n_folds = 3 if len(texts) <= FEW_FOLDS_ABOVE else 2
    folds = rolling_origin_folds(times, labels, n_folds=n_folds, test_share=test_share)
    if not folds:
        months = len({_month_number(t, i) for i, t in enumerate(times)})
        return Selection(
            fallback,
            f"{fallback}: too little history for temporal folds ({len(texts)} rows over {months} month(s)); not compared",
            baseline,
            seconds=time.perf_counter() - t0,
        )
    scores = score_recipes(texts, labels, times, folds, tokens=tokens, recipes=recipes, seed=seed, progress=progress,
                           groups=groups)
    chosen, reason = choose(scores, baseline=baseline)
    n_test = sum(len(f.test) for f in folds)
    reason += f"; {len(folds)} temporal folds, {n_test} test VOCs from {folds[0].origin} to {folds[-1].until}"
    return Selection(chosen, reason, baseline, tuple(scores), tuple(f.describe() for f in folds), time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# reporting


def selection_summary(selection: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Compact per-dimension view of ``TrainReport.selection`` (``{dimension:
    Selection.to_dict()}``) for run summaries: ``{dimension: {recipe, reason, candidates:
    {name: {macro_f1, accuracy}}}}`` (scores rounded to 4 decimals)."""
    return {
        dim: {
            "recipe": s["chosen"],
            "reason": s["reason"],
            "candidates": {
                c["recipe"]: {"macro_f1": round(c["macro_f1"], 4), "accuracy": round(c["accuracy"], 4)}
                for c in s.get("candidates", [])
            },
        }
        for dim, s in selection.items()
    }


def selection_lines(by_variant: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """Markdown bullets, one per variant × dimension, from ``{variant: selection_summary(…)}``:
    the recipe chosen and every candidate's macro-F1 / accuracy on the temporal folds."""
    lines = []
    for variant, dims in by_variant.items():
        for dim, s in dims.items():
            scores = ", ".join(f"{n} {v['macro_f1']:.3f}/{v['accuracy']:.3f}" for n, v in s["candidates"].items())
            detail = f"macro-F1/accuracy on temporal folds: {scores}" if scores else s["reason"]
            lines.append(f"- recipe ({variant}, {dim}): **{s['recipe']}** — {detail}")
    return lines
