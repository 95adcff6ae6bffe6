"""Step 1: read raw counseling text (.txt, .md) and transcripts (.jsonl) into ``Document``s.

A non-UTF-8 file is a ``PsyInsightError`` naming the byte offset and line. Text is decoded
with universal newlines (what ``open()`` gives) and never altered afterwards, so every
offset later steps record points into ``Document.text``.

A transcript line is ``{"participant": "Therapist", "text": "...", "role": "Supporter"}``
(``speaker``/``name`` and ``content`` are accepted too; ``role`` is optional and may be
Seeker/Supporter/client/counselor) or ``{"narrative": "..."}``. The ingester lays the lines
out as ``participant: text`` paragraphs, so transcripts get offsets like any text file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from psyinsight.build.records import Document, Piece
from psyinsight.data.schema import Language
from psyinsight.errors import PsyInsightError
from psyinsight.language import detect_language

SUFFIXES = (".txt", ".md", ".jsonl")


def discover(raw_dir: str | Path) -> list[Path]:
    """The raw files under ``raw_dir`` (recursively), sorted; ``raw_dir`` may be one raw file."""
    root = Path(raw_dir)
    if root.is_file():
        if root.suffix.lower() not in SUFFIXES:
            raise PsyInsightError(f"not a raw file: expected {', '.join(SUFFIXES)}", path=root)
        return [root]
    if not root.is_dir():
        raise PsyInsightError("no such file or folder; pass a .txt/.md/.jsonl file or the folder holding them", path=root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith("."))
    if not files:
        raise PsyInsightError(f"no {', '.join(SUFFIXES)} files found", path=root)
    return files


def guess_language(text: str) -> Language:
    """cn when Chinese characters are a large share of the letters (``psyinsight.language``)."""
    return "cn" if detect_language(text) == "cn" else "en"


def decode(data: bytes, path: Path) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PsyInsightError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); convert it first, "
            "e.g. `iconv -f GB18030 -t UTF-8` for Chinese or `iconv -f CP1252 -t UTF-8` for Windows text",
            path=path,
            where=f"line {line}",
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


_ROLE_WORDS = {
    "seeker": "Seeker",
    "client": "Seeker",
    "patient": "Seeker",
    "来访者": "Seeker",
    "supporter": "Supporter",
    "counselor": "Supporter",
    "counsellor": "Supporter",
    "therapist": "Supporter",
    "咨询师": "Supporter",
}


def _transcript(text: str, path: Path) -> tuple[str, list[Piece]]:
    out: list[str] = []
    pieces: list[Piece] = []
    pos = 0
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PsyInsightError(f"invalid JSON: {exc.msg}", path=path, where=f"line {lineno}, column {exc.colno}") from None
        if not isinstance(row, dict):
            raise PsyInsightError("expected a JSON object per line", path=path, where=f"line {lineno}")
        if "narrative" in row:
            body = str(row["narrative"]).strip()
            pieces.append(Piece(kind="narrative", start=pos, end=pos + len(body), how="transcript"))
            chunk = body + "\n\n"
        else:
            name = str(row.get("participant") or row.get("speaker") or row.get("name") or "").strip()
            body = str(row.get("text") or row.get("content") or "").strip()
            if not name:
                raise PsyInsightError(
                    'an utterance needs "participant" (or "speaker"/"name"); a narrative line needs "narrative"',
                    path=path,
                    where=f"line {lineno}",
                )
            role = _ROLE_WORDS.get(str(row.get("role", "")).strip().lower())
            prefix = f"{name}: "
            start = pos + len(prefix)
            pieces.append(
                Piece(
                    kind="utterance",
                    start=pos,
                    end=start + len(body),
                    spans=[(start, start + len(body))],
                    participant=name,
                    role=role,
                    how="transcript",
                )
            )
            chunk = prefix + body + "\n\n"
        out.append(chunk)
        pos += len(chunk)
    return "".join(out), pieces


def ingest_file(path: str | Path, root: str | Path) -> Document:
    """Read one raw file into a ``Document`` (``doc_id`` is its path relative to ``root``)."""
    path = Path(path)
    data = path.read_bytes()
    text = decode(data, path)
    doc_id = path.name if Path(root).is_file() else path.relative_to(root).as_posix()
    digest = hashlib.sha256(data).hexdigest()
    if path.suffix.lower() == ".jsonl":
        laid_out, pieces = _transcript(text, path)
        return Document(doc_id=doc_id, language=guess_language(laid_out), text=laid_out, sha256=digest, kind="transcript", pieces=pieces)
    if not text.strip():
        raise PsyInsightError("the file is empty", path=path)
    return Document(doc_id=doc_id, language=guess_language(text), text=text, sha256=digest)


def sample_raw_dir() -> Path:
    """The bundled raw excerpts (en + cn book-style text with gold turns)."""
    from importlib import resources

    return Path(str(resources.files("psyinsight.data.sample").joinpath("raw")))
