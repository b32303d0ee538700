"""Checks on what reaches Prefect as a flow parameter or a command-line argument.

A PostgreSQL connection string with a secret must never be a flow parameter (Prefect stores
parameters in its database and shows them in the UI) nor a command-line argument (visible to every
user in ``ps``). Every form libpq reads is checked by one detector, :func:`config.dsn.dsn_secret_parts`:
a password in a URL's user info (``postgresql://u:pw@h/db``), URL query parameters
(``?password=``, ``?sslpassword=``, ``?passfile=`` and any key containing *password*/*passfile*,
percent-decoded), and keyword/value strings (``host=… password=…``, ``sslpassword=…``,
``service=voc passfile=…``). Where the password goes instead:

* ``VOC_DB__DSN`` (environment, or ``.env``; a ``SecretStr``, never logged) with
  ``VOC_SOURCE=postgres`` — or no ``--source`` at all;
* or a DSN *without* password (``postgresql://voc@db:5432/voc``, ``host=db user=voc``,
  ``service=voc``), the password in ``~/.pgpass`` (or the file ``PGPASSFILE`` names) or the
  service file, which libpq reads by itself.

:func:`refuse_dsn_password` raises :class:`DsnPasswordError` for such a value, naming where it
came from and which part (``sslpassword``), never the value. :func:`guard_flow_parameters` makes a
flow refuse it *before* its flow run is created (a direct call), and :data:`SourceParam` carries a
JSON-schema ``pattern`` so that the Prefect server refuses a deployment run with such a ``source``
(HTTP 409) before storing it. A deployment run created anyway (schema enforcement switched off)
still fails on its first line (``refuse_dsn_password`` in the flow body) without connecting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import WithJsonSchema

from config.dsn import dsn_form, dsn_has_password, dsn_secret_parts

__all__ = [
    "DsnPasswordError",
    "dsn_has_password",
    "refuse_dsn_password",
    "guard_flow_parameters",
    "SourceParam",
    "NO_PASSWORD_PATTERN",
    "SOURCE_NOT_FOUND",
    "unknown_source",
]

NO_PASSWORD_PATTERN = (
    r"^(?!\s*[Pp][Oo][Ss][Tt][Gg][Rr][Ee][Ss](?:[Qq][Ll])?://[^/@]*:[^/@]+@)"
    r"(?![\s\S]*[Pp][Aa][Ss][Ss](?:[Ww][Oo][Rr][Dd]|[Ff][Ii][Ll][Ee])[^=\s]*\s*=)"
    r"(?![\s\S]*[?&][^=&]*%[0-9A-Fa-f]{2}[^=&]*=)"
)
"""JSON-schema ``pattern`` (ECMA 262 and Python ``re``) that a value without a DSN secret
matches: no ``postgresql://user:password@`` (libpq's user info: up to the first ``@`` before any
``/``), no key containing ``password``/``passfile`` followed by ``=`` anywhere (``password=``,
``sslpassword=``, ``passfile=``), and no percent-encoded query key (``?pass%77ord=``). Stricter
than :func:`dsn_has_password` (an empty ``password=`` is refused too); the flow body applies the
exact check."""

_HELP = (
    "Put the DSN in VOC_DB__DSN (environment or .env, a secret that is never logged) and use "
    "VOC_SOURCE=postgres (or leave the source out), or drop the password from the DSN "
    "(postgresql://user@host:5432/db) and keep it in ~/.pgpass or the file PGPASSFILE names, "
    "which libpq reads by itself"
)


SOURCE_NOT_FOUND = (
    "the VOC source (VOC_SOURCE, --source or the flow parameter 'source'; value not shown, it may hold a "
    "secret) is neither an existing CSV file nor a PostgreSQL DSN: give the path of a CSV file in the VOC "
    "schema, postgresql://user@host:5432/db or 'host=… dbname=…' without password, or 'postgres' with "
    "VOC_DB__DSN"
)
"""Message for a source that is neither a file nor a DSN (:func:`unknown_source`); it never
repeats the value: a mistyped DSN (``host=db passwrod=…``) may hold a secret."""


def unknown_source(value: Any) -> bool:
    """Whether ``value`` is a source that names nothing usable: a non-blank string that is not
    ``postgres``, not a DSN (:func:`config.dsn.dsn_form`) and not an existing file. None and
    blank (no override) are not unknown. Reads the file system (``Path.is_file``)."""
    if not isinstance(value, str) or not value.strip():
        return False
    v = value.strip()
    return v != "postgres" and dsn_form(v) is None and not Path(v).is_file()


class DsnPasswordError(ValueError):
    """A DSN with a password was given where it would be stored or shown; the message says where
    to put it instead and never contains the password."""


def refuse_dsn_password(value: Any, *, where: str) -> None:
    """Raise :class:`DsnPasswordError` when ``value`` is a DSN with a password.

    ``where`` names the place (``"--source"``, ``"parameter 'source' of flow voc-monthly"``).
    """
    parts = dsn_secret_parts(value)
    if parts:
        raise DsnPasswordError(
            f"{where}: refusing a PostgreSQL DSN that contains a secret ({', '.join(parts)}; value not shown): command "
            f"lines are visible to other users (ps) and flow parameters are stored in Prefect's "
            f"database and shown in its UI. {_HELP}."
        )


def guard_flow_parameters(flow_obj: Any, *names: str) -> Any:
    """Make ``flow_obj`` (a Prefect ``Flow``) refuse a DSN with a secret in the source parameters
    ``names`` before its flow run is created, so the value never reaches Prefect's API; likewise
    a value that is neither an existing file nor a DSN (:func:`unknown_source`: a mistyped DSN).

    Prefect serialises a direct call's parameters (``Flow.serialize_parameters``) to create the
    flow run, in the calling process (so the file check looks where the flow runs); the checks
    run first and raise :class:`DsnPasswordError` / ``ValueError`` (:data:`SOURCE_NOT_FOUND`,
    without the value) to the caller. Returns ``flow_obj``.
    """
    original = flow_obj.serialize_parameters
    label = getattr(flow_obj, "name", "flow")

    def serialize_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
        for name in names:
            where = f"parameter {name!r} of flow {label}"
            refuse_dsn_password(parameters.get(name), where=where)
            if unknown_source(parameters.get(name)):
                raise ValueError(f"{where}: {SOURCE_NOT_FOUND}")
        return original(parameters)

    flow_obj.serialize_parameters = serialize_parameters
    return flow_obj


SourceParam = Annotated[
    str | None,
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
