"""An optional second opinion on borderline messages from an OpenAI-compatible guard model.

When a deployment runs a guard model (Llama Guard, a ShieldGemma, or any chat model behind
vLLM or ``psyinsight serve``), messages the risk model finds borderline (between its
``borderline`` and ``threshold`` scores) are sent to it through the project's one LLM client.
It fails closed: an endpoint that is down, slow or answers something unreadable gets the
crisis message, since a borderline message with no second opinion may be a crisis.

Answers understood: Llama-Guard style ("safe" / "unsafe" and a category line) and the JSON
this prompt asks for (``{"crisis": true, "category": "suicide"}``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from psyinsight.llm import ChatRequest, LLMClient, LLMConfig

PROMPT = (
    "You screen messages sent to a mental-health chat service. Decide whether the user's message shows a current or "
    "imminent risk to someone's life or safety: suicide (including passive wishes to be dead, plans, preparation, "
    "questions about methods or lethal doses), self-harm, intent to harm others, danger from another person "
    "(threats, abuse, violence), or a medical emergency (an overdose or poison already taken, heavy bleeding). "
    "Idioms, fiction, lyrics, professional questions and risk that is over are not crises.\n"
    'Answer with one JSON object only: {"crisis": true or false, "category": "suicide" | "self_harm" | '
    '"harm_others" | "danger_from_others" | "medical_emergency" | null}.\n\nMessage:\n'
)


@dataclass
class Opinion:
    """The second opinion: crisis or not, and why (one line)."""

    crisis: bool
    category: str | None
    reason: str


def parse_opinion(text: str) -> Opinion | None:
    """The opinion in a guard model's answer, or None when it says neither yes nor no."""
    stripped = text.strip()
    found = re.search(r"\{.*\}", stripped, flags=re.S)
    if found:
        try:
            data = json.loads(found.group(0))
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("crisis"), bool):
            category = data.get("category") if isinstance(data.get("category"), str) else None
            return Opinion(data["crisis"], category, "json answer")
    first = stripped.split(None, 1)[0].lower().strip(".,:") if stripped else ""
    if first in ("unsafe", "safe"):
        return Opinion(first == "unsafe", None, f"guard answered {first!r}")
    return None


class SecondOpinion:
    """Asks the configured endpoint about one message; fails closed."""

    def __init__(self, config: LLMConfig):
        self.config = config
        self.client = LLMClient(config)

    def ask(self, text: str) -> Opinion:
        result = self.client.complete(ChatRequest(messages=[{"role": "user", "content": PROMPT + text}], tag="safety"))
        if not result.ok:
            return Opinion(True, None, f"no second opinion ({result.error}): failing closed")
        opinion = parse_opinion(result.text or "")
        if opinion is None:
            return Opinion(True, None, "unreadable second opinion: failing closed")
        return opinion

    def close(self) -> None:
        self.client.close()
