"""The paper's results table for one or more runs, with the published numbers alongside.

``psyinsight report RUN...`` takes evaluation files (``*.eval.json``), predictions files
(evaluated first, the result saved next to them) or run folders holding either, and writes
``report.md``, ``report.html`` (self-contained: the charts are embedded) and one bar chart
per language. One row per (model, task); the columns are the paper's (BERTScore-P/R/F,
BLEU-1, BLEU-3, METEOR, ROUGE-L, Distinct-2), then more metrics in a second table, and
every column's metric signature. The published rows come from
``resources/paper_results.json``, which also records the recipe behind each published
column. A published number is shown only where our recipe for that column and language
is the same (BERTScore model and layer, Distinct convention, speaker marker...); any
other cell names what differs, and the chart draws no bar for it.

Where the evaluation carries per-example data, each of our cells reads ``score ± h``: h is half
the width of the 95% paired-bootstrap interval (``evaluate.bootstrap``, sacrebleu's convention),
and a "difference vs base" table gives, for each tuned row, its paired difference to the base
model's row of the same language with its 95% interval, marked ``*`` when the interval excludes 0.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from psyinsight.errors import PsyInsightError
from psyinsight.evaluate.bootstrap import (
    DEFAULT_SAMPLES,
    DEFAULT_SEED,
    Interval,
    confidence_interval,
    distinct_scorer,
    mean_scorer,
    paired_difference,
    sacrebleu_scorer,
)
from psyinsight.evaluate.scoring import has_examples
from psyinsight.fileio import write_json, write_text
from psyinsight.records import BASE_MARK, is_base_label

PAPER_COLUMNS = ["BERTScore-P", "BERTScore-R", "BERTScore-F", "BLEU-1", "BLEU-3", "METEOR", "ROUGE-L", "Distinct-2"]
MORE_COLUMNS = [
    "sacreBLEU-1",
    "sacreBLEU-2",
    "sacreBLEU-3",
    "sacreBLEU-4",
    "BLEU-2",
    "BLEU-4",
    "ROUGE-1",
    "ROUGE-2",
    "Distinct-1",
    "Distinct-3",
    "Distinct-2(mean)",
    "Length",
    "RefLength",
    "ParseFailure",
]
LANGUAGE_NAMES = {"en": "English", "cn": "Chinese"}


@dataclass
class Row:
    """One line of a table: a model on a task, ours or published."""

    model: str
    task: str
    language: str
    scores: dict[str, float | None]
    published: bool = False
    n: int | None = None
    source: str = ""
    absent: dict[str, str] = field(default_factory=dict)
    """Published rows: column -> why the published number is not shown (recipes differ)."""
    examples: dict[str, Any] | None = None
    """Ours: the group's per-example data (None for an evaluation written before it was kept)."""
    ci: dict[str, Interval] = field(default_factory=dict)
    """Ours: column -> bootstrap interval of the score."""
    comparison: Comparison | None = None
    """Ours, not a base model: the paired differences to its base row."""
    versus_task: Comparison | None = None
    """Ours, tuned on another task than ``compare_to``: the paired differences to the row tuned on that task."""

    @property
    def is_base(self) -> bool:
        """``generate`` and ``experiment`` label a base model with ``records.base_label``."""
        return not self.published and is_base_label(self.model)

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("examples", "ci", "comparison", "versus_task")}
        out["ci"] = {column: interval.as_dict() for column, interval in self.ci.items()}
        out["difference_vs_base"] = self.comparison.as_json() if self.comparison else None
        out["difference_vs_task"] = self.versus_task.as_json() if self.versus_task else None
        return out


@dataclass
class Comparison:
    """A row against its base row: system - baseline per column, on the examples both share."""

    baseline: Row
    paired: int
    differences: dict[str, Interval] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "baseline": {"model": self.baseline.model, "task": self.baseline.task, "n": self.baseline.n},
            "paired": self.paired,
            "columns": {column: interval.as_dict() for column, interval in self.differences.items()},
        }


@dataclass
class Report:
    rows: list[Row]
    signatures: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """language -> column -> the distinct signatures seen for it."""
    notes: list[str] = field(default_factory=list)
    paper_source: str = ""
    speaker: dict[str, set[bool]] = field(default_factory=dict)
    """language -> the strip_speaker settings of our runs."""
    bootstrap: dict[str, int] = field(default_factory=dict)
    """``{"samples", "seed"}`` once intervals were computed (``add_bootstrap``)."""
    uncertainty: list[str] = field(default_factory=list)
    """Report-wide lines about the intervals (files without per-example data...)."""
    no_comparison: dict[str, list[str]] = field(default_factory=dict)
    """language -> why some rows (or the whole language) have no difference table entry."""
    compare_to: str | None = None
    """The task whose tuned row every other tuned row is also compared with (``add_task_comparison``)."""

    def languages(self) -> list[str]:
        order = {"en": 0, "cn": 1}
        return sorted({r.language for r in self.rows if not r.published}, key=lambda lang: order.get(lang, 9))

    def rows_for(self, language: str) -> list[Row]:
        return [r for r in self.rows if r.language == language]


def paper_results() -> dict[str, Any]:
    """The release's published numbers and their recipes, shipped as package data."""
    text = resources.files("psyinsight").joinpath("resources/paper_results.json").read_text(encoding="utf-8")
    return json.loads(text)


def collect_runs(runs: list[str | Path], config: Any = None, *, force: bool = False) -> list[tuple[Path, dict[str, Any]]]:
    """Evaluation documents for each RUN (a file or a folder), evaluating predictions as needed."""
    from psyinsight.evaluate.scoring import evaluate_file, load_evaluation

    documents: list[tuple[Path, dict[str, Any]]] = []
    for run in runs:
        path = Path(run)
        if not path.exists():
            raise PsyInsightError(
                "no such file or folder; give evaluation files (*.eval.json), predictions (*.jsonl) or run folders", path=path, where="report RUN"
            )
        if path.is_dir():
            evals = sorted(path.glob("*.eval.json"))
            preds = sorted(p for p in path.glob("*.jsonl") if not p.name.endswith(".partial"))
            if not evals and not preds:
                raise PsyInsightError("holds no *.eval.json and no predictions *.jsonl", path=path, where="report RUN")
            evaluated = {p.name[: -len(".eval.json")] for p in evals}
            files = evals + [p for p in preds if p.name[: -len(".jsonl")] not in evaluated]
        else:
            files = [path]
        for file in files:
            if file.name.endswith(".jsonl"):
                out, document, _ = evaluate_file(file, config=config, force=force)
                documents.append((out, document))
            else:
                documents.append((file, load_evaluation(file)))
    return documents


def build_report(documents: list[tuple[Path, dict[str, Any]]], *, include_paper: bool = True) -> Report:
    """Rows and signatures from evaluation documents, plus the published rows."""
    report = Report(rows=[])
    for path, document in documents:
        for group in document.get("groups", []):
            language = group["language"]
            examples = group.get("examples") if has_examples(group) else None
            report.rows.append(
                Row(group["model"], str(group["task"]), language, dict(group["scores"]), n=group.get("n"), source=str(path), examples=examples)
            )
            report.speaker.setdefault(language, set()).add(bool((document.get("config") or {}).get("strip_speaker", True)))
            for column, signature in group.get("signatures", {}).items():
                seen = report.signatures.setdefault(language, {}).setdefault(column, [])
                if signature not in seen:
                    seen.append(signature)
    if include_paper:
        paper = paper_results()
        report.notes = list(paper.get("notes", []))
        report.paper_source = paper.get("source", "")
        languages = set(report.languages()) or {"en", "cn"}
        for row in paper["rows"]:
            if row["language"] not in languages:
                continue
            published = Row(row["model"], row["task"], row["language"], {}, published=True)
            for column, value in row["scores"].items():
                why = incomparable(paper.get("recipes", {}), column, row["language"], report)
                if why is None:
                    published.scores[column] = value
                else:
                    published.absent[column] = why
            report.rows.append(published)
    report.rows = _ordered(report.rows)
    return report


BOOTSTRAP_COLUMNS = PAPER_COLUMNS + MORE_COLUMNS


def _scorer(examples: dict[str, Any], column: str, positions: list[int]):
    """The bootstrap scorer of ``column`` on the examples at ``positions``; None without the data."""
    if column in examples.get("values", {}):
        values = examples["values"][column]
        return mean_scorer([values[i] for i in positions])
    entry = examples.get("corpus", {}).get(column)
    if entry is None:
        return None
    rows = entry["rows"] if "rows" in entry else examples["corpus"][entry["rows_of"]]["rows"]
    rows = [rows[i] for i in positions]
    if entry["kind"] == "sacrebleu":
        return sacrebleu_scorer(rows, int(entry["order"]))
    if entry["kind"] == "distinct":
        return distinct_scorer(rows, int(entry["order"]))
    return None


def _biased(examples: dict[str, Any], column: str) -> bool:
    """A column whose resamples read systematically lower than its score (corpus Distinct-n): its intervals are re-centred."""
    return (examples.get("corpus", {}).get(column) or {}).get("kind") == "distinct"


def _baseline(row: Row, rows: list[Row]) -> tuple[Row | None, str]:
    """The base row to compare ``row`` with: same task preferred, else the language's only base row."""
    bases = [r for r in rows if r.is_base]
    same_task = [r for r in bases if r.task == row.task]
    if len(same_task) == 1:
        return same_task[0], ""
    if len(same_task) > 1:
        return (
            None,
            f"{row.model} [{row.task}]: {len(same_task)} base rows on its task ({', '.join(r.model for r in same_task)}); which one is ambiguous",
        )
    if len(bases) == 1:
        return bases[0], ""
    return None, f"{row.model} [{row.task}]: no base row on its task and {len(bases)} base rows in the language"


def add_bootstrap(report: Report, n_samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> Report:
    """Fill each of our rows' intervals and, for tuned rows, their paired differences to the base row."""
    report.bootstrap = {"samples": n_samples, "seed": seed}
    ours = [r for r in report.rows if not r.published]
    without = sorted({r.source for r in ours if r.examples is None})
    if without:
        report.uncertainty.append(
            f"No confidence intervals for {len(without)} evaluation file(s) written without per-example data "
            f"({', '.join(without)}); re-run `psyinsight evaluate --force` on their predictions to get them."
        )
    for row in ours:
        if row.examples is None:
            continue
        everything = list(range(len(row.examples["ids"])))
        for column in BOOTSTRAP_COLUMNS:
            scorer = _scorer(row.examples, column, everything)
            if scorer is not None and _drawable(row.scores.get(column)):
                row.ci[column] = confidence_interval(scorer, len(everything), n_samples=n_samples, seed=seed, recentre=_biased(row.examples, column))
    for language in report.languages():
        rows = [r for r in report.rows_for(language) if not r.published]
        if not any(r.is_base for r in rows):
            report.no_comparison[language] = [
                f"no row of ours in {LANGUAGE_NAMES.get(language, language)} is a base model (label with '{BASE_MARK}')"
            ]
            continue
        for row in rows:
            if row.is_base:
                continue
            baseline, why = _baseline(row, rows)
            if baseline is None or row.examples is None or baseline.examples is None:
                why = why or f"{row.model} [{row.task}]: no per-example data on one side"
                report.no_comparison.setdefault(language, []).append(why)
                continue
            row.comparison = _compare(row, baseline, n_samples, seed)
    return report


def add_task_comparison(report: Report, task: str, n_samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> Report:
    """Pair every tuned row with the row of the same model tuned on ``task``, in its language.

    The paper's question is not only "does tuning help" (the base comparison) but "does
    training on reasoning help more than training on the reply alone": ``task="dialog"``.
    """
    report.compare_to = task
    for language in report.languages():
        tuned = [r for r in report.rows_for(language) if not r.published and not r.is_base]
        for row in tuned:
            if row.task == task:
                continue
            references = [r for r in tuned if r.task == task and r.model == row.model]
            if len(references) == 1 and row.examples is not None and references[0].examples is not None:
                row.versus_task = _compare(row, references[0], n_samples, seed)
    return report


def _compare(row: Row, baseline: Row, n_samples: int, seed: int) -> Comparison:
    """Pair the two rows by example id (those both have, in the row's order) and resample them together."""
    assert row.examples is not None and baseline.examples is not None
    base_at = {example_id: i for i, example_id in enumerate(baseline.examples["ids"])}
    pairs = [(i, base_at[example_id]) for i, example_id in enumerate(row.examples["ids"]) if example_id in base_at]
    comparison = Comparison(baseline, len(pairs))
    if not pairs:
        return comparison
    mine, theirs = [i for i, _ in pairs], [j for _, j in pairs]
    for column in BOOTSTRAP_COLUMNS:
        if not (_drawable(row.scores.get(column)) and _drawable(baseline.scores.get(column))):
            continue
        system, base = _scorer(row.examples, column, mine), _scorer(baseline.examples, column, theirs)
        if system is not None and base is not None:
            comparison.differences[column] = paired_difference(
                system, base, len(pairs), n_samples=n_samples, seed=seed, recentre=_biased(row.examples, column)
            )
    return comparison


def _family(column: str) -> str:
    return column.split("-")[0].split("(")[0]


def _parse_signature(signature: str) -> dict[str, str]:
    """``name|key:value|...`` -> {key: value} (the name under ``_``)."""
    name, *parts = signature.split("|")
    pairs = dict(part.split(":", 1) for part in parts if ":" in part)
    return {"_": name, **pairs}


def incomparable(recipes: dict[str, Any], column: str, language: str, report: Report) -> str | None:
    """Why the published ``column`` cannot stand beside ours in ``language``; None when it can.

    Comparable means every run of ours in that language computed the column with the
    published recipe: the keys the recipe names match our signature, and the speaker
    marker was treated the same way.
    """
    recipe = recipes.get(_family(column))
    if recipe is None:
        return "no published recipe"
    if recipe.get("never"):
        return recipe["never"]
    if language in recipe.get("never_for", {}):
        return recipe["never_for"][language]
    signatures = report.signatures.get(language, {}).get(column, [])
    if not signatures:
        return "not computed in our runs"
    for signature in signatures:
        ours = _parse_signature(signature)
        differing = [f"{key} {ours.get(key, '?')} vs {want}" for key, want in recipe.get("match", {}).items() if ours.get(key) != want]
        if differing:
            return "recipe differs (ours vs paper): " + ", ".join(differing)
    if recipe.get("speaker") == "kept" and True in report.speaker.get(language, {True}):
        return "the paper kept the 'Therapist:' marker (ours strips it; --keep-speaker keeps it)"
    return None


def _ordered(rows: list[Row]) -> list[Row]:
    """Ours first, each base model's row right before the tuned rows of its task; then published."""

    def key(row: Row) -> tuple:
        base = is_base_label(row.model) or row.model.lower().endswith("base")
        return (row.published, row.language, row.task, not base, row.model)

    return sorted(rows, key=key)


def fmt(value: float | None, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if column.startswith("sacreBLEU") or column.startswith("Length") or column == "RefLength":
        return f"{value:.2f}"
    return f"{value:.3f}"


def _cell(row: Row, column: str, reasons: dict[str, int] | None) -> str:
    if row.published and column in row.absent:
        if reasons is None:
            return "n/c"
        number = reasons.setdefault(row.absent[column], len(reasons) + 1)
        return f"n/c [{number}]"
    if column in row.ci:
        return f"{fmt(row.scores.get(column), column)} ± {fmt(row.ci[column].half_width, column)}"
    return fmt(row.scores.get(column), column)


def _signed(value: float, column: str) -> str:
    text = fmt(abs(value), column)
    return ("−" if value < 0 and text.strip("0.") else "+") + text


def _difference_cell(interval: Interval | None, column: str) -> str:
    """``+0.012 [−0.004, +0.030]``, with ``*`` when the interval excludes 0."""
    if interval is None or not _drawable(interval.score):
        return "—"
    mark = " *" if interval.excludes_zero else ""
    return f"{_signed(interval.score, column)} [{_signed(interval.lo, column)}, {_signed(interval.hi, column)}]{mark}"


def _difference_table(rows: list[Row], columns: list[str], *, versus_task: bool = False) -> tuple[list[str], list[list[str]]]:
    header = ["model", "task", "compared with", "paired"] + columns
    body = []
    for row in rows:
        c = row.versus_task if versus_task else row.comparison
        if c is None:
            continue
        body.append(
            [row.model, row.task, f"{c.baseline.model} [{c.baseline.task}]", str(c.paired)]
            + [_difference_cell(c.differences.get(col), col) for col in columns]
        )
    return header, body


def _difference_lines(report: Report, language: str) -> list[str]:
    """What the difference table is, and why rows are missing from it or paired fewer examples than they have."""
    rows = [r for r in report.rows_for(language) if not r.published]
    lines = []
    for row in rows:
        c = row.comparison
        if c is not None and (c.paired < (row.n or 0) or c.paired < (c.baseline.n or 0)):
            lines.append(
                f"{row.model} [{row.task}] vs {c.baseline.model}: {c.paired} paired examples (ids in both; the rows have {row.n} and {c.baseline.n})"
            )
    return lines + report.no_comparison.get(language, [])


def _bootstrap_legend(report: Report) -> str:
    b = report.bootstrap
    return (
        f"± is half the width of the 95% paired-bootstrap interval ({b['samples']} resamples of the examples, seed {b['seed']}, "
        "sacrebleu's convention); published rows carry none."
    )


def _difference_legend(report: Report) -> str:
    return (
        "Difference vs base (system − base model of the same language, on the examples both rows share, paired by id): "
        "the difference and its 95% bootstrap interval; * marks an interval that excludes 0."
    )


def _task_difference_legend(report: Report) -> str:
    return (
        f"Difference vs the {report.compare_to} rows (a row tuned on another task − the same model tuned on {report.compare_to}, "
        "paired by id): the difference and its 95% bootstrap interval; * marks an interval that excludes 0."
    )


def _table(rows: list[Row], columns: list[str], reasons: dict[str, int] | None = None) -> tuple[list[str], list[list[str]]]:
    """Cells of published numbers that are not comparable read ``n/c [k]``; ``reasons`` collects k -> why."""
    header = ["model", "task", "n"] + columns
    body = []
    for row in rows:
        name = f"{row.model} (published)" if row.published else row.model
        body.append([name, row.task, "" if row.n is None else str(row.n)] + [_cell(row, c, reasons) for c in columns])
    return header, body


def _reason_lines(reasons: dict[str, int]) -> list[str]:
    return [f"[{k}] {why}" for why, k in sorted(reasons.items(), key=lambda item: item[1])]


def _markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return "\n".join(lines)


def render_markdown(report: Report, charts: dict[str, Path] | None = None) -> str:
    charts = charts or {}
    out = ["# Psy-Insight evaluation report", ""]
    if report.bootstrap:
        out += [_bootstrap_legend(report), ""]
    out += [line for note in report.uncertainty for line in (note, "")]
    for language in report.languages():
        rows = report.rows_for(language)
        out += [
            f"## {LANGUAGE_NAMES.get(language, language)}",
            "",
            "The paper's table (BLEU-n is the paper's convention, 0-1). "
            "A published number is shown only where it was computed the way ours was; n/c (not comparable) says why not:",
            "",
        ]
        reasons: dict[str, int] = {}
        out += [_markdown_table(*_table(rows, PAPER_COLUMNS, reasons)), ""]
        out += [f"- {line}" for line in _reason_lines(reasons)] + ([""] if reasons else [])
        ours = [r for r in rows if not r.published]
        out += ["More metrics (sacreBLEU on 0-100):", "", _markdown_table(*_table(ours, MORE_COLUMNS)), ""]
        if report.bootstrap:
            header, body = _difference_table(ours, PAPER_COLUMNS)
            if body:
                out += [_difference_legend(report), "", _markdown_table(header, body), ""]
            header, body = _difference_table(ours, PAPER_COLUMNS, versus_task=True)
            if body:
                out += [_task_difference_legend(report), "", _markdown_table(header, body), ""]
            notes = _difference_lines(report, language)
            out += [f"- {line}" for line in notes] + ([""] if notes else [])
        if language in charts:
            out += [f"![{language} chart]({charts[language].name})", ""]
        out += ["Signatures (how each column was computed):", ""]
        for column, signatures in report.signatures.get(language, {}).items():
            if column in PAPER_COLUMNS or column in MORE_COLUMNS:
                out += [f"- **{column}**: " + "; ".join(f"`{s}`" for s in signatures)]
        out += [""]
    if report.notes:
        out += ["## About the published numbers", "", f"Source: {report.paper_source}.", ""]
        out += [f"- {note}" for note in report.notes]
        out += [""]
    return "\n".join(out)


def _html_table(header: list[str], body: list[list[str]], published: list[bool]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = []
    for cells, pub in zip(body, published):
        cls = ' class="published"' if pub else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_html(report: Report, charts: dict[str, Path] | None = None) -> str:
    charts = charts or {}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Psy-Insight evaluation report</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}"
        "tr.published{color:#666;font-style:italic}code{font-size:.85em}</style></head><body>",
        "<h1>Psy-Insight evaluation report</h1>",
    ]
    if report.bootstrap:
        parts.append(f"<p>{html.escape(_bootstrap_legend(report))}</p>")
    parts += [f"<p>{html.escape(note)}</p>" for note in report.uncertainty]
    for language in report.languages():
        rows = report.rows_for(language)
        parts.append(
            f"<h2>{html.escape(LANGUAGE_NAMES.get(language, language))}</h2><p>The paper's table (BLEU-n is the paper's convention, 0-1); "
            "published rows in grey italics, shown only where computed the way ours was (n/c: not comparable).</p>"
        )
        reasons: dict[str, int] = {}
        parts.append(_html_table(*_table(rows, PAPER_COLUMNS, reasons), [r.published for r in rows]))
        if reasons:
            parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in _reason_lines(reasons)) + "</ul>")
        ours = [r for r in rows if not r.published]
        parts.append("<p>More metrics (sacreBLEU on 0-100):</p>" + _html_table(*_table(ours, MORE_COLUMNS), [False] * len(ours)))
        if report.bootstrap:
            header, body = _difference_table(ours, PAPER_COLUMNS)
            if body:
                parts.append(f"<p>{html.escape(_difference_legend(report))}</p>" + _html_table(header, body, [False] * len(body)))
            header, body = _difference_table(ours, PAPER_COLUMNS, versus_task=True)
            if body:
                parts.append(f"<p>{html.escape(_task_difference_legend(report))}</p>" + _html_table(header, body, [False] * len(body)))
            notes = _difference_lines(report, language)
            if notes:
                parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in notes) + "</ul>")
        if language in charts and charts[language].is_file():
            data = base64.b64encode(charts[language].read_bytes()).decode("ascii")
            parts.append(f"<img alt='{language} chart' src='data:image/png;base64,{data}' style='max-width:100%'>")
        items = "".join(
            f"<li><b>{html.escape(c)}</b>: " + "; ".join(f"<code>{html.escape(s)}</code>" for s in sigs) + "</li>"
            for c, sigs in report.signatures.get(language, {}).items()
            if c in PAPER_COLUMNS or c in MORE_COLUMNS
        )
        parts.append(f"<p>Signatures (how each column was computed):</p><ul>{items}</ul>")
    if report.notes:
        parts.append(f"<h2>About the published numbers</h2><p>Source: {html.escape(report.paper_source)}.</p><ul>")
        parts += [f"<li>{html.escape(n)}</li>" for n in report.notes]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_chart(report: Report, language: str, path: Path) -> Path:
    """Grouped bars: one group per paper column, one bar per row (published ones hatched).

    Our bars carry the bootstrap interval (± half-width) as error bars where it was computed.

    Only comparable numbers are drawn: a published row shows bars only for columns whose
    recipe matches ours, and a row with no such column is left out of the chart.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in report.rows_for(language) if not r.published or any(_drawable(r.scores.get(c)) for c in PAPER_COLUMNS)]
    columns = [c for c in PAPER_COLUMNS if any(_drawable(r.scores.get(c)) for r in rows)]
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(8, 1.4 * len(columns)), 4.5 + 0.2 * len(rows)))
    x = np.arange(len(columns))
    cmap = plt.get_cmap("tab20")
    for i, row in enumerate(rows):
        offset = (i - (len(rows) - 1) / 2) * width
        drawn = [(j, float(row.scores[c])) for j, c in enumerate(columns) if _drawable(row.scores.get(c))]
        label = f"{row.model} [{row.task}]" + (" (published)" if row.published else "")
        errors = [row.ci[columns[j]].half_width if columns[j] in row.ci else 0.0 for j, _ in drawn]
        ax.bar(
            [x[j] + offset for j, _ in drawn],
            [v for _, v in drawn],
            width,
            yerr=errors if any(errors) else None,
            capsize=2,
            label=label,
            color=cmap(i % 20),
            hatch="//" if row.published else None,
            edgecolor="black" if row.published else None,
            linewidth=0.3,
        )
    ax.set_xticks(x, columns, rotation=20)
    ax.set_ylim(0, 1)
    bars = "; error bars: 95% bootstrap interval" if any(r.ci for r in rows) else ""
    ax.set_title(f"{LANGUAGE_NAMES.get(language, language)}: ours, and published numbers where comparable (hatched){bars}")
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    from psyinsight.fileio import atomic_open

    with atomic_open(path, "wb", encoding=None) as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
    return path


def _drawable(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def write_report(
    runs: list[str | Path],
    out_dir: str | Path,
    *,
    config: Any = None,
    include_paper: bool = True,
    force: bool = False,
    bootstrap: int = DEFAULT_SAMPLES,
    bootstrap_seed: int = DEFAULT_SEED,
    compare_to: str | None = None,
) -> dict[str, Path]:
    """Evaluate what needs it and write report.md, report.html, report.json and the charts.

    ``bootstrap`` resamples (0: none) give each of our cells its 95% interval and each tuned row
    its paired difference to the base row; ``bootstrap_seed`` makes them reproducible.
    ``compare_to`` (a task) also pairs each tuned row with the same model's row tuned on that task.
    """
    if bootstrap < 0:
        raise PsyInsightError(f"must be at least 0, got {bootstrap}", where="bootstrap")
    out_dir = Path(out_dir)
    documents = collect_runs(runs, config, force=force)
    report = build_report(documents, include_paper=include_paper)
    if not report.languages():
        raise PsyInsightError("the runs hold no scored groups", where="report")
    if bootstrap:
        add_bootstrap(report, bootstrap, bootstrap_seed)
        if compare_to:
            add_task_comparison(report, compare_to, bootstrap, bootstrap_seed)
    charts = {language: render_chart(report, language, out_dir / f"chart_{language}.png") for language in report.languages()}
    paths = {
        "markdown": write_text(out_dir / "report.md", render_markdown(report, charts)),
        "html": write_text(out_dir / "report.html", render_html(report, charts)),
        "json": write_json(
            out_dir / "report.json",
            {
                "rows": [r.as_json() for r in report.rows],
                "bootstrap": report.bootstrap or None,
                "uncertainty": report.uncertainty,
                "no_difference": report.no_comparison,
                "signatures": report.signatures,
                "notes": report.notes,
                "published_as_released": paper_results()["rows"] if include_paper else [],
            },
        ),
    }
    paths.update({f"chart_{language}": p for language, p in charts.items()})
    return paths
