"""The JSON writers write an undefined number as null, so every output file is valid JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from psyinsight.fileio import finite_or_null, write_json, write_jsonl


def _strict(text: str):
    """Parse as standard JSON: NaN, Infinity and -Infinity are refused."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} written into JSON"))


def test_write_json_writes_nan_and_infinity_as_null(tmp_path):
    doc = {"a": math.nan, "b": [1.5, float("inf"), {"c": -math.inf}], "d": (np.float64("nan"), 2), "e": "NaN", "f": 0.25}
    path = write_json(tmp_path / "out.json", doc)
    assert _strict(path.read_text(encoding="utf-8")) == {"a": None, "b": [1.5, None, {"c": None}], "d": [None, 2], "e": "NaN", "f": 0.25}
    assert math.isnan(doc["a"])  # the caller's object is left as it was


def test_write_jsonl_writes_nan_as_null(tmp_path):
    path = write_jsonl(tmp_path / "out.jsonl", [{"score": math.nan, "id": "x"}, {"score": 1.0, "id": "y"}])
    assert [_strict(line) for line in path.read_text(encoding="utf-8").splitlines()] == [{"score": None, "id": "x"}, {"score": 1.0, "id": "y"}]


def test_finite_or_null_keeps_everything_else():
    value = {"n": 3, "ok": True, "none": None, "text": "自杀", "x": 1e308, "nested": [[0.0, -1.5]]}
    assert finite_or_null(value) == value


def test_evaluation_scores_undefined_are_null_in_the_file(tmp_path):
    """An evaluation group with an undefined score (too few texts) reaches the file as null."""
    from psyinsight.evaluate.scoring import GroupResult

    group = GroupResult(model="m", task="t", language="en", n=0, scores={"Distinct-1": math.nan, "BLEU": 0.5})
    path = write_json(tmp_path / "eval.json", {"groups": [group.as_dict()]})
    assert _strict(path.read_text(encoding="utf-8"))["groups"][0]["scores"] == {"Distinct-1": None, "BLEU": 0.5}
