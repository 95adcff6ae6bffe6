"""The label classifiers as a labeller inside ``build`` (``--labeller classify:<model dir>``).

``<model dir>`` is one folder written by ``psyinsight classify train`` or a folder of
them (each with its ``manifest.json``): emotion and strategy per turn, psychotherapy and
topic per session, each for its language. They stand in for the LLM where a label is
missing or Unknown (a rules-only build, a failed annotation) and check it elsewhere: every
label where the classifier and the LLM disagree is listed in the report; the LLM's label is
kept. A label a classifier filled is recorded in the session's ``label_sources``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from psyinsight.data.schema import Language, Session
from psyinsight.data.taxonomy import UNKNOWN
from psyinsight.errors import PsyInsightError

PREFIX = "classify:"
TASKS = ("emotion", "strategy", "psychotherapy", "topic")


def parse_spec(spec: str) -> Path:
    """The model folder of ``classify:<model dir>``."""
    if not spec.startswith(PREFIX) or not spec[len(PREFIX) :].strip():
        raise PsyInsightError(
            "expected classify:<model dir> (a folder written by `psyinsight classify train`, or a folder of them)", where="--labeller"
        )
    folder = Path(spec[len(PREFIX) :])
    if not folder.is_dir():
        raise PsyInsightError("no such folder", path=folder, where="--labeller")
    return folder


def load_labellers(folder: Path) -> list[Any]:
    """Every saved classifier in ``folder`` (itself or its subfolders); an error when there is none."""
    from psyinsight.classify.persistence import MANIFEST, load_classifier

    manifests = sorted(folder.rglob(MANIFEST))
    if not manifests:
        raise PsyInsightError(f"no {MANIFEST} found: train one with `psyinsight classify train`", path=folder, where="--labeller")
    models = [load_classifier(m.parent) for m in manifests]
    unknown = [m.task for m in models if m.task not in TASKS]
    if unknown:
        raise PsyInsightError(
            f"classifiers for {', '.join(sorted(set(unknown)))} cannot label a build (use {', '.join(TASKS)})", path=folder, where="--labeller"
        )
    return models


def _missing(value: Any) -> bool:
    return value in (None, "", UNKNOWN, [], [UNKNOWN])


def apply_labellers(data: dict[Language, list[dict[str, Any]]], models: list[Any]) -> dict[str, Any]:
    """Fill missing labels in ``data`` (in place) from the classifiers; the report lists fills and disagreements."""
    from psyinsight.classify.labeller import label_sessions

    filled: dict[str, int] = {task: 0 for task in TASKS}
    agreed: dict[str, int] = {task: 0 for task in TASKS}
    disagreements: list[dict[str, Any]] = []
    for language, rows in data.items():
        mine = [m for m in models if m.language == language]
        if not mine:
            continue
        sessions = [Session.model_validate({**row, "language": language}) for row in rows]
        predicted = label_sessions(sessions, mine, overwrite=True)
        tasks = {m.task for m in mine}
        for row, guess in zip(rows, predicted):
            sources = row.setdefault("label_sources", {})
            for task in ("psychotherapy", "topic"):
                if task in tasks:
                    _compare(row, task, getattr(guess, task), row.get("dialog_id"), None, filled, agreed, disagreements, sources)
            for turn, guessed in zip(row["dialog"], guess.dialog):
                for task, key, value in (("emotion", "emotional label", guessed.emotions), ("strategy", "strategy", guessed.strategies)):
                    if task in tasks and key in turn:
                        _compare(turn, key, list(value), row.get("dialog_id"), turn.get("id"), filled, agreed, disagreements, sources, task=task)
            if not sources:
                row.pop("label_sources")
    return {
        "models": [str(m.path) for m in models],
        "filled": filled,
        "agreed": agreed,
        "disagreements": {"count": len(disagreements), "items": disagreements},
    }


def _compare(
    target: dict[str, Any],
    key: str,
    guess: Any,
    dialog_id: Any,
    turn: Any,
    filled: dict[str, int],
    agreed: dict[str, int],
    disagreements: list[dict[str, Any]],
    sources: dict[str, str],
    task: str | None = None,
) -> None:
    task = task or key
    current = target.get(key)
    if _missing(current):
        if not _missing(guess):
            target[key] = guess
            filled[task] += 1
            sources[f"{turn}:{key}" if turn is not None else key] = "classifier"
        return
    first = current[0] if isinstance(current, list) else current
    guessed = guess[0] if isinstance(guess, list) and guess else guess
    if first == guessed:
        agreed[task] += 1
    else:
        disagreements.append({"dialog_id": dialog_id, "turn": turn, "field": key, "llm": current, "classifier": guess})
