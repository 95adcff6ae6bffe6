"""Loading the Psy-Insight release (or any file in its format) into typed sessions.

``load_raw`` reads and structurally checks a file; ``load_sessions`` adds the normaliser
(``repair.py``) and the pydantic schema; ``load_release`` finds both language files.
Structural problems that make a file unusable raise ``PsyInsightError`` naming the file,
the session and the turn.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from psyinsight.data.findings import Finding
from psyinsight.data.repair import participant_variants, repair_session
from psyinsight.data.schema import LANGUAGES, Language, Session, parse_language
from psyinsight.errors import PsyInsightError
from psyinsight.fileio import read_json, read_jsonl, write_json
from psyinsight.language import detect_language
from psyinsight.paths import RELEASE_FILES, release_dir

MAX_FILE_MB_ENV = "PSYINSIGHT_MAX_FILE_MB"
DEFAULT_MAX_FILE_MB = 100
"""The release files are 3-4 MB; a file 25x larger is almost surely not a release file."""

ROLES = ("Seeker", "Supporter")


def max_file_bytes() -> int:
    return int(float(os.environ.get(MAX_FILE_MB_ENV, DEFAULT_MAX_FILE_MB)) * 1024 * 1024)


def read_release_file(path: str | Path) -> Any:
    """Parse a release-format file (a JSON list, or JSON lines of sessions)."""
    path = Path(path)
    if path.is_file() and path.stat().st_size > max_file_bytes():
        size_mb = path.stat().st_size / 1024 / 1024
        raise PsyInsightError(
            f"file is {size_mb:.0f} MB, over the {max_file_bytes() // 1024 // 1024} MB limit "
            f"(raise it with {MAX_FILE_MB_ENV}=N if this really is a session file)",
            path=path,
        )
    if path.suffix == ".jsonl":
        rows = read_jsonl(path)
        if not rows:  # the same error as an empty .json: a file with no sessions is a mistake
            raise PsyInsightError("the file is empty", path=path)
        return rows
    return read_json(path)


def structure_findings(data: Any, path: str | Path) -> list[Finding]:
    """Problems that make the data unusable: wrong containers, missing required keys."""
    file = str(path)
    if not isinstance(data, list):
        return [Finding("structure", "error", file, f"expected a JSON list of sessions, found {type(data).__name__}")]
    found: list[Finding] = []
    for index, session in enumerate(data):
        where = f"session #{index}"
        if not isinstance(session, dict):
            found.append(Finding("structure", "error", file, f"{where} is a {type(session).__name__}, expected an object"))
            continue
        dialog_id = str(session.get("dialog_id", f"#{index}"))
        if "dialog_id" not in session:
            found.append(Finding("structure", "error", file, f"{where} has no dialog_id", field="dialog_id"))
        dialog = session.get("dialog")
        if not isinstance(dialog, list):
            problem = "has no dialog" if dialog is None else f"has a dialog of type {type(dialog).__name__}, expected a list"
            found.append(Finding("structure", "error", file, f"session {problem}", dialog_id=dialog_id, field="dialog"))
            continue
        for t_index, turn in enumerate(dialog):
            ref = f"#{t_index}"
            if not isinstance(turn, dict):
                found.append(Finding("structure", "error", file, f"turn is a {type(turn).__name__}, expected an object", dialog_id, ref))
                continue
            ref = str(turn.get("id") or ref)
            if not isinstance(turn.get("content"), str):
                problem = "has no content" if "content" not in turn else "has non-text content"
                found.append(Finding("structure", "error", file, f"turn {problem}", dialog_id, ref, "content"))
            if turn.get("speaker") not in ROLES:
                found.append(
                    Finding(
                        "structure", "error", file, f"speaker is {turn.get('speaker')!r}, expected Seeker or Supporter", dialog_id, ref, "speaker"
                    )
                )
    return found


def guess_language(path: str | Path, data: list[dict[str, Any]]) -> Language:
    """From the file name (``en_...``/``cn_...``), else from the share of Chinese characters."""
    name = Path(path).name.lower()
    for lang in LANGUAGES:
        if name.startswith(f"{lang}_") or name.startswith(f"{lang}-"):
            return lang
    if name.startswith(("zh_", "zh-")):
        return "cn"
    text = "".join(
        t.get("content", "") for s in data[:20] for t in s.get("dialog", [])[:10] if isinstance(t, dict) and isinstance(t.get("content"), str)
    )
    return "cn" if detect_language(text) == "cn" else "en"


def load_raw(path: str | Path) -> list[dict[str, Any]]:
    """The file's sessions exactly as written, after a structural check."""
    data = read_release_file(path)
    problems = structure_findings(data, path)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more; run `psyinsight data validate`)" if len(problems) > 1 else ""
        raise PsyInsightError(first.message + more, path=path, where=_where(first))
    return data


def _where(finding: Finding) -> str | None:
    return ", ".join(finding.place(sep=" ")) or None


def schema_findings(raw: list[dict[str, Any]], language: Language, path: str | Path) -> list[Finding]:
    """Every field loading requires, checked as loading checks it (repair, then the schema):
    one finding per problem, so ``validate`` passes exactly what ``to_sessions`` accepts."""
    file = str(path)
    names = participant_variants(raw)
    found: list[Finding] = []
    for index, item in enumerate(raw):
        data, _ = repair_session(item, names)
        own_language = data.get("language")
        try:
            lang = parse_language(own_language) if isinstance(own_language, str) else language
        except ValueError as exc:
            found.append(Finding("structure", "error", file, str(exc), str(item.get("dialog_id", f"#{index}")), field="language"))
            continue
        try:
            Session.model_validate({**data, "language": lang, "repairs": []})
        except ValidationError as exc:
            dialog_id = item.get("dialog_id")
            dialog_id = f"#{index}" if dialog_id is None else str(dialog_id)
            for error in exc.errors():
                loc = error["loc"]
                turn = field_name = None
                if len(loc) >= 3 and loc[0] == "dialog" and isinstance(loc[1], int):
                    raw_turn = item["dialog"][loc[1]] if loc[1] < len(item["dialog"]) else {}
                    turn = str(raw_turn.get("id") or f"#{loc[1]}") if isinstance(raw_turn, dict) else f"#{loc[1]}"
                    field_name = str(loc[2])
                elif loc:
                    field_name = str(loc[0])
                found.append(Finding("structure", "error", file, error["msg"], dialog_id, turn, field_name))
    return found


def to_sessions(raw: list[dict[str, Any]], language: Language, path: str | Path, *, repair: bool = True) -> list[Session]:
    """Typed sessions from raw dicts, repaired (with their repair log) unless ``repair=False``."""
    names = participant_variants(raw) if repair else {}
    sessions = []
    for index, item in enumerate(raw):
        data, log = repair_session(item, names) if repair else (item, [])
        previous = item.get("repairs") or []
        own_language = data.get("language")
        data = {
            **data,
            "language": parse_language(own_language) if isinstance(own_language, str) else language,
            "repairs": [*previous, *(r.model_dump() for r in log)],
        }
        try:
            sessions.append(Session.model_validate(data))
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = error["loc"]
            where = f"dialog_id {item.get('dialog_id', f'#{index}')}"
            if len(loc) >= 3 and loc[0] == "dialog" and isinstance(loc[1], int):
                turn = item["dialog"][loc[1]] if loc[1] < len(item["dialog"]) else {}
                where += f", turn {turn.get('id', f'#{loc[1]}') if isinstance(turn, dict) else loc[1]}, field {loc[2]}"
            elif loc:
                where += f", field {loc[0]}"
            raise PsyInsightError(error["msg"], path=path, where=where) from None
    return sessions


def load_sessions(path: str | Path, language: str | None = None, *, repair: bool = True) -> list[Session]:
    """Sessions from any file in the release format; language from the flag, name or text."""
    raw = load_raw(path)
    lang = parse_language(language) if language else guess_language(path, raw)
    return to_sessions(raw, lang, path, repair=repair)


def release_files(data_dir: str | Path | None = None, languages: Iterable[str] = LANGUAGES) -> dict[Language, Path]:
    """The release file of each language, or an error saying how to get them."""
    folder = Path(data_dir) if data_dir else release_dir()
    if folder is None:
        raise PsyInsightError(
            "the Psy-Insight release was not found: add --sample to use the bundled synthetic sessions, "
            "set PSYINSIGHT_DATA_DIR (or --data-dir) to the folder holding en_data_version7.json and cn_data_version7.json, "
            "or download them with `psyinsight data fetch` (needs the network)"
        )
    files: dict[Language, Path] = {}
    for lang in (parse_language(x) for x in languages):
        path = folder / RELEASE_FILES[lang]
        if not path.is_file():
            raise PsyInsightError(
                f"missing {RELEASE_FILES[lang]}: add --sample for the bundled sessions, point PSYINSIGHT_DATA_DIR "
                "(or --data-dir) at the release folder, or run `psyinsight data fetch`",
                path=folder,
            )
        files[lang] = path
    return files


def load_release(data_dir: str | Path | None = None, languages: Iterable[str] = LANGUAGES, *, repair: bool = True) -> list[Session]:
    """Both (or the chosen) language files of the release as typed, repaired sessions."""
    sessions: list[Session] = []
    for lang, path in release_files(data_dir, languages).items():
        sessions += load_sessions(path, lang, repair=repair)
    return sessions


def save_sessions(path: str | Path, sessions: Iterable[Session], *, with_repairs: bool = True) -> Path:
    """Write sessions in the release format (JSON list, or JSONL for a .jsonl path)."""
    from psyinsight.fileio import write_jsonl

    rows = [s.to_release_dict(with_repairs=with_repairs) for s in sessions]
    if Path(path).suffix == ".jsonl":
        return write_jsonl(path, rows)
    return write_json(path, rows)
