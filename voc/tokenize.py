"""Korean tokenization with Kiwi (kiwipiepy): one analyser, two POS filters.

* **Model features** (:meth:`KiwiTokenizer.model_tokens`): nouns NNG/NNP/NNB/NR/NP of two or
  more characters, each run of 2+ consecutive nouns also emitted joined as a compound
  (``주차장`` + ``조명`` → ``주차장조명``), verbs and adjectives (VV, VA, incl. irregular
  ``VV-I``/``VA-I``) as lemmas (``더러워요`` → ``더럽다``). Source: the production write-up
  (``production-notes.md``), where this filter raised 5-fold CV accuracy over sklearn's default
  tokenizer (subject 88.6 → 90.6 %, work type 85.9 → 86.6 %, 5,046 reviewed VOCs).
* **Keyword nouns** (:meth:`KiwiTokenizer.keyword_nouns`): NNG and NNP only, two or more
  characters, for dashboards and word clouds (dependent nouns such as 것/수/때문 are excluded).

The analyser is created lazily per instance and dropped on pickling, so a fitted model that
holds a tokenizer can be saved with joblib and loaded in another process.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["KiwiTokenizer", "MODEL_NOUN_TAGS", "KEYWORD_NOUN_TAGS", "PREDICATE_TAGS"]

MODEL_NOUN_TAGS = frozenset({"NNG", "NNP", "NNB", "NR", "NP"})
KEYWORD_NOUN_TAGS = frozenset({"NNG", "NNP"})
PREDICATE_TAGS = frozenset({"VV", "VA"})


class KiwiTokenizer:
    """Callable tokenizer; ``tok(text)`` returns :meth:`model_tokens`.

    Parameters
    ----------
    num_workers
        Kiwi worker threads for batch calls (``-1``: Kiwi's single-thread mode, the default,
        which suits the 2-core batch machines and Prefect's thread pool).
    min_noun_len
        Shortest noun kept, in characters (default 2: 1-character nouns are mostly noise).
    cache_size
        Analyses kept per instance, keyed by text (0: none). Training analyses each text for
        keywords and for model features; a cache makes that one Kiwi pass.
    """

    def __init__(self, *, num_workers: int = -1, min_noun_len: int = 2, cache_size: int = 0) -> None:
        self.num_workers = num_workers
        self.min_noun_len = min_noun_len
        self.cache_size = cache_size
        self._kiwi: Any = None
        self._cache: dict[str, list[tuple[str, str, str]]] = {}

    # -- pickling: the C++ analyser is rebuilt on first use --------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_kiwi"] = None
        state["_cache"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("cache_size", 0)
        state.setdefault("_cache", {})
        self.__dict__.update(state)

    @property
    def kiwi(self) -> Any:
        if self._kiwi is None:
            from kiwipiepy import Kiwi

            self._kiwi = Kiwi(num_workers=self.num_workers)
        return self._kiwi

    def analyze(self, texts: Sequence[str]) -> list[list[tuple[str, str, str]]]:
        """Morphemes of each text as ``(form, tag, lemma)`` triples; ``[]`` for empty texts."""
        out: list[list[tuple[str, str, str]]] = []
        for text in texts:
            if not text or not text.strip():
                out.append([])
                continue
            hit = self._cache.get(text) if self.cache_size else None
            if hit is None:
                hit = [(t.form, t.tag, getattr(t, "lemma", t.form)) for t in self.kiwi.tokenize(text)]
                if self.cache_size:
                    if len(self._cache) >= self.cache_size:
                        self._cache.pop(next(iter(self._cache)))
                    self._cache[text] = hit
            out.append(hit)
        return out

    def _model_tokens(self, morphs: Iterable[tuple[str, str, str]]) -> list[str]:
        out: list[str] = []
        run: list[str] = []

        def flush() -> None:
            if len(run) >= 2:
                out.append("".join(run))
            run.clear()

        for form, tag, lemma in morphs:
            base = tag.split("-", 1)[0]
            if base in MODEL_NOUN_TAGS:
                run.append(form)
                if len(form) >= self.min_noun_len:
                    out.append(form)
                continue
            flush()
            if base in PREDICATE_TAGS:
                out.append(lemma if lemma.endswith("다") else lemma + "다")
        flush()
        return out

    def model_tokens(self, text: str) -> list[str]:
        """Model features of one text (see module docstring)."""
        return self._model_tokens(self.analyze([text])[0])

    def model_tokens_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """:meth:`model_tokens` for N texts → N token lists."""
        return [self._model_tokens(m) for m in self.analyze(texts)]

    def keyword_nouns(self, text: str) -> list[str]:
        """NNG/NNP nouns of one text, in order, with repeats."""
        return self.keyword_nouns_batch([text])[0]

    def keyword_nouns_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """:meth:`keyword_nouns` for N texts → N noun lists."""
        return [
            [f for f, tag, _ in m if tag in KEYWORD_NOUN_TAGS and len(f) >= self.min_noun_len]
            for m in self.analyze(texts)
        ]

    def __call__(self, text: str) -> list[str]:
        return self.model_tokens(text)

    def __repr__(self) -> str:
        return f"KiwiTokenizer(num_workers={self.num_workers}, min_noun_len={self.min_noun_len})"
