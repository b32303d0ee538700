"""KoBERT tagger: one shared BERT encoder, one linear classification head per dimension.

Model
-----
``input_ids (B × T)`` → BERT encoder → pooled ``[CLS]`` vector ``(B × H)`` → dropout →
``Linear(H, K_d)`` per dimension ``d`` (``subject``, ``work``) → logits ``(B × K_d)``. Both heads
read the same encoder output, so tagging a text costs **one** forward pass, not one per
dimension. A head exists only for a dimension whose labelled training rows hold ≥ 2 classes;
other dimensions are tagged by the taxonomy's keyword scorer
(:class:`voc.classify.keyword.KeywordClassifier`, ``source = "keyword"``), as
:class:`voc.tagger.VOCTagger` does.

The pooled vector is BERT's pooler output (``tanh(W · h_[CLS] + b)``, the input of
``BertForSequenceClassification``'s classifier, Devlin et al. 2019, §4.1); encoders without a
pooler use the last layer's ``[CLS]`` state.

Base model and tokenizer
------------------------
The default base is ``skt/kobert-base-v1`` (SKT KoBERT on the Hugging Face hub: BERT-base,
vocabulary 8,002 SentencePiece pieces, hidden 768, 12 layers, 12 heads, intermediate 3,072).
Its tokenizer is SentencePiece; :func:`load_kobert_tokenizer` picks, in order,

1. ``kobert_tokenizer.KoBERTTokenizer`` (SKT's wrapper; not on PyPI, install with
   ``pip install 'git+https://github.com/SKTBrain/KoBERT.git#egg=kobert_tokenizer&subdirectory=kobert_hf'``)
   when the base has ``spiece.model``;
2. ``kobert_transformers``' ``KoBertTokenizer`` (PyPI ``kobert-transformers``, in the ``kobert``
   extra), from ``tokenizer_78b3253a26.model`` + ``vocab.txt`` (monologg layout, also what
   :meth:`KoBERTTagger.save` and :func:`build_tiny_base` write), or from ``spiece.model`` alone
   (skt layout: ``vocab.txt`` is the SentencePiece pieces in id order, so ids match SKT's);
3. ``transformers.AutoTokenizer`` for any other checkpoint (e.g. ``klue/bert-base``).

Loading from the hub needs network access the first time (or a filled Hugging Face cache); it is
never exercised by the tests, which build a tiny local base with :func:`build_tiny_base`.

Saved layout (:meth:`KoBERTTagger.save`; transformers format, loadable without training code)
-----------------------------------------------------------------------------------------------
``config.json`` + ``model.safetensors`` (the encoder, ``save_pretrained``; ``config.json`` also
holds each head's ``id2label``/``label2id`` under ``classification_heads``), the tokenizer files,
``heads.safetensors`` (``{dim}.weight`` ``K_d × H``, ``{dim}.bias`` ``K_d``) and ``heads.json``
(head order, pooling, dropout, max_length, taxonomy, use_reply, version, training history). The
training flow adds ``onnx/`` (an int8 ONNX Runtime copy for CPU workers,
:mod:`voc.classify.kobert_onnx`), which :meth:`KoBERTTagger.load` uses on the CPU. Directories
written before (``heads.json`` format 1, label maps in ``heads.json`` or ``label_mapping.json``)
still load.

Fine-tuning
-----------
:func:`fine_tune` runs ``transformers.Trainer`` (AdamW, linear warm-up and decay, early stopping
on the held-out macro-F1, best epoch restored); its settings are one
:class:`KoBertTrainingOptions`. :func:`fine_tune_tagger` builds the heads from per-dimension
training rows and returns a :class:`KoBERTTagger`; choosing those rows from a labelled VOC frame
is :func:`voc.kobert_training.train_kobert_tagger` (above :mod:`voc.tagger`, which this module
does not import).

Dependencies
------------
``torch``, ``transformers`` and ``accelerate`` (the ``kobert`` extra) are needed only when a
KoBERT model is built, trained, loaded or run; importing this module without them works, and
those calls raise :class:`ImportError` with the install command (:data:`INSTALL_HINT`).
Token ids, batching, device and precision come from :mod:`voc.classify.kobert_runtime`, which
the int8 copy (:mod:`voc.classify.kobert_onnx`) shares.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import json
import random
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from voc.classify import kobert_onnx
from voc.classify.base import Tags
from voc.classify.keyword import KeywordClassifier
from voc.classify.kobert_runtime import (
    INSTALL_HINT,
    batched_probabilities,
    encode_texts,
    pad_batch,
    predict_probabilities,
    require_torch,
    resolve_device,
    resolve_precision,
)
from voc.taxonomy import Taxonomy

try:  # guarded: `import voc` and the CPU tagger work without the kobert extra
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - exercised only where torch is absent
    torch = None  # type: ignore[assignment]  # the fallback: None only without the kobert extra
    nn = None  # type: ignore[assignment]  # as above

__all__ = [
    "DEFAULT_BASE",
    "INSTALL_HINT",
    "KOBERT_SP_FILE",
    "KOBERT_BASE_SHAPE",
    "KoBERTTagger",
    "MultiHeadClassifier",
    "KoBertTrainingOptions",
    "HeadRows",
    "fine_tune_tagger",
    "fine_tune",
    "load_kobert_tokenizer",
    "save_kobert_tokenizer",
    "build_tiny_base",
    "encode_texts",
    "pad_batch",
    "batched_probabilities",
    "predict_probabilities",
    "class_weights",
    "resolve_device",
    "resolve_precision",
]

DEFAULT_BASE = "skt/kobert-base-v1"
"""Default base checkpoint (config.settings.ModelSettings.kobert_base)."""

KOBERT_SP_FILE = "tokenizer_78b3253a26.model"
"""SentencePiece file name of ``kobert_transformers.tokenization_kobert.VOCAB_FILES_NAMES``."""
VOCAB_TXT = "vocab.txt"
SKT_SP_FILE = "spiece.model"
"""SentencePiece file name of the skt/kobert-base-v1 repository (XLNetTokenizer layout)."""
HEADS_JSON = "heads.json"
HEADS_WEIGHTS = "heads.safetensors"
FORMAT_VERSION = 2
"""``heads.json`` format written: 2 = label maps in ``config.json`` (:data:`LABELS_CONFIG_KEY`);
1 = label maps in ``heads.json`` (still read)."""
READABLE_FORMATS = (1, 2)
LABELS_CONFIG_KEY = "classification_heads"
"""Key of ``config.json`` holding ``{dim: {"id2label": {"0": label, …}, "label2id": {label: 0, …}}}``."""
LEGACY_LABEL_MAPPING = "label_mapping.json"
"""Per-dimension label maps that :func:`voc.modelstore.save_tagger` wrote beside older KoBERT models."""

KOBERT_BASE_SHAPE: dict[str, Any] = {
    "vocab_size": 8002,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
}
"""Shape of KoBERT-base (config.json of ``skt/kobert-base-v1``; vocabulary size 8,002 is also
stated in SKTBrain/KoBERT's README). Used by the benchmark to build a same-shaped random model."""

KOBERT_SPECIALS = ("[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]")
"""KoBERT's special pieces and their ids 0–4 (vocab.txt of monologg/kobert, skt spiece.model)."""

# --------------------------------------------------------------------------------------------
# tokenizer


def _tokenizer_files(base: str | Path, names: Sequence[str]) -> dict[str, str | None]:
    """Local path of each file ``names`` of ``base`` (a directory or a hub id; hub files are
    downloaded or taken from the Hugging Face cache), None where the file does not exist."""
    p = Path(str(base))
    if p.is_dir():
        return {n: str(p / n) if (p / n).is_file() else None for n in names}
    from transformers.utils.hub import cached_file

    out: dict[str, str | None] = {}
    for n in names:
        try:
            out[n] = cached_file(
                str(base),
                n,
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
            )
        except OSError:
            out[n] = None
    return out


def _config_model_type(base: str | Path) -> str | None:
    cfg = _tokenizer_files(base, ["config.json"])["config.json"]
    if not cfg:
        return None
    try:
        model_type = json.loads(Path(cfg).read_text("utf-8")).get("model_type")
        return None if model_type is None else str(model_type)
    except (OSError, ValueError):
        return None


def _kobert_from_spiece(sp_path: str) -> Any:
    """kobert_transformers' KoBertTokenizer over an skt-layout ``spiece.model``: vocab.txt is the
    model's pieces in id order (ids 0–4 = ``[UNK] [PAD] [CLS] [SEP] [MASK]``), so the ids equal
    those of SKT's XLNetTokenizer-based KoBERTTokenizer."""
    import sentencepiece as spm
    from kobert_transformers.tokenization_kobert import KoBertTokenizer

    sp = spm.SentencePieceProcessor()
    sp.Load(sp_path)
    pieces = [sp.IdToPiece(i) for i in range(sp.GetPieceSize())]
    unk = sp.unk_id()
    if 0 <= unk < len(pieces):
        pieces[unk] = "[UNK]"
    with tempfile.TemporaryDirectory() as tmp:
        vt = Path(tmp) / VOCAB_TXT
        vt.write_text("".join(p + "\n" for p in pieces), "utf-8")
        return KoBertTokenizer(vocab_file=sp_path, vocab_txt=str(vt), do_lower_case=False)


def load_kobert_tokenizer(base: str | Path) -> Any:
    """The tokenizer of a KoBERT (or other BERT-family) checkpoint.

    Parameters
    ----------
    base
        A hub id (``skt/kobert-base-v1``, ``monologg/kobert``, ``klue/bert-base``) or a local
        directory (a base from :func:`build_tiny_base`, a model saved by :meth:`KoBERTTagger.save`).

    Returns
    -------
    transformers.PreTrainedTokenizerBase
        Chosen in this order (module docstring): SKT's ``KoBERTTokenizer`` when installed and
        the base has ``spiece.model`` and is a BERT; ``kobert_transformers``' ``KoBertTokenizer``
        when the base has ``tokenizer_78b3253a26.model`` + ``vocab.txt``, or ``spiece.model``
        and is a BERT; else ``AutoTokenizer``.

    Raises
    ------
    ImportError
        torch/transformers missing (:data:`INSTALL_HINT`).
    OSError
        No tokenizer could be loaded (the message lists each attempt's error). A hub id without
        network access and without a cached copy ends here.
    """
    require_torch()
    files = _tokenizer_files(base, [KOBERT_SP_FILE, VOCAB_TXT, SKT_SP_FILE])
    errors: list[str] = []
    is_bert = None
    if files[SKT_SP_FILE]:
        is_bert = _config_model_type(base) in ("bert", None)
    if files[SKT_SP_FILE] and is_bert:
        try:
            from kobert_tokenizer import KoBERTTokenizer

            return KoBERTTokenizer.from_pretrained(str(base))
        except ImportError:
            errors.append("kobert_tokenizer not installed")
        except Exception as e:  # noqa: BLE001 - try the next tokenizer, report all at the end
            errors.append(f"KoBERTTokenizer: {e!r}")
    if files[KOBERT_SP_FILE] and files[VOCAB_TXT]:
        try:
            from kobert_transformers.tokenization_kobert import KoBertTokenizer

            p = Path(str(base))
            return KoBertTokenizer.from_pretrained(str(p) if p.is_dir() else str(base))
        except ImportError:
            errors.append("kobert-transformers not installed")
        except Exception as e:  # noqa: BLE001 - as above: try the next tokenizer
            errors.append(f"KoBertTokenizer: {e!r}")
    if files[SKT_SP_FILE] and is_bert:
        try:
            return _kobert_from_spiece(str(files[SKT_SP_FILE]))
        except ImportError:
            errors.append("kobert-transformers not installed")
        except Exception as e:  # noqa: BLE001 - as above: try the next tokenizer
            errors.append(f"KoBertTokenizer(spiece.model): {e!r}")
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(base))  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
    except Exception as e:  # noqa: BLE001 - the last try: every error is reported below
        errors.append(f"AutoTokenizer: {e!r}")
    raise OSError(
        f"no tokenizer could be loaded from {base!s} (a hub id needs network access or a filled Hugging Face"
        " cache; offline, pass a local directory): " + "; ".join(errors)
    )


def save_kobert_tokenizer(tokenizer: Any, directory: str | Path) -> None:
    """Write ``tokenizer`` into ``directory`` so that :func:`load_kobert_tokenizer` reloads it.

    ``kobert_transformers``' ``KoBertTokenizer.save_vocabulary`` lacks the ``filename_prefix``
    argument that ``save_pretrained`` of transformers ≥ 4 passes, so for it the files are written
    directly: ``tokenizer_78b3253a26.model``, ``vocab.txt`` and ``tokenizer_config.json``. Other
    tokenizers use ``save_pretrained``.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if type(tokenizer).__name__ != "KoBertTokenizer":
        tokenizer.save_pretrained(str(d))
        return
    tokenizer.save_vocabulary(str(d))
    cfg = {
        "do_lower_case": bool(tokenizer.do_lower_case),
        "remove_space": bool(tokenizer.remove_space),
        "keep_accents": bool(tokenizer.keep_accents),
        "model_max_length": int(min(getattr(tokenizer, "model_max_length", 512), 512)),
        "tokenizer_class": "KoBertTokenizer",
    }
    (d / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2), "utf-8")


def _sentences(texts: Sequence[str]) -> list[str]:
    return [s.strip() for t in texts for s in (t or "").splitlines() if s.strip()]


def build_tiny_base(
    texts: Sequence[str],
    out_dir: str | Path,
    *,
    vocab_size: int = 1000,
    character_coverage: float = 0.98,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 2,
    intermediate_size: int = 64,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> Path:
    """Build a small KoBERT-format base checkpoint from ``texts`` (no network).

    A SentencePiece unigram model is trained on the lines of ``texts`` with KoBERT's special
    pieces at ids 0–4 (``[UNK] [PAD] [CLS] [SEP] [MASK]``, :data:`KOBERT_SPECIALS`) and written
    in kobert-transformers' layout (``tokenizer_78b3253a26.model``, ``vocab.txt`` one piece per
    line in id order, ``tokenizer_config.json``), so :func:`load_kobert_tokenizer` returns the
    real ``KoBertTokenizer``. A randomly initialised ``BertModel`` (vocabulary = the tokenizer's
    size) is saved beside it with ``save_pretrained`` (``config.json``, ``model.safetensors``).

    Used by the tests, the CLI's ``--kobert-base PATH`` demo and the benchmark. Writes only into
    ``out_dir`` (created). Deterministic for the same texts and seed (SentencePiece runs with one
    thread; the weights are drawn from ``torch.manual_seed(seed)`` inside a forked RNG, so the
    caller's global RNG state is unchanged).

    Parameters
    ----------
    texts
        Training texts (e.g. :func:`voc.tagger.frame_texts` of the shipped sample).
    out_dir
        Output directory.
    vocab_size
        Target SentencePiece vocabulary including the 5 specials (an upper bound: a small corpus
        may give fewer pieces).
    character_coverage
        Share of characters covered by single-character pieces; the rest map to ``[UNK]``.
        Korean text has over a thousand distinct syllables (≈ 1,100 at SentencePiece's default
        0.9995 on the shipped sample), more than a ~1,000-piece vocabulary can hold, hence 0.98.
    hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, max_position_embeddings
        ``BertConfig`` shape (default: 32-wide, 2 layers; KoBERT-base is :data:`KOBERT_BASE_SHAPE`).
    seed
        Seed of the weights (SentencePiece training is deterministic: one thread).

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ValueError
        ``texts`` has no non-empty line.
    RuntimeError
        SentencePiece did not put the specials at ids 0–4 (:func:`_write_sentencepiece_tokenizer`).
    ImportError
        torch/transformers/sentencepiece missing.
    """
    torch_, _ = require_torch()
    from transformers import BertConfig, BertModel

    lines = _sentences(texts)
    if not lines:
        raise ValueError("build_tiny_base needs at least one non-empty text")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_pieces = _write_sentencepiece_tokenizer(
        lines, out, vocab_size=vocab_size, character_coverage=character_coverage, model_max_length=max_position_embeddings
    )
    config = BertConfig(  # type: ignore[no-untyped-call]  # transformers leaves BertConfig.__init__ unannotated
        vocab_size=n_pieces,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        type_vocab_size=2,
        pad_token_id=1,
    )
    with torch_.random.fork_rng(devices=[]):
        torch_.manual_seed(seed)
        model = BertModel(config)  # type: ignore[no-untyped-call]  # as BertConfig above
    model.save_pretrained(str(out))
    return out


def _write_sentencepiece_tokenizer(
    lines: Sequence[str], out: Path, *, vocab_size: int, character_coverage: float, model_max_length: int
) -> int:
    """Train a SentencePiece unigram model on ``lines`` with KoBERT's specials at ids 0–4 and
    write it into ``out`` in kobert-transformers' layout (``tokenizer_78b3253a26.model``,
    ``vocab.txt``, ``tokenizer_config.json``). One thread, so the same lines give the same model.
    Returns the number of pieces (the BERT vocabulary size).

    Raises
    ------
    RuntimeError
        The trained model does not hold :data:`KOBERT_SPECIALS` at ids 0–4.
    """
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=character_coverage,
        unk_id=0,
        unk_piece="[UNK]",
        pad_id=1,
        pad_piece="[PAD]",
        bos_id=-1,
        eos_id=-1,
        control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        hard_vocab_limit=False,
        num_threads=1,
        max_sentence_length=16384,
        minloglevel=2,
    )
    proto = buf.getvalue()
    sp = spm.SentencePieceProcessor(model_proto=proto)
    pieces = [sp.IdToPiece(i) for i in range(sp.GetPieceSize())]
    if tuple(pieces[:5]) != KOBERT_SPECIALS:
        raise RuntimeError(f"SentencePiece put {pieces[:5]} at ids 0-4, expected {list(KOBERT_SPECIALS)}")
    (out / KOBERT_SP_FILE).write_bytes(proto)
    (out / VOCAB_TXT).write_text("".join(p + "\n" for p in pieces), "utf-8")
    cfg_tok = {
        "do_lower_case": False,
        "remove_space": True,
        "keep_accents": False,
        "model_max_length": model_max_length,
        "tokenizer_class": "KoBertTokenizer",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(cfg_tok, indent=2), "utf-8")
    return len(pieces)


# --------------------------------------------------------------------------------------------
# the model


if torch is not None:

    class MultiHeadClassifier(nn.Module):
        """A transformers encoder with one linear head per dimension.

        Parameters
        ----------
        encoder
            A ``transformers`` base model (``AutoModel``, e.g. ``BertModel``) returning
            ``last_hidden_state`` (B × T × H) and, for BERT, ``pooler_output`` (B × H).
        head_sizes
            Number of classes K_d per dimension (each ≥ 2).
        dropout
            Dropout on the pooled vector before the heads (BERT's ``hidden_dropout_prob``, 0.1).
        pooling
            ``"pooler"`` (BERT pooler output; falls back to ``"cls"`` when the encoder has none)
            or ``"cls"`` (last layer's ``[CLS]`` state).
        """

        def __init__(
            self, encoder: Any, head_sizes: Mapping[str, int], *, dropout: float = 0.1, pooling: str = "pooler"
        ) -> None:
            super().__init__()
            if pooling not in ("pooler", "cls"):
                raise ValueError(f"pooling must be 'pooler' or 'cls', got {pooling!r}")
            self.encoder = encoder
            self.pooling = pooling
            self.dropout = nn.Dropout(dropout)
            hidden = int(encoder.config.hidden_size)
            heads = {d: nn.Linear(hidden, int(k)) for d, k in head_sizes.items()}
            std = float(getattr(encoder.config, "initializer_range", 0.02))
            for head in heads.values():  # BERT's initialisation: N(0, initializer_range), bias 0
                nn.init.normal_(head.weight, mean=0.0, std=std)
                nn.init.zeros_(head.bias)
            self.heads = nn.ModuleDict(heads)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
            """Logits per dimension, each ``B × K_d``, from one encoder pass over ``B × T`` ids.

            In eval mode a BERT encoder runs its last layer for the ``[CLS]`` position only
            (:meth:`pooled_cls_only`): the heads read nothing else, so the result is the same.
            """
            if not self.training and self.cls_only_supported:
                pooled = self.pooled_cls_only(input_ids, attention_mask)
            else:
                pooled = self.pooled_full(input_ids, attention_mask)
            h = self.dropout(pooled)
            return {d: head(h) for d, head in self.heads.items()}

        def pooled_full(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            """Pooled vector ``B × H`` from the encoder's own forward (every position, every layer)."""
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
            pooled: torch.Tensor | None = getattr(out, "pooler_output", None) if self.pooling == "pooler" else None
            if pooled is None:
                pooled = out.last_hidden_state[:, 0]
            return pooled

        @property
        def cls_only_supported(self) -> bool:
            """Whether :meth:`pooled_cls_only` applies: a transformers BERT encoder
            (``model_type`` bert, absolute positions, not a decoder) with the usual layer modules."""
            cfg = getattr(self.encoder, "config", None)
            layers = getattr(getattr(self.encoder, "encoder", None), "layer", None)
            if cfg is None or getattr(cfg, "model_type", None) != "bert" or not layers:
                return False
            if getattr(cfg, "position_embedding_type", "absolute") != "absolute" or getattr(cfg, "is_decoder", False):
                return False
            last = layers[-1]
            sa = getattr(getattr(last, "attention", None), "self", None)
            return all(hasattr(sa, a) for a in ("query", "key", "value", "num_attention_heads", "attention_head_size")) and all(
                hasattr(m, "forward") for m in (last.attention.output, getattr(last, "intermediate", None), getattr(last, "output", None))
            )

        def pooled_cls_only(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            """Pooled vector ``B × H`` computing the last layer for position 0 only.

            Layers 1…L−1 run as usual. In layer L the keys and values still come from every
            position, but the query, the attention output, the feed-forward block and the layer
            norms are computed for ``[CLS]`` alone, which is all the pooler (or ``cls`` pooling)
            reads. At KoBERT-base shape and 128 tokens this skips ≈ 5/6 of one of 12 layers
            (≈ 7 % of the FLOPs); the result equals :meth:`pooled_full` up to float rounding
            (≤ 1e-6, tests/test_kobert_onnx.py). Eval only: dropout is not applied here.
            """
            enc = self.encoder
            layers = enc.encoder.layer
            h = enc.embeddings(input_ids=input_ids)
            ext = enc.get_extended_attention_mask(attention_mask, input_ids.shape)  # B × 1 × 1 × T, additive
            for layer in layers[:-1]:
                out = layer(h, attention_mask=ext)
                h = out[0] if isinstance(out, tuple) else out
            last = layers[-1]
            sa = last.attention.self
            b, t, _ = h.shape
            heads, size = int(sa.num_attention_heads), int(sa.attention_head_size)
            cls = h[:, :1]
            q = sa.query(cls).view(b, 1, heads, size).transpose(1, 2)
            k = sa.key(h).view(b, t, heads, size).transpose(1, 2)
            v = sa.value(h).view(b, t, heads, size).transpose(1, 2)
            ctx = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=ext.to(q.dtype))
            ctx = ctx.transpose(1, 2).reshape(b, 1, heads * size)
            a = last.attention.output(ctx, cls)
            o = last.output(last.intermediate(a), a)  # B × 1 × H
            pooled: torch.Tensor = enc.pooler(o) if self.pooling == "pooler" and getattr(enc, "pooler", None) is not None else o[:, 0]
            return pooled

else:  # pragma: no cover

    class MultiHeadClassifier:  # type: ignore[no-redef]  # the stand-in without torch for the class above
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError(INSTALL_HINT)


# --------------------------------------------------------------------------------------------
# the tagger


@dataclass(eq=False)
class KoBERTTagger:
    """Tagger (:class:`voc.tagger.Tagger`) backed by a fine-tuned KoBERT with one head per dimension.

    Attributes
    ----------
    version
        Model version string.
    taxonomy
        Taxonomy the tags come from; dimensions without a head are tagged by its keywords.
    model
        :class:`MultiHeadClassifier`; loaded once and reused for every :meth:`tag` call.
    tokenizer
        Tokenizer of the base (:func:`load_kobert_tokenizer`).
    labels
        Per dimension with a head, its K_d labels ``"major>minor"``; index = class id.
    use_reply
        Whether ``all_text`` includes the reply.
    low_confidence_threshold
        Rows below this confidence are flagged for review (set by the training flow).
    max_length
        Tokens per text at inference, ``[CLS]``/``[SEP]`` included.
    batch_size
        Texts per forward pass at inference.
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"`` …; None = CUDA when present, else CPU.
    precision
        Inference precision, see :func:`resolve_precision` (``auto``: bf16/fp16 autocast on GPU,
        fp32 on CPU).
    base
        Base checkpoint the model was fine-tuned from (informational).
    history
        Per-epoch training record (``epoch``, ``train_loss``, ``holdout_macro_f1``, ``seconds``).
    runtime
        ``"auto"`` (default): the int8 ONNX Runtime copy (``onnx``) when there is one and the
        device is the CPU, else PyTorch; ``"torch"``: always PyTorch; ``"onnx"``: always the
        int8 copy (error when there is none). See :mod:`voc.classify.kobert_onnx`.
    onnx
        :class:`voc.classify.kobert_onnx.OnnxRunner` over the model's int8 copy, or None (set by
        :meth:`load` when the saved model has ``onnx/``).
    """

    version: str
    taxonomy: Taxonomy = field(repr=False)
    model: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    labels: dict[str, list[str]] = field(repr=False)
    use_reply: bool = True
    low_confidence_threshold: float | None = None
    max_length: int = 256
    batch_size: int = 64
    device: str | None = None
    precision: str = "auto"
    base: str = ""
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    runtime: str = "auto"
    onnx: Any = field(default=None, repr=False)
    kind: str = field(default="kobert", init=False)

    # -- protocol -----------------------------------------------------------------------------
    def model_labels(self, dimension: str) -> list[str]:
        """Labels of ``dimension``'s head (``[]`` for a keyword-only dimension)."""
        return list(self.labels.get(dimension, []))

    @property
    def fallback_dimensions(self) -> list[str]:
        """Dimensions tagged by keywords only (no head)."""
        return [d for d in self.taxonomy.dimensions() if d not in self.labels]

    def tag(self, texts: Sequence[str]) -> dict[str, Tags]:
        """Tags for each dimension of the taxonomy, N rows each, in the order of ``texts``.

        A dimension with a head gets the arg-max label, its softmax probability as confidence
        and source ``"model"``; the others get the keyword scorer's tags (source ``"keyword"``).
        """
        texts = list(texts)
        probs = self.predict_proba(texts) if self.labels else {}
        out: dict[str, Tags] = {}
        n = len(texts)
        for dim in self.taxonomy.dimensions():
            p = probs.get(dim)
            if p is None:
                out[dim] = KeywordClassifier(self.taxonomy.rows_of(dim)).fit().predict_tags(texts)
                continue
            best = p.argmax(axis=1) if n else np.zeros(0, dtype=int)
            conf = p[np.arange(n), best].astype(float) if n else np.zeros(0)
            names = self.labels[dim]
            out[dim] = Tags([names[int(b)] for b in best], conf, ["model"] * n)
        return out

    # -- inference ----------------------------------------------------------------------------
    def _ready(self) -> str:
        """Resolve the device once and move the model there (first call only); eval mode."""
        dev = resolve_device(self.device)
        self.device = dev
        p = next(self.model.parameters(), None)
        want = torch.device(dev)
        if p is not None and (p.device.type != want.type or (want.index is not None and p.device.index != want.index)):
            self.model.to(want)
        self.model.eval()
        return dev

    def predict_proba(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Class probabilities per head: ``{dim: N × K_d float32}`` rows in the order of ``texts``.

        Texts are tokenized once (:func:`encode_texts`), sorted by token length (longest first,
        stable), cut into batches of ``batch_size``, each padded to its own longest text, and run
        through the model under ``torch.inference_mode`` — one forward pass per batch for all
        heads. Softmax is taken in float32 whatever the compute precision.
        """
        seqs = encode_texts(self.tokenizer, texts, max_length=self.max_length)
        if self.active_runtime == "onnx-int8":
            probs: dict[str, np.ndarray] = self.onnx.predict(
                seqs, pad_id=self._pad_id, batch_size=min(self.batch_size, kobert_onnx.CPU_BATCH_SIZE)
            )
            return probs
        require_torch()
        dev = self._ready()
        prec = resolve_precision(self.precision, dev)
        return predict_probabilities(self.model, seqs, pad_id=self._pad_id, batch_size=self.batch_size, device=dev, precision=prec)

    @property
    def active_runtime(self) -> str:
        """What :meth:`predict_proba` runs: ``"onnx-int8"`` or ``"torch-<precision>"`` (e.g.
        ``torch-fp32``, ``torch-bf16``), following ``runtime`` and the device.

        Raises
        ------
        ValueError
            ``runtime`` is not auto/torch/onnx, or is ``"onnx"`` without an int8 copy.
        """
        if self.runtime not in ("auto", "torch", "onnx"):
            raise ValueError(f"runtime must be 'auto', 'torch' or 'onnx', got {self.runtime!r}")
        if self.runtime == "onnx":
            if self.onnx is None:
                raise ValueError("runtime='onnx' but this model has no int8 ONNX copy (voc kobert export-onnx)")
            return "onnx-int8"
        dev = resolve_device(self.device)
        if self.runtime == "auto" and self.onnx is not None and dev == "cpu":
            return "onnx-int8"
        return f"torch-{resolve_precision(self.precision, dev)}"

    @property
    def _pad_id(self) -> int:
        pid = self.tokenizer.pad_token_id
        return int(pid) if pid is not None else 0

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the tagger into ``directory`` (created) in transformers format: encoder
        (``config.json`` with each head's ``id2label``/``label2id`` under
        :data:`LABELS_CONFIG_KEY`, ``model.safetensors``), tokenizer files, ``heads.safetensors``
        and ``heads.json`` (module docstring). Returns ``directory``."""
        require_torch()
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        encoder = self.model.encoder
        setattr(encoder.config, LABELS_CONFIG_KEY, _label_maps(self.labels))
        encoder.save_pretrained(str(d))
        save_kobert_tokenizer(self.tokenizer, d)
        tensors = {}
        for dim, head in self.model.heads.items():
            tensors[f"{dim}.weight"] = head.weight.detach().to("cpu", copy=True).contiguous()
            tensors[f"{dim}.bias"] = head.bias.detach().to("cpu", copy=True).contiguous()
        save_file(tensors, str(d / HEADS_WEIGHTS))
        info = {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "version": self.version,
            "use_reply": self.use_reply,
            "low_confidence_threshold": self.low_confidence_threshold,
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "pooling": self.model.pooling,
            "dropout": float(self.model.dropout.p),
            "base": self.base,
            "tokenizer_class": type(self.tokenizer).__name__,
            "heads": list(self.labels),
            "taxonomy": self.taxonomy.to_records(),
            "history": self.history,
        }
        (d / HEADS_JSON).write_text(json.dumps(info, ensure_ascii=False, indent=2), "utf-8")
        return d

    @classmethod
    def load(
        cls, directory: str | Path, *, device: str | None = None, runtime: str = "auto", threads: int | None = None
    ) -> KoBERTTagger:
        """Load a tagger written by :meth:`save` (no training code, no network).

        Head labels come from ``config.json`` (:data:`LABELS_CONFIG_KEY`); a directory written
        before (``heads.json`` format 1) has them in ``heads.json`` or, failing that, in
        ``label_mapping.json`` (:func:`_saved_labels`).

        With ``runtime`` ``"auto"`` or ``"onnx"`` the int8 ONNX copy in ``onnx/`` is opened too
        when it exists and onnxruntime is installed (``threads``: its intra-op threads, None =
        one per core); ``"torch"`` skips it.

        ``low_confidence_threshold`` comes from ``heads.json``, overridden by ``review_threshold``
        of a ``meta.json`` beside it (:mod:`voc.modelstore`) when that is set.

        Raises
        ------
        FileNotFoundError
            ``directory`` has no ``heads.json``.
        ValueError
            Unknown format version, no label maps, head weights that do not match the labels, an
            unknown ``runtime``, or ``runtime="onnx"`` for a model without an int8 copy.
        ImportError
            torch/transformers missing (:data:`INSTALL_HINT`); onnxruntime missing with
            ``runtime="onnx"``.
        """
        require_torch()
        from transformers import AutoModel

        if runtime not in ("auto", "torch", "onnx"):
            raise ValueError(f"runtime must be 'auto', 'torch' or 'onnx', got {runtime!r}")
        d = Path(directory)
        p = d / HEADS_JSON
        if not p.is_file():
            raise FileNotFoundError(f"{d} is not a KoBERT model directory (no {HEADS_JSON})")
        info = json.loads(p.read_text("utf-8"))
        if info.get("format") not in READABLE_FORMATS:
            raise ValueError(f"{p}: unsupported format {info.get('format')!r} (expected one of {READABLE_FORMATS})")
        labels = _saved_labels(d, info)
        model = MultiHeadClassifier(
            AutoModel.from_pretrained(str(d)),
            {dim: len(labs) for dim, labs in labels.items()},
            dropout=info["dropout"],
            pooling=info["pooling"],
        )
        _load_heads(model, d / HEADS_WEIGHTS, labels)
        return cls(
            runtime=runtime,
            onnx=_int8_runner(d, runtime, labels, threads),
            version=info["version"],
            taxonomy=Taxonomy.from_records(info["taxonomy"]),
            model=model,
            tokenizer=load_kobert_tokenizer(d),
            labels=labels,
            use_reply=bool(info["use_reply"]),
            low_confidence_threshold=_saved_threshold(d, info),
            max_length=int(info["max_length"]),
            batch_size=int(info.get("batch_size", 64)),
            device=device,
            base=info.get("base", ""),
            history=list(info.get("history", [])),
        )


def _label_maps(labels: Mapping[str, Sequence[str]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{dim: {"id2label": {"0": label, …}, "label2id": {label: 0, …}}}`` (class id = index)."""
    return {
        dim: {"id2label": {str(i): lab for i, lab in enumerate(labs)}, "label2id": {lab: i for i, lab in enumerate(labs)}}
        for dim, labs in labels.items()
    }


def _saved_labels(directory: Path, info: Mapping[str, Any]) -> dict[str, list[str]]:
    """Labels per head of a saved model, index = class id, heads in ``heads.json`` order.

    Read from ``config.json``'s :data:`LABELS_CONFIG_KEY` (format 2); for format 1 from
    ``heads.json``'s ``heads`` maps, else from :data:`LEGACY_LABEL_MAPPING`.

    Raises
    ------
    ValueError
        None of these holds the label maps.
    """
    maps: Any = None
    cfg = directory / "config.json"
    if cfg.is_file():
        maps = json.loads(cfg.read_text("utf-8")).get(LABELS_CONFIG_KEY)
    if not maps and isinstance(info.get("heads"), dict):
        maps = info["heads"]
    legacy = directory / LEGACY_LABEL_MAPPING
    if not maps and legacy.is_file():
        maps = json.loads(legacy.read_text("utf-8"))
    if not maps:
        raise ValueError(f"{directory}: no label maps (config.json {LABELS_CONFIG_KEY!r}, {HEADS_JSON} or {LEGACY_LABEL_MAPPING})")
    order = info["heads"] if isinstance(info.get("heads"), list) else list(maps)
    return {dim: [maps[dim]["id2label"][str(i)] for i in range(len(maps[dim]["id2label"]))] for dim in order}


def _load_heads(model: Any, path: Path, labels: Mapping[str, Sequence[str]]) -> None:
    """Load ``heads.safetensors`` into ``model.heads`` (eval mode).

    Raises
    ------
    ValueError
        Its tensors are not ``{dim}.weight``/``{dim}.bias`` of exactly the heads of ``labels``.
    """
    from safetensors.torch import load_file

    state = load_file(str(path))
    expected = {f"{dim}.{w}" for dim in labels for w in ("weight", "bias")}
    if set(state) != expected:
        raise ValueError(f"{path}: tensors {sorted(state)} do not match heads {sorted(labels)}")
    model.heads.load_state_dict(state)
    model.eval()


def _saved_threshold(directory: Path, info: Mapping[str, Any]) -> float | None:
    """``review_threshold`` of a ``meta.json`` beside the model when set, else ``heads.json``'s."""
    meta = directory / "meta.json"
    if meta.is_file():
        rt = json.loads(meta.read_text("utf-8")).get("review_threshold")
        if rt is not None:
            return float(rt)
    return info.get("low_confidence_threshold")


def _int8_runner(directory: Path, runtime: str, labels: Mapping[str, Sequence[str]], threads: int | None) -> Any:
    """The :class:`voc.classify.kobert_onnx.OnnxRunner` of ``directory/onnx/`` for ``runtime``
    (``onnx``: required; ``auto``: when present and onnxruntime is installed), else None.

    Raises
    ------
    ValueError
        ``runtime="onnx"`` without a copy, or a copy whose heads differ from ``labels``.
    """
    has_copy = (directory / kobert_onnx.ONNX_DIR / kobert_onnx.ONNX_MODEL).is_file()
    if runtime == "onnx" and not has_copy:
        raise ValueError(f"{directory}: runtime='onnx' but there is no {kobert_onnx.ONNX_DIR}/{kobert_onnx.ONNX_MODEL}")
    if not (runtime == "onnx" or (runtime == "auto" and has_copy and kobert_onnx.onnx_runtime_available())):
        return None
    runner = kobert_onnx.OnnxRunner.load(directory, threads=threads)
    if sorted(runner.heads) != sorted(labels):
        raise ValueError(f"{directory}: int8 copy heads {runner.heads} do not match {sorted(labels)}")
    return runner


# --------------------------------------------------------------------------------------------
# training


def class_weights(y: np.ndarray, n_classes: int, *, clip: float = 10.0) -> np.ndarray:
    """Inverse-frequency class weights ``n / (K · n_c)`` (scikit-learn's "balanced"), clipped to
    ``[1/clip, clip]`` so a class seen once cannot dominate the loss. Labels ``-100`` are ignored;
    a class absent from ``y`` gets ``clip``. Returns K floats."""
    y = np.asarray(y)
    y = y[y >= 0]
    counts = np.bincount(y, minlength=n_classes).astype(float)
    with np.errstate(divide="ignore"):
        w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), clip)
    return np.clip(w, 1.0 / clip, clip)


@dataclass(frozen=True)
class KoBertTrainingOptions:
    """How a KoBERT tagger is fine-tuned (:func:`fine_tune`, :func:`fine_tune_tagger`,
    :func:`voc.kobert_training.train_kobert_tagger`); the defaults are the training flow's.

    Attributes
    ----------
    base
        Hub id or local directory of the base checkpoint (:data:`DEFAULT_BASE`; a hub id needs
        network access or a filled Hugging Face cache).
    epochs
        Maximum epochs (early stopping may end sooner).
    batch_size
        Texts per optimisation step on one device (``per_device_train_batch_size``).
    max_length
        Tokens per text, ``[CLS]``/``[SEP]`` included (KoBERT supports 512; 256 by default,
        config.settings.ModelSettings.kobert_max_length).
    lr, weight_decay, warmup_ratio, max_grad_norm
        AdamW (Loshchilov & Hutter 2019) with decoupled weight decay 0.01 on all weights but
        biases and LayerNorm (``Trainer``'s grouping); learning rate 5e-5, the top of BERT's
        fine-tuning grid {5e-5, 3e-5, 2e-5} (Devlin et al. 2019, App. A.3), with linear warm-up
        over the first 10 % of steps and linear decay to 0; gradient norm clipped at 1.0
        (``TrainingArguments`` default).
    class_weight_clip
        Inverse-frequency class weights of the loss are clipped to ``[1/c, c]`` (:func:`class_weights`).
    dropout
        Dropout before the heads; None = the encoder's ``hidden_dropout_prob`` (0.1 for BERT).
    seed
        Seeds the heads' initial weights, dropout and the batch order (``TrainingArguments.seed``
        and ``data_seed``). Runs on CPU are bit-for-bit repeatable; CUDA kernels may not be.
    device
        ``"cpu"``, ``"cuda"`` or ``"cuda:0"``; None = CUDA when present, else CPU
        (:func:`resolve_device`). ``Trainer`` trains on the first visible GPU: pick another one
        with ``CUDA_VISIBLE_DEVICES``.
    precision
        ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` (:func:`resolve_precision`); ``bf16``/``fp16``
        are ``Trainer``'s mixed precision (``fp16`` with loss scaling, CUDA only).
    progress
        Show ``Trainer``'s progress bar.
    patience
        Stop after this many epochs without a better held-out macro-F1 (``EarlyStoppingCallback``).
    eval_batch_size
        Batch size of held-out evaluation and of the returned tagger's inference.
    """

    base: str = DEFAULT_BASE
    epochs: int = 5
    batch_size: int = 32
    max_length: int = 256
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    class_weight_clip: float = 10.0
    dropout: float | None = None
    seed: int = 42
    device: str | None = None
    precision: str = "auto"
    progress: bool = True
    patience: int = 2
    eval_batch_size: int = 64

    def replace(self, **changes: Any) -> KoBertTrainingOptions:
        """A copy with ``changes`` applied.

        Raises
        ------
        TypeError
            A name that is not a field (the message lists the fields).
        """
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(f"unknown KoBERT training option(s) {unknown}; options: {sorted(names)}")
        return dataclasses.replace(self, **changes)


class HeadRows(Protocol):
    """Training and held-out rows of one head (:class:`voc.tagger.DimensionSplit` is one):
    row indices into the texts, and their labels (``"major>minor"``) aligned with them."""

    @property
    def train_rows(self) -> np.ndarray: ...

    @property
    def train_labels(self) -> Sequence[str]: ...

    @property
    def holdout_rows(self) -> np.ndarray: ...

    @property
    def holdout_labels(self) -> Sequence[str]: ...


def fine_tune_tagger(
    texts: Sequence[str],
    plan: Mapping[str, HeadRows],
    taxonomy: Taxonomy,
    *,
    version: str,
    use_reply: bool,
    options: KoBertTrainingOptions,
) -> KoBERTTagger:
    """Fine-tune one encoder with one head per dimension of ``plan`` on ``texts``.

    Head ``d`` has the sorted distinct labels of ``plan[d].train_labels`` as its K_d classes. The
    encoder trains on the union of the heads' training rows; a row without a label of some
    dimension adds no loss to that head. The union of the held-out rows is evaluated after each
    epoch (held-out macro-F1, :func:`fine_tune`); a held-out label the head never saw in training
    counts in that score (never predicted) but not in the loss.

    Parameters
    ----------
    texts
        N texts (``all_text``); ``plan`` indexes into them.
    plan
        Dimension → its rows (:class:`HeadRows`); each with ≥ 2 training classes.
    taxonomy
        Taxonomy of the tagger (dimensions without a head are tagged by its keywords).
    version, use_reply
        Stored on the tagger.
    options
        See :class:`KoBertTrainingOptions`.

    Returns
    -------
    KoBERTTagger
        The best epoch's model on ``options.device``, ``history`` set (:func:`fine_tune`).

    Raises
    ------
    ValueError
        Empty ``plan`` (nothing to fine-tune).
    ImportError
        torch/transformers/accelerate missing (:data:`INSTALL_HINT`).
    OSError
        The base or its tokenizer cannot be loaded.
    """
    torch_, _ = require_torch()
    from transformers import AutoModel

    if not plan:
        raise ValueError("no dimension has at least two labelled classes; nothing to fine-tune (train a CPU kind instead)")
    labels = {d: sorted(set(p.train_labels)) for d, p in plan.items()}
    train_idx = _row_union(p.train_rows for p in plan.values())
    eval_idx = _row_union(p.holdout_rows for p in plan.values())
    tokenizer = load_kobert_tokenizer(options.base)
    needed = np.union1d(train_idx, eval_idx)
    enc = dict(zip(needed.tolist(), encode_texts(tokenizer, [texts[i] for i in needed], max_length=options.max_length)))
    targets = _head_targets(plan, labels, train_idx, holdout=False)
    weights = {d: class_weights(y, len(labels[d]), clip=options.class_weight_clip) for d, y in targets.items()}
    holdout = ([enc[int(i)] for i in eval_idx], _head_targets(plan, labels, eval_idx, holdout=True)) if len(eval_idx) else None
    with torch_.random.fork_rng(devices=[]):
        torch_.manual_seed(options.seed)  # heads (and any encoder weight missing from the base) drawn here
        encoder = AutoModel.from_pretrained(str(options.base))
        p_drop = float(getattr(encoder.config, "hidden_dropout_prob", 0.1)) if options.dropout is None else float(options.dropout)
        model = MultiHeadClassifier(encoder, {d: len(v) for d, v in labels.items()}, dropout=p_drop)
    tagger = KoBERTTagger(
        version=version,
        taxonomy=taxonomy,
        model=model,
        tokenizer=tokenizer,
        labels=labels,
        use_reply=use_reply,
        max_length=options.max_length,
        batch_size=options.eval_batch_size,
        device=resolve_device(options.device),
        precision=options.precision,
        base=str(options.base),
    )
    seqs = [enc[int(i)] for i in train_idx]
    tagger.history = fine_tune(model, seqs, targets, pad_id=tagger._pad_id, options=options, weights=weights, holdout=holdout)
    return tagger


def _row_union(parts: Iterator[np.ndarray]) -> np.ndarray:
    """Sorted distinct row indices of ``parts``."""
    return np.array(sorted({int(i) for r in parts for i in r}), dtype=int)


def _head_targets(
    plan: Mapping[str, HeadRows], labels: Mapping[str, Sequence[str]], rows: np.ndarray, *, holdout: bool
) -> dict[str, np.ndarray]:
    """Per head, the class id of each of ``rows`` (``len(rows)`` int64), ``-100`` where the row has
    no label of that head. Held-out labels the head does not know get ids ``K_d, K_d + 1, …``."""
    pos = {int(r): k for k, r in enumerate(rows)}
    out: dict[str, np.ndarray] = {}
    for dim, p in plan.items():
        lid = {lab: i for i, lab in enumerate(labels[dim])}
        r, labs = (p.holdout_rows, p.holdout_labels) if holdout else (p.train_rows, p.train_labels)
        for lab in sorted(set(labs) - set(lid)):
            lid[lab] = len(lid)
        y = np.full(len(rows), -100, dtype=np.int64)
        y[[pos[int(i)] for i in r]] = [lid[lab] for lab in labs]
        out[dim] = y
    return out


def fine_tune(
    model: Any,
    seqs: Sequence[Sequence[int]],
    targets: Mapping[str, np.ndarray],
    *,
    pad_id: int,
    options: KoBertTrainingOptions | None = None,
    weights: Mapping[str, np.ndarray] | None = None,
    holdout: tuple[Sequence[Sequence[int]], Mapping[str, np.ndarray]] | None = None,
) -> list[dict[str, Any]]:
    """Fine-tune ``model`` (a :class:`MultiHeadClassifier`) in place with ``transformers.Trainer``.

    ``TrainingArguments`` from ``options`` (:class:`KoBertTrainingOptions`: AdamW, linear
    schedule with warm-up, clipping, mixed precision, seeds); the loss is the sum over heads of
    the class-weighted cross-entropy of the rows labelled for that head. With ``holdout`` the
    model is evaluated after every epoch, the held-out macro-F1 (``compute_metrics``: scikit-learn
    ``f1_score(average="macro")`` over the classes present, mean over heads) picks the checkpoint
    kept (``metric_for_best_model``, ``load_best_model_at_end``; the first of equal scores) and
    ``EarlyStoppingCallback`` stops after ``options.patience`` epochs without improvement.
    Without it, every epoch runs and the last is kept. Checkpoints go to a temporary directory.

    Parameters
    ----------
    model
        Model to train; moved to the training device.
    seqs
        N token-id lists (:func:`encode_texts`), padded per batch (:func:`pad_batch`).
    targets
        Per head, N class ids (int), ``-100`` where the row has no label of that dimension.
    pad_id
        Padding id.
    options
        See :class:`KoBertTrainingOptions` (``base``, ``max_length``, ``class_weight_clip`` and
        ``dropout`` are not read here); None = defaults.
    weights
        Per head, K_d class weights for the loss (:func:`class_weights`); None = unweighted.
    holdout
        ``(seqs, targets)`` of the held-out rows, same layout; ids ≥ K_d mark classes the head
        cannot predict (counted in the macro-F1, left out of the loss). None = no evaluation.

    Returns
    -------
    list[dict]
        One record per epoch run: ``epoch`` (1-based), ``train_loss`` (mean over the epoch's
        steps, as ``Trainer`` logs it), ``holdout_macro_f1`` (or None), ``seconds`` (wall time of
        the training pass, evaluation excluded), ``best`` (the kept epoch). The model ends with
        the best epoch's weights, in eval mode. Python's, NumPy's and torch's global random
        states are those of the caller afterwards (``Trainer`` seeds them while it runs).

    Raises
    ------
    ValueError
        Empty training set, a head's targets length differs from its ``seqs``, or a CUDA device
        other than the first visible one.
    ImportError
        torch/transformers/accelerate missing (:data:`INSTALL_HINT`).
    """
    require_torch()
    if importlib.util.find_spec("accelerate") is None:  # Trainer runs on it
        raise ImportError(f"fine-tuning needs accelerate (kobert extra): {INSTALL_HINT}")
    from transformers import EarlyStoppingCallback, Trainer

    opts = options or KoBertTrainingOptions()
    heads = list(model.heads)
    if len(seqs) == 0:
        raise ValueError("fine_tune needs at least one training text")
    train_set = _labelled_rows(seqs, targets, heads)
    eval_set = _labelled_rows(holdout[0], holdout[1], heads) if holdout is not None and len(holdout[0]) else None
    dev = resolve_device(opts.device)
    if dev.startswith("cuda:") and dev != "cuda:0":
        raise ValueError(f"Trainer trains on the first visible GPU; for {dev} set CUDA_VISIBLE_DEVICES instead")
    recorder = _epoch_recorder(dev)
    callbacks = [recorder] if eval_set is None else [recorder, EarlyStoppingCallback(early_stopping_patience=opts.patience)]
    with tempfile.TemporaryDirectory(prefix="voc-kobert-") as out, _caller_rng_kept(dev), warnings.catch_warnings():
        # rotating checkpoints, Trainer notes that a temporary directory's mtimes may be coarse; it
        # then orders them by step number, which is what is wanted
        warnings.filterwarnings("ignore", message="mtime may not be reliable")
        trainer = Trainer(
            model=model,
            args=_training_arguments(opts, out, dev, evaluate=eval_set is not None),
            train_dataset=train_set,
            eval_dataset=eval_set,
            data_collator=_collate(pad_id),
            compute_loss_func=_multi_head_loss(heads, weights),
            compute_metrics=_holdout_macro_f1(heads) if eval_set is not None else None,
            callbacks=callbacks,
        )
        if not opts.progress:
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)  # it prints every log line to stdout
        trainer.train()
        best = trainer.state.best_metric if eval_set is not None else None
        del trainer
    model.eval()
    history: list[dict[str, Any]] = recorder.finish(best)
    return history


def _labelled_rows(seqs: Sequence[Sequence[int]], targets: Mapping[str, np.ndarray], heads: Sequence[str]) -> list[dict[str, Any]]:
    """``Trainer`` dataset: per row ``{"input_ids": ids, "labels": [class id per head]}``.

    Raises
    ------
    ValueError
        A head's targets length differs from ``seqs``, or a head of ``heads`` has none.
    """
    n = len(seqs)
    for d in heads:
        if d not in targets or len(targets[d]) != n:
            raise ValueError(f"targets[{d!r}] has {len(targets.get(d, []))} rows, seqs has {n}")
    y = np.stack([np.asarray(targets[d], dtype=np.int64) for d in heads], axis=1)
    return [{"input_ids": list(seqs[i]), "labels": y[i].tolist()} for i in range(n)]


def _collate(pad_id: int) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """Batches of ``B × T`` ``input_ids``/``attention_mask`` (dynamic padding, :func:`pad_batch`)
    and ``B × D`` ``labels`` (one column per head)."""
    torch_, _ = require_torch()

    def collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
        ids, mask = pad_batch([r["input_ids"] for r in rows], pad_id)
        return {
            "input_ids": torch_.from_numpy(ids),
            "attention_mask": torch_.from_numpy(mask),
            "labels": torch_.tensor([r["labels"] for r in rows], dtype=torch_.long),
        }

    return collate


def _multi_head_loss(heads: Sequence[str], weights: Mapping[str, np.ndarray] | None) -> Callable[..., Any]:
    """``compute_loss_func(outputs, labels, num_items_in_batch)``: sum over heads of the
    class-weighted cross-entropy (mean over the rows labelled for that head, in float32); ids
    ``-100`` and ids ≥ K_d are ignored. A batch with no label of any head gives a zero loss."""
    torch_, _ = require_torch()
    w = {d: torch_.as_tensor(weights[d], dtype=torch_.float32) for d in heads if weights is not None and d in weights}

    def loss(outputs: Mapping[str, Any], labels: Any, num_items_in_batch: Any = None) -> Any:
        total = None
        for j, d in enumerate(heads):
            lg = outputs[d].float()
            y = labels[:, j].masked_fill(labels[:, j] >= lg.shape[1], -100)
            if bool((y != -100).any()):
                wd = w.get(d)
                part = torch_.nn.functional.cross_entropy(
                    lg, y, weight=None if wd is None else wd.to(lg.device), ignore_index=-100
                )
                total = part if total is None else total + part
        if total is None:  # keeps the graph (and Trainer's step) well-defined
            total = sum(outputs[d].float().sum() for d in heads) * 0.0
        return total

    return loss


def _holdout_macro_f1(heads: Sequence[str]) -> Callable[[Any], dict[str, float]]:
    """``compute_metrics``: per head, scikit-learn's ``f1_score(average="macro")`` over the
    classes present in its held-out labels (``zero_division=0``; the held-out macro-F1 of
    :func:`voc.metrics.classification_metrics`), as ``macro_f1_{dim}``, and their mean as
    ``macro_f1`` (the checkpoint and early-stopping metric)."""
    from sklearn.metrics import f1_score

    def compute(pred: Any) -> dict[str, float]:
        logits = pred.predictions if isinstance(pred.predictions, tuple) else (pred.predictions,)
        y = np.asarray(pred.label_ids).reshape(len(logits[0]), len(heads))
        scores: dict[str, float] = {}
        for j, d in enumerate(heads):
            keep = y[:, j] != -100
            if keep.any():
                yt, yp = y[keep, j], np.asarray(logits[j])[keep].argmax(axis=1)
                scores[f"macro_f1_{d}"] = float(f1_score(yt, yp, labels=np.unique(yt), average="macro", zero_division=0))
        return {"macro_f1": float(np.mean(list(scores.values()))) if scores else 0.0, **scores}

    return compute


def _training_arguments(opts: KoBertTrainingOptions, out_dir: str, device: str, *, evaluate: bool) -> Any:
    """``TrainingArguments`` of ``opts``: per-epoch logging, and with ``evaluate`` per-epoch
    evaluation and model-only checkpoints (best and last kept) ranked by ``macro_f1``."""
    from transformers import TrainingArguments

    prec = resolve_precision(opts.precision, device)
    per_epoch = "epoch" if evaluate else "no"
    return TrainingArguments(
        output_dir=out_dir,
        num_train_epochs=opts.epochs,
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=opts.eval_batch_size,
        learning_rate=opts.lr,
        weight_decay=opts.weight_decay,
        warmup_ratio=opts.warmup_ratio,
        lr_scheduler_type="linear",
        max_grad_norm=opts.max_grad_norm,
        optim="adamw_torch",
        seed=opts.seed,
        data_seed=opts.seed,
        use_cpu=device == "cpu",
        bf16=prec == "bf16",
        fp16=prec == "fp16",
        eval_strategy=per_epoch,
        save_strategy=per_epoch,
        logging_strategy="epoch",
        load_best_model_at_end=evaluate,
        metric_for_best_model="macro_f1" if evaluate else None,
        greater_is_better=True,
        save_total_limit=1,
        save_only_model=True,
        label_names=["labels"],
        remove_unused_columns=False,
        dataloader_pin_memory=device.startswith("cuda"),
        disable_tqdm=not opts.progress,
        report_to="none",
    )


def _epoch_recorder(device: str) -> Any:
    """A ``TrainerCallback`` collecting :func:`fine_tune`'s per-epoch records."""
    torch_, _ = require_torch()
    from transformers import TrainerCallback

    cuda = device.startswith("cuda")

    class EpochRecorder(TrainerCallback):
        def __init__(self) -> None:
            self.history: list[dict[str, Any]] = []
            self._t0 = self._seconds = 0.0

        def _now(self) -> float:
            if cuda:  # the GPU's queued work belongs to the epoch
                torch_.cuda.synchronize()
            return time.perf_counter()

        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._t0 = self._now()

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._seconds = self._now() - self._t0

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:  # the epoch's training log (evaluation logs have eval_*)
                self.history.append({"epoch": len(self.history) + 1, "train_loss": float(logs["loss"]),
                                     "holdout_macro_f1": None, "seconds": round(self._seconds, 3), "best": False})

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if self.history and metrics and "eval_macro_f1" in metrics:
                self.history[-1]["holdout_macro_f1"] = float(metrics["eval_macro_f1"])

        def finish(self, best: float | None) -> list[dict[str, Any]]:
            """The records, ``best`` set on the first epoch scoring ``best`` (the last without one)."""
            scored = [r for r in self.history if best is not None and r["holdout_macro_f1"] == best]
            if scored:
                scored[0]["best"] = True
            elif self.history:
                self.history[-1]["best"] = True
            return self.history

    return EpochRecorder()


@contextlib.contextmanager
def _caller_rng_kept(device: str) -> Iterator[None]:
    """Restore Python's, NumPy's and torch's (CPU and ``device``'s CUDA) global random states on
    exit: ``Trainer`` calls ``transformers.set_seed``, which reseeds them all."""
    torch_, _ = require_torch()
    py, npy = random.getstate(), np.random.get_state()
    cuda = [0] if device.startswith("cuda") else []
    try:
        with torch_.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
