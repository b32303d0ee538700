"""The classification taxonomy: two dimensions, each a list of (major, minor) classes.

A taxonomy row (``voc_taxonomy`` in PostgreSQL, ``voc/data/taxonomy_default.csv`` as package data):

==========  =====  ==============================================================
column      type   meaning
==========  =====  ==============================================================
dimension   str    ``subject`` (주제) or ``work`` (작업유형)
major       str    대분류, e.g. ``시설``
minor       str    중분류, e.g. ``냉난방/공조``
keywords    list   keywords for the keyword scorer (``|``-separated in CSV)
priority    float  multiplier of the keyword score; ``기타`` rows get a low one so they win
                   only when nothing else matches (1 vs 60–100 in the shipped taxonomy)
active      bool   inactive rows stay for history but are not offered to reviewers
==========  =====  ==============================================================

A class label is ``"major>minor"`` (:func:`join_label` / :func:`split_label`).
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import SupportsDunderGT

__all__ = [
    "DIMENSIONS",
    "LABEL_SEP",
    "TaxonomyError",
    "TaxonomyRow",
    "Taxonomy",
    "join_label",
    "split_label",
    "default_taxonomy",
    "derive_taxonomy",
]

DIMENSIONS: tuple[str, ...] = ("subject", "work")
LABEL_SEP = ">"
DEFAULT_PRIORITY = 100.0


class TaxonomyError(ValueError):
    """An invalid taxonomy; the message names the row and the problem."""


def join_label(major: str, minor: str) -> str:
    """``("시설", "승강기")`` → ``"시설>승강기"``."""
    return f"{major}{LABEL_SEP}{minor}"


def split_label(label: str) -> tuple[str, str]:
    """``"시설>승강기"`` → ``("시설", "승강기")``; a label without ``>`` is its own major and
    minor."""
    major, sep, minor = label.partition(LABEL_SEP)
    return (major, minor) if sep else (label, label)


@dataclass(frozen=True, slots=True)
class TaxonomyRow:
    """One class of one dimension (see module docstring)."""

    dimension: str
    major: str
    minor: str
    keywords: tuple[str, ...] = ()
    priority: float = DEFAULT_PRIORITY
    active: bool = True

    @property
    def label(self) -> str:
        return join_label(self.major, self.minor)


@dataclass(frozen=True)
class Taxonomy:
    """An immutable, validated set of :class:`TaxonomyRow`.

    Raises
    ------
    TaxonomyError
        On construction: unknown dimension, empty major/minor, a name containing ``>`` or a
        line break, a duplicate (dimension, major, minor), a minor under two *active* majors of
        one dimension (after a reorganisation the superseded pair stays, inactive), a negative
        or non-finite priority.
    """

    rows: tuple[TaxonomyRow, ...]
    _by_label: dict[tuple[str, str], TaxonomyRow] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_label: dict[tuple[str, str], TaxonomyRow] = {}
        minor_major: dict[tuple[str, str], str] = {}
        for i, r in enumerate(self.rows, start=1):
            where = f"taxonomy row {i} ({r.dimension}, {r.major!r}, {r.minor!r})"
            if r.dimension not in DIMENSIONS:
                raise TaxonomyError(f"{where}: dimension must be one of {DIMENSIONS}")
            for name, value in (("major", r.major), ("minor", r.minor)):
                if not value or not value.strip():
                    raise TaxonomyError(f"{where}: field '{name}' is empty")
                if LABEL_SEP in value or "\n" in value:
                    raise TaxonomyError(f"{where}: field '{name}' may not contain '>' or newlines")
            if not math.isfinite(r.priority) or r.priority < 0:
                raise TaxonomyError(f"{where}: priority must be a finite number >= 0")
            key = (r.dimension, r.label)
            if key in by_label:
                raise TaxonomyError(f"{where}: duplicate class {r.label!r}")
            if r.active:
                other = minor_major.setdefault((r.dimension, r.minor), r.major)
                if other != r.major:
                    raise TaxonomyError(
                        f"{where}: minor {r.minor!r} is already under active major {other!r}"
                        " (mark the superseded row inactive)"
                    )
            by_label[key] = r
        object.__setattr__(self, "_by_label", by_label)

    # -- queries ---------------------------------------------------------------------------
    def rows_of(self, dimension: str, *, active_only: bool = True) -> list[TaxonomyRow]:
        """Rows of one dimension, in file order."""
        return [r for r in self.rows if r.dimension == dimension and (r.active or not active_only)]

    def labels(self, dimension: str, *, active_only: bool = True) -> list[str]:
        """``"major>minor"`` labels of one dimension, in file order."""
        return [r.label for r in self.rows_of(dimension, active_only=active_only)]

    def majors(self, dimension: str, *, active_only: bool = True) -> list[str]:
        """Distinct majors of one dimension, in first-seen order."""
        return list(dict.fromkeys(r.major for r in self.rows_of(dimension, active_only=active_only)))

    def minors(self, dimension: str, major: str | None = None, *, active_only: bool = True) -> list[str]:
        """Minors of one dimension (under ``major`` when given)."""
        return [
            r.minor
            for r in self.rows_of(dimension, active_only=active_only)
            if major is None or r.major == major
        ]

    def has(self, dimension: str, major: str, minor: str) -> bool:
        return (dimension, join_label(major, minor)) in self._by_label

    def get(self, dimension: str, label: str) -> TaxonomyRow | None:
        return self._by_label.get((dimension, label))

    def fallback_label(self, dimension: str) -> str | None:
        """The class that wins when nothing matches: the lowest-priority active row
        (``기타>기타`` in the default taxonomy); ``None`` for an empty dimension."""
        rows = self.rows_of(dimension)
        return min(rows, key=lambda r: r.priority).label if rows else None

    def dimensions(self) -> list[str]:
        """Dimensions with at least one active row."""
        return [d for d in DIMENSIONS if self.rows_of(d)]

    # -- reorganisations -----------------------------------------------------------------------
    def retired_majors(self, dimension: str) -> dict[str, str | None]:
        """Majors a reorganisation replaced, each with its successor.

        A major is **retired** when it has no active row, or when one of its classes moved to
        another major: an inactive row (A, m) whose minor m is active under B ≠ A
        (:func:`derive_taxonomy` makes the pair seen last active, so the move happened after A
        last used m; in the shipped sample 국제도시국 → 국제도시건설국, 도시관리국 → 도시재생국).
        Its successor is the major that received most of its moved classes (ties: file order),
        followed while that one is retired too (지역개발국 → 도시관리국 → 도시재생국); None when
        nothing moved out of it or the chain ends in a cycle.

        Returns
        -------
        dict
            ``{retired major: successor major or None}`` (empty for a taxonomy without
            reorganisations, like the default one).
        """
        rows = self.rows_of(dimension, active_only=False)
        active_major_of = {r.minor: r.major for r in rows if r.active}
        majors = list(dict.fromkeys(r.major for r in rows))
        moved: dict[str, Counter[str]] = {}
        for r in rows:
            if not r.active and active_major_of.get(r.minor, r.major) != r.major:
                moved.setdefault(r.major, Counter())[active_major_of[r.minor]] += 1
        has_active = {r.major for r in rows if r.active}
        retired = {m for m in majors if m in moved or m not in has_active}
        order = {m: i for i, m in enumerate(majors)}

        def direct(m: str) -> str | None:
            c = moved.get(m)
            return min(c, key=lambda b: (-c[b], order[b])) if c else None

        out: dict[str, str | None] = {}
        for m in majors:
            if m not in retired:
                continue
            seen, cur = {m}, direct(m)
            while cur is not None and cur in retired and cur not in seen:
                seen.add(cur)
                cur = direct(cur)
            out[m] = None if cur is None or cur in seen else cur
        return out

    def offered_rows(self, dimension: str) -> list[TaxonomyRow]:
        """The classes a reviewer can pick: active rows whose major is not retired
        (:meth:`retired_majors`), sorted by major then minor (Korean alphabetical order, Unicode
        code points of Hangul syllables; a ``기타`` major or minor last)."""
        retired = self.retired_majors(dimension)

        def key(r: TaxonomyRow) -> tuple[bool, str, bool, str]:
            return (r.major == "기타", r.major, r.minor == "기타", r.minor)

        return sorted((r for r in self.rows_of(dimension) if r.major not in retired), key=key)

    def successor(self, dimension: str, major: str, minor: str) -> TaxonomyRow | None:
        """The active class a (possibly retired) label names.

        * ``(major, minor)`` is an active row → that row (also when its major is retired: a class
          nothing replaced stays what it was);
        * otherwise the active row of ``minor`` when ``(major, minor)`` is an inactive row of the
          taxonomy (the class moved: ``국제도시국>기반시설과`` → ``국제도시건설국>기반시설과``), or
          ``major`` is retired and ``minor`` now sits under its successor
          (``국제도시국>교통과`` → ``국제도시건설국>교통과``);
        * otherwise None (not a label of this taxonomy).

        ``major`` and ``minor`` are compared as given (strip them first).
        """
        row = self.get(dimension, join_label(major, minor))
        if row is not None and row.active:
            return row
        current = {r.minor: r for r in self.rows_of(dimension)}.get(minor)
        if current is None:
            return None
        if row is not None:
            return current
        retired = self.retired_majors(dimension)
        if major in retired and retired[major] == current.major:
            return current
        return None

    # -- combination -----------------------------------------------------------------------
    def replace_dimension(self, dimension: str, rows: Iterable[TaxonomyRow]) -> Taxonomy:
        """A taxonomy whose ``dimension`` rows are ``rows`` and the others unchanged."""
        keep = [r for r in self.rows if r.dimension != dimension]
        return Taxonomy(tuple(keep) + tuple(rows))

    def with_labels(self, dimension: str, labels: Iterable[str]) -> Taxonomy:
        """Add labels (``"major>minor"``) missing from ``dimension`` as keyword-less rows; a new
        label whose minor already sits under an active major is added inactive."""
        active_minors = {r.minor for r in self.rows_of(dimension)}
        new = []
        for lab in dict.fromkeys(labels):
            if (dimension, lab) in self._by_label:
                continue
            major, minor = split_label(lab)
            new.append(TaxonomyRow(dimension, major, minor, active=minor not in active_minors))
            active_minors.add(minor)
        return Taxonomy(self.rows + tuple(new)) if new else self

    # -- (de)serialisation -------------------------------------------------------------------
    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, object]]) -> Taxonomy:
        """Build from dicts with the columns of the module docstring (``keywords`` as a list or
        a ``|``/``,``-separated string; ``active`` as bool or ``true/false/y/n/1/0``)."""
        rows = []
        for i, rec in enumerate(records, start=1):
            try:
                kw = rec.get("keywords") or ()
                if isinstance(kw, str):
                    kw = kw.replace(",", "|").split("|")
                if not isinstance(kw, Iterable):
                    raise TypeError(f"keywords must be a list or a '|'-separated string, not {type(kw).__name__}")
                keywords = tuple(str(k).strip() for k in kw if k and str(k).strip())
                active = rec.get("active", True)
                if isinstance(active, str):
                    active = active.strip().lower() not in ("false", "n", "no", "0", "")
                pr = rec.get("priority")
                # float() of a str or a number; any other value raises TypeError, reported below
                priority = DEFAULT_PRIORITY if pr in (None, "") else float(pr)  # type: ignore[arg-type]  # pr: any record value, see above
                rows.append(
                    TaxonomyRow(
                        dimension=str(rec.get("dimension") or "").strip(),
                        major=str(rec.get("major") or "").strip(),
                        minor=str(rec.get("minor") or "").strip(),
                        keywords=keywords,
                        priority=priority,
                        active=bool(active),
                    )
                )
            except (TypeError, ValueError) as e:
                raise TaxonomyError(f"taxonomy row {i}: {e}") from e
        return cls(tuple(rows))

    @classmethod
    def from_csv_text(cls, text: str) -> Taxonomy:
        """Parse the CSV form (header ``dimension,major,minor,keywords,priority,active``)."""
        return cls.from_records(csv.DictReader(io.StringIO(text)))

    def to_records(self) -> list[dict[str, object]]:
        return [
            {
                "dimension": r.dimension,
                "major": r.major,
                "minor": r.minor,
                "keywords": "|".join(r.keywords),
                "priority": r.priority,
                "active": r.active,
            }
            for r in self.rows
        ]

    def to_csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["dimension", "major", "minor", "keywords", "priority", "active"])
        w.writeheader()
        for rec in self.to_records():
            w.writerow({**rec, "active": "true" if rec["active"] else "false"})
        return buf.getvalue()


def default_taxonomy() -> Taxonomy:
    """The shipped building-management taxonomy (``voc/data/taxonomy_default.csv``): 21 subject
    and 11 work-type classes with keywords, modelled on the production system's classes
    (시설>냉난방/공조 … 기타>기타)."""
    text = resources.files("voc.data").joinpath("taxonomy_default.csv").read_text("utf-8")
    return Taxonomy.from_csv_text(text)


def derive_taxonomy(
    dimension: str,
    labels: Sequence[str | None],
    nouns: Sequence[Sequence[str]],
    *,
    dates: Sequence[SupportsDunderGT[Any]] | None = None,
    top_k: int = 8,
    min_count: int = 2,
) -> list[TaxonomyRow]:
    """Classes seen in labelled history, each with its most distinctive nouns as keywords.

    Parameters
    ----------
    dimension
        ``subject`` or ``work``.
    labels
        N labels ``"major>minor"`` (empty strings / ``None`` are skipped).
    nouns
        N noun lists (:meth:`voc.tokenize.KiwiTokenizer.keyword_nouns_batch`).
    dates
        N sortable dates. When a minor occurs under several majors (a reorganisation), the pair
        seen last is active and the others inactive; without dates, the most frequent pair.
    top_k
        Keywords kept per class.
    min_count
        A noun must occur in at least this many VOCs of the class.

    Returns
    -------
    list[TaxonomyRow]
        One row per distinct label, most frequent first, priority 100, at most one active row
        per minor. Keyword score of noun w for
        class c = df(w, c)/n_c × log(C / (1 + classes containing w)), a class-level TF-IDF.

    Raises
    ------
    ValueError
        When ``labels`` and ``nouns`` differ in length.
    """
    if len(labels) != len(nouns) or (dates is not None and len(dates) != len(labels)):
        raise ValueError(f"labels ({len(labels)}), nouns ({len(nouns)}) and dates differ in length")
    last_seen: dict[str, SupportsDunderGT[Any]] = {}
    if dates is not None:
        for lab, d in zip(labels, dates):
            # dates are only known to be mutually comparable (date, datetime, ISO str)
            if lab and (lab not in last_seen or d > last_seen[lab]):
                last_seen[lab] = d
    per_class: dict[str, Counter[str]] = {}
    n_class: Counter[str] = Counter()
    for lab, ns in zip(labels, nouns):
        if not lab:
            continue
        n_class[lab] += 1
        per_class.setdefault(lab, Counter()).update(set(ns))
    n_classes = len(per_class)
    class_df: Counter[str] = Counter()
    for c in per_class.values():
        class_df.update(c.keys())
    active_for_minor: dict[str, str] = {}
    for lab, _ in n_class.most_common():
        minor = split_label(lab)[1]
        cur = active_for_minor.get(minor)
        if cur is None or (dates is not None and last_seen[lab] > last_seen[cur]):
            active_for_minor[minor] = lab
    rows = []
    for lab, _ in n_class.most_common():
        scores = {
            w: (cnt / n_class[lab]) * math.log((1 + n_classes) / (1 + class_df[w]))
            for w, cnt in per_class[lab].items()
            if cnt >= min(min_count, n_class[lab])
        }
        kws = tuple(w for w, s in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k] if s > 0)
        major, minor = split_label(lab)
        rows.append(TaxonomyRow(dimension, major, minor, kws, active=active_for_minor[minor] == lab))
    return rows


def with_priority(row: TaxonomyRow, priority: float) -> TaxonomyRow:
    """Copy of ``row`` with another priority."""
    return replace(row, priority=priority)
