"""No silent failure: what used to exit 0 with a wrong result now says so, or stops."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_metrics_evaluate import sample_predictions, write_predictions

from psyinsight.cli import main
from psyinsight.data.sample import sample_path
from psyinsight.errors import PsyInsightError


def run(argv, capsys, cwd: Path | None = None):
    old = Path.cwd()
    if cwd:
        os.chdir(cwd)
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        os.chdir(old)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_validate_reports_every_broken_session_and_what_loading_needs(tmp_path, capsys):
    data = json.loads(sample_path("en").read_text(encoding="utf-8"))
    data[0]["dialog_id"] = None  # loading (and export) needs a dialog_id
    data[1]["dialog"][0]["content"] = 5
    data[2]["dialog"][1]["speaker"] = "Bob"
    bad = tmp_path / "en_bad.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    code, out, _ = run(["data", "validate", bad, "--show", "-1"], capsys)
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, out
    assert any("field=dialog_id" in e for e in errors) and any("non-text content" in e for e in errors) and any("'Bob'" in e for e in errors)
    # the other sessions are still checked: their notes are listed
    assert "note(s)" in out.splitlines()[-1] and not out.splitlines()[-1].endswith(" 0 note(s) in 1 file(s)")


def test_empty_file_is_an_error_whatever_its_extension(tmp_path, capsys):
    for name in ("empty.json", "empty.jsonl"):
        (tmp_path / name).write_text("", encoding="utf-8")
        code, _, err = run(["data", "validate", tmp_path / name], capsys)
        assert code == 2 and err.strip().endswith("the file is empty"), (name, err)


def test_release_not_found_names_sample_and_the_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PSYINSIGHT_DATA_DIR", raising=False)
    monkeypatch.setenv("PSYINSIGHT_CACHE_DIR", str(tmp_path / "cache"))
    code, _, err = run(["data", "stats", "--out", tmp_path / "s"], capsys, cwd=tmp_path)
    assert code == 2 and "--sample" in err and "PSYINSIGHT_DATA_DIR" in err
    assert not (tmp_path / "s").exists()


def test_evaluate_refuses_missing_references_or_counts_them(tmp_path, capsys):
    rows = sample_predictions()
    rows[0].reference = ""
    path = write_predictions(tmp_path / "p.jsonl", rows)
    argv = ["evaluate", path, "--metrics", "bleu,length", "-o", tmp_path / "e.json"]
    code, _, err = run(argv, capsys)
    assert code == 2 and "1 of" in err and "--allow-missing-references" in err and rows[0].id in err
    assert not (tmp_path / "e.json").exists()
    code, _, err = run([*argv, "--allow-missing-references"], capsys)
    assert code == 0 and "1 prediction(s) without a reference were left out" in err
    document = json.loads((tmp_path / "e.json").read_text(encoding="utf-8"))
    assert document["missing_references"] == 1
    assert sum(g["n"] for g in document["groups"]) == len(rows) - 1


def test_evaluate_offline_fails_before_scoring_naming_minilm(tmp_path, capsys, monkeypatch):
    from psyinsight.evaluate.metrics import bertscore

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("PSYINSIGHT_BERTSCORE_MODEL_EN", raising=False)
    monkeypatch.setattr(bertscore, "_cached_on_disk", lambda name: False)
    scored = []
    monkeypatch.setattr("psyinsight.evaluate.scoring.evaluate_predictions", lambda *a, **k: scored.append(1))
    path = write_predictions(tmp_path / "p.jsonl", [p for p in sample_predictions() if p.meta["language"] == "en"])
    code, _, err = run(["evaluate", path, "-o", tmp_path / "e.json"], capsys)
    assert code == 2 and "--bertscore-model-en minilm" in err and "roberta-large" in err
    assert scored == [] and not (tmp_path / "e.json").exists()


def test_judge_without_a_usable_answer_exits_2_and_shows_its_endpoint(tmp_path, capsys):
    from fake_openai import FakeOpenAI

    path = write_predictions(tmp_path / "p.jsonl", sample_predictions()[:2])
    with FakeOpenAI(lambda body: "not a rating at all") as server:
        code, _, err = run(
            [
                "judge",
                path,
                "-o",
                tmp_path / "j.jsonl",
                "--base-url",
                server.url,
                "--model",
                "fake-judge",
                "--retries",
                "0",
                "--cache",
                tmp_path / "c.sqlite",
            ],
            capsys,
        )
    assert code == 2
    assert f"judge: fake-judge at {server.url}" in err
    assert err.strip().splitlines()[-1].startswith("error: judge: no usable answer from fake-judge")
    assert not (tmp_path / "j.jsonl").exists()
    code, out, _ = run(["judge", "--help"], capsys)
    assert "http://127.0.0.1:8000/v1" in out and "gpt-4o-mini" in out


def test_empty_recipe_is_an_error(tmp_path, capsys):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("# nothing yet\n", encoding="utf-8")
    code, _, err = run(["train", recipe, "--show"], capsys)
    assert code == 2 and "the recipe is empty" in err


def test_one_chinese_row_among_english_rows_is_counted(tmp_path, capsys):
    model = tmp_path / "m"
    assert run(["classify", "train", "-t", "strategy", "-l", "en", "--sample", "--split", "all", "-o", model], capsys)[0] == 0
    texts = tmp_path / "mixed.txt"
    english = ["How did that make you feel?", "Tell me more about your week.", "What would help you most right now?"]
    texts.write_text("\n".join([*english, "你能说说当时的感受吗？"]) + "\n", encoding="utf-8")
    code, _, err = run(["classify", "predict", "-m", model, "-i", texts, "-o", tmp_path / "o.jsonl"], capsys)
    assert code == 0 and "1 of 4 rows are not in the model's language (en): 4" in err
    code, _, err = run(["classify", "predict", "-m", model, "-i", texts, "-o", tmp_path / "o2.jsonl", "--strict-language"], capsys)
    assert code == 2 and "1 of 4 rows" in err and not (tmp_path / "o2.jsonl").exists()
    code, _, err = run(["classify", "predict", "-m", model, "-i", texts, "-o", tmp_path / "o3.jsonl", "--top", "99"], capsys)
    assert code == 0  # more than the labels: all of them, no IndexError


def test_safety_eval_finds_bundled_sets_from_any_folder(tmp_path, capsys):
    code, _, err = run(["safety", "eval", "--set", "nope"], capsys, cwd=tmp_path)
    assert code == 2 and "blindset4" in err
    from psyinsight.counsel.safety.corpus import named_sets

    sets = named_sets()
    assert {"blindset4", "valid", "xstest_safe", "openai_moderation", "legacy_blindset3"} <= set(sets)
    assert all(path.is_file() for path in sets.values())


def test_help_starts_here_and_lists_data_first(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    text = [line.strip(" │") for line in out.splitlines() if line.strip(" │")]
    start = text.index(next(line for line in text if line.startswith("Start here")))
    assert [line.split()[0] for line in text[start + 1 : start + 4]] == ["1.", "2.", "3."]
    commands = [line.split()[0] for line in text if line.split()[0] in ("data", "build", "train", "ui")]
    assert commands[0] == "data" and commands[-1] == "build"


def test_hf_export_with_splits_is_one_dataset_dict(tmp_path, capsys):
    import datasets

    splits = tmp_path / "splits.json"
    assert run(["data", "split", "--sample", "--out", splits], capsys)[0] == 0
    code, out, _ = run(["data", "export", tmp_path / "hf", "--format", "hf", "--sample", "--splits", splits], capsys)
    assert code == 0 and "one DatasetDict" in out
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert isinstance(loaded, datasets.DatasetDict) and set(loaded) == {"train", "validation", "test"}
    assert sum(len(part) for part in loaded.values()) == 8
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hf.")]  # no staging left


def test_build_accepts_one_raw_file(tmp_path, capsys):
    raw = tmp_path / "one.txt"
    raw.write_text("Therapist: How are you today?\nClient: I have been anxious about work.\n", encoding="utf-8")
    code, out, err = run(["build", raw, "--out", tmp_path / "b", "--no-llm"], capsys)
    assert code == 0, err
    assert "sessions: en 1" in out and "{" not in out


def test_progress_bar_reports_steps_and_loss():
    from types import SimpleNamespace

    from psyinsight.train.progress import TrainingProgress

    bar = TrainingProgress()
    state = SimpleNamespace(is_local_process_zero=True, max_steps=4, global_step=1)
    bar.on_train_begin(None, state, None)
    assert bar.bar.total == 4 and bar.bar.n == 1  # a resumed run starts where it stopped
    state.global_step = 3
    bar.on_step_end(None, state, None)
    bar.on_log(None, state, None, logs={"loss": 1.234567})
    assert bar.bar.n == 3 and bar.bar.postfix == "loss=1.235"
    bar.on_train_end(None, state, None)
    assert bar.bar is None


def test_default_modes_undo_private_files(tmp_path):
    from psyinsight.fileio import _FILE_MODE, default_modes

    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    weights.chmod(0o600)
    default_modes(tmp_path)
    assert weights.stat().st_mode & 0o777 == _FILE_MODE


def test_check_ratios_names_the_option():
    from psyinsight.data.splits import check_ratios

    with pytest.raises(PsyInsightError, match="^--ratios: "):
        check_ratios([0.5, 0.5, 0.5], option="--ratios")
