"""``psyinsight safety``: the crisis-safety layer's numbers, one message's verdict, and its model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from psyinsight.commands import add_group, options
from psyinsight.errors import PsyInsightError

if TYPE_CHECKING:
    from psyinsight.counsel.safety import SafetyGuard

HELP = "The crisis-safety layer: its honest numbers, one message's verdict, retraining its model."


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.4g}"


def _guard(model: Path | None, threshold: float | None = None) -> SafetyGuard:
    from psyinsight.counsel.safety import SafetyConfig, SafetyGuard

    if threshold is not None and not 0 < threshold < 1:
        raise PsyInsightError("must be between 0 and 1", where="--threshold")
    return SafetyGuard(SafetyConfig(model_path=str(model) if model else None, threshold=threshold))


def safety_eval(
    set_name: str = typer.Option(
        None,
        "--set",
        help="Score a labelled set now: a bundled set by name (blindset6, valid, openai_moderation, xstest_safe, legacy_testset, ...) or a JSONL file.",
    ),
    test_file: Path = typer.Option(None, "--test-file", help="Same as --set with a file path."),
    model: Path = options.RISK_MODEL,
    threshold: float = typer.Option(None, "--threshold", help="P(risk) at which the model flags (default: the threshold calibrated with the model)."),
    json_out: Path = typer.Option(None, "--json", help="Write the full report (counts per language, category and kind; the misses) here."),
    show_errors: bool = typer.Option(True, "--show-errors/--hide-errors", help="List the misclassified messages."),
) -> None:
    """The safety layer's honest numbers: the blind set's first score and the cross-validated figure.

    With --set or --test-file it scores that set now. A set the model was fitted on (under
    train/) or calibrated on (valid) gives a development score, not an estimate for new text.
    """
    from psyinsight.counsel.safety.corpus import resolve_set
    from psyinsight.counsel.safety.evaluate import evaluate_guard
    from psyinsight.counsel.safety.scores import first_scores
    from psyinsight.fileio import write_json

    if json_out is not None:
        from psyinsight.fileio import check_writable

        check_writable(json_out, option="--json")
    guard = _guard(model, threshold)
    if set_name and test_file:
        raise PsyInsightError("give either --set or --test-file, not both", where="--set")
    target = set_name or (str(test_file) if test_file else None)
    if target is None:
        card = guard.model.card
        typer.echo(
            f"risk model {card.get('digest', '?')}: {card.get('encoder', '?')}, threshold {guard.threshold:.3f} ({card.get('calibration', '')})"
        )
        for name, entry in first_scores().items():
            whose = "this model" if entry.get("model") == card.get("digest") else f"earlier model {entry.get('model')}"
            typer.echo(
                f"blind first score  {name} (n={entry['n']}, {entry['when']}, {whose}): recall {_fmt(entry['recall'])}, FPR {_fmt(entry['fpr'])}; "
                + ", ".join(f"{k} recall {_fmt(v)}" for k, v in entry.get("recall_by_category", {}).items())
            )
        cv = card.get("cross_validated", {})
        typer.echo(
            f"cross-validated    training rows (n={cv.get('n')}, {cv.get('folds')} folds): recall {_fmt(cv.get('recall', float('nan')))}, FPR {_fmt(cv.get('fpr', float('nan')))}"
        )
        va = card.get("validation", {})
        typer.echo(
            f"validation         valid (n={va.get('n')}, the threshold was calibrated on it): recall {_fmt(va.get('recall', float('nan')))}, FPR {_fmt(va.get('fpr', float('nan')))}"
        )
        typer.echo("score a set now with --set NAME (safety/data/README.md lists them)")
        return
    report = evaluate_guard(guard, resolve_set(target))
    typer.echo(report.signature)
    typer.echo(f"{'':20} {'recall':>7} {'FPR':>7} {'crisis':>7} {'other':>7}")
    groups = [("overall", report.overall), *sorted(report.by_language.items()), *sorted(report.by_category.items())]
    for name, c in groups:
        typer.echo(f"{name:20} {_fmt(c.recall):>7} {_fmt(c.fpr):>7} {c.tp + c.fn:>7} {c.fp + c.tn:>7}")
    if show_errors:
        for e in report.errors:
            typer.echo(f"  miss  {e['id']} gold={e['gold']}: {e['text'][:160]}  [{e['reason']}]")
    if json_out:
        write_json(json_out, report.to_dict())


def safety_check(
    messages: list[str] = typer.Argument(..., help="User messages, oldest first (the last one is judged, with the earlier ones as context)."),
    language: str = options.language(None, "Language of the crisis message: en or cn (default: detected)."),
    region: str = options.REGION,
    crisis_resources: Path = options.CRISIS_RESOURCES,
    model: Path = options.RISK_MODEL,
    second_opinion_url: str = options.SECOND_OPINION_URL,
    second_opinion_model: str = options.SECOND_OPINION_MODEL,
    json_out: bool = typer.Option(False, "--json", help="Print the whole verdict as JSON instead of one line."),
) -> None:
    """Judge a message as the chat would: one line saying why; on risk, the crisis message it would send."""
    from psyinsight.counsel.safety import SafetyConfig, SafetyGuard
    from psyinsight.data.schema import parse_language
    from psyinsight.language import detect_language

    if language is not None:
        try:
            language = parse_language(language)
        except ValueError as exc:
            raise PsyInsightError(str(exc), where="--language") from None
    guard = SafetyGuard(
        SafetyConfig(
            resources_path=str(crisis_resources) if crisis_resources else None,
            region=region,
            model_path=str(model) if model else None,
            second_opinion_url=second_opinion_url,
            second_opinion_model=second_opinion_model,
        )
    )
    history = []
    for text in messages:
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": "..."}]
    result = guard.check_history(history[:-1])
    if json_out:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        verdict = f"risk: {result.category}" if result.risk else "no risk"
        covered = "" if result.covered else f" (language {result.language}: screened by the multilingual model only)"
        typer.echo(f"{verdict} ({result.source or 'nothing decided risk'}): {result.reason}{covered}")
    if result.risk:
        typer.echo("")
        typer.echo(guard.crisis_message(language or detect_language(messages[-1], cjk_share=0), region, category=result.category))


def safety_train(
    out: Path = typer.Option(
        Path("runs/safety/risk_model.npz"), "--out", "-o", help="Where to write the model (.npz, with its .json card beside it)."
    ),
    max_fpr: float = typer.Option(
        0.04, "--max-fpr", help="Calibration: the lowest threshold whose validation false-positive rate stays at or under this."
    ),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds for the development estimate in the card."),
) -> None:
    """Fit the risk model on the bundled training rows, calibrate it on the validation set, write it and its card."""
    from psyinsight.counsel.safety.corpus import load_examples, named_sets, training_rows
    from psyinsight.counsel.safety.model import train
    from psyinsight.fileio import check_writable

    check_writable(out, option="--out")
    if not 0 < max_fpr < 1:
        raise PsyInsightError("must be between 0 and 1", where="--max-fpr")
    if folds < 2:
        raise PsyInsightError("must be at least 2", where="--folds")
    rows = training_rows()
    model = train(rows, load_examples(named_sets()["valid"]), max_fpr=max_fpr, folds=folds)
    model.save(out)
    card = model.card
    typer.echo(f"wrote {out} (threshold {model.threshold:.3f}, borderline {model.borderline:.3f}; {card['train_rows']} rows)")
    typer.echo(
        f"validation: recall {_fmt(card['validation']['recall'])}, FPR {_fmt(card['validation']['fpr'])}; "
        f"cross-validated: recall {_fmt(card['cross_validated']['recall'])}, FPR {_fmt(card['cross_validated']['fpr'])}"
    )


def register(app: typer.Typer) -> None:
    add_group(app, "safety", HELP, {"eval": safety_eval, "check": safety_check, "train": safety_train})
