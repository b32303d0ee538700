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
``config.json`` + ``model.safetensors`` (the encoder, ``save_pretrained``), the tokenizer files,
``heads.safetensors`` (``{dim}.weight`` ``K_d × H``, ``{dim}.bias`` ``K_d``) and ``heads.json``
(per head ``id2label``/``label2id``, pooling, dropout, max_length, taxonomy, use_reply, version,
training history). The training flow adds ``onnx/`` (an int8 ONNX Runtime copy for CPU workers,
:mod:`voc.classify.kobert_onnx`), which :meth:`KoBERTTagger.load` uses on the CPU.

Dependencies
------------
``torch`` and ``transformers`` are needed only when a KoBERT model is built, trained, loaded or
run; importing this module without them works, and those calls raise :class:`ImportError` with
the install command (:data:`INSTALL_HINT`).
"""

from __future__ import annotations

import io
import json
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voc.classify.base import Tags
from voc.classify.keyword import KeywordClassifier
from voc.taxonomy import Taxonomy

try:  # guarded: `import voc` and the CPU tagger work without the kobert extra
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - exercised only where torch is absent
    torch = None  # type: ignore[assignment]
    nn = None  # type: ignore[assignment]

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

    from voc.tagger import TrainReport

__all__ = [
    "DEFAULT_BASE",
    "INSTALL_HINT",
    "KOBERT_SP_FILE",
    "KOBERT_BASE_SHAPE",
    "KoBERTTagger",
    "MultiHeadClassifier",
    "train_kobert_tagger",
    "fine_tune",
    "load_kobert_tokenizer",
    "save_kobert_tokenizer",
    "build_tiny_base",
    "encode_texts",
    "pad_batch",
    "batched_probabilities",
    "class_weights",
    "resolve_device",
    "resolve_precision",
]

DEFAULT_BASE = "skt/kobert-base-v1"
"""Default base checkpoint (config.settings.ModelSettings.kobert_base)."""

INSTALL_HINT = (
    "KoBERT needs torch and transformers: `pip install torch==2.13.0` (CPU wheel; a CUDA build on GPU "
    "hosts) and `pip install -e '.[kobert]'`"
)

KOBERT_SP_FILE = "tokenizer_78b3253a26.model"
"""SentencePiece file name of ``kobert_transformers.tokenization_kobert.VOCAB_FILES_NAMES``."""
VOCAB_TXT = "vocab.txt"
SKT_SP_FILE = "spiece.model"
"""SentencePiece file name of the skt/kobert-base-v1 repository (XLNetTokenizer layout)."""
HEADS_JSON = "heads.json"
HEADS_WEIGHTS = "heads.safetensors"
FORMAT_VERSION = 1

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

_PREFIX_SAFE_TOKENIZERS = ("KoBertTokenizer", "KoBERTTokenizer", "XLNetTokenizer", "BertTokenizer")
"""Slow tokenizers whose pieces never span whitespace, so the tokens of a text cut at a
whitespace are a prefix of the tokens of the whole text (see :func:`encode_texts`)."""


def _require() -> tuple[Any, Any]:
    """``(torch, transformers)``; raises :class:`ImportError` with :data:`INSTALL_HINT`."""
    if torch is None:
        raise ImportError(INSTALL_HINT)
    try:
        import transformers
    except ImportError as e:  # pragma: no cover
        raise ImportError(INSTALL_HINT) from e
    return torch, transformers


# --------------------------------------------------------------------------------------------
# devices and precision


def resolve_device(device: str | None = None) -> str:
    """``device`` or, when None, ``"cuda"`` if a CUDA GPU is visible else ``"cpu"``."""
    torch_, _ = _require()
    if device:
        return str(device)
    return "cuda" if torch_.cuda.is_available() else "cpu"


def resolve_precision(precision: str, device: str) -> str:
    """Concrete compute precision for ``device``.

    ``"auto"`` → ``"bf16"`` on a CUDA GPU that supports bfloat16 (Ampere and newer), ``"fp16"``
    on an older CUDA GPU, ``"fp32"`` on CPU. ``"fp32"``, ``"bf16"``, ``"fp16"`` are returned as
    given (``bf16`` on CPU uses CPU autocast).

    Raises
    ------
    ValueError
        Unknown precision, or ``fp16`` on CPU.
    """
    torch_, _ = _require()
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    cuda = str(device).startswith("cuda")
    if precision == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if torch_.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and not cuda:
        raise ValueError("fp16 autocast is for CUDA; use fp32 or bf16 on CPU")
    return precision


def _autocast(precision: str, device: str):
    torch_, _ = _require()
    dev_type = "cuda" if str(device).startswith("cuda") else "cpu"
    if precision == "fp32":
        return torch_.autocast(dev_type, enabled=False)
    dtype = torch_.bfloat16 if precision == "bf16" else torch_.float16
    return torch_.autocast(dev_type, dtype=dtype)


# --------------------------------------------------------------------------------------------
# tokenizer


def _tokenizer_files(base: str | Path, names: Sequence[str]) -> dict[str, str | None]:
    """Local path of each file ``names`` of ``base`` (a directory or a hub id; hub files are
    downloaded or taken from the Hugging Face cache), None where the file does not exist."""
    p = Path(str(base))
    if p.is_dir():
        return {n: str(p / n) if (p / n).is_file() else None for n in names}
    from transformers.utils import cached_file

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
        return json.loads(Path(cfg).read_text("utf-8")).get("model_type")
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
    _require()
    files = _tokenizer_files(base, [KOBERT_SP_FILE, VOCAB_TXT, SKT_SP_FILE])
    errors: list[str] = []
    is_bert = None
    if files[SKT_SP_FILE]:
        is_bert = _config_model_type(base) in ("bert", None)
    if files[SKT_SP_FILE] and is_bert:
        try:
            from kobert_tokenizer import KoBERTTokenizer  # type: ignore[import-not-found]

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
        except Exception as e:  # noqa: BLE001
            errors.append(f"KoBertTokenizer: {e!r}")
    if files[SKT_SP_FILE] and is_bert:
        try:
            return _kobert_from_spiece(str(files[SKT_SP_FILE]))
        except ImportError:
            errors.append("kobert-transformers not installed")
        except Exception as e:  # noqa: BLE001
            errors.append(f"KoBertTokenizer(spiece.model): {e!r}")
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(base))
    except Exception as e:  # noqa: BLE001
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
        Seed of the SentencePiece sampler and of the weights.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ValueError
        ``texts`` has no non-empty line.
    ImportError
        torch/transformers/sentencepiece missing.
    """
    torch_, _ = _require()
    import sentencepiece as spm
    from transformers import BertConfig, BertModel

    lines = _sentences(texts)
    if not lines:
        raise ValueError("build_tiny_base needs at least one non-empty text")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
    (out / KOBERT_SP_FILE).write_bytes(proto)
    sp = spm.SentencePieceProcessor(model_proto=proto)
    pieces = [sp.IdToPiece(i) for i in range(sp.GetPieceSize())]
    assert tuple(pieces[:5]) == KOBERT_SPECIALS, pieces[:5]
    (out / VOCAB_TXT).write_text("".join(p + "\n" for p in pieces), "utf-8")
    cfg_tok = {
        "do_lower_case": False,
        "remove_space": True,
        "keep_accents": False,
        "model_max_length": max_position_embeddings,
        "tokenizer_class": "KoBertTokenizer",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(cfg_tok, indent=2), "utf-8")
    config = BertConfig(
        vocab_size=len(pieces),
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
        model = BertModel(config)
    model.save_pretrained(str(out))
    return out


def encode_texts(tokenizer: Any, texts: Sequence[str], *, max_length: int) -> list[list[int]]:
    """Token ids of each text, truncated to ``max_length`` including ``[CLS]``/``[SEP]``.

    Equal to ``tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]`` (the
    tests check this on the shipped sample), but faster for slow (Python) tokenizers:

    * tokens are mapped to ids through one vocabulary dict instead of the tokenizer's per-token
      ``convert_tokens_to_ids``;
    * a long text is first tokenized only up to the first whitespace after ``4 × max_length``
      characters; if that prefix already yields enough tokens they are used, else the whole text
      is tokenized. This is exact for tokenizers whose pieces never span whitespace
      (SentencePiece with whitespace splitting as in KoBERT, WordPiece), listed in
      ``_PREFIX_SAFE_TOKENIZERS``; others always tokenize the whole text.

    Together ≈ 5 × faster than the tokenizer call with kobert-transformers' ``KoBertTokenizer``
    (all 996 sample texts, max_length 128 or 256: 0.5 s vs 2.4–2.8 s on the 2-core dev VM).

    Fast (Rust) tokenizers are called once on the whole batch.

    Returns
    -------
    list[list[int]]
        N lists of ids, each of length ≤ ``max_length``.

    Raises
    ------
    ValueError
        ``max_length`` leaves no room for a token after the special tokens.
    """
    n_special = tokenizer.num_special_tokens_to_add(pair=False)
    budget = max_length - n_special
    if budget < 1:
        raise ValueError(f"max_length={max_length} leaves no room for tokens ({n_special} special tokens)")
    texts = [t if isinstance(t, str) else "" for t in texts]
    if getattr(tokenizer, "is_fast", False):
        return list(tokenizer(texts, truncation=True, max_length=max_length)["input_ids"])
    vocab = tokenizer.get_vocab()
    unk = tokenizer.unk_token_id
    prefix_safe = any(c.__name__ in _PREFIX_SAFE_TOKENIZERS for c in type(tokenizer).__mro__)
    cut = 4 * max_length
    out: list[list[int]] = []
    for text in texts:
        pieces = None
        if prefix_safe and len(text) > cut:
            j = next((k for k in range(cut, len(text)) if text[k].isspace()), -1)
            if j > 0:
                head = tokenizer.tokenize(text[:j])
                if len(head) >= budget:
                    pieces = head
        if pieces is None:
            pieces = tokenizer.tokenize(text)
        ids = [vocab.get(p, unk) for p in pieces[:budget]]
        out.append(tokenizer.build_inputs_with_special_tokens(ids))
    return out


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad ``B`` id lists to the longest of them (dynamic padding).

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``input_ids`` and ``attention_mask``, both ``B × T`` int64 with ``T = max len``.
    """
    t = max((len(s) for s in seqs), default=0)
    ids = np.full((len(seqs), t), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), t), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return ids, mask


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
            self.heads = nn.ModuleDict({d: nn.Linear(hidden, int(k)) for d, k in head_sizes.items()})
            std = float(getattr(encoder.config, "initializer_range", 0.02))
            for head in self.heads.values():  # BERT's initialisation: N(0, initializer_range), bias 0
                nn.init.normal_(head.weight, mean=0.0, std=std)
                nn.init.zeros_(head.bias)

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
            pooled = getattr(out, "pooler_output", None) if self.pooling == "pooler" else None
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
            b, t, hidden = h.shape
            heads, size = int(sa.num_attention_heads), int(sa.attention_head_size)
            cls = h[:, :1]
            q = sa.query(cls).view(b, 1, heads, size).transpose(1, 2)
            k = sa.key(h).view(b, t, heads, size).transpose(1, 2)
            v = sa.value(h).view(b, t, heads, size).transpose(1, 2)
            ctx = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=ext.to(q.dtype))
            ctx = ctx.transpose(1, 2).reshape(b, 1, heads * size)
            a = last.attention.output(ctx, cls)
            o = last.output(last.intermediate(a), a)  # B × 1 × H
            if self.pooling == "pooler" and getattr(enc, "pooler", None) is not None:
                return enc.pooler(o)
            return o[:, 0]

else:  # pragma: no cover

    class MultiHeadClassifier:  # type: ignore[no-redef]
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
            from voc.classify.kobert_onnx import CPU_BATCH_SIZE

            return self.onnx.predict(seqs, pad_id=self._pad_id, batch_size=min(self.batch_size, CPU_BATCH_SIZE))
        _require()
        dev = self._ready()
        prec = resolve_precision(self.precision, dev)
        return _predict(self.model, seqs, pad_id=self._pad_id, batch_size=self.batch_size, device=dev, precision=prec)

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
        (``config.json``, ``model.safetensors``), tokenizer files, ``heads.safetensors`` and
        ``heads.json`` (module docstring). Returns ``directory``."""
        _require()
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.model.encoder.save_pretrained(str(d))
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
            "heads": {
                dim: {
                    "id2label": {str(i): lab for i, lab in enumerate(labs)},
                    "label2id": {lab: i for i, lab in enumerate(labs)},
                }
                for dim, labs in self.labels.items()
            },
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
            Unknown format version, head weights that do not match ``heads.json``, or
            ``runtime="onnx"`` for a model without an int8 copy.
        ImportError
            torch/transformers missing (:data:`INSTALL_HINT`); onnxruntime missing with
            ``runtime="onnx"``.
        """
        _require()
        from voc.classify import kobert_onnx
        from safetensors.torch import load_file
        from transformers import AutoModel

        d = Path(directory)
        p = d / HEADS_JSON
        if not p.is_file():
            raise FileNotFoundError(f"{d} is not a KoBERT model directory (no {HEADS_JSON})")
        info = json.loads(p.read_text("utf-8"))
        if info.get("format") != FORMAT_VERSION:
            raise ValueError(f"{p}: unsupported format {info.get('format')!r} (expected {FORMAT_VERSION})")
        labels = {
            dim: [h["id2label"][str(i)] for i in range(len(h["id2label"]))] for dim, h in info["heads"].items()
        }
        encoder = AutoModel.from_pretrained(str(d))
        model = MultiHeadClassifier(
            encoder, {dim: len(labs) for dim, labs in labels.items()}, dropout=info["dropout"], pooling=info["pooling"]
        )
        state = load_file(str(d / HEADS_WEIGHTS))
        expected = {f"{dim}.{w}" for dim in labels for w in ("weight", "bias")}
        if set(state) != expected:
            raise ValueError(f"{d / HEADS_WEIGHTS}: tensors {sorted(state)} do not match heads {sorted(labels)}")
        model.heads.load_state_dict(state)
        model.eval()
        threshold = info.get("low_confidence_threshold")
        meta = d / "meta.json"
        if meta.is_file():
            rt = json.loads(meta.read_text("utf-8")).get("review_threshold")
            if rt is not None:
                threshold = float(rt)
        if runtime not in ("auto", "torch", "onnx"):
            raise ValueError(f"runtime must be 'auto', 'torch' or 'onnx', got {runtime!r}")
        runner = None
        has_copy = (d / kobert_onnx.ONNX_DIR / kobert_onnx.ONNX_MODEL).is_file()
        if runtime == "onnx" and not has_copy:
            raise ValueError(f"{d}: runtime='onnx' but there is no {kobert_onnx.ONNX_DIR}/{kobert_onnx.ONNX_MODEL}")
        if runtime == "onnx" or (runtime == "auto" and has_copy and kobert_onnx.onnx_runtime_available()):
            runner = kobert_onnx.OnnxRunner.load(d, threads=threads)
            if sorted(runner.heads) != sorted(labels):
                raise ValueError(f"{d}: int8 copy heads {runner.heads} do not match {sorted(labels)}")
        return cls(
            runtime=runtime,
            onnx=runner,
            version=info["version"],
            taxonomy=Taxonomy.from_records(info["taxonomy"]),
            model=model,
            tokenizer=load_kobert_tokenizer(d),
            labels=labels,
            use_reply=bool(info["use_reply"]),
            low_confidence_threshold=threshold,
            max_length=int(info["max_length"]),
            batch_size=int(info.get("batch_size", 64)),
            device=device,
            base=info.get("base", ""),
            history=list(info.get("history", [])),
        )


def _predict(
    model: Any, seqs: Sequence[Sequence[int]], *, pad_id: int, batch_size: int, device: str, precision: str
) -> dict[str, np.ndarray]:
    """Length-sorted, dynamically padded batched inference; ``{dim: N × K_d}`` in input order."""
    torch_, _ = _require()

    def forward(ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        logits = model(torch_.from_numpy(ids).to(device), torch_.from_numpy(mask).to(device))
        return {d: torch_.softmax(lg.float(), dim=-1).cpu().numpy() for d, lg in logits.items()}

    sizes = {d: h.out_features for d, h in model.heads.items()}
    with torch_.inference_mode(), _autocast(precision, device):
        return batched_probabilities(seqs, sizes, forward, pad_id=pad_id, batch_size=batch_size)


def batched_probabilities(
    seqs: Sequence[Sequence[int]],
    sizes: Mapping[str, int],
    forward: Callable[[np.ndarray, np.ndarray], Mapping[str, np.ndarray]],
    *,
    pad_id: int,
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Run ``forward`` over length-sorted, dynamically padded batches of ``seqs``.

    ``forward(input_ids, attention_mask)`` gets ``B × T`` int64 arrays (:func:`pad_batch`) and
    returns ``{dim: B × K_d}`` probabilities; ``sizes`` gives K_d per dimension. Texts are sorted
    by token length (longest first, stable) so each batch pads little. Returns
    ``{dim: N × K_d float32}`` with rows in the order of ``seqs``. Shared by the PyTorch path and
    the int8 ONNX Runtime path (:class:`voc.classify.kobert_onnx.OnnxRunner`).
    """
    n = len(seqs)
    out = {d: np.zeros((n, int(k)), dtype=np.float32) for d, k in sizes.items()}
    if n == 0:
        return out
    order = np.argsort(-np.array([len(s) for s in seqs]), kind="stable")
    step = max(1, int(batch_size))
    for start in range(0, n, step):
        idx = order[start : start + step]
        ids, mask = pad_batch([seqs[i] for i in idx], pad_id)
        for d, probs in forward(ids, mask).items():
            out[d][idx] = probs
    return out


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


def fine_tune(
    model: Any,
    seqs: Sequence[Sequence[int]],
    targets: Mapping[str, np.ndarray],
    *,
    pad_id: int,
    epochs: int = 5,
    batch_size: int = 32,
    lr: float = 5e-5,
    weight_decay: float = 0.01,
    warmup_ratio: float = 0.1,
    max_grad_norm: float = 1.0,
    weights: Mapping[str, np.ndarray] | None = None,
    seed: int = 42,
    device: str | None = None,
    precision: str = "auto",
    progress: bool = True,
    patience: int = 2,
    evaluate: Callable[[], float | None] | None = None,
) -> list[dict[str, Any]]:
    """Fine-tune ``model`` (a :class:`MultiHeadClassifier`) in place; keep the best epoch.

    Parameters
    ----------
    model
        Model to train; moved to ``device``.
    seqs
        N token-id lists (:func:`encode_texts`).
    targets
        Per head, N class ids (int), ``-100`` where the row has no label of that dimension: such
        rows contribute no loss to that head (``CrossEntropyLoss(ignore_index=-100)``).
    pad_id
        Padding id (dynamic padding per batch, :func:`pad_batch`).
    epochs, batch_size
        Maximum epochs and texts per optimisation step.
    lr, weight_decay, warmup_ratio, max_grad_norm
        AdamW (Loshchilov & Hutter 2019) with decoupled weight decay 0.01 on all weights but
        biases and LayerNorm; learning rate 5e-5 (the top of BERT's fine-tuning grid
        {5e-5, 3e-5, 2e-5}, Devlin et al. 2019, App. A.3) with linear warm-up over the first
        10 % of steps and linear decay to 0 (``transformers.get_linear_schedule_with_warmup``);
        gradient norm clipped at 1.0 (transformers ``Trainer`` default).
    weights
        Per head, K_d class weights for the loss (:func:`class_weights`); None = unweighted.
    seed
        Seeds the batch order (a private ``torch.Generator``) and dropout (``torch.manual_seed``
        inside ``torch.random.fork_rng``, so the caller's RNG state is left unchanged). Runs on
        CPU are bit-for-bit repeatable; CUDA kernels may not be.
    device, precision
        See :func:`resolve_device` / :func:`resolve_precision`. ``bf16`` autocast needs no loss
        scaling; ``fp16`` uses ``torch.amp.GradScaler``.
    progress
        Show a tqdm bar per epoch.
    patience
        Stop after this many epochs without a better ``evaluate()`` score.
    evaluate
        Called after each epoch with the model in eval mode; returns the score to maximise
        (held-out macro-F1) or None (no held-out rows: the last epoch is kept).

    Returns
    -------
    list[dict]
        One record per epoch run: ``epoch`` (1-based), ``train_loss`` (mean over steps),
        ``holdout_macro_f1`` (or None), ``seconds`` (wall time of the training pass, evaluation
        excluded), ``best`` (whether it is the kept epoch). The model ends with the best epoch's
        weights, in eval mode.

    Raises
    ------
    ValueError
        Empty training set, or a head's targets length differs from ``seqs``.
    """
    torch_, transformers = _require()
    from tqdm.auto import tqdm

    n = len(seqs)
    if n == 0:
        raise ValueError("fine_tune needs at least one training text")
    for d, y in targets.items():
        if len(y) != n:
            raise ValueError(f"targets[{d!r}] has {len(y)} rows, seqs has {n}")
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    model.to(dev)
    y_all = {d: torch_.as_tensor(np.asarray(y, dtype=np.int64)) for d, y in targets.items()}
    losses = {
        d: nn.CrossEntropyLoss(
            weight=None if weights is None or d not in weights else torch_.as_tensor(weights[d], dtype=torch_.float32, device=dev),
            ignore_index=-100,
        )
        for d in targets
    }
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias", "layernorm", "layer_norm")
    params = [
        {"params": [p for k, p in model.named_parameters() if not any(s in k for s in no_decay)], "weight_decay": weight_decay},
        {"params": [p for k, p in model.named_parameters() if any(s in k for s in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch_.optim.AdamW(params, lr=lr)
    steps_per_epoch = math.ceil(n / batch_size)
    total = max(1, epochs * steps_per_epoch)
    sched = transformers.get_linear_schedule_with_warmup(opt, math.ceil(warmup_ratio * total), total)
    scaler = torch_.amp.GradScaler("cuda") if prec == "fp16" else None
    gen = torch_.Generator().manual_seed(seed)
    cuda_devices = [torch_.device(dev).index or 0] if dev.startswith("cuda") else []
    history: list[dict[str, Any]] = []
    best_score: float | None = None
    best_state: dict[str, Any] | None = None
    stale = 0
    with torch_.random.fork_rng(devices=cuda_devices):
        torch_.manual_seed(seed)
        for epoch in range(1, epochs + 1):
            model.train()
            t0 = time.perf_counter()
            perm = torch_.randperm(n, generator=gen).numpy()
            total_loss, n_steps = 0.0, 0
            bar = tqdm(range(0, n, batch_size), desc=f"kobert epoch {epoch}/{epochs}", disable=not progress, leave=False)
            for start in bar:
                idx = perm[start : start + batch_size]
                ids, mask = pad_batch([seqs[i] for i in idx], pad_id)
                ids_t = torch_.from_numpy(ids).to(dev, non_blocking=True)
                mask_t = torch_.from_numpy(mask).to(dev, non_blocking=True)
                with _autocast(prec, dev):
                    logits = model(ids_t, mask_t)
                loss = None
                for d, lg in logits.items():
                    y = y_all[d][torch_.from_numpy(idx)].to(dev, non_blocking=True)
                    if bool((y != -100).any()):
                        part = losses[d](lg.float(), y)
                        loss = part if loss is None else loss + part
                if loss is None:  # cannot happen for rows from train_kobert_tagger (each has a label)
                    continue
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                    opt.step()
                sched.step()
                total_loss += float(loss.detach())
                n_steps += 1
                if progress:
                    bar.set_postfix(loss=f"{total_loss / n_steps:.4f}")
            if dev.startswith("cuda"):
                torch_.cuda.synchronize(dev)
            seconds = time.perf_counter() - t0
            model.eval()
            score = evaluate() if evaluate is not None else None
            rec = {
                "epoch": epoch,
                "train_loss": total_loss / max(n_steps, 1),
                "holdout_macro_f1": score,
                "seconds": round(seconds, 3),
                "best": False,
            }
            history.append(rec)
            if score is None:
                continue
            if best_score is None or score > best_score:
                best_score, stale = score, 0
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                for r in history:
                    r["best"] = False
                rec["best"] = True
            else:
                stale += 1
                if stale >= patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    elif history:
        history[-1]["best"] = True
    model.eval()
    return history


def train_kobert_tagger(
    df: pl.DataFrame,
    taxonomy: Taxonomy,
    *,
    version: str,
    base: str = DEFAULT_BASE,
    use_reply: bool = True,
    epochs: int = 5,
    batch_size: int = 32,
    max_length: int = 256,
    lr: float = 5e-5,
    weight_decay: float = 0.01,
    warmup_ratio: float = 0.1,
    class_weight_clip: float = 10.0,
    dropout: float | None = None,
    seed: int = 42,
    device: str | None = None,
    precision: str = "auto",
    progress: bool = True,
    patience: int = 2,
    eval_batch_size: int = 64,
) -> tuple[KoBERTTagger, TrainReport]:
    """Fine-tune a KoBERT tagger on the reviewed rows of ``df``.

    Rows and labels are chosen exactly as :func:`voc.tagger.train_tagger` does: per dimension,
    the rows with a usable label (:func:`voc.tagger.training_rows`, canonical labels; labels
    missing from the taxonomy are added with a warning), the fixed held-out split
    (:func:`voc.tagger.holdout_mask`, 20 % by md5 of ``voc_id``) for evaluation, keyword fallback
    for a dimension with < 2 classes. The split is **not** stratified: a fixed hash split keeps
    every row on the same side across monthly retrainings, so champion and candidate (of any
    kind) are compared on the same rows; class imbalance is handled by inverse-frequency class
    weights (:func:`class_weights`, clipped at ``class_weight_clip``) instead.

    One encoder is trained with one head per remaining dimension, on the union of the
    dimensions' training rows; a row without a label of some dimension contributes no loss to
    that head. After each epoch the held-out macro-F1 (mean over heads that have held-out rows)
    is measured; the best epoch is kept and training stops after ``patience`` epochs without
    improvement (:func:`fine_tune` for the optimiser, schedule, precision and seeding).

    Parameters
    ----------
    df
        Validated VOC frame with ``reviewed_*`` label columns.
    taxonomy
        Base taxonomy (extended with unseen labels).
    version
        Model version string.
    base
        Hub id or local directory of the base checkpoint (``skt/kobert-base-v1`` by default; a
        hub id needs network access or a filled Hugging Face cache).
    use_reply
        Read the reply as part of ``all_text``.
    epochs, batch_size, lr, weight_decay, warmup_ratio, seed, device, precision, progress, patience
        See :func:`fine_tune`.
    max_length
        Tokens per text (KoBERT supports 512; 256 by default, config.settings.ModelSettings).
    class_weight_clip
        Class weights are clipped to ``[1/c, c]``.
    dropout
        Dropout before the heads; None = the encoder's ``hidden_dropout_prob`` (0.1 for BERT).
    eval_batch_size
        Batch size of held-out evaluation and of the returned tagger's inference.

    Returns
    -------
    tuple[KoBERTTagger, voc.tagger.TrainReport]
        The tagger (best epoch, on ``device``) and the report (``kind = "kobert"``; held-out
        metrics per dimension from :func:`voc.tagger.evaluate_tags`, same shape as
        :func:`voc.tagger.train_tagger`'s).

    Raises
    ------
    ValueError
        No dimension has ≥ 2 labelled classes (nothing to fine-tune; use a CPU kind).
    ImportError
        torch/transformers missing (:data:`INSTALL_HINT`).
    OSError
        The base or its tokenizer cannot be loaded.
    """
    torch_, _ = _require()
    from transformers import AutoModel

    from voc.tagger import TrainReport, evaluate_tags, frame_texts, split_dimensions

    report = TrainReport(kind="kobert", version=version, n_rows=df.height)
    texts, _ = frame_texts(df, use_reply=use_reply)
    taxonomy, splits = split_dimensions(df, taxonomy, report)
    train_rows: dict[str, tuple[np.ndarray, list[str]]] = {d: (sp.train_rows, sp.train_labels) for d, sp in splits.items()}
    eval_rows: dict[str, tuple[np.ndarray, list[str]]] = {d: (sp.holdout_rows, sp.holdout_labels) for d, sp in splits.items()}
    if not train_rows:
        raise ValueError(
            "no dimension has at least two labelled classes; nothing to fine-tune (train a CPU kind instead)"
        )

    head_labels = {dim: sorted(set(labs)) for dim, (_, labs) in train_rows.items()}
    rows = np.array(sorted(set().union(*(set(r.tolist()) for r, _ in train_rows.values()))), dtype=int)
    pos = {int(r): k for k, r in enumerate(rows)}
    targets: dict[str, np.ndarray] = {}
    weights: dict[str, np.ndarray] = {}
    for dim, (r, labs) in train_rows.items():
        lid = {lab: i for i, lab in enumerate(head_labels[dim])}
        y = np.full(len(rows), -100, dtype=np.int64)
        y[[pos[int(i)] for i in r]] = [lid[lab] for lab in labs]
        targets[dim] = y
        weights[dim] = class_weights(y, len(lid), clip=class_weight_clip)

    tokenizer = load_kobert_tokenizer(base)
    eval_idx = np.array(sorted(set().union(*(set(r.tolist()) for r, _ in eval_rows.values()))), dtype=int)
    needed = np.union1d(rows, eval_idx)
    enc = dict(zip(needed.tolist(), encode_texts(tokenizer, [texts[i] for i in needed], max_length=max_length)))
    seqs = [enc[int(i)] for i in rows]
    dev = resolve_device(device)
    with torch_.random.fork_rng(devices=[]):
        torch_.manual_seed(seed)  # heads (and any encoder weight missing from the base) drawn here
        encoder = AutoModel.from_pretrained(str(base))
        p_drop = float(getattr(encoder.config, "hidden_dropout_prob", 0.1)) if dropout is None else float(dropout)
        model = MultiHeadClassifier(encoder, {d: len(v) for d, v in head_labels.items()}, dropout=p_drop)
    tagger = KoBERTTagger(
        version=version,
        taxonomy=taxonomy,
        model=model,
        tokenizer=tokenizer,
        labels=head_labels,
        use_reply=use_reply,
        max_length=max_length,
        batch_size=eval_batch_size,
        device=dev,
        precision=precision,
        base=str(base),
    )
    pad_id = tagger._pad_id
    eval_seqs = [enc[int(i)] for i in eval_idx]
    eval_pos = {int(r): k for k, r in enumerate(eval_idx)}

    def holdout_predictions() -> dict[str, Tags]:
        prec = resolve_precision(precision, dev)
        probs = _predict(model, eval_seqs, pad_id=pad_id, batch_size=eval_batch_size, device=dev, precision=prec)
        out = {}
        for dim, (r, _) in eval_rows.items():
            p = probs[dim][[eval_pos[int(i)] for i in r]] if len(r) else np.zeros((0, len(head_labels[dim])))
            best = p.argmax(axis=1)
            out[dim] = Tags(
                [head_labels[dim][int(b)] for b in best],
                p[np.arange(len(r)), best].astype(float),
                ["model"] * len(r),
            )
        return out

    def evaluate() -> float | None:
        if not len(eval_idx):
            return None
        from voc.metrics import classification_metrics

        preds = holdout_predictions()
        scores = [
            classification_metrics(labs, preds[dim].labels)["macro_f1"]
            for dim, (r, labs) in eval_rows.items()
            if len(r)
        ]
        return float(np.mean(scores)) if scores else None

    tagger.history = fine_tune(
        model,
        seqs,
        targets,
        pad_id=pad_id,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        warmup_ratio=warmup_ratio,
        weights=weights,
        seed=seed,
        device=dev,
        precision=precision,
        progress=progress,
        patience=patience,
        evaluate=evaluate,
    )
    if len(eval_idx):
        preds = holdout_predictions()
        for dim, (r, labs) in eval_rows.items():
            if len(r):
                report.metrics[dim] = evaluate_tags(labs, preds[dim])
    return tagger, report
