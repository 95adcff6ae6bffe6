"""An adapter's recipe is read back by one function, the one `generate` uses for its defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from psyinsight.cli import main
from psyinsight.errors import PsyInsightError
from psyinsight.models import ADAPTER_META
from psyinsight.train.recipe import Recipe, load_recipe, recipe_of_adapter


def _adapter(folder: Path, recipe: dict | None) -> Path:
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}", encoding="utf-8")
    if recipe is not None:
        meta = {"base_model": "smollm2", "task": "reasoning", "recipe": recipe}
        (folder / ADAPTER_META).write_text(json.dumps(meta), encoding="utf-8")
    return folder


def test_the_recipe_saved_with_an_adapter_comes_back_equal(tmp_path: Path) -> None:
    trained = load_recipe("cpu-default", ["tasks.task=reasoning", "data.source=sample", "training.max_steps=7"])
    adapter = _adapter(tmp_path / "adapter", trained.to_dict())
    back = recipe_of_adapter(adapter)
    assert back == trained
    assert (back.tasks.task, back.data.source, back.training.max_steps) == ("reasoning", "sample", 7)


def test_an_adapter_without_psyinsight_metadata_gets_the_default_recipe(tmp_path: Path) -> None:
    assert recipe_of_adapter(_adapter(tmp_path / "adapter", None)) == Recipe()


def test_a_bad_stored_recipe_is_one_error_naming_the_adapter(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path / "adapter", {"training": {"max_stepz": 3}})
    with pytest.raises(PsyInsightError) as exc:
        recipe_of_adapter(adapter)
    assert str(adapter) in str(exc.value) and "max_stepz" in str(exc.value)


def test_generate_reads_the_adapter_recipe_before_loading_anything(tmp_path: Path, capsys) -> None:
    adapter = _adapter(tmp_path / "adapter", {"training": {"max_stepz": 3}})
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--adapter", str(adapter), "--sample", "-o", str(tmp_path / "pred.jsonl")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(adapter) in err[0] and "max_stepz" in err[0], err
    assert not (tmp_path / "pred.jsonl").exists()
