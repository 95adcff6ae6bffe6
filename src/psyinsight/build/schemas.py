"""JSON Schemas of the annotation answers, sent to servers that enforce them (``response_format`` json_schema).

Each schema says what the matching checker in ``annotate.py`` accepts: the taxonomy's
labels as enums, at most ``MAX_LABELS`` labels, every turn id of a window once and in
order with the fields its role needs. Free-text fields get a ``maxLength`` that fits the
task's token limit, so a constrained answer closes its object before ``max_tokens`` cuts
it (a cut answer is the one way a constrained answer can still be invalid); a window's
limit is raised to what its smallest valid answer needs (``window_min_tokens``).
"""

from __future__ import annotations

from typing import Any

from psyinsight.data import taxonomy
from psyinsight.data.schema import SEEKER, Language

MAX_LABELS = 3
CHARS_PER_TOKEN = {"en": 2.5, "cn": 0.5}
"""Cautious characters per token (SmolLM2's tokenizer: about 5 for English prose, 0.5 for Chinese)."""
TURN_TOKENS = 22
"""Tokens of one window row without its text ({"id":"12-3","reasoning":"","strategies":["Question"]} is 19), plus margin."""
LABEL_TOKENS = 5
WRAPPER_TOKENS = 8
TEXT_MIN_TOKENS = 8
FILL = 0.85
"""Share of the token limit the schema plans to use (what the model writes is not known token by token)."""


def window_min_tokens(turns: int) -> int:
    """The token limit a window answer needs at least (one label and a short text per turn)."""
    return int((WRAPPER_TOKENS + turns * (TURN_TOKENS + TEXT_MIN_TOKENS)) / FILL) + 1


def _text(max_chars: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max(4, max_chars)}


def _labels(values: tuple[str, ...], most: int = MAX_LABELS) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "enum": list(values)}, "minItems": 1, "maxItems": most}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _budget(max_tokens: int, fields: int, overhead: int, language: Language) -> int:
    """Characters each of ``fields`` free-text fields may use within ``max_tokens`` (``overhead``: tokens of keys and labels)."""
    tokens = max(TEXT_MIN_TOKENS, (int(max_tokens * FILL) - overhead) // max(1, fields))
    return int(tokens * CHARS_PER_TOKEN[language])


def unit_schema(max_tokens: int, language: Language) -> dict[str, Any]:
    size = _budget(max_tokens, 4, 20, language)
    return _object({key: _text(size) for key in ("background", "reasoning", "summary", "guide")})


def labels_schema() -> dict[str, Any]:
    return _object(
        {
            "psychotherapy": {"type": "string", "enum": list(taxonomy.PSYCHOTHERAPIES)},
            "topic": {"type": "string", "enum": list(taxonomy.TOPICS)},
            "stage": {"type": "string", "enum": list(taxonomy.STAGES)},
        }
    )


def window_schema(roles: dict[str, str], max_tokens: int, language: Language) -> dict[str, Any]:
    """One object per turn id, in order: observation + emotions for the client, reasoning + strategies for the counselor."""
    most = MAX_LABELS
    per_turn = TURN_TOKENS + LABEL_TOKENS * (most - 1)
    if (int(max_tokens * FILL) - WRAPPER_TOKENS) // max(1, len(roles)) - per_turn < 2 * TEXT_MIN_TOKENS:
        most, per_turn = 1, TURN_TOKENS  # a tight token limit: one label per turn leaves room for the text
    size = _budget(max_tokens, len(roles), WRAPPER_TOKENS + per_turn * len(roles), language)
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
    return _object(
        {
            "kind": {"type": "string", "enum": ["dialogue", "narrative"]},
            "role": {"type": "string", "enum": ["counselor", "client", "unknown"]},
            "participant": {"type": "string", "maxLength": 40},
        }
    )
