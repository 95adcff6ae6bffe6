"""``psyinsight serve`` stops within a bounded time on SIGTERM, even in the middle of a reply.

The server runs as a real process over the tiny random Llama with its end-of-sequence
token removed, so a streamed reply goes on until max_tokens (minutes): uvicorn alone
would wait for it, or with a timeout cut the connection mid-reply. With
``--shutdown-timeout 1`` the reply must end with an in-band 503 and ``[DONE]``, and the
process must exit, within seconds of the signal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from local_server import free_port, wait_until_serving

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

REPO = Path(__file__).resolve().parents[1]
MAX_TOKENS = 60_000
EXIT_BOUND_S = 30.0


@pytest.fixture
def endless_model_dir(tiny_llama_dir: Path, tmp_path: Path) -> Path:
    """The tiny random Llama with no end-of-sequence token: it writes until max_tokens."""
    folder = tmp_path / "endless"
    shutil.copytree(tiny_llama_dir, folder)
    for name in ("config.json", "generation_config.json"):
        path = folder / name
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            data["eos_token_id"] = None
            if name == "config.json":  # positions past the limit would only add warnings
                data["max_position_embeddings"] = 2 * MAX_TOKENS
            path.write_text(json.dumps(data), encoding="utf-8")
    return folder


def _delta_text(chunk: dict) -> str:
    choices = chunk.get("choices") or [{}]
    return choices[0].get("delta", {}).get("content") or ""


@pytest.mark.timeout(300)
def test_sigterm_mid_stream_ends_the_reply_and_the_process_in_bounded_time(endless_model_dir, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "psyinsight.cli", "serve", "--model", str(endless_model_dir), "--port", str(port),
             "--rate", "0", "--threads", "1", "--max-tokens-limit", str(MAX_TOKENS), "--shutdown-timeout", "1"],
            env=env, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    events: list[str] = []
    writing = threading.Event()

    def stream() -> None:
        body = {"model": "default", "messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": MAX_TOKENS, "stream": True}
        try:
            with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=120) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        events.append(payload := line[5:].strip())
                        if payload != "[DONE]" and _delta_text(json.loads(payload)):
                            writing.set()  # the model is generating
        except httpx.HTTPError as exc:
            events.append(f"client error: {exc!r}")
        finally:
            writing.set()

    client = threading.Thread(target=stream, daemon=True)
    try:
        wait_until_serving(url, proc, 180, lambda: err.read_text(errors="replace"))
        client.start()
        assert writing.wait(60), "no streamed text within 60 s"
        assert proc.poll() is None, "the server stopped before the signal"
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=EXIT_BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"psyinsight serve still running {EXIT_BOUND_S:.0f} s after SIGTERM")
        client.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr_text = err.read_text(errors="replace")
    assert "Traceback" not in stderr_text, stderr_text[-3000:]
    assert "timeout graceful shutdown exceeded" not in stderr_text, stderr_text[-3000:]  # nothing was left to cancel
    assert proc.returncode in (0, -signal.SIGTERM), (proc.returncode, stderr_text[-3000:])
    # the reply was cut short, and said so in the stream, which still ends properly
    assert events and events[-1] == "[DONE]", events[-3:]
    assert "shutting down" in json.loads(events[-2])["error"]["message"], events[-3:]
