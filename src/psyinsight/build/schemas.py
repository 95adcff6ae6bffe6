"""JSON Schemas of the annotation answers, sent to servers that enforce them (``response_format`` json_schema).

Each schema says what the matching checker in ``annotate.py`` accepts: the taxonomy's
labels as enums, at most ``MAX_LABELS`` labels, every turn id of a window once and in
order with the fields its role needs. Free-text fields get a ``maxLength`` that fits the
task's token limit, so a constrained answer closes its object before ``max_tokens`` cuts
it (a cut answer is the one way a constrained answer can still be invalid).
"""

from __future__ import annotations

from typing import Any

from psyinsight import taxonomy
from psyinsight.schema import SEEKER, Language

MAX_LABELS = 3
CHARS_PER_TOKEN = {"en": 3.0, "cn": 0.6}
"""A cautious characters-per-token figure for small models' tokenizers (Chinese often takes more than one token a character)."""


def _text(max_chars: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max(8, max_chars)}


def _labels(values: tuple[str, ...], most: int = MAX_LABELS) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "enum": list(values)}, "minItems": 1, "maxItems": most}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _budget(max_tokens: int, fields: int, overhead: int, language: Language) -> int:
    """Characters each of ``fields`` free-text fields may use within ``max_tokens`` (``overhead``: tokens of keys and labels)."""
    tokens = max(4, (max_tokens - overhead) // max(1, fields))
    return int(tokens * CHARS_PER_TOKEN[language])


def unit_schema(max_tokens: int, language: Language) -> dict[str, Any]:
    size = _budget(max_tokens, 4, 32, language)
    return _object({key: _text(size) for key in ("background", "reasoning", "summary", "guide")})


def labels_schema() -> dict[str, Any]:
    return _object({
        "psychotherapy": {"type": "string", "enum": list(taxonomy.PSYCHOTHERAPIES)},
        "topic": {"type": "string", "enum": list(taxonomy.TOPICS)},
        "stage": {"type": "string", "enum": list(taxonomy.STAGES)},
    })  # fmt: skip


def window_schema(roles: dict[str, str], max_tokens: int, language: Language) -> dict[str, Any]:
    """One object per turn id, in order: observation + emotions for the client, reasoning + strategies for the counselor."""
    most = MAX_LABELS
    size = _budget(max_tokens, len(roles), 6 + (14 + 6 * most) * len(roles), language)
    if size < 8 * CHARS_PER_TOKEN[language]:  # a tight token limit: one label per turn leaves room for the text
        most = 1
        size = _budget(max_tokens, len(roles), 6 + 20 * len(roles), language)
    items = []
    for turn_id, role in roles.items():
        if role == SEEKER:
            fields = {"id": {"type": "string", "enum": [turn_id]}, "observation": _text(size), "emotions": _labels(taxonomy.EMOTIONS, most)}
        else:
            fields = {"id": {"type": "string", "enum": [turn_id]}, "reasoning": _text(size), "strategies": _labels(taxonomy.STRATEGIES, most)}
        items.append(_object(fields))
    turns = {"type": "array", "prefixItems": items, "items": False, "minItems": len(items), "maxItems": len(items)}
    return _object({"turns": turns})


def boundary_schema() -> dict[str, Any]:
    return _object({"is_same_qa": {"type": "integer", "enum": [0, 1]}, "is_same_session": {"type": "integer", "enum": [0, 1]}})


def resolve_schema() -> dict[str, Any]:
    return _object({
        "kind": {"type": "string", "enum": ["dialogue", "narrative"]},
        "role": {"type": "string", "enum": ["counselor", "client", "unknown"]},
        "participant": {"type": "string", "maxLength": 40},
    })  # fmt: skip
