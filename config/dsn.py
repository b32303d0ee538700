"""The one detector of secrets in a PostgreSQL connection string, for every form libpq reads.

libpq (PostgreSQL docs, "Connection Strings", §34.1.1) reads two forms:

* a **URI** ``postgresql://[userspec@][hostspec][/dbname][?paramspec]`` (also ``postgres://``):
  the user info is the text before the first ``@`` that comes before any ``/``, and its password
  the part after the first ``:`` (libpq's ``conninfo_uri_parse_options``); the query holds
  ``key=value`` parameters, keys and values percent-decoded;
* a **keyword/value** string ``host=db user=voc password='a b' sslpassword=…``: pairs separated
  by whitespace, spaces allowed around ``=``, a value single-quoted (``\\'`` and ``\\\\`` escaped)
  or unquoted up to the next whitespace (``conninfo_parse``).

A *secret* is a non-empty password in the URI's user info, or any parameter whose key contains
``password`` or ``passfile`` (case-insensitive, after percent-decoding: ``password``,
``sslpassword``, ``passfile``, and look-alikes such as ``PASSWORD`` that libpq would reject only
after the string had been stored) with a non-empty value. ``service=`` alone is no secret: what a
service file (``PGSERVICEFILE``) holds is out of scope, as is ``~/.pgpass``; a ``passfile`` key is
refused because it names a password file in a string meant to be shown.

Pure functions (no I/O, no parser's error message that could quote the input): used by
:mod:`config.settings` (``VOC_SOURCE``) and :mod:`flows.secrets_guard` (command-line options, flow
parameters).
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import unquote

__all__ = ["dsn_form", "dsn_secret_parts", "dsn_has_password", "parse_keyword_dsn"]

_URI = re.compile(r"(?i)^postgres(?:ql)?://")
_SECRET_KEY = re.compile(r"(?i)pass(?:word|file)")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOOSE_SECRET = re.compile(r"(?i)pass(?:word|file)[^=\s]*\s*=\s*(?!''|\s|$)")
"""Fallback on a string that parses in neither form: a secret-looking key followed by a value."""


def parse_keyword_dsn(value: str) -> list[tuple[str, str]] | None:
    """The ``(key, value)`` pairs of a libpq keyword/value connection string, or None when
    ``value`` is not one (a key without ``=``, an unterminated quote, no pair at all).

    Follows libpq's ``conninfo_parse``: whitespace separates pairs and may surround ``=``; a value
    is single-quoted (backslash escapes any character, ``''`` is the empty value) or runs to the
    next whitespace (backslash escapes). Keys are returned as written (libpq's are lower case).
    """
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(value)
    while True:
        while i < n and value[i].isspace():
            i += 1
        if i >= n:
            break
        start = i
        while i < n and value[i] != "=" and not value[i].isspace():
            i += 1
        key = value[start:i]
        while i < n and value[i].isspace():
            i += 1
        if not key or i >= n or value[i] != "=":
            return None
        i += 1
        while i < n and value[i].isspace():
            i += 1
        out: list[str] = []
        if i < n and value[i] == "'":
            i += 1
            while True:
                if i >= n:
                    return None  # unterminated quote
                ch = value[i]
                if ch == "\\" and i + 1 < n:
                    out.append(value[i + 1])
                    i += 2
                elif ch == "'":
                    i += 1
                    break
                else:
                    out.append(ch)
                    i += 1
        else:
            while i < n and not value[i].isspace():
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(value[i])
                i += 1
        pairs.append((key, "".join(out)))
    return pairs or None


def dsn_form(value: Any) -> Literal["uri", "keywords"] | None:
    """Which libpq form ``value`` has: ``"uri"`` (``postgresql://`` / ``postgres://``, any case),
    ``"keywords"`` (one or more ``key=value`` pairs whose keys are identifiers, e.g.
    ``host=db dbname=voc`` or ``service=voc``), or None (a path, ``postgres``, None, …)."""
    if not isinstance(value, str) or not value.strip():
        return None
    v = value.strip()
    if _URI.match(v):
        return "uri"
    pairs = parse_keyword_dsn(v)
    if pairs and all(_IDENTIFIER.fullmatch(k) for k, _ in pairs):
        return "keywords"
    return None


_KNOWN_SECRET_KEYS = ("password", "sslpassword", "passfile")


def _label(key: str) -> str:
    """A secret key's name for a message: libpq's own names as such, any other key (which could
    itself hold a secret) only by what it contains."""
    k = key.strip().lower()
    if k in _KNOWN_SECRET_KEYS:
        return k
    return "a key containing 'passfile'" if "passfile" in k else "a key containing 'password'"


def _uri_secret_parts(v: str) -> list[str]:
    rest = v[v.index("://") + 3:]
    found: list[str] = []
    cut = next((i for i, ch in enumerate(rest) if ch in "@/"), None)
    if cut is not None and rest[cut] == "@":
        _, colon, password = rest[:cut].partition(":")
        if colon and password:
            found.append("password (in the user info)")
    if "?" in rest:
        for part in rest.split("?", 1)[1].split("&"):
            key, _, val = part.partition("=")
            name = unquote(key).strip()
            if _SECRET_KEY.search(name) and unquote(val).strip():
                found.append(_label(name))
    return found


def dsn_secret_parts(value: Any) -> list[str]:
    """Names of the secret-bearing parts of ``value`` (never their values), in order: ``"password
    (in the user info)"`` for ``postgresql://u:pw@h``, else the keys ``password``,
    ``sslpassword``, ``passfile`` (any other such key only as "a key containing 'password'").
    Empty for anything without a secret (a CSV path, ``postgres``, None, a DSN without password,
    ``postgresql://u:@h``, ``password=''``).

    A string in neither libpq form is judged by its text: a ``…password…=``/``…passfile…=``
    followed by a value counts (``"password"``), so an unparsable DSN is never waved through.
    """
    if not isinstance(value, str) or not value.strip():
        return []
    v = value.strip()
    if _URI.match(v):
        return _uri_secret_parts(v)
    pairs = parse_keyword_dsn(v)
    if pairs is not None:
        return [_label(k) for k, val in pairs if _SECRET_KEY.search(k) and val.strip()]
    return ["password"] if _LOOSE_SECRET.search(v) else []


def dsn_has_password(value: Any) -> bool:
    """Whether ``value`` carries a secret in any form :func:`dsn_secret_parts` knows."""
    return bool(dsn_secret_parts(value))
