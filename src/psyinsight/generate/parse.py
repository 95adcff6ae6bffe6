"""Splitting a generated counselor turn into Observation / Reasoning / response.

The models are trained to write (any prefix optional, by task)::

    Observation: <what the client said, objectively>
    Reasoning: <the counselor's intent>
    Therapist: <the reply>

or in Chinese ``观察：`` / ``推理：`` / ``咨询师：`` (full- or half-width colons). Markers of
either language are recognised in both, because small models mix them. A failed parse is
never dropped: the raw text is kept, ``ok`` is False and ``error`` says why, and the
response falls back to the text that is not an observation or reasoning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from psyinsight.records import Prediction

Field = Literal["observation", "reasoning", "strategy", "response"]
FIELDS: tuple[Field, ...] = ("observation", "reasoning", "strategy", "response")

# The marker each field is written with in the targets (tasks.py uses these too).
MARKERS: dict[str, dict[Field, str]] = {
    "en": {"observation": "Observation", "reasoning": "Reasoning", "strategy": "Strategy", "response": "Therapist"},
    "cn": {"observation": "观察", "reasoning": "推理", "strategy": "策略", "response": "咨询师"},
}
COLON = {"en": ": ", "cn": "："}

_SYNONYMS: dict[Field, tuple[str, ...]] = {
    "observation": ("Observation", "观察"),
    "reasoning": ("Reasoning", "推理"),
    "strategy": ("Strategies", "Strategy", "策略"),
    "response": ("Therapist", "Counselor", "Counsellor", "Response", "咨询师", "心理咨询师", "治疗师"),
}
# A line starting with a client marker ends the counselor's reply (the model ran on).
_STOP_WORDS = ("Client", "Seeker", "Patient", "来访者", "求助者")

_WORDS = "|".join(re.escape(w) for ws in _SYNONYMS.values() for w in ws)
_MARKER_RE = re.compile(
    rf"(?:^|(?<=\n)|(?<=[\s>]))[ \t]*(?:\*\*|__)?(?P<word>{_WORDS})(?:\*\*|__)?[ \t]*[:：](?:\*\*|__)?[ \t]*",
    re.IGNORECASE,
)
_STOP_RE = re.compile(rf"\n[ \t]*(?:\*\*)?(?:{'|'.join(_STOP_WORDS)})(?:\*\*)?[ \t]*[:：]", re.IGNORECASE)
_WORD_FIELD = {w.casefold(): f for f, ws in _SYNONYMS.items() for w in ws}
# Mid-line, only the exact canonical markers count ("... Reasoning: x Therapist: y" on one
# line); a word like "response:" inside a sentence is not a marker.
_INLINE_OK = frozenset(w for lang in MARKERS.values() for w in lang.values())


def _accept(text: str, match: re.Match[str]) -> bool:
    line_start = text.rfind("\n", 0, match.start()) + 1
    if not text[line_start : match.start()].strip():
        return True
    return match.group("word") in _INLINE_OK


@dataclass(frozen=True)
class ParsedOutput:
    """The parts of one generated turn; ``ok`` is False when an expected part is missing."""

    observation: str | None
    reasoning: str | None
    response: str
    ok: bool
    error: str = ""
    strategy: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "observation": self.observation,
            "reasoning": self.reasoning,
            "strategy": self.strategy,
            "response": self.response,
            "parse_ok": self.ok,
        }


def marker(field: Field, language: str) -> str:
    """The prefix a target uses for ``field`` in ``language`` ("Reasoning: ", "推理：")."""
    lang = "cn" if language in ("cn", "zh") else "en"
    return MARKERS[lang][field] + COLON[lang]


def parse_output(text: str, language: str = "en", *, expect: Iterable[Field] = ("response",)) -> ParsedOutput:
    """Split ``text`` at its markers. ``expect`` lists the parts the task must produce.

    The first occurrence of each marker counts; a repeated marker ends the previous part.
    Text before the first marker is a preamble: it becomes the response only when no
    response marker is found (and the parse then fails when "response" is expected).
    """
    del language  # markers of both languages are accepted; kept for a stable signature
    expect = tuple(expect)
    cleaned = clean_text(text)
    parts: dict[Field, str] = {}
    matches = [m for m in _MARKER_RE.finditer(cleaned) if _accept(cleaned, m)]
    preamble = cleaned[: matches[0].start()].strip() if matches else cleaned
    seen_response = False
    for index, match in enumerate(matches):
        field = _WORD_FIELD[match.group("word").casefold()]
        end = matches[index + 1].start() if index + 1 < len(matches) else len(cleaned)
        if seen_response:
            break  # anything after the reply (a second "Therapist:" line) is run-on text
        body = cleaned[match.end() : end].strip()
        if field in parts:
            continue
        parts[field] = body
        seen_response = field == "response"
    missing = [f for f in expect if not parts.get(f)]
    if "response" in parts:
        response = parts["response"]
    else:
        response = preamble if matches else cleaned
    stop = _STOP_RE.search("\n" + response)
    if stop:
        response = ("\n" + response)[: stop.start()].strip()
    needs_response = "response" in expect
    ok = not missing and (bool(response) or not needs_response)
    error = ""
    if missing:
        error = "missing " + ", ".join(missing)
    elif needs_response and not response:
        error = "empty response"
    return ParsedOutput(
        observation=parts.get("observation"),
        reasoning=parts.get("reasoning"),
        response=response,
        ok=ok,
        error=error,
        strategy=parts.get("strategy"),
    )


def first_marker(text: str, field: Field | None = None) -> re.Match[str] | None:
    """The first marker ``parse_output`` accepts in ``text`` (of ``field``, when given), else None.

    ``text`` is taken as ``parse_output`` cleans it: CRLF as LF, stripped.
    """
    for match in _MARKER_RE.finditer(text):
        if _accept(text, match) and (field is None or _WORD_FIELD[match.group("word").casefold()] == field):
            return match
    return None


def clean_text(text: str) -> str:
    """``text`` as ``parse_output`` reads it."""
    return text.replace("\r\n", "\n").strip()


def expected_fields(task: str) -> tuple[Field, ...]:
    """The parts a task's target contains (see tasks.py)."""
    return {
        "reasoning": ("reasoning", "response"),
        "observation_reasoning": ("observation", "reasoning", "response"),
        "labels": ("strategy", "response"),
        "aux_reasoning": ("reasoning",),
        "aux_observation": ("observation",),
    }.get(task, ("response",))


def to_prediction(
    example_id: str,
    text: str,
    *,
    reference: str = "",
    language: str = "en",
    task: str = "dialog",
    meta: dict[str, Any] | None = None,
    expect: Sequence[Field] | None = None,
) -> Prediction:
    """A ``Prediction`` holding the raw text and its parsed parts (kept even when parsing fails)."""
    parsed = parse_output(text, language, expect=expect if expect is not None else expected_fields(task))
    extra = dict(meta or {})
    if parsed.error:
        extra["parse_error"] = parsed.error
    if parsed.strategy is not None:
        extra["strategy"] = parsed.strategy
    return Prediction(
        id=example_id,
        text=text,
        reference=reference,
        observation=parsed.observation,
        reasoning=parsed.reasoning,
        response=parsed.response,
        parse_ok=parsed.ok,
        meta=extra,
    )
