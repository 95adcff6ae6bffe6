"""One boundary for every command: an unwritable output, a bad language code or a bad option
value gives one line ``error: <file or --option>: <what>``, exit 2, no traceback and no file.

The tables below must name every command of the app (``test_every_command_is_covered``), so
a new command cannot skip the boundary.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from psyinsight.cli import app, main

# Commands that write no file at all (they serve, chat or print): nothing to make unwritable.
WRITES_NOTHING = {"serve", "chat", "ui chat", "safety check", "tasks list"}

# Each command with its output under BLOCK, a regular file: ``BLOCK/x`` can never be created
# (the check holds for root too, unlike a read-only folder). ``{pred}`` etc. are inputs made below.
UNWRITABLE: dict[str, list[str]] = {
    "data fetch": ["data", "fetch", "--dest", "BLOCK/release", "--source", "{tmp}"],
    "data validate": ["data", "validate", "--sample", "--json", "BLOCK/findings.json"],
    "data stats": ["data", "stats", "--sample", "--out", "BLOCK/stats"],
    "data split": ["data", "split", "--sample", "--out", "BLOCK/splits.json"],
    "data export": ["data", "export", "BLOCK/all.jsonl", "--sample"],
    "tasks build": ["tasks", "build", "--sample", "-o", "BLOCK/train.jsonl"],
    "train": ["train", "cpu-default", "--output-dir", "BLOCK/run"],
    "generate": ["generate", "--sample", "--limit", "1", "-o", "BLOCK/predictions.jsonl"],
    "merge": ["merge", "{tmp}/adapter", "-o", "BLOCK/merged"],
    "evaluate": ["evaluate", "{pred}", "-o", "BLOCK/eval.json"],
    "report": ["report", "{pred}", "-o", "BLOCK/report"],
    "judge": ["judge", "{pred}", "-o", "BLOCK/judged.jsonl"],
    "agreement": ["agreement", "{ratings}", "-o", "BLOCK/agreement.json"],
    "classify train": ["classify", "train", "-t", "emotion", "-l", "en", "--sample", "-o", "BLOCK/model"],
    "classify eval": ["classify", "eval", "-m", "{tmp}/model", "--sample", "-o", "BLOCK/eval"],
    "classify predict": ["classify", "predict", "-m", "{tmp}/model", "-i", "{texts}", "-o", "BLOCK/labels.jsonl"],
    "classify benchmark": ["classify", "benchmark", "--sample", "-o", "BLOCK/bench"],
    "safety eval": ["safety", "eval", "--set", "xstest_safe", "--json", "BLOCK/safety.json"],
    "safety train": ["safety", "train", "--out", "BLOCK/risk_model.npz"],
    "ui rate": ["ui", "rate", "{pred}", "--db", "BLOCK/ratings.sqlite"],
    "ui export-ratings": ["ui", "export-ratings", "{tmp}/ratings.sqlite", "-o", "BLOCK/ratings.csv"],
    "build": ["build", "--no-llm", "--out", "BLOCK/build"],
    "experiment": ["experiment", "{repo}/experiments/demo.yaml", "--output-dir", "BLOCK/experiment"],
}

# Every command that takes a language, given one that does not exist.
BAD_LANGUAGE: dict[str, list[str]] = {
    "data stats": ["data", "stats", "--sample", "-l", "fr", "--out", "{tmp}/stats"],
    "data split": ["data", "split", "--sample", "-l", "fr", "--out", "{tmp}/s.json"],
    "data export": ["data", "export", "{tmp}/x.jsonl", "--sample", "-l", ""],
    "tasks build": ["tasks", "build", "--sample", "-l", "fr", "-o", "{tmp}/t.jsonl"],
    "generate": ["generate", "--sample", "-l", "fr", "-o", "{tmp}/p.jsonl"],
    "classify train": ["classify", "train", "-t", "emotion", "-l", "fr", "--sample", "-o", "{tmp}/m"],
    "classify benchmark": ["classify", "benchmark", "--sample", "--languages", "fr", "-o", "{tmp}/b"],
    "serve": ["serve", "-l", "fr"],
    "chat": ["chat", "-l", "fr"],
    "ui chat": ["ui", "chat", "-l", "fr"],
    "safety check": ["safety", "check", "-l", "fr", "I feel fine"],
}

# Bad values, each named by its option, rejected before any work.
BAD_VALUES: list[tuple[list[str], str]] = [
    (["classify", "predict", "-m", "{tmp}/model", "-i", "{texts}", "-o", "{tmp}/l.jsonl", "--top", "0"], "--top"),
    (["classify", "predict", "-m", "{tmp}/model", "-i", "{texts}", "-o", "{tmp}/l.jsonl", "--top", "-1"], "--top"),
    (["classify", "predict", "-m", "{tmp}/model", "-i", "{texts}", "-o", "{tmp}/l.jsonl", "--threshold", "2"], "--threshold"),
    (["judge", "{pred}", "-o", "{tmp}/j.jsonl", "--limit", "-3"], "--limit"),
    (["data", "validate", "--sample", "--show", "-5"], "--show"),
    (["generate", "--sample", "-o", "{tmp}/p.jsonl", "--max-new-tokens", "0"], "--max-new-tokens"),
    (["generate", "--sample", "--source", "release", "-o", "{tmp}/p.jsonl"], "--source"),
    (["data", "split", "--sample", "--ratios", "0.5,0.5,0.5", "--out", "{tmp}/s.json"], "--ratios"),
    (["data", "stats", "--sample", "--file", "{pred}", "--out", "{tmp}/st"], "--file"),
    (["data", "export", "{tmp}", "--sample"], "OUT"),
    (["tasks", "build", "--sample", "--limit", "-3", "-o", "{tmp}/t.jsonl"], "--limit"),
    (["evaluate", "{pred}", "--bertscore-batch-size", "0", "-o", "{tmp}/e.json"], "--bertscore-batch-size"),
    (["classify", "train", "-t", "emotion", "-l", "en", "--sample", "--context-turns", "-1", "-o", "{tmp}/m"], "--context-turns"),
]


def _leaf_commands() -> set[str]:
    found: set[str] = set()

    def walk(command, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*path, name])
        else:
            found.add(" ".join(path))

    walk(typer.main.get_command(app), [])
    return found


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, str]:
    work = tmp_path / "work"
    work.mkdir()
    (work / "BLOCK").write_text("a file, not a folder\n", encoding="utf-8")
    pred = work / "predictions.jsonl"
    pred.write_text(
        json.dumps(
            {
                "id": "en-1",
                "text": "Therapist: That sounds hard.",
                "reference": "That must be hard.",
                "response": "That sounds hard.",
                "meta": {"language": "en", "task": "dialog", "model": "m"},
            }
        )
        + "\n",
        encoding="utf-8",
    )
    ratings = work / "ratings.csv"
    ratings.write_text("id,rater,interactivity,helpfulness,comfort,explainability\nen-1,a,3,3,3,3\nen-1,b,4,4,4,4\n", encoding="utf-8")
    texts = work / "texts.txt"
    texts.write_text("I feel anxious.\n", encoding="utf-8")
    repo = str(Path(__file__).resolve().parents[1])
    return {"tmp": str(work), "pred": str(pred), "ratings": str(ratings), "texts": str(texts), "repo": repo}


def _run(argv: list[str], inputs: dict[str, str], capsys, monkeypatch) -> tuple[int, str, str]:
    work = Path(inputs["tmp"])
    monkeypatch.chdir(work)
    argv = [a.format(**inputs) for a in argv]
    with pytest.raises(SystemExit) as info:
        main(argv)
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def _assert_clean_error(code: int, err: str, name: str, *, mentions: str) -> None:
    assert code == 2, (name, code, err)
    assert "Traceback" not in err, (name, err)
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], (name, err)
    assert mentions in errors[0], (name, errors[0])


def test_every_command_is_covered():
    leaves = _leaf_commands()
    assert leaves == set(UNWRITABLE) | WRITES_NOTHING, leaves ^ (set(UNWRITABLE) | WRITES_NOTHING)
    takes_language = set()
    for leaf in leaves:
        command = typer.main.get_command(app)
        for part in leaf.split():
            command = command.commands[part]
        if any(opt in ("-l", "--language", "--languages") for param in command.params for opt in param.opts):
            takes_language.add(leaf)
    assert takes_language == set(BAD_LANGUAGE), takes_language ^ set(BAD_LANGUAGE)


@pytest.mark.parametrize("name", sorted(UNWRITABLE))
def test_unwritable_output(name, inputs, capsys, monkeypatch):
    before = _files(Path(inputs["tmp"]))
    code, _, err = _run(UNWRITABLE[name], inputs, capsys, monkeypatch)
    _assert_clean_error(code, err, name, mentions="BLOCK")
    assert _files(Path(inputs["tmp"])) == before, name


@pytest.mark.parametrize("name", sorted(BAD_LANGUAGE))
def test_bad_language(name, inputs, capsys, monkeypatch):
    before = _files(Path(inputs["tmp"]))
    code, _, err = _run(BAD_LANGUAGE[name], inputs, capsys, monkeypatch)
    _assert_clean_error(code, err, name, mentions="--language")
    assert "unknown language" in err
    assert _files(Path(inputs["tmp"])) == before, name


@pytest.mark.parametrize(("argv", "option"), BAD_VALUES, ids=[" ".join(a[:2]) + " " + o for a, o in BAD_VALUES])
def test_bad_option_values(argv, option, inputs, capsys, monkeypatch):
    before = _files(Path(inputs["tmp"]))
    code, _, err = _run(argv, inputs, capsys, monkeypatch)
    _assert_clean_error(code, err, " ".join(argv), mentions=option)
    assert _files(Path(inputs["tmp"])) == before


def test_usage_errors_share_the_prefix(inputs, capsys, monkeypatch):
    code, _, err = _run(["data", "stats", "--bogus"], inputs, capsys, monkeypatch)
    _assert_clean_error(code, err, "usage", mentions="--bogus")
    assert "Error:" not in err


def test_write_failure_midway_is_one_line(inputs, capsys, monkeypatch):
    """An OSError the checks could not foresee (disk full) still ends in one line and exit 2."""
    import psyinsight.fileio as fileio

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(Path(inputs["tmp"]) / "s.json"))

    monkeypatch.setattr(fileio.tempfile, "mkstemp", full)
    code, _, err = _run(["data", "split", "--sample", "--out", "{tmp}/s.json"], inputs, capsys, monkeypatch)
    _assert_clean_error(code, err, "disk full", mentions="no space left on device")
    assert not (Path(inputs["tmp"]) / "s.json").exists()
