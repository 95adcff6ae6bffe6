"""``psyinsight evaluate | report | judge | agreement``: score, tabulate, judge, compare raters.

Heavy libraries (torch, bert-score, nltk, openai) are imported inside the commands.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from psyinsight.commands import add_commands, options
from psyinsight.errors import PsyInsightError


def _judge_help(name: str) -> str:
    """The judge's wording of one of its LLM settings."""
    from psyinsight.evaluate.judge import OPTION_HELP

    return OPTION_HELP[name]


KEY_ENV_NAME = "PSYINSIGHT_JUDGE_API_KEY"


def _metric_config(metrics, bs_en, bs_en_layer, bs_zh, bs_zh_layer, bs_batch, rescale, device, zh_unit, wordnet_dir, keep_speaker):
    from psyinsight.commands import checks
    from psyinsight.evaluate.metrics import FAMILIES, MetricConfig

    chosen = tuple(m.strip() for m in metrics.split(",") if m.strip()) if metrics else FAMILIES
    unknown = [name for name in chosen if name not in FAMILIES]
    if unknown:
        raise PsyInsightError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(FAMILIES)}", where="--metrics")
    checks.choice(zh_unit, ("word", "char"), "--zh-rouge-unit")
    checks.at_least(bs_batch, 1, "--bertscore-batch-size")
    checks.at_least(bs_en_layer, 1, "--bertscore-layer-en")
    checks.at_least(bs_zh_layer, 1, "--bertscore-layer-zh")
    return MetricConfig(
        metrics=chosen,
        bertscore_model_en=bs_en,
        bertscore_layer_en=bs_en_layer,
        bertscore_model_zh=bs_zh,
        bertscore_layer_zh=bs_zh_layer,
        bertscore_batch_size=bs_batch,
        bertscore_rescale=rescale,
        device=device,
        zh_rouge_unit=zh_unit,
        wordnet_dir=wordnet_dir,
        strip_speaker=not keep_speaker,
    )


def _show(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def _check_encoders(config, languages: set[str]) -> None:
    """Each BERTScore encoder the predictions need is loadable (offline: the fix names ``minilm``)."""
    from psyinsight.evaluate.metrics.base import language_code
    from psyinsight.evaluate.metrics.bertscore import check_available

    for raw in sorted(languages):
        try:
            language = language_code(raw)
        except (PsyInsightError, ValueError):
            continue  # evaluate_file names the prediction with a bad language
        if language == "en":
            check_available("en", config.bertscore_model_en, config.bertscore_layer_en)
        else:
            check_available("cn", config.bertscore_model_zh, config.bertscore_layer_zh)


def evaluate(
    predictions: list[Path] = typer.Argument(..., help="Predictions JSONL files (from `psyinsight generate`)."),
    out: Path = typer.Option(None, "--out", "-o", help="Evaluation JSON to write (one input only; default: <input>.eval.json next to it)."),
    metrics: str = options.METRICS,
    bertscore_model_en: str = options.BERTSCORE_MODEL_EN,
    bertscore_layer_en: int = options.BERTSCORE_LAYER_EN,
    bertscore_model_zh: str = options.BERTSCORE_MODEL_ZH,
    bertscore_layer_zh: int = options.BERTSCORE_LAYER_ZH,
    bertscore_batch_size: int = options.BERTSCORE_BATCH_SIZE,
    bertscore_rescale: bool = options.BERTSCORE_RESCALE,
    device: str = options.METRIC_DEVICE,
    zh_rouge_unit: str = options.ZH_ROUGE_UNIT,
    wordnet_dir: str = options.WORDNET_DIR,
    keep_speaker: bool = options.KEEP_SPEAKER,
    force: bool = options.FORCE,
    signatures: bool = typer.Option(False, "--signatures", help="Also print each metric's signature."),
    allow_missing_references: bool = typer.Option(
        False, "--allow-missing-references", help="Score the predictions that have a reference and report how many had none (default: refuse)."
    ),
) -> None:
    """Score predictions per model, task and language; write the scores with their signatures."""
    from psyinsight.commands import checks
    from psyinsight.evaluate.metrics import build_metrics
    from psyinsight.evaluate.scoring import check_references, default_output, evaluate_file, load_predictions

    if out is not None and len(predictions) > 1:
        raise PsyInsightError("needs exactly one predictions file", where="--out")
    config = _metric_config(
        metrics,
        bertscore_model_en,
        bertscore_layer_en,
        bertscore_model_zh,
        bertscore_layer_zh,
        bertscore_batch_size,
        bertscore_rescale,
        device,
        zh_rouge_unit,
        wordnet_dir,
        keep_speaker,
    )
    for path in predictions:
        checks.output_file(out or default_output(path), "--out")
    # Everything that can fail does so before the first metric runs: references, encoders.
    languages: set[str] = set()
    for path in predictions:
        loaded = check_references(load_predictions(path), path, allow_missing=allow_missing_references)
        languages |= {str((p.meta or {}).get("language") or "") for p in loaded}
    if "bertscore" in config.metrics:
        _check_encoders(config, languages)
    built = build_metrics(config)
    for path in predictions:
        written, document, reused = evaluate_file(path, out, config, force=force, metrics=built, allow_missing_references=allow_missing_references)
        typer.echo(f"{'up to date' if reused else 'wrote'}  {written}")
        if document.get("missing_references"):
            typer.echo(f"  warning: {document['missing_references']} prediction(s) without a reference were left out", err=True)
        for group in document["groups"]:
            typer.echo(f"  {group['model']} | task {group['task']} | {group['language']} | n={group['n']}")
            for name, value in group["scores"].items():
                line = f"    {name:<18} {_show(value)}"
                if signatures:
                    line += f"   {group['signatures'].get(name, '')}"
                typer.echo(line)


def report(
    runs: list[Path] = typer.Argument(..., help="Evaluation files (*.eval.json), predictions (*.jsonl) or run folders."),
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Folder for report.md, report.html, report.json and the charts."),
    no_paper: bool = typer.Option(False, "--no-paper", help="Leave out the release's published numbers."),
    metrics: str = options.METRICS,
    bertscore_model_en: str = options.BERTSCORE_MODEL_EN,
    bertscore_layer_en: int = options.BERTSCORE_LAYER_EN,
    bertscore_model_zh: str = options.BERTSCORE_MODEL_ZH,
    bertscore_layer_zh: int = options.BERTSCORE_LAYER_ZH,
    bertscore_batch_size: int = options.BERTSCORE_BATCH_SIZE,
    bertscore_rescale: bool = options.BERTSCORE_RESCALE,
    device: str = options.METRIC_DEVICE,
    zh_rouge_unit: str = options.ZH_ROUGE_UNIT,
    wordnet_dir: str = options.WORDNET_DIR,
    keep_speaker: bool = options.KEEP_SPEAKER,
    force: bool = options.FORCE,
    bootstrap: int = options.BOOTSTRAP,
    bootstrap_seed: int = options.BOOTSTRAP_SEED,
    compare_to: str = typer.Option(
        None, "--compare-to", help="A task (e.g. dialog): also compare each tuned row with the same model tuned on it (does reasoning help?)."
    ),
    show: bool = typer.Option(True, "--show/--no-show", help="Print the Markdown report when done."),
) -> None:
    """The paper's table (per language, one row per model and task) in Markdown and HTML, with a bar chart."""
    from psyinsight.commands import checks
    from psyinsight.evaluate.report import write_report

    config = _metric_config(
        metrics,
        bertscore_model_en,
        bertscore_layer_en,
        bertscore_model_zh,
        bertscore_layer_zh,
        bertscore_batch_size,
        bertscore_rescale,
        device,
        zh_rouge_unit,
        wordnet_dir,
        keep_speaker,
    )
    checks.at_least(bootstrap, 1, "--bootstrap", zero_means="no intervals")
    checks.at_least(bootstrap_seed, 0, "--bootstrap-seed")
    checks.output_folder(out, "--out")
    from psyinsight.tasks.prompts import TASKS

    checks.choice(compare_to, TASKS, "--compare-to")
    paths = write_report(
        list(runs),
        out,
        config=config,
        include_paper=not no_paper,
        force=force,
        bootstrap=bootstrap,
        bootstrap_seed=bootstrap_seed,
        compare_to=compare_to,
    )
    if show:
        typer.echo(paths["markdown"].read_text(encoding="utf-8"))
    for kind, path in paths.items():
        typer.echo(f"wrote {kind:<9} {path}")


def judge(
    predictions: Path = typer.Argument(..., help="Predictions JSONL to judge (system A in pairwise mode)."),
    out: Path = typer.Option(..., "--out", "-o", help="Ratings JSONL to write; a summary goes to <out>.summary.json."),
    pairwise: Path = typer.Option(None, "--pairwise", help="A second predictions file (system B): compare A and B in both orders instead of rating."),
    examples: Path = typer.Option(None, "--examples", help="Examples JSONL giving each prediction's dialogue context (joined by id)."),
    base_url: str = options.base_url(None, _judge_help("base_url") + "; default http://127.0.0.1:8000/v1 (`psyinsight serve`)"),
    model: str = typer.Option(None, "--model", help=_judge_help("model") + "; default gpt-4o-mini"),
    api_key_env: str = options.api_key_env(_judge_help("api_key_env")),
    api_key: str = typer.Option(
        None,
        "--api-key",
        envvar=KEY_ENV_NAME,
        show_envvar=False,
        help="The API key itself (prefer an environment variable; never logged or written).",
    ),
    concurrency: int = options.concurrency(_judge_help("max_concurrency")),
    retries: int = options.retries(_judge_help("max_retries")),
    timeout: float = options.timeout(60.0, _judge_help("timeout_s")),
    cache: Path = options.llm_cache(_judge_help("cache_path")),
    rubric: Path = typer.Option(None, "--rubric", help="A rubric YAML replacing the packaged one (same keys as prompts/judge_en.yaml)."),
    limit: int = typer.Option(None, "--limit", help="Judge only the first N predictions."),
) -> None:
    """Rate responses 1-5 (interactivity, helpfulness, comfort, explainability) with an LLM judge."""
    import os

    from psyinsight.commands import checks
    from psyinsight.evaluate.judge import KEY_ENV, JudgeConfig, items_from_predictions, judge_llm_config, judge_pairwise, judge_single
    from psyinsight.evaluate.scoring import load_predictions, model_name_for
    from psyinsight.fileio import write_json, write_jsonl
    from psyinsight.records import load_examples

    checks.at_least(limit, 1, "--limit")
    checks.at_least(concurrency, 1, "--concurrency")
    checks.at_least(retries, 0, "--retries")
    if timeout <= 0:
        raise PsyInsightError(f"must be above 0 seconds, got {timeout}", where="--timeout")
    checks.output_file(out, "--out")
    checks.output_file(out.with_name(out.name + ".summary.json"), "--out")
    if api_key:
        os.environ[KEY_ENV] = api_key  # in this process only, so the key is never a config value
        api_key_env = KEY_ENV
    endpoint = {"base_url": base_url} if base_url else {}
    endpoint |= {"model": model} if model else {}
    config = JudgeConfig(
        llm=judge_llm_config(
            api_key_env=api_key_env, max_concurrency=concurrency, max_retries=retries, timeout_s=timeout, cache_path=cache, **endpoint
        )
    )
    typer.echo(f"judge: {config.llm.model} at {config.llm.base_url} (key from ${config.llm.api_key_env})", err=True)
    context = load_examples(examples) if examples else None
    preds = load_predictions(predictions)[:limit] if limit else load_predictions(predictions)
    items = items_from_predictions(preds, context, default_model=model_name_for(predictions), max_context_chars=config.max_context_chars)
    if pairwise:
        other = load_predictions(pairwise)
        items_b = items_from_predictions(other, context, default_model=model_name_for(pairwise), max_context_chars=config.max_context_chars)
        rows, summary = judge_pairwise(items, items_b, config, rubric_path=rubric)
    else:
        rows, summary = judge_single(items, config, rubric_path=rubric)
    usable = sum(1 for r in rows if r["ok"])
    llm = summary["llm"]
    typer.echo(f"judged {len(rows)} ({usable} ok); requests {llm['requests_made']}, cache hits {llm['cache_hits']}, retries {llm['retries']}")
    if rows and not usable:
        reasons = sorted({str(r.get("error") or "no parsable rating")[:160] for r in rows})[:3]
        raise PsyInsightError(
            f"no usable answer from {config.llm.model} at {config.llm.base_url} ({'; '.join(reasons)}); "
            "check --base-url, --model and the API key; nothing was written",
            where="judge",
        )
    write_jsonl(out, rows)
    summary_path = out.with_name(out.name + ".summary.json")
    write_json(summary_path, summary)
    if summary["mode"] == "single":
        for group in summary["groups"]:
            means = ", ".join(f"{k} {_show(v)}" for k, v in group["means"].items())
            typer.echo(f"  {group['model']} ({group['language']}): {means}; failed {group['failed']}")
    else:
        for key, stats in summary["criteria"].items():
            typer.echo(
                f"  {key}: A wins {stats['a_wins']:.2f}, B wins {stats['b_wins']:.2f}, ties {stats['ties']:.2f}, position-consistent {_show(stats['position_consistency'])}"
            )
    typer.echo(f"wrote {out}\nwrote {summary_path}")


def agreement(
    first: Path = typer.Argument(
        ...,
        help="Ratings: a judge output JSONL, the rating app's database (ui rate --db) or its CSV export, or a CSV/JSONL with id (or item), criteria columns, and optionally model/system and rater.",
    ),
    second: Path = typer.Argument(
        None,
        help="Ratings to compare with (same units). Without it: agreement between the raters inside FIRST, with mean scores per system and A/B preferences.",
    ),
    study: str | None = typer.Option(None, "--study", help="Only this study's ratings."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the statistics to this JSON file."),
) -> None:
    """Agreement between raters: Spearman, Krippendorff's and Cronbach's alpha (judge vs judge, judge vs humans, humans among themselves)."""
    from psyinsight.commands import checks
    from psyinsight.evaluate.agreement import agreement_between, agreement_within
    from psyinsight.fileio import write_json

    checks.output_file(out, "--out")
    result = agreement_between(first, second, study=study) if second else agreement_within(first, study=study)
    for key, stats in result["criteria"].items():
        typer.echo(f"{key:<15} " + "  ".join(f"{name} {_show(value)}" for name, value in stats.items()))
    for system, means in result.get("means", {}).items():
        typer.echo(f"mean {system}: " + ", ".join(f"{name} {_show(value)}" for name, value in means.items()))
    for name, counts in result.get("preferences", {}).items():
        typer.echo(f"preferences in {name!r}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if out:
        write_json(out, result)
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    add_commands(app, {"evaluate": evaluate, "report": report, "judge": judge, "agreement": agreement})
