"""Leak-free train/validation/test splits.

Sessions are grouped before splitting: a *group* is a set of sessions that must stay on one
side because they are one case (chained by ``is_same_session``) or share an utterance (the
release repeats utterances across sessions). Groups are then assigned, per language and
psychotherapy stratum, to the split furthest below its target share. The result is a
``SplitAssignment`` (session uid -> split) written to JSON for reuse.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from psyinsight import __version__
from psyinsight.errors import PsyInsightError
from psyinsight.fileio import read_json, write_json
from psyinsight.schema import Session

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")
DEFAULT_SEED = 13
DEFAULT_RATIOS = (0.8, 0.1, 0.1)

MIN_SHARED_CHARS = 16
"""Utterances shorter than this ("Yes.", "嗯。") are common speech, not copied text: they do
not tie sessions together. Longer ones, compared after normalising case, spaces and
punctuation, do."""

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def utterance_key(text: str) -> str:
    """The form under which two utterances count as the same text."""
    return _NOT_WORD.sub("", text).casefold()


class _UnionFind:
    def __init__(self, items: Iterable[str]):
        self.parent = {item: item for item in items}

    def find(self, item: str) -> str:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def case_groups(sessions: Sequence[Session]) -> dict[str, str]:
    """Session uid -> group id; sessions of one case, or sharing an utterance, share a group.

    ``is_same_session == 1`` links a session to the one before it in its file (the release's
    order). Shared utterances are those of ``MIN_SHARED_CHARS`` or more, after normalising.
    """
    uf = _UnionFind(s.uid for s in sessions)
    previous: dict[str, Session] = {}
    owner: dict[str, str] = {}
    for session in sessions:
        before = previous.get(session.language)
        if before is not None and session.is_same_session == 1:
            uf.union(before.uid, session.uid)
        previous[session.language] = session
        for turn in session.dialog:
            key = utterance_key(turn.content)
            if len(key) < MIN_SHARED_CHARS:
                continue
            key = f"{session.language}:{key}"
            if key in owner:
                uf.union(owner[key], session.uid)
            else:
                owner[key] = session.uid
    return {s.uid: uf.find(s.uid) for s in sessions}


@dataclass
class SplitAssignment:
    """Which split each session belongs to, and how the assignment was made."""

    split_of: dict[str, Split]
    seed: int = DEFAULT_SEED
    ratios: tuple[float, float, float] = DEFAULT_RATIOS
    groups: dict[str, str] = field(default_factory=dict)
    version: str = __version__

    def select(self, sessions: Iterable[Session], split: Split) -> list[Session]:
        if split not in SPLITS:
            raise PsyInsightError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        return [s for s in sessions if self.split_of.get(s.uid) == split]

    def counts(self) -> dict[str, int]:
        counted = Counter(self.split_of.values())
        return {name: counted.get(name, 0) for name in SPLITS}

    def checksum(self) -> str:
        text = "\n".join(f"{uid}\t{self.split_of[uid]}" for uid in sorted(self.split_of))
        return hashlib.sha256(text.encode()).hexdigest()

    def save(self, path: str | Path) -> Path:
        return write_json(
            path,
            {
                "format": "psyinsight-splits/1",
                "seed": self.seed,
                "ratios": list(self.ratios),
                "version": self.version,
                "checksum": self.checksum(),
                "counts": self.counts(),
                "split_of": dict(sorted(self.split_of.items())),
                "groups": dict(sorted(self.groups.items())),
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> SplitAssignment:
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("split_of"), dict):
            raise PsyInsightError("not a split file (expected an object with 'split_of')", path=path)
        bad = {v for v in data["split_of"].values() if v not in SPLITS}
        if bad:
            raise PsyInsightError(f"unknown split name(s) {sorted(bad)}; expected {', '.join(SPLITS)}", path=path, where="split_of")
        return cls(
            split_of=data["split_of"],
            seed=int(data.get("seed", DEFAULT_SEED)),
            ratios=tuple(data.get("ratios", DEFAULT_RATIOS)),  # type: ignore[arg-type]
            groups=data.get("groups", {}),
            version=str(data.get("version", "")),
        )


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise PsyInsightError(f"split ratios must be three non-negative numbers summing to 1, got {list(ratios)}", where="ratios")
    return (float(ratios[0]), float(ratios[1]), float(ratios[2]))


def _fill_empty_splits(placed: dict[str, int], size: dict[str, int], target: Sequence[float]) -> None:
    """On small data, give every wanted split at least one group: move the smallest group
    of the fullest split into each split that wants data but got none."""
    for empty in (i for i in range(3) if target[i] > 0):
        if any(choice == empty for choice in placed.values()):
            continue
        per_split = Counter(placed.values())
        donors = [i for i in range(3) if per_split[i] > 1]
        if not donors:
            return
        donor = max(donors, key=lambda i: sum(size[g] for g, c in placed.items() if c == i))
        smallest = min((g for g, c in placed.items() if c == donor), key=lambda g: (size[g], g))
        placed[smallest] = empty


def assign_splits(
    sessions: Sequence[Session], *, seed: int = DEFAULT_SEED, ratios: Sequence[float] = DEFAULT_RATIOS
) -> SplitAssignment:
    """Deterministic grouped, stratified split (sizes measured in utterances)."""
    target = _check_ratios(ratios)
    if not sessions:
        raise PsyInsightError("no sessions to split")
    groups = case_groups(sessions)
    members: dict[str, list[Session]] = defaultdict(list)
    for session in sessions:
        members[groups[session.uid]].append(session)

    # Stratum of a group: its language and its most common psychotherapy.
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    for gid, group in members.items():
        therapy = Counter(s.psychotherapy for s in group).most_common(1)[0][0]
        strata[(group[0].language, therapy)].append(gid)

    rng = random.Random(seed)
    split_of: dict[str, Split] = {}
    size = {gid: sum(len(s.dialog) for s in group) or 1 for gid, group in members.items()}
    for language in sorted({lang for lang, _ in strata}):
        keys = [k for k in strata if k[0] == language]
        language_total = sum(size[g] for k in keys for g in strata[k])
        stratum_of = {g: k for k in keys for g in strata[k]}
        stratum_total = {k: sum(size[g] for g in strata[k]) for k in keys}
        # A stratum of a few groups cannot be balanced on its own: weigh it by its size.
        weight = {k: min(1.0, len(strata[k]) / 10) for k in keys}
        order = sorted(stratum_of)
        rng.shuffle(order)
        order.sort(key=lambda g: -size[g])  # stable: big groups first, ties in seeded order
        filled = [0.0, 0.0, 0.0]  # utterances per split, within this language
        local: dict[tuple[str, str], list[float]] = {k: [0.0, 0.0, 0.0] for k in keys}
        placed: dict[str, int] = {}
        for gid in order:
            key = stratum_of[gid]

            def deficit(i: int) -> float:
                if target[i] == 0:
                    return float("-inf")
                overall = (target[i] * language_total - filled[i]) / language_total
                within = (target[i] * stratum_total[key] - local[key][i]) / stratum_total[key]
                return overall + weight[key] * within

            choice = max(range(3), key=lambda i: (deficit(i), -i))
            local[key][choice] += size[gid]
            filled[choice] += size[gid]
            placed[gid] = choice
        _fill_empty_splits(placed, size, target)
        for gid, choice in placed.items():
            for session in members[gid]:
                split_of[session.uid] = SPLITS[choice]
    return SplitAssignment(split_of=split_of, seed=seed, ratios=target, groups=groups)


def leaks(sessions: Sequence[Session], assignment: SplitAssignment, a: Split = "train", b: Split = "test") -> list[str]:
    """Utterances (normalised, ``MIN_SHARED_CHARS``+) found in both splits: should be empty."""
    seen: set[str] = set()
    for session in assignment.select(sessions, a):
        seen.update(f"{session.language}:{utterance_key(t.content)}" for t in session.dialog)
    shared = []
    for session in assignment.select(sessions, b):
        for turn in session.dialog:
            key = f"{session.language}:{utterance_key(turn.content)}"
            if len(key.split(":", 1)[1]) >= MIN_SHARED_CHARS and key in seen:
                shared.append(turn.content)
    return shared
