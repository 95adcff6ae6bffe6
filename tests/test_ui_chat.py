"""The chat page's rendering and notice, without a browser."""

from __future__ import annotations

from pathlib import Path

import pytest

from psyinsight.errors import PsyInsightError
from psyinsight.ui.chat_app import TEXT, ChatConfig, _reply_fields, build_chat_app, render, safety_notice

TURNS = [
    {"role": "user", "content": "I can't sleep before exams."},
    {"role": "assistant", "content": "What goes through your mind at night?", "observation": "Client reports insomnia.", "reasoning": "Explore the thoughts.", "flagged": False},
    {"role": "user", "content": "Nothing much."},
    {"role": "assistant", "content": "I see.", "observation": None, "reasoning": None, "flagged": False},
]


def test_reasoning_is_a_separate_thought_shown_only_when_asked() -> None:
    hidden = render(TURNS, False, "en")
    assert [m["role"] for m in hidden] == ["user", "assistant", "user", "assistant"]
    assert all("metadata" not in m for m in hidden)
    shown = render(TURNS, True, "en")
    assert [m["content"] for m in shown if "metadata" not in m] == [m["content"] for m in hidden], "the replies never change"
    thoughts = [m for m in shown if "metadata" in m]
    assert len(thoughts) == 2 and all(m["metadata"]["title"] == TEXT["en"]["thought"] for m in thoughts)
    assert "**Observation:** Client reports insomnia." in thoughts[0]["content"] and "**Reasoning:** Explore the thoughts." in thoughts[0]["content"]
    assert TEXT["en"]["no_reasoning"] in thoughts[1]["content"]
    assert "**推理:**" in render(TURNS, True, "cn")[1]["content"]


def test_crisis_replies_are_marked_and_explained() -> None:
    class Reply:
        response = "Please call 988 now."
        observation = None
        reasoning = None
        flagged = True

        class risk:  # noqa: N801 - stands in for a SafetyResult
            @staticmethod
            def to_dict() -> dict:
                return {"risk": True, "category": "suicide", "source": "pattern"}

    turn = {"role": "assistant", **_reply_fields(Reply())}
    assert turn["risk"]["category"] == "suicide"
    plain, = render([turn], False, "en")
    assert plain["content"].startswith("🚨 **Crisis support**") and plain["content"].endswith("Please call 988 now.")
    thought, _ = render([turn], True, "en")
    assert "(suicide, pattern)" in thought["content"] and "not model text" in thought["content"]


def test_notice_lists_the_regions_crisis_lines() -> None:
    assert "988" in safety_notice("en", region="US") and "911" in safety_notice("en", region="US")
    cn = safety_notice("cn")
    assert "安全提示" in cn and "12356" in cn
    with pytest.raises(PsyInsightError, match="unknown crisis region 'Atlantis'"):
        safety_notice("en", region="Atlantis")


def test_bad_settings_fail_when_the_app_is_built(tmp_path: Path) -> None:
    class Silent:
        def reply(self, history, language="en"):
            raise AssertionError("not called")

    with pytest.raises(PsyInsightError, match="language: unknown language 'fr'"):
        build_chat_app(Silent(), ChatConfig(language="fr"))
    bad = tmp_path / "crisis.yaml"
    bad.write_text("messages: [unclosed\n", encoding="utf-8")
    with pytest.raises(PsyInsightError, match=r"crisis\.yaml"):
        build_chat_app(Silent(), ChatConfig(crisis_resources=str(bad)))


def test_a_reply_without_text_never_leaves_an_empty_turn() -> None:
    class Unparsed:
        response = ""
        raw = "Observation: half a thought"

    class Empty:
        response = "  "
        raw = ""

    assert _reply_fields(Unparsed())["content"] == "Observation: half a thought"
    assert _reply_fields(Empty(), "cn")["content"] == TEXT["cn"]["empty_reply"]
    assert _reply_fields(Empty())["flagged"] is False and _reply_fields(Empty())["risk"] is None


def test_a_failed_reply_gives_the_message_back() -> None:
    from psyinsight.ui.chat_app import take_turn

    class Broken:
        def reply(self, history, language="en"):
            raise PsyInsightError("model folder is missing", path="/models/x")

    class Echo:
        def __init__(self) -> None:
            self.seen: list = []

        def reply(self, history, language="en"):
            self.seen.append((history, language))

            class R:
                response = "Go on."
                observation = "o"
                reasoning = "r"

            return R()

    start = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi", "observation": None}, {"role": "user", "content": "I feel low"}]
    history, restored, error = take_turn(Broken(), start, "en")
    assert history == start[:2] and restored == "I feel low" and "/models/x: model folder is missing" in error
    echo = Echo()
    history, restored, error = take_turn(echo, start, "cn")
    assert restored is None and error is None and history[-1]["content"] == "Go on." and history[-1]["reasoning"] == "r"
    assert echo.seen == [([{"role": m["role"], "content": m["content"]} for m in start], "cn")], "only role and content go to the counselor"
    assert take_turn(echo, history, "en") == (history, None, None), "nothing to answer"
