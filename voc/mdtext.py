"""Untrusted text as literal Markdown: building names, ids, VOC texts and notes shown in Markdown
(Prefect's markdown, table and link artifacts render every string as Markdown).

CommonMark 0.31 §2.4: "Any ASCII punctuation character may be backslash-escaped", and an escaped
character is a literal one: it starts no emphasis, link, image, code span, raw HTML, entity or
autolink (a GFM extended autolink needs the literal ``www.``, ``://`` or ``@``). Line breaks would
start a new block (a heading, a list, a table row), so they become spaces. Inside a code span
backslashes are literal, so code spans get their own fence (:func:`md_code`, §6.1).

Pure functions (no I/O).
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

__all__ = ["md_escape", "md_code", "md_link_destination", "MD_ESCAPED"]

MD_ESCAPED = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
"""The ASCII punctuation characters of CommonMark §2.1, each escaped by :func:`md_escape`."""

_PUNCT = re.compile("([" + re.escape(MD_ESCAPED) + "])")
_BREAKS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]+")
"""Control characters (C0 but tab, DEL, C1) and Unicode line/paragraph separators."""

_URL_SAFE = "-._~:/?#@!$&'*+,;=%"
"""Characters left as they are in a link destination: RFC 3986 unreserved and reserved ones and
``%`` (existing escapes), less ``( ) [ ]`` which end or open Markdown link syntax."""


def md_escape(text: object) -> str:
    """``text`` (``str()`` of any value; None → ``""``) as literal inline Markdown.

    Every ASCII punctuation character is backslash-escaped and every run of control characters
    or line breaks becomes one space, so ``[x](javascript:alert(1))``, ``<script>``, ``*``,
    ``|`` and ``# heading`` render as the characters typed. Letters, digits, spaces, tabs and
    non-ASCII text (한글, emoji) are unchanged.

    Parameters
    ----------
    text
        Any value; rendered with ``str``.

    Returns
    -------
    str
        At most twice as long as ``str(text)``; safe inside a paragraph, a list item, a table
        cell (``|`` escaped) or link text, not inside a code span (see :func:`md_code`).
    """
    if text is None:
        return ""
    return _PUNCT.sub(r"\\\1", _BREAKS.sub(" ", str(text)))


def md_code(text: object) -> str:
    """``text`` as a Markdown code span (literal, monospace): fenced by one more backtick than
    its longest run of backticks, padded with a space when it starts or ends with a backtick
    (CommonMark §6.1); line breaks become spaces. ``""``/None → an empty string (no span)."""
    s = "" if text is None else _BREAKS.sub(" ", str(text))
    if not s:
        return ""
    fence = "`" * (max((len(m) for m in re.findall("`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def md_link_destination(url: str) -> str:
    """``url`` safe as the destination of a Markdown link ``[text](url)``: characters outside
    :data:`_URL_SAFE` (spaces, parentheses, brackets, ``<``, ``>``, quotes, non-ASCII) are
    percent-encoded (RFC 3986 §2.1; an existing ``%XX`` is kept).

    Raises
    ------
    ValueError
        The scheme is not ``http``, ``https`` or ``file`` (a ``javascript:`` or ``data:`` link).
    """
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise ValueError(f"not an http(s) or file link (scheme {scheme!r})")
    return quote(url.strip(), safe=_URL_SAFE)
