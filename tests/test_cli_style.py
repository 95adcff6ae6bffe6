"""The CLI's shape: a light import, one registration style, one definition per shared option.

``psyinsight --help`` must not pay for torch or gradio, every command is a module-level
function its area registers, and an option several commands share (``--region``,
``--split-file``...) is defined once, so its names, default and help cannot drift apart.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from psyinsight.cli import app, main
from psyinsight.commands import options

# Libraries a command may import inside its function, never at `import psyinsight.cli`.
HEAVY = {
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "gradio",
    "sklearn",
    "scipy",
    "numpy",
    "pandas",
    "matplotlib",
    "vllm",
    "bert_score",
    "nltk",
    "openai",
    "jieba",
    "uvicorn",
    "starlette",
}


def _commands() -> dict[str, object]:
    """Every leaf command as ``"group name"`` → click command."""
    found: dict[str, object] = {}

    def walk(command: object, path: list[str]) -> None:
        if hasattr(command, "list_commands"):
            for name in command.list_commands(None):
                walk(command.get_command(None, name), [*path, name])
        else:
            found[" ".join(path)] = command

    walk(get_command(app), [])
    return found


def _option(command: str, flag: str) -> object:
    params = [p for p in _commands()[command].params if flag in p.opts]
    assert params, f"{command} has no {flag}"
    return params[0]


def test_cli_import_loads_no_training_or_ui_library() -> None:
    code = "import json, sys, psyinsight.cli; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out.strip().splitlines()[-1]))
    assert "psyinsight" in loaded
    assert loaded & HEAVY == set()


def test_every_command_is_a_module_level_function_of_its_area() -> None:
    commands = _commands()
    assert len(commands) > 20
    for name, command in commands.items():
        function = inspect.unwrap(command.callback)  # typer wraps each callback
        module = importlib.import_module(function.__module__)
        assert function.__module__.startswith("psyinsight.commands."), name
        assert function.__qualname__ == function.__name__, f"{name} is defined inside another function"
        assert getattr(module, function.__name__) is function, name


def test_safety_commands_live_in_the_safety_module() -> None:
    safety = {n: c for n, c in _commands().items() if n.startswith("safety ")}
    assert set(safety) == {"safety eval", "safety check", "safety train"}
    assert {inspect.unwrap(c.callback).__module__ for c in safety.values()} == {"psyinsight.commands.safety"}


# (flag, commands that share its definition)
SHARED = [
    ("--region", ["serve", "chat", "safety check"]),
    ("--crisis-resources", ["serve", "chat", "safety check"]),
    ("--second-opinion-url", ["serve", "chat", "safety check"]),
    ("--second-opinion-model", ["serve", "chat", "safety check"]),
    ("--device", ["generate", "serve", "ui chat"]),
    ("--split-file", ["tasks build", "classify train", "classify eval"]),
    ("--sample", ["data stats", "data split", "data export", "tasks build", "classify train", "classify eval", "classify benchmark"]),
    ("--language", ["data stats", "data split", "data export", "tasks build"]),
    ("--data-dir", ["tasks build", "classify train", "classify eval", "classify benchmark"]),
    ("--data-dir", ["data validate", "data stats", "data split", "data export"]),
    ("--metrics", ["evaluate", "report"]),
    ("--bertscore-model-en", ["evaluate", "report"]),
    ("--force", ["evaluate", "report"]),
]


@pytest.mark.parametrize(("flag", "commands"), SHARED, ids=[f"{f} {c[0]}" for f, c in SHARED])
def test_a_shared_option_is_the_same_in_every_command(flag: str, commands: list[str]) -> None:
    first = _option(commands[0], flag)
    for command in commands[1:]:
        other = _option(command, flag)
        assert (other.opts, other.secondary_opts, other.default, other.help, other.multiple) == (
            first.opts,
            first.secondary_opts,
            first.default,
            first.help,
            first.multiple,
        ), f"{flag} differs between {commands[0]} and {command}"


def test_every_seed_defaults_to_the_shared_seed() -> None:
    seeded = {name: _option(name, "--seed") for name, c in _commands().items() if any("--seed" in p.opts for p in c.params)}
    assert {"data split", "tasks build", "generate", "classify train", "classify eval", "classify benchmark", "ui rate"} <= set(seeded)
    assert {name: p.default for name, p in seeded.items()} == dict.fromkeys(seeded, options.DEFAULT_SEED)


@pytest.mark.parametrize("argv", [["data", "split", "--sample"], ["tasks", "build", "--sample"]])
def test_the_shared_language_option_takes_its_short_flag_and_names_itself(argv, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "-l", "fr", "--out", str(tmp_path / "out.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --language: "), err
