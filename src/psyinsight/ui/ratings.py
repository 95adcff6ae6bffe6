"""Human ratings: SQLite storage and CSV export (``psyinsight agreement`` reads either).

One row per (study, rater, item): the scores of side A (and B), which system sat on each
side, the seed that drew it, and when the rating was first made and last changed. Saving
again updates the row (a rater may revise), keeping ``created_at``. The database runs in
WAL mode so the export and the statistics can read while raters keep writing; they open it
read-only (``RatingStore.open_readonly``) and refuse a file that is not a ratings database.

The export is "long": one CSV row per rated response (rater, item, system, side, the four
criteria, the preference), unblinded, ready for a spreadsheet or pandas.
"""

from __future__ import annotations

import contextlib
import csv
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psyinsight.errors import PsyInsightError
from psyinsight.fileio import atomic_open, read_text

CRITERIA: tuple[str, ...] = ("interactivity", "helpfulness", "comfort", "explainability")
"""The paper's four human-evaluation criteria, each rated 1 to 5."""
SCALE: tuple[int, ...] = (1, 2, 3, 4, 5)
PREFERENCES: tuple[str, ...] = ("A", "B", "tie")
SCHEMA_VERSION = 1

_SIDE_COLS = [f"{side}_{c}" for side in ("a", "b") for c in CRITERIA]
_COLUMNS = [
    "study",
    "rater",
    "item",
    "mode",
    "seed",
    "position",
    "a_system",
    "b_system",
    *_SIDE_COLS,
    "preference",
    "comment",
    "created_at",
    "updated_at",
]

EXPORT_FIELDS: tuple[str, ...] = (
    "study",
    "rater",
    "item",
    "mode",
    "system",
    "side",
    *CRITERIA,
    "preference",
    "preferred_system",
    "seed",
    "position",
    "comment",
    "created_at",
    "updated_at",
)


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Rating:
    """One rater's judgement of one item: scores per side, in the order the rater saw them."""

    study: str
    rater: str
    item: str
    systems: tuple[str, ...]
    """``systems[0]`` was shown as side A, ``systems[1]`` (A/B mode) as side B."""
    scores: tuple[dict[str, int], ...]
    """Per side, criterion -> 1..5."""
    preference: str | None = None
    """A/B mode: "A", "B" or "tie" (optional)."""
    seed: int = 0
    position: int = 0
    """Where the item came in this rater's order (0-based)."""
    comment: str = ""
    created_at: str = ""
    updated_at: str = ""

    @property
    def mode(self) -> str:
        return "single" if len(self.systems) == 1 else "ab"

    def validate(self) -> None:
        """Raise a ``PsyInsightError`` naming what is missing or out of range."""
        if not self.rater.strip():
            raise PsyInsightError("enter a rater id before rating", where="rater id")
        if len(self.systems) not in (1, 2) or len(self.scores) != len(self.systems):
            raise PsyInsightError(
                f"a rating has one or two sides, got {len(self.systems)} systems and {len(self.scores)} score sets", where=self.item
            )
        for side, scores in zip(("A", "B"), self.scores):
            missing = [c for c in CRITERIA if scores.get(c) is None]
            if missing:
                label = "the response" if self.mode == "single" else f"response {side}"
                raise PsyInsightError(f"rate {label} on {', '.join(missing)} (1 to 5)", where=f"item {self.item}")
            for c in CRITERIA:
                value = scores[c]
                if isinstance(value, bool) or not isinstance(value, int) or value not in SCALE:
                    raise PsyInsightError(f"{c} must be an integer from 1 to 5, got {value!r}", where=f"item {self.item}")
        if self.preference is not None and (self.mode == "single" or self.preference not in PREFERENCES):
            raise PsyInsightError(f"preference must be one of A, B, tie in A/B mode, got {self.preference!r}", where=f"item {self.item}")


class RatingStore:
    """Ratings in one SQLite file. Each call opens its own connection: safe from app threads."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise PsyInsightError("is a folder; give a file name for the ratings database", path=self.path)
        if readonly:
            self._check_readable()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise PsyInsightError(f"written by a newer psyinsight (schema {version} > {SCHEMA_VERSION}); upgrade psyinsight", path=self.path)
            cols = ", ".join(f"{c} INTEGER" if c.startswith(("a_", "b_")) and not c.endswith("system") else f"{c} TEXT" for c in _SIDE_COLS)
            conn.execute(
                f"""CREATE TABLE IF NOT EXISTS ratings (
                    study TEXT NOT NULL, rater TEXT NOT NULL, item TEXT NOT NULL, mode TEXT NOT NULL,
                    seed INTEGER NOT NULL, position INTEGER NOT NULL,
                    a_system TEXT NOT NULL, b_system TEXT, {cols},
                    preference TEXT, comment TEXT NOT NULL DEFAULT '',
                    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                    PRIMARY KEY (study, rater, item))"""
            )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @classmethod
    def open_readonly(cls, path: str | Path) -> RatingStore:
        """A store over an existing ratings database that never writes to it (export, statistics).

        A file that is not a ratings database is refused, not turned into one.
        """
        return cls(path, readonly=True)

    def _check_readable(self) -> None:
        if not self.path.is_file():
            raise PsyInsightError("no such ratings database; `psyinsight ui rate --db` writes it", path=self.path)
        with open(self.path, "rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise PsyInsightError("not a ratings database (not an SQLite file)", path=self.path)
        with self._connect() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise PsyInsightError(f"written by a newer psyinsight (schema {version} > {SCHEMA_VERSION}); upgrade psyinsight", path=self.path)
            found = {row[1] for row in conn.execute("PRAGMA table_info(ratings)")}
        missing = [c for c in _COLUMNS if c not in found]
        if missing:
            what = "has no ratings table" if not found else f"its ratings table lacks {', '.join(missing)}"
            raise PsyInsightError(f"not a ratings database ({what})", path=self.path)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            if self.readonly:  # SQLite itself refuses every write, journal-mode switches included
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            else:
                conn = sqlite3.connect(self.path, timeout=30)
        except sqlite3.Error as exc:
            raise PsyInsightError(f"cannot open the ratings database: {exc}", path=self.path) from None
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            with conn:  # one transaction: commit on success, roll back on error
                yield conn
        except sqlite3.DatabaseError as exc:
            raise PsyInsightError(f"not a usable ratings database ({exc}); pass a new file name or the file the app wrote", path=self.path) from None
        finally:
            conn.close()

    def save(self, rating: Rating) -> Rating:
        """Insert or update (same study, rater, item); returns the stored rating with timestamps."""
        rating.validate()
        stamp = now_utc()
        row: dict[str, Any] = {
            "study": rating.study,
            "rater": rating.rater.strip(),
            "item": rating.item,
            "mode": rating.mode,
            "seed": int(rating.seed),
            "position": int(rating.position),
            "a_system": rating.systems[0],
            "b_system": rating.systems[1] if len(rating.systems) > 1 else None,
            "preference": rating.preference,
            "comment": rating.comment,
            "created_at": stamp,
            "updated_at": stamp,
        }
        for side, scores in zip(("a", "b"), rating.scores):
            for c in CRITERIA:
                row[f"{side}_{c}"] = scores[c]
        for c in CRITERIA:
            row.setdefault(f"b_{c}", None)
        names = ", ".join(_COLUMNS)
        marks = ", ".join(f":{c}" for c in _COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in {"study", "rater", "item", "created_at"})
        with self._connect() as conn:
            conn.execute(f"INSERT INTO ratings ({names}) VALUES ({marks}) ON CONFLICT (study, rater, item) DO UPDATE SET {updates}", row)
        stored = self.get(rating.study, row["rater"], rating.item)
        if stored is None:  # pragma: no cover - the row was just written
            raise PsyInsightError("the rating was not stored", path=self.path)
        return stored

    @staticmethod
    def _from_row(row: sqlite3.Row) -> Rating:
        systems = (row["a_system"],) if row["b_system"] is None else (row["a_system"], row["b_system"])
        scores = tuple({c: row[f"{side}_{c}"] for c in CRITERIA} for side in ("a", "b")[: len(systems)])
        return Rating(
            study=row["study"],
            rater=row["rater"],
            item=row["item"],
            systems=systems,
            scores=scores,
            preference=row["preference"],
            seed=row["seed"],
            position=row["position"],
            comment=row["comment"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def _query(self, where: str = "", params: tuple[Any, ...] = ()) -> list[Rating]:
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(f"SELECT * FROM ratings {where} ORDER BY study, rater, position, item", params).fetchall()
        return [self._from_row(r) for r in rows]

    def get(self, study: str, rater: str, item: str) -> Rating | None:
        found = self._query("WHERE study = ? AND rater = ? AND item = ?", (study, rater.strip(), item))
        return found[0] if found else None

    def ratings(self, study: str | None = None, rater: str | None = None) -> list[Rating]:
        clauses, params = [], []
        if study is not None:
            clauses.append("study = ?")
            params.append(study)
        if rater is not None:
            clauses.append("rater = ?")
            params.append(rater.strip())
        return self._query(("WHERE " + " AND ".join(clauses)) if clauses else "", tuple(params))

    def studies(self) -> list[str]:
        with self._connect() as conn:
            return [r[0] for r in conn.execute("SELECT DISTINCT study FROM ratings ORDER BY study")]


def long_rows(ratings: list[Rating]) -> list[dict[str, Any]]:
    """One row per rated response, unblinded (the ``EXPORT_FIELDS`` columns)."""
    out = []
    for r in ratings:
        preferred = ""
        if r.preference == "tie":
            preferred = "tie"
        elif r.preference in ("A", "B"):
            preferred = r.systems["AB".index(r.preference)]
        for side, system, scores in zip(("A", "B"), r.systems, r.scores):
            out.append(
                {
                    "study": r.study,
                    "rater": r.rater,
                    "item": r.item,
                    "mode": r.mode,
                    "system": system,
                    "side": side,
                    **{c: scores[c] for c in CRITERIA},
                    "preference": r.preference or "",
                    "preferred_system": preferred,
                    "seed": r.seed,
                    "position": r.position,
                    "comment": r.comment,
                    "created_at": r.created_at,
                    "updated_at": r.updated_at,
                }
            )
    return out


def export_csv(store: RatingStore, out: str | Path, *, study: str | None = None) -> int:
    """Write the long CSV atomically; returns the number of data rows."""
    rows = long_rows(store.ratings(study=study))
    with atomic_open(out, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(EXPORT_FIELDS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def read_export(path: str | Path) -> list[dict[str, Any]]:
    """Read a CSV written by ``export_csv`` (several exports may be concatenated by the caller)."""
    text = read_text(path)
    reader = csv.DictReader(text.splitlines())
    missing = [f for f in ("study", "rater", "item", "system", *CRITERIA) if f not in (reader.fieldnames or [])]
    if missing:
        raise PsyInsightError(f"not a ratings export: missing columns {', '.join(missing)}", path=path, where="header")
    rows = []
    for lineno, row in enumerate(reader, start=2):
        for c in CRITERIA:
            try:
                row[c] = int(row[c])
            except (TypeError, ValueError):
                raise PsyInsightError(f"{c} must be an integer 1 to 5, got {row[c]!r}", path=path, where=f"line {lineno}") from None
        rows.append(row)
    return rows


def is_sqlite_file(path: str | Path) -> bool:
    """Whether ``path`` starts as an SQLite database does (a ratings database, or another one)."""
    with open(path, "rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"


def load_rows(source: str | Path, *, study: str | None = None) -> list[dict[str, Any]]:
    """Long rows from a ratings database or a CSV export (chosen by the file's first bytes)."""
    path = Path(source)
    if not path.is_file():
        raise PsyInsightError("no such file; give the ratings database (.sqlite) or a CSV export", path=path)
    if is_sqlite_file(path):
        return long_rows(RatingStore.open_readonly(path).ratings(study=study))
    rows = read_export(path)
    return [r for r in rows if study is None or r["study"] == study]
