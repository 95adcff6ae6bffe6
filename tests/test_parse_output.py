"""Parsing generated turns into Observation / Reasoning / response (en + cn), failures kept."""

from __future__ import annotations

import pytest

from psyinsight.generate.parse import MARKERS, expected_fields, parse_output, to_prediction

CASES = [
    # (text, language, expect, observation, reasoning, response, ok)
    ("Therapist: That sounds hard.", "en", ("response",), None, None, "That sounds hard.", True),
    (
        "Observation: she is sad.\nReasoning: validate first.\nTherapist: That sounds hard.",
        "en",
        ("observation", "reasoning", "response"),
        "she is sad.",
        "validate first.",
        "That sounds hard.",
        True,
    ),
    ("Reasoning: x Therapist: What was your response: anger?", "en", ("reasoning", "response"), None, "x", "What was your response: anger?", True),
    ("**Reasoning:** reflect.\n**Therapist:** I hear you.", "en", ("reasoning", "response"), None, "reflect.", "I hear you.", True),
    ("Therapist: I hear you.\nClient: yes, and then...", "en", ("response",), None, None, "I hear you.", True),
    ("Therapist: First reply.\nTherapist: a second one", "en", ("response",), None, None, "First reply.", True),
    ("I hear you.", "en", ("response",), None, None, "I hear you.", False),
    ("Reasoning: only the intent", "en", ("reasoning", "response"), None, "only the intent", "", False),
    ("Therapist:", "en", ("response",), None, None, "", False),
    (
        "观察：她很难过。\n推理：先共情。\n咨询师：听起来很难。",
        "cn",
        ("observation", "reasoning", "response"),
        "她很难过。",
        "先共情。",
        "听起来很难。",
        True,
    ),
    ("推理: 半角冒号。\n咨询师: 你好。", "cn", ("reasoning", "response"), None, "半角冒号。", "你好。", True),
    ("咨询师：你好。\n来访者：我不好。", "cn", ("response",), None, None, "你好。", True),
    ("你好，请坐。", "cn", ("response",), None, None, "你好，请坐。", False),
]


@pytest.mark.parametrize(("text", "lang", "expect", "obs", "reason", "response", "ok"), CASES)
def test_known_answers(text, lang, expect, obs, reason, response, ok):
    parsed = parse_output(text, lang, expect=expect)
    assert (parsed.observation, parsed.reasoning, parsed.response, parsed.ok) == (obs, reason, response, ok)
    assert bool(parsed.error) == (not ok)


def test_strategy_of_the_labels_task():
    parsed = parse_output("Strategy: Question, Reflection of Feelings\nTherapist: What happened?", "en", expect=expected_fields("labels"))
    assert parsed.ok and parsed.strategy == "Question, Reflection of Feelings" and parsed.response == "What happened?"


def test_a_failed_parse_is_kept_with_the_raw_text():
    pred = to_prediction("en-1/3", "just words", reference="ref", language="en", task="reasoning", meta={"task": "reasoning"})
    assert not pred.parse_ok and pred.text == "just words" and pred.response == "just words"
    assert pred.reference == "ref" and pred.meta["parse_error"].startswith("missing")


def test_task_targets_round_trip_through_the_parser():
    """What the task builders write is what the parser reads back (both languages)."""
    from psyinsight.data.sample import sample_sessions
    from psyinsight.tasks.examples import TaskConfig, build_examples

    for task in ("dialog", "reasoning", "observation_reasoning", "labels", "aux_reasoning", "aux_observation"):
        for ex in build_examples(sample_sessions(), TaskConfig(task=task)).examples:
            parsed = parse_output(ex.target, ex.meta["language"], expect=expected_fields(task))
            assert parsed.ok, (task, ex.target)
            if task in ("dialog", "reasoning", "observation_reasoning", "labels"):
                assert parsed.response == ex.reference


def test_prompt_files_use_the_parser_markers():
    from psyinsight.tasks.examples import load_prompts

    for lang in ("en", "cn"):
        assert load_prompts(lang).markers == MARKERS[lang]
