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


API_HELP = (
    "An OpenAI-compatible endpoint (OpenAI, DeepSeek, vLLM, `psyinsight serve`): each example's messages go there "
    "instead of to a local model, and --model names the model it serves. Without --examples the prompts are built "
    "as for a local run without --adapter (the recipe's default model's tokenizer measures the budget); for identical "
    "inputs, build them once with `psyinsight tasks build` and give every run --examples."
)


def generate(
    out: Path = typer.Option(..., "--out", "-o", help="Predictions JSONL (one Prediction per Example id; resumes when it exists)."),
    adapter: Path = typer.Option(None, "--adapter", help="Adapter folder from `psyinsight train` (its base model, task and data are the defaults)."),
    model: str = typer.Option(
        None,
        "--model",
        help="Base model: 'smollm2', a folder or a hub id (default: the adapter's); with --base-url, the model name the endpoint serves.",
    ),
    examples: Path = typer.Option(None, "--examples", help="Examples JSONL from `psyinsight tasks build` (default: built from --split)."),
    split: str = typer.Option("test", "--split", help="Split to build examples from when --examples is not given."),
    task: str = typer.Option(None, "--task", help="Task of the built examples (default: the adapter's, else dialog)."),
    sample: bool = typer.Option(False, "--sample", help="Build examples from the bundled sample."),
    source: str = typer.Option(None, "--source", help="Sessions: sample, release or a session file (default: the adapter's)."),
    languages: list[str] = typer.Option(None, "--language", "-l", help="Only this language (repeatable)."),
    limit: int = typer.Option(0, "--limit", help="Generate for the first N examples only (0: all)."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", help="Most tokens per reply (sent as max_tokens with --base-url)."),
    do_sample: bool = typer.Option(False, "--sample-decoding/--greedy", help="Sample (seeded) or decode greedily (temperature 0 with --base-url)."),
    temperature: float = typer.Option(0.7, "--temperature", help="Sampling temperature."),
    top_p: float = typer.Option(0.9, "--top-p", help="Nucleus sampling mass."),
    seed: int = options.seed("Seed (local: batch i uses seed + i; with --base-url: sent as seed, for servers that take it)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Prompts per batch (left-padded)."),
    backend: str = typer.Option("transformers", "--backend", help="transformers, or vllm (GPU machines with vLLM installed)."),
    device: str = options.DEVICE,
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0: default)."),
    label: str = typer.Option(
        None,
        "--label",
        help="Model name written to each prediction's meta.model (default: recipe name + task, or the base model; with --base-url, --model).",
    ),
    base_url: str = options.base_url(None, API_HELP),
    api_key_env: str = options.api_key_env("With --base-url: the environment variable holding the API key (never logged or written)."),
    concurrency: int = options.concurrency("With --base-url: requests in flight at once."),
    retries: int = options.retries("With --base-url: retries per request on 429, 5xx, timeouts and unreadable bodies."),
    timeout: float = options.timeout(60.0, "With --base-url: seconds per request attempt."),
    cache: Path = options.llm_cache(
        "With --base-url: SQLite cache of answers (default: <out>.llm-cache.sqlite beside --out); a rerun asks nothing twice."
    ),
) -> None:
    """Generate counselor turns for examples, parse Observation / Reasoning / response, write predictions.

    A local model (transformers or vLLM), or with --base-url an API model given the very same
    prompt messages; a request that still fails after its retries is left out (the next run asks
    again), and the command then exits 2.
    """
    import dataclasses

    from psyinsight.commands import checks
    from psyinsight.errors import PsyInsightError
    from psyinsight.generate.generation import GenerationConfig, generate_predictions
    from psyinsight.models import check_adapter_dir, read_adapter_meta, resolve_model_path
    from psyinsight.records import base_label
    from psyinsight.tasks.examples import load_examples
    from psyinsight.train.recipe import Recipe, recipe_of_adapter

    api = base_url is not None
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
    if api:
        cache = _check_api_options(base_url, model, adapter, backend, concurrency, retries, timeout, cache, out)
        unused = {"--device": device is not None, "--threads": threads != 0, "--batch-size": batch_size != 8}
    else:
        unused = {
            "--api-key-env": api_key_env != options.DEFAULT_API_KEY_ENV,
            "--concurrency": concurrency != 8,
            "--retries": retries != 4,
            "--timeout": timeout != 60.0,
            "--cache": cache is not None,
        }
    if any(unused.values()):
        given = ", ".join(name for name, used in unused.items() if used)
        typer.echo(f"warning: {given} {'do' if ', ' in given else 'does'} nothing {'with' if api else 'without'} --base-url", err=True)
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

        # An API model has no local tokenizer: the budget is measured as a local run without --adapter measures it.
        rows, skipped, _ = build_split_examples(recipe, split, load_tokenizer(recipe.model.name if api else base))
        if skipped:
            typer.echo("skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
    if limit:
        rows = rows[:limit]
    config = GenerationConfig(max_new_tokens, do_sample, temperature, top_p, seed, batch_size)
    if label is None:
        if api:
            label = model
        else:
            label = f"{recipe.name}:{meta.get('task', recipe.tasks.task)}" if meta else base_label(base)
    if threads and not api:
        import torch

        torch.set_num_threads(threads)
    if api:
        from psyinsight.llm import LLMConfig

        llm = LLMConfig(
            base_url=base_url,
            model=model,
            api_key_env=api_key_env,
            max_concurrency=concurrency,
            max_retries=retries,
            timeout_s=timeout,
            cache_path=cache,
        )
        typer.echo(f"generate: {model} at {base_url} (key from ${api_key_env})", err=True)
        report = generate_predictions(rows, out, config=config, backend="api", llm=llm, model_label=label)
    elif backend == "vllm":
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
    written = str(report.output) if report.total else "nothing written"
    line = (
        f"{report.total} predictions -> {written} ({report.generated} generated, {report.resumed} resumed, {report.failed} failed, "
        f"{report.parse_failures} parse failures kept, {report.seconds}s)"
    )
    if report.llm is not None:
        usage = report.llm
        line += (
            f"; requests {usage['requests_made']}, cache hits {usage['cache_hits']}, retries {usage['retries']}, "
            f"tokens {usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion"
        )
    typer.echo(line)
    if report.failed:
        kept = (
            "nothing was written"
            if not report.total
            else ("nothing new was written" if not report.generated else f"the others are in {report.output}")
        )
        raise PsyInsightError(
            f"{report.failed} of {len(rows)} examples got no prediction (first: {report.first_error}); {kept}; "
            "rerun the same command to ask only for the missing ones",
            where="generate",
        )


def _check_api_options(
    base_url: str,
    model: str | None,
    adapter: Path | None,
    backend: str,
    concurrency: int,
    retries: int,
    timeout: float,
    cache: Path | None,
    out: Path,
) -> Path:
    """The options of an API run are consistent; returns the cache file (default: beside --out)."""
    import re

    from psyinsight.commands import checks

    if adapter is not None:
        raise PsyInsightError(
            "an API model takes no adapter; serve the adapter with `psyinsight serve --adapter` and point --base-url at it", where="--adapter"
        )
    if backend != "transformers":
        raise PsyInsightError(f"--base-url sends the prompts to the endpoint; leave out --backend {backend}", where="--backend")
    if not re.match(r"^https?://", base_url):
        raise PsyInsightError(f"{base_url!r} is not an http(s) URL; use e.g. https://api.openai.com/v1", where="--base-url")
    if not model:
        raise PsyInsightError("name the model the endpoint serves, e.g. --model gpt-4o-mini", where="--model")
    checks.at_least(concurrency, 1, "--concurrency")
    checks.at_least(retries, 0, "--retries")
    if timeout <= 0:
        raise PsyInsightError(f"must be above 0 seconds, got {timeout}", where="--timeout")
    cache = cache if cache is not None else out.with_name(out.name + ".llm-cache.sqlite")
    checks.output_file(cache, "--cache")
    return cache


def register(app: typer.Typer) -> None:
    add_commands(app, {"train": train, "merge": merge, "generate": generate})
