"""The counselor core: safety before the model, the crisis reply, prompts and parsing."""

from __future__ import annotations

import pytest

from psyinsight.counsel.counselor import (
    CRISIS_PLACEHOLDER,
    Counselor,
    PromptSettings,
    build_counselor_prompt,
    prompt_settings,
    validate_history,
)
from psyinsight.counsel.engine import Generation, GenParams, LocalEngine, cut_at_stop
from psyinsight.counsel.safety import SafetyGuard
from psyinsight.errors import PsyInsightError


class CountingEngine(LocalEngine):
    """The real engine, counting how often the model runs."""

    calls = 0

    def generate(self, prompts, params):
        type(self).calls += 1
        return super().generate(prompts, params)


@pytest.fixture(scope="module")
def counselor(tiny_chat_model_dir) -> Counselor:
    engine = CountingEngine(str(tiny_chat_model_dir))
    engine.load()
    guard = SafetyGuard()
    guard.warm_up()
    return Counselor(engine=engine, guard=guard, params=GenParams(max_new_tokens=6))


def test_a_normal_message_goes_to_the_model(counselor):
    before = CountingEngine.calls
    reply = counselor.reply([{"role": "user", "content": "I have been feeling tense before exams."}])
    assert CountingEngine.calls == before + 1
    assert not reply.flagged and reply.risk is not None and not reply.risk.risk
    assert reply.raw  # the model's own text, kept whole
    assert reply.usage["prompt_tokens"] > 50 and 0 < reply.usage["completion_tokens"] <= 6
    assert reply.finish_reason in ("stop", "length") and reply.language == "en"


@pytest.mark.parametrize(
    "text, language, expected",
    [
        ("I'm going to end my life tonight", None, "988"),
        ("我想结束自己的生命", None, "12356"),
        ("I want to hurt my brother badly, I have a knife", "cn", "12356"),
    ],
)
def test_risk_gets_the_fixed_crisis_message_and_never_the_model(counselor, text, language, expected):
    before = CountingEngine.calls
    reply = counselor.reply([{"role": "user", "content": text}], language=language)
    assert CountingEngine.calls == before  # the model never ran
    assert reply.flagged and reply.risk is not None and reply.risk.risk
    assert reply.response == counselor.guard.crisis_message(reply.language, category=reply.risk.category)
    assert expected in reply.response
    assert reply.raw == "" and reply.observation is None and reply.reasoning is None


def test_an_unknown_region_still_gets_a_crisis_message(counselor):
    reply = counselor.reply([{"role": "user", "content": "I want to kill myself"}], region="Atlantis")
    assert reply.flagged and reply.response == counselor.guard.crisis_message("en")


def test_recent_turns_count(counselor):
    before = CountingEngine.calls
    history = [
        {"role": "user", "content": "I don't want to be alive anymore"},
        {"role": "assistant", "content": counselor.guard.crisis_message("en")},
        {"role": "user", "content": "yeah"},
    ]
    reply = counselor.reply(history)
    assert reply.flagged and reply.risk.source == "context" and CountingEngine.calls == before


def test_an_earlier_crisis_message_is_never_model_input(counselor):
    crisis = counselor.guard.crisis_message("en", "UK")
    history = [
        {"role": "user", "content": "I want to die"},
        {"role": "assistant", "content": crisis},
        {"role": "user", "content": "Thanks. I called them and feel calmer. Can we talk about my sleep routine?"},
    ]
    prompt = counselor.prompt(history, "en")
    text = "\n".join(m["content"] for m in prompt)
    assert "116 123" not in text and CRISIS_PLACEHOLDER["en"] in text
    reply = counselor.reply(history)
    assert not reply.flagged


def test_the_prompt_follows_the_training_templates():
    history = [{"role": "assistant", "content": "Hello, what brings you here?"}, {"role": "user", "content": "My  boss\nyells at me."}]
    prompt = build_counselor_prompt(history, "en", background="A 30-year-old engineer.", settings=PromptSettings("observation_reasoning"))
    assert [m["role"] for m in prompt] == ["system", "user"]
    user = prompt[1]["content"]
    assert "A 30-year-old engineer." in user
    assert "Therapist: Hello, what brings you here?\nClient: My boss yells at me." in user
    assert '"Observation:"' in user and '"Therapist:"' in user
    cn = build_counselor_prompt([{"role": "user", "content": "我睡不好"}], "cn", settings=PromptSettings("dialog"))
    assert "我睡不好" in cn[1]["content"]
    with pytest.raises(PsyInsightError, match="does not write counselor turns"):
        prompt_settings(None, "nope")


def _as_chat(turns) -> list[dict[str, str]]:
    """Release turns as a chat surface receives them: roles, texts and the speakers' names."""
    return [{"role": "user" if t.is_client else "assistant", "content": t.content, "name": t.participant} for t in turns]


@pytest.mark.parametrize("task", ["dialog", "reasoning", "observation_reasoning", "labels"])
@pytest.mark.parametrize("budget", [None, 300])
def test_the_counselor_prompt_is_the_training_prompt(task, budget):
    """For every counselor turn of the sample sessions, the prompt a chat surface builds from
    the dialogue so far equals the training example's: template, budget, names, whitespace."""
    from psyinsight.data.sample import sample_sessions
    from psyinsight.tasks.examples import TaskConfig, build_examples
    from psyinsight.tasks.prompts import heuristic_counter

    sessions = {s.uid: s for s in sample_sessions()}
    examples = build_examples(list(sessions.values()), TaskConfig(task=task, max_tokens=budget)).examples
    dropped = 0
    for ex in examples:
        session = sessions[ex.meta["session"]]
        count = heuristic_counter(session.language)
        reserve = count(ex.target) if budget is not None else 0
        prompt = build_counselor_prompt(
            _as_chat(session.dialog[: ex.meta["turn"]]),
            session.language,
            background=session.background or "",
            settings=PromptSettings(task, budget),
            reserve=reserve,
            count=count,
        )
        assert prompt == [m.model_dump() for m in ex.messages], ex.id
        dropped += ex.meta["dropped_turns"]
    assert len(examples) > 10 and (budget is None or dropped > 0)  # the tight budget really drops turns


def test_the_counselor_prompts_as_its_adapter_was_trained(tmp_path, counselor):
    """chat, serve and ui chat build a Counselor from --adapter: the task, budget and
    templates come from the adapter's psyinsight_adapter.json."""
    from psyinsight.fileio import write_json
    from psyinsight.models import ADAPTER_META

    write_json(tmp_path / ADAPTER_META, {"task": "dialog", "base_model": "default", "recipe": {"tasks": {"task": "dialog", "max_tokens": 512}}})
    assert prompt_settings(str(tmp_path)) == PromptSettings("dialog", 512, None)
    served = Counselor(adapter=str(tmp_path), engine=counselor.engine, guard=counselor.guard)
    user = served.prompt([{"role": "user", "content": "I can't sleep."}], "en")[1]["content"]
    assert "Write the therapist's next turn" in user and "Observation" not in user
    write_json(tmp_path / ADAPTER_META, {"task": "mix"})
    assert prompt_settings(str(tmp_path)).task == "dialog"  # a mix schedule ends in dialog
    write_json(tmp_path / ADAPTER_META, {"task": "aux_observation"})
    with pytest.raises(PsyInsightError, match="does not write counselor turns"):
        prompt_settings(str(tmp_path))
    assert prompt_settings(None).task == "observation_reasoning"


def test_the_output_is_split_into_observation_reasoning_and_reply(counselor):
    raw = "Observation: The client feels judged.\nReasoning: Reflect the feeling.\nTherapist: It sounds like that hurt.\nClient: yes"
    reply = counselor.finish(Generation(raw, 100, 20, "stop"), "en", None)
    assert reply.observation == "The client feels judged."
    assert reply.reasoning == "Reflect the feeling."
    assert reply.response == "It sounds like that hurt."
    assert reply.parse_ok and reply.raw == raw and reply.usage["total_tokens"] == 120
    loose = counselor.finish(Generation("Just a reply without markers.", 1, 1, "stop"), "en", None)
    assert loose.response == "Just a reply without markers." and not loose.parse_ok


@pytest.mark.parametrize(
    "history, match",
    [
        ([], "at least one message"),
        ([{"role": "user", "content": "   "}], "empty message"),
        ([{"role": "robot", "content": "hi"}], "unknown role"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "last message must be the user's"),
        (
            [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "assistant", "content": "c"},
                {"role": "user", "content": "d"},
            ],
            "two assistant messages in a row",
        ),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "user", "content": "c"}], "system message must come before"),
    ],
)
def test_bad_histories_are_refused(history, match):
    with pytest.raises(PsyInsightError, match=match):
        validate_history(history)


def test_a_turn_the_model_failed_to_answer_is_kept_for_the_next_one():
    history = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    assert validate_history(history) == history


def test_stop_strings():
    assert cut_at_stop("Hello\nClient: hi", ["\nClient:"]) == ("Hello", True)
    assert cut_at_stop("Hello", ["###"]) == ("Hello", False)


def test_streaming_from_the_engine_matches_its_stop_strings(counselor):
    engine = counselor.engine
    prompt = [{"role": "user", "content": "hello"}]
    pieces = list(engine.stream(prompt, GenParams(max_new_tokens=6)))
    assert pieces and "".join(pieces).strip()
    full = "".join(pieces)
    stop = full.strip()[1:3]
    stopped = "".join(engine.stream(prompt, GenParams(max_new_tokens=6, stop=(stop,))))
    assert stop not in stopped and full.startswith(stopped)
    assert not engine.lock.locked() or engine.lock.acquire(timeout=10)  # the generation thread lets go


def test_the_prompt_leaves_room_for_the_request_s_own_reply_length(counselor):
    """The budget keeps the reply's tokens free: a request asking for more new tokens gets fewer old turns."""
    served = Counselor(engine=counselor.engine, guard=counselor.guard)
    served.prompt_settings = PromptSettings("dialog", 4000)
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}: I keep thinking about work at night."} for i in range(201)]
    short = served.prompt(history, "en", params=GenParams(max_new_tokens=8))[1]["content"]
    long = served.prompt(history, "en", params=GenParams(max_new_tokens=1500))[1]["content"]
    assert "…" in long and len(long) < len(short)
