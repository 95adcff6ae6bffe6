"""``psyinsight tasks``: build instruction-tuning examples from a split."""

from __future__ import annotations

from pathlib import Path

import typer

from psyinsight.commands import add_group, options

HELP = "Build instruction-tuning examples (one per counselor turn) for each task."


def list_tasks() -> None:
    """List the tasks and what each one's target holds."""
    from psyinsight.tasks.examples import TASK_HELP

    for name, text in TASK_HELP.items():
        typer.echo(f"{name:22} {text}")


def build(
    out: Path = typer.Option(..., "--out", "-o", help="Output JSONL of Examples (a .manifest.json is written beside it)."),
    task: str = typer.Option(
        "dialog",
        "--task",
        "-t",
        help="dialog, reasoning, observation_reasoning, labels, aux_reasoning, aux_observation, mix or rag (see `tasks list`).",
    ),
    split: str = typer.Option("train", "--split", help="train, validation, test or all."),
    split_file: Path = options.SPLIT_FILE,
    seed: int = options.seed("Seed of the computed split and of the mix shuffle."),
    sample: bool = options.SAMPLE,
    data_dir: Path = options.data_dir(),
    files: list[Path] = options.files("A session file in the release format (repeatable)."),
    languages: list[str] = options.LANGUAGES,
    max_tokens: int = typer.Option(2048, "--max-tokens", help="Token budget of prompt + target; the oldest turns are dropped to fit (0: no limit)."),
    tokenizer: str = typer.Option(
        None, "--tokenizer", help="Count tokens with this model's tokenizer ('smollm2' or a folder); default: a tokenizer-free estimate."
    ),
    prompts_dir: Path = typer.Option(None, "--prompts-dir", help="Folder with en.yaml / cn.yaml replacing the packaged prompt templates."),
    rag_k: int = typer.Option(2, "--rag-k", help="rag: similar training sessions per prompt."),
    rag_method: str = typer.Option("bm25", "--rag-method", help="rag: bm25 or tfidf."),
    mix_schedule: str = typer.Option("sequential", "--mix-schedule", help="mix: sequential (auxiliary tasks first) or interleaved."),
    limit: int = typer.Option(0, "--limit", help="Keep only the first N examples (0: all)."),
) -> None:
    """Build one task's examples from one split and write them as JSONL."""
    from psyinsight import __version__
    from psyinsight.commands import checks
    from psyinsight.commands.data import load_input
    from psyinsight.fileio import sha256_file, write_json, write_jsonl
    from psyinsight.tasks.examples import TaskConfig, build_examples, select_split, tokenizer_counter

    checks.split_name(split)
    wanted = set(checks.languages(languages) or [])
    checks.at_least(max_tokens, 1, "--max-tokens", zero_means="no limit")
    checks.at_least(limit, 1, "--limit", zero_means="all")
    checks.at_least(rag_k, 1, "--rag-k")
    checks.choice(rag_method, ("bm25", "tfidf"), "--rag-method")
    checks.choice(mix_schedule, ("sequential", "interleaved"), "--mix-schedule")
    checks.output_file(out, "--out")
    config = TaskConfig(
        task=task,
        max_tokens=max_tokens or None,
        rag_k=rag_k,
        rag_method=rag_method,
        mix_schedule=mix_schedule,
        prompts_dir=str(prompts_dir) if prompts_dir else None,
        seed=seed,
    )
    everything = load_input(data_dir, sample, files, None)
    chosen, train, assignment = select_split(everything, split, split_file=split_file, seed=seed)
    if wanted:
        chosen = [s for s in chosen if s.language in wanted]
        train = [s for s in train if s.language in wanted]
    counter = None
    if tokenizer:
        from psyinsight.models import load_tokenizer

        counter = tokenizer_counter(load_tokenizer(tokenizer))
    result = build_examples(chosen, config, split=split, retrieval_pool=train, groups=assignment.groups or None, count_tokens=counter)
    examples = result.examples[:limit] if limit else result.examples
    write_jsonl(out, [e.model_dump() for e in examples])
    summary = result.summary()
    write_json(
        out.with_name(out.stem + ".manifest.json"),
        {
            "format": "psyinsight-tasks/1",
            "psyinsight": __version__,
            "config": config.__dict__,
            "split": split,
            "split_checksum": assignment.checksum(),
            "split_file": str(split_file) if split_file else None,
            "split_file_sha256": sha256_file(split_file) if split_file else None,
            "tokenizer": tokenizer,
            "sessions": len(chosen),
            "written": len(examples),
            **summary,
        },
    )
    skipped = ", ".join(f"{k} {v}" for k, v in summary["skipped"].items()) or "none"
    typer.echo(f"{len(examples)} {task} examples from {len(chosen)} {split} sessions -> {out}")
    typer.echo(f"skipped: {skipped}; oldest history turns dropped for the budget: {summary['dropped_history_turns']}")


def register(app: typer.Typer) -> None:
    add_group(app, "tasks", HELP, {"list": list_tasks, "build": build})
