"""Model versions as directories, and the champion/candidate rule.

A model version is a directory named ``{kind}_{version}`` holding:

* ``meta.json``: kind, version, created_at (ISO, KST), training rows and months, held-out
  metrics per dimension, alpha (hybrid), use_reply, label sets, fallback dimensions, library
  versions, and ``status`` (``champion`` or ``candidate``) with the reason;
* ``label_mapping.json``: per dimension ``{"label2id": …, "id2label": …}``;
* the fitted model: ``model.joblib`` for CPU kinds; transformers files for ``kobert``
  (written by :meth:`voc.classify.kobert.KoBERTTagger.save`).

Loading dispatches on ``meta.json``'s ``kind``; no training code is needed to load.
``joblib`` files are pickles: load only model directories your own pipeline wrote.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from voc.months import KST

__all__ = [
    "META_FILE",
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
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return out


def _label_mapping(tagger: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for dim in tagger.taxonomy.dimensions():
        labels = tagger.model_labels(dim)
        if labels:
            out[dim] = {
                "label2id": {lab: i for i, lab in enumerate(labels)},
                "id2label": {str(i): lab for i, lab in enumerate(labels)},
            }
    return out


def save_tagger(tagger: Any, directory: Path, meta: Mapping[str, Any]) -> Path:
    """Write ``tagger`` and ``meta`` (merged with kind, version, label sets, library versions)
    into ``directory`` (created). Returns ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if tagger.kind == "kobert":
        tagger.save(directory)
    else:
        import joblib

        joblib.dump(tagger, directory / "model.joblib", compress=3)
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
    return json.loads(p.read_text("utf-8"))


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


def load_tagger(directory: Path, *, kobert_runtime: str = "auto") -> Any:
    """Load a tagger saved by :func:`save_tagger` (CPU kinds with joblib; ``kobert`` through
    ``voc.classify.kobert``, which needs the ``kobert`` extra installed; ``kobert_runtime`` is
    its ``runtime``: auto | torch | onnx, see :meth:`voc.classify.kobert.KoBERTTagger.load`)."""
    meta = read_meta(directory)
    if meta["kind"] == "kobert":
        from voc.classify.kobert import KoBERTTagger

        return KoBERTTagger.load(Path(directory), runtime=kobert_runtime)
    import joblib

    tagger = joblib.load(Path(directory) / "model.joblib")
    if meta.get("review_threshold") is not None:
        tagger.low_confidence_threshold = meta["review_threshold"]
    return tagger


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
