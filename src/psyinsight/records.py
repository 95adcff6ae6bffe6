"""Records passed between stages: training examples and model predictions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    role: str
    content: str


class Example(BaseModel):
    """One instruction-tuning example: a counselor turn to produce from its context.

    ``id`` is ``<session uid>/<turn index>`` (plus ``/<task>`` when several tasks share a
    file), unique within a task file.
    """

    model_config = ConfigDict(extra="allow")

    id: str
    messages: list[Message]
    """The prompt, in chat form (system/user/assistant turns before the target)."""
    target: str
    """What the model must write (e.g. "Reasoning: ...\\nTherapist: ...")."""
    reference: str
    """The counselor's reply alone, for evaluation."""
    meta: dict[str, Any] = Field(default_factory=dict)
    """task, language, session uid, turn id, split..."""


class Prediction(BaseModel):
    """A model's output for one Example: kept whole, parsed where possible."""

    model_config = ConfigDict(extra="allow")

    id: str
    text: str
    """The raw generated text."""
    reference: str = ""
    observation: str | None = None
    reasoning: str | None = None
    response: str = ""
    parse_ok: bool = True
    meta: dict[str, Any] = Field(default_factory=dict)
