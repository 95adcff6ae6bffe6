"""The protocol run over tasks × languages × models: results table, JSON and figures."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from psyinsight.classify.metrics import confusion_figure, results_markdown
from psyinsight.classify.protocol import Candidate, ProtocolConfig, ProtocolResult, group_splits, run_nested, run_protocol
from psyinsight.classify.tasks import TASK_NAMES, LabelledText, get_task
from psyinsight.data.schema import Session
from psyinsight.errors import PsyInsightError
from psyinsight.fileio import write_json, write_text

TARGETS: dict[tuple[str, str], float] = {
    ("emotion", "en"): 0.37,
    ("strategy", "en"): 0.33,
    ("psychotherapy", "en"): 0.34,
    ("topic", "en"): 0.44,
    ("emotion", "cn"): 0.41,
    ("strategy", "cn"): 0.41,
    ("psychotherapy", "cn"): 0.50,
    ("topic", "cn"): 0.27,
}
"""Mean macro-F1 the embedded default should reach under the protocol (the project's acceptance);
only nested results (``tfidf-nested``: every choice made inside the training folds) are held to it."""

NESTED = "tfidf-nested"


@dataclass(frozen=True)
class BenchmarkConfig:
    tasks: tuple[str, ...] = TASK_NAMES
    languages: tuple[str, ...] = ("en", "cn")
    models: tuple[str, ...] = ("majority", NESTED)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    encoder_path: str = ""
    encoder_epochs: int = 3


def _factory(model: str, task: str, language: str, config: BenchmarkConfig) -> Callable:
    from psyinsight.classify.defaults import default_linear
    from psyinsight.classify.estimators import MajorityClassifier, TfidfLinearClassifier

    if model == "majority":
        return MajorityClassifier
    if model == "tfidf":
        linear = default_linear(task, language)
        return lambda: TfidfLinearClassifier(language, linear)
    if model == "encoder":
        from psyinsight.classify.encoder import EncoderClassifier, EncoderConfig

        enc = EncoderConfig(model_path=config.encoder_path, epochs=config.encoder_epochs)
        return lambda: EncoderClassifier(language, enc)
    raise PsyInsightError(f"unknown model {model!r}; choose majority, tfidf or encoder", where="--models")


C_GRID: tuple[float, ...] = (0.1, 0.3, 1.0)
"""Regularisation chosen among on each training side (the same grid for every task)."""


def nested_candidates(sessions: Sequence[Session], task: str, language: str, base_rows: Sequence[LabelledText]) -> dict[str, Candidate]:
    """What nested selection chooses among on each training side: features x inputs x C.

    Turn tasks: features (``defaults.FEATURE_CHOICES``) x C (``C_GRID``). Session tasks: session
    inputs (``defaults.SESSION_CHOICES``, label names masked in each) x C, with the language's
    session features. Each candidate carries its own rows (same sessions, other inputs).
    """
    from psyinsight.classify.defaults import FEATURE_CHOICES, SESSION_CHOICES, default_extract, linear_config, session_features
    from psyinsight.classify.estimators import TfidfLinearClassifier
    from psyinsight.classify.leakage import check_no_label_names
    from psyinsight.classify.runner import rows_for

    spec = get_task(task)
    inputs: dict[str, Sequence[LabelledText]] = {"": base_rows}
    features = FEATURE_CHOICES[language]
    if spec.level == "session":
        features = {"": session_features(task, language)}  # long texts: inputs x C only, fits stay affordable
        inputs = {}
        for fields in SESSION_CHOICES:
            rows = rows_for(sessions, task, language, default_extract(task, language, session_fields=fields))
            check_no_label_names(rows, task, where=f"classify benchmark ({task}/{language}, inputs {'+'.join(fields)})")
            inputs["+".join(fields)] = rows
    out: dict[str, Candidate] = {}
    for input_name, rows in inputs.items():
        for feat_name, feats in features.items():
            for C in C_GRID:
                cfg = linear_config(C=C, features=feats)
                name = "|".join(x for x in (input_name, feat_name, f"C={C:g}") if x)
                out[name] = (rows, lambda cfg=cfg: TfidfLinearClassifier(language, cfg))
    return out


def run_benchmark(
    sessions: Sequence[Session],
    config: BenchmarkConfig,
    out_dir: str | Path | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Run every (task, language, model); write results.{md,json} and pooled confusion figures."""
    from psyinsight.classify.defaults import default_extract
    from psyinsight.classify.leakage import check_no_label_names
    from psyinsight.classify.runner import rows_for

    results: list[ProtocolResult] = []
    timings: dict[str, float] = {}
    for task in config.tasks:
        spec = get_task(task)
        for language in config.languages:
            extract = default_extract(spec.name, language)
            start = time.perf_counter()
            rows = rows_for(sessions, spec.name, language, extract)
            check_no_label_names(rows, spec.name, where=f"classify benchmark ({spec.name}/{language})")
            splits = group_splits(rows, config.protocol)
            timings[f"{spec.name}/{language}/extract"] = time.perf_counter() - start
            for model in config.models:
                common = {
                    "task": spec.name,
                    "language": language,
                    "model_name": model,
                    "extract": extract,
                    "config": config.protocol,
                    "splits": splits,
                    "progress": progress,
                }
                if model == NESTED:
                    result = run_nested(rows, nested_candidates(sessions, spec.name, language, rows), **common)
                else:
                    result = run_protocol(rows, _factory(model, spec.name, language, config), **common)
                results.append(result)
                if progress:
                    progress(f"{spec.name}/{language}/{model}: macro-F1 {result.mean():.3f} ± {result.sd():.3f} ({result.seconds:.1f}s)")
    table = summary_table(results)
    if out_dir is not None:
        out = Path(out_dir)
        write_json(
            out / "results.json",
            {"results": [r.to_dict() for r in results], "timings": timings, "protocol": config.protocol.describe(), "seed": config.protocol.seed},
        )
        write_text(out / "results.md", table + "\n")
        _pooled_figures(results, out)
    return table


def _pooled_figures(results: Sequence[ProtocolResult], out: Path) -> None:
    """One confusion figure per (task, language, model): the folds' matrices summed."""
    import numpy as np

    from psyinsight.classify.metrics import ClassificationResult

    for r in results:
        labels = sorted({lab for f in r.folds for lab in f.result.labels})
        total = np.zeros((len(labels), len(labels)), dtype=int)
        for f in r.folds:
            idx = [labels.index(lab) for lab in f.result.labels]
            total[np.ix_(idx, idx)] += np.array(f.result.confusion, dtype=int)
        pooled = ClassificationResult(
            n=int(total.sum()),
            macro_f1=r.mean(),
            micro_f1=r.mean("micro_f1"),
            accuracy=r.mean("accuracy"),
            labels=labels,
            per_class={},
            confusion=total.tolist(),
        )
        title = f"{r.task} ({r.language}, {r.model}): mean macro-F1 {r.mean():.3f} ± {r.sd():.3f}"
        confusion_figure(pooled, out / f"confusion_{r.task}_{r.language}_{r.model}.png", title=title)


def summary_table(results: Sequence[ProtocolResult]) -> str:
    """The Markdown results table: one row per (task, language, model), with the target."""
    rows = []
    for r in results:
        target = TARGETS.get((r.task, r.language)) if r.model == NESTED else None  # a fixed pick saw every fold
        reached = "" if target is None else ("yes" if r.mean() >= target else "no")
        rows.append(
            {
                "task": r.task,
                "language": r.language,
                "model": r.model,
                "rows": r.n_rows,
                "labels": r.n_labels,
                "macro": f"{r.mean():.3f} ± {r.sd():.3f}",
                "micro": r.mean("micro_f1"),
                "accuracy": r.mean("accuracy"),
                "target": "" if target is None else f"{target:.2f}",
                "reached": reached,
                "seconds": f"{r.seconds:.1f}",
            }
        )
    columns = [
        ("task", "task"),
        ("language", "lang"),
        ("model", "model"),
        ("rows", "rows"),
        ("labels", "labels"),
        ("macro", "macro-F1 (mean ± sd)"),
        ("micro", "micro-F1"),
        ("accuracy", "accuracy"),
        ("target", "target"),
        ("reached", "reached"),
        ("seconds", "fit+predict s"),
    ]
    signature = results[0].signature.split("|model:")[0] if results else ""
    return results_markdown(rows, columns) + (f"\n\nSignature: `{signature}|...`" if signature else "")
