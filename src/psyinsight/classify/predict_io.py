"""Inputs of ``classify predict``: plain text lines, JSONL rows, or release-format sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from psyinsight.classify.persistence import SavedClassifier
from psyinsight.classify.tasks import extract_inputs
from psyinsight.errors import PsyInsightError
from psyinsight.fileio import read_json, read_jsonl, read_text


def _context(value: Any, path: Path, lineno: int) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return "\n".join(value)
    raise PsyInsightError("'context' must be a string or a list of strings", path=path, where=f"line {lineno}")


def read_inputs(path: str | Path, saved: SavedClassifier) -> list[dict[str, Any]]:
    """Rows ``{id, text, context}`` to label, whatever the input's shape.

    ``.txt``: one text per non-empty line. ``.jsonl``: objects with ``text`` (required),
    ``context`` (string or list of preceding turns) and ``id``. ``.json``: a list of
    sessions in the release format, each turn (or session) the model's task labels.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        for lineno, item in enumerate(read_jsonl(path), start=1):
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise PsyInsightError("each line must be an object with a string 'text'", path=path, where=f"row {lineno}")
            rows.append({"id": str(item.get("id", lineno)), "text": item["text"], "context": _context(item.get("context"), path, lineno)})
        return rows
    if suffix == ".json":
        from psyinsight.data.release import load_sessions

        data = read_json(path)
        if not isinstance(data, list):
            raise PsyInsightError("expected a list of sessions in the release format", path=path)
        sessions = load_sessions(path, saved.language)
        items = extract_inputs(sessions, saved.task, config=saved.extract_config)
        return [{"id": r.id, "text": r.text, "context": r.context, "current": r.labels} for r in items]
    if suffix in (".txt", ".text", ""):
        lines = [line.strip() for line in read_text(path).splitlines()]
        return [{"id": str(i), "text": line, "context": ""} for i, line in enumerate(lines, start=1) if line]
    raise PsyInsightError("unknown input type: use .txt (one text per line), .jsonl or a release-format .json", path=path)
