"""Property-based tests of the input boundary: nothing wrong gets in, nothing right gets lost.

Random VOC rows — any Unicode (NUL and other controls, right-to-left marks, combining marks,
emoji, CR/LF, quotes), fields of 100 KB, odd ids (Korean, spaces, dots, slashes, ``..``) and
dates (valid, empty, garbage) — go through :func:`voc.schema.validate_voc_frame`, the pure tagger
(:func:`voc.tagger.tag_frame` with the keyword-only tagger), the tagged CSV and the storage keys.

Seeded (``derandomize=True``, no example database) so CI sees the same examples every run; about
30–60 s on one core.
"""

from __future__ import annotations

import io
import posixpath
import re
from datetime import date

import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flows import storage_layout as layout
from voc.schema import REQUIRED_COLUMNS, TEXT_COLUMNS, VOCInputError, id_problem, validate_voc_frame
from voc.text import C0_CONTROL_RE, remove_c0_controls

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

PREFIX = "stat/voc-dev"
MONTH = "2019-11"
RUN_ID = "full_20261122_020000"

# --- strategies --------------------------------------------------------------------------------

PIECES = [
    "\x00", "\x01", "\x07", "\x0b", "\x1f", "\x7f", "\x85", "\t", "\n", "\r", "\r\n", " ", "\u00a0", "\u3000",
    "\u200b", "\u200d", "\u200e", "\u200f", "\u202e", "\u2028", "\ufeff", "\u0301", "\u1100\u1161",
    "😡", "👨‍👩‍👧", "🇰🇷", "\U000e0041", "ﷺ", '"', "'", ",", ";", "<p>", "&amp;", "&#0;", "=1+1",
    "화장실 누수", "소음", "010-1234-5678", "사진1.jpg", "민원.hwp", "ا", "שלום", "NULL", "None", "",
]
any_char = st.characters(exclude_categories=("Cs",))  # polars strings are UTF-8: no lone surrogates
small_text = st.one_of(
    st.text(any_char, max_size=30),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(any_char, max_size=5)), max_size=12).map("".join),
)
# a 100 KB field: a random chunk repeated (generating 100 KB directly is slow and hits Hypothesis' size limits)
huge_text = st.tuples(st.text(any_char, min_size=1, max_size=40), st.sampled_from(PIECES)).map(
    lambda t: ((t[0] + t[1]) * (100_000 // max(1, len(t[0] + t[1])) + 1))[:100_000]
)
text_cell = st.one_of(st.none(), small_text, small_text, small_text, huge_text)

ODD_IDS = [
    "1", "2", "10", "007", "B-95", "본관", "본관 A-1", " 3 ", "\t4\n", "1.5", "..x", "x..", "#3", "😀", "e\u0301",
    "ｂ１", "a\u00a0b", "x" * 128,
    # unsafe
    "", "  ", ".", "..", "../x", "a/b", "a\\b", "/", "x/../../y", "1\x00", "1\n2", "\u202e1", "1\u200b2", "\ufeff1",
    "x" * 129, "NUL\x00L",
]

GARBAGE_DATES = [
    "", " ", "2019-13-45", "2019-02-30", "2019-11-0212", "2019/11/02", "20191102", "0000-01-01", "0219-11-02",
    "2019-11-02\x00", "nope", "2019-11-02x", "２０１９-11-02", "2019-11-02 14:30:00", "2019-11-02T14:30:00+09:00",
    "2019-1-5", " 2019-11-02 ",
]
valid_date = st.dates(min_value=date(1900, 1, 1)).map(lambda d: d.isoformat())


def rows_strategy(ids, dates, texts):
    row = st.fixed_dictionaries(
        {
            "voc_id": ids,
            "building_id": ids,
            "building_name": texts,
            "created_at": dates,
            "title": texts,
            "request_contents": texts,
            "reply": texts,
            "subject_minor": st.one_of(st.none(), small_text),
        }
    )
    return st.lists(row, min_size=1, max_size=6)


def frame_of(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={c: pl.Utf8 for c in (*REQUIRED_COLUMNS, "subject_minor")})


def _stripped(v: str | None) -> str | None:
    # what validate_voc_frame compares: polars strips Unicode White_Space
    return pl.Series([v], dtype=pl.Utf8).str.strip_chars()[0]


id_char = st.characters(exclude_categories=("Cs", "Cc", "Cf", "Zl", "Zp"), exclude_characters="/\\")
safe_id = st.one_of(st.sampled_from(ODD_IDS), st.text(id_char, min_size=1, max_size=12)).filter(
    lambda v: id_problem(_stripped(v)) is None
)
# few distinct ids so that duplicates (merged) are common
pooled_safe_id = st.one_of(safe_id, st.sampled_from(["1", "2", "본관"]))

# mostly good cells (so that whole frames pass and later rows are checked), some bad ones
any_id = st.one_of(st.none(), st.sampled_from(ODD_IDS), st.text(any_char, max_size=12))
id_cell = st.one_of(*[pooled_safe_id] * 6, st.integers(0, 10**6).map(str), any_id)
date_cell = st.one_of(*[valid_date] * 6, st.none(), st.sampled_from(GARBAGE_DATES), st.text(any_char, max_size=12))

# --- properties --------------------------------------------------------------------------------

_ERR_RE = re.compile(r"^row (?P<row>\d+)(?: \(voc_id=(?P<vid>[^\n]*)\))?: field '(?P<field>voc_id|building_id|created_at)' ")
_TWO_BUILDINGS_RE = re.compile(r"^rows (?P<first>\d+) and (?P<row>\d+): voc_id .* is in two buildings, building_id ")


def _shown(v) -> str:
    v = "" if v is None else v
    return repr(v) if len(v) <= 80 else repr(v[:80])


@settings(FUZZ, max_examples=200)
@given(rows_strategy(id_cell, date_cell, text_cell))
def test_validate_returns_a_frame_or_names_row_field_and_value(rows):
    df = frame_of(rows)
    try:
        out = validate_voc_frame(df)
    except VOCInputError as e:
        msg = str(e)
        if (two := _TWO_BUILDINGS_RE.match(msg)) is not None:  # one voc_id, two buildings: both named
            event("refused: voc_id in two buildings")
            j, i = int(two["first"]) - 1, int(two["row"]) - 1
            assert 0 <= j < i < df.height and "\n" not in msg
            a, b = rows[j], rows[i]
            assert _stripped(a["voc_id"]) == _stripped(b["voc_id"]) and _stripped(a["building_id"]) != _stripped(b["building_id"])
            assert all(_shown(_stripped(v)) in msg for v in (a["voc_id"], a["building_id"], b["building_id"])), msg
            return
        m = _ERR_RE.match(msg)
        assert m, msg
        i, field = int(m["row"]) - 1, m["field"]
        event(f"refused: {field}")
        assert 0 <= i < df.height
        assert _shown(rows[i][field]) in msg, msg
        assert not C0_CONTROL_RE.search(msg) and "\n" not in msg  # one readable line
        if field == "created_at":  # ids of every row were fine
            assert all(id_problem(_stripped(r[f])) is None for r in rows for f in ("voc_id", "building_id"))
        else:
            assert id_problem(_stripped(rows[i][field])) is not None
        return
    event("accepted")
    _check_valid_output(rows, out)


def _one_building_per_id(rows: list[dict]) -> list[dict]:
    """Rows where every voc_id belongs to one building (its first row's): a voc_id in two
    buildings is refused (test above), same-building duplicates are merged."""
    first: dict[str | None, str] = {}
    return [{**r, "building_id": first.setdefault(_stripped(r["voc_id"]), r["building_id"])} for r in rows]


@settings(FUZZ, max_examples=100)
@given(rows=rows_strategy(pooled_safe_id, valid_date, text_cell).map(_one_building_per_id))
def test_valid_rows_survive_validation_tagging_csv_and_keys(rows, keyword_tagger):
    from voc.tagger import tag_frame

    out = validate_voc_frame(frame_of(rows))
    _check_valid_output(rows, out)

    # tagging through the pure library keeps in = out, same order, and flags the cleaned rows
    tagged = tag_frame(out, keyword_tagger, run_id=RUN_ID)
    assert tagged["voc_id"].to_list() == out["voc_id"].to_list()
    for flags_in, flags_out in zip(out["input_flags"].to_list(), tagged["flags"].to_list()):
        assert set(filter(None, flags_in.split(";"))) <= set(flags_out.split(";"))
    _assert_no_c0(tagged)

    # the tagged CSV round-trips every text cell exactly
    buf = io.BytesIO()
    tagged.write_csv(buf)
    back = pl.read_csv(io.BytesIO(buf.getvalue()), infer_schema=False)
    assert back.columns == tagged.columns and back.height == tagged.height
    for c, t in tagged.schema.items():
        if t == pl.Utf8:
            assert back[c].to_list() == tagged[c].to_list(), c

    # every key of an accepted building stays inside {prefix}/{yyyymm}/{building_id}/
    for bid in set(out["building_id"].to_list()):
        _check_keys(bid)


@FUZZ
@given(st.one_of(st.sampled_from(ODD_IDS), st.text(any_char, max_size=20)))
def test_keys_stay_in_their_folder_or_are_refused(bid):
    if id_problem(bid) is None:
        _check_keys(bid)
    else:
        for build in _key_builders():
            with pytest.raises(ValueError, match="building_id"):
                build(bid)


def test_key_builders_refuse_a_path_as_building_id():
    for bad in ("../x", "a/b", "..", ".", "a\\b", "1\x00", ""):
        for build in _key_builders():
            with pytest.raises(ValueError, match=r"building_id .* cannot be part of a storage key"):
                build(bad)
    assert layout.tagged_key(PREFIX, MONTH, "본관 A-1", RUN_ID) == f"{PREFIX}/201911/본관 A-1/tagged_본관 A-1_201911_{RUN_ID}.csv"
    assert layout.safe_segment("1", "building_id") == "1"


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyword_tagger():
    from flows.adapters.model_store import keyword_only_tagger

    return keyword_only_tagger()


def _key_builders():
    return [
        lambda b: layout.building_dir(PREFIX, MONTH, b),
        lambda b: layout.tagged_key(PREFIX, MONTH, b, RUN_ID),
        lambda b: layout.reviewed_key(PREFIX, MONTH, b, RUN_ID),
        lambda b: layout.dashboard_key(PREFIX, MONTH, b, RUN_ID),
        lambda b: layout.latest_dashboard_key(PREFIX, MONTH, b),
    ]


def _check_keys(bid: str) -> None:
    folder = f"{PREFIX}/201911/{bid}"
    assert layout.building_dir(PREFIX, MONTH, bid) == folder
    assert posixpath.normpath(folder) == folder
    for build in _key_builders()[1:]:
        key = build(bid)
        assert posixpath.normpath(key) == key, key
        assert posixpath.dirname(key) == folder, key
        assert key.startswith(folder + "/")


def _assert_no_c0(df: pl.DataFrame) -> None:
    for c, t in df.schema.items():
        if t == pl.Utf8:
            assert not df[c].str.contains(C0_CONTROL_RE.pattern).fill_null(False).any(), c


def _check_valid_output(rows: list[dict], out: pl.DataFrame) -> None:
    ids = [_stripped(r["voc_id"]) for r in rows]
    # every input voc_id comes out exactly once, in first-seen order
    assert out["voc_id"].to_list() == list(dict.fromkeys(ids))
    assert all(id_problem(v) is None for v in out["voc_id"].to_list() + out["building_id"].to_list())
    _assert_no_c0(out)
    for vid, flags, title, reply in out.select("voc_id", "input_flags", "title", "reply").iter_rows():
        group = [r for r, v in zip(rows, ids) if v == vid]
        first = group[0]
        # texts are kept except for the control characters removed (first row's fields, replies joined)
        assert title == remove_c0_controls(first["title"] or "")
        for r in group:
            assert remove_c0_controls(r["reply"] or "") in reply
        # labels are stripped of surrounding whitespace first (\x0b and \x0c are whitespace too)
        texts = [r[c] or "" for r in group for c in (*TEXT_COLUMNS, "building_name")]
        texts += [_stripped(r["subject_minor"]) or "" for r in group]
        had_control = any(C0_CONTROL_RE.search(t) for t in texts)
        flag_set = set(filter(None, flags.split(";")))
        assert ("control" in flag_set) == bool(had_control)
        assert ("duplicate_merged" in flag_set) == (len(group) > 1)
