"""The paper's statistics table and the label distributions, per language.

``release_statistics`` counts sessions and turns as the files hold them (the paper's
table counts the release as published, duplicates included); pass repaired sessions to
count after repair. Output: Markdown, CSV and matplotlib figures (PNG).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from psyinsight.data.schema import LANGUAGES, Session
from psyinsight.fileio import write_bytes, write_text

LABEL_FIELDS = ("emotion", "strategy", "psychotherapy", "topic", "stage")


@dataclass(frozen=True)
class LanguageStats:
    language: str
    sessions: int
    utterances: int
    counselor_turns: int
    client_turns: int
    utterances_per_session: float
    tokens_per_utterance: float
    turn_reasoning: int
    turn_observation: int
    session_background: int
    session_reasoning: int
    session_summary: int
    session_guide: int


def _filled(text: str | None) -> bool:
    return bool(text and text.strip())


def _length(text: str, language: str) -> int:
    """Words for English, characters (without spaces) for Chinese."""
    return len(text.split()) if language == "en" else len("".join(text.split()))


def language_stats(sessions: Sequence[Session], language: str) -> LanguageStats:
    chosen = [s for s in sessions if s.language == language]
    turns = [t for s in chosen for t in s.dialog]
    return LanguageStats(
        language=language,
        sessions=len(chosen),
        utterances=len(turns),
        counselor_turns=sum(t.is_counselor for t in turns),
        client_turns=sum(t.is_client for t in turns),
        utterances_per_session=round(len(turns) / len(chosen), 2) if chosen else 0.0,
        tokens_per_utterance=round(sum(_length(t.content, language) for t in turns) / len(turns), 2) if turns else 0.0,
        turn_reasoning=sum(t.is_counselor and _filled(t.reasoning) for t in turns),
        turn_observation=sum(t.is_client and _filled(t.observation) for t in turns),
        session_background=sum(_filled(s.background) for s in chosen),
        session_reasoning=sum(_filled(s.reasoning) for s in chosen),
        session_summary=sum(_filled(s.summary) for s in chosen),
        session_guide=sum(_filled(s.guide) for s in chosen),
    )


def label_distribution(sessions: Sequence[Session], language: str, kind: str) -> Counter[str]:
    chosen = [s for s in sessions if s.language == language]
    counts: Counter[str] = Counter()
    if kind == "emotion":
        counts.update(label for s in chosen for t in s.dialog if t.is_client for label in (t.emotions or []))
    elif kind == "strategy":
        counts.update(label for s in chosen for t in s.dialog if t.is_counselor for label in (t.strategies or []))
    elif kind in ("psychotherapy", "topic", "stage"):
        counts.update(getattr(s, kind) or "(empty)" for s in chosen)
    else:
        raise ValueError(f"unknown label field {kind!r}")
    return counts


@dataclass
class StatsReport:
    table: list[LanguageStats]
    labels: dict[str, dict[str, Counter[str]]]  # language -> kind -> counts

    def markdown(self, title: str = "Psy-Insight statistics") -> str:
        rows = [asdict(r) for r in self.table]
        keys = list(rows[0]) if rows else []
        lines = [f"# {title}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(f"{r[k]:,}" if isinstance(r[k], int) else str(r[k]) for k in keys) + " |" for r in rows]
        for language, kinds in self.labels.items():
            for kind, counts in kinds.items():
                lines += ["", f"## {language}: {kind}", "", "| label | count |", "|---|---|"]
                lines += [f"| {label} | {n:,} |" for label, n in counts.most_common()]
        return "\n".join(lines) + "\n"

    def table_csv(self) -> str:
        buffer = io.StringIO()
        rows = [asdict(r) for r in self.table]
        if rows:
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return buffer.getvalue()

    def labels_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["language", "field", "label", "count"])
        for language, kinds in self.labels.items():
            for kind, counts in kinds.items():
                writer.writerows([language, kind, label, n] for label, n in counts.most_common())
        return buffer.getvalue()


def compute_stats(sessions: Sequence[Session]) -> StatsReport:
    languages = [lang for lang in LANGUAGES if any(s.language == lang for s in sessions)]
    return StatsReport(
        table=[language_stats(sessions, lang) for lang in languages],
        labels={lang: {kind: label_distribution(sessions, lang, kind) for kind in LABEL_FIELDS} for lang in languages},
    )


def write_figures(report: StatsReport, out_dir: str | Path) -> list[Path]:
    """One bar chart per language and label field (PNG), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for language, kinds in report.labels.items():
        for kind, counts in kinds.items():
            if not counts:
                continue
            items = counts.most_common(20)
            fig, ax = plt.subplots(figsize=(8, 0.35 * len(items) + 1.2))
            ax.barh([label for label, _ in reversed(items)], [n for _, n in reversed(items)], color="#4a7ab0")
            ax.set_title(f"{language}: {kind} ({sum(counts.values()):,})")
            ax.set_xlabel("count")
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=100)
            plt.close(fig)
            written.append(write_bytes(Path(out_dir) / f"{language}_{kind}.png", buffer.getvalue()))
    return written


def write_stats(report: StatsReport, out_dir: str | Path, *, figures: bool = True) -> list[Path]:
    out = Path(out_dir)
    paths = [
        write_text(out / "stats.md", report.markdown()),
        write_text(out / "stats.csv", report.table_csv()),
        write_text(out / "labels.csv", report.labels_csv()),
    ]
    if figures:
        paths += write_figures(report, out / "figures")
    return paths
