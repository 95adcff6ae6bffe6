"""Row extraction and the benchmark protocol filter, on hand-made sessions with known answers."""

from __future__ import annotations

import pytest

from psyinsight.classify.tasks import ExtractConfig, extract_examples, extract_inputs, get_task
from psyinsight.data.schema import Repair, Session, Turn
from psyinsight.errors import PsyInsightError


def seeker(text, labels, obs=None, tid=""):
    return Turn(speaker="Seeker", content=text, emotions=labels, observation=obs, id=tid)


def supporter(text, labels, reasoning=None, tid=""):
    return Turn(speaker="Supporter", content=text, strategies=labels, reasoning=reasoning, id=tid)


def make_session(dialog, *, dialog_id="000001", language="en", therapy="Family Therapy", topic="Job Crisis", repairs=()):
    return Session(
        dialog_id=dialog_id, language=language, psychotherapy=therapy, topic=topic, background="bg text", dialog=dialog, repairs=list(repairs)
    )


@pytest.fixture()
def session():
    return make_session(
        [
            seeker("I feel sad.", ["Sadness", "Anger"], obs="The client is sad.", tid="0-0"),
            supporter("Tell me more?", ["Question"], reasoning="Explore.", tid="0-1"),
            seeker("Whatever.", ["Unknown"], tid="0-2"),
            supporter("I see.", ["Others", "Reflection of Feelings"], tid="0-3"),
            seeker("Too many.", ["Anger", "Fear", "Shame", "Guilty"], tid="0-4"),
            seeker("Echoed.", ["Unknown"], tid="0-5"),
            seeker("Fine.", ["Neutral"], tid="0-6"),
        ],
        repairs=[Repair(rule="echoed_label_list", field="emotional label", turn="0-5", original=["Anger"] * 2 + ["Fear"] * 9)],
    )


# (task, config, expected (id, labels) rows)
CASES = [
    ("emotion", ExtractConfig(), [("en-000001/0", ["Sadness"]), ("en-000001/6", ["Neutral"])]),
    ("strategy", ExtractConfig(), [("en-000001/1", ["Question"])]),
    ("emotion", ExtractConfig(label_mode="multi"), [("en-000001/0", ["Sadness", "Anger"]), ("en-000001/6", ["Neutral"])]),
    ("strategy", ExtractConfig(label_mode="multi"), [("en-000001/1", ["Question"]), ("en-000001/3", ["Reflection of Feelings"])]),
    ("emotion", ExtractConfig(max_labels=4), [("en-000001/0", ["Sadness"]), ("en-000001/4", ["Anger"]), ("en-000001/6", ["Neutral"])]),
    ("psychotherapy", ExtractConfig(), [("en-000001", ["Family Therapy"])]),
    ("topic", ExtractConfig(), [("en-000001", ["Job Crisis"])]),
]


@pytest.mark.parametrize(("task", "config", "expected"), CASES)
def test_protocol_filter_known_answers(session, task, config, expected):
    rows = extract_examples([session], task, config=config)
    assert [(r.id, r.labels) for r in rows] == expected


def test_echoed_list_dropped_even_when_max_labels_allows_unknown(session):
    # The repaired echoed list is ["Unknown"]; the repair record says it held 11 labels.
    cfg = ExtractConfig(drop_labels=("Others",))
    ids = [r.id for r in extract_examples([session], "emotion", config=cfg)]
    assert "en-000001/5" not in ids  # original list too long
    assert "en-000001/2" in ids  # a genuine Unknown is kept when Unknown is not dropped


def test_empty_and_unknown_session_labels_dropped():
    empty = make_session([seeker("x", ["Neutral"])], topic="", therapy="Unknown")
    assert extract_examples([empty], "topic") == []
    assert extract_examples([empty], "psychotherapy") == []


def test_context_and_annotation_fields(session):
    rows = extract_examples([session], "strategy", config=ExtractConfig(context_turns=1, turn_fields=("content", "annotation")))
    assert rows[0].text == "Tell me more?\nExplore."
    assert rows[0].context == "Seeker: I feel sad."
    rows = extract_examples([session], "emotion", config=ExtractConfig(context_turns=0))
    assert rows[0].text == "I feel sad." and rows[0].context == ""


def test_following_turns_after_a_marker(session):
    rows = extract_examples([session], "emotion", config=ExtractConfig(context_turns=1, next_turns=1))
    assert rows[0].context == "[NEXT]\nSupporter: Tell me more?"
    assert rows[1].context == "Seeker: Echoed.\n[NEXT]\n"  # the last turn has no following turn


def test_session_text_leaves_theme_out_and_groups_apply(session):
    session.theme = "family therapy: the label itself"
    rows = extract_examples([session], "psychotherapy", groups={"en-000001": "g7"})
    assert "the label itself" not in rows[0].text
    assert "bg text" in rows[0].text and "Seeker: I feel sad." in rows[0].text
    assert rows[0].group == "g7"


def test_language_filter(session):
    cn = make_session([seeker("我很难过", ["Sadness"])], dialog_id="000002", language="cn")
    rows = extract_examples([session, cn], "emotion", language="cn")
    assert [r.id for r in rows] == ["cn-000002/0"]


def test_inputs_keep_unlabelled_rows(session):
    rows = extract_inputs([session], "emotion")
    assert len(rows) == 5 and rows[1].labels == ["Unknown"]


def test_unknown_task_and_field_are_clear_errors(session):
    with pytest.raises(PsyInsightError, match="unknown task 'mood'.*emotion, strategy, psychotherapy, topic"):
        get_task("mood")
    with pytest.raises(PsyInsightError, match="unknown session field 'notes'"):
        extract_examples([session], "topic", config=ExtractConfig(session_fields=("notes",)))


def test_default_session_inputs_per_task(session):
    """The tuned session inputs reach the rows; a flag overrides them; theme is never a default."""
    from psyinsight.classify.defaults import SESSION_FIELDS, default_extract

    session.reasoning, session.summary, session.theme = "plan: restructure thoughts", "a summary", "Family Therapy"
    cn_extract = default_extract("psychotherapy", "cn")
    assert cn_extract.session_fields == ("background", "reasoning", "summary", "guide")
    text = extract_examples([session], "psychotherapy", config=cn_extract)[0].text
    assert "plan: restructure thoughts" in text and "a summary" in text and "Seeker:" not in text
    assert default_extract("psychotherapy", "en").session_fields == ("background", "dialog")
    assert default_extract("topic", "cn", session_fields=["background"]).session_fields == ("background",)
    assert all("theme" not in fields for fields in SESSION_FIELDS.values())
