"""Writing sessions out: release-format JSON/JSONL, Hugging Face datasets, chat messages.

Every writer is atomic. Hugging Face columns are fixed (Arrow needs one type per column):
the release's free-form parts (unknown keys, repair originals, cn note labels) travel as
JSON strings so nothing is dropped.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from psyinsight.data.release import save_sessions
from psyinsight.data.schema import Session, Turn
from psyinsight.errors import PsyInsightError
from psyinsight.fileio import write_jsonl

ExportFormat = Literal["json", "jsonl", "hf", "parquet", "chat"]
EXPORT_FORMATS: tuple[str, ...] = ("json", "jsonl", "hf", "parquet", "chat")

_TURN_FIELDS = set(Turn.model_fields) | {"emotional label", "strategy"}
_SESSION_FIELDS = set(Session.model_fields)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def flat_record(session: Session) -> dict[str, Any]:
    """One session as a row with a fixed schema (for Arrow / Parquet)."""
    extra = {k: v for k, v in (session.model_extra or {}).items()}
    return {
        "uid": session.uid,
        "dialog_id": session.dialog_id,
        "language": session.language,
        "theme": session.theme,
        "psychotherapy": session.psychotherapy,
        "topic": session.topic,
        "stage": session.stage,
        "guide": session.guide,
        "is_same_qa": session.is_same_qa,
        "is_same_session": session.is_same_session,
        "background": session.background,
        "reasoning": session.reasoning,
        "summary": session.summary,
        "dialog": [
            {
                "id": t.id,
                "speaker": t.speaker,
                "participant": t.participant,
                "content": t.content,
                "observation": t.observation,
                "reasoning": t.reasoning,
                "emotions": t.emotions,
                "strategies": t.strategies,
                "reference_labels": t.reference_labels,
                "labels_json": _json([n.model_dump() for n in t.labels]) if t.labels is not None else None,
                "extra_json": _json(t.model_extra) if t.model_extra else None,
            }
            for t in session.dialog
        ],
        "repairs_json": _json([r.model_dump() for r in session.repairs]),
        "extra_json": _json(extra) if extra else None,
    }


def chat_record(session: Session) -> dict[str, Any]:
    """The dialogue alone as chat messages: client = user, counselor = assistant.

    The background becomes the system message; consecutive turns by one speaker are joined
    with a newline so roles alternate as chat templates expect.
    """
    messages: list[dict[str, str]] = []
    if session.background.strip():
        messages.append({"role": "system", "content": session.background.strip()})
    for turn in session.dialog:
        role = "user" if turn.is_client else "assistant"
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n" + turn.content
        else:
            messages.append({"role": role, "content": turn.content})
    return {"id": session.uid, "language": session.language, "messages": messages}


def _datasets():
    try:
        import datasets
    except ImportError:  # pragma: no cover - the data extra is part of the default install
        raise PsyInsightError("the Hugging Face export needs the `datasets` package: pip install 'psyinsight[data]'") from None
    datasets.disable_progress_bars()
    return datasets


def _write_hf(rows: list[dict[str, Any]], out: Path, fmt: str) -> Path:
    datasets = _datasets()
    dataset = datasets.Dataset.from_list(rows)
    if fmt == "parquet":
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            dataset.to_parquet(str(tmp))
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
        return out
    return _save_to_disk(dataset, out)


def _save_to_disk(dataset: Any, out: Path) -> Path:
    """``save_to_disk`` into a hidden sibling, then rename: a failed export leaves nothing."""
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        dataset.save_to_disk(str(staging / "data"))
        if out.exists():
            shutil.rmtree(out)
        (staging / "data").replace(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def export_hf_splits(parts: dict[str, Sequence[Session]], out: str | Path) -> Path:
    """One ``DatasetDict`` (train/validation/test) in one folder: ``load_from_disk`` returns it whole."""
    datasets = _datasets()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = {name: [flat_record(s) for s in chosen] for name, chosen in parts.items()}
    features = next((datasets.Dataset.from_list(r).features for r in rows.values() if r), None)
    splits = {name: datasets.Dataset.from_list(r, features=features) for name, r in rows.items()}
    return _save_to_disk(datasets.DatasetDict(splits), out)


def export_sessions(sessions: Sequence[Session], out: str | Path, fmt: str) -> Path:
    """Write ``sessions`` to ``out`` in one of ``EXPORT_FORMATS``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        return save_sessions(out, sessions)
    if fmt == "jsonl":
        return save_sessions(out if out.suffix == ".jsonl" else out.with_suffix(".jsonl"), sessions)
    if fmt == "chat":
        return write_jsonl(out, [chat_record(s) for s in sessions])
    if fmt in ("hf", "parquet"):
        return _write_hf([flat_record(s) for s in sessions], out, fmt)
    raise PsyInsightError(f"unknown export format {fmt!r}; choose from {', '.join(EXPORT_FORMATS)}", where="--format")
