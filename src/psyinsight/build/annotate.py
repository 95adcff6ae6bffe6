"""Step 5: LLM annotation of session units, every answer checked against a schema.

Per unit: ``unit`` (background, session reasoning, summary, guide), ``labels``
(psychotherapy, topic, stage, constrained to the taxonomy), ``window`` (per turn, in windows
of turns: observation + emotions for the client, reasoning + strategies for the counselor)
and ``boundary`` (is_same_qa / is_same_session against the previous unit of the same
source). Prompts are data (``prompts/build_en.yaml``, ``build_zh.yaml``).

An answer that is not JSON, misses a key or uses a label outside the taxonomy gets one
repair retry (the model sees its answer and the reason); if that fails too the failure is
recorded with both raw answers and the field falls back to empty / ``["Unknown"]``: the
turn and the session are kept, never silently dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from psyinsight.build import schemas
from psyinsight.build.records import Unit
from psyinsight.data import taxonomy
from psyinsight.data.schema import SEEKER, Language
from psyinsight.errors import PsyInsightError
from psyinsight.llm import ChatRequest, ChatResult, LLMClient, parse_json_object

PROMPT_FILES = {"en": "build_en.yaml", "cn": "build_zh.yaml"}
MAX_LABELS = schemas.MAX_LABELS
"""More labels than this is the release's "echoed the whole list" defect: rejected and repaired."""

Validator = Callable[[dict[str, Any]], tuple[Any, str | None]]


@dataclass
class Prompts:
    language: Language
    system: str
    repair: str
    tasks: dict[str, dict[str, str]]
    sha256: str


def load_prompts(language: Language) -> Prompts:
    """The packaged prompt file for ``language`` (checked for the fields the code fills)."""
    name = PROMPT_FILES[language]
    raw = resources.files("psyinsight.prompts").joinpath(name).read_text(encoding="utf-8")
    data = yaml.safe_load(raw)
    for task in ("resolve", "unit", "labels", "window", "boundary"):
        if task not in data.get("tasks", {}) or "user" not in data["tasks"][task]:
            raise PsyInsightError(f"missing tasks.{task}.user", path=f"psyinsight/prompts/{name}")
    return Prompts(language, data["system"].strip(), data["repair"].strip(), data["tasks"], hashlib.sha256(raw.encode()).hexdigest())


# -- schema checks ---------------------------------------------------------------------


def _text(obj: dict[str, Any], key: str, *, required: bool = True) -> tuple[str, str | None]:
    value = obj.get(key)
    if value is None and not required:
        return "", None
    if not isinstance(value, str):
        return "", f'"{key}" must be a string'
    if required and not value.strip():
        return "", f'"{key}" is empty'
    return value.strip(), None


def _label(kind: taxonomy.LabelKind, value: Any, key: str) -> tuple[str, str | None]:
    if not isinstance(value, str):
        return "", f'"{key}" must be a string'
    found = taxonomy.canonical(kind, value)
    if found is None:
        return "", f'"{key}" {value!r} is not one of {", ".join(taxonomy.LABELS[kind])}'
    return found, None


def _labels(kind: taxonomy.LabelKind, value: Any, key: str) -> tuple[list[str], str | None]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        return [], f'"{key}" must be a non-empty list'
    if len(value) > MAX_LABELS:
        return [], f'"{key}" has {len(value)} labels; give at most {MAX_LABELS}'
    out: list[str] = []
    for item in value:
        found, error = _label(kind, item, key)
        if error:
            return [], error
        if found not in out:
            out.append(found)
    return out, None


def check_unit(obj: dict[str, Any]) -> tuple[dict[str, str] | None, str | None]:
    out: dict[str, str] = {}
    for key, required in (("background", True), ("reasoning", False), ("summary", False), ("guide", True)):
        out[key], error = _text(obj, key, required=required)
        if error:
            return None, error
    return out, None


def check_labels(obj: dict[str, Any]) -> tuple[dict[str, str] | None, str | None]:
    out: dict[str, str] = {}
    for key, kind in (("psychotherapy", "psychotherapy"), ("topic", "topic"), ("stage", "stage")):
        if key not in obj:
            return None, f'missing "{key}"'
        out[key], error = _label(kind, obj[key], key)  # type: ignore[arg-type]
        if error:
            return None, error
    return out, None


def _flag(value: Any, key: str) -> tuple[int, str | None]:
    if isinstance(value, bool):
        return int(value), None
    if value in (0, 1, "0", "1"):
        return int(value), None
    return 0, f'"{key}" must be 0 or 1, got {value!r}'


def check_boundary(obj: dict[str, Any]) -> tuple[dict[str, int] | None, str | None]:
    out: dict[str, int] = {}
    for key in ("is_same_qa", "is_same_session"):
        if key not in obj:
            return None, f'missing "{key}"'
        out[key], error = _flag(obj[key], key)
        if error:
            return None, error
    return out, None


def window_checker(roles: dict[str, str]) -> Validator:
    """A checker for one window: every turn id once, the right fields for each role."""

    def check(obj: dict[str, Any]) -> tuple[dict[str, dict[str, Any]] | None, str | None]:
        rows = obj.get("turns")
        if not isinstance(rows, list):
            return None, '"turns" must be a list with one object per turn id'
        out: dict[str, dict[str, Any]] = {}
        for row in rows:
            if not isinstance(row, dict) or str(row.get("id", "")) not in roles:
                return None, f"unknown or missing turn id in {row!r:.80}; the ids are {', '.join(roles)}"
            turn_id = str(row["id"])
            if roles[turn_id] == SEEKER:
                text, error = _text(row, "observation")
                labels, error2 = _labels("emotion", row.get("emotions"), "emotions")
                out[turn_id] = {"observation": text, "emotions": labels}
            else:
                text, error = _text(row, "reasoning")
                labels, error2 = _labels("strategy", row.get("strategies"), "strategies")
                out[turn_id] = {"reasoning": text, "strategies": labels}
            if error or error2:
                return None, f"turn {turn_id}: {error or error2}"
        missing = [t for t in roles if t not in out]
        if missing:
            return None, f"no annotation for turn(s) {', '.join(missing)}"
        return out, None

    return check


def check_resolve(obj: dict[str, Any]) -> tuple[dict[str, str] | None, str | None]:
    kind, role = obj.get("kind"), obj.get("role", "unknown")
    if kind not in ("dialogue", "narrative"):
        return None, '"kind" must be "dialogue" or "narrative"'
    if role not in ("counselor", "client", "unknown"):
        return None, '"role" must be "counselor", "client" or "unknown"'
    participant = obj.get("participant", "")
    return {"kind": kind, "role": role, "participant": participant if isinstance(participant, str) else ""}, None


# -- requests with one repair retry ------------------------------------------------------


@dataclass
class Job:
    """One question to the LLM: its request, the schema check, and where the answer goes."""

    task: str
    where: str
    request: ChatRequest
    check: Validator
    keys: str
    repair_template: str


@dataclass
class Outcome:
    value: Any = None
    failure: dict[str, Any] | None = None
    transient: bool = False
    """True when the failure was the server's (not the model's answer): not cached, retried next run."""
    calls: list[str] = field(default_factory=list)


def _judge(job: Job, result: ChatResult) -> tuple[Any, str | None]:
    obj, reason = parse_json_object(result.text)
    if obj is None:
        if result.finish_reason == "length":
            reason = f"the answer was cut off at the token limit ({reason})"
        return None, reason
    return job.check(obj)


def run_jobs(client: LLMClient, jobs: list[Job]) -> list[Outcome]:
    """Ask every job once, then once more with a repair message where the answer was unusable."""
    outcomes = [Outcome() for _ in jobs]
    first = client.complete_many([j.request for j in jobs])
    repairs: list[tuple[int, ChatRequest, str, str]] = []
    for i, (job, result) in enumerate(zip(jobs, first)):
        outcomes[i].calls.append(result.key)
        if not result.ok:
            outcomes[i].failure = _failure(job, "llm_error", result.error, [])
            outcomes[i].transient = True
            continue
        value, error = _judge(job, result)
        if error is None:
            outcomes[i].value = value
            continue
        repair = job.repair_template.format(error=error, keys=job.keys)
        messages = job.request.messages + [{"role": "assistant", "content": result.text or ""}, {"role": "user", "content": repair}]
        request = ChatRequest(
            messages=messages,
            json_mode=job.request.json_mode,
            params=job.request.params,
            schema=job.request.schema,
            schema_name=job.request.schema_name,
            tag=job.request.tag + ".repair",
        )
        repairs.append((i, request, error, result.text or ""))
    if repairs:
        second = client.complete_many([r[1] for r in repairs])
        for (i, _, first_error, first_raw), result in zip(repairs, second):
            job = jobs[i]
            outcomes[i].calls.append(result.key)
            if not result.ok:
                outcomes[i].failure = _failure(job, "llm_error", result.error, [first_raw], first_error)
                outcomes[i].transient = True
                continue
            value, error = _judge(job, result)
            if error is None:
                outcomes[i].value = value
            else:
                outcomes[i].failure = _failure(job, "invalid_output", error, [first_raw, result.text or ""], first_error)
    return outcomes


def _failure(job: Job, kind: str, error: str | None, raw: list[str], first_error: str | None = None) -> dict[str, Any]:
    failure = {"task": job.task, "where": job.where, "kind": kind, "error": error or "", "raw": raw}
    if first_error:
        failure["first_error"] = first_error
    return failure


# -- building the questions --------------------------------------------------------------


@dataclass
class AnnotateConfig:
    """Annotation settings (part of every annotation cache key)."""

    window: int = field(default=5, metadata={"help": "Turns per observation/reasoning window (the paper used 5)."})
    max_context_chars: int = field(default=1500, metadata={"help": "Narrative characters put in a prompt (before: the end; after: the start)."})
    max_tokens: dict[str, int] = field(
        default_factory=lambda: {"resolve": 80, "unit": 800, "labels": 80, "window": 1000, "boundary": 40},
        metadata={"help": "Completion token limit per task: each answer's schema is sized so that no admitted answer exceeds it."},
    )


def turn_id(unit: Unit, index: int) -> str:
    return f"{unit.index}-{index}"


def _dialogue(unit: Unit, start: int = 0, end: int | None = None) -> str:
    turns = unit.turns[start:end]
    return "\n".join(f"[{turn_id(unit, start + i)}] {t.participant} ({t.role}): {t.content}" for i, t in enumerate(turns))


def _cut(text: str, limit: int, *, keep_end: bool) -> str:
    if not text.strip():
        return "(none)"
    if len(text) <= limit:
        return text
    return ("…" + text[-limit:]) if keep_end else (text[:limit] + "…")


def _request(
    prompts: Prompts, task: str, cfg: AnnotateConfig, schema: dict[str, Any] | None = None, max_tokens: int | None = None, **fields: str
) -> ChatRequest:
    """The question, with the JSON Schema of its answer (sent where the server enforces schemas)."""
    user = prompts.tasks[task]["user"].format(**fields)
    limit = max_tokens or cfg.max_tokens.get(task, 400)
    if schema is not None:  # never below the longest answer the schema admits (the labels' longest names, say)
        limit = max(limit, schemas.token_bound(schema, prompts.language))
    return ChatRequest(
        messages=[{"role": "system", "content": prompts.system}, {"role": "user", "content": user}],
        json_mode=True,
        params={"max_tokens": limit},
        schema=schema,
        schema_name=f"psyinsight_{task}",
        tag=f"annotate.{task}",
    )


def unit_jobs(unit: Unit, previous: Unit | None, prompts: Prompts, cfg: AnnotateConfig) -> list[Job]:
    """Every LLM question about one unit, in a fixed order."""
    limit = cfg.max_context_chars
    before, after = _cut(unit.before, limit, keep_end=True), _cut(unit.after, limit, keep_end=False)
    dialogue = _dialogue(unit)
    keys = lambda task: prompts.tasks[task].get("keys", "")  # noqa: E731
    where = unit.key
    lang = unit.language
    tokens = lambda task: cfg.max_tokens.get(task, 400)  # noqa: E731
    jobs = [
        Job(
            "unit",
            where,
            _request(prompts, "unit", cfg, schemas.unit_schema(tokens("unit"), lang), before=before, dialogue=dialogue, after=after),
            check_unit,
            keys("unit"),
            prompts.repair,
        ),
        Job(
            "labels",
            where,
            _request(
                prompts,
                "labels",
                cfg,
                schemas.labels_schema(),
                before=before,
                dialogue=dialogue,
                psychotherapies=", ".join(taxonomy.PSYCHOTHERAPIES),
                topics=", ".join(taxonomy.TOPICS),
                stages=", ".join(taxonomy.STAGES),
            ),
            check_labels,
            keys("labels"),
            prompts.repair,
        ),
    ]
    for start in range(0, len(unit.turns), cfg.window):
        end = min(start + cfg.window, len(unit.turns))
        roles = {turn_id(unit, i): unit.turns[i].role for i in range(start, end)}
        context = _dialogue(unit, max(0, start - 2), start) if start else _cut(unit.before, limit // 2, keep_end=True)
        window_limit = max(tokens("window"), schemas.window_min_tokens(roles, lang))  # room for the smallest valid answer
        request = _request(
            prompts,
            "window",
            cfg,
            schemas.window_schema(roles, window_limit, lang),
            window_limit,
            context=context,
            window=_dialogue(unit, start, end),
            emotions=", ".join(taxonomy.EMOTIONS),
            strategies=", ".join(taxonomy.STRATEGIES),
        )
        jobs.append(Job("window", f"{where}@{start}-{end - 1}", request, window_checker(roles), keys("window"), prompts.repair))
    if previous is not None:
        request = _request(
            prompts,
            "boundary",
            cfg,
            schemas.boundary_schema(),
            previous=_dialogue(previous, max(0, len(previous.turns) - 3)),
            current=_dialogue(unit, 0, 3),
        )
        jobs.append(Job("boundary", where, request, check_boundary, keys("boundary"), prompts.repair))
    return jobs


def empty_annotation(unit: Unit) -> dict[str, Any]:
    """What a unit carries before (or without) annotation: empty text, Unknown labels."""
    return {
        "session": {
            "background": "",
            "reasoning": "",
            "summary": "",
            "guide": "",
            "psychotherapy": taxonomy.UNKNOWN,
            "topic": taxonomy.UNKNOWN,
            "stage": taxonomy.UNKNOWN,
            "is_same_qa": 0,
            "is_same_session": 0,
        },
        "turns": [
            {"observation": None, "emotions": [taxonomy.UNKNOWN]} if t.role == SEEKER else {"reasoning": None, "strategies": [taxonomy.UNKNOWN]}
            for t in unit.turns
        ],
        "failures": [],
    }


def apply_outcomes(unit: Unit, jobs: list[Job], outcomes: list[Outcome]) -> tuple[dict[str, Any], bool]:
    """The unit's annotation from its jobs' outcomes, and whether any failure was transient."""
    annotation = empty_annotation(unit)
    transient = False
    for job, outcome in zip(jobs, outcomes):
        if outcome.failure is not None:
            annotation["failures"].append(outcome.failure)
            transient = transient or outcome.transient
            continue
        if job.task in ("unit", "labels", "boundary"):
            annotation["session"].update(outcome.value)
        elif job.task == "window":
            for tid, fields in outcome.value.items():
                annotation["turns"][int(tid.split("-")[1])].update(fields)
    return annotation, transient


def resolve_jobs(text: str, pieces: list[Any], prompts: Prompts, cfg: AnnotateConfig, where: str) -> tuple[list[int], list[Job]]:
    """Questions for the pieces the segmentation rules were unsure about (index, job)."""
    indexes: list[int] = []
    jobs: list[Job] = []
    for i, piece in enumerate(pieces):
        if not piece.unsure:
            continue
        lines = []
        for j in range(max(0, i - 2), min(len(pieces), i + 3)):
            body = text[pieces[j].start : pieces[j].end].strip()
            lines.append((">>> " if j == i else "    ") + body[: cfg.max_context_chars // 3])
        request = _request(
            prompts, "resolve", cfg, schemas.resolve_schema(cfg.max_tokens.get("resolve", 400), prompts.language), context="\n\n".join(lines)
        )
        request.tag = "segment.resolve"
        indexes.append(i)
        jobs.append(Job("resolve", f"{where}@{piece.start}", request, check_resolve, prompts.tasks["resolve"].get("keys", ""), prompts.repair))
    return indexes, jobs
