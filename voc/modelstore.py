"""Model versions as directories, and the champion/challenger rule.

A model version is a directory named ``{kind}_{version}`` holding:

* ``meta.json``: kind, version, created_at (ISO, KST), training rows and months, held-out
  metrics per dimension, alpha (hybrid), use_reply, label sets, fallback dimensions, library
  versions, and ``status`` (``champion`` or ``candidate``) with the reason;
* ``label_mapping.json``: per dimension ``{"label2id": …, "id2label": …}`` (kinds saved in
  transformers format keep these maps in ``config.json`` instead);
* the fitted model, as its kind's ``save`` writes it (:mod:`voc.model_kinds`): ``model.joblib``
  for CPU kinds; transformers files for ``kobert`` (:meth:`voc.classify.kobert.KoBERTTagger.save`).

Variants. A version trained since the real-time service exists holds two taggers of the same
kind, trained on the same rows with the same held-out split:

* ``reply`` (the directory itself): reads title + request + reply (``use_reply``), what batch
  tagging of a past month uses (:func:`load_tagger`, ``flows.adapters.model_store.load_champion``);
* ``registration`` (subdirectory :data:`REGISTRATION_DIR`, a complete model directory of its
  own): reads title + request, all that exists when a VOC is registered (``voc serve``).

The top ``meta.json`` lists them under ``variants`` (:func:`variant_paths`), each with its held-out
metrics. Older versions have no ``variants``: their one tagger is ``reply`` (``registration`` when
it was trained without the reply); :func:`load_variants` then returns that one alone.

Loading dispatches on ``meta.json``'s ``kind`` through the registry (:func:`voc.model_kinds.model_kind`:
its ``load``); no training code is needed to load.
``joblib`` files are pickles: load only model directories your own pipeline wrote.
"""

from __future__ import annotations

import contextlib
import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voc.model_kinds import model_kind
from voc.months import KST

if TYPE_CHECKING:
    from voc.tagger import Tagger

__all__ = [
    "META_FILE",
    "VARIANTS",
    "REGISTRATION_DIR",
    "variant_paths",
    "save_variants",
    "load_variants",
    "update_meta",
    "PairDecision",
    "decide_pair_promotion",
    "new_version",
    "model_dir_name",
    "save_tagger",
    "load_tagger",
    "read_meta",
    "library_versions",
    "PromotionDecision",
    "decide_promotion",
    "promotion_score",
]

META_FILE = "meta.json"
VARIANTS: tuple[str, ...] = ("reply", "registration")
"""Tagger variants of a model version: with the reply (batch) and without (registration time)."""
REGISTRATION_DIR = "registration"
"""Subdirectory of a model version holding its registration-time tagger."""
_LIBS = ("voc", "scikit-learn", "kiwipiepy", "numpy", "polars", "torch", "transformers")


def new_version(now: datetime | None = None) -> str:
    """A sortable version string ``yyyymmdd_hhmmss`` (KST)."""
    return (now or datetime.now(KST)).astimezone(KST).strftime("%Y%m%d_%H%M%S")


def model_dir_name(kind: str, version: str) -> str:
    return f"{kind}_{version}"


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a model depends on (absent ones omitted)."""
    out = {"python": platform.python_version()}
    for lib in _LIBS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[lib] = metadata.version(lib)
    return out


def _label_mapping(tagger: Tagger) -> dict[str, dict[str, Any]]:
    out = {}
    for dim in tagger.taxonomy.dimensions():
        labels = tagger.model_labels(dim)
        if labels:
            out[dim] = {
                "label2id": {lab: i for i, lab in enumerate(labels)},
                "id2label": {str(i): lab for i, lab in enumerate(labels)},
            }
    return out


def save_tagger(tagger: Tagger, directory: Path, meta: Mapping[str, Any]) -> Path:
    """Write ``tagger`` (its kind's ``save``, :mod:`voc.model_kinds`) and ``meta`` (merged with
    kind, version, label sets, library versions) into ``directory`` (created). Returns ``directory``.

    Raises
    ------
    voc.model_kinds.UnknownKindError
        ``tagger.kind`` is not a registered kind.
    """
    directory = Path(directory)
    save = model_kind(tagger.kind).save
    directory.mkdir(parents=True, exist_ok=True)
    save(tagger, directory)
    if not (directory / "config.json").exists():  # transformers kinds keep id2label/label2id in config.json
        mapping = _label_mapping(tagger)
        (directory / "label_mapping.json").write_text(json.dumps(mapping, ensure_ascii=False, indent=2), "utf-8")
    full = {
        "kind": tagger.kind,
        "version": tagger.version,
        "use_reply": tagger.use_reply,
        "created_at": datetime.now(KST).isoformat(timespec="seconds"),
        "libraries": library_versions(),
        "taxonomy": tagger.taxonomy.to_records(),
        **dict(meta),
    }
    (directory / META_FILE).write_text(json.dumps(full, ensure_ascii=False, indent=2, default=str), "utf-8")
    return directory


def save_variants(
    directory: Path,
    taggers: Mapping[str, Tagger],
    meta: Mapping[str, Any],
    variant_meta: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write a model version holding several tagger variants (module docstring, "Variants").

    The main tagger (``reply`` when given, else ``registration``) is saved into ``directory``
    with ``meta`` by :func:`save_tagger`; ``registration`` next to a ``reply`` goes into
    ``directory / REGISTRATION_DIR`` with ``meta``'s ``name`` and ``status``. Every directory's
    ``meta.json`` gets ``variant`` (its own name); the top one also gets ``variants``: per
    variant ``path`` (relative), ``use_reply`` and the fields of ``variant_meta[variant]``
    (held-out metrics, row counts, …), which the variant's own ``meta.json`` holds as well.

    Parameters
    ----------
    directory
        Created if needed.
    taggers
        Variant name (:data:`VARIANTS`) → tagger; at least one.
    meta, variant_meta
        Version fields, and per-variant fields (optional).

    Returns
    -------
    Path
        ``directory``.

    Raises
    ------
    ValueError
        No tagger, or a variant name outside :data:`VARIANTS` (named).
    """
    unknown = sorted(set(taggers) - set(VARIANTS))
    if not taggers or unknown:
        raise ValueError(f"taggers must name variants among {list(VARIANTS)}, got {sorted(taggers)}")
    vmeta = {v: dict((variant_meta or {}).get(v, {})) for v in taggers}
    main = "reply" if "reply" in taggers else "registration"
    paths = {v: "." if v == main else REGISTRATION_DIR for v in taggers}
    listing = {
        v: {"path": paths[v], "use_reply": bool(taggers[v].use_reply), **vmeta[v]} for v in VARIANTS if v in taggers
    }
    directory = save_tagger(taggers[main], Path(directory), {**dict(meta), "variant": main, "variants": listing})
    for v, tagger in taggers.items():
        if v != main:
            own = {k: meta[k] for k in ("name", "status") if k in meta}
            save_tagger(tagger, directory / paths[v], {**own, "variant": v, **vmeta[v]})
    return directory


def read_meta(directory: Path) -> dict[str, Any]:
    """``meta.json`` of a model directory.

    Raises
    ------
    FileNotFoundError
        When the directory has no ``meta.json`` (not a model version).
    """
    p = Path(directory) / META_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{directory} is not a model version (no {META_FILE})")
    meta: dict[str, Any] = json.loads(p.read_text("utf-8"))
    return meta


def update_meta(directory: Path, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``fields`` into the ``meta.json`` of a saved model directory; returns the new meta.

    Raises
    ------
    FileNotFoundError
        The directory has no ``meta.json``.
    """
    meta = {**read_meta(directory), **dict(fields)}
    (Path(directory) / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2, default=str), "utf-8")
    return meta


def load_tagger(directory: Path, *, kobert_runtime: str = "auto") -> Tagger:
    """Load a tagger saved by :func:`save_tagger`: the ``load`` of ``meta.json``'s kind
    (:mod:`voc.model_kinds`; CPU kinds with joblib, their review threshold from ``meta.json``;
    ``kobert`` through ``voc.classify.kobert``, which needs the ``kobert`` extra installed).
    ``kobert_runtime`` is the inference runtime asked for: auto | torch | onnx, see
    :meth:`voc.classify.kobert.KoBERTTagger.load` (kinds with one runtime ignore it).

    Raises
    ------
    FileNotFoundError
        No ``meta.json`` in ``directory``.
    voc.model_kinds.UnknownKindError
        ``meta.json`` names a kind no module registered.
    """
    meta = read_meta(directory)
    return model_kind(str(meta["kind"])).load(Path(directory), meta, kobert_runtime)


def variant_paths(directory: Path) -> dict[str, Path]:
    """Directory of each tagger variant a saved model version holds.

    Returns
    -------
    dict
        ``{"reply": directory, "registration": directory / REGISTRATION_DIR}`` for a two-variant
        version (keys in :data:`VARIANTS` order, as listed in ``meta.json["variants"]``); one entry
        for a version written before variants existed: ``reply``, or ``registration`` when its
        tagger does not read the reply (``use_reply`` false).

    Raises
    ------
    FileNotFoundError
        No ``meta.json`` in ``directory``, or in a listed variant's directory (named).
    ValueError
        ``meta.json`` lists an unknown variant, or a path outside ``directory`` (named).
    """
    directory = Path(directory)
    meta = read_meta(directory)
    listed = meta.get("variants")
    if not listed:
        return {"reply" if meta.get("use_reply", True) else "registration": directory}
    unknown = sorted(set(listed) - set(VARIANTS))
    if unknown:
        raise ValueError(f"{directory}/{META_FILE}: unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    out: dict[str, Path] = {}
    root = directory.resolve()
    for name in VARIANTS:
        if name not in listed:
            continue
        rel = str((listed[name] or {}).get("path", "."))
        path = (directory / rel).resolve()
        if path != root and root not in path.parents:
            raise ValueError(f"{directory}/{META_FILE}: variant {name!r} path {rel!r} leaves the model directory")
        if not (path / META_FILE).is_file():
            raise FileNotFoundError(f"{directory}: variant {name!r} listed in {META_FILE} but {rel}/{META_FILE} is missing")
        out[name] = directory if path == root else directory / rel
    return out


def load_variants(directory: Path, *, kobert_runtime: str = "auto") -> dict[str, Tagger]:
    """Every tagger variant of a saved model version, by name (:func:`variant_paths`), each
    loaded by :func:`load_tagger`. Raises what those raise."""
    return {name: load_tagger(path, kobert_runtime=kobert_runtime) for name, path in variant_paths(directory).items()}


# --------------------------------------------------------------------------------------------
# champion / candidate


def promotion_score(metrics: Mapping[str, Mapping[str, Any]]) -> float | None:
    """Mean held-out macro-F1 over the dimensions that have metrics; None when none has."""
    vals = [float(m["macro_f1"]) for m in metrics.values() if m and "macro_f1" in m]
    return sum(vals) / len(vals) if vals else None


@dataclass(frozen=True)
class PromotionDecision:
    """Whether a candidate becomes champion, and why (shown in the flow summary)."""

    promote: bool
    reason: str
    candidate_score: float | None
    champion_score: float | None


def decide_promotion(
    candidate_metrics: Mapping[str, Mapping[str, Any]],
    champion_metrics_on_same_rows: Mapping[str, Mapping[str, Any]] | None,
) -> PromotionDecision:
    """Champion/candidate rule: the candidate becomes champion unless its held-out macro-F1
    (mean over dimensions) is below the current champion's measured on the same held-out rows.

    ``champion_metrics_on_same_rows`` is None when there is no champion yet (→ promote). A
    candidate without held-out metrics is promoted only when there is no champion.
    """
    cand = promotion_score(candidate_metrics)
    if champion_metrics_on_same_rows is None:
        return PromotionDecision(True, "no champion yet", cand, None)
    champ = promotion_score(champion_metrics_on_same_rows)
    if cand is None:
        return PromotionDecision(False, "candidate has no held-out metrics; champion kept", cand, champ)
    if champ is None or cand >= champ:
        return PromotionDecision(
            True,
            f"held-out macro-F1 {cand:.4f} >= champion {champ:.4f}" if champ is not None else "champion unmeasurable",
            cand,
            champ,
        )
    return PromotionDecision(
        False, f"held-out macro-F1 {cand:.4f} < champion {champ:.4f} on the same rows; stays candidate", cand, champ
    )


@dataclass(frozen=True)
class PairDecision:
    """Whether a two-variant candidate becomes champion: ``promote`` and ``reason`` for the pair,
    and the :class:`PromotionDecision` of each variant (``variants``)."""

    promote: bool
    reason: str
    variants: dict[str, PromotionDecision]


def decide_pair_promotion(
    candidate_metrics: Mapping[str, Mapping[str, Mapping[str, Any]]],
    champion_metrics_on_same_rows: Mapping[str, Mapping[str, Mapping[str, Any]] | None] | None,
) -> PairDecision:
    """Champion/candidate rule for a version with several variants (``reply``, ``registration``):
    the candidate is promoted only when **neither variant is worse**.

    Each variant of ``candidate_metrics`` (variant → dimension → held-out metrics) is decided by
    :func:`decide_promotion` against ``champion_metrics_on_same_rows[variant]``: the champion
    measured on exactly that variant's held-out rows reading the same fields (the flow measures a
    champion without a registration variant through its reply-aware tagger given no reply,
    which is what ``voc serve`` answers with it). A variant whose champion measurement is
    missing or None counts as an unmeasurable champion (promoted when the candidate has
    metrics). ``champion_metrics_on_same_rows`` None = no champion yet → promoted.

    Returns
    -------
    PairDecision
        ``promote`` = every variant's decision promotes; ``reason`` joins the variants'
        reasons (``"reply: …; registration: …"``).
    """
    if not candidate_metrics:
        raise ValueError("candidate_metrics names no variant")
    champ = champion_metrics_on_same_rows
    per = {
        name: decide_promotion(metrics, None if champ is None else (champ.get(name) or {}))
        for name, metrics in candidate_metrics.items()
    }
    promote = all(d.promote for d in per.values())
    return PairDecision(promote, "; ".join(f"{name}: {d.reason}" for name, d in per.items()), per)
