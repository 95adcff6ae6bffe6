"""The release loads, every defect family is repaired by a named rule, and nothing is lost."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from psyinsight.data.release import load_release, load_sessions
from psyinsight.data.sample import sample_sessions
from psyinsight.data.taxonomy import EMOTIONS, STRATEGIES, UNKNOWN


@pytest.fixture(scope="module")
def raw(release_dir):
    return {lang: json.loads((release_dir / f"{lang}_data_version7.json").read_text("utf-8")) for lang in ("en", "cn")}


@pytest.fixture(scope="module")
def repaired(release_dir):
    return load_release(release_dir)


def rules(sessions, language):
    return Counter(r.rule for s in sessions if s.language == language for r in s.repairs)


def test_counts_and_languages(repaired):
    assert Counter(s.language for s in repaired) == {"en": 520, "cn": 431}
    assert len({s.uid for s in repaired}) == 951


def test_each_defect_family_has_a_rule(repaired):
    en, cn = rules(repaired, "en"), rules(repaired, "cn")
    assert en["echoed_label_list"] == 29 and cn["echoed_label_list"] == 21
    assert en["duplicate_turn"] == 51
    assert cn["failure_json"] == 5 and cn["wrapped_output"] == 2
    assert cn["unknown_case_link"] == 353
    assert en["label_alias"] >= 40  # Cognitive Behaviour Therapy x40, ...
    assert en["participant_variant"] == 28  # Mr. Arians -> Mr. Arianes
    assert en["not_available"] == 10
    assert en["unknown_mixed"] > 0 and cn["unknown_mixed"] > 0
    assert en["annotation_wrong_role"] == 3
    assert cn["wrong_type"] == 1  # is_same_qa ""


def test_repaired_labels_are_canonical(repaired):
    for session in repaired:
        for turn in session.dialog:
            for labels, allowed in ((turn.emotions, EMOTIONS), (turn.strategies, STRATEGIES)):
                if labels is None:
                    continue
                assert set(labels) <= set(allowed)
                assert len(labels) < 9
                assert not (UNKNOWN in labels and len(labels) > 1)
    assert not any(s.psychotherapy == "Cognitive Behaviour Therapy" for s in repaired)


def test_nothing_is_lost(raw, repaired):
    """Every removed turn and every replaced value is in the repair log, verbatim."""
    for lang in ("en", "cn"):
        by_id = {s.dialog_id: s for s in repaired if s.language == lang}
        for original in raw[lang]:
            session = by_id[original["dialog_id"]]
            removed = [r.original for r in session.repairs if r.rule in ("duplicate_turn", "empty_turn")]
            assert len(session.dialog) + len(removed) == len(original["dialog"])
            for turn in removed:
                assert turn in original["dialog"]
    cn_guides = [r.original for s in repaired if s.language == "cn" for r in s.repairs if r.field == "guide"]
    raw_guides = [s["guide"] for s in raw["cn"] if s["guide"].strip().startswith("{")]
    assert sorted(cn_guides) == sorted(raw_guides)


def test_raw_mode_keeps_everything(release_dir, raw):
    sessions = load_release(release_dir, ["en"], repair=False)
    assert sum(len(s.dialog) for s in sessions) == sum(len(s["dialog"]) for s in raw["en"])
    assert not any(s.repairs for s in sessions)
    assert any(s.psychotherapy == "Cognitive Behaviour Therapy" for s in sessions)


def test_sample_covers_every_field():
    sessions = sample_sessions()
    assert Counter(s.language for s in sessions) == {"en": 4, "cn": 4}
    assert all(s.model_extra.get("synthetic") is True for s in sessions)
    assert not any(s.repairs for s in sessions)
    turns = [t for s in sessions for t in s.dialog]
    assert any(t.reference_labels for t in turns) and any(t.labels for t in turns)
    assert any(s.is_same_session == 1 for s in sessions)
    for field in ("background", "reasoning", "summary", "psychotherapy", "topic"):
        assert all(getattr(s, field) for s in sessions)
    assert all(s.guide and s.stage for s in sessions if s.language == "cn")
    assert all((t.observation and t.emotions) if t.is_client else (t.reasoning and t.strategies) for t in turns)


def test_unknown_keys_round_trip(tmp_path):
    data = [{"dialog_id": "1", "my_field": {"a": 1}, "dialog": [{"speaker": "Seeker", "content": "hi", "id": "0-0", "mood": 3}]}]
    path = tmp_path / "en_mine.json"
    path.write_text(json.dumps(data), "utf-8")
    session = load_sessions(path)[0]
    dumped = session.to_release_dict()
    assert dumped["my_field"] == {"a": 1} and dumped["dialog"][0]["mood"] == 3
