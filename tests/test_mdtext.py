"""User-supplied text in Markdown renders as the text typed (voc/mdtext.py), and every Prefect
artifact the flows build escapes it: a building named ``[x](javascript:alert(1))`` is no link,
``<script>`` no HTML, ``|`` no table cell, ``*`` no emphasis.

Rendering is checked with markdown-it-py in CommonMark mode plus GFM tables and strikethrough
(Prefect's UI renders markdown artifacts, link artifacts (``[text](link)``) and every string cell
of a table artifact as Markdown).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest

from voc.mdtext import MD_ESCAPED, md_code, md_escape, md_link_destination

markdown_it = pytest.importorskip("markdown_it")

HOSTILE = [
    "[x](javascript:alert(1))",
    "<script>alert(1)</script>",
    "본관 | 별관 *굵게* _기울임_ ~~취소~~",
    "# 제목\n- 목록\r\n> 인용",
    "![img](http://evil.example/x.png) <http://evil.example> www.evil.example a@evil.example",
    "&lt;b&gt; &amp; `code` \\*",
    "[a]: http://evil.example",
    "x\u2028y\x00z",
]


def _render(md: str) -> str:
    """HTML of ``md``; every link scheme allowed (markdown-it drops ``javascript:`` and ``file:``
    links by default), so that only the escaping keeps a link out."""
    renderer = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])
    renderer.validateLink = lambda url: True
    return renderer.render(md)


def _text_of(rendered: str) -> str:
    """The visible text of rendered HTML (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()


def _no_markup(rendered: str) -> None:
    tags = set(re.findall(r"</?([a-z0-9]+)", rendered))
    assert tags <= {"p", "ul", "li", "h1", "table", "thead", "tbody", "tr", "th", "td", "strong", "code"}, rendered
    assert "<a " not in rendered and "<img" not in rendered and "<script" not in rendered and "<em>" not in rendered


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_renders_literally(text: str) -> None:
    out = _render(md_escape(text))
    _no_markup(out)
    assert set(re.findall(r"</?([a-z0-9]+)", out)) == {"p"}
    expected = re.sub(r"[\x00-\x08\x0a-\x1f\u2028\u2029]+", " ", text)
    assert _text_of(out) == expected.strip()


def test_escape_leaves_letters_and_korean_alone() -> None:
    assert md_escape("본관 A동 3층 😀") == "본관 A동 3층 😀"
    assert md_escape(None) == "" and md_escape(12) == "12"
    assert all(md_escape(ch) == "\\" + ch for ch in MD_ESCAPED)
    cell = _render("| a | b |\n|---|---|\n| " + md_escape("x|y") + " | 2 |")
    assert "<td>x|y</td>" in cell  # a pipe stays inside its cell


def test_code_spans_and_link_destinations() -> None:
    for text in ("linear_20260101_000000", "a`b", "`x`", "**not bold**"):
        out = _render(md_code(text))
        assert _text_of(out) == text and "<code>" in out and "<strong>" not in out
    assert md_code("") == "" and md_code(None) == ""
    assert md_link_destination("file:///srv/voc data/a (1).html") == "file:///srv/voc%20data/a%20%281%29.html"
    link = _render(f"[t]({md_link_destination('https://voc.example/stat/본관 [1]/x.html?a=1&b=%20')})")
    assert 'href="https://voc.example/stat/%EB%B3%B8%EA%B4%80%20%5B1%5D/x.html?a=1&amp;b=%20"' in link
    for bad in ("javascript:alert(1)", "data:text/html,x", " JavaScript:alert(1)"):
        with pytest.raises(ValueError, match="scheme"):
            md_link_destination(bad)


def test_monthly_and_train_artifacts_escape_names_ids_and_labels(
    sample_df: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The artifacts of a monthly run and of a training run, built from a real building of the
    shipped sample and hostile names: every string renders as the text, none as markup."""
    from config.settings import VocSettings
    from flows import monthly, train

    real_id, real_name = sample_df.select("building_id", "building_name").row(0)
    results = [
        monthly.BuildingResult(real_id, real_name, rows=3, outputs={"dashboard_latest": "x"}),
        monthly.BuildingResult("A(1)", HOSTILE[0], rows=2, outputs={"dashboard_latest": "x"}),
        monthly.BuildingResult("b|2", HOSTILE[1], status="failed", error="bad <b>cell</b> [x](javascript:alert(1))"),
        monthly.BuildingResult("c*3", HOSTILE[2], rows=1, drift=["[drift](javascript:alert(1))"], outputs={"dashboard_latest": "x"}),
    ]
    made: list[tuple[str, dict]] = []
    for name in ("create_table_artifact", "create_link_artifact", "create_markdown_artifact"):
        monkeypatch.setattr(monthly, name, lambda _n=name, **kw: made.append((_n, kw)))
    summary = {
        "mode": "full", "month": "2019-11", "run_id": "full_20191201_020000", "model": "linear_x", "rows": 6,
        "failed": ["b|2"], "drift": {"c*3": results[3].drift}, "index": "x",
        "review_sheet": {"location": "[s](javascript:alert(1))", "error": "<script>x</script>"},
        "review_sheet_issues": ["row 3: *bold* [x](javascript:alert(1))"],
    }
    monthly._publish_artifacts(VocSettings(storage=str(tmp_path)), summary, results)
    monthly._no_vocs("full", "2019-11", "full_1", ["[x](javascript:alert(1))"], type("L", (), {"warning": lambda *a: None})())

    from prefect.artifacts import LinkArtifact

    rendered: list[str] = []
    for kind, kw in made:
        if kind == "create_table_artifact":
            rendered += [_render(v) for row in kw["table"] for v in row.values() if isinstance(v, str) and v]
        elif kind == "create_link_artifact":
            out = _render(LinkArtifact(link=kw["link"], link_text=kw["link_text"]).format())
            assert out.count("<a ") == 1 and 'href="file://' in out, out  # the one link Prefect makes
            rendered.append(out.replace(re.search(r"<a [^>]*>", out).group(), "").replace("</a>", ""))
        else:
            rendered.append(_render(kw["markdown"]))
    for out in rendered:
        _no_markup(out)
    texts = "\n".join(_text_of(r) for r in rendered)
    for name in (real_name, *HOSTILE[:3]):
        assert name in texts, name
    assert "[drift](javascript:alert(1))" in texts and "b|2" in texts and "[x](javascript:alert(1))" in texts

    # training: the per-class table and the summary quote labels (the customer's taxonomy)
    made.clear()
    for name in ("create_table_artifact", "create_markdown_artifact"):
        monkeypatch.setattr(train, name, lambda _n=name, **kw: made.append((_n, kw)))
    label = "[설비](javascript:alert(1)) | *전기*"
    metrics = {"subject": {"per_class": {label: {"precision": 1.0, "recall": 0.5, "f1": 0.66, "support": 3}}}}
    tsummary = {
        "model": "linear_2026", "status": "champion", "decision": "macro-F1 0.5 > 0.4", "n_rows": 3, "n_train": 2,
        "n_holdout": 1, "labels": {"subject": 3}, "metrics": {"subject": {"macro_f1": 0.5}}, "fallback_dimensions": [],
        "warnings": [f"subject: label {label} added"], "recipes": {},
    }
    train._publish_train_artifacts(tsummary, metrics)
    outs = [_render(v) for k, kw in made if k == "create_table_artifact" for row in kw["table"] for v in row.values() if isinstance(v, str)]
    outs += [_render(kw["markdown"]) for k, kw in made if k == "create_markdown_artifact"]
    for out in outs:
        _no_markup(out)
    assert sum(label in _text_of(o) for o in outs) == 2
