"""Train, evaluate and predict with one classifier: the functions behind the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from psyinsight.classify.base import Classifier
from psyinsight.classify.estimators import build_classifier
from psyinsight.classify.metrics import ClassificationResult, confusion_figure, per_class_markdown, score, score_sets
from psyinsight.classify.persistence import SavedClassifier
from psyinsight.classify.tasks import ExtractConfig, LabelledText, extract_examples, get_task
from psyinsight.data.schema import Session
from psyinsight.errors import PsyInsightError
from psyinsight.fileio import write_json, write_jsonl, write_text


def rows_for(sessions: Sequence[Session], task: str, language: str, extract: ExtractConfig, *, where: str = "data") -> list[LabelledText]:
    """The task's rows in ``language``, grouped by case; an error when none are left."""
    from psyinsight.data.splits import case_groups

    chosen = [s for s in sessions if s.language == language]
    if not chosen:
        raise PsyInsightError(f"no {language!r} sessions in the input", where=where)
    rows = extract_examples(chosen, task, config=extract, groups=case_groups(chosen))
    if not rows:
        raise PsyInsightError(f"no labelled {task} rows in the {len(chosen)} {language!r} sessions after the protocol filter", where=where)
    return rows


def train_classifier(
    sessions: Sequence[Session],
    task: str,
    language: str,
    *,
    model_type: str = "tfidf",
    extract: ExtractConfig | None = None,
    model_config: dict[str, Any] | None = None,
) -> tuple[Classifier, list[LabelledText]]:
    """Fit a ``model_type`` classifier for ``task`` on ``sessions`` of ``language``."""
    spec = get_task(task)
    extract = extract or ExtractConfig()
    rows = rows_for(sessions, spec.name, language, extract)
    if len({lab for r in rows for lab in r.labels}) < 2 and model_type != "majority":
        raise PsyInsightError(f"the training rows hold fewer than two {spec.name} labels; nothing to learn", where="data")
    model = build_classifier(model_type, language, model_config)
    targets = [r.labels for r in rows] if extract.label_mode == "multi" else [r.label for r in rows]
    model.fit([r.text for r in rows], targets, [r.context for r in rows])
    return model, rows


def evaluate_saved(
    saved: SavedClassifier, sessions: Sequence[Session], out_dir: str | Path | None = None, *, threshold: float = 0.5
) -> tuple[ClassificationResult, list[dict[str, Any]]]:
    """Score a saved classifier on ``sessions`` (rows drawn with the model's own settings).

    Writes ``metrics.json``, ``report.md``, ``confusion.png`` and ``predictions.jsonl``
    into ``out_dir`` when given. Gold labels the model never saw count as errors.
    """
    extract = saved.extract_config
    rows = rows_for(sessions, saved.task, saved.language, extract)
    texts, contexts = [r.text for r in rows], [r.context for r in rows]
    saved.check_language(texts)
    predicted = saved.model.predict(texts, contexts)
    result = score([r.label for r in rows], predicted)
    result.signature = (
        f"task:{saved.task}|lang:{saved.language}|target:{extract.label_mode}|model:{saved.manifest['model_type']}"
        f"|psyinsight:{saved.manifest['psyinsight_version']}"
    )
    unseen = sorted({r.label for r in rows} - set(saved.labels))
    result.extra["labels_unseen_in_training"] = unseen
    sets = None
    if extract.label_mode == "multi":
        sets = saved.model.predict_sets(texts, contexts, threshold)
        result.extra["multi_label"] = score_sets([r.labels for r in rows], sets)
    records = [
        {"id": r.id, "gold": r.labels, "predicted": p, **({"predicted_set": sets[i]} if sets else {}), "text": r.text}
        for i, (r, p) in enumerate(zip(rows, predicted))
    ]
    if out_dir is not None:
        out = Path(out_dir)
        write_json(out / "metrics.json", {**result.to_dict(), "model": str(saved.path), "manifest": saved.manifest})
        write_jsonl(out / "predictions.jsonl", records)
        title = f"{saved.task} ({saved.language}) macro-F1 {result.macro_f1:.3f}, n={result.n}"
        confusion_figure(result, out / "confusion.png", title=title)
        write_text(out / "report.md", report_markdown(saved, result))
    return result, records


def report_markdown(saved: SavedClassifier, result: ClassificationResult) -> str:
    lines = [
        f"# {saved.task} classifier ({saved.language}, {saved.manifest['model_type']})",
        "",
        "| rows | macro-F1 | micro-F1 | accuracy |",
        "|---|---|---|---|",
        f"| {result.n} | {result.macro_f1:.3f} | {result.micro_f1:.3f} | {result.accuracy:.3f} |",
        "",
        per_class_markdown(result),
        "",
        f"Signature: `{result.signature}`",
    ]
    if result.extra.get("labels_unseen_in_training"):
        lines.append(f"\nGold labels never seen in training: {', '.join(result.extra['labels_unseen_in_training'])}")
    if "multi_label" in result.extra:
        multi = result.extra["multi_label"]
        lines.append("\nMulti-label: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in multi.items()))
    return "\n".join(lines) + "\n"


def extract_config(
    *,
    label_mode: str = "first",
    context_turns: int = 2,
    next_turns: int = 0,
    turn_fields: Sequence[str] | None = None,
    session_fields: Sequence[str] | None = None,
) -> ExtractConfig:
    """An ``ExtractConfig`` from CLI values, with errors naming the flag."""
    from psyinsight.classify.tasks import LABEL_MODES

    if label_mode not in LABEL_MODES:
        raise PsyInsightError(f"unknown label mode {label_mode!r}; choose {' or '.join(LABEL_MODES)}", where="--label-mode")
    if context_turns < 0:
        raise PsyInsightError("must be 0 or more", where="--context-turns")
    if next_turns < 0:
        raise PsyInsightError("must be 0 or more", where="--next-turns")
    base = ExtractConfig()
    return ExtractConfig(
        **{
            **asdict(base),
            "label_mode": label_mode,
            "context_turns": context_turns,
            "next_turns": next_turns,
            "turn_fields": tuple(turn_fields) if turn_fields else base.turn_fields,
            "session_fields": tuple(session_fields) if session_fields else base.session_fields,
        }
    )
