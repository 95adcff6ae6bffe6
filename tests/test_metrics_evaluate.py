"""Evaluating a predictions file: grouping, parse failures kept, signatures, reuse, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from psyinsight.errors import PsyInsightError
from psyinsight.evaluate.metrics import MetricConfig
from psyinsight.evaluate.scoring import evaluate_file, load_evaluation, load_predictions
from psyinsight.records import Prediction

CHEAP = MetricConfig(metrics=("bleu", "sacrebleu", "rouge", "distinct", "length"))


def write_predictions(path: Path, rows: list[Prediction]) -> Path:
    path.write_text("".join(json.dumps(r.model_dump(), ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def sample_predictions() -> list[Prediction]:
    rows = []
    pairs_en = [("How are you feeling today?", "How do you feel now?"), ("Tell me more about that.", "Can you tell me more?")]
    pairs_cn = [("你最近压力很大。", "听起来你最近压力很大。"), ("能多说一些吗？", "你愿意多说一些吗？")]
    for model in ("base", "sft"):
        for i, (h, r) in enumerate(pairs_en):
            rows.append(
                Prediction(
                    id=f"en-1/{i}",
                    text=f"Therapist: {h}",
                    reference=f"Therapist: {r}",
                    response=h,
                    meta={"language": "en", "task": "dialog", "model": model},
                )
            )
        for i, (h, r) in enumerate(pairs_cn):
            rows.append(
                Prediction(id=f"cn-1/{i}", text=f"咨询师：{h}", reference=r, response=h, meta={"language": "zh", "task": "dialog", "model": model})
            )
    # an unparsed output: scored on its raw text, counted, never dropped
    rows.append(
        Prediction(
            id="en-1/9",
            text="I am not sure what to say",
            reference="What brings you here?",
            response="",
            parse_ok=False,
            meta={"language": "en", "task": "dialog", "model": "sft"},
        )
    )
    return rows


def test_groups_scores_signatures_and_parse_failures(tmp_path):
    path = write_predictions(tmp_path / "predictions.jsonl", sample_predictions())
    out, document, reused = evaluate_file(path, config=CHEAP)
    assert not reused and out == tmp_path / "predictions.eval.json"
    keys = [(g["model"], g["task"], g["language"], g["n"]) for g in document["groups"]]
    assert keys == [("base", "dialog", "cn", 2), ("base", "dialog", "en", 2), ("sft", "dialog", "cn", 2), ("sft", "dialog", "en", 3)]
    sft_en = document["groups"][3]
    assert sft_en["scores"]["ParseFailure"] == pytest.approx(1 / 3)
    assert sft_en["signatures"]["BLEU-1"].startswith("BLEU(paper)|") and "tok:13a" in sft_en["signatures"]["sacreBLEU-1"]
    assert "tok:zh" in document["groups"][0]["signatures"]["sacreBLEU-1"]
    assert document["groups"][0]["scores"]["ROUGE-L"] > 0.3  # Chinese ROUGE is not zero
    assert document["predictions"]["sha256"] and load_evaluation(out)["groups"] == document["groups"]


def test_markers_are_stripped_unless_asked(tmp_path):
    rows = [
        Prediction(
            id="a",
            text="",
            reference="Therapist: totally different words",
            response="Therapist: nothing alike here",
            meta={"language": "en", "task": "t"},
        )
    ]
    path = write_predictions(tmp_path / "p.jsonl", rows)
    _, stripped, _ = evaluate_file(path, tmp_path / "a.json", MetricConfig(metrics=("bleu",)))
    _, kept, _ = evaluate_file(path, tmp_path / "b.json", MetricConfig(metrics=("bleu",), strip_speaker=False))
    assert kept["groups"][0]["scores"]["BLEU-1"] > stripped["groups"][0]["scores"]["BLEU-1"]


def test_rerun_reuses_and_input_change_recomputes(tmp_path):
    path = write_predictions(tmp_path / "predictions.jsonl", sample_predictions())
    evaluate_file(path, config=CHEAP)
    _, _, reused = evaluate_file(path, config=CHEAP)
    assert reused
    _, _, reused = evaluate_file(path, config=MetricConfig(metrics=("bleu",)))
    assert not reused  # other settings
    write_predictions(path, sample_predictions()[:3])
    _, document, reused = evaluate_file(path, config=CHEAP)
    assert not reused and sum(g["n"] for g in document["groups"]) == 3


def test_bad_inputs_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n{"text": "no id"}\n', encoding="utf-8")
    with pytest.raises(PsyInsightError, match="record 2"):
        load_predictions(bad)
    nolang = write_predictions(tmp_path / "nolang.jsonl", [Prediction(id="a", text="x", reference="y")])
    with pytest.raises(PsyInsightError, match="meta.language"):
        evaluate_file(nolang, config=CHEAP)
    with pytest.raises(PsyInsightError, match="not an evaluation file"):
        load_evaluation(nolang)


def test_cli_evaluate_prints_scores(tmp_path, capsys):
    from psyinsight.cli import main

    path = write_predictions(tmp_path / "predictions.jsonl", sample_predictions())
    with pytest.raises(SystemExit) as info:
        main(["evaluate", str(path), "--metrics", "bleu,distinct", "--signatures"])
    assert info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "BLEU-1" in out and "Distinct-2" in out and "smooth:method1" in out
    with pytest.raises(SystemExit) as info:
        main(["evaluate", str(path), "--metrics", "cider"])
    assert info.value.code == 2 and "unknown metric" in capsys.readouterr().err


def test_changed_recipe_recomputes(tmp_path, monkeypatch):
    import psyinsight.evaluate.metrics.bleu as bleu

    path = write_predictions(tmp_path / "predictions.jsonl", sample_predictions())
    evaluate_file(path, config=CHEAP)
    monkeypatch.setattr(bleu, "lib_version", lambda name: "99.0")  # e.g. sacrebleu upgraded
    _, document, reused = evaluate_file(path, config=CHEAP)
    assert not reused and "version:99.0" in document["groups"][0]["signatures"]["sacreBLEU-1"]
