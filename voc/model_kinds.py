"""Model kinds: what a kind name means, registered in one place.

A *model kind* is the name ``VOC_MODEL__KIND``, ``voc train --model``, ``voc backtest --model`` and a
model version's ``meta.json`` (``kind``) carry: ``linear``, ``hybrid``, ``anchor``, ``kobert``. Its
:class:`ModelKind` says how to train a tagger of it, how to save and load one, and — for the CPU
kinds, which hold one classifier per dimension — how to build that classifier. Every user reads
the registry instead of naming kinds:

* :func:`voc.tagger.make_classifier` / :func:`voc.tagger.train_tagger`: ``classifier`` and ``recipes``;
* :mod:`voc.modelstore`: ``save`` and ``load`` (dispatch on ``meta.json``'s ``kind``);
* :mod:`voc.backtest`: ``classifier`` (CPU kinds) or ``train`` (whole-text taggers such as KoBERT);
* ``config.settings.ModelSettings.kind``: validated against :func:`kind_names`;
* the training flow (``flows/train.py``): ``train``, ``settings_options``, ``fallback``,
  ``cpu_runtime``.

Adding a kind = one module with its tagger, trainer, ``save`` and ``load`` (the built-in ones are
in :mod:`voc.builtin_kinds`), plus one :func:`register_kind` call in ``_register_builtin_kinds``
below that names them by import path (:func:`entry`, ``"voc.classify.mykind:train"``). The registry
imports none of its implementations: importing it stays cheap (no scikit-learn, no torch), which
``config.settings`` relies on, and the modules that consult it may implement kinds themselves
without an import cycle.

Pure: no I/O beyond the model directory a ``save``/``load`` is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the registry imports none of the modules it serves
    import polars as pl

    from voc.classify.base import DimensionClassifier
    from voc.tagger import Tagger, TrainReport
    from voc.taxonomy import Taxonomy
    from voc.tokenize import KiwiTokenizer

__all__ = [
    "TrainRequest",
    "ModelKind",
    "ClassifierFactory",
    "register_kind",
    "model_kind",
    "kind_names",
    "cpu_kind_names",
    "kind_to_train",
    "entry",
    "UnknownKindError",
]


class UnknownKindError(ValueError):
    """A kind name no :class:`ModelKind` is registered under (the message lists the registered ones)."""


ClassifierFactory = Callable[["Taxonomy", str, "KiwiTokenizer | None", int], "DimensionClassifier"]
"""``(taxonomy, dimension, tokenizer, seed) -> unfitted classifier`` of one dimension (tokenizer None:
the classifier makes its own Kiwi analyser when it needs one)."""


@dataclass(frozen=True)
class TrainRequest:
    """What a kind's trainer gets.

    Attributes
    ----------
    df
        ``N × C`` VOC frame with ``reviewed_*`` labels (:func:`voc.schema.validate_voc_frame`).
    taxonomy
        The taxonomy to train with (:func:`voc.tagger.resolve_taxonomy`).
    version
        Version string of the new tagger (:func:`voc.modelstore.new_version`).
    use_reply
        Whether ``all_text`` includes the reply.
    seed
        Random seed.
    tokenizer
        Kiwi analyser to share (kinds that read Kiwi tokens), or None.
    progress
        Called with one line per training step, or None.
    select, recipe
        Recipe selection / one named recipe (:mod:`voc.recipes`); only for kinds with ``recipes``.
    options
        Kind-specific trainer keyword arguments (:attr:`ModelKind.settings_options` names where
        the flow reads them), e.g. ``{"base": …, "epochs": 5}`` for KoBERT.
    """

    df: pl.DataFrame
    taxonomy: Taxonomy
    version: str
    use_reply: bool = True
    seed: int = 0
    tokenizer: KiwiTokenizer | None = None
    progress: Callable[[str], None] | None = None
    select: bool = False
    recipe: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelKind:
    """One registered model kind.

    Attributes
    ----------
    name
        The kind name (``meta.json``'s ``kind``, the model directory's ``{kind}_{version}``).
    summary
        One line for help texts.
    train
        ``TrainRequest -> (tagger, voc.tagger.TrainReport)``.
    save
        ``(tagger, directory)``: write the fitted tagger's files into ``directory`` (exists);
        :func:`voc.modelstore.save_tagger` adds ``meta.json`` and ``label_mapping.json``.
    load
        ``(directory, meta, runtime) -> tagger``: read what ``save`` wrote; ``meta`` is the
        directory's ``meta.json``, ``runtime`` the inference runtime asked for (``auto``,
        ``torch``, ``onnx``; kinds with one runtime ignore it).
    classifier
        Per-dimension classifier factory (:data:`ClassifierFactory`) for kinds built from
        :class:`~voc.classify.base.DimensionClassifier` s (the CPU kinds); None for a kind that
        tags whole texts itself (KoBERT), which a backtest then trains through ``train``.
    recipes
        Whether ``select``/``recipe`` (:mod:`voc.recipes`) apply.
    default_recipe
        The :data:`voc.recipes.RECIPES` name of the classifier ``classifier`` builds (reported by a
        backtest), or None when it is no named recipe.
    taxonomy_keywords
        The classifier reads the taxonomy's keywords (a backtest derives them from the training texts).
    fallback
        The kind trained instead when no dimension has two labelled classes (:func:`kind_to_train`),
        or None (the kind trains keyword fallbacks itself).
    settings_options
        Trainer option → field of ``config.settings.ModelSettings`` it is read from.
    cpu_runtime
        After saving, the training flow writes and checks an int8 CPU copy (KoBERT's ONNX one).
    requirement
        What must be installed beyond the base package (shown when the import fails), or None.
    """

    name: str
    summary: str
    train: Callable[[TrainRequest], tuple[Tagger, TrainReport]]
    save: Callable[[Any, Path], None]
    load: Callable[[Path, Mapping[str, Any], str], Tagger]
    classifier: ClassifierFactory | None = None
    recipes: bool = False
    default_recipe: str | None = None
    taxonomy_keywords: bool = False
    fallback: str | None = None
    settings_options: Mapping[str, str] = field(default_factory=dict)
    cpu_runtime: bool = False
    requirement: str | None = None


_KINDS: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> ModelKind:
    """Register ``kind`` under ``kind.name`` (replacing one of that name); returns it.

    Raises
    ------
    ValueError
        An empty name, or a ``fallback`` that names no registered kind.
    """
    if not kind.name.strip():
        raise ValueError("a model kind needs a name")
    if kind.fallback is not None and kind.fallback not in _KINDS:
        raise ValueError(f"kind {kind.name!r}: fallback {kind.fallback!r} is not registered")
    _KINDS[kind.name] = kind
    return kind


def kind_names() -> tuple[str, ...]:
    """Registered kind names, in registration order."""
    return tuple(_KINDS)


def cpu_kind_names() -> tuple[str, ...]:
    """Kinds with a per-dimension classifier (``classifier`` set): what ``train_tagger`` trains."""
    return tuple(n for n, k in _KINDS.items() if k.classifier is not None)


def model_kind(name: str) -> ModelKind:
    """The :class:`ModelKind` registered as ``name``.

    Raises
    ------
    UnknownKindError
        No kind of that name (the message lists the registered ones).
    """
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownKindError(f"unknown model kind {name!r}; expected one of {', '.join(_KINDS)}") from None


def kind_to_train(name: str, labelled_classes: Mapping[str, int]) -> tuple[str, str | None]:
    """The kind to train for ``name`` given the number of labelled classes per dimension, and
    a note when it is the kind's ``fallback`` (no dimension has two classes).

    Raises
    ------
    UnknownKindError
        ``name`` is not registered.
    """
    kind = model_kind(name)
    if kind.fallback is None or any(n >= 2 for n in labelled_classes.values()):
        return name, None
    return kind.fallback, f"{name}: no dimension has two labelled classes; trained the {kind.fallback} CPU model instead"


# --------------------------------------------------------------------------------------------
# implementations named by import path, and the built-in kinds


def entry(path: str, **bound: Any) -> Callable[..., Any]:
    """A callable that imports ``module:function`` (``path``) on its first call and calls it with
    ``bound`` keyword arguments added — how a registration names its implementation without
    importing it (as packaging entry points do): the registry stays cheap to import, and the
    modules that consult it (:mod:`voc.tagger`, :mod:`voc.modelstore`) may also implement kinds
    without an import cycle.

    Raises
    ------
    ValueError
        ``path`` is not ``module:function``.
    """
    module, sep, name = path.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"an entry is 'module:function', got {path!r}")

    def call(*args: Any, **kwargs: Any) -> Any:
        import importlib

        namespace = vars(importlib.import_module(module))
        if name not in namespace:
            raise ImportError(f"{module} has no {name} (model kind entry {path!r})")
        return namespace[name](*args, **bound, **kwargs)

    call.__qualname__ = call.__name__ = path
    return call


def _register_builtin_kinds() -> None:
    """``hybrid``, ``linear``, ``anchor`` (CPU, one classifier per dimension, pickled) and
    ``kobert`` (:mod:`voc.builtin_kinds` holds their implementations)."""
    impl = "voc.builtin_kinds"
    save_pickled, load_pickled = entry(f"{impl}:save_pickled"), entry(f"{impl}:load_pickled")
    register_kind(ModelKind(
        "hybrid", "taxonomy keywords vs the linear model (hand-curated taxonomies)",
        train=entry(f"{impl}:train_cpu", kind="hybrid"), classifier=entry(f"{impl}:hybrid_classifier"),
        save=save_pickled, load=load_pickled, taxonomy_keywords=True,
    ))
    register_kind(ModelKind(
        "linear", "default CPU model (docs/model-quality.md); recipe chosen on temporal folds",
        train=entry(f"{impl}:train_cpu", kind="linear"), classifier=entry(f"{impl}:linear_classifier"),
        save=save_pickled, load=load_pickled, recipes=True, default_recipe="default",
    ))
    register_kind(ModelKind(
        "anchor", "the production recipe (TF-IDF + calibrated LinearSVC)",
        train=entry(f"{impl}:train_cpu", kind="anchor"), classifier=entry(f"{impl}:anchor_classifier"),
        save=save_pickled, load=load_pickled, default_recipe="anchor",
    ))
    register_kind(ModelKind(
        "kobert", "fine-tuned KoBERT, one head per dimension (kobert extra; GPU for training)",
        train=entry(f"{impl}:train_kobert"), save=entry(f"{impl}:save_kobert"), load=entry(f"{impl}:load_kobert"),
        fallback="hybrid",
        settings_options={"base": "kobert_base", "epochs": "kobert_epochs", "batch_size": "kobert_batch_size",
                          "max_length": "kobert_max_length"},
        cpu_runtime=True, requirement="torch and transformers: pip install -e '.[kobert]'",
    ))


_register_builtin_kinds()
