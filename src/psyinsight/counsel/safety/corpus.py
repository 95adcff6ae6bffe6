"""The safety layer's labelled messages: where each set is, and reading them.

Layout of ``safety/data/`` (provenance of every file in its README.md):

- ``train/``: what the risk model is fitted on: messages written for this project in many
  voices (``written_*``), the earlier development sets (``legacy_*``) and counsel-chat
  questions (``counsel_chat_questions``, MIT) as ordinary distress;
- ``eval/valid.jsonl``: the validation split, by a separate author, that the threshold is
  calibrated on; ``eval/blindset*.jsonl``: the blind sets, each written before the model it
  scores and scored once;
- ``external/``: text written outside the project (OpenAI moderation samples, XSTest).

Rows are ``{id, text, lang, label, kind}``; ``label`` is ``none``, a crisis category, or
``crisis`` (a crisis of unknown category, counted as a crisis only).
"""

from __future__ import annotations

from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

from psyinsight.counsel.safety.model import CATEGORIES, NONE_LABEL
from psyinsight.errors import PsyInsightError
from psyinsight.fileio import read_jsonl

LABELS: tuple[str, ...] = (NONE_LABEL, *CATEGORIES, "crisis")


def data_dir() -> Path:
    """The bundled ``safety/data`` folder."""
    return Path(str(importlib_resources.files("psyinsight.counsel.safety") / "data"))


def named_sets() -> dict[str, Path]:
    """Every bundled labelled set by name (``blindset4``, ``valid``, ``xstest_safe``, ``legacy_testset``...)."""
    root = data_dir()
    return {p.stem: p for sub in ("eval", "train", "external") for p in sorted((root / sub).glob("*.jsonl"))}


def resolve_set(name_or_path: str | Path) -> Path:
    """A bundled set's path by name, or the path itself (a file from anywhere)."""
    sets = named_sets()
    if str(name_or_path) in sets:
        return sets[str(name_or_path)]
    path = Path(name_or_path)
    if path.is_file():
        return path
    raise PsyInsightError(f"no such file or bundled set; the bundled sets are: {', '.join(sets)}", where=str(name_or_path))


def load_examples(path: str | Path) -> list[dict[str, Any]]:
    """Read a labelled JSONL file and check every row."""
    rows = read_jsonl(path)
    if not rows:
        raise PsyInsightError("no labelled rows in the file", path=path)
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise PsyInsightError("each row needs a non-empty 'text'", path=path, where=f"row {i}")
        if row.get("label") not in LABELS:
            raise PsyInsightError(f"label {row.get('label')!r} is not one of {', '.join(LABELS)}", path=path, where=f"row {i}")
    return rows


def training_rows() -> list[dict[str, Any]]:
    """Every row under ``train/``, each tagged with its file in ``source``."""
    rows = []
    for path in sorted((data_dir() / "train").glob("*.jsonl")):
        rows += [{**r, "source": path.stem} for r in load_examples(path)]
    return rows
