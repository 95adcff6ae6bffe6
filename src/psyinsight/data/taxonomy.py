"""Canonical label sets of Psy-Insight and the aliases seen across the two release files.

One place answers "is this a label, and which one?": ``canonical(kind, value)``. The
release spells some labels two ways (en "Cognitive Behaviour Therapy", cn "Cognitive
Behavioral Therapy"); the aliases below map every spelling to one canonical name.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

LabelKind = Literal["emotion", "strategy", "psychotherapy", "topic", "stage"]
LABEL_KINDS: tuple[LabelKind, ...] = ("emotion", "strategy", "psychotherapy", "topic", "stage")

UNKNOWN = "Unknown"
OTHERS = "Others"

EMOTIONS: tuple[str, ...] = (
    "Neutral",
    "Happiness",
    "Anxiety",
    "Anger",
    "Sadness",
    "Depression",
    "Fear",
    "Guilty",
    "Shame",
    "Disgust",
    OTHERS,
    UNKNOWN,
)
"""Client emotion (Seeker turns). Disgust was allowed by the labelling prompt, unused in v7."""

STRATEGIES: tuple[str, ...] = (
    "Question",
    "Reflection of Feelings",
    "Restatement or Paraphrasing",
    "Affirmation and Reassurance",
    "Providing Suggestions",
    "Information",
    "Self-disclosure",
    "Role-play",
    OTHERS,
    UNKNOWN,
)
"""Counselor strategy (Supporter turns)."""

PSYCHOTHERAPIES: tuple[str, ...] = (
    "Cognitive Behavioral Therapy",
    "Solution-Focused Brief Therapy",
    "Psychoanalytic Therapy",
    "Psychodynamic Therapy with Infants and Parents",
    "Client-Centered Therapy",
    "Adlerian Therapy",
    "Family Therapy",
    "Marriage and Family Systems Therapy",
    "Acceptance and Commitment Therapy",
    "Rational Emotive Behavior Therapy",
    "Gestalt Therapy",
    "Reality Therapy",
    "Postmodern Therapy",
    "Existential Therapy",
    "Multicultural Integration Therapy",
    "Feminist Therapy",
    UNKNOWN,
)

TOPICS: tuple[str, ...] = (
    "Ongoing Depression",
    "Partner Relationship Issues",
    "Child-Parent Relationship Issues",
    "Appearance Anxiety",
    "Academic Pressure",
    "Job Crisis",
    "Substance Abuse",
    "School Bullying",
    "Friend Problems",
    "Sleep Problems",
    "Procrastination",
    UNKNOWN,
)

STAGES: tuple[str, ...] = ("1st Session", "Early Session", "Regular Session", "Nth Session", UNKNOWN)
"""Stage categories. Numbered stages ("22nd Session", "6th to 31st Session") keep their
text in the data; ``stage_category`` maps them to "Nth Session"."""

LABELS: dict[LabelKind, tuple[str, ...]] = {
    "emotion": EMOTIONS,
    "strategy": STRATEGIES,
    "psychotherapy": PSYCHOTHERAPIES,
    "topic": TOPICS,
    "stage": STAGES,
}

ALIASES: dict[LabelKind, dict[str, str]] = {
    "emotion": {"Happy": "Happiness", "Sad": "Sadness", "Guilt": "Guilty", "Other": OTHERS, "Angry": "Anger"},
    "strategy": {
        "Questions": "Question",
        "Reflection of feelings": "Reflection of Feelings",
        "Restatement": "Restatement or Paraphrasing",
        "Paraphrasing": "Restatement or Paraphrasing",
        "Affirmation": "Affirmation and Reassurance",
        "Suggestions": "Providing Suggestions",
        "Self-Disclosure": "Self-disclosure",
        "Role-Play": "Role-play",
        "Roleplay": "Role-play",
        "Other": OTHERS,
    },
    "psychotherapy": {
        "Cognitive Behaviour Therapy": "Cognitive Behavioral Therapy",
        "Cognitive Behavior Therapy": "Cognitive Behavioral Therapy",
        "CBT": "Cognitive Behavioral Therapy",
        "SFBT": "Solution-Focused Brief Therapy",
        "Solution Focused Brief Therapy": "Solution-Focused Brief Therapy",
        "Person-Centered Therapy": "Client-Centered Therapy",
        "Acceptance Commitment Therapy": "Acceptance and Commitment Therapy",
        "ACT": "Acceptance and Commitment Therapy",
        "REBT": "Rational Emotive Behavior Therapy",
        "Rational Emotive Behaviour Therapy": "Rational Emotive Behavior Therapy",
        "Psychoanalysis": "Psychoanalytic Therapy",
    },
    "topic": {
        "Partner Relationship": "Partner Relationship Issues",
        "Child-Parent Relationship": "Child-Parent Relationship Issues",
        "Depression": "Ongoing Depression",
    },
    "stage": {"First Session": "1st Session", "Unknown Session": UNKNOWN},
}

_NUMBERED_STAGE = re.compile(r"^\d+(st|nd|rd|th)( to \d+(st|nd|rd|th))? Session$")


def _key(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text).strip().casefold()


_LOOKUP: dict[LabelKind, dict[str, str]] = {
    kind: {**{_key(a): c for a, c in ALIASES[kind].items()}, **{_key(c): c for c in LABELS[kind]}} for kind in LABEL_KINDS
}


@lru_cache(maxsize=4096)
def canonical(kind: LabelKind, value: str) -> str | None:
    """The canonical spelling of ``value`` for ``kind``, or None if it is not a known label.

    Empty strings and "N/A" mean Unknown. Numbered stages are kept as written.
    """
    if kind not in _LOOKUP:
        raise ValueError(f"unknown label kind {kind!r}; choose from {', '.join(LABEL_KINDS)}")
    text = value.strip()
    if text == "" or text.upper() in {"N/A", "NA", "NONE", "NULL"}:
        return UNKNOWN
    if kind == "stage" and _NUMBERED_STAGE.match(text):
        return "1st Session" if text == "1st Session" else text
    return _LOOKUP[kind].get(_key(text))


def is_alias(kind: LabelKind, value: str) -> bool:
    """True when ``value`` is a known label spelled other than canonically."""
    found = canonical(kind, value)
    return found is not None and found != value


def stage_category(stage: str) -> str:
    """Collapse a stage to one of ``STAGES`` (numbered sessions become "Nth Session")."""
    found = canonical("stage", stage) or UNKNOWN
    if found in STAGES:
        return found
    return "Nth Session"
