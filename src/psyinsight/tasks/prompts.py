"""Prompts: the one renderer of "the counselor's next turn" for training and for every chat surface.

Training examples (``tasks.examples``) and the counselor (``counsel.counselor``, behind ``chat``,
``serve`` and ``ui chat``) both call ``render_prompt``: the same template, token budget,
participant names and whitespace, so a served model sees the prompt it was trained on.
Wording lives in ``prompts/<language>.yaml``; this module fills it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from psyinsight.errors import PsyInsightError

TASKS: tuple[str, ...] = (
    "dialog",
    "reasoning",
    "observation_reasoning",
    "labels",
    "aux_reasoning",
    "aux_observation",
    "mix",
    "rag",
)
TokenCounter = Callable[[str], int]

_REQUIRED_PROMPT_KEYS = (
    "system",
    "user",
    "history_line",
    "empty_history",
    "no_background",
    "default_client",
    "default_counselor",
    "markers",
    "instructions",
    "retrieved",
    "retrieved_case",
)


@dataclass(frozen=True)
class PromptTemplate:
    """One language's wording (see prompts/en.yaml)."""

    language: str
    system: str
    user: str
    history_line: str
    empty_history: str
    no_background: str
    default_client: str
    default_counselor: str
    markers: dict[str, str]
    instructions: dict[str, str]
    retrieved: str
    retrieved_case: str
    source: str = ""

    def marker(self, name: str) -> str:
        colon = "：" if self.language == "cn" else ": "
        return self.markers[name] + colon


def load_prompts(language: str, prompts_dir: str | Path | None = None) -> PromptTemplate:
    """The template of ``language`` from ``prompts_dir`` or the packaged ``prompts/``."""
    return _load_prompts(language, str(prompts_dir) if prompts_dir else None)


@cache
def _load_prompts(language: str, prompts_dir: str | None) -> PromptTemplate:
    import yaml

    lang = "cn" if language in ("cn", "zh") else "en"
    if prompts_dir:
        path = Path(prompts_dir) / f"{lang}.yaml"
        if not path.is_file():
            raise PsyInsightError(f"no {lang}.yaml in the prompts folder", path=prompts_dir, where="prompts_dir")
        text = path.read_text(encoding="utf-8")
    else:
        res = resources.files("psyinsight") / "prompts" / f"{lang}.yaml"
        path = Path(str(res))
        text = res.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PsyInsightError(f"invalid YAML: {exc}", path=path) from None
    if not isinstance(data, dict):
        raise PsyInsightError("expected a mapping of template fields", path=path)
    missing = [k for k in _REQUIRED_PROMPT_KEYS if k not in data]
    if missing:
        raise PsyInsightError(f"missing template field(s): {', '.join(missing)}", path=path)
    for key in ("markers", "instructions"):
        if not isinstance(data[key], dict):
            raise PsyInsightError("expected a mapping", path=path, where=key)
    lacking = [t for t in TASKS if t != "mix" and t not in data["instructions"]]
    if lacking:
        raise PsyInsightError(f"no instruction for task(s) {', '.join(lacking)}", path=path, where="instructions")
    for name in ("observation", "reasoning", "strategy", "response"):
        if name not in data["markers"]:
            raise PsyInsightError(f"no marker for {name!r}", path=path, where="markers")
    return PromptTemplate(
        language=lang,
        **{k: (dict(data[k]) if k in ("markers", "instructions") else str(data[k])) for k in _REQUIRED_PROMPT_KEYS},
        source=str(path),
    )


def heuristic_counter(language: str) -> TokenCounter:
    """A tokenizer-free estimate that errs long: ~3.2 characters per token (en), 1 per character (cn)."""
    if language == "cn":
        return lambda text: len(text) + 1
    return lambda text: len(text) // 3 + 1


def tokenizer_counter(tokenizer: Any) -> TokenCounter:
    """Exact counts from a transformers tokenizer (no special tokens)."""
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


TEMPLATE_OVERHEAD_TOKENS = 24
"""Tokens a chat template adds around system, user and assistant turns (role headers)."""


TEMPLATE_OVERHEAD_TOKENS = 24
"""Tokens a chat template adds around system, user and assistant turns (role headers)."""


# ---------------------------------------------------------------- rendering
@dataclass(frozen=True)
class Line:
    """One turn of the dialogue so far, as the prompt shows it: who spoke, and what."""

    participant: str
    content: str


def line_of_turn(participant: str, is_client: bool, content: str, tpl: PromptTemplate) -> Line:
    """A release turn's line: its participant's name (trailing colons dropped), else the default name of its role."""
    name = participant.strip().rstrip(":：").strip()
    return Line(name or (tpl.default_client if is_client else tpl.default_counselor), content)


def line_of_message(message: dict[str, Any], tpl: PromptTemplate) -> Line:
    """A chat message's line: user messages are the client's, assistant messages the
    counselor's; a message's optional ``name`` (OpenAI's field) is its participant."""
    return line_of_turn(str(message.get("name") or ""), message["role"] == "user", str(message["content"]), tpl)


@dataclass
class RenderedPrompt:
    """The prompt messages, and how many of the oldest turns the budget dropped."""

    messages: list[dict[str, str]]
    dropped: int = 0


def render_prompt(
    tpl: PromptTemplate,
    task: str,
    history: Sequence[Line],
    *,
    background: str = "",
    retrieved: str = "",
    reserve: int = 0,
    budget: int | None = None,
    count: TokenCounter | None = None,
) -> RenderedPrompt | None:
    """The system and user messages asking for ``task``'s output after ``history``.

    ``budget`` (tokens, None: no limit) holds the prompt, the template overhead and
    ``reserve`` tokens for the answer (training: the target's length; serving: the most new
    tokens); the oldest turns are dropped to fit, and "…" says that earlier turns exist.
    None when not even an empty history fits.
    """
    lines = [tpl.history_line.format(participant=h.participant, content=" ".join(h.content.split())) for h in history if h.content.strip()]
    background = " ".join((background or "").split()) or tpl.no_background

    def user_text(kept: list[str]) -> str:
        hist = "\n".join(kept) if kept else tpl.empty_history
        return tpl.user.format(background=background, history=hist, instruction=tpl.instructions[task], retrieved=retrieved)

    dropped = 0
    if budget is not None:
        count = count or heuristic_counter(tpl.language)
        fixed = count(tpl.system) + count(user_text([])) + reserve + TEMPLATE_OVERHEAD_TOKENS
        if fixed > budget:
            return None
        costs = [count(line) + 1 for line in lines]
        total = fixed + sum(costs)
        while lines and total > budget:
            total -= costs.pop(0)
            lines.pop(0)
            dropped += 1
        if dropped:
            lines = ["…", *lines]
    return RenderedPrompt([{"role": "system", "content": tpl.system}, {"role": "user", "content": user_text(lines)}], dropped)
