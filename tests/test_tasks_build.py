"""Task builders: one example per counselor turn, budgets, skips, retrieval, CLI."""

from __future__ import annotations

import pytest

from psyinsight.data.sample import sample_sessions
from psyinsight.data.schema import Session, Turn
from psyinsight.errors import PsyInsightError
from psyinsight.tasks.examples import TASKS, TaskConfig, build_examples, load_prompts


@pytest.fixture(scope="module")
def sessions():
    return sample_sessions()


def n_counselor(sessions):
    return sum(t.is_counselor for s in sessions for t in s.dialog)


def test_dialog_has_one_example_per_counselor_turn(sessions):
    build = build_examples(sessions, TaskConfig(task="dialog"))
    assert len(build.examples) == n_counselor(sessions)
    ex = build.examples[1]
    session = next(s for s in sessions if s.uid == ex.meta["session"])
    turn = session.dialog[ex.meta["turn"]]
    assert ex.reference == turn.content and ex.target == ("Therapist: " if session.language == "en" else "咨询师：") + turn.content
    assert ex.id == f"{session.uid}/{ex.meta['turn']}"
    # The history holds exactly the earlier turns as "Participant: text" lines.
    user = ex.messages[1].content
    for earlier in session.dialog[: ex.meta["turn"]]:
        assert f"{earlier.participant}: {earlier.content}" in user or f"{earlier.participant}：{earlier.content}" in user
    assert turn.content not in user


@pytest.mark.parametrize("task", [t for t in TASKS if t != "mix"])
def test_every_task_builds_in_both_languages(sessions, task):
    build = build_examples(sessions, TaskConfig(task=task))
    assert {e.meta["language"] for e in build.examples} == {"en", "cn"}
    assert all(e.meta["task"] == task for e in build.examples)
    assert len({e.id for e in build.examples}) == len(build.examples)
    cn = next(e for e in build.examples if e.meta["language"] == "cn")
    assert cn.messages[1].content.startswith("来访者背景：")


def test_observation_reasoning_target_uses_the_last_client_turn(sessions):
    ex = build_examples(sessions, TaskConfig(task="observation_reasoning")).examples[0]
    session = next(s for s in sessions if s.uid == ex.meta["session"])
    last_client = [t for t in session.dialog[: ex.meta["turn"]] if t.is_client][-1]
    counselor = session.dialog[ex.meta["turn"]]
    assert ex.target == f"Observation: {last_client.observation}\nReasoning: {counselor.reasoning}\nTherapist: {counselor.content}"


def test_turns_missing_the_needed_annotation_are_skipped_and_counted():
    s = Session(
        dialog_id="1",
        language="en",
        background="b",
        dialog=[
            Turn(speaker="Supporter", participant="Therapist", content="Hello.", reasoning="open"),
            Turn(speaker="Seeker", participant="Ann", content="Hi.", observation=None),
            Turn(speaker="Supporter", participant="Therapist", content="How are you?", reasoning=None, strategy=["Unknown"]),
        ],
    )
    build = build_examples([s], TaskConfig(task="reasoning"))
    assert len(build.examples) == 1 and build.skipped == {"reasoning:no_reasoning": 1}
    with pytest.raises(PsyInsightError, match="no observation_reasoning example.*no_client_turn 1.*no_observation 1"):
        build_examples([s], TaskConfig(task="observation_reasoning"))
    with pytest.raises(PsyInsightError, match="no_strategy 2"):
        build_examples([s], TaskConfig(task="labels"))


def test_a_split_without_counselor_turns_is_a_clear_error():
    s = Session(dialog_id="2", language="en", dialog=[Turn(speaker="Seeker", content="Hi.")])
    with pytest.raises(PsyInsightError, match="no counselor turn"):
        build_examples([s], TaskConfig(task="dialog"))


def test_unknown_task_and_bad_mix_are_refused():
    with pytest.raises(PsyInsightError, match="unknown task 'chat'"):
        TaskConfig(task="chat")
    with pytest.raises(PsyInsightError, match="mix_tasks"):
        TaskConfig(task="mix", mix_tasks=("rag",))


def _history(user: str) -> list[str]:
    header = "Dialogue so far:" if "Dialogue so far:" in user else "已有对话："
    block = user.split(header, 1)[1].strip().split("\n\n")[0]
    return block.split("\n")


def test_budget_drops_the_oldest_turns_and_keeps_instruction_and_background(sessions):
    full = build_examples(sessions, TaskConfig(task="dialog", max_tokens=None)).examples
    tight_build = build_examples(sessions, TaskConfig(task="dialog", max_tokens=260))
    by_id = {e.id: e for e in full}
    cut = [e for e in tight_build.examples if e.meta["dropped_turns"] > 0]
    assert cut, "the budget should have cut some histories"
    assert tight_build.dropped_history_turns == sum(e.meta["dropped_turns"] for e in tight_build.examples)
    for ex in cut:
        whole = by_id[ex.id]
        assert ex.messages[0].content == whole.messages[0].content  # instruction kept
        kept, everything = _history(ex.messages[1].content), _history(whole.messages[1].content)
        assert kept[0] == "…"
        # The most recent turns are kept, the oldest dropped.
        assert kept[1:] == everything[len(everything) - len(kept) + 1 :]
        assert len(everything) - (len(kept) - 1) == ex.meta["dropped_turns"]
        tpl = load_prompts(ex.meta["language"])
        background = next(s for s in sessions if s.uid == ex.meta["session"]).background
        assert background in ex.messages[1].content and tpl.instructions["dialog"] in ex.messages[1].content


def test_mix_is_a_sequential_schedule_of_auxiliary_tasks_then_dialog(sessions):
    build = build_examples(sessions, TaskConfig(task="mix"))
    order = [e.meta["task"] for e in build.examples]
    first_dialog = order.index("dialog")
    assert set(order[:first_dialog]) == {"aux_observation", "aux_reasoning"} and set(order[first_dialog:]) == {"dialog"}
    assert all(e.id.endswith("/" + e.meta["task"]) for e in build.examples)
    mixed = [e.meta["task"] for e in build_examples(sessions, TaskConfig(task="mix", mix_schedule="interleaved")).examples]
    assert sorted(mixed) == sorted(order) and mixed != order


@pytest.mark.parametrize("method", ["bm25", "tfidf"])
def test_rag_retrieves_only_other_training_sessions(sessions, method):
    from psyinsight.tasks.examples import select_split

    test, train, assignment = select_split(sessions, "test", seed=13)
    build = build_examples(test, TaskConfig(task="rag", rag_method=method, rag_k=2), retrieval_pool=train, groups=assignment.groups)
    train_uids = {s.uid for s in train}
    for ex in build.examples:
        assert ex.meta["retrieved"], ex.id
        assert set(ex.meta["retrieved"]) <= train_uids
        assert ex.meta["session"] not in ex.meta["retrieved"]
        assert all(uid.split("-")[0] == ex.meta["language"] for uid in ex.meta["retrieved"])
    # Training examples never retrieve their own session.
    for ex in build_examples(train, TaskConfig(task="rag", rag_method=method), retrieval_pool=train).examples:
        assert ex.meta["session"] not in ex.meta["retrieved"]


def test_retrieval_ranks_the_obvious_match_first():
    from psyinsight.tasks.retrieval import Retriever

    docs = [
        Session(dialog_id=str(i), language="en", summary=text, dialog=[Turn(speaker="Seeker", content=text)])
        for i, text in enumerate(["I cannot sleep at night, insomnia again", "my exam is tomorrow", "my partner left me"])
    ]
    for method in ("bm25", "tfidf"):
        assert Retriever(docs, "en", method).search("insomnia, I cannot sleep", 1)[0].dialog_id == "0"


def test_tasks_build_cli_writes_examples_and_manifest(tmp_path):
    from psyinsight.cli import main
    from psyinsight.fileio import read_json
    from psyinsight.tasks.examples import load_examples

    out = tmp_path / "t.jsonl"
    with pytest.raises(SystemExit) as info:
        main(["tasks", "build", "--sample", "--task", "labels", "--split", "all", "-o", str(out)])
    assert info.value.code == 0
    rows = load_examples(out)
    manifest = read_json(tmp_path / "t.manifest.json")
    assert manifest["written"] == len(rows) > 0 and manifest["config"]["task"] == "labels"
    assert len(manifest["split_checksum"]) == 64


def test_tasks_build_cli_rejects_an_unknown_task(tmp_path, capsys):
    from psyinsight.cli import main

    with pytest.raises(SystemExit) as info:
        main(["tasks", "build", "--sample", "--task", "nope", "-o", str(tmp_path / "x.jsonl")])
    assert info.value.code == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
