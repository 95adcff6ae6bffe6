"""``psyinsight ui``: the counselor chat and human-rating web apps, and rating export (``psyinsight agreement`` reads it).

Gradio and the model stack are imported inside the commands, so ``psyinsight --help``
stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from psyinsight.commands import add_group, options
from psyinsight.errors import PsyInsightError

HELP = "Web apps: chat with the counselor, rate responses; export ratings (psyinsight agreement analyses them)."


def chat(
    model: str = typer.Option("default", "--model", help="Base model: 'default' (the embedded SmolLM2-135M-Instruct), a local folder or a hub id."),
    adapter: Path | None = typer.Option(None, "--adapter", help="A LoRA adapter folder from `psyinsight train`."),
    language: str = options.language("en", "Initial language of the page and the replies: en or cn (zh)."),
    show_reasoning: bool = typer.Option(False, "--show-reasoning", help="Start with the counselor's observation and reasoning visible."),
    region: str | None = typer.Option(
        None, "--region", help="Crisis-line region for the safety notice and the crisis replies (US, UK, CN, INTL...); default per language."
    ),
    crisis_resources: Path | None = typer.Option(None, "--crisis-resources", help="Your own crisis resources YAML (same keys as the bundled one)."),
    task: str | None = typer.Option(
        None,
        "--task",
        help="Counselor prompt task: dialog, reasoning, observation_reasoning, labels or rag (default: the adapter's training task, read from its psyinsight_adapter.json, else observation_reasoning).",
    ),
    max_new_tokens: int = typer.Option(200, "--max-new-tokens", min=1, help="Longest reply in tokens (observation and reasoning included)."),
    device: str | None = options.DEVICE,
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="torch CPU threads (1 is fastest on a CPU shared with other work; default: torch's)."
    ),
    url: str | None = typer.Option(
        None, "--url", help="Use a running `psyinsight serve` at this address (e.g. http://127.0.0.1:8000/v1) instead of loading a model here."
    ),
    server_model: str = typer.Option("counselor", "--server-model", help="With --url: the model name to ask the server for (its counselor mode)."),
    api_key: str | None = typer.Option(None, "--api-key", help="With --url: the server's API key, if it requires one."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on (0.0.0.0 exposes it to your network)."),
    port: int = typer.Option(7860, "--port", help="Port to serve on."),
) -> None:
    """Chat with the counselor in the browser, with a "show reasoning" toggle and the safety notice."""
    from psyinsight.commands import checks

    lang = checks.language(language)
    from psyinsight.ui.serving import launch, quiet_gradio

    quiet_gradio()
    from psyinsight.ui.chat_app import CSS, ChatConfig, build_chat_app

    resources = str(crisis_resources) if crisis_resources else None
    config = ChatConfig(language=lang, show_reasoning=show_reasoning, region=region, crisis_resources=resources)
    if url:
        # The server runs the safety layer and the model; the notice still comes from
        # the local resources file (the same bundled one unless --crisis-resources).
        from psyinsight.counsel.chat import RemoteCounselor

        counselor: Any = RemoteCounselor(url, model=server_model, api_key=api_key, max_tokens=max_new_tokens)
        app_ = build_chat_app(counselor, config)
    else:
        from psyinsight.counsel.counselor import Counselor, GenParams, LocalEngine
        from psyinsight.counsel.safety import SafetyConfig, SafetyGuard

        guard = SafetyGuard(SafetyConfig(resources_path=resources, region=region))
        engine = LocalEngine(model, str(adapter) if adapter else None, device=device, threads=threads)
        counselor = Counselor(
            language=lang,
            guard=guard,
            engine=engine,
            task=task,
            region=region,
            params=GenParams(max_new_tokens=max_new_tokens),
        )
        app_ = build_chat_app(counselor, config)  # checks the language, region and resources first
        typer.echo("loading the model and the safety classifier...")
        guard.warm_up()
        counselor.engine.load()
    typer.echo(f"serving the chat on http://{host}:{port}/ (Ctrl+C to stop)")
    launch(app_, css=CSS, host=host, port=port)


def rate(
    predictions: list[Path] = typer.Argument(..., help="One predictions JSONL (rate single responses) or two (blind A/B, paired by example id)."),
    db: Path = typer.Option(
        Path("ratings.sqlite"), "--db", help="SQLite file the ratings are saved to (created if missing; several studies may share it)."
    ),
    examples: Path | None = typer.Option(None, "--examples", help="The examples JSONL the predictions answer, to show raters the dialogue."),
    names: str | None = typer.Option(None, "--names", help="Comma-separated system names (stored, never shown); default: the file names."),
    study: str | None = typer.Option(None, "--study", help="Study name stored with each rating; default: the system names."),
    seed: int = options.seed("Seed of the per-rater item order and A/B sides (stored with each rating)."),
    show_reference: bool = typer.Option(False, "--show-reference", help="Also show the dataset's counselor turn as a reference."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on (0.0.0.0 lets raters on your network in)."),
    port: int = typer.Option(7861, "--port", help="Port to serve on."),
) -> None:
    """Serve the human-rating app: four criteria (1-5), rater id, random order, blind A/B."""
    from psyinsight.fileio import check_writable
    from psyinsight.ui.serving import launch, quiet_gradio

    check_writable(db, option="--db")

    quiet_gradio()
    from psyinsight.ui.items import load_items
    from psyinsight.ui.rating_app import CSS, RatingConfig, build_rating_app
    from psyinsight.ui.ratings import RatingStore

    item_set = load_items(predictions, examples=examples, names=names.split(",") if names else None)
    for system, n in item_set.unpaired.items():
        typer.echo(f"warning: {n} prediction(s) of {system} have no partner in the other file and are left out", err=True)
    store = RatingStore(db)
    app_ = build_rating_app(item_set, store, RatingConfig(seed=seed, study=study, show_reference=show_reference))
    mode = "blind A/B" if item_set.mode == "ab" else "single-response"
    typer.echo(f"{len(item_set.items)} items, {mode} rating; ratings go to {db}")
    typer.echo(f"serving the rating app on http://{host}:{port}/ (Ctrl+C to stop)")
    launch(app_, css=CSS, host=host, port=port)


def export_ratings(
    db: Path = typer.Argument(..., help="The ratings database written by `psyinsight ui rate`."),
    out: Path = typer.Option(Path("ratings.csv"), "--out", "-o", help="CSV to write (one row per rated response, unblinded)."),
    study: str | None = typer.Option(None, "--study", help="Export only this study."),
) -> None:
    """Export ratings to CSV (atomic write)."""
    from psyinsight.fileio import check_writable
    from psyinsight.ui.ratings import RatingStore, export_csv

    check_writable(out, option="--out")
    if not db.is_file():
        raise PsyInsightError("no such ratings database; `psyinsight ui rate --db` writes it", path=db)
    n = export_csv(RatingStore.open_readonly(db), out, study=study)
    typer.echo(f"wrote {n} rows to {out}")


def register(app: typer.Typer) -> None:
    add_group(app, "ui", HELP, {"chat": chat, "rate": rate, "export-ratings": export_ratings})
