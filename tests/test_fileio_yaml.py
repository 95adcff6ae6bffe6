"""YAML files are read in one place, and a broken one names its file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from psyinsight.errors import PsyInsightError
from psyinsight.fileio import read_yaml
from psyinsight.train.recipe import load_recipe


def test_read_yaml_parses_and_names_the_place_of_a_syntax_error(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("a: 1\nb: [x, y]\n", encoding="utf-8")
    assert read_yaml(good) == {"a": 1, "b": ["x", "y"]}
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [x, y\nc: 2\n", encoding="utf-8")
    with pytest.raises(PsyInsightError) as exc:
        read_yaml(bad)
    assert str(bad) in str(exc.value) and "line 3, column" in str(exc.value)


def test_a_recipe_with_broken_yaml_is_reported_through_read_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "recipe.yaml"
    bad.write_text("model:\n  name: smollm2\n training: {\n", encoding="utf-8")
    with pytest.raises(PsyInsightError, match=r"\(line 3, column 2\): invalid YAML"):
        load_recipe(bad)
