"""One test per repair rule, each on a small hand-built session that has exactly that defect.

A broken rule then fails with the session it broke on and what it logged, instead of a
count over the release. Every rule named in ``RULE_DESCRIPTIONS`` must have a case here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from psyinsight.data.repair import ECHO_MIN_LABELS, RULE_DESCRIPTIONS, participant_variants, repair_session


def clean_session() -> dict[str, Any]:
    """A session no rule touches (checked by the first test)."""
    return {
        "dialog_id": "000101",
        "theme": "",
        "psychotherapy": "Cognitive Behavioral Therapy",
        "topic": "Job Crisis",
        "stage": "1st Session",
        "guide": "Build trust first.",
        "is_same_qa": 0,
        "is_same_session": 0,
        "background": "A 35-year-old programmer lost his job.",
        "reasoning": "Thoughts shape feelings.",
        "summary": "The client agrees to keep a diary.",
        "dialog": [
            {
                "speaker": "Seeker",
                "participant": "Client",
                "content": "I cannot sleep since I lost my job.",
                "id": "0-0",
                "observation": "The client describes insomnia.",
                "emotional label": ["Anxiety"],
            },
            {
                "speaker": "Supporter",
                "participant": "Counselor",
                "content": "When does the thought come?",
                "id": "0-1",
                "reasoning": "Explore the situation.",
                "strategy": ["Question"],
            },
            {
                "speaker": "Seeker",
                "participant": "Client",
                "content": "Mostly at night.",
                "id": "0-2",
                "observation": "Night-time rumination.",
                "emotional label": ["Sadness"],
            },
        ],
    }


@dataclass
class Case:
    rule: str
    defect: Callable[[dict[str, Any]], None]
    """Puts exactly one defect into a clean session."""
    field: str
    turn: str | None
    original: Any
    check: Callable[[dict[str, Any]], bool]
    """True when the repaired session holds the repaired value."""


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(s: dict[str, Any]) -> None:
        target = s
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def _drop_label_key(s: dict[str, Any]) -> None:
    s["dialog"][1]["emotional label"] = ["Neutral"]


def _duplicate_turn(s: dict[str, Any]) -> None:
    s["dialog"].insert(2, copy.deepcopy(s["dialog"][1]))


def _reuse_id(s: dict[str, Any]) -> None:
    s["dialog"][2]["id"] = "0-0"


def _empty_turn(s: dict[str, Any]) -> None:
    s["dialog"].insert(1, {"speaker": "Supporter", "participant": "Counselor", "content": "  ", "id": "0-9"})


ECHO = ["Neutral", "Happiness", "Anxiety", "Anger", "Sadness", "Depression", "Fear", "Guilty", "Shame"][:ECHO_MIN_LABELS]

CASES = [
    Case("wrong_type", _set(("is_same_qa",), "1"), "is_same_qa", None, "1", lambda s: s["is_same_qa"] == 1),
    Case("not_available", _set(("summary",), "N/A"), "summary", None, "N/A", lambda s: s["summary"] == ""),
    Case("unknown_case_link", _set(("is_same_session",), -1), "is_same_session", None, -1, lambda s: s["is_same_session"] is None),
    Case(
        "failure_json",
        _set(("guide",), '{"error": "rate limited", "code": 429}'),
        "guide",
        None,
        '{"error": "rate limited", "code": 429}',
        lambda s: s["guide"] == "",
    ),
    Case(
        "wrapped_output",
        _set(("background",), '{"output": " A teacher with insomnia. "}'),
        "background",
        None,
        '{"output": " A teacher with insomnia. "}',
        lambda s: s["background"] == "A teacher with insomnia.",
    ),
    Case(
        "label_alias", _set(("psychotherapy",), "CBT"), "psychotherapy", None, "CBT", lambda s: s["psychotherapy"] == "Cognitive Behavioral Therapy"
    ),
    Case(
        "echoed_label_list",
        _set(("dialog", 0, "emotional label"), ECHO),
        "emotional label",
        "0-0",
        ECHO,
        lambda s: s["dialog"][0]["emotional label"] == ["Unknown"],
    ),
    Case(
        "unknown_mixed",
        _set(("dialog", 2, "emotional label"), ["Unknown", "Sadness"]),
        "emotional label",
        "0-2",
        ["Unknown", "Sadness"],
        lambda s: s["dialog"][2]["emotional label"] == ["Sadness"],
    ),
    Case("duplicate_turn", _duplicate_turn, "dialog", "0-1", None, lambda s: [t["id"] for t in s["dialog"]] == ["0-0", "0-1", "0-2"]),
    Case("repeated_turn_id", _reuse_id, "id", "0-0.1", "0-0", lambda s: [t["id"] for t in s["dialog"]] == ["0-0", "0-1", "0-0.1"]),
    Case("annotation_wrong_role", _drop_label_key, "emotional label", "0-1", ["Neutral"], lambda s: "emotional label" not in s["dialog"][1]),
    Case(
        "participant_variant",
        _set(("dialog", 1, "participant"), "Counselor:"),
        "participant",
        "0-1",
        "Counselor:",
        lambda s: s["dialog"][1]["participant"] == "Counselor",
    ),
    Case("empty_turn", _empty_turn, "dialog", "0-9", None, lambda s: [t["id"] for t in s["dialog"]] == ["0-0", "0-1", "0-2"]),
]


def test_the_clean_session_needs_no_repair():
    repaired, log = repair_session(clean_session())
    assert log == [] and repaired == clean_session()


def test_every_rule_has_a_case():
    assert sorted(c.rule for c in CASES) == sorted(RULE_DESCRIPTIONS)


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_rule_repairs_exactly_its_defect(case: Case):
    raw = clean_session()
    case.defect(raw)
    before = copy.deepcopy(raw)
    repaired, log = repair_session(raw)
    logged = [(r.rule, r.field, r.turn) for r in log]
    assert logged == [(case.rule, case.field, case.turn)], f"session {before} logged {logged}"
    if case.original is not None:
        assert log[0].original == case.original
    else:  # a removed turn is logged exactly as written
        assert log[0].original in before["dialog"]
    assert case.check(repaired), f"{case.rule} left {repaired}"
    assert raw == before, "repair_session changed its input"


def test_a_participant_spelling_variant_maps_to_the_common_spelling():
    odd = clean_session()
    for turn in odd["dialog"]:
        if turn["speaker"] == "Seeker":
            turn["participant"] = "Mr. Arianes"
    common = [clean_session() for _ in range(3)]
    for s in common:
        for turn in s["dialog"]:
            if turn["speaker"] == "Seeker":
                turn["participant"] = "Mr. Arians"
    mapping = participant_variants([*common, odd])
    assert mapping == {"Mr. Arianes": "Mr. Arians"}
    repaired, log = repair_session(odd, mapping)
    assert [(r.rule, r.turn, r.original) for r in log] == [
        ("participant_variant", "0-0", "Mr. Arianes"),
        ("participant_variant", "0-2", "Mr. Arianes"),
    ]
    assert {t["participant"] for t in repaired["dialog"] if t["speaker"] == "Seeker"} == {"Mr. Arians"}
