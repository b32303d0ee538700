"""The training core (voc.training): a challenger trained by kind, the champion measured on the
challenger's held-out rows, and the champion rule's typed decision."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from voc.tagger import TrainReport, evaluate_tagger, resolve_taxonomy
from voc.taxonomy import default_taxonomy
from voc.training import (
    NOT_PROMOTED,
    PROMOTED,
    ChallengerRecipe,
    TrainingDecision,
    champion_as,
    decide,
    measure_champion,
    train_challenger,
)


def _report(macro_f1: float | None, n_holdout: int = 10) -> TrainReport:
    rep = TrainReport(kind="linear", version="v", n_rows=50)
    if macro_f1 is not None:
        rep.metrics = {"subject": {"macro_f1": macro_f1}}
        rep.n_holdout = {"subject": n_holdout}
    return rep


def _champ(macro_f1: float) -> dict[str, dict[str, float]]:
    return {"subject": {"macro_f1": macro_f1}}


def test_decide_promotes_only_a_challenger_that_is_not_worse_on_every_variant() -> None:
    first = decide({"reply": _report(0.4)}, None, n_rows=50)
    assert isinstance(first, TrainingDecision) and first.promote and first.status == PROMOTED == "champion"
    assert first.champion_metrics is None and first.reason == "reply: no champion yet"
    tie = decide({"reply": _report(0.5), "registration": _report(0.45)},
                 {"reply": _champ(0.5), "registration": _champ(0.45)}, n_rows=50)
    assert tie.promote and tie.reason.startswith("reply: held-out macro-F1 0.5000 >= champion 0.5000")
    worse = decide({"reply": _report(0.6, 12), "registration": _report(0.44, 11)},
                   {"reply": _champ(0.5), "registration": _champ(0.45)}, n_rows=50)
    assert not worse.promote and worse.status == NOT_PROMOTED == "candidate"
    assert worse.variants["reply"].promote and not worse.variants["registration"].promote
    assert "registration: held-out macro-F1 0.4400 < champion 0.4500" in worse.reason
    assert worse.holdout_rows == {"reply": {"subject": 12}, "registration": {"subject": 11}} and worse.n_rows == 50
    assert worse.challenger_metrics["registration"]["subject"]["macro_f1"] == 0.44
    assert worse.champion_metrics == {"reply": _champ(0.5), "registration": _champ(0.45)}
    # a champion not measurable on one variant does not block; a challenger without metrics does
    assert decide({"reply": _report(0.1)}, {"reply": None}, n_rows=1).promote
    assert not decide({"reply": _report(None)}, {"reply": _champ(0.1)}, n_rows=1).promote
    with pytest.raises(dataclasses.FrozenInstanceError):
        worse.promote = True  # type: ignore[misc]
    with pytest.raises(ValueError):
        decide({}, None, n_rows=0)


def test_champion_as_answers_registration_with_the_reply_tagger_given_no_reply() -> None:
    class T:
        use_reply = True

    reply = T()
    twin = champion_as("registration", {"reply": reply})
    assert twin is not reply and twin.use_reply is False and reply.use_reply is True
    reg = T()
    assert champion_as("registration", {"reply": reply, "registration": reg}) is reg
    assert champion_as("reply", {"registration": reg}) is reg
    with pytest.raises(ValueError):
        champion_as("reply", {})


@pytest.fixture(scope="module")
def frame(sample_df: pl.DataFrame) -> pl.DataFrame:
    return sample_df.filter(pl.col("created_at") < pl.date(2014, 1, 1))  # 171 VOCs


def test_a_challenger_equal_to_the_champion_is_measured_the_same_and_promoted(frame, tokenizer) -> None:
    """The champion is measured on exactly the challenger's held-out rows: measuring the
    challenger itself as the champion gives its own report's metrics, and a tie promotes."""
    tax, _ = resolve_taxonomy(default_taxonomy(), frame, tokenizer=tokenizer)
    tagger, report, notes = train_challenger(
        frame, tax, ChallengerRecipe(kind="linear", seed=0), version="v1", use_reply=True, tokenizer=tokenizer
    )
    assert tagger.kind == "linear" and notes == [] and report.n_holdout["subject"] > 20
    measured = measure_champion({"reply": tagger}, frame, tagger.taxonomy, {"reply": report.holdout_ids})
    got, want = measured["reply"]["subject"], report.metrics["subject"]
    assert got["n"] == want["n"] and got["macro_f1"] == pytest.approx(want["macro_f1"])
    assert got == evaluate_tagger(tagger, frame, tagger.taxonomy, report.holdout_ids)["subject"]
    decision = decide({"reply": report}, measured, n_rows=frame.height)
    assert decision.promote and decision.holdout_rows == {"reply": report.n_holdout}


def test_a_kind_with_a_fallback_trains_it_when_no_dimension_has_two_classes(frame, tokenizer) -> None:
    """KoBERT on one labelled class: the hybrid CPU model is trained instead, and the notes say so
    (no torch needed: the fallback is decided before any KoBERT code runs)."""
    major, minor = frame["reviewed_subject_major"][0], frame["reviewed_subject_minor"][0]
    one = frame.head(40).with_columns(pl.lit(major).alias("reviewed_subject_major"), pl.lit(minor).alias("reviewed_subject_minor"))
    tax, _ = resolve_taxonomy(default_taxonomy(), one, tokenizer=tokenizer)
    recipe = ChallengerRecipe(kind="kobert", seed=0, options={"epochs": 1})  # KoBERT's options are not passed on
    tagger, report, notes = train_challenger(one, tax, recipe, version="v2", use_reply=True, tokenizer=tokenizer)
    assert tagger.kind == report.kind == "hybrid"
    assert notes == ["kobert: no dimension has two labelled classes; trained the hybrid CPU model instead"]
    assert report.fallback_dimensions == ["subject", "work"] and report.metrics == {}
