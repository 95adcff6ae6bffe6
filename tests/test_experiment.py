"""``psyinsight experiment``: plan, train, generate, score and report, resumed stage by stage.

A tiny random chat model (tests/conftest.py) on the bundled sample keeps each run to seconds;
what is checked is the bookkeeping: the same test turns for every system, a base row and a
row per variant with intervals, stages skipped when their inputs are unchanged and redone
when they change, and a killed run finishing where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from psyinsight.fileio import read_json, read_jsonl

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _cli(args: list[str]) -> int:
    from psyinsight.cli import main

    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


def _experiment(tmp_path: Path, model: Path, **changes) -> Path:
    data = {
        "name": "tiny",
        "description": "a tiny model on the sample",
        "recipe": "cpu-default",
        "settings": {
            "model.name": str(model),
            "data.source": "sample",
            "training.max_steps": 2,
            "training.max_length": 512,
            "training.save_steps": 1,
            "training.num_threads": 1,
            "data.max_eval_examples": 2,
        },
        "languages": ["en"],
        "variants": ["dialog", "reasoning"],
        "min_train_examples": 2,
        "test": {"split": "test", "examples": 3, "seed": 1},
        "generation": {"max_new_tokens": 6, "batch_size": 4},
        "metrics": {"metrics": ["bleu", "rouge", "length"]},
        "bootstrap": 200,
        "output_dir": str(tmp_path / "out"),
    }
    data.update(changes)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _fail_if_called(*args, **kwargs):
    raise AssertionError("this stage was expected to be skipped")


def test_an_experiment_reports_a_base_row_and_a_row_per_variant_on_the_same_turns(tmp_path, tiny_chat_model_dir, capsys):
    path = _experiment(tmp_path, tiny_chat_model_dir)
    assert _cli(["experiment", str(path)]) == 0, capsys.readouterr().err
    out = tmp_path / "out"
    ids = {system: [row["id"] for row in read_jsonl(out / "predictions" / f"en-{system}.jsonl")] for system in ("base", "dialog", "reasoning")}
    assert len(ids["base"]) == 3 and ids["base"] == ids["dialog"] == ids["reasoning"]
    report = read_json(out / "report" / "report.json")
    ours = [row for row in report["rows"] if not row["published"]]
    assert sorted((row["model"].endswith("(base)"), row["task"]) for row in ours) == [(False, "dialog"), (False, "reasoning"), (True, "dialog")]
    summary = (out / "report" / "experiment.md").read_text(encoding="utf-8")
    assert "| en | dialog, reasoning |" in summary and "## Results" in summary and "±" in summary
    assert "Difference vs the dialog rows" in summary and "| reasoning | tiny-chat-model0 + LoRA [dialog] | 3 |" in summary
    plan = read_json(out / "plan.json")["plans"][0]
    assert plan["test_ids"] == ids["base"] and plan["shared_test_turns"] >= 3


def test_a_rerun_skips_finished_stages_and_a_changed_setting_redoes_only_what_it_touches(tmp_path, tiny_chat_model_dir, monkeypatch, capsys):
    import psyinsight.train.runner as train_runner

    path = _experiment(tmp_path, tiny_chat_model_dir)
    assert _cli(["experiment", str(path)]) == 0
    capsys.readouterr()
    monkeypatch.setattr(train_runner, "run_recipe", _fail_if_called)
    assert _cli(["experiment", str(path)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert printed.count("up to date") == 5  # two adapters, three prediction files

    changed = _experiment(tmp_path, tiny_chat_model_dir, generation={"max_new_tokens": 4, "batch_size": 4})
    assert _cli(["experiment", str(changed)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "train en/dialog: up to date" in printed and "generate en/base: 3 generated" in printed


def test_a_killed_experiment_resumes_where_it_stopped(tmp_path, tiny_chat_model_dir, monkeypatch, capsys):
    import psyinsight.experiment.runner as runner
    import psyinsight.train.runner as train_runner

    path = _experiment(tmp_path, tiny_chat_model_dir)
    real_generate = runner.Experiment.generate

    def killed_after_the_base_row(self, language, system):
        if system != "base":
            raise KeyboardInterrupt
        return real_generate(self, language, system)

    monkeypatch.setattr(runner.Experiment, "generate", killed_after_the_base_row)
    assert _cli(["experiment", str(path)]) == 130  # what Ctrl-C gives
    capsys.readouterr()
    monkeypatch.setattr(runner.Experiment, "generate", real_generate)
    monkeypatch.setattr(train_runner, "run_recipe", _fail_if_called)
    assert _cli(["experiment", str(path)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "generate en/base: up to date" in printed and "generate en/reasoning: 3 generated" in printed
    assert (tmp_path / "out" / "report" / "report.md").is_file()


def test_a_variant_the_data_cannot_support_is_named_and_not_run(tmp_path, tiny_chat_model_dir, capsys):
    path = _experiment(tmp_path, tiny_chat_model_dir, min_train_examples=100000)
    assert _cli(["experiment", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no language supports any variant" in err
    plan = read_json(tmp_path / "out" / "plan.json")["plans"][0]
    assert plan["variants"] == [] and "fewer than min_train_examples 100000" in plan["not_supported"]["dialog"]
    assert not (tmp_path / "out" / "en").exists()


def test_a_run_left_by_other_settings_is_started_over_not_resumed(tmp_path, tiny_chat_model_dir, capsys):
    path = _experiment(tmp_path, tiny_chat_model_dir, variants=["dialog"])
    assert _cli(["experiment", str(path), "--plan"]) == 0
    stale = tmp_path / "out" / "en" / "dialog" / "checkpoint-7"  # a step this run never reaches
    stale.mkdir(parents=True)
    assert _cli(["experiment", str(path)]) == 0, capsys.readouterr().err
    assert "holds a run with other settings; starting over" in capsys.readouterr().out
    assert not stale.exists() and (tmp_path / "out" / "en" / "dialog" / "adapter").is_dir()


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"variants": ["dialog", "poetry"]}, "(variants): unknown variant(s) poetry"),
        ({"settings": {"tasks.task": "reasoning"}}, "(settings): tasks.task is set by the experiment"),
        ({"settings": {"training.max_stepz": 3}}, "unknown setting 'max_stepz'; did you mean 'max_steps'?"),
        ({"test": {"examples": -1}}, "(test.examples): must be 0 (all) or more"),
        ({"bootstraps": 10}, "(bootstraps): unknown setting 'bootstraps'; did you mean 'bootstrap'?"),
    ],
)
def test_a_bad_experiment_file_is_one_line_naming_the_key(tmp_path, tiny_chat_model_dir, capsys, change, where):
    path = _experiment(tmp_path, tiny_chat_model_dir, **change)
    assert _cli(["experiment", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and where in err
    assert not (tmp_path / "out").exists()
