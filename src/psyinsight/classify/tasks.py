"""The four label-recognition tasks and how examples are drawn from sessions.

Client emotion and counselor strategy are turn-level lists; psychotherapy and topic are
session-level strings. ``extract_examples`` turns repaired sessions into ``LabelledText``
rows, applying the benchmark protocol (first label, drop Unknown/Others, drop lists longer
than three labels, drop empty labels) so that every model is scored on the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from psyinsight.data.schema import SEEKER, SUPPORTER, Role, Session, Turn
from psyinsight.data.taxonomy import OTHERS, UNKNOWN, LabelKind
from psyinsight.errors import PsyInsightError

TaskName = Literal["emotion", "strategy", "psychotherapy", "topic"]
LabelMode = Literal["first", "multi"]
LABEL_MODES: tuple[LabelMode, ...] = ("first", "multi")

ECHOED_RULE = "echoed_label_list"
"""The dataset layer's repair rule for label lists where the annotator echoed the label set."""


@dataclass(frozen=True)
class TaskSpec:
    """What one task predicts and where its labels live."""

    name: TaskName
    kind: LabelKind
    level: Literal["turn", "session"]
    speaker: Role | None
    """Whose turns carry the label (turn-level tasks only)."""
    help: str


TASKS: dict[str, TaskSpec] = {
    "emotion": TaskSpec("emotion", "emotion", "turn", SEEKER, "client emotion of each Seeker turn (multi-label list)"),
    "strategy": TaskSpec("strategy", "strategy", "turn", SUPPORTER, "counselor strategy of each Supporter turn (multi-label list)"),
    "psychotherapy": TaskSpec("psychotherapy", "psychotherapy", "session", None, "the session's psychotherapy"),
    "topic": TaskSpec("topic", "topic", "session", None, "the session's topic"),
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def get_task(name: str) -> TaskSpec:
    """The task called ``name``, or a ``PsyInsightError`` listing the valid names."""
    key = name.strip().lower()
    if key not in TASKS:
        raise PsyInsightError(f"unknown task {name!r}; choose one of: {', '.join(TASK_NAMES)}", where="--task")
    return TASKS[key]


@dataclass(frozen=True)
class ExtractConfig:
    """How examples are drawn. The defaults are the benchmark protocol."""

    label_mode: LabelMode = "first"
    """first: the target is the first label of the list (the protocol); multi: the whole list."""
    drop_labels: tuple[str, ...] = (UNKNOWN, OTHERS)
    """Labels that are not a class: a first label in this set drops the row; in multi mode they are removed."""
    max_labels: int = 3
    """Rows whose (original) label list is longer than this are dropped: annotator noise."""
    context_turns: int = 2
    """How many preceding turns are kept as context for turn-level tasks (0: none)."""
    next_turns: int = 0
    """How many following turns are added to the context (after a ``[NEXT]`` line). Offline
    labelling sees the whole dialogue, as the release's annotating model did (a window of 5
    turns); a live labeller must keep 0."""
    turn_fields: tuple[str, ...] = ("content",)
    """Turn fields forming the input text of turn-level tasks: ``content`` (the utterance) and
    ``annotation`` (the turn's observation for Seeker turns, reasoning for Supporter turns:
    written by the construction LLM before labelling, so a labeller may use them)."""
    session_fields: tuple[str, ...] = ("background", "dialog")
    """Session fields concatenated as the input text of session-level tasks. ``theme`` is
    left out on purpose: in the English file it often names the psychotherapy itself."""
    max_session_chars: int = 20000
    """Session texts are cut to this many characters (keeps TF-IDF and encoders bounded)."""
    mask_label_names: bool = True
    """Session tasks: replace every name, alias and abbreviation of the task's labels (English
    and Chinese) in the inputs by ``[LABEL]`` (``classify.leakage``), so no field gives the label away."""


NEXT_MARKER = "[NEXT]"
"""The context line separating preceding turns from following turns."""

SESSION_FIELDS: tuple[str, ...] = ("theme", "background", "reasoning", "summary", "guide", "dialog")
TURN_FIELDS: tuple[str, ...] = ("content", "annotation")


@dataclass
class LabelledText:
    """One row to classify: the text, its preceding context, and its labels."""

    id: str
    """``<session uid>/<turn index>`` for turns, the session uid for sessions."""
    text: str
    context: str
    labels: list[str]
    """In ``first`` mode one label; in ``multi`` mode one or more."""
    session_uid: str
    language: str
    group: str = ""
    """Case group for grouped splits (sessions of one case share a group)."""
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.labels[0]


def format_turns(session: Session, start: int, stop: int) -> str:
    """Turns ``start:stop`` as ``Speaker: text`` lines (the speaker role, not the name)."""
    return "\n".join(f"{t.speaker}: {t.content.strip()}" for t in session.dialog[max(0, start) : stop])


def turn_context(session: Session, index: int, cfg: ExtractConfig) -> str:
    """Preceding turns, then (when ``cfg.next_turns``) a ``[NEXT]`` line and the following turns."""
    before = format_turns(session, index - cfg.context_turns, index) if cfg.context_turns > 0 else ""
    if cfg.next_turns <= 0:
        return before
    after = format_turns(session, index + 1, index + 1 + cfg.next_turns)
    return f"{before}\n{NEXT_MARKER}\n{after}" if before else f"{NEXT_MARKER}\n{after}"


def session_text(session: Session, fields: Sequence[str], max_chars: int) -> str:
    """The input text of a session-level task: the chosen fields, one block each."""
    parts = []
    for name in fields:
        if name not in SESSION_FIELDS:
            raise PsyInsightError(f"unknown session field {name!r}; choose from {', '.join(SESSION_FIELDS)}", where="session_fields")
        if name == "dialog":
            parts.append(format_turns(session, 0, len(session.dialog)))
        else:
            value = getattr(session, name, "") or ""
            if value.strip():
                parts.append(value.strip())
    return "\n".join(parts)[:max_chars]


def _session_input(session: Session, task: str, cfg: ExtractConfig) -> str:
    text = session_text(session, cfg.session_fields, cfg.max_session_chars)
    if cfg.mask_label_names:
        from psyinsight.classify.leakage import mask_label_names

        text = mask_label_names(text, task)
    return text


_RELEASE_KEY = {"emotion": "emotional label", "strategy": "strategy"}


def turn_text(turn: Turn, fields: Sequence[str]) -> str:
    """The input text of a turn-level task: the chosen turn fields, one line each."""
    parts = []
    for name in fields:
        if name not in TURN_FIELDS:
            raise PsyInsightError(f"unknown turn field {name!r}; choose from {', '.join(TURN_FIELDS)}", where="turn_fields")
        value = turn.content if name == "content" else (turn.observation if turn.is_client else turn.reasoning)
        if value and value.strip():
            parts.append(value.strip())
    return "\n".join(parts)


def _original_length(session: Session, task: str, turn_id: str, current: list[str]) -> int:
    """The label list's length before the dataset layer repaired it (echoed lists keep theirs)."""
    for repair in session.repairs:
        if repair.rule == ECHOED_RULE and repair.turn == turn_id and repair.field == _RELEASE_KEY[task] and isinstance(repair.original, list):
            return len(repair.original)
    return len(current)


def _select(labels: Sequence[str], original_len: int, cfg: ExtractConfig) -> list[str] | None:
    """The row's target labels under ``cfg``, or None when the row is dropped."""
    labels = [lab for lab in labels if lab and lab.strip()]
    if not labels or original_len > cfg.max_labels or len(labels) > cfg.max_labels:
        return None
    if cfg.label_mode == "first":
        return None if labels[0] in cfg.drop_labels else [labels[0]]
    kept = list(dict.fromkeys(lab for lab in labels if lab not in cfg.drop_labels))
    return kept or None


def extract_examples(
    sessions: Iterable[Session],
    task: str | TaskSpec,
    *,
    config: ExtractConfig | None = None,
    groups: Mapping[str, str] | None = None,
    language: str | None = None,
) -> list[LabelledText]:
    """Labelled rows of ``task`` from ``sessions`` (already repaired by the dataset layer).

    ``groups`` maps session uid to case group (``psyinsight.data.splits.case_groups``); without
    it each session is its own group. ``language`` keeps only sessions of that language.
    """
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    cfg = config or ExtractConfig()
    rows: list[LabelledText] = []
    for session in sessions:
        if language is not None and session.language != language:
            continue
        group = (groups or {}).get(session.uid, session.uid)
        if spec.level == "session":
            value = getattr(session, spec.name) or ""
            chosen = _select([value.strip()], 1, cfg)
            if chosen is None:
                continue
            text = _session_input(session, spec.name, cfg)
            rows.append(LabelledText(session.uid, text, "", chosen, session.uid, session.language, group))
            continue
        for index, turn in enumerate(session.dialog):
            if turn.speaker != spec.speaker:
                continue
            raw = turn.emotions if spec.name == "emotion" else turn.strategies
            if not raw:
                continue
            chosen = _select(raw, _original_length(session, spec.name, turn.id or f"#{index}", raw), cfg)
            if chosen is None:
                continue
            rows.append(_turn_row(session, index, cfg, chosen, group=group, meta={"turn_id": turn.id}))
    return rows


def _turn_row(session: Session, index: int, cfg: ExtractConfig, labels: list[str], *, group: str = "", meta: dict[str, object]) -> LabelledText:
    """The row of turn ``index``: its text, the turns before it as context, and ``labels``."""
    turn = session.dialog[index]
    text, context = turn_text(turn, cfg.turn_fields), turn_context(session, index, cfg)
    return LabelledText(f"{session.uid}/{index}", text, context, labels, session.uid, session.language, group, meta=meta)


def extract_inputs(sessions: Iterable[Session], task: str | TaskSpec, *, config: ExtractConfig | None = None) -> list[LabelledText]:
    """Every row ``task`` could label (labelled or not): what a labeller predicts for.

    ``labels`` holds the row's current labels as found (possibly empty); nothing is dropped.
    """
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    cfg = config or ExtractConfig()
    rows: list[LabelledText] = []
    for session in sessions:
        if spec.level == "session":
            text = _session_input(session, spec.name, cfg)
            current = [session_value] if (session_value := (getattr(session, spec.name) or "").strip()) else []
            rows.append(LabelledText(session.uid, text, "", current, session.uid, session.language))
            continue
        for index, turn in enumerate(session.dialog):
            if turn.speaker != spec.speaker:
                continue
            current = list((turn.emotions if spec.name == "emotion" else turn.strategies) or [])
            rows.append(_turn_row(session, index, cfg, current, meta={"turn_id": turn.id, "turn_index": index}))
    return rows
