"""``psyinsight data``: fetch, validate, describe, split and export the release."""

from __future__ import annotations

from pathlib import Path

import typer

from psyinsight.commands import add_group, checks, options
from psyinsight.errors import PsyInsightError

HELP = "Get, check, describe, split and export the Psy-Insight data."

DATA_DIR = options.data_dir("Folder with the release files (default: $PSYINSIGHT_DATA_DIR, ../shared/data/psy-insight, or the fetch cache).")
FILES = options.files("A session file in the release format (repeatable); overrides --data-dir.")


def load_input(data_dir: Path | None, sample: bool, files: list[Path] | None, languages: list[str] | None, *, repair: bool = True):
    """The sessions a data command works on: files, the sample, or the release (one of them)."""
    from psyinsight.data.release import load_release, load_sessions
    from psyinsight.data.sample import sample_sessions
    from psyinsight.data.schema import LANGUAGES

    checks.one_source(sample, files, data_dir)
    wanted = checks.languages(languages) or list(LANGUAGES)
    if files:
        sessions = [s for f in files for s in load_sessions(f, repair=repair)]
    elif sample:
        sessions = sample_sessions(repair=repair)
    else:
        return load_release(data_dir, wanted, repair=repair)
    return [s for s in sessions if s.language in wanted]


def fetch(
    dest: Path = typer.Option(None, "--dest", help="Where to store the files (default: the user cache folder)."),
    source: Path = typer.Option(None, "--source", help="Copy from this local folder instead of downloading."),
    base_url: str = typer.Option(None, "--base-url", help="Download from this address instead of the release's public one."),
    timeout: float = typer.Option(60.0, help="Seconds to wait for the server."),
) -> None:
    """Download the v7 release files, verify their SHA-256, and cache them."""
    from psyinsight.data.fetch import DEFAULT_BASE_URL, fetch_release

    if timeout <= 0:
        raise PsyInsightError(f"must be above 0 seconds, got {timeout}", where="--timeout")
    checks.output_folder(dest, "--dest")
    for path in fetch_release(dest, source=source, base_url=base_url or DEFAULT_BASE_URL, timeout=timeout):
        typer.echo(f"ok  {path}")


def validate(
    files: list[Path] = typer.Argument(None, help="Files to check (default: the release files)."),
    data_dir: Path = DATA_DIR,
    sample: bool = typer.Option(False, "--sample", help="Check the bundled synthetic sample files instead of the release."),
    show: int = typer.Option(20, "--show", help="How many findings to list in full (0: only the summary; -1: all)."),
    notes: bool = typer.Option(False, "--notes", help="List notes (not wrong, worth knowing) as well as problems."),
    json_out: Path = typer.Option(None, "--json", help="Write every finding to this JSON file."),
) -> None:
    """Check files strictly: exit 0 when clean, 1 with problems, 2 when unusable."""
    from psyinsight.data.release import release_files
    from psyinsight.data.sample import SAMPLE_FILES, sample_path
    from psyinsight.data.validate import describe, validate_files
    from psyinsight.fileio import write_json

    checks.one_source(sample, files, data_dir)
    if show < -1:
        raise PsyInsightError(f"must be -1 (all), 0 (summary only) or a positive count, got {show}", where="--show")
    checks.output_file(json_out, "--json")
    if sample:
        paths = [sample_path(lang) for lang in SAMPLE_FILES]
    else:
        paths = files or list(release_files(data_dir).values())
    report = validate_files(paths)
    typer.echo(f"{'severity':8}  {'rule':26} {'count':>6}  file / meaning")
    for path in report.files:
        per_file = [f for f in report.findings if f.file == path]
        counts: dict[tuple[str, str], int] = {}
        for f in per_file:
            counts[(f.severity, f.rule)] = counts.get((f.severity, f.rule), 0) + 1
        typer.echo(f"-- {path}: {len(per_file)} finding(s)")
        for (severity, rule), n in sorted(counts.items()):
            typer.echo(f"{severity:8}  {rule:26} {n:6d}  {describe(rule)}")
    listed = [f for f in report.findings if notes or f.severity != "note"]  # problems and suspects always
    if show:
        for f in listed if show < 0 else listed[:show]:
            typer.echo(f"{f.severity}: {f.location}: [{f.rule}] {f.message}")
        if 0 <= show < len(listed):
            typer.echo(f"... {len(listed) - show} more (use --show -1, or --json FILE)")
    if json_out:
        write_json(json_out, [f.to_dict() for f in report.findings])
    problems, suspects = len(report.problems), len(report.suspects)
    typer.echo(f"{problems} problem(s), {suspects} suspect(s), {len(report.findings) - problems - suspects} note(s) in {len(report.files)} file(s)")
    raise typer.Exit(1 if problems else 0)


def stats(
    data_dir: Path = DATA_DIR,
    sample: bool = options.SAMPLE,
    files: list[Path] = FILES,
    languages: list[str] = options.LANGUAGES,
    out: Path = typer.Option(Path("runs/stats"), "--out", help="Folder for stats.md, stats.csv, labels.csv and figures/."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw the label distributions as PNG."),
) -> None:
    """The paper's statistics table per language, as released and after repair, plus label distributions."""
    from psyinsight.data.stats import compute_stats, write_stats
    from psyinsight.fileio import write_text

    checks.languages(languages)
    checks.output_folder(out, "--out")
    released = compute_stats(load_input(data_dir, sample, files, languages, repair=False))
    repaired = compute_stats(load_input(data_dir, sample, files, languages, repair=True))
    write_stats(repaired, out, figures=figures)
    write_text(out / "stats_as_released.md", released.markdown("Psy-Insight statistics, as released"))
    write_text(out / "stats_as_released.csv", released.table_csv())
    typer.echo("As released:")
    for row in released.table:
        typer.echo(
            f"  {row.language}: {row.sessions:,} sessions / {row.utterances:,} utterances "
            f"({row.client_turns:,} client, {row.counselor_turns:,} counselor; {row.utterances_per_session} per session); "
            f"turn reasoning {row.turn_reasoning:,}, observation {row.turn_observation:,}"
        )
    typer.echo("After repair:")
    for row in repaired.table:
        typer.echo(f"  {row.language}: {row.sessions:,} sessions / {row.utterances:,} utterances")
    typer.echo(f"wrote {out}/stats.md, stats.csv, labels.csv, stats_as_released.* and {'figures/' if figures else 'no figures'}")


def split(
    data_dir: Path = DATA_DIR,
    sample: bool = options.SAMPLE,
    files: list[Path] = FILES,
    languages: list[str] = options.LANGUAGES,
    out: Path = typer.Option(Path("runs/splits.json"), "--out", help="Where to write the assignment (JSON)."),
    seed: int = options.seed("Random seed: the same seed and data give the same split."),
    ratios: str = typer.Option(
        "0.8,0.1,0.1",
        "--ratios",
        help="train,validation,test shares (sum to 1). Each share is met both in sessions (within 2 points) "
        "and in utterances (within 3 points), per language; cases and shared utterances stay on one side.",
    ),
) -> None:
    """Leak-free train/validation/test split, grouped by case and shared utterances.

    Shares count sessions and utterances alike; splits.json also records the mean session
    length of each split and the KS statistic between train and test session lengths.
    """
    from psyinsight.data.splits import assign_splits, check_ratios, leaks, split_balance

    try:
        shares = [float(x) for x in ratios.split(",")]
    except ValueError:
        raise PsyInsightError(f"expected three numbers like 0.8,0.1,0.1, got {ratios!r}", where="--ratios") from None
    check_ratios(shares, option="--ratios")
    checks.languages(languages)
    checks.output_file(out, "--out")
    sessions = load_input(data_dir, sample, files, languages)
    assignment = assign_splits(sessions, seed=seed, ratios=shares)
    balance = split_balance(sessions, assignment)
    assignment.save(out, balance=balance)
    for name, row in balance["splits"].items():
        typer.echo(
            f"{name:10} {row['sessions']:5d} sessions ({row['session_share']:.1%}) {row['utterances']:7,d} utterances "
            f"({row['utterance_share']:.1%}), {row['mean_session_length']:.3g} per session"
        )
    ks = balance["train_test_ks"]
    typer.echo(f"session length train vs test: KS statistic {ks['statistic']:.3g} (p {ks['pvalue']:.3g})")
    typer.echo(f"groups: {len(set(assignment.groups.values()))}; shared utterances train/test: {len(leaks(sessions, assignment))}")
    typer.echo(f"wrote {out} (checksum {assignment.checksum()[:12]})")


def export(
    out: Path = typer.Argument(..., help="Output file (or folder for --format hf)."),
    fmt: str = typer.Option(
        "jsonl",
        "--format",
        help="json | jsonl | hf (save_to_disk) | parquet | chat (messages). hf and parquet rename a few fields: see the README's table.",
    ),
    data_dir: Path = DATA_DIR,
    sample: bool = options.SAMPLE,
    files: list[Path] = FILES,
    languages: list[str] = options.LANGUAGES,
    raw: bool = options.RAW,
    splits: Path = typer.Option(
        None,
        "--splits",
        help="A split file: write one output per split (OUT_train, OUT_validation, OUT_test); with --format hf, one DatasetDict folder.",
    ),
) -> None:
    """Export sessions (repaired, with their repair log) as JSON, JSONL, HF datasets, Parquet or chat messages."""
    from psyinsight.data.export import EXPORT_FORMATS, export_hf_splits, export_sessions
    from psyinsight.data.splits import SPLITS, SplitAssignment

    checks.choice(fmt, EXPORT_FORMATS, "--format")
    checks.languages(languages)
    if fmt == "hf":
        checks.output_folder(out, "OUT")
    elif splits is None:
        checks.output_file(out, "OUT")
    else:
        for name in SPLITS:
            checks.output_file(out.with_name(f"{out.stem}_{name}{out.suffix}"), "OUT")
    assignment = SplitAssignment.load(splits) if splits is not None else None
    sessions = load_input(data_dir, sample, files, languages, repair=not raw)
    if assignment is None:
        typer.echo(f"wrote {export_sessions(sessions, out, fmt)} ({len(sessions)} sessions)")
        return
    if fmt == "hf":
        parts = {name: assignment.select(sessions, name) for name in SPLITS}
        counts = ", ".join(f"{name} {len(chosen)}" for name, chosen in parts.items())
        typer.echo(f"wrote {export_hf_splits(parts, out)} (one DatasetDict: {counts} sessions)")
        return
    for name in SPLITS:
        chosen = assignment.select(sessions, name)
        target = out.with_name(f"{out.stem}_{name}{out.suffix}")
        typer.echo(f"wrote {export_sessions(chosen, target, fmt)} ({len(chosen)} sessions)")


def register(app: typer.Typer) -> None:
    add_group(app, "data", HELP, {"fetch": fetch, "validate": validate, "stats": stats, "split": split, "export": export})
