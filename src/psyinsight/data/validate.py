"""Strict checks of a release-format file, each finding with its exact place.

Four kinds of finding (``findings.Severity``): ``error`` (unusable: broken structure, a
label outside the taxonomy), ``defect`` (a known defect, one per repair the normaliser would
make, named by its rule), ``suspect`` (the consistency checks of ``consistency.py``: several
quoted utterances in one turn, a question tagged as the other role's) and ``note`` (true of the data but not wrong: a session that opens
with the counselor, a missing annotation, an utterance repeated in another session).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psyinsight.data import consistency, taxonomy
from psyinsight.data.findings import Finding
from psyinsight.data.release import guess_language, read_release_file, schema_findings, structure_findings
from psyinsight.data.repair import RULE_DESCRIPTIONS, participant_variants, repair_session
from psyinsight.data.splits import MIN_SHARED_CHARS, utterance_key

NOTE_DESCRIPTIONS: dict[str, str] = {
    "counselor_first": "the session opens with the counselor",
    "same_speaker_run": "two consecutive turns by the same speaker",
    "missing_annotation": "a client turn without observation or a counselor turn without reasoning",
    "cross_session_utterance": f"an utterance ({MIN_SHARED_CHARS}+ characters) that also appears in another session",
}
ERROR_DESCRIPTIONS: dict[str, str] = {
    "structure": "the file or a session/turn does not have the release's shape",
    "unknown_label": "a label outside the taxonomy",
}


@dataclass
class Report:
    """All findings for one or more files, with per-rule counts."""

    findings: list[Finding] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def by_rule(self) -> dict[tuple[str, str], int]:
        return dict(sorted(Counter((f.severity, f.rule) for f in self.findings).items()))

    @property
    def problems(self) -> list[Finding]:
        """Errors and defects: what makes ``validate`` exit 1."""
        return [f for f in self.findings if f.severity in ("error", "defect")]

    @property
    def suspects(self) -> list[Finding]:
        """Consistency findings: always listed, for a person to look at (they do not change the exit status)."""
        return [f for f in self.findings if f.severity == "suspect"]

    @property
    def clean(self) -> bool:
        return not self.problems


def describe(rule: str) -> str:
    return RULE_DESCRIPTIONS.get(rule) or NOTE_DESCRIPTIONS.get(rule) or ERROR_DESCRIPTIONS.get(rule) or consistency.DESCRIPTIONS.get(rule, "")


def _label_findings(file: str, session: dict[str, Any]) -> Iterable[Finding]:
    dialog_id = str(session.get("dialog_id"))
    for field_name, kind in (("psychotherapy", "psychotherapy"), ("topic", "topic"), ("stage", "stage")):
        value = session.get(field_name)
        if isinstance(value, str) and value.strip() and taxonomy.canonical(kind, value) is None:
            yield Finding("unknown_label", "error", file, f"{field_name} {value!r} is not a known {kind}", dialog_id, field=field_name)
    for index, turn in enumerate(session["dialog"]):
        for key, kind in (("emotional label", "emotion"), ("strategy", "strategy")):
            labels = turn.get(key)
            if not isinstance(labels, list):
                continue
            for label in labels:
                if not isinstance(label, str) or taxonomy.canonical(kind, label) is None:
                    ref = str(turn.get("id") or f"#{index}")
                    yield Finding("unknown_label", "error", file, f"{label!r} is not a known {kind}", dialog_id, ref, key)


def _note_findings(file: str, sessions: Sequence[dict[str, Any]]) -> Iterable[Finding]:
    owners: dict[str, set[str]] = defaultdict(set)
    for session in sessions:
        for turn in session["dialog"]:
            key = utterance_key(turn["content"])
            if len(key) >= MIN_SHARED_CHARS:
                owners[key].add(str(session.get("dialog_id")))
    for session in sessions:
        dialog_id = str(session.get("dialog_id"))
        dialog = session["dialog"]
        if dialog and dialog[0].get("speaker") == "Supporter":
            yield Finding("counselor_first", "note", file, describe("counselor_first"), dialog_id, str(dialog[0].get("id")))
        for index, turn in enumerate(dialog):
            ref = str(turn.get("id") or f"#{index}")
            if index and dialog[index - 1].get("speaker") == turn.get("speaker"):
                yield Finding("same_speaker_run", "note", file, f"follows another {turn.get('speaker')} turn", dialog_id, ref)
            needed = "observation" if turn.get("speaker") == "Seeker" else "reasoning"
            if not str(turn.get(needed) or "").strip():
                yield Finding("missing_annotation", "note", file, f"no {needed}", dialog_id, ref, needed)
            others = owners.get(utterance_key(turn["content"]), set()) - {dialog_id}
            if others:
                yield Finding(
                    "cross_session_utterance", "note", file, f"also in dialog_id {', '.join(sorted(others)[:3])}", dialog_id, ref, "content"
                )


def validate_data(data: Any, path: str | Path) -> list[Finding]:
    """Findings for parsed data from ``path`` (the path only names the place)."""
    file = str(path)
    structure = structure_findings(data, path)
    if not isinstance(data, list):
        return structure
    # Report every broken session, and keep checking the others: one bad session must not
    # hide the rest of the file.
    usable = [s for s in data if not structure_findings([s], path)]
    structure += schema_findings(usable, guess_language(path, usable), path)
    broken = {f.dialog_id for f in structure}
    usable = [s for i, s in enumerate(usable) if str(s.get("dialog_id", f"#{i}")) not in broken]
    found: list[Finding] = list(structure)
    names = participant_variants(usable)
    for session in usable:
        dialog_id = str(session.get("dialog_id"))
        found += _label_findings(file, session)
        found += consistency.turn_findings(file, session)
        _, log = repair_session(session, names)
        for repair in log:
            message = describe(repair.rule) + (f" ({repair.detail})" if repair.detail else "")
            found.append(Finding(repair.rule, "defect", file, message, dialog_id, repair.turn, repair.field))
    found += _note_findings(file, usable)
    return found


def validate_files(paths: Iterable[str | Path]) -> Report:
    """Validate each file; unreadable input raises ``PsyInsightError``."""
    report = Report()
    for path in paths:
        report.files.append(str(path))
        report.findings += validate_data(read_release_file(path), path)
    return report
