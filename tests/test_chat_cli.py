"""``psyinsight chat``: the terminal loop, locally and against a running server."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from psyinsight.counsel.chat import ChatOptions, RemoteCounselor, run_chat
from psyinsight.counsel.counselor import Counselor
from psyinsight.counsel.engine import GenParams, LocalEngine
from psyinsight.errors import PsyInsightError
from psyinsight.serve import BackgroundServer, ServeConfig, create_app

SCRIPT = "/reasoning\nHello there\nI want to kill myself tonight\n/lang cn\n我不想活了\n/reset\n/help\n/quit\nnever read\n"


@pytest.fixture(scope="module")
def engine(tiny_chat_model_dir) -> LocalEngine:
    eng = LocalEngine(str(tiny_chat_model_dir))
    eng.load()
    return eng


@pytest.fixture(scope="module")
def server(engine):
    with BackgroundServer(create_app(ServeConfig(default_max_tokens=6), engine=engine)) as srv:
        yield srv


def test_local_chat_loop_shows_reasoning_and_crisis_messages(engine):
    out = io.StringIO()
    log = run_chat(Counselor(engine=engine, params=GenParams(max_new_tokens=5)), ChatOptions(), stdin=io.StringIO(SCRIPT), stdout=out)
    text = out.getvalue()
    assert [e["flagged"] for e in log] == [False, True, True]
    assert "(reasoning shown)" in text and "(observation:" in text
    assert "[safety] This conversation was flagged" in text and "988" in text
    assert "(language: cn)" in text and "[安全提示]" in text and "12356" in text
    assert "(conversation cleared)" in text and "commands:" in text
    assert "never read" not in text  # /quit ends the loop


def test_remote_counselor_streams_and_reports_the_verdict(server):
    remote = RemoteCounselor(server.url.removesuffix("/v1"), max_tokens=5)
    seen: list[tuple[str, str]] = []
    reply = remote.reply([{"role": "user", "content": "I feel stuck at work."}], "en", on_delta=lambda k, d: seen.append((k, d)))
    assert not reply.flagged and reply.risk is not None and not reply.risk.risk and reply.raw
    assert "".join(d for k, d in seen if k == "content").strip() == reply.response
    crisis = remote.reply([{"role": "user", "content": "I'm going to end my life"}], "en", region="AU")
    assert crisis.flagged and "13 11 14" in crisis.response and crisis.risk.category == "suicide"


def test_remote_errors_are_project_errors(server):
    with pytest.raises(PsyInsightError, match="answered 404"):
        RemoteCounselor(server.url, model="nope").reply([{"role": "user", "content": "hi"}])
    with pytest.raises(PsyInsightError, match="cannot reach the server"):
        RemoteCounselor("http://127.0.0.1:9", timeout=5).reply([{"role": "user", "content": "hi"}])


def test_chat_command_talks_to_a_server_through_a_pipe(server):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [sys.executable, "-m", "psyinsight.cli", "chat", "--url", server.url, "--max-tokens", "4"],
        input="How do I stop worrying?\nI want to die\n/quit\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("counselor> ") == 2 and "[safety]" in proc.stdout and "findahelpline" in proc.stdout


def test_chat_command_refuses_bad_options():
    from typer.testing import CliRunner

    from psyinsight.cli import app

    result = CliRunner().invoke(app, ["chat", "--url", "http://127.0.0.1:9", "--language", "fr"])
    assert isinstance(result.exception, PsyInsightError) and "--language" in str(result.exception)
    result = CliRunner().invoke(app, ["chat", "--url", "http://127.0.0.1:9", "--max-tokens", "0"])
    assert isinstance(result.exception, PsyInsightError) and "--max-tokens" in str(result.exception)
