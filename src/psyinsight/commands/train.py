"""``psyinsight train``, ``merge`` and ``generate``: the counselor model's life cycle."""

from __future__ import annotations

from pathlib import Path

import typer

from psyinsight.commands import add_commands, options
from psyinsight.errors import PsyInsightError


def train(
    recipe: str = typer.Argument(..., help="A recipe YAML, or a shipped recipe name: cpu-default, mistral-7b-en, glm4-9b-zh."),
    set_: list[str] = typer.Option(None, "--set", help="Override a setting, e.g. --set training.max_steps=300 (repeatable)."),
    output_dir: Path = typer.Option(None, "--output-dir", help="Where checkpoints and the adapter go (overrides training.output_dir)."),
    resume: str = typer.Option(
        "auto", "--resume", help="auto: continue from the last checkpoint in the output folder; none: start over; or a checkpoint folder."
    ),
    show: bool = typer.Option(False, "--show", help="Print the resolved recipe and exit without training."),
) -> None:
    """Fine-tune a LoRA adapter with the prompt-loss-weighted trainer (validate → setup → train → save)."""
    import json

    from psyinsight.train.recipe import find_recipe, load_recipe

    overrides = list(set_ or [])
    if output_dir is not None:
        overrides.append(f"training.output_dir={output_dir}")
    cfg = load_recipe(recipe, overrides)
    if show:
        typer.echo(json.dumps(cfg.to_dict(), indent=2, ensure_ascii=False))
        return
    from psyinsight.commands import checks

    if resume not in ("auto", "none") and not Path(resume).is_dir():
        raise PsyInsightError("expected auto, none or a checkpoint folder", path=resume, where="--resume")
    checks.output_folder(Path(cfg.training.output_dir), "--output-dir" if output_dir is not None else "training.output_dir")
    from psyinsight.train.runner import run_recipe

    adapter, metrics = run_recipe(cfg, resume=resume, recipe_path=str(find_recipe(recipe)))
    typer.echo(json.dumps(metrics, indent=2, ensure_ascii=False))
    typer.echo(f"adapter -> {adapter}")


def merge(
    adapter: Path = typer.Argument(..., help="Adapter folder written by `psyinsight train` (…/adapter)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the merged model."),
    base: str = typer.Option(None, "--base", help="Base model (default: the one recorded with the adapter)."),
    dtype: str = typer.Option(None, "--dtype", help="float32, bfloat16 or float16 (default: float32 on CPU)."),
) -> None:
    """Fold a LoRA adapter into its base model and save a plain transformers folder."""
    from psyinsight.commands import checks
    from psyinsight.models import check_adapter_dir
    from psyinsight.train.runner import merge_adapter

    checks.choice(dtype, ("float32", "bfloat16", "float16"), "--dtype")
    checks.output_folder(out, "--out")
    check_adapter_dir(adapter)

    typer.echo(f"merged -> {merge_adapter(adapter, out, base=base, dtype=dtype)}")


def generate(
    out: Path = typer.Option(..., "--out", "-o", help="Predictions JSONL (one Prediction per Example id; resumes when it exists)."),
    adapter: Path = typer.Option(None, "--adapter", help="Adapter folder from `psyinsight train` (its base model, task and data are the defaults)."),
    model: str = typer.Option(None, "--model", help="Base model: 'smollm2', a folder or a hub id (default: the adapter's)."),
    examples: Path = typer.Option(None, "--examples", help="Examples JSONL from `psyinsight tasks build` (default: built from --split)."),
    split: str = typer.Option("test", "--split", help="Split to build examples from when --examples is not given."),
    task: str = typer.Option(None, "--task", help="Task of the built examples (default: the adapter's, else dialog)."),
    sample: bool = typer.Option(False, "--sample", help="Build examples from the bundled sample."),
    source: str = typer.Option(None, "--source", help="Sessions: sample, release or a session file (default: the adapter's)."),
    languages: list[str] = typer.Option(None, "--language", "-l", help="Only this language (repeatable)."),
    limit: int = typer.Option(0, "--limit", help="Generate for the first N examples only (0: all)."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", help="Most tokens per reply."),
    do_sample: bool = typer.Option(False, "--sample-decoding/--greedy", help="Sample (seeded) or decode greedily."),
    temperature: float = typer.Option(0.7, "--temperature", help="Sampling temperature."),
    top_p: float = typer.Option(0.9, "--top-p", help="Nucleus sampling mass."),
    seed: int = options.seed("Seed (batch i uses seed + i)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Prompts per batch (left-padded)."),
    backend: str = typer.Option("transformers", "--backend", help="transformers, or vllm (GPU machines with vLLM installed)."),
    device: str = options.DEVICE,
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0: default)."),
    label: str = typer.Option(
        None, "--label", help="Model name written to each prediction's meta.model (default: recipe name + task, or the base model)."
    ),
) -> None:
    """Generate counselor turns for examples, parse Observation / Reasoning / response, write predictions."""
    import dataclasses

    from psyinsight.commands import checks
    from psyinsight.errors import PsyInsightError
    from psyinsight.generate.generation import GenerationConfig, generate_predictions
    from psyinsight.models import check_adapter_dir, read_adapter_meta, resolve_model_path
    from psyinsight.tasks.examples import load_examples
    from psyinsight.train.recipe import Recipe, recipe_of_adapter

    checks.split_name(split)
    wanted = checks.languages(languages)
    checks.at_least(limit, 1, "--limit", zero_means="all")
    checks.at_least(max_new_tokens, 1, "--max-new-tokens")
    checks.at_least(batch_size, 1, "--batch-size")
    checks.at_least(threads, 1, "--threads", zero_means="torch's default")
    checks.choice(backend, ("transformers", "vllm"), "--backend")
    if do_sample:
        if temperature <= 0:
            raise PsyInsightError(f"must be above 0 when sampling, got {temperature}", where="--temperature")
        checks.between(top_p, 0.0, 1.0, "--top-p", open_low=True)
    if sample and source:
        raise PsyInsightError(f"choose one source of sessions, got --sample and --source {source}", where="--source")
    if examples is not None and (sample or source):
        raise PsyInsightError("--examples already gives the examples; leave out --sample/--source", where="--examples")
    checks.output_file(out, "--out")
    meta = read_adapter_meta(check_adapter_dir(adapter)) if adapter else {}
    recipe = recipe_of_adapter(adapter) if adapter else Recipe()
    base = model or meta.get("base_model") or recipe.model.name
    if examples is not None:
        rows = load_examples(examples)
    else:
        data = recipe.data
        if sample:
            data = dataclasses.replace(data, source="sample", split_file=None)
        elif source:
            data = dataclasses.replace(data, source=source, split_file=None)
        if wanted:
            data = dataclasses.replace(data, languages=wanted)
        tasks = dataclasses.replace(recipe.tasks, task=task) if task else recipe.tasks
        recipe = dataclasses.replace(recipe, data=data, tasks=tasks)
        from psyinsight.models import load_tokenizer
        from psyinsight.train.runner import build_split_examples

        rows, skipped, _ = build_split_examples(recipe, split, load_tokenizer(base))
        if skipped:
            typer.echo("skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
    if limit:
        rows = rows[:limit]
    config = GenerationConfig(max_new_tokens, do_sample, temperature, top_p, seed, batch_size)
    if label is None:
        label = f"{recipe.name}:{meta.get('task', recipe.tasks.task)}" if meta else f"{Path(str(base)).name} (base)"
    if threads:
        import torch

        torch.set_num_threads(threads)
    if backend == "vllm":
        report = generate_predictions(
            rows,
            out,
            config=config,
            backend="vllm",
            vllm_model=str(resolve_model_path(base)),
            vllm_adapter=str(adapter) if adapter else None,
            model_label=label,
        )
    else:
        from psyinsight.models import load_model_and_tokenizer

        lm, tok = load_model_and_tokenizer(base, adapter, device=device)
        report = generate_predictions(rows, out, model=lm, tokenizer=tok, config=config, backend=backend, model_label=label)
    typer.echo(
        f"{report.total} predictions -> {report.output} ({report.generated} generated, {report.resumed} resumed, "
        f"{report.parse_failures} parse failures kept, {report.seconds}s)"
    )


def register(app: typer.Typer) -> None:
    add_commands(app, {"train": train, "merge": merge, "generate": generate})
