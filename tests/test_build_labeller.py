"""``psyinsight build --labeller classify:<model dir>``: classifiers stand in for the LLM's labels or check them."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from fake_openai import FakeOpenAI, keys_responder

from psyinsight.build.ingest import sample_raw_dir
from psyinsight.build.pipeline import BuildConfig, run_build
from psyinsight.cli import main
from psyinsight.fileio import read_json
from psyinsight.llm import LLMConfig

pytest.importorskip("sklearn")
pytest.importorskip("jieba")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labellers")
    for task in ("emotion", "psychotherapy"):
        with pytest.raises(SystemExit) as done:
            main(["classify", "train", "--task", task, "-l", "en", "--sample", "--split", "all", "-o", str(folder / f"{task}-en")])
        assert done.value.code in (0, None)
    return folder


def _raw(tmp_path):
    raw = tmp_path / "raw" / "en"
    raw.mkdir(parents=True)
    shutil.copy(sample_raw_dir() / "en" / "memoir_grief.txt", raw)
    return tmp_path / "raw"


def test_a_rules_only_build_gets_its_labels_from_the_classifiers(tmp_path, models):
    report = run_build(BuildConfig(raw_dir=_raw(tmp_path), out_dir=tmp_path / "out", llm=None, labeller=f"classify:{models}"))
    lab = report["labeller"]
    rows = read_json(tmp_path / "out" / "en_data.json")
    seekers = [t for r in rows for t in r["dialog"] if t["speaker"] == "Seeker"]
    assert lab["filled"]["emotion"] == len(seekers) and lab["filled"]["psychotherapy"] == len(rows)
    assert all(t["emotional label"] != ["Unknown"] for t in seekers) and all(r["psychotherapy"] != "Unknown" for r in rows)
    assert all(r["label_sources"]["psychotherapy"] == "classifier" for r in rows)
    assert lab["filled"]["strategy"] == 0  # no strategy model given: counselor turns keep Unknown
    assert all(v["accepted"] for v in report["validation"].values())


def test_with_an_llm_the_classifiers_check_it_and_disagreements_are_listed(tmp_path, models):
    with FakeOpenAI(keys_responder) as server:
        llm = LLMConfig(base_url=server.url, model="fake", max_concurrency=4, max_retries=1, timeout_s=5.0, backoff_s=0.01)
        report = run_build(BuildConfig(raw_dir=_raw(tmp_path), out_dir=tmp_path / "out", llm=llm, labeller=f"classify:{models}"))
    lab = report["labeller"]
    assert sum(lab["filled"].values()) == 0  # the LLM answered everything: nothing to stand in for
    compared = sum(lab["agreed"].values()) + lab["disagreements"]["count"]
    rows = read_json(tmp_path / "out" / "en_data.json")
    assert compared == len(rows) + sum(t["speaker"] == "Seeker" for r in rows for t in r["dialog"])
    for item in lab["disagreements"]["items"]:
        assert item["llm"] != item["classifier"] and item["dialog_id"]
        assert item["llm"] in ("Cognitive Behavioral Therapy", ["Anxiety"])  # the LLM's label is kept


@pytest.mark.parametrize("spec, words", [("tfidf:/x", "expected classify:<model dir>"), ("classify:/no/such/folder", "no such folder")])
def test_a_bad_labeller_is_one_line_and_exit_2(tmp_path, spec, words):
    done = subprocess.run(
        [sys.executable, "-m", "psyinsight.cli", "build", "--no-llm", "-o", str(tmp_path / "o"), "--labeller", spec],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error:") and done.stderr.strip().count("\n") == 0
