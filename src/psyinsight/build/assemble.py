"""Step 6: annotated units to release-format sessions, checked by the dataset validator.

Sessions follow the release (spec.md section 1) with two additions the schema keeps as
extra keys: ``provenance`` on each session (source file, its sha256, unit index, character
spans of the dialogue and of the narrative before/after) and on each turn (source spans of
the spoken text and of the notes cut out), and ``build_failures`` listing the annotation
tasks that failed for that session (details in ``failures.jsonl``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from psyinsight.build.records import Unit
from psyinsight.data.schema import SEEKER, Language, Session

OUTPUT_FILES: dict[Language, str] = {"en": "en_data.json", "cn": "cn_data.json"}


def session_dict(unit: Unit, annotation: dict[str, Any], dialog_id: str, sha256: str) -> dict[str, Any]:
    """One session in the release's JSON shape (field names as in the files)."""
    fields = annotation["session"]
    dialog = []
    for i, (turn, extra) in enumerate(zip(unit.turns, annotation["turns"])):
        row: dict[str, Any] = {"speaker": turn.role, "participant": turn.participant, "content": turn.content, "id": f"{unit.index}-{i}"}
        if turn.role == SEEKER:
            if extra.get("observation"):
                row["observation"] = extra["observation"]
            row["emotional label"] = extra["emotions"]
        else:
            if extra.get("reasoning"):
                row["reasoning"] = extra["reasoning"]
            row["strategy"] = extra["strategies"]
        if turn.notes:
            if unit.language == "en":
                row["reference_labels"] = [n.text for n in turn.notes]
            else:
                row["labels"] = [{"label": n.text, "index": n.index, "type": "dialogue_act"} for n in turn.notes]
        row["provenance"] = {"spans": [list(s) for s in turn.spans], "notes": [[n.start, n.end] for n in turn.notes]}
        dialog.append(row)
    return {
        "dialog_id": dialog_id,
        "theme": "",
        "psychotherapy": fields["psychotherapy"],
        "topic": fields["topic"],
        "stage": fields["stage"],
        "guide": fields["guide"],
        "is_same_qa": fields["is_same_qa"],
        "is_same_session": fields["is_same_session"],
        "background": fields["background"],
        "reasoning": fields["reasoning"],
        "summary": fields["summary"],
        "dialog": dialog,
        "provenance": {
            "file": unit.doc_id,
            "sha256": sha256,
            "unit": unit.index,
            "span": [unit.turns[0].start, unit.turns[-1].end],
            "before": list(unit.before_span) if unit.before_span else None,
            "after": list(unit.after_span) if unit.after_span else None,
        },
        "build_failures": sorted({f["task"] for f in annotation["failures"]}),
    }


def assemble(units: list[Unit], annotations: dict[str, dict[str, Any]], hashes: dict[str, str]) -> dict[Language, list[dict[str, Any]]]:
    """Sessions per language, numbered 000001... in source order."""
    out: dict[Language, list[dict[str, Any]]] = {}
    for unit in sorted(units, key=lambda u: (u.doc_id, u.index)):
        rows = out.setdefault(unit.language, [])
        rows.append(session_dict(unit, annotations[unit.key], f"{len(rows) + 1:06d}", hashes[unit.doc_id]))
    return out


def validate(data: list[dict[str, Any]], path: Path, language: Language) -> dict[str, Any]:
    """The dataset layer's findings for one output file, summarised, plus a schema round trip."""
    from psyinsight.data.validate import validate_data

    findings = validate_data(data, path)
    problems = [f for f in findings if f.severity in ("error", "defect")]
    suspects = [f for f in findings if f.severity == "suspect"]
    by_rule: dict[str, int] = {}
    for finding in findings:
        key = f"{finding.severity}:{finding.rule}"
        by_rule[key] = by_rule.get(key, 0) + 1
    schema_errors = []
    for row in data:  # the typed schema must accept every session too
        try:
            Session.model_validate({**row, "language": language})
        except ValidationError as exc:
            schema_errors.append({"dialog_id": row.get("dialog_id"), "error": str(exc).splitlines()[0]})
    return {
        "file": path.name,
        "sessions": len(data),
        "accepted": not problems and not schema_errors,
        "problems": [f.to_dict() for f in problems[:50]] + schema_errors[:50],
        "suspects": [f.to_dict() for f in suspects[:50]],
        "by_rule": by_rule,
    }
