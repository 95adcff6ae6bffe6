"""Leak-free train/validation/test splits.

Sessions are grouped before splitting: a *group* is a set of sessions that must stay on one
side because they are one case (chained by ``is_same_session``) or share an utterance (the
release repeats utterances across sessions). Groups are then assigned, per language and
psychotherapy stratum, to the split furthest below its target share, counted both in
sessions and in utterances. Groups are visited in seeded random order (only the few very
large ones first): visiting long sessions first would fill train with them and leave test
with the short ones. The result is a
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
from psyinsight.data.schema import Session
from psyinsight.errors import PsyInsightError
from psyinsight.fileio import read_json, write_json

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")


def check_split(value: object, where: str | None = None, *, path: str | Path | None = None, also: Sequence[str] = ()) -> str:
    """``value`` when it names a split (or one of ``also``, such as "all"), else the one error listing the names.

    The recipe, the split file and every ``--split`` option check the name here, so all of
    them accept the same names and say the same thing about a wrong one.
    """
    allowed = (*SPLITS, *also)
    if value not in allowed:
        raise PsyInsightError(f"unknown split {value!r}; choose from {', '.join(allowed)}", path=path, where=where)
    return str(value)


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
        check_split(split)
        return [s for s in sessions if self.split_of.get(s.uid) == split]

    def counts(self) -> dict[str, int]:
        counted = Counter(self.split_of.values())
        return {name: counted.get(name, 0) for name in SPLITS}

    def checksum(self) -> str:
        text = "\n".join(f"{uid}\t{self.split_of[uid]}" for uid in sorted(self.split_of))
        return hashlib.sha256(text.encode()).hexdigest()

    def save(self, path: str | Path, *, balance: dict | None = None) -> Path:
        """Write the assignment; ``balance`` (from ``split_balance``) is stored beside it for readers."""
        return write_json(
            path,
            {
                "format": "psyinsight-splits/1",
                "seed": self.seed,
                "ratios": list(self.ratios),
                "version": self.version,
                "checksum": self.checksum(),
                "counts": self.counts(),
                **({"balance": balance} if balance is not None else {}),
                "split_of": dict(sorted(self.split_of.items())),
                "groups": dict(sorted(self.groups.items())),
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> SplitAssignment:
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("split_of"), dict):
            raise PsyInsightError("not a split file (expected an object with 'split_of')", path=path)
        for name in sorted({str(v) for v in data["split_of"].values()}):
            check_split(name, "split_of", path=path)
        return cls(
            split_of=data["split_of"],
            seed=int(data.get("seed", DEFAULT_SEED)),
            ratios=tuple(data.get("ratios", DEFAULT_RATIOS)),  # type: ignore[arg-type]
            groups=data.get("groups", {}),
            version=str(data.get("version", "")),
        )


def check_ratios(ratios: Sequence[float], option: str = "data.split_ratios") -> tuple[float, float, float]:
    """Three non-negative shares summing to 1, or an error naming ``option``."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise PsyInsightError(f"must be three non-negative numbers summing to 1 (train,validation,test), got {list(ratios)}", where=option)
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


SESSION_TOLERANCE = 0.02
UTTERANCE_TOLERANCE = 0.03
"""How far (as a share) a split may be from its ratio, in sessions and in utterances."""


def _rebalance(placed: dict[str, int], count: dict[str, int], size: dict[str, int], target: Sequence[float]) -> None:
    """Hill-climb the greedy placement: move one group, or swap two, while that brings the
    session and utterance shares (weighed by their tolerances) closer to the ratios.

    Large groups (a case chained over many sessions) can leave the greedy pass a few
    points off; a handful of moves fixes it. Deterministic: ties keep the first candidate.
    """
    total_s = sum(count[g] for g in placed) or 1
    total_u = sum(size[g] for g in placed) or 1
    sess = [0.0, 0.0, 0.0]
    utt = [0.0, 0.0, 0.0]
    for g, c in placed.items():
        sess[c] += count[g]
        utt[c] += size[g]

    def cost(s_: Sequence[float], u_: Sequence[float]) -> float:
        return sum(
            ((s_[i] / total_s - target[i]) / SESSION_TOLERANCE) ** 2 + ((u_[i] / total_u - target[i]) / UTTERANCE_TOLERANCE) ** 2 for i in range(3)
        )

    groups = sorted(placed)
    for _ in range(200):
        best = cost(sess, utt)
        move: tuple[float, list[tuple[str, int]]] | None = None
        for g in groups:
            a = placed[g]
            for b in range(3):
                if b == a or target[b] == 0:
                    continue
                s_, u_ = sess[:], utt[:]
                s_[a] -= count[g]
                u_[a] -= size[g]
                s_[b] += count[g]
                u_[b] += size[g]  # noqa: E702
                c = cost(s_, u_)
                if c < best - 1e-9 and (move is None or c < move[0]):
                    move = (c, [(g, b)])
        if move is None:  # no single move helps: try swapping a pair of groups
            by_split = {i: [g for g in groups if placed[g] == i] for i in range(3)}
            for a in range(3):
                for b in range(a + 1, 3):
                    for g in by_split[a]:
                        for h in by_split[b]:
                            ds, du = count[h] - count[g], size[h] - size[g]
                            if ds == 0 and du == 0:
                                continue
                            s_, u_ = sess[:], utt[:]
                            s_[a] += ds
                            u_[a] += du
                            s_[b] -= ds
                            u_[b] -= du  # noqa: E702
                            c = cost(s_, u_)
                            if c < best - 1e-9 and (move is None or c < move[0]):
                                move = (c, [(g, b), (h, a)])
        if move is None:
            return
        for g, b in move[1]:
            a = placed[g]
            sess[a] -= count[g]
            utt[a] -= size[g]
            sess[b] += count[g]
            utt[b] += size[g]  # noqa: E702
            placed[g] = b


def assign_splits(sessions: Sequence[Session], *, seed: int = DEFAULT_SEED, ratios: Sequence[float] = DEFAULT_RATIOS) -> SplitAssignment:
    """Deterministic grouped, stratified split, balanced in sessions and in utterances."""
    target = check_ratios(ratios)
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
    count = {gid: len(group) for gid, group in members.items()}
    for language in sorted({lang for lang, _ in strata}):
        keys = [k for k in strata if k[0] == language]
        totals = (sum(count[g] for k in keys for g in strata[k]), sum(size[g] for k in keys for g in strata[k]))
        stratum_of = {g: k for k in keys for g in strata[k]}
        stratum_total = {k: sum(count[g] for g in strata[k]) for k in keys}
        # A stratum of a few groups cannot be balanced on its own: weigh it by its size.
        weight = {k: min(1.0, len(strata[k]) / 10) for k in keys}
        order = sorted(stratum_of)
        rng.shuffle(order)
        # Only groups too big to be evened out later go first; the rest keep the seeded order,
        # so a session's length does not decide its side.
        big = max(2.0, 0.01 * totals[1])
        order.sort(key=lambda g: -size[g] if size[g] > big else 0)
        filled = [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]  # sessions, utterances per split, within this language
        local: dict[tuple[str, str], list[float]] = {k: [0.0, 0.0, 0.0] for k in keys}
        placed: dict[str, int] = {}
        for gid in order:
            key = stratum_of[gid]

            def deficit(i: int) -> float:
                if target[i] == 0:
                    return float("-inf")
                sessions_behind = (target[i] * totals[0] - filled[i][0]) / totals[0]
                utterances_behind = (target[i] * totals[1] - filled[i][1]) / totals[1]
                within = (target[i] * stratum_total[key] - local[key][i]) / stratum_total[key]
                return sessions_behind + utterances_behind + weight[key] * within

            choice = max(range(3), key=lambda i: (deficit(i), -i))
            local[key][choice] += count[gid]
            filled[choice][0] += count[gid]
            filled[choice][1] += size[gid]
            placed[gid] = choice
        _rebalance(placed, count, size, target)
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


def split_balance(sessions: Sequence[Session], assignment: SplitAssignment) -> dict:
    """How each split compares: session and utterance shares, mean session length, and the
    two-sample Kolmogorov-Smirnov statistic between train and test session lengths; overall
    and per language."""
    languages = sorted({s.language for s in sessions})
    result = _balance(sessions, assignment)
    if len(languages) > 1:
        result["by_language"] = {lang: _balance([s for s in sessions if s.language == lang], assignment) for lang in languages}
    return result


def _balance(sessions: Sequence[Session], assignment: SplitAssignment) -> dict:
    from scipy.stats import ks_2samp

    lengths: dict[str, list[int]] = {name: [] for name in SPLITS}
    for session in sessions:
        name = assignment.split_of.get(session.uid)
        if name is not None:
            lengths[name].append(len(session.dialog))
    n_sessions = sum(len(v) for v in lengths.values()) or 1
    n_utterances = sum(sum(v) for v in lengths.values()) or 1
    rows = {
        name: {
            "sessions": len(v),
            "utterances": sum(v),
            "session_share": round(len(v) / n_sessions, 4),
            "utterance_share": round(sum(v) / n_utterances, 4),
            "mean_session_length": round(sum(v) / len(v), 3) if v else None,
        }
        for name, v in lengths.items()
    }
    if lengths["train"] and lengths["test"]:
        ks = ks_2samp(lengths["train"], lengths["test"])
        statistic, pvalue = round(float(ks.statistic), 4), round(float(ks.pvalue), 4)
    else:
        statistic = pvalue = float("nan")
    return {"splits": rows, "train_test_ks": {"statistic": statistic, "pvalue": pvalue}}
