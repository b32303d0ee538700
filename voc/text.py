"""Text cleanup and the ``all_text`` the classifiers read.

Complaint texts arrive as scraped from boards and ticket systems: HTML remnants and entities,
control characters (NUL included), emoji, phone numbers, attachment file names, and bodies of
tens of kilobytes. :func:`clean_text` makes them safe for tokenizers and models without dropping
the row; what it had to do is reported as flags.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_FIELD_CHARS",
    "C0_CONTROL_RE",
    "remove_c0_controls",
    "CleanText",
    "clean_text",
    "build_all_text",
    "build_all_texts",
]

MAX_FIELD_CHARS = 4000
"""Characters kept per field. KoBERT reads at most 512 tokens (~1,500 Hangul characters) and the
TF-IDF model gains nothing from longer bodies; the sample's longest request is 9,274 characters,
its median 405."""

C0_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
"""The C0 control characters other than tab, newline and carriage return (NUL included): what
XML 1.0 (hence XLSX) cannot hold, PostgreSQL ``text`` refuses (NUL) and no reader of a CSV expects.
:func:`voc.schema.validate_voc_frame` removes them from every input text, so they reach no output."""


def remove_c0_controls(text: str) -> str:
    """``text`` without :data:`C0_CONTROL_RE` characters, otherwise unchanged (no space is put in
    their place). Idempotent."""
    return C0_CONTROL_RE.sub("", text)


_TAG_RE = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]{0,200}>")
_CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_ATTACH_EXT_RE = re.compile(
    r"\.(?:hwp|hwpx|pdf|jpe?g|png|gif|bmp|docx?|xlsx?|pptx?|zip|txt|heic|mp4)\b", re.IGNORECASE
)
"""The tail of :data:`_ATTACH_RE`: where it finds nothing, ``_ATTACH_RE`` cannot match either, and
the costly scan (up to 120 characters back from every position) is skipped — 3 s on a 100 KB body."""
_PHONE_RE = re.compile(r"(?<!\d)(?:0\d{1,2}|1\d{3})[-. )]?\d{3,4}[-. ]?\d{4}(?!\d)")
_ATTACH_RE = re.compile(
    r"[^\s/\\]{1,120}\.(?:hwp|hwpx|pdf|jpe?g|png|gif|bmp|docx?|xlsx?|pptx?|zip|txt|heic|mp4)\b",
    re.IGNORECASE,
)
_WS_RE = re.compile(r"[ \t\r\f\v]+")
_NL_RE = re.compile(r"\n\s*\n+")


@dataclass(frozen=True, slots=True)
class CleanText:
    """A cleaned field and what cleaning did to it (``flags``: subset of ``html``, ``control``,
    ``emoji``, ``truncated``)."""

    text: str
    flags: frozenset[str]


_EMOJI_RANGES = ((0x1F000, 0x1FAFF), (0xE0000, 0xE007F))


_SYMBOL_RE = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _EMOJI_RANGES) + "]")
"""One character of :data:`_EMOJI_RANGES` (what :func:`_is_symbol` says, at regex speed)."""


def _is_symbol(ch: str) -> bool:
    # Emoji, pictographs and flag/tag sequences (U+1F000–1FAFF, U+E0000–E007F). Symbols that
    # Korean offices and boards use as text (☎, ★, ※, ○, ▶, →, ㈜) are kept.
    o = ord(ch)
    return any(a <= o <= b for a, b in _EMOJI_RANGES)


def clean_text(
    text: str | None,
    *,
    mask_phone: bool = True,
    drop_attachments: bool = True,
    max_chars: int = MAX_FIELD_CHARS,
) -> CleanText:
    """Clean one field.

    Steps: HTML entities unescaped and tags removed; control characters (NUL, C1, zero-width,
    BOM) removed; Unicode NFKC; emoji and pictographs removed; phone numbers replaced by a space
    (``mask_phone``); attachment file names (``사진1.jpg``, ``민원.hwp``) removed
    (``drop_attachments``); whitespace collapsed, paragraph breaks kept as one newline; the result
    cut to ``max_chars`` characters.

    ``None`` and non-strings of no content give ``""``. Never raises on any ``str`` input.
    """
    if text is None:
        return CleanText("", frozenset())
    s = str(text)
    flags: set[str] = set()
    if "&" in s:
        s = html.unescape(s)
    if "<" in s:
        stripped = _TAG_RE.sub(" ", s)
        if stripped != s:
            flags.add("html")
        s = stripped
    stripped = _CTRL_RE.sub(" ", s)
    if stripped != s:
        flags.add("control")
    s = unicodedata.normalize("NFKC", stripped)
    if _SYMBOL_RE.search(s):
        flags.add("emoji")
        s = _SYMBOL_RE.sub(" ", s)
    s = s.replace("\ufe0f", "").replace("\u200d", "")
    if drop_attachments and _ATTACH_EXT_RE.search(s):
        s = _ATTACH_RE.sub(" ", s)
    if mask_phone:
        s = _PHONE_RE.sub(" ", s)
    s = _WS_RE.sub(" ", s)
    s = _NL_RE.sub("\n", s).strip()
    if len(s) > max_chars:
        s = s[:max_chars].rstrip()
        flags.add("truncated")
    return CleanText(s, frozenset(flags))


def build_all_text(
    title: str | None,
    request_contents: str | None,
    reply: str | None = None,
    *,
    with_reply: bool = True,
    max_chars: int = MAX_FIELD_CHARS,
) -> CleanText:
    """``all_text`` = cleaned title + request_contents (+ reply), joined by newlines.

    ``with_reply=False`` gives the registration-time variant (only title and request exist
    when a VOC is filed). Flags are the union of the fields' flags plus ``empty_text`` when
    title and request are both empty after cleaning (such rows are still tagged, with
    confidence 0, and keep the flag).
    """
    parts = [clean_text(title, max_chars=max_chars), clean_text(request_contents, max_chars=max_chars)]
    flags = set().union(*(p.flags for p in parts))
    if not any(p.text for p in parts):
        flags.add("empty_text")
    if with_reply:
        r = clean_text(reply, max_chars=max_chars)
        parts.append(r)
        flags |= r.flags
    return CleanText("\n".join(p.text for p in parts if p.text), frozenset(flags))


def build_all_texts(
    titles: Sequence[str | None],
    requests: Sequence[str | None],
    replies: Sequence[str | None] | None = None,
    *,
    with_reply: bool = True,
) -> tuple[list[str], list[str]]:
    """Vector form of :func:`build_all_text`.

    Returns ``(texts, flags)``: two lists of length N; ``flags[i]`` is the sorted flags joined by
    ``;`` (``""`` when none).

    Raises
    ------
    ValueError
        When the sequences differ in length.
    """
    n = len(titles)
    if len(requests) != n or (replies is not None and len(replies) != n):
        raise ValueError("titles, requests and replies must have the same length")
    texts: list[str] = []
    flags: list[str] = []
    for i in range(n):
        ct = build_all_text(
            titles[i],
            requests[i],
            replies[i] if replies is not None else None,
            with_reply=with_reply and replies is not None,
        )
        texts.append(ct.text)
        flags.append(";".join(sorted(ct.flags)))
    return texts, flags
