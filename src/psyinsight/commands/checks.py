"""Option checks every command runs before any work: one error per bad value, named by its option.

A command that loads a model, reads the release or writes a folder first calls these, so
``--top 0`` or ``-l fr`` fails in a second with ``error: --option: what``, not after the
work, and never with a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from psyinsight.data.schema import Language, parse_language
from psyinsight.data.splits import check_split
from psyinsight.errors import PsyInsightError
from psyinsight.fileio import check_writable


def language(value: str, option: str = "--language") -> Language:
    """``en``/``cn`` (and synonyms), or an error naming the option."""
    try:
        return parse_language(value)
    except ValueError as exc:
        raise PsyInsightError(str(exc), where=option) from None


def languages(values: Iterable[str] | None, option: str = "--language") -> list[Language] | None:
    """Each repeated ``-l`` parsed; None when none was given."""
    values = list(values or [])
    return [language(v, option) for v in values] if values else None


def at_least(value: int | float | None, low: int | float, option: str, *, zero_means: str | None = None) -> None:
    """``value >= low`` (None passes: the option was not given). ``zero_means`` allows 0 as a switch."""
    if value is None or (zero_means is not None and value == 0):
        return
    if value < low:
        also = f" (or 0: {zero_means})" if zero_means else ""
        raise PsyInsightError(f"must be at least {low}{also}, got {value}", where=option)


def between(value: float | None, low: float, high: float, option: str, *, open_low: bool = False) -> None:
    """``low <= value <= high`` (``low < value`` with ``open_low``); None passes."""
    if value is None:
        return
    if value > high or value < low or (open_low and value == low):
        bracket = "(" if open_low else "["
        raise PsyInsightError(f"must be in {bracket}{low}, {high}], got {value}", where=option)


def choice(value: str | None, allowed: Sequence[str], option: str) -> None:
    if value is not None and value not in allowed:
        raise PsyInsightError(f"unknown value {value!r}; choose from {', '.join(allowed)}", where=option)


def split_name(value: str, option: str = "--split") -> None:
    """A split name or ``all``."""
    check_split(value, option, also=("all",))


def one_source(sample: bool, files: Sequence[Path] | None, data_dir: Path | None) -> None:
    """``--sample``, ``--file`` and ``--data-dir`` each name the sessions: at most one may be given."""
    given = [name for name, on in (("--sample", sample), ("--file", bool(files)), ("--data-dir", data_dir is not None)) if on]
    if len(given) > 1:
        raise PsyInsightError(f"choose one source of sessions, got {' and '.join(given)}", where=given[1])


def output_file(path: Path | None, option: str) -> None:
    """The output file can be written (its folder exists or can be made): checked, nothing created."""
    if path is not None:
        check_writable(path, option=option)


def output_folder(path: Path | None, option: str) -> None:
    if path is not None:
        check_writable(path, folder=True, option=option)
