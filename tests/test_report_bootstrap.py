"""Paired bootstrap intervals in ``psyinsight report``: per-example data, pairing by id, sacrebleu's convention."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from test_metrics_evaluate import write_predictions

from psyinsight.commands import options
from psyinsight.evaluate import bootstrap
from psyinsight.evaluate.metrics import MetricConfig, ScoringBatch
from psyinsight.evaluate.metrics.bleu import SacreBLEU
from psyinsight.evaluate.metrics.distinct import distinct_corpus
from psyinsight.evaluate.report import PAPER_COLUMNS, write_report
from psyinsight.evaluate.scoring import evaluate_file
from psyinsight.fileio import read_json, write_json
from psyinsight.records import Prediction

CHEAP = MetricConfig(metrics=("bleu", "sacrebleu", "rouge", "distinct", "length"))
TOPICS = ["work", "sleep", "family", "exams", "money", "friends", "health", "moving", "loss", "anger"]


def references(n: int = 30) -> list[str]:
    return [f"It sounds like {TOPICS[i % 10]} has been weighing on you since week {i}; what helps you most?" for i in range(n)]


def unrelated(n: int = 30) -> list[str]:
    return [f"Bananas grow {i} meters tall near purple volcanoes." for i in range(n)]


def predictions(model: str, hypotheses: list[str], language: str = "en", task: str = "dialog") -> list[Prediction]:
    refs = references(len(hypotheses))
    return [
        Prediction(id=f"{language}-{i:02d}", text=h, reference=r, response=h, meta={"language": language, "task": task, "model": model})
        for i, (h, r) in enumerate(zip(hypotheses, refs))
    ]


def write_run(tmp_path: Path, rows: list[Prediction], name: str = "rep", **kwargs) -> dict[str, Path]:
    folder = tmp_path / f"{name}-run"
    folder.mkdir()
    write_predictions(folder / "predictions.jsonl", rows)
    return write_report([folder], tmp_path / name, config=CHEAP, include_paper=False, **kwargs)


def report_json(tmp_path: Path, rows: list[Prediction], name: str = "rep", **kwargs) -> tuple[dict, str]:
    paths = write_run(tmp_path, rows, name, **kwargs)
    return json.loads(paths["json"].read_text(encoding="utf-8")), paths["markdown"].read_text(encoding="utf-8")


def compared(data: dict) -> dict:
    return next(r for r in data["rows"] if r["difference_vs_base"])["difference_vs_base"]


def test_identical_systems_differ_by_nothing(tmp_path):
    hyps = [r.replace("week", "day") for r in references()]
    data, md = report_json(tmp_path, predictions("Tiny (base)", hyps) + predictions("Tiny tuned", hyps))
    diff = compared(data)
    assert diff["paired"] == 30 and diff["baseline"]["model"] == "Tiny (base)"
    assert set(PAPER_COLUMNS) - {"BERTScore-P", "BERTScore-R", "BERTScore-F", "METEOR"} <= set(diff["columns"])
    assert "sacreBLEU-4" in diff["columns"] and "Distinct-2(mean)" in diff["columns"]
    for column, d in diff["columns"].items():
        assert d["score"] == 0 and d["lo"] <= 0 <= d["hi"] and not d["excludes_zero"], column
        assert d["lo"] == d["hi"] == d["mean"] == 0, column  # the same resamples on both sides
    table = md[md.index("Difference vs base") :].split("\n\n")[1]
    assert "| Tiny tuned | dialog | Tiny (base) [dialog] | 30 |" in table and "*" not in table
    # our cells carry the interval, the base row's too
    assert "| Tiny (base) | dialog | 30 | — | — | — | 0." in md and " ± " in md


def test_a_clearly_better_system_is_marked(tmp_path):
    paths = write_run(tmp_path, predictions("Tiny (base)", unrelated()) + predictions("Tiny tuned", references()))
    data, md = json.loads(paths["json"].read_text(encoding="utf-8")), paths["markdown"].read_text(encoding="utf-8")
    page = paths["html"].read_text(encoding="utf-8")
    assert "Difference vs base" in page and "<td>Tiny tuned</td><td>dialog</td><td>Tiny (base) [dialog]</td><td>30</td>" in page and " *</td>" in page
    assert " ± " in page
    columns = compared(data)["columns"]
    for column in ("BLEU-1", "BLEU-3", "ROUGE-L", "sacreBLEU-4"):
        assert columns[column]["excludes_zero"] and columns[column]["lo"] > 0 and columns[column]["score"] > 0, column
    row = next(line for line in md.splitlines() if line.startswith("| Tiny tuned | dialog | Tiny (base) [dialog] | 30 |"))
    bleu1 = row.split(" | ")[4 + PAPER_COLUMNS.index("BLEU-1")]
    assert bleu1.startswith("+") and bleu1.endswith(" *")
    ours = next(r for r in data["rows"] if r["model"] == "Tiny tuned")
    ci = ours["ci"]["BLEU-1"]
    assert ci["lo"] <= ours["scores"]["BLEU-1"] <= ci["hi"] and ci["n"] == 30


def test_a_column_without_values_has_no_interval(tmp_path):
    data, md = report_json(tmp_path, predictions("Tiny (base)", ["Hm"] * 30) + predictions("Tiny tuned", ["Okay"] * 30))
    tuned = next(r for r in data["rows"] if r["model"] == "Tiny tuned")
    assert tuned["scores"]["Distinct-2(mean)"] is None and "Distinct-2(mean)" not in tuned["ci"]
    assert "Distinct-2(mean)" not in compared(data)["columns"] and "BLEU-1" in compared(data)["columns"]
    assert "+—" not in md and "nan" not in md.lower()


def test_pairing_is_by_id_not_by_position(tmp_path):
    rows = predictions("Tiny (base)", unrelated()) + predictions("Tiny tuned", references()[:15] + unrelated()[15:])
    ordered, _ = report_json(tmp_path, rows, "a")
    shuffled = list(rows)
    random.Random(3).shuffle(shuffled)
    again, _ = report_json(tmp_path, shuffled, "b")
    assert compared(again)["columns"] == compared(ordered)["columns"]
    assert compared(ordered)["columns"]["BLEU-1"]["score"] > 0


def test_fewer_shared_ids_are_paired_and_said(tmp_path):
    tuned = predictions("Tiny tuned", [" ".join(r.split()[: 2 + i % 13]) for i, r in enumerate(references())])
    base = predictions("Tiny (base)", unrelated())[10:]  # ids en-10..en-29 only
    data, md = report_json(tmp_path, base + tuned, "a")
    assert compared(data)["paired"] == 20
    assert "Tiny tuned [dialog] vs Tiny (base): 20 paired examples (ids in both; the rows have 30 and 20)" in md
    # the same numbers as when the tuned run had only the shared ids
    alone, _ = report_json(tmp_path, base + tuned[10:], "b")
    assert compared(alone)["columns"] == compared(data)["columns"]


def test_a_language_without_base_row_has_no_difference_table(tmp_path):
    data, md = report_json(tmp_path, predictions("Tiny tuned", references()) + predictions("Other tuned", unrelated()))
    assert not any(r["difference_vs_base"] for r in data["rows"])
    assert "Difference vs base" not in md
    assert md.count("no row of ours in English is a base model") == 1


def test_sacrebleu_intervals_are_sacrebleus_own():
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    refs = references(24)
    base = [f"Work has been hard since week {i}." for i in range(24)]
    system = [r if i % 3 else f"Tell me about week {i}." for i, r in enumerate(refs)]
    _, results = PairedTest([("base", base), ("system", system)], {"BLEU": BLEU()}, [refs], test_type="bs", n_samples=1000)()
    base_result, system_result = results["BLEU"]

    def ours(hypotheses: list[str]) -> bootstrap.Interval:
        stats = SacreBLEU().score(ScoringBatch(hypotheses, refs, "en")).statistics["sacreBLEU-4"]
        return bootstrap.confidence_interval(bootstrap.sacrebleu_scorer(stats["rows"], stats["order"]), 24, n_samples=1000, seed=12345)

    for mine, theirs in ((ours(system), system_result), (ours(base), base_result)):
        assert mine.mean == pytest.approx(theirs.mean, abs=1e-9)
        assert mine.half_width == pytest.approx(theirs.ci, abs=1e-9)
        assert mine.score == pytest.approx(theirs.score, abs=1e-4)  # float32 statistics, as sacrebleu resamples them
    assert system_result.ci > 0


def test_corpus_distinct_and_means_are_recomputed_exactly_on_resamples():
    tokens = [s.split() for s in references(12) + unrelated(5)]
    indices = bootstrap.resample_indices(len(tokens), 50, 7)
    assert bootstrap.distinct_scorer(tokens, 2)(indices) == pytest.approx([distinct_corpus([tokens[i] for i in row], 2) for row in indices])
    values = [float(i) for i in range(16)] + [None]
    expected = [np.mean([values[i] for i in row if values[i] is not None]) for row in indices]
    assert bootstrap.mean_scorer(values)(indices) == pytest.approx(expected)


def test_same_seed_same_numbers_other_seed_other_intervals(tmp_path):
    partial = [" ".join(r.split()[: 2 + i % 13]) for i, r in enumerate(references())]  # overlaps of many sizes
    rows = predictions("Tiny (base)", unrelated()) + predictions("Tiny tuned", partial)
    first, _ = report_json(tmp_path, rows, "a", bootstrap_seed=12345)
    second, _ = report_json(tmp_path, rows, "b", bootstrap_seed=12345)
    other, _ = report_json(tmp_path, rows, "c", bootstrap_seed=1)
    assert compared(first) == compared(second)
    assert [r["ci"] for r in first["rows"]] == [r["ci"] for r in second["rows"]] and first["rows"][0]["ci"]
    assert compared(other)["columns"]["BLEU-1"]["mean"] != compared(first)["columns"]["BLEU-1"]["mean"]
    for column in ("BLEU-1", "ROUGE-L", "sacreBLEU-4"):
        assert (compared(other)["columns"][column]["lo"], compared(other)["columns"][column]["hi"]) != (
            compared(first)["columns"][column]["lo"],
            compared(first)["columns"][column]["hi"],
        ), column
        assert other["rows"][1]["ci"][column]["half_width"] != first["rows"][1]["ci"][column]["half_width"], column
    assert compared(other)["columns"]["BLEU-1"]["score"] == compared(first)["columns"]["BLEU-1"]["score"]
    assert first["bootstrap"] == {"samples": 1000, "seed": 12345}


def test_an_evaluation_without_per_example_data_still_reports(tmp_path):
    path = write_predictions(tmp_path / "predictions.jsonl", predictions("Tiny (base)", unrelated()) + predictions("Tiny tuned", references()))
    out, document, _ = evaluate_file(path, config=CHEAP)
    assert all(g["examples"]["ids"] == sorted(g["examples"]["ids"]) for g in document["groups"])
    for group in document["groups"]:
        del group["examples"]
    write_json(out, document)  # as written before groups carried their examples
    paths = write_report([out], tmp_path / "rep", include_paper=False)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert " ± " not in md and "Difference vs base" not in md
    assert md.count("No confidence intervals for 1 evaluation file(s)") == 1
    # evaluating the predictions again recomputes it rather than reusing it
    _, again, reused = evaluate_file(path, config=CHEAP)
    assert not reused and all("examples" in g for g in again["groups"]) and "examples" in read_json(out)["groups"][0]


def test_cli_bootstrap_options(tmp_path, capsys):
    from psyinsight.cli import main

    assert (options.DEFAULT_BOOTSTRAP, options.DEFAULT_BOOTSTRAP_SEED) == (bootstrap.DEFAULT_SAMPLES, bootstrap.DEFAULT_SEED)
    path = write_predictions(tmp_path / "predictions.jsonl", predictions("Tiny (base)", unrelated()) + predictions("Tiny tuned", references()))
    common = ["report", str(path), "--out", str(tmp_path / "rep"), "--metrics", "bleu,rouge,length", "--no-paper"]
    with pytest.raises(SystemExit) as info:
        main([*common, "--bootstrap", "0"])
    assert info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "# Psy-Insight evaluation report" in out and " ± " not in out and "Difference vs base" not in out
    with pytest.raises(SystemExit) as info:
        main([*common, "--bootstrap", "-1"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --bootstrap: "), err
    with pytest.raises(SystemExit) as info:
        main([*common, "--bootstrap", "200", "--bootstrap-seed", "7"])
    assert info.value.code in (0, None)
    out = capsys.readouterr().out
    assert " ± " in out and "200 resamples of the examples, seed 7" in out


def test_corpus_distinct_intervals_stand_around_their_score(tmp_path):
    # Resampling repeats responses, so corpus Distinct reads lower on every resample; uncorrected,
    # the varied system's interval (and its difference to the repetitive base) would miss the score.
    varied = [f"Tell me more about {TOPICS[i % 10]} and what changed in week {i} for you." for i in range(30)]
    data, _ = report_json(tmp_path, predictions("Tiny (base)", ["How does that make you feel?"] * 30) + predictions("Tiny tuned", varied))
    tuned = next(r for r in data["rows"] if r["model"] == "Tiny tuned")
    for column in ("Distinct-1", "Distinct-2", "Distinct-3"):
        interval = tuned["ci"][column]
        assert interval["lo"] <= interval["score"] <= interval["hi"], column
        assert interval["mean"] < interval["score"]  # the resamples' own shift, which the interval was moved by
        difference = compared(data)["columns"][column]
        assert difference["lo"] <= difference["score"] <= difference["hi"] and difference["excludes_zero"], column


def test_each_tuned_row_is_also_compared_with_the_same_model_tuned_on_the_named_task(tmp_path, capsys):
    hyps = [r.replace("week", "day") for r in references()]
    rows = (
        predictions("Tiny (base)", unrelated())
        + predictions("Tiny tuned", unrelated(), task="dialog")
        + predictions("Tiny tuned", hyps, task="reasoning")
        + predictions("Other tuned", hyps, task="reasoning")  # no dialog row of its own: not compared
    )
    data, md = report_json(tmp_path, rows, compare_to="dialog")
    versus = {(r["model"], r["task"]): r["difference_vs_task"] for r in data["rows"] if not r["published"]}
    assert versus[("Tiny tuned", "dialog")] is None and versus[("Other tuned", "reasoning")] is None
    reasoning = versus[("Tiny tuned", "reasoning")]
    assert reasoning["baseline"] == {"model": "Tiny tuned", "task": "dialog", "n": 30} and reasoning["paired"] == 30
    assert reasoning["columns"]["ROUGE-L"]["excludes_zero"] and reasoning["columns"]["ROUGE-L"]["score"] > 0
    table = md[md.index("Difference vs the dialog rows") :].split("\n\n")[1]
    assert "| Tiny tuned | reasoning | Tiny tuned [dialog] | 30 |" in table and "Other tuned" not in table
    _, plain = report_json(tmp_path, rows, name="plain")
    assert "Difference vs the dialog rows" not in plain

    from psyinsight.cli import main

    path = write_predictions(tmp_path / "predictions.jsonl", rows)
    with pytest.raises(SystemExit) as info:
        main(["report", str(path), "--out", str(tmp_path / "cli"), "--metrics", "bleu", "--no-paper", "--compare-to", "poetry"])
    assert info.value.code == 2 and capsys.readouterr().err.startswith("error: --compare-to: unknown value 'poetry'")
