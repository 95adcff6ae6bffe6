"""An LLM judge for counselor responses: single ratings and position-balanced pairs.

Rates a response 1-5 on the paper's human-evaluation criteria (interactivity,
helpfulness, comfort, explainability) with a written rubric (``prompts/judge_en.yaml``,
``judge_zh.yaml``), through the project's one OpenAI-compatible client (``psyinsight.llm``:
concurrency, retries on 429/5xx/timeouts, SQLite cache by input hash, accounting).

What is judge-specific lives here: the prompts, validation of the reply against a schema,
one repair request when the reply is not valid JSON or not in the schema (the raw reply
is kept when the repair fails too), pairwise judging in both orders so position bias
cancels, and aggregation. A rerun with the same inputs makes no request: every answer,
repairs included, comes from the client's cache.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from psyinsight.errors import PsyInsightError
from psyinsight.evaluate.metrics.base import language_code, strip_speaker
from psyinsight.llm import ChatRequest, LLMClient, LLMConfig, parse_json_object
from psyinsight.records import Example, Prediction

CRITERIA: tuple[str, ...] = ("interactivity", "helpfulness", "comfort", "explainability")
Choice = Literal["1", "2", "tie"]
RUBRIC_FILES = {"en": "judge_en.yaml", "cn": "judge_zh.yaml"}
KEY_ENV = "PSYINSIGHT_JUDGE_API_KEY"


@dataclass(frozen=True)
class Rubric:
    """The rubric of one language, loaded from its YAML file."""

    language: str
    data: dict[str, Any]
    digest: str

    def criteria_text(self) -> str:
        lines = []
        for key in CRITERIA:
            spec = self.data["criteria"][key]
            anchors = "; ".join(f"{score} = {text}" for score, text in spec.get("anchors", {}).items())
            lines.append(f"- {key} ({spec['name']}): {spec['description']} [{anchors}]")
        return "\n".join(lines)

    def fill(self, template_key: str, **values: str) -> str:
        """Fill ``{name}`` placeholders by plain replacement (dialogue text may hold braces)."""
        text = str(self.data[template_key])
        for name, value in values.items():
            text = text.replace("{" + name + "}", value)
        return text


def load_rubric(language: str, path: str | Path | None = None) -> Rubric:
    """The packaged rubric for a language, or a user's YAML file with the same keys."""
    language = language_code(language)
    if path:
        source = Path(path)
        from psyinsight.fileio import read_text

        text = read_text(source)
    else:
        source = Path(RUBRIC_FILES[language])
        text = resources.files("psyinsight").joinpath("prompts", RUBRIC_FILES[language]).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PsyInsightError(f"invalid YAML: {exc}", path=source, where="judge rubric") from None
    required = ["system", "single", "pairwise", "explanation", "no_context", "repair", "criteria"]
    missing = [k for k in required if not isinstance(data, dict) or k not in data]
    missing += [f"criteria.{c}" for c in CRITERIA if isinstance(data, dict) and c not in (data.get("criteria") or {})]
    if missing:
        raise PsyInsightError(f"rubric lacks {', '.join(missing)}", path=source, where="judge rubric")
    return Rubric(language, data, hashlib.sha256(text.encode("utf-8")).hexdigest()[:12])


# -- validation ------------------------------------------------------------------------


def validate_rating(obj: dict[str, Any] | None) -> tuple[dict[str, int] | None, str | None]:
    """Check a single-mode reply: an integer 1-5 for every criterion (``"4"`` and ``4.0`` accepted)."""
    if obj is None:
        return None, "no JSON object"
    scores: dict[str, int] = {}
    problems = []
    for key in CRITERIA:
        value = obj.get(key)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            problems.append(f"{key} must be an integer from 1 to 5, got {json.dumps(value, ensure_ascii=False)}")
        else:
            scores[key] = value
    return (None, "; ".join(problems)) if problems else (scores, None)


def validate_preference(obj: dict[str, Any] | None) -> tuple[dict[str, Choice] | None, str | None]:
    """Check a pairwise reply: "1", "2" or "tie" for every criterion."""
    if obj is None:
        return None, "no JSON object"
    choices: dict[str, Choice] = {}
    problems = []
    for key in CRITERIA:
        value = obj.get(key)
        text = str(value).strip().lower() if value is not None else ""
        if text in {"1", "2", "tie"}:
            choices[key] = text  # type: ignore[assignment]
        else:
            problems.append(f'{key} must be "1", "2" or "tie", got {json.dumps(value, ensure_ascii=False)}')
    return (None, "; ".join(problems)) if problems else (choices, None)


# -- items and prompts -----------------------------------------------------------------


@dataclass
class JudgeItem:
    """One response to judge, with its dialogue context."""

    id: str
    language: str
    model: str
    response: str
    context: str = ""
    reasoning: str | None = None


def render_context(messages: Sequence[Any], max_chars: int) -> str:
    """The dialogue before the response, as ``role: text`` lines, keeping the most recent part."""
    lines = []
    for message in messages:
        role = message["role"] if isinstance(message, dict) else message.role
        content = message["content"] if isinstance(message, dict) else message.content
        if role == "system":
            continue
        lines.append(content if role == "user" else f"Counselor: {content}")
    text = "\n".join(lines).strip()
    return text if len(text) <= max_chars else "..." + text[-max_chars:]


def items_from_predictions(
    predictions: Sequence[Prediction], examples: Sequence[Example] | None = None, *, default_model: str = "unknown", max_context_chars: int = 4000
) -> list[JudgeItem]:
    """Judge items: the parsed response (raw text when parsing failed), context from the examples."""
    contexts = {e.id: render_context(e.messages, max_context_chars) for e in (examples or [])}
    items = []
    for p in predictions:
        meta = p.meta or {}
        language = meta.get("language")
        if not language:
            raise PsyInsightError("meta.language is missing (en or cn)", where=f"prediction {p.id}")
        context = contexts.get(p.id) or str(meta.get("context") or "")
        items.append(
            JudgeItem(
                p.id,
                language_code(str(language)),
                str(meta.get("model") or default_model),
                strip_speaker(p.response if p.response.strip() else p.text),
                context[-max_context_chars:],
                p.reasoning,
            )
        )
    return items


def _explanation(rubric: Rubric, reasoning: str | None) -> str:
    return rubric.fill("explanation", reasoning=reasoning.strip()) + "\n" if reasoning and reasoning.strip() else ""


def single_messages(rubric: Rubric, item: JudgeItem) -> list[dict[str, str]]:
    user = rubric.fill(
        "single",
        context=item.context or rubric.data["no_context"],
        response=item.response or "(empty)",
        explanation=_explanation(rubric, item.reasoning),
        criteria=rubric.criteria_text(),
    )
    return [{"role": "system", "content": rubric.data["system"].strip()}, {"role": "user", "content": user}]


def pairwise_messages(rubric: Rubric, first: JudgeItem, second: JudgeItem) -> list[dict[str, str]]:
    user = rubric.fill(
        "pairwise",
        context=first.context or second.context or rubric.data["no_context"],
        response_1=first.response or "(empty)",
        response_2=second.response or "(empty)",
        explanation_1=_explanation(rubric, first.reasoning),
        explanation_2=_explanation(rubric, second.reasoning),
        criteria=rubric.criteria_text(),
    )
    return [{"role": "system", "content": rubric.data["system"].strip()}, {"role": "user", "content": user}]


# -- running -----------------------------------------------------------------------------


DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_MAX_TOKENS = 400
"""Enough for four scores and a short rationale; part of every cached answer's key."""

OPTION_HELP = {
    "base_url": "OpenAI-compatible base URL (env PSYINSIGHT_JUDGE_BASE_URL or OPENAI_BASE_URL)",
    "model": "judge model name (env PSYINSIGHT_JUDGE_MODEL)",
    "api_key_env": "name of the environment variable holding the API key (never logged or written)",
    "max_concurrency": "requests in flight at once",
    "max_retries": "retries on 429, 5xx, timeouts and unreadable bodies",
    "timeout_s": "seconds per attempt",
    "cache_path": "SQLite cache of answers (default: <cache>/judge/llm.sqlite); reruns are free",
}
"""What the judge's LLM settings mean for the judge (the CLI's help), beside the defaults they name."""


def judge_llm_config(**settings: Any) -> LLMConfig:
    """An ``LLMConfig`` with the judge's defaults, ``settings`` overriding them.

    The endpoint and model come from the environment (``PSYINSIGHT_JUDGE_BASE_URL`` or
    ``OPENAI_BASE_URL``; ``PSYINSIGHT_JUDGE_MODEL``) when not given; answers are capped at
    ``DEFAULT_MAX_TOKENS`` and sampled at temperature 0 so a rerun reproduces (and hits the cache).
    """
    defaults: dict[str, Any] = {
        "base_url": os.environ.get("PSYINSIGHT_JUDGE_BASE_URL") or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1",
        "model": os.environ.get("PSYINSIGHT_JUDGE_MODEL", DEFAULT_MODEL),
        "max_tokens": DEFAULT_MAX_TOKENS,
        "temperature": 0.0,
    }
    return LLMConfig(**(defaults | settings))


@dataclass
class JudgeConfig:
    """The judge's LLM (endpoint, model, retries, cache: one ``LLMConfig``) and what it does with replies."""

    llm: LLMConfig = field(default_factory=judge_llm_config, metadata={"help": "endpoint, model, retries and cache (defaults: judge_llm_config)"})
    repair: bool = field(default=True, metadata={"help": "ask once more when a reply is not valid JSON in the schema"})
    max_context_chars: int = field(default=4000, metadata={"help": "dialogue context kept before the response (most recent characters)"})

    def llm_config(self) -> LLMConfig:
        """The client's settings: ``llm``, caching under ``<cache>/judge/llm.sqlite`` unless it names a file."""
        from psyinsight.paths import cache_dir

        return self.llm if self.llm.cache_path else replace(self.llm, cache_path=cache_dir() / "judge" / "llm.sqlite")

    def public_dict(self) -> dict[str, Any]:
        """The settings for the summary, flat as before the LLM settings became one ``LLMConfig`` (no key)."""
        return self.llm.public_dict() | {"repair": self.repair, "max_context_chars": self.max_context_chars}


@dataclass
class Verdict:
    """The outcome of one judged prompt: validated values, or the error with the raw reply kept."""

    values: dict[str, Any] | None
    rationale: str = ""
    error: str | None = None
    raw: str | None = None
    repaired: bool = False
    cached: bool = False


def _ask(client: Any, conversations: list[list[dict[str, str]]], validate: Any, rubric_for: list[Rubric], repair: bool) -> list[Verdict]:
    """Send the prompts; repair once the replies that fail validation; keep raw text on failure."""

    def requests(convs: list[list[dict[str, str]]]) -> list[Any]:
        return [ChatRequest(messages=c, json_mode=True, tag="judge") for c in convs]

    results = client.complete_many(requests(conversations))
    verdicts: list[Verdict] = []
    to_repair: list[int] = []
    for index, result in enumerate(results):
        if not result.ok:
            verdicts.append(Verdict(None, error=f"request failed: {result.error}", cached=result.cached))
            continue
        obj, reason = parse_json_object(result.text)
        values, problem = validate(obj) if obj is not None else (None, reason)
        if values is not None:
            verdicts.append(Verdict(values, str((obj or {}).get("rationale", "")), raw=result.text, cached=result.cached))
        else:
            verdicts.append(Verdict(None, error=f"invalid reply: {problem}", raw=result.text, cached=result.cached))
            to_repair.append(index)
    if repair and to_repair:
        follow_ups = [
            conversations[i]
            + [
                {"role": "assistant", "content": verdicts[i].raw or ""},
                {"role": "user", "content": rubric_for[i].fill("repair", error=(verdicts[i].error or "")[:300])},
            ]
            for i in to_repair
        ]
        for i, result in zip(to_repair, client.complete_many(requests(follow_ups))):
            if not result.ok:
                verdicts[i].error = f"{verdicts[i].error}; repair request failed: {result.error}"
                continue
            obj, reason = parse_json_object(result.text)
            values, problem = validate(obj) if obj is not None else (None, reason)
            if values is not None:
                verdicts[i] = Verdict(values, str((obj or {}).get("rationale", "")), raw=result.text, repaired=True, cached=result.cached)
            else:
                verdicts[i].error = f"{verdicts[i].error}; after repair: {problem}"
                verdicts[i].raw = result.text
    return verdicts


@contextmanager
def _judge_client(config: JudgeConfig, client: Any = None) -> Iterator[Any]:
    """The caller's client, or one made from ``config`` and closed when the judging ends."""
    if client is not None:
        yield client
        return
    own = LLMClient(config.llm_config())
    try:
        yield own
    finally:
        own.close()


def _with_run(summary: dict[str, Any], config: JudgeConfig, client: Any, rubrics: dict[str, Any]) -> dict[str, Any]:
    """A summary with what produced it: the judge's settings, the client's counts and each rubric's digest."""
    summary.update(judge=config.public_dict(), llm=client.stats.as_dict(), rubrics={lang: r.digest for lang, r in rubrics.items()})
    return summary


def judge_single(
    items: Sequence[JudgeItem], config: JudgeConfig, *, client: Any = None, rubric_path: str | Path | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rate every item 1-5 per criterion; returns (one row per item, summary)."""
    with _judge_client(config, client) as client:
        rubrics = {lang: load_rubric(lang, rubric_path) for lang in {i.language for i in items}}
        per_item = [rubrics[i.language] for i in items]
        verdicts = _ask(client, [single_messages(r, i) for r, i in zip(per_item, items)], validate_rating, per_item, config.repair)
        rows = [
            {
                "id": item.id,
                "model": item.model,
                "language": item.language,
                "ok": v.values is not None,
                "scores": v.values,
                "rationale": v.rationale,
                "error": v.error,
                "raw": v.raw if v.values is None else None,
                "repaired": v.repaired,
                "rubric": per_item[k].digest,
            }
            for k, (item, v) in enumerate(zip(items, verdicts))
        ]
        summary = summarize_single(rows)
        return rows, _with_run(summary, config, client, rubrics)


def summarize_single(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean rating per criterion for each (model, language), with counts of failures."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["model"], row["language"])].append(row)
    out = []
    for (model, language), members in sorted(groups.items()):
        ok = [r for r in members if r["ok"]]
        means = {c: (sum(r["scores"][c] for r in ok) / len(ok) if ok else None) for c in CRITERIA}
        out.append(
            {
                "model": model,
                "language": language,
                "n": len(members),
                "ok": len(ok),
                "failed": len(members) - len(ok),
                "repaired": sum(1 for r in members if r.get("repaired")),
                "means": means,
            }
        )
    return {"mode": "single", "groups": out}


def combine_orders(forward: dict[str, Choice], backward: dict[str, Choice]) -> tuple[dict[str, str], dict[str, bool]]:
    """Merge the verdicts of (A, B) and (B, A) per criterion into "A", "B" or "tie".

    Forward "1" means A, backward "1" means B. When the two orders disagree the criterion
    is a tie: a preference that flips with position is position bias, not quality.
    """
    to_ab_forward = {"1": "A", "2": "B", "tie": "tie"}
    to_ab_backward = {"1": "B", "2": "A", "tie": "tie"}
    winners: dict[str, str] = {}
    consistent: dict[str, bool] = {}
    for key in CRITERIA:
        a, b = to_ab_forward[forward[key]], to_ab_backward[backward[key]]
        consistent[key] = a == b
        winners[key] = a if a == b else "tie"
    return winners, consistent


def judge_pairwise(
    items_a: Sequence[JudgeItem], items_b: Sequence[JudgeItem], config: JudgeConfig, *, client: Any = None, rubric_path: str | Path | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Compare two systems on the ids they share, asking each pair in both orders."""
    by_id_b = {i.id: i for i in items_b}
    pairs = [(a, by_id_b[a.id]) for a in items_a if a.id in by_id_b]
    if not pairs:
        raise PsyInsightError("the two prediction sets share no id; pairwise judging needs the same examples on both sides", where="judge --pairwise")
    with _judge_client(config, client) as client:
        rubrics = {lang: load_rubric(lang, rubric_path) for lang in {a.language for a, _ in pairs}}
        conversations, per_prompt = [], []
        for a, b in pairs:
            rubric = rubrics[a.language]
            conversations += [pairwise_messages(rubric, a, b), pairwise_messages(rubric, b, a)]
            per_prompt += [rubric, rubric]
        verdicts = _ask(client, conversations, validate_preference, per_prompt, config.repair)
        rows = []
        for k, (a, b) in enumerate(pairs):
            forward, backward = verdicts[2 * k], verdicts[2 * k + 1]
            row: dict[str, Any] = {"id": a.id, "language": a.language, "model_a": a.model, "model_b": b.model}
            if forward.values is not None and backward.values is not None:
                winners, consistent = combine_orders(forward.values, backward.values)
                row.update(
                    ok=True,
                    winner=winners,
                    consistent=consistent,
                    forward=forward.values,
                    backward=backward.values,
                    rationale=[forward.rationale, backward.rationale],
                    error=None,
                )
            else:
                row.update(ok=False, winner=None, consistent=None, error=forward.error or backward.error, raw=[forward.raw, backward.raw])
            rows.append(row)
        summary = summarize_pairwise(rows)
        return rows, _with_run(summary, config, client, rubrics)


def summarize_pairwise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Win/tie/loss rates of A against B per criterion, and how often both orders agreed."""
    ok = [r for r in rows if r["ok"]]
    result: dict[str, Any] = {"mode": "pairwise", "n": len(rows), "ok": len(ok), "failed": len(rows) - len(ok), "criteria": {}}
    for key in CRITERIA:
        counts = {"A": 0, "B": 0, "tie": 0}
        for r in ok:
            counts[r["winner"][key]] += 1
        total = len(ok) or 1
        result["criteria"][key] = {
            "a_wins": counts["A"] / total,
            "b_wins": counts["B"] / total,
            "ties": counts["tie"] / total,
            "position_consistency": (sum(1 for r in ok if r["consistent"][key]) / len(ok)) if ok else math.nan,
        }
    if rows:
        result["model_a"], result["model_b"] = rows[0]["model_a"], rows[0]["model_b"]
    return result
