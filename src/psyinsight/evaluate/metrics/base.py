"""What every metric shares: a batch to score, a signature, a result.

As in sacrebleu, a number is never reported without the recipe that produced it: each
result carries a ``Signature`` (tokenizer, smoothing, model, layer, library versions),
printed as ``name|key:value|...``. Metrics keep per-segment scores where the metric has
them, so corpus numbers can be re-aggregated or bootstrapped without recomputation.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from psyinsight.data.schema import Language, parse_language
from psyinsight.errors import PsyInsightError

# A speaker marker at the start of a turn: "Therapist:", "Counselor:", "咨询师：", ...
SPEAKER_PREFIX = re.compile(
    r"^\s*(?:therapist|psychotherapist|counsel{1,2}or|supporter|assistant|doctor|"
    r"咨询师|心理咨询师|治疗师|咨询者|心理医生|医生)\s*[:：]\s*",
    re.IGNORECASE,
)


def strip_speaker(text: str) -> str:
    """Remove a leading counselor marker ("Therapist:", "咨询师：") so it is not scored.

    The release kept the marker on both sides, which inflates every overlap metric;
    only a leading marker is removed (repeatedly, for "Therapist: Therapist: ...").
    """
    text = text or ""
    previous = None
    while previous != text:
        previous, text = text, SPEAKER_PREFIX.sub("", text, count=1)
    return text.strip()


def lib_version(name: str) -> str:
    """Installed version of a distribution, or "missing"."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def language_code(language: str) -> Language:
    """The project's language name (en/cn) from en/cn/zh; a PsyInsightError otherwise."""
    try:
        return parse_language(language)
    except ValueError as exc:
        raise PsyInsightError(str(exc), where="language") from None


@dataclass(frozen=True)
class Signature:
    """How a number was computed; ``str()`` gives ``name|key:value|...``."""

    name: str
    fields: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, name: str, **fields: Any) -> Signature:
        return cls(name, tuple((key, str(value)) for key, value in fields.items()))

    def __str__(self) -> str:
        return "|".join([self.name] + [f"{key}:{value}" for key, value in self.fields])

    def as_dict(self) -> dict[str, str]:
        return dict(self.fields)


@dataclass
class ScoringBatch:
    """Hypotheses and references of one language, already stripped of speaker markers."""

    hypotheses: list[str]
    references: list[str]
    language: Language
    parse_ok: list[bool] | None = None

    def __post_init__(self) -> None:
        if len(self.hypotheses) != len(self.references):
            raise PsyInsightError(f"{len(self.hypotheses)} hypotheses but {len(self.references)} references", where="scoring batch")
        self.language = language_code(self.language)

    @classmethod
    def from_pairs(cls, hypotheses: list[str], references: list[str], language: str, *, strip: bool = True) -> ScoringBatch:
        if strip:
            hypotheses = [strip_speaker(h) for h in hypotheses]
            references = [strip_speaker(r) for r in references]
        return cls(list(hypotheses), list(references), language_code(language))

    def __len__(self) -> int:
        return len(self.hypotheses)


@dataclass
class MetricResult:
    """Scores of one metric family on one batch (names such as "BLEU-1" -> value)."""

    family: str
    scores: dict[str, float]
    signature: Signature
    n: int
    segments: dict[str, list[float]] = field(default_factory=dict)
    """Per-example scores of each column that is a mean over examples, in batch order (NaN where
    an example has no value, e.g. a response too short for Distinct-n(mean))."""
    statistics: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Corpus-level columns: ``{"kind", "order", "rows"}``, one row of sufficient statistics per
    example, from which the corpus score of any resample is recomputed (see ``evaluate.bootstrap``)."""

    def as_dict(self) -> dict[str, Any]:
        return {"family": self.family, "n": self.n, "scores": self.scores, "signature": str(self.signature)}


class Metric(ABC):
    """A metric family: scores a ``ScoringBatch`` and says how (``signature``)."""

    family: str = ""

    @abstractmethod
    def signature(self, language: Language) -> Signature:
        """The recipe for this language (tokenizer, model, versions)."""

    @abstractmethod
    def score(self, batch: ScoringBatch) -> MetricResult:
        """Score the batch; an empty batch gives NaN scores, never an exception."""


def mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")
