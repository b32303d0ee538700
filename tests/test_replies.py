"""voc.replies: reply drafts from similar reviewed VOCs, particulars masked (issue 25)."""

from __future__ import annotations

import pytest

from voc.evidence import Neighbour
from voc.replies import DATE_MASK, NAME_MASK, TIME_MASK, mask_reply, suggest_replies


@pytest.mark.parametrize(
    "text, want",
    [
        ("2019년 11월 3일 오후 3시 30분에 현장 확인", f"{DATE_MASK} {TIME_MASK}에 현장 확인"),
        ("10월중으로 보안등 설치, 2019.11.03 14:30 방문", f"{DATE_MASK}중으로 보안등 설치, {DATE_MASK} {TIME_MASK} 방문"),
        ("담당자: 홍길동 (032-760-7579)", f"담당자: {NAME_MASK} ([전화번호])"),
        ("교통행정과 주무관 김철수, 홍길동 주무관에게 문의", f"교통행정과 주무관 {NAME_MASK}, {NAME_MASK} 주무관에게 문의"),
        # a department's own number and a department before a title are kept; nothing is added
        ("교통행정과(760-7579)로 문의하시기 바랍니다.", "교통행정과(760-7579)로 문의하시기 바랍니다."),
        ("담당 부서로 이관하였습니다.", "담당 부서로 이관하였습니다."),
    ],
)
def test_mask_reply(text: str, want: str) -> None:
    assert mask_reply(text) == want
    assert mask_reply(want) == want  # idempotent


def test_mask_reply_on_the_samples_replies(sample_df) -> None:
    """Masking the shipped replies adds no text: every character of a draft comes from the reply
    or from a placeholder."""
    for reply in sample_df["reply"].drop_nulls().to_list()[:300]:
        draft = mask_reply(reply)
        assert set(draft) <= set(reply) | set("[]날짜시각담당자전화번호이메일주민")


def test_suggest_replies_threshold_order_and_limit() -> None:
    nbs = [[Neighbour("a", 0.9, {"subject": "국>과"}), Neighbour("b", 0.8, {"subject": None}),
            Neighbour("c", 0.7, {"subject": "국>과"}), Neighbour("d", 0.65, {}), Neighbour("e", 0.6, {})],
           [Neighbour("a", 0.2, {})]]
    replies = {"a": "2019년 답변", "b": "  ", "c": "답변 C", "d": "답변 D", "e": "답변 E"}
    got = suggest_replies(nbs, replies, min_similarity=0.5)
    assert [[s.voc_id for s in row] for row in got] == [["a", "c", "d"], []]  # b has no reply; e beyond 3
    assert got[0][0].draft == f"{DATE_MASK} 답변" and got[0][0].subject == "국>과"
    with pytest.raises(ValueError, match="max_suggestions"):
        suggest_replies(nbs, replies, max_suggestions=0)
