"""Instruction tasks: one ``Example`` per counselor turn, for each training task.

The tasks of the paper's ablation (spec.md section 3):

==========================  ==========================================================
``dialog``                  target ``Therapist: <response>``
``reasoning``               ``Reasoning: <turn reasoning>`` then the response
``observation_reasoning``   ``Observation: <last client turn's observation>``, reasoning,
                            response
``labels``                  ``Strategy: <strategy labels>`` then the response (the
                            "dialogue + labels" variant)
``aux_reasoning``           the reasoning of a given counselor turn (auxiliary)
``aux_observation``         the observation of a given client turn (auxiliary)
``mix``                     a schedule of the auxiliary tasks and ``dialog``
``rag``                     ``dialog`` with the k most similar training sessions
                            summarised in the prompt (task 4)
==========================  ==========================================================

Prompts are rendered by ``tasks.prompts.render_prompt``, the function every chat surface
calls too; their wording lives in ``prompts/<language>.yaml``. A history longer than the
token budget keeps the instruction and background and drops the oldest turns. A turn
whose annotation the task needs but lacks is skipped and counted, never invented.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from psyinsight.data.schema import Session, Turn
from psyinsight.data.taxonomy import UNKNOWN
from psyinsight.errors import PsyInsightError
from psyinsight.records import Example, Message, load_examples  # noqa: F401  (re-exported)
from psyinsight.tasks.prompts import (  # noqa: F401  (load_prompts, tokenizer_counter re-exported)
    TASKS,
    TokenCounter,
    heuristic_counter,
    line_of_turn,
    load_prompts,
    render_prompt,
    tokenizer_counter,
)

TASK_HELP: dict[str, str] = {
    "dialog": "the counselor's reply (task 1)",
    "reasoning": "Reasoning, then the reply (task 2)",
    "observation_reasoning": "Observation of the last client turn, Reasoning, then the reply (task 3)",
    "labels": "the strategy label(s), then the reply (dialogue + labels)",
    "aux_reasoning": "the reasoning of a given counselor turn (auxiliary)",
    "aux_observation": "the observation of a given client turn (auxiliary)",
    "mix": "a schedule of auxiliary tasks and dialog (see mix_tasks, mix_schedule)",
    "rag": "dialog with similar training sessions retrieved into the prompt (task 4)",
}
SCHEDULES = ("sequential", "interleaved")


@dataclass
class TaskConfig:
    """How to turn sessions into examples (the ``tasks`` section of a recipe)."""

    task: str = field(default="dialog", metadata={"help": f"One of: {', '.join(TASKS)}."})
    max_tokens: int | None = field(
        default=2048,
        metadata={"help": "Token budget of prompt + target; the oldest history turns are dropped to fit. None: no limit."},
    )
    mix_tasks: tuple[str, ...] = field(
        default=("aux_observation", "aux_reasoning", "dialog"),
        metadata={"help": "Tasks the mix task combines (the paper: auxiliary tasks, then dialog)."},
    )
    mix_schedule: str = field(
        default="sequential",
        metadata={"help": "sequential: each task's examples in turn, in mix_tasks order (a curriculum); interleaved: shuffled together."},
    )
    rag_k: int = field(default=2, metadata={"help": "Similar training sessions put in a rag prompt."})
    rag_method: str = field(default="bm25", metadata={"help": "Retrieval scorer: bm25 or tfidf."})
    rag_query_turns: int = field(default=6, metadata={"help": "The last N history turns form the retrieval query."})
    rag_summary_chars: int = field(default=300, metadata={"help": "Characters of each retrieved session's summary kept."})
    prompts_dir: str | None = field(default=None, metadata={"help": "Folder with en.yaml / cn.yaml to use instead of the packaged templates."})
    seed: int = field(default=13, metadata={"help": "Seed of the mix shuffle."})

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise PsyInsightError(f"unknown task {self.task!r}; choose from {', '.join(TASKS)}", where="task")
        bad = [t for t in self.mix_tasks if t not in TASKS or t in ("mix", "rag")]
        if bad:
            raise PsyInsightError(f"mix_tasks may not contain {bad}; use the single tasks {', '.join(TASKS[:6])}", where="mix_tasks")
        self.mix_tasks = tuple(self.mix_tasks)
        if self.mix_schedule not in SCHEDULES:
            raise PsyInsightError(f"unknown schedule {self.mix_schedule!r}; choose from {', '.join(SCHEDULES)}", where="mix_schedule")
        if self.max_tokens is not None and self.max_tokens < 16:
            raise PsyInsightError(f"{self.max_tokens} is too small a budget (at least 16)", where="max_tokens")
        if self.rag_k < 1:
            raise PsyInsightError("must be at least 1", where="rag_k")

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


@dataclass
class TaskBuild:
    """The examples of a build and what was skipped, by reason."""

    examples: list[Example]
    skipped: Counter[str] = field(default_factory=Counter)
    dropped_history_turns: int = 0

    def summary(self) -> dict[str, Any]:
        per_task = Counter(e.meta.get("task", "") for e in self.examples)
        return {
            "examples": len(self.examples),
            "per_task": dict(sorted(per_task.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "dropped_history_turns": self.dropped_history_turns,
        }


# ---------------------------------------------------------------- building


def _clean(text: str | None) -> str:
    return (text or "").strip()


def _real_labels(labels: Iterable[str] | None) -> list[str]:
    return [x for x in (labels or []) if x and x != UNKNOWN]


@dataclass
class _Context:
    config: TaskConfig
    count: dict[str, TokenCounter]
    retrievers: dict[str, Any]
    groups: dict[str, str]
    pool_groups: dict[str, str]
    split: str | None
    build: TaskBuild


def _render(
    ctx: _Context,
    session: Session,
    task: str,
    history: Sequence[Turn],
    target: str,
    retrieved: str = "",
) -> tuple[list[Message], int] | None:
    """Prompt messages within the budget (oldest turns dropped), or None when even no history fits."""
    tpl = load_prompts(session.language, ctx.config.prompts_dir)
    count = ctx.count[session.language]
    rendered = render_prompt(
        tpl,
        task,
        [line_of_turn(t.participant, t.is_client, t.content, tpl) for t in history],
        background=session.background or "",
        retrieved=retrieved,
        reserve=count(target) if ctx.config.max_tokens is not None else 0,
        budget=ctx.config.max_tokens,
        count=count,
    )
    if rendered is None:
        return None
    return [Message(**m) for m in rendered.messages], rendered.dropped


def _example(
    ctx: _Context,
    session: Session,
    index: int,
    task: str,
    history: Sequence[Turn],
    target: str,
    reference: str,
    *,
    id_suffix: str = "",
    retrieved: str = "",
    extra: dict[str, Any] | None = None,
) -> Example | None:
    rendered = _render(ctx, session, task, history, target, retrieved)
    if rendered is None:
        ctx.build.skipped[f"{task}:over_budget"] += 1
        return None
    messages, dropped = rendered
    ctx.build.dropped_history_turns += dropped
    turn = session.dialog[index]
    meta = {
        "task": task,
        "language": session.language,
        "session": session.uid,
        "turn": index,
        "turn_id": turn.id,
        "history_turns": len(history) - dropped,
        "dropped_turns": dropped,
        "psychotherapy": session.psychotherapy,
        "topic": session.topic,
        "strategies": list(turn.strategies or []),
        **(extra or {}),
    }
    if ctx.split:
        meta["split"] = ctx.split
    return Example(id=f"{session.uid}/{index}{id_suffix}", messages=messages, target=target, reference=reference, meta=meta)


def _last_client(history: Sequence[Turn]) -> Turn | None:
    for turn in reversed(history):
        if turn.is_client:
            return turn
    return None


def _retrieved_block(ctx: _Context, session: Session, history: Sequence[Turn]) -> tuple[str, list[str]]:
    """The prompt block of similar cases, and the uids it holds."""
    tpl = load_prompts(session.language, ctx.config.prompts_dir)
    retriever = ctx.retrievers.get(session.language)
    if retriever is None:
        return "", []
    recent = history[-ctx.config.rag_query_turns :] if history else []
    query = "\n".join(t.content for t in recent) or session.background
    own_group = ctx.groups.get(session.uid)
    exclude = {uid for uid, g in ctx.pool_groups.items() if uid == session.uid or (own_group is not None and g == own_group)}
    cases, uids = [], []
    for found in retriever.search(query, ctx.config.rag_k, exclude=exclude):
        summary = " ".join((_clean(found.summary) or _clean(found.background)).split())
        limit = ctx.config.rag_summary_chars
        if len(summary) > limit:
            summary = summary[:limit].rstrip() + "…"
        uids.append(found.uid)
        cases.append(tpl.retrieved_case.format(topic=found.topic or UNKNOWN, psychotherapy=found.psychotherapy or UNKNOWN, summary=summary))
    if not cases:
        return "", []
    return tpl.retrieved.format(cases="\n".join(cases)), uids


def _task_examples(ctx: _Context, session: Session, task: str, id_suffix: str = "") -> Iterable[Example]:
    tpl = load_prompts(session.language, ctx.config.prompts_dir)
    m = tpl.marker
    for index, turn in enumerate(session.dialog):
        history = session.dialog[:index]
        content = _clean(turn.content)
        if task == "aux_observation":
            if not turn.is_client:
                continue
            obs = _clean(turn.observation)
            if not obs or not content:
                ctx.build.skipped[f"{task}:no_observation"] += 1
                continue
            ex = _example(ctx, session, index, task, session.dialog[: index + 1], m("observation") + obs, obs, id_suffix=id_suffix)
            if ex is not None:
                yield ex
            continue
        if not turn.is_counselor:
            continue
        if not content:
            ctx.build.skipped[f"{task}:empty_turn"] += 1
            continue
        reply = m("response") + content
        reasoning = _clean(turn.reasoning)
        if task == "aux_reasoning":
            if not reasoning:
                ctx.build.skipped[f"{task}:no_reasoning"] += 1
                continue
            ex = _example(ctx, session, index, task, session.dialog[: index + 1], m("reasoning") + reasoning, reasoning, id_suffix=id_suffix)
        elif task == "dialog":
            ex = _example(ctx, session, index, task, history, reply, content, id_suffix=id_suffix)
        elif task == "reasoning":
            if not reasoning:
                ctx.build.skipped[f"{task}:no_reasoning"] += 1
                continue
            ex = _example(ctx, session, index, task, history, f"{m('reasoning')}{reasoning}\n{reply}", content, id_suffix=id_suffix)
        elif task == "observation_reasoning":
            client = _last_client(history)
            if client is None:
                ctx.build.skipped[f"{task}:no_client_turn"] += 1
                continue
            obs = _clean(client.observation)
            if not obs:
                ctx.build.skipped[f"{task}:no_observation"] += 1
                continue
            if not reasoning:
                ctx.build.skipped[f"{task}:no_reasoning"] += 1
                continue
            target = f"{m('observation')}{obs}\n{m('reasoning')}{reasoning}\n{reply}"
            ex = _example(ctx, session, index, task, history, target, content, id_suffix=id_suffix)
        elif task == "labels":
            labels = _real_labels(turn.strategies)
            if not labels:
                ctx.build.skipped[f"{task}:no_strategy"] += 1
                continue
            joiner = "、" if session.language == "cn" else ", "
            ex = _example(ctx, session, index, task, history, f"{m('strategy')}{joiner.join(labels)}\n{reply}", content, id_suffix=id_suffix)
        elif task == "rag":
            block, uids = _retrieved_block(ctx, session, history)
            ex = _example(ctx, session, index, task, history, reply, content, id_suffix=id_suffix, retrieved=block, extra={"retrieved": uids})
        else:  # pragma: no cover - TaskConfig validates the name
            raise PsyInsightError(f"unknown task {task!r}", where="task")
        if ex is not None:
            yield ex


def build_examples(
    sessions: Sequence[Session],
    config: TaskConfig | None = None,
    *,
    split: str | None = None,
    retrieval_pool: Sequence[Session] | None = None,
    groups: dict[str, str] | None = None,
    count_tokens: TokenCounter | dict[str, TokenCounter] | None = None,
) -> TaskBuild:
    """Examples of ``config.task`` for every counselor turn of ``sessions``.

    ``retrieval_pool`` (the training split) is what the rag task retrieves from; the
    session itself and its case group (``groups``, from ``splits.case_groups``) are never
    retrieved. ``count_tokens`` measures the budget (default: a tokenizer-free estimate).
    Raises ``PsyInsightError`` when no example can be built (e.g. no counselor turn).
    """
    config = config or TaskConfig()
    if isinstance(count_tokens, dict):
        counters = count_tokens
    elif count_tokens is not None:
        counters = {"en": count_tokens, "cn": count_tokens}
    else:
        counters = {"en": heuristic_counter("en"), "cn": heuristic_counter("cn")}
    build = TaskBuild(examples=[])
    retrievers: dict[str, Any] = {}
    pool_groups: dict[str, str] = {}
    if config.task == "rag":
        from psyinsight.tasks.retrieval import build_retrievers

        pool = list(retrieval_pool) if retrieval_pool is not None else list(sessions)
        retrievers = build_retrievers(pool, config.rag_method)  # type: ignore[arg-type]
        if groups is None:
            from psyinsight.data.splits import case_groups

            groups = case_groups([*pool, *[s for s in sessions if s.uid not in {p.uid for p in pool}]])
        pool_groups = {s.uid: groups.get(s.uid, s.uid) for s in pool}
    ctx = _Context(config, counters, retrievers, groups or {}, pool_groups, split, build)
    if config.task == "mix":
        rng = random.Random(config.seed)
        phases = []
        for task in config.mix_tasks:
            phase = [ex for s in sessions for ex in _task_examples(ctx, s, task, id_suffix=f"/{task}")]
            rng.shuffle(phase)
            phases.append(phase)
        examples = [ex for phase in phases for ex in phase]
        if config.mix_schedule == "interleaved":
            rng.shuffle(examples)
        for position, ex in enumerate(examples):
            ex.meta["mix"] = {"schedule": config.mix_schedule, "position": position}
        build.examples = examples
    else:
        build.examples = [ex for s in sessions for ex in _task_examples(ctx, s, config.task)]
    if not build.examples:
        n_counselor = sum(t.is_counselor for s in sessions for t in s.dialog)
        why = (
            "no counselor turn" if n_counselor == 0 else "every turn was skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(build.skipped.items()))
        )
        raise PsyInsightError(f"no {config.task} example could be built from {len(sessions)} session(s): {why}", where=f"task {config.task}")
    return build


def select_split(
    sessions: Sequence[Session], split: str | None, *, split_file: str | Path | None = None, seed: int = 13
) -> tuple[list[Session], list[Session], Any]:
    """(sessions of ``split``, the train split for retrieval, the assignment).

    The assignment comes from ``split_file`` (``psyinsight data split``) or is computed
    with ``splits.assign_splits`` over all given sessions (grouped by case: leak-free).
    ``split=None`` or "all" keeps every session.
    """
    from psyinsight.data.splits import SplitAssignment, assign_splits

    assignment = SplitAssignment.load(split_file) if split_file else assign_splits(sessions, seed=seed)
    if split_file:
        unknown = [s.uid for s in sessions if s.uid not in assignment.split_of]
        if len(unknown) == len(sessions):
            raise PsyInsightError(
                f"none of the {len(sessions)} sessions is in this split file (e.g. {unknown[0]}); was it made for other data?",
                path=split_file,
            )
    train = assignment.select(sessions, "train")
    if split in (None, "all"):
        return list(sessions), train, assignment
    return assignment.select(sessions, split), train, assignment  # type: ignore[arg-type]
