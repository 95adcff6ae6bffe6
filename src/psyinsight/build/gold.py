"""Scoring rule-based segmentation against gold turns (the bundled raw samples carry gold).

A gold file ``NAME.gold.json`` sits next to ``NAME.txt``/``NAME.md``: ``turns`` lists each
gold turn's ``role``, ``participant`` and ``quote`` (the first words of its content, found
in the source in order, which gives the gold boundary offset); ``entities`` lists the
strings anonymisation must remove.

Boundaries: a predicted turn boundary (its first content character) is correct when it
equals a gold boundary. Roles: a predicted turn counts for role precision/recall when its
boundary is correct and its role matches.

Pieces the rules marked unsure are left out of the score (the predicted turns they became
and the gold turns that start inside them) and reported with their location instead: that
is what a rules-only build hands on to a person or the LLM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from psyinsight.build.records import Turn
from psyinsight.errors import PsyInsightError
from psyinsight.fileio import read_json


@dataclass
class GoldTurn:
    start: int
    role: str
    participant: str


def gold_path(source: Path) -> Path:
    return source.with_name(source.stem + ".gold.json")


def load_gold(source: Path, text: str) -> tuple[list[GoldTurn], list[dict[str, str]]]:
    """Gold turns (with offsets into ``text``) and gold entities for one raw file."""
    path = gold_path(source)
    data = read_json(path)
    turns: list[GoldTurn] = []
    pos = 0
    for i, row in enumerate(data.get("turns", [])):
        at = text.find(row["quote"], pos)
        if at < 0:
            raise PsyInsightError(f"quote {row['quote']!r} not found after offset {pos}", path=path, where=f"turns[{i}]")
        turns.append(GoldTurn(at, row["role"], row.get("participant", "")))
        pos = at + len(row["quote"])
    return turns, list(data.get("entities", []))


@dataclass
class Score:
    gold: int = 0
    predicted: int = 0
    boundary_hits: int = 0
    role_hits: int = 0
    participant_hits: int = 0

    def add(self, other: Score) -> None:
        for name in ("gold", "predicted", "boundary_hits", "role_hits", "participant_hits"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        def ratio(a: int, b: int) -> float:
            return round(a / b, 4) if b else 0.0

        return {
            **asdict(self),
            "boundary_precision": ratio(self.boundary_hits, self.predicted),
            "boundary_recall": ratio(self.boundary_hits, self.gold),
            "role_precision": ratio(self.role_hits, self.predicted),
            "role_recall": ratio(self.role_hits, self.gold),
            "participant_accuracy": ratio(self.participant_hits, self.boundary_hits),
        }


def score_turns(predicted: list[Turn], gold: list[GoldTurn], unsure: list[tuple[int, int]] = ()) -> Score:
    """Boundary and role hits; turns inside the ``unsure`` source spans are excluded on both sides."""

    def excluded(start: int) -> bool:
        return any(s <= start < e for s, e in unsure)

    gold = [g for g in gold if not excluded(g.start)]
    predicted = [t for t in predicted if not t.unsure and not excluded(t.start)]
    by_start = {g.start: g for g in gold}
    score = Score(gold=len(gold), predicted=len(predicted))
    for turn in predicted:
        match = by_start.get(turn.start)
        if match is None:
            continue
        score.boundary_hits += 1
        score.role_hits += turn.role == match.role
        score.participant_hits += turn.participant == match.participant
    return score
