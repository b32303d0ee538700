"""Checks on what reaches Prefect as a flow parameter or a command-line argument.

A PostgreSQL DSN with a password must never be a flow parameter (Prefect stores parameters in
its database and shows them in the UI) nor a command-line argument (visible to every user in
``ps``). Where the password goes instead:

* ``VOC_DB__DSN`` (environment, or ``.env``; a ``SecretStr``, never logged) with
  ``VOC_SOURCE=postgres`` — or no ``--source`` at all;
* or a DSN *without* password (``postgresql://voc@db:5432/voc``), the password in ``~/.pgpass``
  (or the file ``PGPASSFILE`` names), which libpq reads by itself.

:func:`refuse_dsn_password` raises :class:`DsnPasswordError` for such a value, naming where it
came from and never repeating the password. :func:`guard_flow_parameters` makes a flow refuse it
*before* its flow run is created (a direct call), and :data:`SourceParam` carries a JSON-schema
``pattern`` so that the Prefect server refuses a deployment run with such a ``source`` (HTTP 409)
before storing it. A deployment run created anyway (schema enforcement switched off) still fails
on its first line (``refuse_dsn_password`` in the flow body) without connecting.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Optional

from pydantic import WithJsonSchema

__all__ = [
    "DsnPasswordError",
    "dsn_has_password",
    "refuse_dsn_password",
    "guard_flow_parameters",
    "SourceParam",
    "NO_PASSWORD_PATTERN",
]

_URL_WITH_PASSWORD = re.compile(r"(?i)^\s*postgres(?:ql)?://[^/?#@]*:[^/?#@]+@")
_PASSWORD_KEY = re.compile(r"(?i)(?:^|[\s?&])password\s*=\s*[^\s&]")
_KEYWORD_DSN = re.compile(r"(?i)(?:^|\s)(?:host|hostaddr|dbname|user|port|password|service)\s*=")

NO_PASSWORD_PATTERN = (
    r"^(?![Pp][Oo][Ss][Tt][Gg][Rr][Ee][Ss](?:[Qq][Ll])?://[^/?#@]*:[^/?#@]+@)"
    r"(?![\s\S]*[Pp][Aa][Ss][Ss][Ww][Oo][Rr][Dd]\s*=)"
)
"""JSON-schema ``pattern`` (ECMA 262 and Python ``re``) that a value without a DSN password
matches: no ``postgresql://user:password@`` and no ``password=`` anywhere."""

_HELP = (
    "Put the DSN in VOC_DB__DSN (environment or .env, a secret that is never logged) and use "
    "VOC_SOURCE=postgres (or leave the source out), or drop the password from the DSN "
    "(postgresql://user@host:5432/db) and keep it in ~/.pgpass or the file PGPASSFILE names, "
    "which libpq reads by itself"
)


class DsnPasswordError(ValueError):
    """A DSN with a password was given where it would be stored or shown; the message says where
    to put it instead and never contains the password."""


def dsn_has_password(value: Any) -> bool:
    """Whether ``value`` is a PostgreSQL DSN (URL or ``key=value`` form) carrying a non-empty
    password (in the URL's user info or as a ``password`` parameter). Anything else (a CSV path,
    ``postgres``, ``None``, a DSN without password) is ``False``."""
    if not isinstance(value, str) or not value.strip():
        return False
    v = value.strip()
    if not (v.lower().startswith(("postgresql://", "postgres://")) or _KEYWORD_DSN.search(v)):
        return False
    try:
        from psycopg.conninfo import conninfo_to_dict

        return bool(conninfo_to_dict(v).get("password"))
    except Exception:  # unparsable: judge by its text, never by a parser's message
        return bool(_URL_WITH_PASSWORD.search(v) or _PASSWORD_KEY.search(v))


def refuse_dsn_password(value: Any, *, where: str) -> None:
    """Raise :class:`DsnPasswordError` when ``value`` is a DSN with a password.

    ``where`` names the place (``"--source"``, ``"parameter 'source' of flow voc-monthly"``).
    """
    if dsn_has_password(value):
        raise DsnPasswordError(
            f"{where}: refusing a PostgreSQL DSN that contains a password (not shown): command "
            f"lines are visible to other users (ps) and flow parameters are stored in Prefect's "
            f"database and shown in its UI. {_HELP}."
        )


def guard_flow_parameters(flow_obj: Any, *names: str) -> Any:
    """Make ``flow_obj`` (a Prefect ``Flow``) refuse a DSN with a password in the parameters
    ``names`` before its flow run is created, so the value never reaches Prefect's API.

    Prefect serialises a direct call's parameters (``Flow.serialize_parameters``) to create the
    flow run; the check runs first and raises :class:`DsnPasswordError` to the caller. Returns
    ``flow_obj``.
    """
    original = flow_obj.serialize_parameters
    label = getattr(flow_obj, "name", "flow")

    def serialize_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
        for name in names:
            refuse_dsn_password(parameters.get(name), where=f"parameter {name!r} of flow {label}")
        return original(parameters)

    flow_obj.serialize_parameters = serialize_parameters
    return flow_obj


SourceParam = Annotated[
    Optional[str],
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": NO_PASSWORD_PATTERN}, {"type": "null"}],
            "title": "source",
            "description": (
                "Override of VOC_SOURCE: a CSV path or a postgresql:// DSN WITHOUT password "
                "(parameters are stored and shown); the password goes in VOC_DB__DSN or ~/.pgpass"
            ),
        }
    ),
]
"""Type of the flows' ``source`` parameter: ``str | None`` whose JSON schema (what a deployment
stores and the server enforces) refuses a DSN with a password."""
