"""Records passed between stages: training examples and model predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from psyinsight.errors import PsyInsightError
from psyinsight.fileio import read_jsonl

RecordT = TypeVar("RecordT", bound=BaseModel)


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


BASE_MARK = "(base)"
"""What a predictions label carries for an untuned model: the report compares every other row with it."""


def base_label(model: str) -> str:
    """The label of an untuned model's predictions (``smollm2 (base)``)."""
    return f"{Path(str(model)).name} {BASE_MARK}"


def is_base_label(label: str) -> bool:
    return BASE_MARK in label


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


def read_records(path: str | Path, model: type[RecordT], what: str, *, allow_empty: bool = False) -> list[RecordT]:
    """Validated records from a JSONL file; a bad row is an error naming the file and record."""
    records = []
    for lineno, row in enumerate(read_jsonl(path), start=1):
        try:
            records.append(model.model_validate(row))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(part) for part in first["loc"]) or "record"
            expected = ", ".join(name for name, info in model.model_fields.items() if info.is_required())
            raise PsyInsightError(
                f"not {what} record ({loc}: {first['msg']}); expected fields {expected}", path=path, where=f"record {lineno}"
            ) from None
    if not records and not allow_empty:
        raise PsyInsightError(f"no {what.split()[-1]} records in the file", path=path)
    return records


def load_predictions(path: str | Path) -> list[Prediction]:
    """A predictions JSONL (``psyinsight generate``), validated."""
    return read_records(path, Prediction, "a prediction")


def load_examples(path: str | Path, *, allow_empty: bool = False) -> list[Example]:
    """An examples JSONL (``psyinsight tasks build``), validated."""
    return read_records(path, Example, "an example", allow_empty=allow_empty)
