import pytest

from voc.text import MAX_FIELD_CHARS, build_all_text, build_all_texts, clean_text


def test_real_row_cleanup(sample_df):
    row = sample_df.filter(sample_df["voc_id"] == "4949").row(0, named=True)
    ct = build_all_text(row["title"], row["request_contents"], row["reply"])
    assert ct.text.startswith("차량 견인시 범퍼 기스 민원제기합니다\n")
    assert "신포시장" in ct.text and "언더리프트" in ct.text
    no_reply = build_all_text(row["title"], row["request_contents"], row["reply"], with_reply=False)
    assert "언더리프트" not in no_reply.text


def test_html_control_emoji_phone_attachment():
    raw = "<p>화장실&nbsp;물이 샙니다&lt;급함&gt;</p>\x00\x07 😡😡 연락처 010-1234-5678, 032)760-7114 첨부: 사진1.jpg 민원서.hwp"
    ct = clean_text(raw)
    assert "<p>" not in ct.text and "<급함>" in ct.text
    assert "\x00" not in ct.text and "😡" not in ct.text
    assert "1234" not in ct.text and "7114" not in ct.text
    assert ".jpg" not in ct.text and ".hwp" not in ct.text
    assert {"html", "control", "emoji"} <= ct.flags
    # Korean document symbols survive
    assert "※" in clean_text("※ 참고").text and clean_text("☎ 032-760-7114").flags == frozenset()


def test_huge_text_is_truncated_and_flagged():
    ct = clean_text("가" * 100_000)
    assert len(ct.text) == MAX_FIELD_CHARS and "truncated" in ct.flags


@pytest.mark.parametrize("title,body", [("", ""), (None, None), ("  \n ", "\x00"), ("😀", "🙏")])
def test_empty_text_is_flagged_not_dropped(title, body):
    texts, flags = build_all_texts([title], [body], ["답변입니다"])
    assert len(texts) == 1 and "empty_text" in flags[0]
    assert texts[0] == "답변입니다"


def test_lengths_must_match():
    with pytest.raises(ValueError):
        build_all_texts(["a"], [], None)


def test_remove_c0_controls_keeps_tab_newline_cr_and_everything_else():
    from voc.text import C0_CONTROL_RE, remove_c0_controls

    raw = "가\x00나\x01\x08\x0b\x0c\x0e\x1f다\t\n\r\x7f\x85\u200f😀e\u0301"
    assert remove_c0_controls(raw) == "가나다\t\n\r\x7f\x85\u200f😀e\u0301"
    assert remove_c0_controls(remove_c0_controls(raw)) == remove_c0_controls(raw)
    assert all(C0_CONTROL_RE.match(chr(o)) for o in [*range(0, 9), 11, 12, *range(14, 32)])
    assert not any(C0_CONTROL_RE.match(ch) for ch in "\t\n\r \x7f")


@pytest.mark.parametrize(
    "raw",
    ["첨부: 사진1.jpg 민원서.HWP", "가." * 5000, "a" * 20_000 + ".pdf", "파일.pdfx 와 file.docx", "x.hwpx.zip", "3.5 평"],
)
def test_attachment_removal_is_unchanged_by_the_fast_path(raw):
    from voc import text

    slow = text._WS_RE.sub(" ", text._ATTACH_RE.sub(" ", raw)).strip()
    fast = clean_text(raw, mask_phone=False, max_chars=10**6).text
    assert fast == slow
    # the fast path skips the full scan only where it cannot match
    assert text._ATTACH_EXT_RE.search(raw) or not text._ATTACH_RE.search(raw)
