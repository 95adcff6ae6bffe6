"""Classification metrics, the confusion-matrix figure and the Markdown results table.

Each result carries a signature (task, language, label mode, protocol, model, version) in
the sacrebleu manner: a number without its recipe is not reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ClassificationResult:
    """Scores of one model on one set of rows (single-label: one gold and one predicted label each)."""

    n: int
    macro_f1: float
    micro_f1: float
    accuracy: float
    labels: list[str]
    per_class: dict[str, dict[str, float]]
    """label -> precision, recall, f1, support."""
    confusion: list[list[int]]
    """Rows: gold label, columns: predicted label, both in ``labels`` order."""
    signature: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def score(gold: Sequence[str], predicted: Sequence[str], *, labels: Sequence[str] | None = None) -> ClassificationResult:
    """Macro/micro F1, accuracy, per-class report and confusion matrix for single-label rows.

    Macro-F1 averages over the gold labels (plus any predicted label), so a class the
    model never predicts counts as 0, and a label seen only in training does not dilute it.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    if not gold:
        raise ValueError("no rows to score")
    order = list(labels) if labels is not None else sorted(set(gold) | set(predicted))
    present = [lab for lab in order if lab in set(gold) | set(predicted)]
    p, r, f, s = precision_recall_fscore_support(gold, predicted, labels=present, zero_division=0)
    per_class = {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])} for i, lab in enumerate(present)}
    return ClassificationResult(
        n=len(gold),
        macro_f1=float(f1_score(gold, predicted, labels=present, average="macro", zero_division=0)),
        micro_f1=float(f1_score(gold, predicted, labels=present, average="micro", zero_division=0)),
        accuracy=float(accuracy_score(gold, predicted)),
        labels=present,
        per_class=per_class,
        confusion=confusion_matrix(gold, predicted, labels=present).tolist(),
    )


def score_sets(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
    """Multi-label scores: macro/micro F1 over labels, subset accuracy, and sample F1."""
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    binarizer = MultiLabelBinarizer().fit(list(gold) + list(predicted))
    y_true, y_pred = binarizer.transform(gold), binarizer.transform(predicted)
    return {
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "samples_f1": float(f1_score(y_true, y_pred, average="samples", zero_division=0)),
        "subset_accuracy": float(accuracy_score(y_true, y_pred)),
        "n": len(gold),
    }


def per_class_markdown(result: ClassificationResult) -> str:
    """The per-class report as a Markdown table."""
    lines = ["| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for lab, row in sorted(result.per_class.items(), key=lambda kv: -kv[1]["support"]):
        lines.append(f"| {lab} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |")
    return "\n".join(lines)


def confusion_figure(result: ClassificationResult, path: str | Path, *, title: str = "") -> Path:
    """Save the row-normalised confusion matrix (counts in the cells) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from psyinsight.fileio import write_bytes

    counts = np.array(result.confusion, dtype=float)
    norm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.55 * len(result.labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(result.labels)), result.labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(result.labels)), result.labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            if counts[i, j]:
                ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title or f"macro-F1 {result.macro_f1:.3f}, n={result.n}", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return write_bytes(path, buffer.getvalue())


def results_markdown(rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> str:
    """A Markdown table from dict rows; ``columns`` is (key, header). Floats get 3 decimals."""
    head = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = []
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key, "")
            cells.append(f"{value:.3f}" if isinstance(value, float) else str(value))
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *body])
