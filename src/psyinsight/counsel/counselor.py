"""The counselor core shared by ``serve``, ``chat`` and the web app.

``Counselor.reply(history)`` does, in this order:

1. checks the conversation with the safety guard (the latest user message, read with the
   recent user and system messages) *before* anything else: before the history is
   validated, before any model runs, so no malformed input or failing model can skip it;
2. on risk, returns the fixed crisis message with hotline resources for the user's region
   and ``flagged=True``; the model is never called and the message never goes to a model;
3. otherwise builds the counselor prompt (the instruction-task templates in
   ``psyinsight/prompts``: background, dialogue so far, "write Observation / Reasoning /
   Therapist"), generates, and splits the output into observation, reasoning and the
   reply with ``psyinsight.generate.parse``;
4. screens the model's reply (``SafetyGuard.screen_reply``): a reply that encourages harm or
   gives method information is replaced by the crisis message. An empty reply is an error,
   so that no caller stores it as a turn.

The model sits behind ``counsel.engine.LocalEngine``: one loaded model, a lock so
concurrent callers take turns, batched and streamed generation that a caller can cancel.
The server wraps the same engine in a micro-batching queue.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from psyinsight.counsel.engine import Generation, GenParams, LocalEngine
from psyinsight.counsel.safety import SafetyGuard, SafetyResult
from psyinsight.data.schema import Language, parse_language
from psyinsight.errors import PsyInsightError
from psyinsight.language import detect_language
from psyinsight.tasks.examples import TaskConfig
from psyinsight.tasks.prompts import TokenCounter, line_of_message, load_prompts, render_prompt

COUNSELOR_TASKS = ("dialog", "reasoning", "observation_reasoning", "labels", "rag")
"""Instruction tasks whose output is a counselor turn (what an adapter may be trained on)."""
PROMPT_TASK_OF = {"mix": "dialog"}
"""A training task prompted as another: a mix schedule ends in its dialog task."""
DEFAULT_TASK = "observation_reasoning"
DEFAULT_BUDGET = TaskConfig().max_tokens
log = logging.getLogger(__name__)
CRISIS_PLACEHOLDER: dict[str, str] = {
    "en": "(A safety message with crisis hotline numbers was shown here.)",
    "cn": "（此处显示了附有危机求助热线的安全提示。）",
}


# --------------------------------------------------------------------------- prompts
@dataclass(frozen=True)
class PromptSettings:
    """How the counselor's prompt is rendered: the training task's, read from the adapter."""

    task: str = DEFAULT_TASK
    budget: int | None = DEFAULT_BUDGET
    """Token budget of prompt + answer, as in training (``tasks.max_tokens``)."""
    prompts_dir: str | None = None
    """The template folder the adapter was trained with (None: the packaged one)."""


def prompt_settings(adapter: str | None, task: str | None = None) -> PromptSettings:
    """The prompt an adapter was trained on: its task, token budget and templates (its
    ``psyinsight_adapter.json``); ``task`` overrides the task. Without an adapter or its
    metadata: ``task`` or observation_reasoning, the default budget, the packaged templates."""
    from psyinsight.models import read_adapter_meta

    meta = read_adapter_meta(adapter) if adapter else {}
    tasks = (meta.get("recipe") or {}).get("tasks") or {}
    trained = meta.get("task")
    chosen = task or trained or DEFAULT_TASK
    if task and trained and PROMPT_TASK_OF.get(trained, trained) != task:
        log.warning("the adapter was trained on task %s; prompting it as %s, as asked", trained, task)
    chosen = PROMPT_TASK_OF.get(chosen, chosen)
    if chosen not in COUNSELOR_TASKS:
        raise PsyInsightError(
            f"task {chosen!r} does not write counselor turns; choose from {', '.join(COUNSELOR_TASKS)}",
            path=adapter if trained == chosen else None,
            where="task",
        )
    return PromptSettings(chosen, tasks.get("max_tokens", DEFAULT_BUDGET), tasks.get("prompts_dir"))


def build_counselor_prompt(
    history: Sequence[dict[str, str]],
    language: Language,
    *,
    background: str = "",
    settings: PromptSettings | None = None,
    reserve: int = 0,
    count: TokenCounter | None = None,
) -> list[dict[str, str]]:
    """The chat prompt asking for the counselor's next turn: the training renderer
    (``tasks.prompts.render_prompt``) on the chat's user and assistant messages, with
    ``reserve`` tokens of the budget kept for the reply."""
    settings = settings or PromptSettings()
    tpl = load_prompts(language, settings.prompts_dir)
    lines = [line_of_message(m, tpl) for m in history if m["role"] in ("user", "assistant")]
    rendered = render_prompt(tpl, settings.task, lines, background=background, reserve=reserve, budget=settings.budget, count=count)
    if rendered is None:
        raise PsyInsightError(f"the background and instructions alone exceed the prompt budget of {settings.budget} tokens", where="background")
    return rendered.messages


# --------------------------------------------------------------------------- the counselor
class EmptyReply(PsyInsightError):
    """The model answered nothing: not a turn to store, not a crash to report."""


@dataclass
class CounselorReply:
    """A counselor turn: the reply, its chain of thought, and the safety verdict."""

    response: str
    observation: str | None = None
    reasoning: str | None = None
    raw: str = ""
    """The model's whole output ("" for a crisis reply: no model ran)."""
    flagged: bool = False
    """True when the safety layer answered instead of the model."""
    risk: SafetyResult | None = None
    parse_ok: bool = True
    language: Language = "en"
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str = "stop"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["risk"] = self.risk.to_dict() if self.risk is not None else None
        return data


def validate_history(history: Any, *, where: str = "messages") -> list[dict[str, str]]:
    """Check a chat history: roles system/user/assistant, no empty text, ends with a user turn.

    Several user messages in a row are allowed: a turn the model failed to answer is kept,
    not its (empty) answer, and the person's next message follows it.
    """
    if not isinstance(history, list) or not history:
        raise PsyInsightError("needs at least one message", where=where)
    out: list[dict[str, str]] = []
    for i, m in enumerate(history):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise PsyInsightError("each message needs 'role' and 'content'", where=f"{where}[{i}]")
        role, content = m["role"], m["content"]
        if role not in ("system", "user", "assistant"):
            raise PsyInsightError(f"unknown role {role!r}; use system, user or assistant", where=f"{where}[{i}].role")
        if not isinstance(content, str) or not content.strip():
            raise PsyInsightError("empty message", where=f"{where}[{i}].content")
        if role == "system" and any(p["role"] != "system" for p in out):
            raise PsyInsightError("a system message must come before the conversation", where=f"{where}[{i}].role")
        if out and role == "assistant" and out[-1]["role"] == "assistant":
            raise PsyInsightError("two assistant messages in a row; a user message must come between them", where=f"{where}[{i}].role")
        name = m.get("name")
        out.append({"role": role, "content": content, **({"name": name} if isinstance(name, str) and name.strip() else {})})
    if out[-1]["role"] != "user":
        raise PsyInsightError("the last message must be the user's (the model answers it)", where=f"{where}[{len(out) - 1}].role")
    return out


class Counselor:
    """A counselor model behind the safety guard."""

    def __init__(
        self,
        model: str = "default",
        adapter: str | None = None,
        language: str = "en",
        guard: SafetyGuard | None = None,
        *,
        engine: Any = None,
        task: str | None = None,
        background: str = "",
        region: str | None = None,
        params: GenParams | None = None,
        device: str | None = None,
    ):
        self.language: Language = parse_language(language)
        self.guard = guard or SafetyGuard()
        self.engine = engine or LocalEngine(model, adapter, device=device)
        self.prompt_settings = prompt_settings(adapter, task)
        self.background = background
        self.region = region
        self.params = params or GenParams(max_new_tokens=200)

    # The steps, public so the server can run the model step through its queue.
    def resolve_language(self, history: Sequence[dict[str, Any]], language: str | None) -> Language:
        """The reply language: ``language`` (en or cn, else an error naming it), or the latest user message's."""
        if language:
            try:
                return parse_language(language)
            except ValueError as exc:
                raise PsyInsightError(str(exc), where="language") from None
        latest = next((m.get("content") for m in reversed(history) if isinstance(m, dict) and m.get("role") == "user"), "")
        return detect_language(latest if isinstance(latest, str) else "", self.language, cjk_share=0)  # type: ignore[return-value]

    def crisis_language(self, history: Sequence[dict[str, Any]], language: str | None) -> Language:
        """The crisis message's language; never fails (an unknown code reads the message's script)."""
        try:
            return self.resolve_language(history, language)
        except (PsyInsightError, ValueError):
            return self.resolve_language(history, None)

    def check(self, history: Sequence[dict[str, Any]]) -> SafetyResult:
        """The safety verdict; runs before anything else, on a history of any shape."""
        return self.guard.check_history(list(history))

    def crisis_reply(self, risk: SafetyResult, language: str | None, region: str | None = None) -> CounselorReply:
        """The fixed crisis message for the risk's category (never model text), flagged.
        It never fails: an unknown language or region falls back to a default."""
        try:
            lang = parse_language(language or self.language)
        except ValueError:
            lang = "en"
        message = self.guard.crisis_message(lang, region or self.region, category=risk.category)
        return CounselorReply(response=message, flagged=True, risk=risk, language=lang)

    def prompt(
        self, history: Sequence[dict[str, str]], language: Language, background: str | None = None, params: GenParams | None = None
    ) -> list[dict[str, str]]:
        """The model's prompt, leaving room in the budget for ``params``' new tokens. Earlier
        crisis replies are replaced by a short note: the fixed message is never model input."""
        system = " ".join(m["content"] for m in history if m["role"] == "system")
        convo = [
            {"role": "assistant", "content": CRISIS_PLACEHOLDER[language]}
            if m["role"] == "assistant" and self.guard.is_crisis_message(m["content"])
            else m
            for m in history
            if m["role"] != "system"
        ]
        bg = background if background is not None else (system or self.background)
        count = getattr(self.engine, "count_tokens", None)
        return build_counselor_prompt(
            convo, language, background=bg, settings=self.prompt_settings, reserve=(params or self.params).max_new_tokens, count=count
        )

    @property
    def task(self) -> str:
        """The instruction task the prompt asks for (the adapter's training task)."""
        return self.prompt_settings.task

    def finish(self, generation: Generation, language: Language, risk: SafetyResult | None) -> CounselorReply:
        """Split the model output into observation / reasoning / reply, after screening it:
        a reply that encourages harm or gives method information becomes the crisis message."""
        from psyinsight.generate.parse import expected_fields, parse_output

        screened = self.screen(generation.text, risk)
        if screened is not None:
            return self.crisis_reply(screened, language)
        parsed = parse_output(generation.text, language, expect=expected_fields(self.task))
        usage = {
            "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.completion_tokens,
            "total_tokens": generation.prompt_tokens + generation.completion_tokens,
        }
        return CounselorReply(
            response=parsed.response,
            observation=parsed.observation,
            reasoning=parsed.reasoning,
            raw=generation.text,
            flagged=False,
            risk=risk,
            parse_ok=parsed.ok,
            language=language,
            usage=usage,
            finish_reason=generation.finish_reason,
        )

    def screen(self, text: str, risk: SafetyResult | None) -> SafetyResult | None:
        """The verdict that replaces an unsafe model reply (None when ``text`` may be shown)."""
        verdict = self.guard.screen_reply(text, after=risk)
        if not verdict.unsafe:
            return None
        category = risk.category if risk is not None and risk.category else "suicide"
        return SafetyResult(
            True,
            category,
            score=risk.score if risk else 0.0,
            threshold=risk.threshold if risk else 0.0,
            source="reply",
            matches=verdict.matches,
            text=text,
            reason=f"the model's reply was withheld: {verdict.kind} ({verdict.matches[0]!r})",
        )

    def reply(
        self,
        history: list[dict[str, str]],
        language: str | None = None,
        *,
        background: str | None = None,
        region: str | None = None,
        params: GenParams | None = None,
    ) -> CounselorReply:
        """The counselor's next turn for ``history`` (OpenAI-style role/content dicts)."""
        risk = self.check(history)  # first: before validation, before any model
        if risk.risk:
            return self.crisis_reply(risk, self.crisis_language(history, language), region)
        history = validate_history(history)
        lang = self.resolve_language(history, language)
        generation = self.engine.generate([self.prompt(history, lang, background, params)], params or self.params)[0]
        reply = self.finish(generation, lang, risk)
        if not reply.flagged and not reply.response.strip():
            raise EmptyReply("the model returned an empty reply", where="model")
        return reply
