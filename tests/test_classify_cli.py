"""The classify commands end to end on the bundled sample, and their errors."""

from __future__ import annotations

import json

import pytest

from psyinsight.cli import main


def run(argv, capsys):
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cls") / "strategy-en"
    with pytest.raises(SystemExit) as done:
        main(["classify", "train", "--task", "strategy", "-l", "en", "--sample", "--split", "all", "-o", str(folder)])
    assert done.value.code == 0
    return folder


def test_train_eval_writes_reports(trained, tmp_path, capsys):
    manifest = json.loads((trained / "manifest.json").read_text())
    assert manifest["task"] == "strategy" and manifest["language"] == "en" and manifest["model_type"] == "tfidf"
    code, out, _ = run(["classify", "eval", "-m", str(trained), "--sample", "--split", "all", "-o", str(tmp_path / "ev")], capsys)
    assert code == 0 and "macro-F1" in out
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n"] > 5 and 0 <= metrics["macro_f1"] <= 1
    assert (tmp_path / "ev" / "confusion.png").stat().st_size > 1000
    assert "| label | precision | recall | F1 | support |" in (tmp_path / "ev" / "report.md").read_text()
    assert len((tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()) == metrics["n"]


def test_predict_text_jsonl_and_release_inputs(trained, tmp_path, capsys):
    from psyinsight.data.sample import sample_path

    txt = tmp_path / "in.txt"
    txt.write_text("How did that make you feel?\n\nIt sounds like you were hurt.\n")
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"id": "a", "text": "What happened next?", "context": ["Seeker: I failed."]}) + "\n")
    for source, expected in ((txt, 2), (jsonl, 1), (sample_path("en"), None)):
        out = tmp_path / f"{source.name}.out.jsonl"
        code, stdout, err = run(["classify", "predict", "-m", str(trained), "-i", str(source), "-o", str(out)], capsys)
        assert code == 0, err
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        if expected is not None:
            assert len(rows) == expected
        else:  # every Supporter turn of the sample file
            assert len(rows) > 10 and all("current" in r for r in rows)
        assert all(r["label"] in json.loads((trained / "manifest.json").read_text())["labels"] for r in rows)
        assert "warning" not in err


def test_predict_warns_on_chinese_text_and_strict_fails(trained, tmp_path, capsys):
    txt = tmp_path / "cn.txt"
    txt.write_text("你能说说当时的感受吗？\n")
    code, _, err = run(["classify", "predict", "-m", str(trained), "-i", str(txt), "-o", str(tmp_path / "o.jsonl")], capsys)
    assert code == 0 and "warning" in err and "looks 'cn'" in err
    code, _, err = run(["classify", "predict", "-m", str(trained), "-i", str(txt), "-o", str(tmp_path / "o.jsonl"), "--strict-language"], capsys)
    assert code == 2 and "looks 'cn'" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["classify", "train", "--task", "mood", "-l", "en", "--sample", "-o", "X"], "unknown task 'mood'"),
        (["classify", "train", "--task", "topic", "-l", "fr", "--sample", "-o", "X"], "unknown language 'fr'"),
        (["classify", "train", "--task", "topic", "-l", "en", "--sample", "-o", "X", "--model", "forest"], "unknown model 'forest'"),
        (["classify", "train", "--task", "topic", "-l", "en", "--sample", "-o", "X", "--model", "encoder"], "--encoder-path"),
        (["classify", "benchmark", "--sample", "-o", "X", "--scheme", "loo"], "unknown scheme 'loo'"),
    ],
)
def test_bad_input_exits_2_with_a_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert code == 2 and message in err


def test_model_of_another_task_is_refused(trained, tmp_path, capsys):
    code, _, err = run(["classify", "eval", "-m", str(trained), "--task", "emotion", "--sample", "-o", str(tmp_path / "e")], capsys)
    assert code == 2 and "trained for task 'strategy', not 'emotion'" in err


def test_bad_jsonl_names_the_row(trained, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"id": 3}\n')
    code, _, err = run(["classify", "predict", "-m", str(trained), "-i", str(bad), "-o", str(tmp_path / "o.jsonl")], capsys)
    assert code == 2 and "bad.jsonl (row 2)" in err


def test_benchmark_on_the_sample(tmp_path, capsys):
    code, out, _ = run(
        [
            "classify",
            "benchmark",
            "--sample",
            "--tasks",
            "emotion",
            "--languages",
            "en",
            "--scheme",
            "kfold",
            "--n-splits",
            "3",
            "-o",
            str(tmp_path / "b"),
        ],
        capsys,  # 3 case groups: 2 on each training side
    )
    assert code == 0, out
    assert "| emotion | en | majority |" in out and "| emotion | en | tfidf-nested |" in out
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert {r["model"] for r in results["results"]} == {"majority", "tfidf-nested"}  # nested results only
    nested = next(r for r in results["results"] if r["model"] == "tfidf-nested")
    assert all(f["result"]["extra"]["chosen"] for f in nested["folds"])  # chosen inside each training side
    assert (tmp_path / "b" / "confusion_emotion_en_tfidf-nested.png").is_file()
    majority_row = next(line for line in out.splitlines() if "| emotion | en | majority |" in line)
    assert "| yes |" not in majority_row and "| no |" not in majority_row  # targets judge nested results only


def test_help_lists_the_commands(capsys):
    code, out, _ = run(["classify", "--help"], capsys)
    assert code == 0 and all(name in out for name in ("train", "eval", "predict", "benchmark"))
