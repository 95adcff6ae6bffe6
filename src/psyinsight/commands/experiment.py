"""``psyinsight experiment``: the paper's table (base model and task variants) from one YAML."""

from __future__ import annotations

from pathlib import Path

import typer

from psyinsight.commands import add_commands


def experiment(
    file: Path = typer.Argument(..., help="An experiment YAML (see experiments/ablation-cpu.yaml)."),
    set_: list[str] = typer.Option(
        None, "--set", help="Override a setting, e.g. --set test.examples=20 or --set settings.training.max_steps=50 (repeatable)."
    ),
    output_dir: Path = typer.Option(None, "--output-dir", help="Where the stages write (overrides output_dir); a rerun resumes there."),
    show: bool = typer.Option(False, "--show", help="Print the resolved experiment and exit."),
    plan_only: bool = typer.Option(False, "--plan", help="Only plan: which variants each language supports and the test turns, then exit."),
) -> None:
    """Train each task variant with one budget, generate for the base model and every adapter on the same test turns, score, report with CIs."""
    import dataclasses
    import json

    from psyinsight.commands import checks
    from psyinsight.experiment.config import load_experiment
    from psyinsight.experiment.runner import Experiment

    overrides = list(set_ or [])
    if output_dir is not None:
        overrides.append(f"output_dir={json.dumps(str(output_dir))}")
    config = load_experiment(file, overrides)
    if show:
        typer.echo(json.dumps(dataclasses.asdict(config), indent=2, ensure_ascii=False))
        return
    checks.output_folder(Path(config.output_dir), "--output-dir" if output_dir is not None else "output_dir")
    runner = Experiment(config, log=typer.echo)
    if plan_only:
        runner.plan()
        typer.echo(f"wrote {Path(config.output_dir) / 'plan.json'}")
        return
    paths = runner.run()
    for kind, path in paths.items():
        typer.echo(f"wrote {kind:<10} {path}")


def register(app: typer.Typer) -> None:
    add_commands(app, {"experiment": experiment})
