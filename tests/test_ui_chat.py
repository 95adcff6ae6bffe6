"""The chat page's rendering and notice, without a browser."""

from __future__ import annotations

from pathlib import Path

import pytest

from psyinsight.errors import PsyInsightError
from psyinsight.ui.chat_app import TEXT, ChatConfig, _reply_fields, build_chat_app, render, safety_notice

TURNS = [
    {"role": "user", "content": "I can't sleep before exams."},
    {
        "role": "assistant",
        "content": "What goes through your mind at night?",
        "observation": "Client reports insomnia.",
        "reasoning": "Explore the thoughts.",
        "flagged": False,
    },
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
    (plain,) = render([turn], False, "en")
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

    start = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi", "observation": None},
        {"role": "user", "content": "I feel low"},
    ]
    history, restored, error = take_turn(Broken(), start, "en")
    assert history == start[:2] and restored == "I feel low" and "/models/x: model folder is missing" in error
    echo = Echo()
    history, restored, error = take_turn(echo, start, "cn")
    assert restored is None and error is None and history[-1]["content"] == "Go on." and history[-1]["reasoning"] == "r"
    assert echo.seen == [([{"role": m["role"], "content": m["content"]} for m in start], "cn")], "only role and content go to the counselor"
    assert take_turn(echo, history, "en") == (history, None, None), "nothing to answer"


SCRIPT = (
    "Observation: The client is worried about exams and sleeps badly.\n"
    "Reasoning: Invite the client to name the worry before offering anything.\n"
    "Therapist: What worries you most when you lie awake?"
)


class ScriptedEngine:
    """The model step only, answering in the trained format a few characters at a time;
    the counselor, its safety guard and the output parser around it are the real ones."""

    def __init__(self, text: str = SCRIPT, fail_after: int | None = None) -> None:
        self.text, self.fail_after = text, fail_after
        self.prompts: list = []
        self.closed = 0

    def generate(self, prompts, params):
        from psyinsight.counsel.engine import Generation

        self.prompts.extend(prompts)
        return [Generation(self.text, 100, 30, "stop") for _ in prompts]

    def stream(self, prompt, params):
        self.prompts.append(prompt)
        try:
            for k in range(0, len(self.text), 16):
                if self.fail_after is not None and k >= self.fail_after:
                    raise RuntimeError("the model crashed")
                yield self.text[k : k + 16]
        finally:
            self.closed += 1

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_prompt_tokens(self, messages) -> int:
        return sum(len(m["content"].split()) for m in messages)


def scripted_counselor(engine: ScriptedEngine):
    from psyinsight.counsel.counselor import Counselor
    from psyinsight.counsel.safety import SafetyGuard

    return Counselor(engine=engine, guard=SafetyGuard(), language="en")


def test_a_local_counselor_streams_then_gives_the_parsed_reply() -> None:
    from psyinsight.ui.chat_app import stream_turn

    engine = ScriptedEngine()
    updates = list(stream_turn(scripted_counselor(engine), [{"role": "user", "content": "I lie awake before exams."}], "en"))
    partial = [u for u in updates if not u[3]]
    assert len(partial) == len(range(0, len(SCRIPT), 16)) and all(len(u[0]) == 2 for u in partial)
    assert partial[0][0][-1]["content"] == "…" and partial[0][0][-1]["streaming"]
    assert any(u[0][-1]["observation"] and not u[0][-1]["reasoning"] for u in partial), "the observation shows before the reasoning is written"
    history, restored, error, done = updates[-1]
    assert done and restored is None and error is None
    last = history[-1]
    assert last["content"] == "What worries you most when you lie awake?" and "streaming" not in last
    assert last["observation"].startswith("The client is worried") and last["reasoning"].startswith("Invite the client")
    assert engine.closed == 1 and "I lie awake before exams." in engine.prompts[0][-1]["content"]
    from psyinsight.ui.chat_app import _partial

    assert render([_partial("", None, None)], True, "en")[0]["content"] == "*…*", "no 'no reasoning' note while it may still come"


def test_a_crisis_never_reaches_the_model_when_streaming() -> None:
    from psyinsight.ui.chat_app import stream_turn

    engine = ScriptedEngine()
    updates = list(stream_turn(scripted_counselor(engine), [{"role": "user", "content": "I want to kill myself tonight."}], "en"))
    assert len(updates) == 1 and updates[0][3]
    turn = updates[0][0][-1]
    assert turn["flagged"] and turn["risk"]["category"] == "suicide" and "988" in turn["content"]
    assert engine.prompts == [], "the model never ran"


def test_a_stream_that_fails_or_is_abandoned_is_cleaned_up() -> None:
    from psyinsight.ui.chat_app import stream_turn

    engine = ScriptedEngine(fail_after=32)
    start = [{"role": "user", "content": "hello"}]
    updates = list(stream_turn(scripted_counselor(engine), start, "en"))
    assert [u[3] for u in updates] == [False, False, True]
    assert updates[-1][:3] == ([], "hello", "the model crashed") and engine.closed == 1
    engine = ScriptedEngine()
    gen = stream_turn(scripted_counselor(engine), start, "en")
    next(gen)
    gen.close()  # the page went away
    assert engine.closed == 1, "closing the turn stops the generation"


def test_a_remote_counselor_streams_through_on_delta() -> None:
    from psyinsight.ui.chat_app import stream_turn

    class Remote:
        def reply(self, history, language=None, *, region=None, on_delta=None):
            for kind, delta in (("reasoning", "Observation: tired. "), ("reasoning", "Reasoning: ask."), ("content", "How "), ("content", "long?")):
                on_delta(kind, delta)

            class R:
                response = "How long?"
                observation = "tired."
                reasoning = "ask."

            return R()

    updates = list(stream_turn(Remote(), [{"role": "user", "content": "so tired"}], "en"))
    assert [u[0][-1]["content"] for u in updates if not u[3]] == ["…", "…", "How", "How long?"]
    assert updates[1][0][-1]["reasoning"] == "Observation: tired. Reasoning: ask."
    assert updates[-1][0][-1] == {
        "role": "assistant",
        "content": "How long?",
        "observation": "tired.",
        "reasoning": "ask.",
        "flagged": False,
        "risk": None,
    }
