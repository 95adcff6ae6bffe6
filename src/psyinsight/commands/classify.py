"""``psyinsight classify``: train, evaluate and apply label classifiers; the benchmark protocol."""

from __future__ import annotations

from pathlib import Path

import typer

from psyinsight.commands import add_group, checks, options

HELP = "Label recognition: client emotion, counselor strategy, session psychotherapy and topic (en and cn)."

_TASK_HELP = "emotion (Seeker turns), strategy (Supporter turns), psychotherapy or topic (sessions)."
FILES = options.files("A session file in the release format instead of the release (repeatable).")


def _sessions(data_dir, sample, files, language, split, split_file, seed):
    from psyinsight.commands.data import load_input
    from psyinsight.tasks.examples import select_split

    checks.split_name(split)
    everything = load_input(data_dir, sample, files, None)
    chosen, _, assignment = select_split(everything, split, split_file=split_file, seed=seed)
    return [s for s in chosen if s.language == language], assignment


def _language(value: str, option: str = "--language") -> str:
    return checks.language(value, option)


def _csv(value: str | None) -> list[str] | None:
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


def train(
    task: str = typer.Option(..., "--task", "-t", help=_TASK_HELP),
    language: str = options.language(..., "en or cn (zh)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the model and its manifest.json."),
    model: str = typer.Option(
        "tfidf", "--model", "-m", help="tfidf (embedded default), majority (baseline) or encoder (fine-tune a local HF encoder)."
    ),
    split: str = typer.Option("train", "--split", help="Sessions to train on: train, validation, test or all."),
    split_file: Path = options.SPLIT_FILE,
    seed: int = options.seed("Seed of the computed split."),
    sample: bool = options.SAMPLE,
    data_dir: Path = options.data_dir(),
    files: list[Path] = FILES,
    label_mode: str = typer.Option(
        "first", "--label-mode", help="first: the first label of each list (the protocol); multi: the whole list (one-vs-rest)."
    ),
    context_turns: int = typer.Option(2, "--context-turns", help="Preceding turns used as context for emotion/strategy (0: none)."),
    next_turns: int = typer.Option(0, "--next-turns", help="Following turns added to the context (offline labelling only; a live labeller keeps 0)."),
    turn_fields: str = typer.Option(
        None, "--turn-fields", help="Comma list of turn inputs: content, annotation (observation/reasoning). Default: the tuned default of the task."
    ),
    session_fields: str = typer.Option(
        None,
        "--session-fields",
        help="Comma list of session inputs: theme, background, reasoning, summary, guide, dialog (default: the tuned inputs of the task; background,dialog where none are tuned).",
    ),
    estimator: str = typer.Option("svm", "--estimator", help="tfidf: svm (LinearSVC) or logreg."),
    c: float = typer.Option(None, "--C", help="tfidf: inverse regularisation strength (default: the tuned value of the task)."),
    encoder_path: Path = typer.Option(None, "--encoder-path", help="encoder: a local Hugging Face encoder folder."),
    epochs: int = typer.Option(3, "--epochs", help="encoder: training epochs."),
    batch_size: int = typer.Option(16, "--batch-size", help="encoder: examples per step."),
    learning_rate: float = typer.Option(3e-5, "--learning-rate", help="encoder: peak learning rate."),
    max_length: int = typer.Option(256, "--max-length", help="encoder: tokens per example."),
    device: str = typer.Option("auto", "--device", help="encoder: auto, cpu or cuda."),
) -> None:
    """Train one classifier and save it with a manifest (task, language, labels, versions)."""
    from psyinsight.classify.defaults import default_extract, default_model_config
    from psyinsight.classify.estimators import MODEL_TYPES
    from psyinsight.classify.persistence import save_classifier
    from psyinsight.classify.runner import train_classifier
    from psyinsight.classify.tasks import get_task
    from psyinsight.errors import PsyInsightError

    lang = _language(language)
    spec = get_task(task)
    if model not in MODEL_TYPES:
        raise PsyInsightError(f"unknown model {model!r}; choose from {', '.join(MODEL_TYPES)}", where="--model")
    if estimator not in ("svm", "logreg"):
        raise PsyInsightError(f"unknown estimator {estimator!r}; choose svm or logreg", where="--estimator")
    checks.choice(label_mode, ("first", "multi"), "--label-mode")
    checks.split_name(split)
    checks.one_source(sample, files, data_dir)
    for value, low, option in (
        (context_turns, 0, "--context-turns"),
        (next_turns, 0, "--next-turns"),
        (epochs, 1, "--epochs"),
        (batch_size, 1, "--batch-size"),
        (max_length, 1, "--max-length"),
    ):
        checks.at_least(value, low, option)
    if c is not None and c <= 0:
        raise PsyInsightError(f"must be above 0, got {c}", where="--C")
    if learning_rate <= 0:
        raise PsyInsightError(f"must be above 0, got {learning_rate}", where="--learning-rate")
    checks.output_folder(out, "--out")
    extract = default_extract(
        spec.name,
        lang,
        label_mode=label_mode,
        context_turns=context_turns,
        next_turns=next_turns,
        turn_fields=_csv(turn_fields),
        session_fields=_csv(session_fields),
    )
    config = None
    if model == "tfidf":
        config = default_model_config(spec.name, lang, estimator=estimator, C=c)
    elif model == "encoder":
        from psyinsight.classify.encoder import EncoderConfig, check_model_folder

        check_model_folder(str(encoder_path or ""))
        config = EncoderConfig(
            model_path=str(encoder_path or ""),
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            max_length=max_length,
            seed=seed,
            device=device,
        ).to_dict()
    sessions, assignment = _sessions(data_dir, sample, files, lang, split, split_file, seed)
    fitted, rows = train_classifier(sessions, spec.name, lang, model_type=model, extract=extract, model_config=config)
    training = {
        "rows": len(rows),
        "sessions": len(sessions),
        "split": split,
        "split_seed": assignment.seed,
        "split_checksum": assignment.checksum(),
        "source": "sample" if sample else str(files or data_dir or "release"),
    }
    save_classifier(fitted, out, task=spec.name, language=lang, extract=extract, training=training)
    typer.echo(f"trained {model} {spec.name} ({lang}) on {len(rows)} rows, {len(fitted.labels_)} labels -> {out}")


def evaluate(
    model_dir: Path = typer.Option(..., "--model", "-m", help="A folder written by `classify train`."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for metrics.json, report.md, confusion.png, predictions.jsonl."),
    task: str = typer.Option(None, "--task", "-t", help="Refuse a model trained for another task."),
    split: str = typer.Option("test", "--split", help="Sessions to score: train, validation, test or all."),
    split_file: Path = options.SPLIT_FILE,
    seed: int = options.seed("Seed of the computed split (use the training one)."),
    sample: bool = options.SAMPLE,
    data_dir: Path = options.data_dir(),
    files: list[Path] = FILES,
    allow_version_mismatch: bool = typer.Option(
        False, "--allow-version-mismatch", help="Load a model saved by another psyinsight/scikit-learn version (warns)."
    ),
) -> None:
    """Score a saved classifier: macro/micro-F1, accuracy, per-class report, confusion matrix."""
    from psyinsight.classify.persistence import load_classifier
    from psyinsight.classify.runner import evaluate_saved

    checks.split_name(split)
    checks.one_source(sample, files, data_dir)
    checks.output_folder(out, "--out")
    saved = load_classifier(model_dir, task=task, allow_version_mismatch=allow_version_mismatch)
    sessions, _ = _sessions(data_dir, sample, files, saved.language, split, split_file, seed)
    result, _ = evaluate_saved(saved, sessions, out)
    typer.echo(
        f"{saved.task} ({saved.language}) on {result.n} rows: macro-F1 {result.macro_f1:.3f}, "
        f"micro-F1 {result.micro_f1:.3f}, accuracy {result.accuracy:.3f} -> {out}"
    )


def predict(
    model_dir: Path = typer.Option(..., "--model", "-m", help="A folder written by `classify train`."),
    input_path: Path = typer.Option(
        ..., "--input", "-i", help="A .txt file (one text per line), a .jsonl file (text, optional context and id), or a release-format session file."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output JSONL: id, text, label, probabilities."),
    task: str = typer.Option(None, "--task", "-t", help="Refuse a model trained for another task."),
    strict_language: bool = typer.Option(
        False, "--strict-language", help="Stop with an error (instead of a warning) when the input, or any row of it, is not in the model's language."
    ),
    threshold: float = typer.Option(0.5, "--threshold", help="Multi-label models: keep labels with at least this probability."),
    top: int = typer.Option(3, "--top", help="How many label probabilities to write per row."),
    allow_version_mismatch: bool = typer.Option(
        False, "--allow-version-mismatch", help="Load a model saved by another psyinsight/scikit-learn version (warns)."
    ),
) -> None:
    """Label texts or sessions with a saved classifier."""
    import warnings

    from psyinsight.classify.persistence import LanguageMismatchWarning, load_classifier
    from psyinsight.classify.predict_io import read_inputs
    from psyinsight.fileio import write_jsonl

    checks.at_least(top, 1, "--top")
    checks.between(threshold, 0.0, 1.0, "--threshold")
    checks.output_file(out, "--out")
    saved = load_classifier(model_dir, task=task, allow_version_mismatch=allow_version_mismatch)
    top = min(top, len(saved.labels))
    rows = read_inputs(input_path, saved)
    texts, contexts = [r["text"] for r in rows], [r.get("context", "") for r in rows]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LanguageMismatchWarning)
        saved.check_language(texts, strict=strict_language)
    for warning in caught:
        typer.echo(f"warning: {warning.message}", err=True)
    if not caught:
        _check_rows_language(rows, saved.language, input_path, strict=strict_language)
    proba = saved.model.predict_proba(texts, contexts) if texts else None
    sets = saved.model.predict_sets(texts, contexts, threshold) if texts else []
    labels = saved.labels
    output = []
    for i, row in enumerate(rows):
        order = proba[i].argsort()[::-1][:top]
        output.append(
            {**row, "label": labels[int(order[0])], "labels": sets[i], "proba": {labels[int(j)]: round(float(proba[i][j]), 4) for j in order}}
        )
    write_jsonl(out, output)
    typer.echo(f"labelled {len(output)} rows with {saved.task} ({saved.language}) -> {out}")


def _check_rows_language(rows: list[dict], language: str, path: Path, *, strict: bool) -> int:
    """Rows whose own text is in another language than the model's: counted and warned about
    (an error under ``--strict-language``); a whole-file check misses one Chinese row among English ones."""
    from psyinsight.errors import PsyInsightError
    from psyinsight.language import detect_language, has_letters

    odd = [str(r.get("id", i + 1)) for i, r in enumerate(rows) if has_letters(r["text"]) and detect_language(r["text"]) != language]
    if not odd:
        return 0
    shown = ", ".join(odd[:5]) + (" ..." if len(odd) > 5 else "")
    message = f"{len(odd)} of {len(rows)} rows are not in the model's language ({language}): {shown}; their labels are meaningless"
    if strict:
        raise PsyInsightError(message, path=path)
    typer.echo(f"warning: {path}: {message}", err=True)
    return len(odd)


def benchmark(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for results.md, results.json and per-pair confusion figures."),
    tasks: str = typer.Option("emotion,strategy,psychotherapy,topic", "--tasks", help="Comma list of tasks."),
    languages: str = typer.Option("en,cn", "--languages", help="Comma list of languages."),
    models: str = typer.Option(
        "majority,tfidf-nested",
        "--models",
        help="Comma list of models: majority, tfidf-nested (features, session inputs and C chosen by inner grouped CV on each training side; the only one held to the targets), tfidf (the fixed pick, chosen on these splits), encoder.",
    ),
    scheme: str = typer.Option("shuffle", "--scheme", help="shuffle: 5 grouped 80/20 splits; kfold: 5-fold grouped cross-validation."),
    n_splits: int = typer.Option(5, "--n-splits", help="Number of splits or folds."),
    seed: int = options.seed("Seed of the grouped splits."),
    sample: bool = options.SAMPLE,
    data_dir: Path = options.data_dir(),
    encoder_path: Path = typer.Option(None, "--encoder-path", help="encoder: a local Hugging Face encoder folder."),
    epochs: int = typer.Option(3, "--epochs", help="encoder: training epochs."),
) -> None:
    """The benchmark protocol: mean ± sd of macro-F1 over session-grouped splits, per task and language (nested selection; label names masked and guarded)."""
    from psyinsight.classify.benchmark import BenchmarkConfig, run_benchmark
    from psyinsight.classify.protocol import ProtocolConfig
    from psyinsight.commands.data import load_input
    from psyinsight.errors import PsyInsightError

    if scheme not in ("shuffle", "kfold"):
        raise PsyInsightError(f"unknown scheme {scheme!r}; choose shuffle or kfold", where="--scheme")
    langs = [_language(x, "--languages") for x in _csv(languages) or []]
    if not langs:
        raise PsyInsightError("give at least one language (en, cn)", where="--languages")
    checks.at_least(n_splits, 2, "--n-splits")
    checks.at_least(epochs, 1, "--epochs")
    checks.one_source(sample, None, data_dir)
    checks.output_folder(out, "--out")
    sessions = load_input(data_dir, sample, None, langs)
    config = BenchmarkConfig(
        tasks=tuple(_csv(tasks) or ()),
        languages=tuple(langs),
        models=tuple(_csv(models) or ()),
        protocol=ProtocolConfig(scheme=scheme, n_splits=n_splits, seed=seed),
        encoder_path=str(encoder_path or ""),
        encoder_epochs=epochs,
    )
    report = run_benchmark(sessions, config, out, progress=lambda line: typer.echo(line, err=True))
    typer.echo(report)


def register(app: typer.Typer) -> None:
    add_group(app, "classify", HELP, {"train": train, "eval": evaluate, "predict": predict, "benchmark": benchmark})
