"""What raters see: items built from predictions files, and the blinding of A/B pairs.

Single mode rates one model's responses; A/B mode pairs two predictions files by Example
id. The pair is blind: model names never reach the page, and which model sits on side A is
drawn per item *and per rater* from a recorded seed, so position bias averages out and any
rating can be traced back to the model it was about. The item order is shuffled per rater
from the same seed. Draws hash the seed with the rater and item ids (SHA-256), so they are
reproducible across runs and Python versions.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psyinsight.errors import PsyInsightError
from psyinsight.records import Example, Prediction, load_examples, load_predictions

SIDES = ("A", "B")


@dataclass(frozen=True)
class Candidate:
    """One model response as a rater sees it (``system`` is never shown)."""

    system: str
    response: str
    observation: str | None = None
    reasoning: str | None = None


@dataclass(frozen=True)
class RatingItem:
    """One thing to rate: a dialogue context and one (single) or two (A/B) responses.

    ``candidates`` are in file order (first predictions file first); the rater's sides
    come from ``blind_sides``.
    """

    id: str
    candidates: tuple[Candidate, ...]
    context: tuple[dict[str, str], ...] = ()
    reference: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return "single" if len(self.candidates) == 1 else "ab"


@dataclass(frozen=True)
class ItemSet:
    """Items plus what was left out while pairing, so the app can say so."""

    items: list[RatingItem]
    systems: tuple[str, ...]
    unpaired: dict[str, int] = field(default_factory=dict)
    """System name -> number of its predictions with no partner in the other file."""

    @property
    def mode(self) -> str:
        return "single" if len(self.systems) == 1 else "ab"

    @property
    def study(self) -> str:
        """A default study name: the system names, so one database can hold several studies."""
        return " vs ".join(self.systems)


def _read_predictions(path: Path) -> dict[str, Prediction]:
    out: dict[str, Prediction] = {}
    for index, pred in enumerate(load_predictions(path), start=1):
        if pred.id in out:
            raise PsyInsightError(f"duplicate prediction id {pred.id!r}; ids must be unique within a file", path=path, where=f"record {index}")
        out[pred.id] = pred
    return out


def _read_examples(path: Path) -> dict[str, Example]:
    return {ex.id: ex for ex in load_examples(path, allow_empty=True)}


def _context_of(pred: Prediction, examples: dict[str, Example]) -> tuple[dict[str, str], ...]:
    """The prompt the model answered (system instruction left out), else a context in meta."""
    if pred.id in examples:
        return tuple({"role": m.role, "content": m.content} for m in examples[pred.id].messages if m.role != "system")
    raw = pred.meta.get("context") or pred.meta.get("messages") or ()
    if isinstance(raw, str):
        return ({"role": "user", "content": raw},)
    msgs = []
    for m in raw:
        if isinstance(m, dict) and "content" in m and m.get("role") != "system":
            msgs.append({"role": str(m.get("role", "user")), "content": str(m["content"])})
    return tuple(msgs)


def _candidate(system: str, pred: Prediction) -> Candidate:
    # A failed parse keeps the raw text: the rater judges what the model actually wrote.
    response = pred.response.strip() or pred.text.strip()
    return Candidate(system=system, response=response, observation=pred.observation or None, reasoning=pred.reasoning or None)


def system_names(paths: list[Path], names: list[str] | None) -> tuple[str, ...]:
    """Names for the systems: given, else the file stems (parent folder added if they clash)."""
    if names:
        if len(names) != len(paths):
            raise PsyInsightError(f"got {len(names)} names for {len(paths)} predictions files; give one name per file", where="--names")
        chosen = [n.strip() for n in names]
    else:
        chosen = [p.stem for p in paths]
        if len(set(chosen)) < len(chosen):
            chosen = [f"{p.parent.name}/{p.stem}" for p in paths]
    if any(not n for n in chosen):
        raise PsyInsightError("system names must not be empty", where="--names")
    if len(set(chosen)) < len(chosen):
        raise PsyInsightError(f"the two systems have the same name {chosen[0]!r}; pass distinct names with --names", where="--names")
    return tuple(chosen)


def load_items(predictions: list[str | Path], *, examples: str | Path | None = None, names: list[str] | None = None) -> ItemSet:
    """Rating items from one predictions file (single mode) or two (A/B, paired by id).

    Ids present in only one of two files are left out and counted in ``unpaired``.
    """
    paths = [Path(p) for p in predictions]
    if len(paths) not in (1, 2):
        raise PsyInsightError(f"give one predictions file (single rating) or two (A/B rating), got {len(paths)}")
    systems = system_names(paths, names)
    preds = [_read_predictions(p) for p in paths]
    ex = _read_examples(Path(examples)) if examples else {}
    first = preds[0]
    ids = [i for i in first if all(i in other for other in preds[1:])]
    unpaired: dict[str, int] = {}
    if len(preds) == 2:
        for name, table in zip(systems, preds):
            left = sum(1 for i in table if i not in ids)
            if left:
                unpaired[name] = left
        if not ids:
            raise PsyInsightError(
                f"no prediction id is in both files ({paths[0]} and {paths[1]}); A/B rating pairs predictions "
                "of the same Example id, so generate both from the same examples file"
            )
    items = []
    for item_id in ids:
        lead = first[item_id]
        items.append(
            RatingItem(
                id=item_id,
                candidates=tuple(_candidate(s, t[item_id]) for s, t in zip(systems, preds)),
                context=_context_of(lead, ex),
                reference=lead.reference,
                meta=dict(lead.meta),
            )
        )
    return ItemSet(items=items, systems=systems, unpaired=unpaired)


def _draw(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def rater_order(item_ids: list[str], rater: str, seed: int) -> list[str]:
    """The item order this rater sees: a shuffle drawn from (seed, rater)."""
    order = list(item_ids)
    random.Random(_draw(seed, "order", rater)).shuffle(order)
    return order


def blind_sides(item: RatingItem, rater: str, seed: int) -> tuple[Candidate, ...]:
    """The candidates in the order this rater sees them: index 0 is side A.

    In A/B mode a fair coin drawn from (seed, rater, item) decides whether the first file's
    response sits on side A or B.
    """
    if len(item.candidates) == 1:
        return item.candidates
    if _draw(seed, "side", rater, item.id) % 2:
        return tuple(reversed(item.candidates))
    return item.candidates
