"""One check of split names: the recipe, a split file and every --split option accept the same names."""

from __future__ import annotations

import json

import pytest

from psyinsight.commands.checks import split_name
from psyinsight.data.splits import SPLITS, SplitAssignment, check_split
from psyinsight.errors import PsyInsightError
from psyinsight.train.recipe import DataSection

MESSAGE = "unknown split 'dev'; choose from train, validation, test"


def test_check_split_accepts_the_three_names_only():
    assert [check_split(name) for name in SPLITS] == ["train", "validation", "test"]
    with pytest.raises(PsyInsightError, match=MESSAGE):
        check_split("dev")
    with pytest.raises(PsyInsightError):
        check_split("all")
    assert check_split("all", also=("all",)) == "all"


def test_the_recipe_the_split_file_and_the_option_say_the_same(tmp_path):
    with pytest.raises(PsyInsightError, match=MESSAGE) as recipe:
        DataSection(eval_split="dev")
    assert recipe.value.where == "data.eval_split"
    assert DataSection(eval_split=None).eval_split is None

    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"split_of": {"a": "train", "b": "dev"}}), encoding="utf-8")
    with pytest.raises(PsyInsightError, match=MESSAGE) as split_file:
        SplitAssignment.load(path)
    assert split_file.value.where == "split_of" and split_file.value.path == str(path)

    with pytest.raises(PsyInsightError, match=MESSAGE + ", all") as option:
        split_name("dev")
    assert option.value.where == "--split"
    split_name("all")
    split_name("validation")

    assignment = SplitAssignment(split_of={"a": "train"})
    with pytest.raises(PsyInsightError, match=MESSAGE):
        assignment.select([], "dev")  # type: ignore[arg-type]
