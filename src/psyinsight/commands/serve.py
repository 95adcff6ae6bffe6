"""``psyinsight serve`` and ``psyinsight chat``: serving the counselor behind the safety guard."""

from __future__ import annotations

from pathlib import Path

import typer

from psyinsight.commands import add_commands, options
from psyinsight.errors import PsyInsightError


def serve_cmd(
    model: str = typer.Option("default", "--model", "-m", help="Base model: 'default'/'smollm2' (embedded SmolLM2-135M-Instruct) or a local folder."),
    adapter: Path = typer.Option(None, "--adapter", help="LoRA adapter folder written by `psyinsight train`."),
    counselor: bool = typer.Option(
        False, "--counselor", help="Serve every model name in counselor mode: safety layer and reasoning split always on."
    ),
    guard: bool = typer.Option(
        True,
        "--guard/--no-guard",
        help="The safety guard in plain mode too (default on; --no-guard turns it off there and the server says so at start; counselor mode always has it).",
    ),
    second_opinion_url: str = options.SECOND_OPINION_URL,
    second_opinion_model: str = options.SECOND_OPINION_MODEL,
    name: str = typer.Option(None, "--name", help="Model id to serve as (default: from the model or adapter folder)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; the default keeps the server on this machine."),
    port: int = typer.Option(8000, "--port", help="Port to bind."),
    language: str = options.language("en", "Counselor language when a message has no Chinese: en or cn."),
    task: str | None = typer.Option(
        None,
        "--task",
        help="Counselor prompt task: dialog, reasoning, observation_reasoning, labels or rag (default: the adapter's training task, read from its psyinsight_adapter.json, else observation_reasoning).",
    ),
    region: str = options.REGION,
    crisis_resources: Path = options.CRISIS_RESOURCES,
    max_body_bytes: int = typer.Option(256 * 1024, "--max-body-bytes", help="Largest request body (larger: 413)."),
    max_tokens_limit: int = typer.Option(1024, "--max-tokens-limit", help="Largest max_tokens a request may ask for."),
    default_max_tokens: int = typer.Option(256, "--default-max-tokens", help="max_tokens when a request gives none."),
    rate: float = typer.Option(10.0, "--rate", help="Requests per second per client (token bucket); 0 turns the limit off."),
    burst: int = typer.Option(40, "--burst", help="Requests a client may send at once before the rate applies."),
    max_queue: int = typer.Option(256, "--max-queue", help="Requests waiting for the model before the server answers 503."),
    batch_size: int = typer.Option(8, "--batch-size", help="Concurrent requests generated together as one batch."),
    api_key_env: str = typer.Option(
        None,
        "--api-key-env",
        help="Require 'Authorization: Bearer KEY', KEY read from this environment variable (recommended; $PSYINSIGHT_SERVE_KEY is read when no key is given).",
    ),
    api_key: str = typer.Option(None, "--api-key", help="Require 'Authorization: Bearer KEY'. Visible to every user in `ps`: prefer --api-key-env."),
    allowed_host: list[str] = typer.Option(
        None,
        "--allowed-host",
        help="A Host name to answer besides 127.0.0.1, localhost, ::1 and --host (repeatable; '*' answers any; against DNS rebinding).",
    ),
    device: str = options.DEVICE,
    threads: int = typer.Option(None, "--threads", help="torch CPU threads (1 is fastest on a CPU shared with other work; default: torch's)."),
    shutdown_timeout: float = typer.Option(
        10.0, "--shutdown-timeout", help="Seconds open requests get to finish on SIGTERM or Ctrl-C; then those still generating end with a 503."
    ),
) -> None:
    """An OpenAI-compatible server (/v1/chat/completions with streaming, /v1/models) over a model + adapter.

    Model names: '<name>' / 'default' = plain generation (messages passed straight
    to the model; JSON mode supported); '<name>-counselor' / 'counselor' = the counselor
    behind the safety layer, with observation and reasoning in a separate field.
    """
    import os

    from psyinsight.counsel.counselor import COUNSELOR_TASKS
    from psyinsight.data.schema import parse_language
    from psyinsight.serve import ServeConfig, serve

    if task is not None and task not in COUNSELOR_TASKS:
        raise PsyInsightError(f"unknown task {task!r}; choose from {', '.join(COUNSELOR_TASKS)}", where="--task")
    try:
        lang = parse_language(language)
    except ValueError as exc:
        raise PsyInsightError(str(exc), where="--language") from None
    if api_key_env is not None:
        if api_key:
            raise PsyInsightError("give --api-key or --api-key-env, not both", where="--api-key-env")
        api_key = os.environ.get(api_key_env) or None
        if api_key is None:
            raise PsyInsightError(f"the environment variable {api_key_env!r} is not set or empty", where="--api-key-env")
    config = ServeConfig(
        model=model,
        adapter=str(adapter) if adapter else None,
        name=name,
        counselor=counselor,
        guard=guard,
        second_opinion_url=second_opinion_url,
        second_opinion_model=second_opinion_model,
        host=host,
        port=port,
        language=lang,
        task=task,
        region=region,
        crisis_resources=str(crisis_resources) if crisis_resources else None,
        max_body_bytes=max_body_bytes,
        max_tokens_limit=max_tokens_limit,
        default_max_tokens=default_max_tokens,
        rate=rate,
        burst=burst,
        max_queue=max_queue,
        batch_size=batch_size,
        api_key=api_key,
        device=device,
        threads=threads,
        shutdown_timeout=shutdown_timeout,
        allowed_hosts=tuple(allowed_host or ()),
    )
    serve(config, announce=typer.echo)


def chat_cmd(
    model: str = typer.Option("default", "--model", "-m", help="Base model for a local chat: 'default'/'smollm2' or a local folder."),
    adapter: Path = typer.Option(None, "--adapter", help="LoRA adapter folder for a local chat."),
    url: str = typer.Option(
        None, "--url", help="Talk to a running `psyinsight serve` at this address (e.g. http://127.0.0.1:8000/v1) instead of loading a model."
    ),
    server_model: str = typer.Option("counselor", "--server-model", help="Model name to ask the server for (its counselor mode)."),
    api_key: str = typer.Option(None, "--api-key", help="API key for the server, if it requires one."),
    language: str = options.language("en", "en or cn (zh accepted); Chinese messages get Chinese replies either way."),
    show_reasoning: bool = typer.Option(False, "--show-reasoning", help="Print the counselor's observation and reasoning with each reply."),
    task: str | None = typer.Option(
        None,
        "--task",
        help="Counselor prompt task: dialog, reasoning, observation_reasoning, labels or rag (default: the adapter's training task, read from its psyinsight_adapter.json, else observation_reasoning).",
    ),
    max_tokens: int = typer.Option(200, "--max-tokens", help="Most tokens per reply."),
    region: str = options.REGION,
    crisis_resources: Path = options.CRISIS_RESOURCES,
    second_opinion_url: str = options.SECOND_OPINION_URL,
    second_opinion_model: str = options.SECOND_OPINION_MODEL,
) -> None:
    """Chat with the counselor in the terminal (type /help for commands, /quit to leave).

    The safety guard runs in this process on every message, with --url too: a message
    that shows risk gets the crisis message even when the server is down.
    """
    from psyinsight.counsel.chat import ChatOptions, RemoteCounselor, run_chat
    from psyinsight.data.schema import parse_language

    try:
        lang = parse_language(language)
    except ValueError as exc:
        raise PsyInsightError(str(exc), where="--language") from None
    if max_tokens < 1:
        raise PsyInsightError("must be at least 1", where="--max-tokens")
    from psyinsight.counsel.safety import SafetyConfig, SafetyGuard

    guard = SafetyGuard(
        SafetyConfig(
            resources_path=str(crisis_resources) if crisis_resources else None,
            region=region,
            second_opinion_url=second_opinion_url,
            second_opinion_model=second_opinion_model,
        )
    )
    guard.warm_up()
    if url:
        counselor = RemoteCounselor(url, model=server_model, api_key=api_key, max_tokens=max_tokens, guard=guard)
    else:
        from psyinsight.counsel.counselor import Counselor
        from psyinsight.counsel.engine import GenParams

        counselor = Counselor(
            model, str(adapter) if adapter else None, lang, guard, task=task, region=region, params=GenParams(max_new_tokens=max_tokens)
        )
        counselor.engine.load()
    run_chat(counselor, ChatOptions(language=lang, show_reasoning=show_reasoning, region=region))


def register(app: typer.Typer) -> None:
    add_commands(app, {"serve": serve_cmd, "chat": chat_cmd})
