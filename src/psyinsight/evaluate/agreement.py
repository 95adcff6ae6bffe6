"""Agreement between raters: Spearman, Krippendorff's alpha, Cronbach's alpha.

Pure functions over plain sequences (``None`` or NaN = missing), no I/O, so the judge, the
human-rating app and notebooks share one implementation. Conventions:

- ``spearman(x, y)``: pairs with a missing side are dropped; ties get average ranks.
- ``krippendorff_alpha(ratings, level)``: ``ratings`` is raters x units; units with fewer
  than two ratings are not pairable and are ignored (Krippendorff 2011).
- ``cronbach_alpha(items)``: subjects x items; subjects with a missing item are dropped.

Each returns NaN when the statistic is undefined (too few values, no variance).

The readers at the end (``read_ratings``, ``agreement_between``, ``agreement_within``) feed
these functions from one row format (unit, rater, a score per criterion), read from judge
outputs, ratings CSV/JSONL files and the rating app's database; ``psyinsight agreement`` is
their one command.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

Level = Literal["nominal", "ordinal", "interval", "ratio"]
Value = float | int | None


def _is_missing(value: Value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def rankdata(values: Sequence[float]) -> np.ndarray:
    """Ranks starting at 1, ties given their average rank."""
    arr = np.asarray(values, dtype=float)
    order = np.argsort(arr, kind="mergesort")
    ranks = np.empty(len(arr), dtype=float)
    sorted_vals = arr[order]
    i = 0
    while i < len(arr):
        j = i
        while j + 1 < len(arr) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def pearson(x: Sequence[Value], y: Sequence[Value]) -> float:
    """Pearson correlation over the pairs where both values are present."""
    pairs = [(float(a), float(b)) for a, b in zip(x, y, strict=True) if not _is_missing(a) and not _is_missing(b)]
    if len(pairs) < 2:
        return float("nan")
    a, b = np.array(pairs).T
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def spearman(x: Sequence[Value], y: Sequence[Value]) -> float:
    """Spearman's rho: Pearson correlation of the average ranks."""
    pairs = [(float(a), float(b)) for a, b in zip(x, y, strict=True) if not _is_missing(a) and not _is_missing(b)]
    if len(pairs) < 2:
        return float("nan")
    a, b = zip(*pairs)
    return pearson(list(rankdata(a)), list(rankdata(b)))


def _coincidences(ratings: Sequence[Sequence[Value]]) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct values and the coincidence matrix o[c, k]."""
    matrix = [[None if _is_missing(v) else float(v) for v in rater] for rater in ratings]
    if len({len(r) for r in matrix}) > 1:
        raise ValueError("every rater needs one entry per unit (use None for missing)")
    units = list(zip(*matrix)) if matrix else []
    values = sorted({v for unit in units for v in unit if v is not None})
    index = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for unit in units:
        present = [index[v] for v in unit if v is not None]
        m = len(present)
        if m < 2:
            continue
        for i, c in enumerate(present):
            for j, k in enumerate(present):
                if i != j:
                    o[c, k] += 1.0 / (m - 1)
    return np.array(values), o


def _delta2(values: np.ndarray, n_c: np.ndarray, level: Level) -> np.ndarray:
    size = len(values)
    if level == "nominal":
        return 1.0 - np.eye(size)
    if level == "interval":
        return (values[:, None] - values[None, :]) ** 2
    if level == "ratio":
        total = values[:, None] + values[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            d = ((values[:, None] - values[None, :]) / total) ** 2
        return np.nan_to_num(d)
    if level == "ordinal":
        d = np.zeros((size, size))
        cumulative = np.cumsum(n_c)
        for c in range(size):
            for k in range(c + 1, size):
                between = cumulative[k] - (cumulative[c - 1] if c > 0 else 0.0)
                d[c, k] = d[k, c] = (between - (n_c[c] + n_c[k]) / 2.0) ** 2
        return d
    raise ValueError(f"unknown level of measurement {level!r}; use nominal, ordinal, interval or ratio")


def krippendorff_alpha(ratings: Sequence[Sequence[Value]], level: Level = "ordinal") -> float:
    """Krippendorff's alpha for raters x units, with missing values allowed."""
    values, o = _coincidences(ratings)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n <= 1 or len(values) < 1:
        return float("nan")
    d2 = _delta2(values, n_c, level)
    observed = (o * d2).sum()
    expected = (np.outer(n_c, n_c) * d2).sum() / (n - 1)
    if expected == 0:
        return float("nan")
    return float(1.0 - observed / expected)


def cronbach_alpha(items: Sequence[Sequence[Value]]) -> float:
    """Cronbach's alpha for subjects x items (e.g. responses x criteria, or units x raters)."""
    rows = [[float(v) for v in row] for row in items if not any(_is_missing(v) for v in row)]
    if len(rows) < 2:
        return float("nan")
    data = np.array(rows)
    k = data.shape[1]
    if k < 2:
        return float("nan")
    total_var = data.sum(axis=1).var(ddof=1)
    if total_var == 0:
        return float("nan")
    return float(k / (k - 1) * (1.0 - data.var(axis=0, ddof=1).sum() / total_var))


def exact_agreement(x: Sequence[Value], y: Sequence[Value]) -> float:
    """Share of units (both rated) where the two ratings are equal."""
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if not _is_missing(a) and not _is_missing(b)]
    return float(sum(1 for a, b in pairs if float(a) == float(b)) / len(pairs)) if pairs else float("nan")


def compare_raters(x: Sequence[Value], y: Sequence[Value]) -> dict[str, float]:
    """Everything worth reporting for two raters on the same units."""
    both = sum(1 for a, b in zip(x, y, strict=True) if not _is_missing(a) and not _is_missing(b))
    diffs = [abs(float(a) - float(b)) for a, b in zip(x, y) if not _is_missing(a) and not _is_missing(b)]
    return {
        "n": float(both),
        "spearman": spearman(x, y),
        "pearson": pearson(x, y),
        "alpha_ordinal": krippendorff_alpha([list(x), list(y)], "ordinal"),
        "alpha_interval": krippendorff_alpha([list(x), list(y)], "interval"),
        "exact": exact_agreement(x, y),
        "mean_abs_diff": float(np.mean(diffs)) if diffs else float("nan"),
    }


# -- reading rating files (the only I/O in this module, kept apart from the statistics) --

CRITERIA: tuple[str, ...] = ("interactivity", "helpfulness", "comfort", "explainability")


def read_ratings(path: str | Path, *, study: str | None = None) -> list[dict[str, Any]]:
    """Rows of {unit, rater, study, preferred_system, one score per criterion} from a ratings source.

    Accepted: ``psyinsight judge`` output (``id``, ``model``, ``scores``), the rating app's
    database (``psyinsight ui rate --db``) or its CSV export (``item``, ``system``, ``rater``,
    one column per criterion), or any CSV/JSONL with ``id``/``item`` and criterion columns.
    A unit is (id, model/system); ``study`` keeps one study's ratings.
    """
    from psyinsight.errors import PsyInsightError
    from psyinsight.fileio import read_jsonl, read_text

    path = Path(path)
    if not path.is_file():
        raise PsyInsightError("no such file", path=path)
    from psyinsight.ui.ratings import is_sqlite_file, load_rows

    if is_sqlite_file(path):
        raw: list[Any] = load_rows(path)
    elif path.suffix.lower() == ".csv":
        raw = list(csv.DictReader(read_text(path).splitlines()))
    else:
        raw = read_jsonl(path)
    return rating_rows(raw, path, study=study, first_record=2 if path.suffix.lower() == ".csv" else 1)


def rating_rows(raw: Sequence[Any], path: str | Path, *, study: str | None = None, first_record: int = 1) -> list[dict[str, Any]]:
    """The records of one ratings source in the one row format (``read_ratings``), checked."""
    from psyinsight.errors import PsyInsightError

    rows = []
    for lineno, row in enumerate(raw, start=first_record):
        if not isinstance(row, dict):
            raise PsyInsightError("expected an object per line", path=path, where=f"record {lineno}")
        if "ok" in row and not row["ok"]:
            continue  # a judge call that failed: no rating
        if study is not None and str(row.get("study", "")) != study:
            continue
        unit_id = row.get("id", row.get("item"))
        if unit_id in (None, ""):
            raise PsyInsightError("needs an 'id' (or 'item') field", path=path, where=f"record {lineno}")
        scores = row.get("scores") if isinstance(row.get("scores"), dict) else row
        values: dict[str, float | None] = {}
        for criterion in CRITERIA:
            value = scores.get(criterion)
            if value in (None, ""):
                values[criterion] = None
                continue
            try:
                values[criterion] = float(value)
            except (TypeError, ValueError):
                raise PsyInsightError(f"{criterion} must be a number, got {value!r}", path=path, where=f"record {lineno}") from None
        if all(v is None for v in values.values()):
            raise PsyInsightError(f"no criterion column ({', '.join(CRITERIA)})", path=path, where=f"record {lineno}")
        unit = (str(unit_id), str(row.get("model", row.get("system", ""))))
        rater = str(row.get("rater", Path(path).stem))
        extra = {"study": str(row.get("study") or ""), "preferred_system": str(row.get("preferred_system") or "")}
        rows.append({"unit": unit, "rater": rater, **extra, **values})
    if not rows:
        raise PsyInsightError(f"no ratings for study {study!r}" if study is not None else "no ratings in the file", path=path)
    return rows


def _unit_means(rows: list[dict[str, Any]], criterion: str) -> dict[tuple[str, str], float]:
    sums: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        if row[criterion] is not None:
            sums.setdefault(row["unit"], []).append(row[criterion])
    return {unit: sum(v) / len(v) for unit, v in sums.items()}


def agreement_between(first: str | Path, second: str | Path, *, study: str | None = None) -> dict[str, Any]:
    """Compare two rating sources unit by unit (several raters of a unit are averaged)."""
    from psyinsight.errors import PsyInsightError

    a, b = read_ratings(first, study=study), read_ratings(second, study=study)
    result: dict[str, Any] = {"first": str(first), "second": str(second), "criteria": {}}
    for criterion in CRITERIA:
        ma, mb = _unit_means(a, criterion), _unit_means(b, criterion)
        units = sorted(set(ma) & set(mb))
        if not units and not any(set(_unit_means(a, c)) & set(_unit_means(b, c)) for c in CRITERIA):
            raise PsyInsightError("the two files share no rated unit (id and model/system must match)", path=second)
        result["criteria"][criterion] = compare_raters([ma[u] for u in units], [mb[u] for u in units])
    return result


def agreement_within(path: str | Path, *, study: str | None = None) -> dict[str, Any]:
    """Agreement among the raters inside one source (its ``rater`` column), with means and preferences."""
    from psyinsight.errors import PsyInsightError

    rows = read_ratings(path, study=study)
    if len({r["rater"] for r in rows}) < 2:
        raise PsyInsightError("holds one rater only; give a second file to compare with", path=path)
    return {"file": str(path), **within_rows(rows)}


def within_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per criterion: Krippendorff's alpha (every rating, missing cells allowed), the mean pairwise
    Spearman, and Cronbach's alpha with raters as the scale's items over the units every rater
    rated; then the mean score per system and the A/B preferences per study."""
    raters = sorted({r["rater"] for r in rows})
    units = sorted({r["unit"] for r in rows})
    result: dict[str, Any] = {"raters": raters, "units": len(units), "criteria": {}}
    for criterion in CRITERIA:
        table = {(r["rater"], r["unit"]): r[criterion] for r in rows}
        matrix = [[table.get((rater, unit)) for unit in units] for rater in raters]
        pair_rhos = [spearman(matrix[i], matrix[j]) for i in range(len(raters)) for j in range(i + 1, len(raters))]
        pair_rhos = [r for r in pair_rhos if not math.isnan(r)]
        complete = [[row[j] for row in matrix] for j in range(len(units)) if not any(_is_missing(row[j]) for row in matrix)]
        result["criteria"][criterion] = {
            "alpha_ordinal": krippendorff_alpha(matrix, "ordinal"),
            "alpha_interval": krippendorff_alpha(matrix, "interval"),
            "mean_pairwise_spearman": float(np.mean(pair_rhos)) if pair_rhos else float("nan"),
            "cronbach": cronbach_alpha(complete) if len(raters) >= 2 else float("nan"),
            "complete_units": float(len(complete)),
        }
    result["means"] = system_means(rows)
    result["preferences"] = preferences(rows)
    return result


def system_means(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """System -> criterion -> mean score (missing scores left out), with "n": the system's ratings."""
    by_system: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_system.setdefault(row["unit"][1], []).append(row)
    means: dict[str, dict[str, float]] = {}
    for system, group in sorted(by_system.items()):
        given = {c: [r[c] for r in group if r[c] is not None] for c in CRITERIA}
        means[system] = {**{c: round(sum(v) / len(v), 4) if v else float("nan") for c, v in given.items()}, "n": len(group)}
    return means


def preferences(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Study -> preferred system (or "tie") -> count, one per rater and item (a comparison has two rows)."""
    counts: dict[str, dict[str, int]] = {}
    seen: set[tuple[str, str, str]] = set()
    for row in rows:
        key = (row["study"], row["rater"], row["unit"][0])
        if row["preferred_system"] and key not in seen:
            seen.add(key)
            study = counts.setdefault(row["study"], {})
            study[row["preferred_system"]] = study.get(row["preferred_system"], 0) + 1
    return counts
