"""``psyinsight build``: raw counseling text to a Psy-Insight dataset (spec.md section 2)."""

from __future__ import annotations

from pathlib import Path

import typer

from psyinsight.commands import add_commands, options


def build(
    raw_dir: Path = typer.Argument(None, help="A raw .txt/.md/.jsonl file, or a folder of them (default: the bundled raw excerpts)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: en_data.json / cn_data.json, failures.jsonl, report.json, cache/."),
    base_url: str = options.base_url("http://127.0.0.1:8000/v1", "OpenAI-compatible endpoint (e.g. `psyinsight serve`, vLLM, OpenAI)."),
    model: str = typer.Option("default", "--model", help="Model name sent to the endpoint."),
    api_key_env: str = options.api_key_env("Environment variable holding the API key (never stored or logged)."),
    no_llm: bool = typer.Option(False, "--no-llm", help="Rules only: segment, turns and anonymise, no LLM annotation (labels become Unknown)."),
    concurrency: int = typer.Option(8, "--concurrency", help="LLM requests in flight at once."),
    max_retries: int = typer.Option(4, "--max-retries", help="Retries per request on 429, 5xx and timeouts."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds per LLM request attempt."),
    window: int = typer.Option(5, "--window", help="Turns per observation/reasoning window."),
    max_context_chars: int = typer.Option(
        1500, "--max-context-chars", help="Narrative characters per prompt (shorter prompts are cheaper and faster)."
    ),
    batch_size: int = typer.Option(16, "--batch-size", help="Session units per annotation batch (each batch is stored when done)."),
    max_tokens: int = typer.Option(
        None,
        "--max-tokens",
        help="One completion token limit for every task (default: per task, see AnnotateConfig); equal limits let a local server batch requests together.",
    ),
    max_tokens_scale: float = typer.Option(
        1.0, "--max-tokens-scale", help="Multiply every task's completion token limit (e.g. 0.25 for a quick trial)."
    ),
    prompt_price: float = typer.Option(0.0, "--prompt-price", help="Price per million prompt tokens, for the cost in the report."),
    completion_price: float = typer.Option(0.0, "--completion-price", help="Price per million completion tokens, for the cost in the report."),
    llm_cache: Path = typer.Option(None, "--llm-cache", help="SQLite LLM cache (default: OUT/cache/llm.sqlite); share it between runs to pay once."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    labeller: str = typer.Option(
        None,
        "--labeller",
        help="classify:<model dir>: saved label classifiers (one `classify train` folder or a folder of them) fill missing labels and check the LLM's; disagreements go to the report.",
    ),
    structured: str = typer.Option(
        "auto",
        "--structured",
        help="Annotation schemas: auto (sent as response_format json_schema; json_object once the server rejects it), json_schema, json_object.",
    ),
) -> None:
    """Build a dataset from raw counseling text: ingest, segment, turns, anonymise, annotate, assemble.

    Every step is cached by the hash of its input: rerun the same command after an
    interruption and it resumes without repeating a successful LLM call.
    """
    from psyinsight.build.annotate import AnnotateConfig
    from psyinsight.build.ingest import sample_raw_dir
    from psyinsight.build.pipeline import BuildConfig, run_build
    from psyinsight.commands import checks
    from psyinsight.errors import PsyInsightError
    from psyinsight.llm import LLMConfig

    for value, low, option in (
        (concurrency, 1, "--concurrency"),
        (max_retries, 0, "--max-retries"),
        (window, 1, "--window"),
        (max_context_chars, 1, "--max-context-chars"),
        (batch_size, 1, "--batch-size"),
        (prompt_price, 0, "--prompt-price"),
        (completion_price, 0, "--completion-price"),
    ):
        checks.at_least(value, low, option)
    if timeout <= 0:
        raise PsyInsightError(f"must be above 0 seconds, got {timeout}", where="--timeout")
    if max_tokens_scale <= 0:
        raise PsyInsightError(f"must be above 0, got {max_tokens_scale}", where="--max-tokens-scale")
    if max_tokens is not None and max_tokens_scale != 1.0:
        raise PsyInsightError("give --max-tokens or --max-tokens-scale, not both", where="--max-tokens-scale")
    checks.output_folder(out, "--out")
    if llm_cache is not None:
        checks.output_file(llm_cache, "--llm-cache")
    annotate = AnnotateConfig(window=window, max_context_chars=max_context_chars)
    if max_tokens is not None:
        if max_tokens < 1:
            raise PsyInsightError(f"must be at least 1, got {max_tokens}", where="--max-tokens")
        annotate.max_tokens = dict.fromkeys(annotate.max_tokens, max_tokens)
    elif max_tokens_scale != 1.0:
        annotate.max_tokens = {k: max(8, int(v * max_tokens_scale)) for k, v in annotate.max_tokens.items()}
    llm = None
    if not no_llm:
        llm = LLMConfig(
            base_url=base_url,
            model=model,
            api_key_env=api_key_env,
            max_concurrency=concurrency,
            max_retries=max_retries,
            timeout_s=timeout,
            cache_path=llm_cache,
            prompt_price_per_mtok=prompt_price,
            completion_price_per_mtok=completion_price,
            progress=progress,
            structured=structured,
        )
    config = BuildConfig(raw_dir=raw_dir or sample_raw_dir(), out_dir=out, llm=llm, annotate=annotate, batch_size=batch_size, labeller=labeller)
    report = run_build(config, log=lambda message: typer.echo(message, err=True))
    _summary(report, out)


def _plain(value: object) -> str:
    """A count, or counts per key (``en 1, cn 2``): never a Python dict repr on screen."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in sorted(value.items())) or "0"
    return str(value)


def _summary(report: dict, out: Path) -> None:
    counts = {k: _plain(v) for k, v in report["counts"].items()}
    typer.echo(
        f"sessions: {counts['sessions']}  turns: {counts['turns']}  units: {counts['units']}  "
        f"unsure pieces: {counts['unsure_pieces']} (resolved by LLM: {counts['resolved_by_llm']})"
    )
    for piece in report.get("unsure_pieces", []):
        if not piece["resolved"]:
            typer.echo(f"unsure: {piece['file']}:{piece['line']} [{piece['start']}:{piece['end']}] {piece['reason']} (kept as {piece['kind']})")
    failures = report["failures"]
    by_task = ", ".join(f"{task} {n}" for task, n in sorted((failures["by_task"] or {}).items()))
    typer.echo(f"failures: {failures['total']}" + (f" ({by_task})" if by_task else ""))
    if "llm_usage" in report:
        usage = report["llm_usage"]
        typer.echo(
            f"llm: {usage['requests_made']} requests, {usage['cache_hits']} cache hits, "
            f"{usage['prompt_tokens']}+{usage['completion_tokens']} tokens, cost {usage['cost']:.4f}, "
            f"answers constrained by: {usage.get('structured_output', 'not used')}"
        )
    for check in report["validation"].values():
        typer.echo(
            f"validator {check['file']}: {'accepted' if check['accepted'] else 'REJECTED'} ({len(check['problems'])} problems, "
            f"{len(check.get('suspects', []))} suspect turns)"
        )
        for finding in check.get("suspects", [])[:10]:
            typer.echo(f"  suspect: dialog_id={finding['dialog_id']} turn={finding['turn']}: [{finding['rule']}] {finding['message']}")
    for finding in report.get("consistency", [])[:20]:
        typer.echo(f"consistency: {finding['file']}:{finding['line']} turn {finding['turn']}: {finding['message']}")
    typer.echo(f"leak check: {report['leaks']['count']} source entities left")
    if "labeller" in report:
        lab = report["labeller"]
        typer.echo(
            f"labeller: filled {sum(lab['filled'].values())} labels, agreed with the LLM on {sum(lab['agreed'].values())}, "
            f"disagreed on {lab['disagreements']['count']} (listed in the report)"
        )
    if "gold" in report:
        g = report["gold"]["all"]
        typer.echo(
            f"gold turns: boundary P/R {g['boundary_precision']:.3f}/{g['boundary_recall']:.3f}, "
            f"role P/R {g['role_precision']:.3f}/{g['role_recall']:.3f}"
        )
    typer.echo(f"report: {out / 'report.json'}")


def register(app: typer.Typer) -> None:
    add_commands(app, {"build": build})
