"""KoBERT on a labelled VOC frame: the rows every trainer uses, fine-tuned by :mod:`voc.classify.kobert`.

:func:`train_kobert_tagger` chooses rows and labels exactly as :func:`voc.tagger.train_tagger`
does (:func:`voc.tagger.split_dimensions`: canonical labels, unseen labels added to the taxonomy,
the fixed 20 % held-out split by md5 of ``voc_id``, keyword fallback for a dimension with < 2
classes), hands them to :func:`voc.classify.kobert.fine_tune_tagger` and measures the held-out
rows like every other kind (:func:`voc.tagger.evaluate_tags`).

It sits here, above :mod:`voc.tagger`, so that :mod:`voc.classify.kobert` (below it: model,
tokenizer, ``Trainer`` fine-tuning) imports nothing from the tagger layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from voc.classify.base import Tags
from voc.classify.kobert import KoBERTTagger, KoBertTrainingOptions, fine_tune_tagger
from voc.tagger import TrainReport, evaluate_tags, frame_texts, split_dimensions
from voc.taxonomy import Taxonomy

__all__ = ["train_kobert_tagger"]


def train_kobert_tagger(
    df: pl.DataFrame,
    taxonomy: Taxonomy,
    *,
    version: str,
    use_reply: bool = True,
    options: KoBertTrainingOptions | None = None,
    **overrides: Any,
) -> tuple[KoBERTTagger, TrainReport]:
    """Fine-tune a KoBERT tagger on the reviewed rows of ``df``.

    The split is **not** stratified: a fixed hash split keeps every row on the same side across
    monthly retrainings, so champion and challenger (of any kind) are compared on the same rows;
    class imbalance is handled by inverse-frequency class weights instead
    (:func:`voc.classify.kobert.class_weights`). One encoder is trained with one head per
    dimension that has ≥ 2 classes (:func:`voc.classify.kobert.fine_tune_tagger`; best epoch by
    held-out macro-F1, early stopping).

    Parameters
    ----------
    df
        Validated VOC frame with ``reviewed_*`` label columns (N rows).
    taxonomy
        Base taxonomy (extended with unseen labels).
    version
        Model version string.
    use_reply
        Read the reply as part of ``all_text``.
    options
        Training settings (:class:`voc.classify.kobert.KoBertTrainingOptions`); None = defaults.
    **overrides
        Fields of ``options`` to replace, e.g. ``seed=3, epochs=1`` (what
        ``voc.model_kinds`` and ``voc backtest`` pass).

    Returns
    -------
    tuple[KoBERTTagger, voc.tagger.TrainReport]
        The tagger (best epoch, on the training device) and the report (``kind = "kobert"``;
        held-out metrics per dimension, same shape as :func:`voc.tagger.train_tagger`'s).

    Raises
    ------
    ValueError
        No dimension has ≥ 2 labelled classes (nothing to fine-tune; use a CPU kind).
    TypeError
        An override that is not an option.
    ImportError
        torch/transformers/accelerate missing (:data:`voc.classify.kobert.INSTALL_HINT`).
    OSError
        The base or its tokenizer cannot be loaded.
    """
    opts = (options or KoBertTrainingOptions()).replace(**overrides)
    report = TrainReport(kind="kobert", version=version, n_rows=df.height)
    texts, _ = frame_texts(df, use_reply=use_reply)
    taxonomy, splits = split_dimensions(df, taxonomy, report)
    tagger = fine_tune_tagger(texts, splits, taxonomy, version=version, use_reply=use_reply, options=opts)
    rows = np.array(sorted({int(i) for sp in splits.values() for i in sp.holdout_rows}), dtype=int)
    if len(rows):
        tags = tagger.tag([texts[i] for i in rows])  # one pass over every held-out row
        at = {int(r): k for k, r in enumerate(rows)}
        for dim, sp in splits.items():
            if len(sp.holdout_rows):
                k = np.array([at[int(i)] for i in sp.holdout_rows], dtype=int)
                t = tags[dim]
                report.metrics[dim] = evaluate_tags(
                    sp.holdout_labels, Tags([t.labels[j] for j in k], np.asarray(t.confidence)[k], [t.source[j] for j in k])
                )
    return tagger, report
