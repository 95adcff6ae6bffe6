"""Score a predictions file: metrics per (model, task, language), with signatures.

Reads the JSONL that ``psyinsight generate`` writes (``records.Prediction``), strips the
counselor marker from both sides, and scores every prediction: one whose output did not
parse is scored on its raw text and counted in ``ParseFailure``, never dropped (the
release silently dropped outputs without a "Therapist" marker). The result is one JSON
document; re-running on an unchanged input with the same settings reuses it.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psyinsight import __version__
from psyinsight.errors import PsyInsightError
from psyinsight.evaluate.metrics import MetricConfig, ScoringBatch, build_metrics, strip_speaker
from psyinsight.evaluate.metrics.base import Metric, MetricResult, language_code
from psyinsight.fileio import read_json, sha256_file, write_json
from psyinsight.records import Prediction, load_predictions  # noqa: F401  (re-exported)

EVALUATION_KIND = "psyinsight-evaluation"
UNKNOWN = "unknown"


@dataclass
class GroupResult:
    """Scores of one model on one task in one language."""

    model: str
    task: str
    language: str
    n: int
    scores: dict[str, float] = field(default_factory=dict)
    signatures: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    examples: dict[str, Any] = field(default_factory=dict)
    """What a paired bootstrap needs (``examples_block``): ids, per-example values, corpus statistics."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "task": self.task,
            "language": self.language,
            "n": self.n,
            "scores": dict(self.scores),
            "signatures": self.signatures,
            "seconds": self.seconds,
            "examples": self.examples,
        }


def examples_block(ids: list[str], results: list[MetricResult]) -> dict[str, Any]:
    """Per-example data of one group, keyed so that two systems can be paired by example id.

    ``values``: column -> one value per example (None where the example has none) for the
    columns that are means over examples. ``corpus``: column -> ``{"kind", "order", "rows"}``
    for corpus-level columns; rows shared by several columns (Distinct's tokens) are written
    once and the others say ``"rows_of": column``.
    """
    values: dict[str, list[float | None]] = {}
    corpus: dict[str, dict[str, Any]] = {}
    written: dict[int, str] = {}
    for result in results:
        for name, segment in result.segments.items():
            if len(segment) == len(ids):
                values[name] = [None if math.isnan(v) else float(v) for v in segment]
        for name, statistic in result.statistics.items():
            rows = statistic["rows"]
            entry = {k: v for k, v in statistic.items() if k != "rows"}
            if id(rows) in written:
                entry["rows_of"] = written[id(rows)]
            else:
                written[id(rows)] = name
                entry["rows"] = rows
            corpus[name] = entry
    return {"ids": list(ids), "values": values, "corpus": corpus}


def has_examples(group: dict[str, Any]) -> bool:
    """True when a group of an evaluation document carries per-example data (older files do not)."""
    examples = group.get("examples")
    return isinstance(examples, dict) and isinstance(examples.get("ids"), list) and len(examples["ids"]) == group.get("n")


def hypothesis_of(prediction: Prediction) -> str:
    """The text to score: the parsed response, or the raw output when parsing failed."""
    return prediction.response if prediction.response.strip() else prediction.text


def group_key(prediction: Prediction, default_model: str) -> tuple[str, str, str]:
    meta = prediction.meta or {}
    language = meta.get("language")
    if not language:
        raise PsyInsightError("meta.language is missing (en or cn)", where=f"prediction {prediction.id}")
    return (str(meta.get("model") or default_model), str(meta.get("task") or UNKNOWN), language_code(str(language)))


def evaluate_predictions(
    predictions: list[Prediction],
    config: MetricConfig | None = None,
    *,
    default_model: str = UNKNOWN,
    metrics: list[Metric] | None = None,
) -> list[GroupResult]:
    """Score predictions grouped by (model, task, language), in a stable order; each group's examples by id."""
    config = config or MetricConfig()
    metrics = metrics if metrics is not None else build_metrics(config)
    groups: dict[tuple[str, str, str], list[Prediction]] = defaultdict(list)
    for prediction in predictions:
        groups[group_key(prediction, default_model)].append(prediction)
    strip = strip_speaker if config.strip_speaker else (lambda s: s)
    results = []
    for (model, task, language), members in sorted(groups.items()):
        members = sorted(members, key=lambda p: p.id)
        batch = ScoringBatch(
            [strip(hypothesis_of(p)) for p in members],
            [strip(p.reference) for p in members],
            language,
            parse_ok=[p.parse_ok for p in members],
        )
        group = GroupResult(model, task, language, len(members))
        scored = []
        for metric in metrics:
            start = time.perf_counter()
            result = metric.score(batch)
            group.seconds[metric.family] = round(time.perf_counter() - start, 3)
            for name, value in result.scores.items():
                group.scores[name] = value
                group.signatures[name] = str(result.signature)
            scored.append(result)
        group.examples = examples_block([p.id for p in members], scored)
        results.append(group)
    return results


def evaluation_document(groups: list[GroupResult], config: MetricConfig, source: Path | None) -> dict[str, Any]:
    return {
        "kind": EVALUATION_KIND,
        "psyinsight": __version__,
        "predictions": {"path": str(source), "sha256": sha256_file(source)} if source else None,
        "config": config.as_dict(),
        "groups": [g.as_dict() for g in groups],
    }


def default_output(predictions_path: Path) -> Path:
    name = predictions_path.name
    stem = name[: -len(".jsonl")] if name.endswith(".jsonl") else predictions_path.stem
    return predictions_path.with_name(f"{stem}.eval.json")


def missing_references(predictions: list[Prediction]) -> list[str]:
    """Ids of predictions with no reference text: scored against "" they would halve BLEU silently."""
    return [p.id for p in predictions if not (p.reference or "").strip()]


def check_references(predictions: list[Prediction], path: Path, *, allow_missing: bool) -> list[Prediction]:
    """Refuse predictions without a reference, or (``allow_missing``) leave them out and say so."""
    missing = missing_references(predictions)
    if not missing:
        return predictions
    shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
    if not allow_missing:
        raise PsyInsightError(
            f"{len(missing)} of {len(predictions)} predictions have no reference ({shown}); fix the file, "
            "or pass --allow-missing-references to score the others and report how many were left out",
            path=path,
        )
    return [p for p in predictions if (p.reference or "").strip()]


def evaluate_file(
    path: str | Path,
    out: str | Path | None = None,
    config: MetricConfig | None = None,
    *,
    force: bool = False,
    metrics: list[Metric] | None = None,
    allow_missing_references: bool = False,
) -> tuple[Path, dict[str, Any], bool]:
    """Evaluate a predictions file into ``out``; returns (path, document, reused).

    When ``out`` already holds an evaluation of the same input (sha256) with the same
    settings, it is returned as is unless ``force``; one written before groups carried their
    per-example data (``has_examples``) is recomputed.
    """
    path = Path(path)
    config = config or MetricConfig()
    metrics = metrics if metrics is not None else build_metrics(config)
    out = Path(out) if out else default_output(path)
    if out.exists() and not force:
        try:
            previous = read_json(out)
        except PsyInsightError:
            previous = None
        if (
            isinstance(previous, dict)
            and previous.get("kind") == EVALUATION_KIND
            and (previous.get("predictions") or {}).get("sha256") == sha256_file(path)
            and previous.get("config") == _jsonable(config.as_dict())
            and _same_recipes(previous, metrics)
            and (allow_missing_references or not previous.get("missing_references"))
            and all(has_examples(group) for group in previous.get("groups", []))
        ):
            return out, previous, True
    loaded = load_predictions(path)
    predictions = check_references(loaded, path, allow_missing=allow_missing_references)
    if not predictions:
        raise PsyInsightError("no prediction has a reference to score against", path=path)
    groups = evaluate_predictions(predictions, config, default_model=model_name_for(path), metrics=metrics)
    document = evaluation_document(groups, config, path)
    document["missing_references"] = len(loaded) - len(predictions)
    write_json(out, document)
    return out, document, False


def _same_recipes(previous: dict[str, Any], metrics: list[Metric]) -> bool:
    """True when every metric would be computed the same way again (signatures match).

    The config alone is not enough: a BERTScore model can come from the environment, and
    library versions change.
    """
    for group in previous.get("groups", []):
        recorded = set(group.get("signatures", {}).values())
        if any(str(metric.signature(group["language"])) not in recorded for metric in metrics):
            return False
    return True


def model_name_for(path: Path) -> str:
    """A model name for predictions without meta.model: the run folder or file stem."""
    stem = path.name.split(".")[0]
    return path.parent.name if stem in {"predictions", "preds", "generations"} and path.parent.name else stem


def _jsonable(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj, ensure_ascii=False))


def load_evaluation(path: str | Path) -> dict[str, Any]:
    """Read an evaluation document written by ``evaluate_file``."""
    document = read_json(path)
    if not isinstance(document, dict) or document.get("kind") != EVALUATION_KIND:
        raise PsyInsightError(
            f'not an evaluation file (expected "kind": "{EVALUATION_KIND}"); make one with `psyinsight evaluate PREDICTIONS.jsonl`', path=path
        )
    return document
