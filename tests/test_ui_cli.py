"""``psyinsight ui`` commands: export-ratings and its errors; ``psyinsight agreement`` on the app's ratings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from psyinsight.errors import PsyInsightError
from psyinsight.ui.ratings import CRITERIA, Rating, RatingStore


def cli_app() -> typer.Typer:
    """A Typer app with the ``ui`` commands and ``agreement``, as ``psyinsight`` registers them."""
    from psyinsight.commands import evaluate, ui

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """psyinsight (ui and evaluate commands only)."""

    ui.register(app)
    evaluate.register(app)
    return app


def run(*args: str):
    return CliRunner().invoke(cli_app(), list(args))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    store = RatingStore(tmp_path / "ratings.sqlite")
    for rater, bump in (("r1", 0), ("r2", 0), ("r3", 1)):
        for k in range(4):
            a = {c: min(5, 1 + k + bump) for c in CRITERIA}
            b = {c: max(1, 4 - k) for c in CRITERIA}
            store.save(
                Rating("m vs g", rater, f"i{k}", ("m", "g") if k % 2 else ("g", "m"), (a, b), preference="A" if k % 2 else "tie", seed=13, position=k)
            )
    return tmp_path / "ratings.sqlite"


def test_help_lists_the_three_commands() -> None:
    result = run("ui", "--help")
    assert result.exit_code == 0
    for name in ("chat", "rate", "export-ratings"):
        assert name in result.output
    assert "│ agreement" not in result.output  # one agreement command: psyinsight agreement


def test_export_and_agreement(tmp_path: Path, db: Path) -> None:
    out = tmp_path / "out" / "r.csv"
    result = run("ui", "export-ratings", str(db), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote 24 rows" in result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 24 and {r["rater"] for r in rows} == {"r1", "r2", "r3"}

    report_path = tmp_path / "agreement.json"
    for source in (db, out):
        result = run("agreement", str(source), "--out", str(report_path))
        assert result.exit_code == 0, result.output
        assert "alpha_interval" in result.output and "preferences in 'm vs g'" in result.output
        report = json.loads(report_path.read_text(encoding="utf-8"))
        crit = report["criteria"]
        assert set(crit) == set(CRITERIA)
        assert report["raters"] == ["r1", "r2", "r3"] and report["units"] == 8 and crit["comfort"]["complete_units"] == 8
        assert 0.5 < crit["comfort"]["alpha_interval"] <= 1.0 and crit["comfort"]["cronbach"] > 0.5
        assert report["preferences"] == {"m vs g": {"m": 6, "tie": 6}}
        assert set(report["means"]) == {"m", "g"}
    result = run("agreement", str(db), "--study", "other", "--out", str(report_path))
    assert isinstance(result.exception, PsyInsightError) and "no ratings for study 'other'" in str(result.exception)


def test_errors_name_the_file(tmp_path: Path) -> None:
    result = run("ui", "export-ratings", str(tmp_path / "missing.sqlite"))
    assert isinstance(result.exception, PsyInsightError) and "missing.sqlite: no such ratings database" in str(result.exception)
    empty = RatingStore(tmp_path / "empty.sqlite").path
    result = run("agreement", str(empty))
    assert isinstance(result.exception, PsyInsightError) and "no ratings" in str(result.exception)
    result = run("ui", "rate", str(tmp_path / "nope.jsonl"), "--db", str(tmp_path / "r.sqlite"))
    assert isinstance(result.exception, PsyInsightError) and "nope.jsonl: no such file" in str(result.exception)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_export_never_writes_to_its_input(tmp_path: Path, db: Path) -> None:
    import sqlite3

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "empty.sqlite").write_bytes(b"")
    other = inputs / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x TEXT)")
    conn.close()
    before = _snapshot(inputs)
    for name, words in (("empty.sqlite", "not an SQLite file"), ("other.sqlite", "has no ratings table")):
        for command in (("export-ratings", str(inputs / name), "-o", str(tmp_path / "x.csv")), ("agreement", str(inputs / name))):
            result = run(*(command if command[0] == "agreement" else ("ui", *command)))
            assert result.exit_code != 0 and isinstance(result.exception, PsyInsightError), (command, result.output)
            if command[0] == "export-ratings" or name == "other.sqlite":  # agreement reads a non-SQLite file as JSONL
                assert f"{name}: not a ratings database" in str(result.exception) and words in str(result.exception)
    assert _snapshot(inputs) == before  # no table added, no WAL switch, no file created
    assert not (tmp_path / "x.csv").exists()
    # a real ratings database is read, and left as it was (SQLite may add its -wal/-shm reader files beside it)
    good = db.read_bytes()
    assert run("ui", "export-ratings", str(db), "-o", str(tmp_path / "r.csv")).exit_code == 0
    assert db.read_bytes() == good
