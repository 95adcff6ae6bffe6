"""The ``psyinsight`` command line: one Typer app, one sub-module per area.

Each area's commands live in ``psyinsight.commands.<area>`` and import their heavy
dependencies (torch, transformers, gradio) inside the command functions, so ``--help``
stays fast. A ``PsyInsightError`` is printed as one line and exits with status 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

from psyinsight import __version__
from psyinsight.errors import PsyInsightError

START_HERE = (
    "Start here (offline; data commands take --sample when the release is absent):\n\n"
    "1. psyinsight data stats --sample              the data, in numbers\n"
    "2. psyinsight train cpu-default --set training.max_steps=20\n"
    "3. psyinsight evaluate PRED.jsonl --bertscore-model-en minilm\n\n"
    "Explainable bilingual counseling dialogue: the Psy-Insight data, models and evaluation. "
    "The release is read from $PSYINSIGHT_DATA_DIR (or --data-dir); see README.md."
)

COMMAND_ORDER = (
    "data",
    "tasks",
    "train",
    "generate",
    "evaluate",
    "report",
    "merge",
    "judge",
    "agreement",
    "experiment",
    "classify",
    "chat",
    "serve",
    "safety",
    "ui",
    "build",
)
"""The order of `psyinsight --help`: a newcomer's path first (typer would list groups last)."""


class _Ordered(typer.core.TyperGroup):
    def list_commands(self, ctx):  # type: ignore[no-untyped-def]
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: (COMMAND_ORDER.index(n) if n in COMMAND_ORDER else len(COMMAND_ORDER), n))


app = typer.Typer(
    name="psyinsight",
    cls=_Ordered,
    help=START_HERE,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines ``register(app)``, adding its commands or sub-apps.
# The order is the order of `psyinsight --help`: a newcomer's path first.
COMMAND_MODULES = [
    "psyinsight.commands.data",
    "psyinsight.commands.tasks",
    "psyinsight.commands.train",
    "psyinsight.commands.evaluate",
    "psyinsight.commands.experiment",
    "psyinsight.commands.classify",
    "psyinsight.commands.serve",
    "psyinsight.commands.safety",
    "psyinsight.commands.ui",
    "psyinsight.commands.build",
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"psyinsight {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """The commands' shared entry: only ``--version`` lives here."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def _fail(message: str) -> None:
    """The one error line every command prints, then exit 2."""
    typer.echo(f"error: {message}", err=True)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning project errors into one line and exit 2."""
    from psyinsight.quiet import quiet_libraries

    quiet_libraries()
    try:
        result = app(args=argv, standalone_mode=False)
    except PsyInsightError as exc:
        _fail(str(exc))
    except OSError as exc:
        # Writing an output failed (permission, not a folder, disk full): the user can fix it.
        from psyinsight.fileio import os_error_message

        _fail(os_error_message(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        # Usage errors (unknown command, bad option) come from the click that typer bundles:
        # they know how to show themselves and carry their exit code (2).
        if callable(getattr(exc, "format_message", None)) and isinstance(getattr(exc, "exit_code", None), int):
            ctx = getattr(exc, "ctx", None)
            if ctx is not None:
                typer.echo(ctx.get_usage(), err=True)
                typer.echo(f"Try '{ctx.command_path} --help' for help.", err=True)
            typer.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        raise
    # Without standalone mode, click returns typer.Exit's code instead of raising it.
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
