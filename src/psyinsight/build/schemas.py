"""JSON Schemas of the annotation answers, sent to servers that enforce them (``response_format`` json_schema).

Each schema says what the matching checker in ``annotate.py`` accepts: the taxonomy's
labels as enums, at most ``MAX_LABELS`` labels, every turn id of a window once and in
order with the fields its role needs. A cut answer is the one way a constrained answer can
still be invalid, so each schema is sized to its task's token limit for the worst case, not
the usual one: free-text fields may not hold characters JSON would escape, every token covers
at least one byte, and ``token_bound`` (the most UTF-8 bytes any admitted answer takes) stays
within ``max_tokens``. A model that loops inside a field reaches the field's end and closes
the object. A window's limit is raised to what its smallest valid answer needs
(``window_min_tokens``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from psyinsight.data import taxonomy
from psyinsight.data.schema import SEEKER, Language

MAX_LABELS = 3
TEXT_MIN_CHARS = 16
"""The shortest free-text field a schema plans for (a window's token limit is raised to fit it)."""
TEXT_CHARS = {
    "en": "[ !#-\\[\\]-~]",
    "cn": "[ !#-\\[\\]-~\\u3000-\\u303f\\u3400-\\u4dbf\\u4e00-\\u9fff\\uff00-\\uffef]",
}
"""The characters a free-text field may hold: printable ASCII (English) and CJK with its punctuation (Chinese),
without ``"`` and ``\\``, so that no character is written as an escape: each costs at most ``BYTES_PER_CHAR`` bytes."""
BYTES_PER_CHAR = {"en": 1, "cn": 3}
ESCAPED_BYTES_PER_CHAR = 6
"""A string without a pattern may write any character as ``\\uXXXX``."""


PARTICIPANT_CHARS = 40


def _text(max_chars: int, language: Language, *, min_chars: int = 1) -> dict[str, Any]:
    size = max(min_chars, max_chars)
    return {"type": "string", "minLength": min_chars, "maxLength": size, "pattern": f"^{TEXT_CHARS[language]}{{{min_chars},{size}}}$"}


def token_bound(schema: dict[str, Any], language: Language) -> int:
    """The most tokens any answer the schema admits can take: its UTF-8 bytes, written as the grammar
    writes JSON (no free whitespace; ``": "`` and ``", "`` between members), since every token covers
    at least one byte. A limit at or above it cannot cut a constrained answer."""
    if "enum" in schema:
        return max(_json_bytes(value) for value in schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        members = [_json_bytes(key) + 2 + token_bound(value, language) for key, value in schema["properties"].items()]
        return 2 + sum(members) + 2 * max(0, len(members) - 1)
    if kind == "array":
        items = [token_bound(item, language) for item in schema.get("prefixItems", [])]
        if schema.get("items"):
            items += [token_bound(schema["items"], language)] * (schema["maxItems"] - len(items))
        return 2 + sum(items) + 2 * max(0, len(items) - 1)
    if kind == "string":
        per_char = BYTES_PER_CHAR[language] if "pattern" in schema else ESCAPED_BYTES_PER_CHAR
        return 2 + per_char * schema["maxLength"]
    raise ValueError(f"no token bound for {schema!r}")


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def _fit(build: Callable[[int], dict[str, Any]], max_tokens: int, language: Language) -> dict[str, Any]:
    """The schema ``build(chars)`` with the longest text fields whose every answer fits in ``max_tokens``."""
    low, high = 1, max_tokens
    while low < high:  # the bound grows with the field size: the largest size that fits
        middle = (low + high + 1) // 2
        if token_bound(build(middle), language) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return build(low)


def _labels(values: tuple[str, ...], most: int = MAX_LABELS) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "enum": list(values)}, "minItems": 1, "maxItems": most}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def unit_schema(max_tokens: int, language: Language) -> dict[str, Any]:
    return _fit(lambda size: _object({key: _text(size, language) for key in ("background", "reasoning", "summary", "guide")}), max_tokens, language)


def labels_schema() -> dict[str, Any]:
    return _object(
        {
            "psychotherapy": {"type": "string", "enum": list(taxonomy.PSYCHOTHERAPIES)},
            "topic": {"type": "string", "enum": list(taxonomy.TOPICS)},
            "stage": {"type": "string", "enum": list(taxonomy.STAGES)},
        }
    )


def window_schema(roles: dict[str, str], max_tokens: int, language: Language) -> dict[str, Any]:
    """One object per turn id, in order: observation + emotions for the client, reasoning + strategies for the counselor.

    Up to ``MAX_LABELS`` labels per turn when the texts still get ``TEXT_MIN_CHARS``, else one label."""
    most = MAX_LABELS if token_bound(_window(roles, TEXT_MIN_CHARS, MAX_LABELS, language), language) <= max_tokens else 1
    return _fit(lambda size: _window(roles, size, most, language), max_tokens, language)


def window_min_tokens(roles: dict[str, str], language: Language) -> int:
    """The token limit a window answer needs at least: one label and ``TEXT_MIN_CHARS`` of text per turn."""
    return token_bound(_window(roles, TEXT_MIN_CHARS, 1, language), language)


def _window(roles: dict[str, str], size: int, most: int, language: Language) -> dict[str, Any]:
    items = []
    for turn_id, role in roles.items():
        text, labels = ("observation", taxonomy.EMOTIONS) if role == SEEKER else ("reasoning", taxonomy.STRATEGIES)
        key = "emotions" if role == SEEKER else "strategies"
        items.append(_object({"id": {"type": "string", "enum": [turn_id]}, text: _text(size, language), key: _labels(labels, most)}))
    turns = {"type": "array", "prefixItems": items, "items": False, "minItems": len(items), "maxItems": len(items)}
    return _object({"turns": turns})


def boundary_schema() -> dict[str, Any]:
    return _object({"is_same_qa": {"type": "integer", "enum": [0, 1]}, "is_same_session": {"type": "integer", "enum": [0, 1]}})


def resolve_schema(max_tokens: int, language: Language) -> dict[str, Any]:
    def build(size: int) -> dict[str, Any]:
        return _object(
            {
                "kind": {"type": "string", "enum": ["dialogue", "narrative"]},
                "role": {"type": "string", "enum": ["counselor", "client", "unknown"]},
                "participant": _text(min(size, PARTICIPANT_CHARS), language, min_chars=0),
            }
        )

    return _fit(build, max_tokens, language)
