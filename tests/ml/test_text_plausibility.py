"""Text plausibility: the judge behind on-screen text, on the misreads seen on real footage."""

from __future__ import annotations

import pytest

from rayflow.ml.text_plausibility import TextJudge, restore_spaces, shape_problem


@pytest.fixture(scope="module")
def judge() -> TextJudge:
    judge = TextJudge()
    judge.setup()
    return judge


@pytest.mark.parametrize("text", ["THE BLENDER FOUNDATION", "presents", "Breaking news: storm at 12:30",
                                  "Welcome to the harbour", "iPhone", "NEW TITLE 7", "12:30"])
def test_real_text_is_plausible(judge: TextJudge, text: str) -> None:
    verdict = judge.verdict(text)
    assert verdict.plausible and not verdict.unknown_only, verdict


@pytest.mark.parametrize(("text", "reason"), [
    ("peesents", "misread of 'presents'"),   # Sintel trailer, 0.99
    ("presemts", "misread of 'presents'"),
    ("clccsrd", "no vowel"),
    ("cLcCsRd", "odd case pattern"),
    ("Subtit1e line", "digit inside a word"),
    ("#%&*!", "mostly symbols"),
    ("场", "no words"),
])
def test_garbled_text_is_not(judge: TextJudge, text: str, reason: str) -> None:
    verdict = judge.verdict(text)
    assert not verdict.plausible and reason in verdict.reason, verdict


def test_unknown_words_need_agreement(judge: TextJudge) -> None:
    # "Coxrite" (an X-Rite colour checker read at 0.80) is shaped like a word and is no
    # near-miss: only the caller's agreement rule can drop it.
    for text in ("Coxrite", "Zorblat"):
        verdict = judge.verdict(text)
        assert verdict.plausible and verdict.unknown_only, verdict


def test_spaces_are_restored_only_into_common_words(judge: TextJudge) -> None:
    assert judge.verdict("WEATHERALERT").text == "WEATHER ALERT"
    assert judge.verdict("Subtitlelineforsmall text").text == "Subtitle line for small text"
    assert judge.verdict("Coxrite").text == "Coxrite"      # 'cox' is too rare to be a piece
    assert judge.verdict("peesents").text == "peesents"    # 'ents' is no word
    assert restore_spaces("ab1cdefghij", lambda w: 0) == "ab1cdefghij"


def test_shapes(judge: TextJudge) -> None:
    assert shape_problem("strengths") == "five consonants in a row"
    assert judge.verdict("strengths").plausible  # shape rules only judge unknown words
    assert shape_problem("McDonald") is None and shape_problem("YouTube") is None
    assert shape_problem("pfrzbta") == "five consonants in a row"
    assert shape_problem("coool") == "a letter three times in a row"


def test_missing_word_lists_name_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from rayflow.ml.speech import ModelMissing

    monkeypatch.setitem(sys.modules, "spellchecker", None)  # import now raises ImportError
    with pytest.raises(ModelMissing, match="pip install pyspellchecker"):
        TextJudge().setup()
