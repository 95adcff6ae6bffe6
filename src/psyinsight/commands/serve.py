"""``psyinsight serve``, ``psyinsight chat`` and ``psyinsight safety``: serving the counselor safely."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from psyinsight.errors import PsyInsightError

safety_app = typer.Typer(help="The crisis-safety layer: evaluate it on the bilingual test set, check a message.", no_args_is_help=True)

RegionOpt = typer.Option(None, "--region", help="Crisis hotline region: US, CA, UK, IE, AU, NZ, SG, IN, CN, HK, TW or INTL (default: per language).")
ResourcesOpt = typer.Option(None, "--crisis-resources", help="Crisis message + hotline YAML (default: $PSYINSIGHT_CRISIS_RESOURCES or the bundled file).")


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.4g}"


def _bundled_sets() -> dict[str, Path]:
    """The labelled sets shipped with the package (test set and blind sets), by name."""
    from importlib import resources

    folder = Path(str(resources.files("psyinsight").joinpath("safety", "data")))
    return {p.stem: p for p in sorted(folder.glob("*.jsonl")) if p.stem != "train"}


@safety_app.command("eval")
def safety_eval(
    test_file: Path = typer.Option(None, "--test-file", help="Labelled JSONL (text, lang, label, kind); default: the bundled bilingual test set."),
    set_name: str = typer.Option(None, "--set", help="A bundled set by name, from any folder: testset, blindset, blindset2, blindset3, blindset4."),
    patterns_only: bool = typer.Option(False, "--patterns-only", help="Turn the classifier off (patterns alone)."),
    threshold: float = typer.Option(None, "--threshold", help="Classifier threshold for messages no pattern matched (default: SafetyConfig.classifier_threshold, 0.7)."),
    json_out: Path = typer.Option(None, "--json", help="Write the full report (counts, per language and kind, errors) here."),
    show_errors: bool = typer.Option(True, "--show-errors/--hide-errors", help="List the misclassified messages."),
) -> None:
    """Recall and false-positive rate of the safety layer on the bilingual crisis test set."""
    from psyinsight.fileio import write_json
    from psyinsight.safety import SafetyConfig, SafetyGuard
    from psyinsight.safety.evaluate import evaluate_guard

    if set_name is not None:
        if test_file is not None:
            raise PsyInsightError("give --set or --test-file, not both", where="--set")
        sets = _bundled_sets()
        if set_name not in sets:
            raise PsyInsightError(f"no bundled set {set_name!r}; choose from {', '.join(sets)}", where="--set")
        test_file = sets[set_name]
    if threshold is not None and not 0 < threshold < 1:
        raise PsyInsightError(f"must be between 0 and 1, got {threshold}", where="--threshold")
    if json_out is not None:
        from psyinsight.fileio import check_writable

        check_writable(json_out, option="--json")
    cfg = SafetyConfig(use_classifier=not patterns_only)
    if threshold is not None:
        cfg.classifier_threshold = threshold
    report = evaluate_guard(SafetyGuard(cfg), test_file)
    typer.echo(report.signature)
    typer.echo(f"{'':10} {'recall':>7} {'FPR':>7} {'crisis':>7} {'other':>7}")
    rows = [("overall", report.overall), *sorted(report.by_language.items())]
    for name, c in rows:
        typer.echo(f"{name:10} {_fmt(c.recall):>7} {_fmt(c.fpr):>7} {c.tp + c.fn:>7} {c.fp + c.tn:>7}")
    typer.echo("by kind: " + ", ".join(
        f"{k} {'recall ' + _fmt(c.recall) if c.tp + c.fn else 'FPR ' + _fmt(c.fpr)}" for k, c in sorted(report.by_kind.items())
    ))  # fmt: skip
    if show_errors:
        for e in report.errors:
            typer.echo(f"  miss  {e['id']} gold={e['gold']} source={e['source']} score={e['score']}: {e['text']}")
    if json_out:
        write_json(json_out, report.to_dict())


@safety_app.command("check")
def safety_check(
    messages: list[str] = typer.Argument(..., help="User messages, oldest first (the last one is judged, with the earlier ones as context)."),
    language: str = typer.Option(None, "--language", "-l", help="Language of the crisis message: en or cn (default: detected)."),
    region: str = RegionOpt,
    crisis_resources: Path = ResourcesOpt,
) -> None:
    """Judge a message as the chat would; on risk print the crisis message it would send."""
    from psyinsight.counselor import detect_language
    from psyinsight.safety import SafetyConfig, SafetyGuard
    from psyinsight.schema import parse_language

    if language is not None:
        try:
            language = parse_language(language)
        except ValueError as exc:
            raise PsyInsightError(str(exc), where="--language") from None
    guard = SafetyGuard(SafetyConfig(resources_path=str(crisis_resources) if crisis_resources else None, region=region))
    history = []
    for text in messages:
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": "..."}]
    result = guard.check_history(history[:-1])
    typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    if result.risk:
        typer.echo("")
        typer.echo(guard.crisis_message(language or detect_language(messages[-1]), region))


def register(app: typer.Typer) -> None:
    app.add_typer(safety_app, name="safety")

    @app.command("serve")
    def serve_cmd(
        model: str = typer.Option("default", "--model", "-m", help="Base model: 'default'/'smollm2' (embedded SmolLM2-135M-Instruct) or a local folder."),
        adapter: Path = typer.Option(None, "--adapter", help="LoRA adapter folder written by `psyinsight train`."),
        counselor: bool = typer.Option(False, "--counselor", help="Serve every model name in counselor mode: safety layer and reasoning split always on."),
        name: str = typer.Option(None, "--name", help="Model id to serve as (default: from the model or adapter folder)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; the default keeps the server on this machine."),
        port: int = typer.Option(8000, "--port", help="Port to bind."),
        language: str = typer.Option("en", "--language", "-l", help="Counselor language when a message has no Chinese: en or cn."),
        task: str = typer.Option("observation_reasoning", "--task", help="Counselor prompt: dialog, reasoning or observation_reasoning (match the adapter's training task)."),
        region: str = RegionOpt,
        crisis_resources: Path = ResourcesOpt,
        max_body_bytes: int = typer.Option(256 * 1024, "--max-body-bytes", help="Largest request body (larger: 413)."),
        max_tokens_limit: int = typer.Option(1024, "--max-tokens-limit", help="Largest max_tokens a request may ask for."),
        default_max_tokens: int = typer.Option(256, "--default-max-tokens", help="max_tokens when a request gives none."),
        rate: float = typer.Option(10.0, "--rate", help="Requests per second per client (token bucket); 0 turns the limit off."),
        burst: int = typer.Option(40, "--burst", help="Requests a client may send at once before the rate applies."),
        max_queue: int = typer.Option(256, "--max-queue", help="Requests waiting for the model before the server answers 503."),
        batch_size: int = typer.Option(8, "--batch-size", help="Concurrent requests generated together as one batch."),
        api_key: str = typer.Option(None, "--api-key", help="Require 'Authorization: Bearer KEY' ($PSYINSIGHT_SERVE_KEY also works)."),
        device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:1... (default: cuda when available)."),
        threads: int = typer.Option(None, "--threads", help="torch CPU threads (1 is fastest on a CPU shared with other work; default: torch's)."),
        shutdown_timeout: float = typer.Option(10.0, "--shutdown-timeout", help="Seconds open requests get to finish on SIGTERM or Ctrl-C; then those still generating end with a 503."),
    ) -> None:
        """An OpenAI-compatible server (/v1/chat/completions with streaming, /v1/models) over a model + adapter.

        Model names: '<name>' / 'default' = plain generation (messages passed straight
        to the model; JSON mode supported); '<name>-counselor' / 'counselor' = the counselor
        behind the safety layer, with observation and reasoning in a separate field.
        """
        from psyinsight.counselor import COUNSELOR_TASKS
        from psyinsight.schema import parse_language
        from psyinsight.serve import ServeConfig, serve

        if task not in COUNSELOR_TASKS:
            raise PsyInsightError(f"unknown task {task!r}; choose from {', '.join(COUNSELOR_TASKS)}", where="--task")
        try:
            lang = parse_language(language)
        except ValueError as exc:
            raise PsyInsightError(str(exc), where="--language") from None
        config = ServeConfig(
            model=model, adapter=str(adapter) if adapter else None, name=name, counselor=counselor, host=host, port=port,
            language=lang, task=task, region=region, crisis_resources=str(crisis_resources) if crisis_resources else None,
            max_body_bytes=max_body_bytes, max_tokens_limit=max_tokens_limit, default_max_tokens=default_max_tokens,
            rate=rate, burst=burst, max_queue=max_queue, batch_size=batch_size, api_key=api_key, device=device,
            threads=threads, shutdown_timeout=shutdown_timeout,
        )  # fmt: skip
        serve(config, announce=typer.echo)

    @app.command("chat")
    def chat_cmd(
        model: str = typer.Option("default", "--model", "-m", help="Base model for a local chat: 'default'/'smollm2' or a local folder."),
        adapter: Path = typer.Option(None, "--adapter", help="LoRA adapter folder for a local chat."),
        url: str = typer.Option(None, "--url", help="Talk to a running `psyinsight serve` at this address (e.g. http://127.0.0.1:8000/v1) instead of loading a model."),
        server_model: str = typer.Option("counselor", "--server-model", help="Model name to ask the server for (its counselor mode)."),
        api_key: str = typer.Option(None, "--api-key", help="API key for the server, if it requires one."),
        language: str = typer.Option("en", "--language", "-l", help="en or cn (zh accepted); Chinese messages get Chinese replies either way."),
        show_reasoning: bool = typer.Option(False, "--show-reasoning", help="Print the counselor's observation and reasoning with each reply."),
        task: str = typer.Option("observation_reasoning", "--task", help="Counselor prompt for a local chat: dialog, reasoning or observation_reasoning."),
        max_tokens: int = typer.Option(200, "--max-tokens", help="Most tokens per reply."),
        region: str = RegionOpt,
        crisis_resources: Path = ResourcesOpt,
    ) -> None:
        """Chat with the counselor in the terminal (type /help for commands, /quit to leave)."""
        from psyinsight.chat import ChatOptions, RemoteCounselor, run_chat
        from psyinsight.schema import parse_language

        try:
            lang = parse_language(language)
        except ValueError as exc:
            raise PsyInsightError(str(exc), where="--language") from None
        if max_tokens < 1:
            raise PsyInsightError("must be at least 1", where="--max-tokens")
        if url:
            counselor = RemoteCounselor(url, model=server_model, api_key=api_key, max_tokens=max_tokens)
        else:
            from psyinsight.counselor import Counselor, GenParams
            from psyinsight.safety import SafetyConfig, SafetyGuard

            guard = SafetyGuard(SafetyConfig(resources_path=str(crisis_resources) if crisis_resources else None, region=region))
            counselor = Counselor(model, str(adapter) if adapter else None, lang, guard, task=task, region=region,
                                  params=GenParams(max_new_tokens=max_tokens))  # fmt: skip
            counselor.engine.load()
        run_chat(counselor, ChatOptions(language=lang, show_reasoning=show_reasoning, region=region))
