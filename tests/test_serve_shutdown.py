"""``psyinsight serve`` stops cleanly on SIGINT and SIGTERM, even with a queue of streams.

The server runs as a real process over the tiny random Llama with its end-of-sequence
token removed, so a streamed reply goes on until max_tokens (minutes): uvicorn alone
would wait for it, or with a timeout cut the connection mid-reply, and a generation
thread still running at interpreter exit aborts the process ("terminate called without
an active exception", rc 134). With ``--shutdown-timeout 1`` every stream must end with an
in-band 503 and ``[DONE]``, and the process must exit 0 within seconds of the signal,
SIGINT and SIGTERM alike. Five servers start at once (startup is most of the cost); each
is then stopped under its own queue of streams.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import ENDLESS_MAX_TOKENS
from local_server import free_port, wait_until_serving

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

REPO = Path(__file__).resolve().parents[1]
EXIT_BOUND_S = 30.0
REPEATS = 5
STREAMS = 5  # one generating, the others queued behind it


def _delta_text(chunk: dict) -> str:
    choices = chunk.get("choices") or [{}]
    return choices[0].get("delta", {}).get("content") or ""


class _Server:
    def __init__(self, model_dir: Path, folder: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.err = folder / f"stderr-{self.port}.txt"
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
        with self.err.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "psyinsight.cli",
                    "serve",
                    "--model",
                    str(model_dir),
                    "--port",
                    str(self.port),
                    "--rate",
                    "0",
                    "--threads",
                    "1",
                    "--max-tokens-limit",
                    str(ENDLESS_MAX_TOKENS),
                    "--shutdown-timeout",
                    "1",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def stderr_text(self) -> str:
        return self.err.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _stream(url: str, events: list[str], writing: threading.Event) -> None:
    body = {"model": "default", "messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": ENDLESS_MAX_TOKENS, "stream": True}
    try:
        with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=120) as response:
            if response.status_code != 200:
                events.append(f"status {response.status_code}: {response.read()[:200]!r}")
                return
            for line in response.iter_lines():
                if line.startswith("data:"):
                    events.append(payload := line[5:].strip())
                    if payload != "[DONE]" and _delta_text(json.loads(payload)):
                        writing.set()  # the model is generating
    except httpx.HTTPError as exc:
        events.append(f"client error: {exc!r}")


@pytest.mark.timeout(600)
def test_a_signal_under_a_queue_of_streams_exits_0_every_time(endless_model_dir, tmp_path):
    servers = [_Server(endless_model_dir, tmp_path) for _ in range(REPEATS)]
    try:
        for server in servers:
            wait_until_serving(server.url, server.proc, 300, server.stderr_text)
        for n, server in enumerate(servers):
            sig = (signal.SIGINT, signal.SIGTERM)[n % 2]
            streams = [[] for _ in range(STREAMS)]
            writing = threading.Event()
            clients = [threading.Thread(target=_stream, args=(server.url, events, writing), daemon=True) for events in streams]
            for client in clients:
                client.start()
            assert writing.wait(60), f"run {n}: no streamed text within 60 s"
            assert server.proc.poll() is None, f"run {n}: the server stopped before the signal"
            server.proc.send_signal(sig)
            try:
                server.proc.wait(timeout=EXIT_BOUND_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"run {n}: psyinsight serve still running {EXIT_BOUND_S:.0f} s after {sig.name}")
            for client in clients:
                client.join(timeout=10)
            stderr_text = server.stderr_text()
            assert server.proc.returncode == 0, (n, sig.name, server.proc.returncode, stderr_text[-3000:])
            assert "Traceback" not in stderr_text and "terminate called" not in stderr_text, stderr_text[-3000:]
            assert "timeout graceful shutdown exceeded" not in stderr_text, stderr_text[-3000:]  # nothing was left to cancel
            for events in streams:  # each reply was cut short, said so in the stream, and ended properly
                assert events and events[-1] == "[DONE]", (n, events[-3:])
                assert "shutting down" in json.loads(events[-2])["error"]["message"], (n, events[-3:])
    finally:
        for server in servers:
            server.stop()
