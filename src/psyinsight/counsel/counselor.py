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

The model sits behind ``LocalEngine``: one loaded model, a lock so concurrent callers take
turns, batched generation (``generate.generate_replies``) and token streaming. The server
wraps the same engine in a micro-batching queue.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources as importlib_resources
from typing import Any

from psyinsight.errors import PsyInsightError
from psyinsight.counsel.safety import SafetyGuard, SafetyResult
from psyinsight.language import detect_language
from psyinsight.data.schema import Language, parse_language

COUNSELOR_TASKS = ("dialog", "reasoning", "observation_reasoning")
"""Instruction tasks a counselor can be prompted with (what its adapter was trained on)."""
CRISIS_PLACEHOLDER: dict[str, str] = {
    "en": "(A safety message with crisis hotline numbers was shown here.)",
    "cn": "（此处显示了附有危机求助热线的安全提示。）",
}


# --------------------------------------------------------------------------- the engine
@dataclass(frozen=True)
class GenParams:
    """Decoding settings of one request; requests with equal params can share a batch."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    """0 = greedy; > 0 samples with this temperature."""
    top_p: float = 1.0
    seed: int = 13
    stop: tuple[str, ...] = ()
    """Strings that end the reply (not included in it)."""
    prefix: str = ""
    """Text the reply is forced to start with (JSON mode uses "{"); part of the reply."""

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0


@dataclass
class Generation:
    """One generated reply with its token accounting."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    """"stop" (the model ended, or a stop string) or "length" (max_new_tokens reached)."""


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class LocalEngine:
    """A transformers model (+ LoRA adapter) loaded once, used by one caller at a time.

    The lock makes concurrent use safe (generate() is not re-entrant on one model); the
    server's queue batches requests in front of it so the lock is rarely contended.
    """

    def __init__(self, model: str = "default", adapter: str | None = None, *, device: str | None = None, dtype: str | None = None,
                 threads: int | None = None):  # fmt: skip
        self.model_name = model
        self.adapter = adapter
        self.device = device
        self.dtype = dtype
        self.threads = threads
        """torch CPU threads (process-wide). On a busy CPU, 1 thread decodes several times
        faster than 2 that spin-wait on each other; None keeps torch's default."""
        self.lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None

    def load(self) -> None:
        """Load the model now (the first request would otherwise pay for it)."""
        with self._load_lock:
            if self._model is None:
                from psyinsight.models import load_model_and_tokenizer

                if self.threads:
                    import torch

                    torch.set_num_threads(self.threads)
                self._model, self._tokenizer = load_model_and_tokenizer(self.model_name, self.adapter, device=self.device, dtype=self.dtype)

    @property
    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    def count_prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        from psyinsight.train.templates import render_prompt

        return len(self.tokenizer(render_prompt(self.tokenizer, messages), add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under this model's tokenizer."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    _count = count_tokens

    def generate(self, prompts: Sequence[Sequence[dict[str, str]]], params: GenParams) -> list[Generation]:
        """Generate one reply per prompt (one batch; all prompts share ``params``)."""
        from psyinsight.generate.generation import generate_replies

        self.load()
        with self.lock:
            if params.prefix:
                texts = self._generate_prefixed(prompts, params)
            else:
                texts = generate_replies(
                    self._model, self._tokenizer, [list(p) for p in prompts],
                    max_new_tokens=params.max_new_tokens, do_sample=params.do_sample,
                    temperature=params.temperature if params.do_sample else 0.7,
                    top_p=params.top_p if params.do_sample else 0.9,
                    seed=params.seed, batch_size=max(1, len(prompts)),
                )  # fmt: skip
            out = []
            for prompt, text in zip(prompts, texts):
                # generate_replies returns text: tokens are counted by re-encoding it, capped at
                # the limit (a byte-level tokenizer may re-encode broken characters differently).
                completion = min(self._count(text), params.max_new_tokens)
                text, stopped = cut_at_stop(text, params.stop)
                finish = "stop" if stopped or completion < params.max_new_tokens else "length"
                if stopped:
                    completion = min(self._count(text), completion)
                out.append(Generation(text.strip(), self.count_prompt_tokens(prompt), completion, finish))
        return out

    def _decode_kwargs(self, params: GenParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "pad_token_id": self._tokenizer.pad_token_id, "do_sample": params.do_sample}
        if params.do_sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        else:  # silence "temperature is ignored" warnings from generation configs that set them
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    def _generate_prefixed(self, prompts: Sequence[Sequence[dict[str, str]]], params: GenParams) -> list[str]:
        """Like ``generate_replies``, with the assistant turn opened by ``params.prefix``."""
        import torch

        from psyinsight.train.templates import render_prompt

        tok = self._tokenizer
        texts = [render_prompt(tok, p) + params.prefix for p in prompts]
        side, tok.padding_side = tok.padding_side, "left"
        try:
            batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            tok.padding_side = side
        device = next(self._model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        torch.manual_seed(params.seed)
        with torch.inference_mode():
            out = self._model.generate(**batch, **self._decode_kwargs(params))
        decoded = tok.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        return [params.prefix + d for d in decoded]

    def stream(self, prompt: Sequence[dict[str, str]], params: GenParams) -> Iterator[str]:
        """Yield the reply's text piece by piece as the model writes it.

        Holds the lock for the whole generation. A stop string, or the caller closing the
        iterator (a client that went away), cancels the generation at the next token.
        """
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        from psyinsight.train.templates import render_prompt

        self.load()
        tok = self._tokenizer
        cancel = threading.Event()

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

        self.lock.acquire()
        try:
            text = render_prompt(tok, prompt) + params.prefix
            batch = tok([text], return_tensors="pt", add_special_tokens=False)
            device = next(self._model.parameters()).device
            batch = {k: v.to(device) for k, v in batch.items()}
            streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True, timeout=600)
            kwargs: dict[str, Any] = dict(batch, streamer=streamer, stopping_criteria=StoppingCriteriaList([_Cancelled()]), **self._decode_kwargs(params))

            def run() -> None:
                try:
                    torch.manual_seed(params.seed)
                    with torch.inference_mode():
                        self._model.generate(**kwargs)
                except Exception:
                    streamer.end()  # unblock the reader; it ends with what it has
                    raise
                finally:
                    self.lock.release()

            thread = threading.Thread(target=run, name="psyinsight-stream", daemon=True)
            thread.start()
        except BaseException:
            self.lock.release()
            raise
        emitted = candidate = ""
        if params.prefix:
            yield params.prefix
        hold = max((len(s) for s in params.stop), default=0)
        try:
            for piece in streamer:
                candidate += piece
                cut, stopped = cut_at_stop(candidate, params.stop)
                if stopped:
                    if len(cut) > len(emitted):
                        yield cut[len(emitted) :]
                    return
                safe = len(candidate) - hold  # hold back what could start a stop string
                if safe > len(emitted):
                    yield candidate[len(emitted) : safe]
                    emitted = candidate[:safe]
            if len(candidate) > len(emitted):
                yield candidate[len(emitted) :]
        finally:
            cancel.set()


# --------------------------------------------------------------------------- prompts
@lru_cache(maxsize=4)
def prompt_templates(language: Language) -> dict[str, Any]:
    """The instruction-task templates (``psyinsight/prompts/<lang>.yaml``) the adapters are trained on."""
    import yaml

    path = importlib_resources.files("psyinsight") / "prompts" / f"{language}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PsyInsightError("the prompt templates are missing from the package", path=str(path)) from None
    return data


def build_counselor_prompt(
    history: Sequence[dict[str, str]],
    language: Language,
    *,
    background: str = "",
    task: str = "observation_reasoning",
) -> list[dict[str, str]]:
    """The chat prompt asking for the counselor's next turn, in the training format."""
    if task not in COUNSELOR_TASKS:
        raise PsyInsightError(f"unknown counselor task {task!r}; choose from {', '.join(COUNSELOR_TASKS)}", where="task")
    t = prompt_templates(language)
    names = {"user": t["default_client"], "assistant": t["default_counselor"]}
    lines = [
        t["history_line"].format(participant=names[m["role"]], content=" ".join(str(m["content"]).split()))
        for m in history
        if m["role"] in names
    ]
    user = t["user"].format(
        background=background.strip() or t["no_background"],
        retrieved="",
        history="\n".join(lines) or t["empty_history"],
        instruction=t["instructions"][task],
    )
    return [{"role": "system", "content": t["system"].strip()}, {"role": "user", "content": user}]


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
        out.append({"role": role, "content": content})
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
        task: str = "observation_reasoning",
        background: str = "",
        region: str | None = None,
        params: GenParams | None = None,
        device: str | None = None,
    ):
        self.language: Language = parse_language(language)
        self.guard = guard or SafetyGuard()
        self.engine = engine or LocalEngine(model, adapter, device=device)
        if task not in COUNSELOR_TASKS:
            raise PsyInsightError(f"unknown counselor task {task!r}; choose from {', '.join(COUNSELOR_TASKS)}", where="task")
        self.task = task
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

    def prompt(self, history: Sequence[dict[str, str]], language: Language, background: str | None = None) -> list[dict[str, str]]:
        """The model's prompt. Earlier crisis replies are replaced by a short note: the
        fixed message is never model input, not even as context."""
        system = " ".join(m["content"] for m in history if m["role"] == "system")
        convo = [
            {"role": "assistant", "content": CRISIS_PLACEHOLDER[language]}
            if m["role"] == "assistant" and self.guard.is_crisis_message(m["content"])
            else m
            for m in history
            if m["role"] != "system"
        ]
        bg = background if background is not None else (system or self.background)
        return build_counselor_prompt(convo, language, background=bg, task=self.task)

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
        return SafetyResult(True, category, score=risk.score if risk else 0.0, threshold=risk.threshold if risk else 0.0,
                            source="reply", matches=verdict.matches, text=text,
                            reason=f"the model's reply was withheld: {verdict.kind} ({verdict.matches[0]!r})")  # fmt: skip

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
        generation = self.engine.generate([self.prompt(history, lang, background)], params or self.params)[0]
        reply = self.finish(generation, lang, risk)
        if not reply.flagged and not reply.response.strip():
            raise EmptyReply("the model returned an empty reply", where="model")
        return reply
