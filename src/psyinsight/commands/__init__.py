"""CLI command groups, one module per area (see ``psyinsight.cli``).

Every area module defines its commands as module-level functions and one ``register(app)``
that adds them through :func:`add_commands` (top-level commands) or :func:`add_group`
(``psyinsight <area> <command>``), so each command is registered the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import typer


def add_commands(app: typer.Typer, commands: dict[str, Callable[..., None]]) -> None:
    """Register module-level command functions on ``app``, in the order given (the order of ``--help``)."""
    for name, function in commands.items():
        app.command(name)(function)


def add_group(app: typer.Typer, name: str, help: str, commands: dict[str, Callable[..., None]]) -> None:
    """Register ``commands`` as the sub-command group ``psyinsight <name>``."""
    group = typer.Typer(help=help, no_args_is_help=True)
    add_commands(group, commands)
    app.add_typer(group, name=name)
