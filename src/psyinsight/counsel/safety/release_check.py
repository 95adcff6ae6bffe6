"""How often the guard flags real counseling talk: every client (Seeker) turn of the release.

Why: the hand-written test sets are small and their hard negatives were written to be hard;
the release is ~6k ordinary client utterances (anxiety, grief, conflict, shame, and some
sessions that really do discuss suicide). Its flag rate is the realistic measure of how
often a counseling chatbot would answer ordinary distress with a crisis hotline.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from psyinsight.counsel.safety.guard import SafetyGuard, SafetyResult


@dataclass
class ReleaseFlags:
    """Flag counts over client turns, per language, with the flagged turns themselves."""

    turns: Counter[str] = field(default_factory=Counter)
    flagged: Counter[str] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def rate(self, language: str | None = None) -> float:
        n = self.turns[language] if language else sum(self.turns.values())
        k = self.flagged[language] if language else sum(self.flagged.values())
        return k / n if n else float("nan")


def client_turns(sessions: list[Any]) -> list[tuple[str, str, str]]:
    """(session uid, turn id, text) for every non-empty client turn."""
    out = []
    for s in sessions:
        for i, t in enumerate(s.dialog):
            if t.is_client and t.content.strip():
                out.append((s.uid, t.id or f"#{i}", t.content))
    return out


def flag_release(guard: SafetyGuard, sessions: list[Any]) -> ReleaseFlags:
    """Run ``guard.check_texts`` on every client turn of ``sessions`` (each turn on its own)."""
    turns = client_turns(sessions)
    results: list[SafetyResult] = guard.check_texts([t for _, _, t in turns])
    report = ReleaseFlags()
    for (uid, tid, text), res in zip(turns, results):
        lang = uid.split("-", 1)[0]
        report.turns[lang] += 1
        if res.risk:
            report.flagged[lang] += 1
            report.by_source[res.source or "?"] += 1
            report.rows.append(
                {
                    "uid": uid,
                    "turn": tid,
                    "category": res.category,
                    "source": res.source,
                    "score": round(res.score, 3),
                    "matches": res.matches,
                    "text": text,
                }
            )
    return report
