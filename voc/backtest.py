"""Backtest: train on one VOC frame, tag another, measure (the core of ``voc backtest``).

The usual use is temporal: train on the months before a cut, test on a later block, which is
how a model meets data in production (new wording, new classes, reorganised departments).

Labels (``label``)
------------------
* ``subject_minor``: the reviewed subject minor alone (the stable name across reorganisations);
* ``subject``: ``"major>minor"`` as reviewed;
* ``work``: ``"work_major>work_minor"`` as reviewed.

Rows without the label are left out of both sides (counted in ``n_train_unlabelled`` /
``n_test_unlabelled``).

Training follows the product (:func:`voc.tagger.train_tagger`), with all labelled rows of the
training frame and no held-out split: the dimension's taxonomy is derived from the training
labels (:func:`voc.taxonomy.derive_taxonomy`, the pair seen last is the active row of a minor),
training labels are mapped to their active row (:func:`voc.tagger.canonical_labels`: a 과 moved
to another 국 is one class, named by its latest 국), and the classifier of ``model`` is fitted.
The test truth is taken as it is, so a test label the training frame never had (a new class, or
a new major after a reorganisation) counts as an error; ``unseen_label_share`` says how much of
the test set that is.

Recipe (``model="linear"``): with ``select=True`` the recipe is chosen on the training frame's
own history as ``voc train`` does (:func:`voc.recipes.select_recipe`: rolling-origin folds over
the training rows, never worse than ``anchor`` there); ``recipe=NAME`` trains one named recipe of
:data:`voc.recipes.RECIPES`; otherwise the default. The result names the recipe and, after a
selection, every candidate's fold scores.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from voc.classify.base import Tags
from voc.metrics import classification_metrics
from voc.model_kinds import ModelKind, TrainRequest, UnknownKindError, kind_names, model_kind
from voc.recipes import BASELINE, CANDIDATES, RECIPES, select_recipe
from voc.taxonomy import Taxonomy, derive_taxonomy, split_label
from voc.tokenize import KiwiTokenizer

__all__ = ["LABELS", "MODELS", "truth_labels", "backtest", "backtest_labels", "BacktestError"]

LABELS: tuple[str, ...] = ("subject_minor", "subject", "work")
MODELS: tuple[str, ...] = kind_names()
"""The model kinds a backtest accepts: the registered ones (:mod:`voc.model_kinds`)."""


class BacktestError(ValueError):
    """The backtest cannot run: unknown label/model, no labelled rows, fewer than two classes,
    or the KoBERT trainer is not installed."""


def _dimension(label: str) -> str:
    return "work" if label == "work" else "subject"


def truth_labels(df: pl.DataFrame, label: str) -> list[str | None]:
    """The reviewed label of each row of a validated VOC frame (N values, None where missing).

    Parameters
    ----------
    df
        ``N × C`` frame from :func:`voc.schema.validate_voc_frame` (``reviewed_*`` columns).
    label
        One of :data:`LABELS` (module docstring).

    Raises
    ------
    BacktestError
        Unknown ``label``.
    """
    from voc.tagger import labels_of

    if label not in LABELS:
        raise BacktestError(f"label must be one of {LABELS}, got {label!r}")
    if label == "subject_minor":
        col = "reviewed_subject_minor"
        if col not in df.columns:
            return [None] * df.height
        return [str(v).strip() if v is not None and str(v).strip() else None for v in df[col].to_list()]
    return labels_of(df, _dimension(label))


def _project(labels: list[str], label: str) -> list[str]:
    """Model labels (``"major>minor"``) → the label kind under test."""
    return [split_label(lab)[1] for lab in labels] if label == "subject_minor" else list(labels)


def backtest(
    train_df: pl.DataFrame,
    test_df: pl.DataFrame,
    *,
    label: str = "subject_minor",
    model: str = "linear",
    use_reply: bool = True,
    seed: int = 0,
    tokenizer: KiwiTokenizer | None = None,
    classifier_factory: Callable[[Taxonomy, str, KiwiTokenizer, int], Any] | None = None,
    canonicalise: bool = True,
    kobert_options: Mapping[str, Any] | None = None,
    select: bool = False,
    recipe: str | None = None,
    candidates: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Train on ``train_df``'s labelled rows, tag ``test_df``'s, return the metrics.

    Parameters
    ----------
    train_df, test_df
        Validated VOC frames (``N_A × C`` and ``N_B × C``).
    label
        ``subject_minor`` | ``subject`` | ``work`` (module docstring).
    model
        ``linear`` (default CPU model), ``hybrid`` (keywords vs linear), ``anchor`` (the
        production recipe), ``kobert`` (``voc.kobert_training.train_kobert_tagger``).
    use_reply
        Whether ``all_text`` includes the reply (False: registration-time text).
    seed
        Seed of the classifier.
    tokenizer
        Kiwi tokenizer to use (a caching subclass speeds up repeated backtests).
    classifier_factory
        ``(taxonomy, dimension, tokenizer, seed) -> unfitted classifier`` replacing ``model``'s
        recipe (experiments); ``model`` is then only reported.
    canonicalise
        Map training labels to their taxonomy's active row (the product does; False trains on the
        labels as reviewed, for experiments).
    kobert_options
        Extra keyword arguments for ``train_kobert_tagger`` (``epochs``, ``batch_size``, …).
    select
        ``linear`` only: choose the recipe on the training frame's history
        (:func:`voc.recipes.select_recipe`), as training does.
    recipe
        ``linear`` only: train this named recipe (:data:`voc.recipes.RECIPES`) instead.
    candidates
        The recipes a selection compares (default :data:`voc.recipes.CANDIDATES`; must include
        ``anchor``).

    Returns
    -------
    dict
        ``label, model, recipe, selection, use_reply, seed, n_train, n_test, n_train_unlabelled,
        n_test_unlabelled, n_classes_train, accuracy, macro_f1, weighted_f1, per_class
        {label: {precision, recall, f1, support}}, unseen_label_share, ece (15 bins),
        review_capture {"0.1", "0.2", "0.3"}, review_capture_bound, error_auroc,
        review_threshold, review_share`` (JSON-serialisable), see
        :func:`voc.metrics.classification_metrics`. ``recipe`` is the recipe trained (None for
        ``hybrid``/``kobert``/a ``classifier_factory``), ``selection`` the
        :meth:`voc.recipes.Selection.to_dict` record of a selection (else None).

    Raises
    ------
    BacktestError
        Unknown ``label``/``model``/``recipe``; ``select``/``recipe`` with a model other than
        ``linear``; no labelled test rows; fewer than two classes in training; ``kobert``
        without its trainer.
    """
    return backtest_labels(
        train_df,
        test_df,
        labels=(label,),
        model=model,
        use_reply=use_reply,
        seed=seed,
        tokenizer=tokenizer,
        classifier_factory=classifier_factory,
        canonicalise=canonicalise,
        kobert_options=kobert_options,
        select=select,
        recipe=recipe,
        candidates=candidates,
    )[label]


def backtest_labels(
    train_df: pl.DataFrame,
    test_df: pl.DataFrame,
    *,
    labels: Sequence[str] = ("subject_minor", "subject"),
    model: str = "linear",
    use_reply: bool = True,
    seed: int = 0,
    tokenizer: KiwiTokenizer | None = None,
    classifier_factory: Callable[[Taxonomy, str, KiwiTokenizer, int], Any] | None = None,
    canonicalise: bool = True,
    kobert_options: Mapping[str, Any] | None = None,
    select: bool = False,
    recipe: str | None = None,
    candidates: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """:func:`backtest` for several labels, fitting one model per dimension (``subject_minor``
    and ``subject`` share the subject model: the minor is read off its ``"major>minor"``).

    Returns ``{label: backtest result}``; parameters and errors as :func:`backtest`.
    """
    try:
        kind = model_kind(model)
    except UnknownKindError:
        raise BacktestError(f"model must be one of {kind_names()}, got {model!r}") from None
    for lab in labels:
        if lab not in LABELS:
            raise BacktestError(f"label must be one of {LABELS}, got {lab!r}")
    if (select or recipe is not None) and (not kind.recipes or classifier_factory is not None):
        with_recipes = " or ".join(repr(k) for k in kind_names() if model_kind(k).recipes)
        raise BacktestError(f"recipe selection and --recipe apply to model {with_recipes}, got model {model!r}")
    for r in (recipe, *(candidates or ())):
        if r is not None and r not in RECIPES:
            raise BacktestError(f"recipe must be one of {', '.join(RECIPES)}, got {r!r}")
    if candidates is not None and BASELINE not in candidates:
        raise BacktestError(f"the candidates must include the baseline {BASELINE!r}, got {list(candidates)}")
    tok = tokenizer or KiwiTokenizer()
    from voc.groups import history_vectorizer

    history = history_vectorizer(train_df)  # groups of the test months (_month_view), fitted once
    out: dict[str, dict[str, Any]] = {}
    fitted: dict[tuple[str, tuple[int, ...], tuple[int, ...]], tuple[Tags, str | None, dict[str, Any] | None]] = {}
    for label in labels:
        dim = _dimension(label)
        y_train_all = truth_labels(train_df, label)
        y_test_all = truth_labels(test_df, label)
        tr_idx = [i for i, v in enumerate(y_train_all) if v]
        te_idx = [i for i, v in enumerate(y_test_all) if v]
        n_classes = len({y_train_all[i] for i in tr_idx})
        if n_classes < 2:
            raise BacktestError(
                f"training CSV has {len(tr_idx)} rows labelled {label!r} in {n_classes} class(es);"
                " need at least 2 classes"
            )
        if not te_idx:
            raise BacktestError(f"test CSV has no rows labelled {label!r}")
        key = (dim, tuple(tr_idx), tuple(te_idx))
        if key not in fitted:
            fitted[key] = _fit_and_tag(
                train_df[tr_idx], test_df[te_idx], dim, model=kind, use_reply=use_reply, seed=seed,
                tokenizer=tok, classifier_factory=classifier_factory, canonicalise=canonicalise,
                kobert_options=kobert_options, select=select, recipe=recipe, candidates=candidates,
            )
        tags, used, selection = fitted[key]
        y_train = [str(y_train_all[i]) for i in tr_idx]
        y_test = [str(y_test_all[i]) for i in te_idx]
        pred = _project(list(tags.labels), label)
        conf = np.clip(np.asarray(tags.confidence, dtype=float), 0.0, 1.0)
        m = classification_metrics(y_test, pred, conf, train_labels=y_train)
        out[label] = {
            "label": label,
            "model": model,
            "recipe": used,
            "selection": selection,
            "use_reply": use_reply,
            "seed": seed,
            "n_train": len(tr_idx),
            "n_test": len(te_idx),
            "n_train_unlabelled": train_df.height - len(tr_idx),
            "n_test_unlabelled": test_df.height - len(te_idx),
            "n_classes_train": n_classes,
            "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"],
            "weighted_f1": m["weighted_f1"],
            "per_class": m["per_class"],
            "unseen_label_share": m["unseen_label_share"],
            "ece": m["ece"],
            "review_capture": m["review_capture"],
            "review_capture_bound": m["review_capture_bound"],
            "error_auroc": m["error_auroc"],
            "review_threshold": m["review_threshold"],
            "review_share": m["review_share"],
            **_month_view(test_df[te_idx], y_test, pred, history),
        }
    return out


def _month_view(test: pl.DataFrame, y_test: Sequence[str], pred: Sequence[str], vectorizer: Any) -> dict[str, Any]:
    """Per test month ``{month: {n, accuracy}}``, the worst month's accuracy and name (months of at
    least :data:`voc.recipes.MIN_MONTH_WEIGHT` VOCs), and the accuracy with every near-duplicate
    group counted once (``accuracy_groups_once``; :func:`voc.recipes.group_weights`; groups
    found with ``vectorizer``, the training history's :func:`voc.groups.history_vectorizer`)."""
    from voc.groups import near_duplicate_groups
    from voc.recipes import MIN_MONTH_WEIGHT, group_weights

    correct = np.asarray(y_test, dtype=object) == np.asarray(pred, dtype=object)
    months = test["created_at"].dt.strftime("%Y-%m").to_list()
    by_month: dict[str, dict[str, Any]] = {}
    for m in sorted(set(months)):
        sel = np.array([x == m for x in months])
        by_month[m] = {"n": int(sel.sum()), "accuracy": round(float(correct[sel].mean()), 4)}
    counted = {m: v for m, v in by_month.items() if v["n"] >= MIN_MONTH_WEIGHT}
    worst = min(counted, key=lambda m: counted[m]["accuracy"]) if counted else None
    w = group_weights(near_duplicate_groups(test, vectorizer=vectorizer).to_list(), test.height)
    return {
        "by_month": by_month,
        "worst_month": counted[worst]["accuracy"] if worst else None,
        "worst_month_name": worst,
        "accuracy_groups_once": round(float(np.sum(w * correct) / np.sum(w)), 4) if test.height else 0.0,
    }


def _fit_and_tag(
    train: pl.DataFrame,
    test: pl.DataFrame,
    dim: str,
    *,
    model: ModelKind | str,
    use_reply: bool,
    seed: int,
    tokenizer: KiwiTokenizer,
    classifier_factory: Callable[[Taxonomy, str, KiwiTokenizer, int], Any] | None,
    canonicalise: bool,
    kobert_options: Mapping[str, Any] | None,
    select: bool = False,
    recipe: str | None = None,
    candidates: Sequence[str] | None = None,
) -> tuple[Tags, str | None, dict[str, Any] | None]:
    """Fit on all rows of ``train`` (all labelled); return the tags of ``test`` (N_B rows), the
    recipe trained (None when not a named recipe) and the selection record (None without one).
    ``model``: the kind (:class:`voc.model_kinds.ModelKind` or its name); a kind without a
    per-dimension classifier (``kobert``) is trained whole (:func:`_tagger_tags`)."""
    from voc.tagger import canonical_labels, frame_texts, labels_of

    kind = model_kind(model) if isinstance(model, str) else model
    tr_texts, _ = frame_texts(train, use_reply=use_reply)
    te_texts, _ = frame_texts(test, use_reply=use_reply)
    if kind.classifier is None and classifier_factory is None:
        return _tagger_tags(kind, train, te_texts, dim, use_reply=use_reply, seed=seed, options=kobert_options or {}), None, None
    pair_labels = [str(lab) for lab in labels_of(train, dim)]
    nouns = tokenizer.keyword_nouns_batch(tr_texts) if kind.taxonomy_keywords else [[] for _ in tr_texts]
    rows = derive_taxonomy(dim, pair_labels, nouns, dates=train["created_at"].to_list())
    taxonomy = Taxonomy(tuple(rows))
    fit_labels = canonical_labels(pair_labels, taxonomy, dim) if canonicalise else pair_labels
    tr_tokens = tokenizer.model_tokens_batch(tr_texts)  # one Kiwi pass for the selection and the fit
    dates = train["created_at"].to_list()
    used = kind.default_recipe if classifier_factory is None else None
    selection: dict[str, Any] | None = None
    if classifier_factory is not None:
        clf = classifier_factory(taxonomy, dim, tokenizer, seed)
    elif recipe is not None or select:
        if select:
            from voc.groups import history_vectorizer, near_duplicate_groups

            vec = history_vectorizer(train)
            sel = select_recipe(tr_texts, [str(v) for v in fit_labels], dates, tokens=tr_tokens, seed=seed,
                                recipes=tuple(candidates or CANDIDATES),
                                groups=near_duplicate_groups(train, vectorizer=vec).to_list())  # a campaign counts once
            selection, recipe = sel.to_dict(), sel.chosen
        used = recipe
        clf = RECIPES[str(recipe)].make(tokenizer, seed=seed)
    else:
        assert kind.classifier is not None  # a kind without one returned through _tagger_tags above
        clf = kind.classifier(taxonomy, dim, tokenizer, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # every DimensionClassifier's fit takes times= (recency weights; others ignore them)
        clf.fit(tr_texts, fit_labels, tokens=tr_tokens, times=dates)
        return clf.predict_tags(te_texts, tokens=tokenizer.model_tokens_batch(te_texts)), used, selection


def _tagger_tags(
    kind: ModelKind, train: pl.DataFrame, texts: list[str], dim: str, *, use_reply: bool, seed: int, options: Mapping[str, Any]
) -> Tags:
    """Tags of ``texts`` for ``dim`` by a whole tagger of ``kind`` (its ``train``) fitted on
    ``train``, with ``dim``'s classes derived from the training labels (``options``: the kind's
    trainer options, e.g. KoBERT's ``epochs``).

    Raises
    ------
    BacktestError
        The kind's trainer is not installed (its ``requirement``).
    """
    from voc.tagger import labels_of
    from voc.taxonomy import default_taxonomy

    rows = derive_taxonomy(dim, labels_of(train, dim), [[] for _ in range(train.height)],
                           dates=train["created_at"].to_list())
    taxonomy = default_taxonomy().replace_dimension(dim, rows)
    try:
        tagger, _report = kind.train(
            TrainRequest(train, taxonomy, version="backtest", use_reply=use_reply, seed=seed, options=dict(options))
        )
    except ImportError as e:
        raise BacktestError(f"model {kind.name!r} needs {kind.requirement or 'an optional dependency'}: {e}") from e
    return tagger.tag(texts)[dim]
