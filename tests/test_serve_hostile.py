"""``psyinsight serve`` under hostile input: no request harms another, no 500 for a client's
error, errors in streams are reported in the stream, clients that leave stop their work,
and web pages cannot reach the server. Runs on the tiny random Llama (fast) and, where the
model's own output matters, on small scripted engines.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from conftest import ENDLESS_MAX_TOKENS

from psyinsight.counsel.engine import Generation, GenParams, LocalEngine
from psyinsight.serve import ApiError, BackgroundServer, ModelWorker, ServeConfig, create_app

JSON = {"Content-Type": "application/json"}
USER = [{"role": "user", "content": "Hello there, how are you?"}]


def wait_for(condition: Callable[[], bool], bound_s: float = 60.0) -> bool:
    """Poll ``condition`` until it holds or ``bound_s`` passes (a failure bound, not a timing check)."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture(scope="module")
def tiny_engine(tiny_llama_dir) -> LocalEngine:
    engine = LocalEngine(str(tiny_llama_dir), threads=1)
    engine.load()
    return engine


@pytest.fixture(scope="module")
def server(tiny_engine):
    app = create_app(ServeConfig(default_max_tokens=4, max_tokens_limit=16, rate=0), engine=tiny_engine)
    with BackgroundServer(app) as srv:
        srv.app = app
        yield srv


def post(server, body: dict | bytes, headers: dict[str, str] | None = None, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{server.url}/chat/completions", content=content, headers=JSON if headers is None else headers, timeout=120, **kwargs)


def sse_events(response: httpx.Response) -> list[str]:
    return [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]


# --------------------------------------------------------------------------- 1. isolation
def test_a_bad_request_fails_alone_among_concurrent_good_ones(server):
    good = {"model": "default", "messages": USER, "max_tokens": 3}
    bad = b'{"model": "default", "messages": [{"role": "user", "content": "x \\ud800"}], "max_tokens": 3}'
    bodies: list[dict | bytes] = [good] * 5 + [bad]
    start = threading.Barrier(len(bodies))
    results: dict[int, httpx.Response] = {}

    def send(i: int) -> None:
        start.wait()
        results[i] = post(server, bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i].status_code for i in range(5)] == [200] * 5, [results[i].text[:200] for i in range(5)]
    assert results[5].status_code == 400, results[5].text
    error = results[5].json()["error"]
    assert error["param"] == "messages[0].content" and "Unicode" in error["message"]


class PoisonEngine:
    """Fails any batch holding a "poison" message, as a tokenizer fails on input it cannot encode."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def generate(self, prompts, params):
        self.batches.append(len(prompts))
        if any("poison" in m["content"] for p in prompts for m in p):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]")
        return [Generation("ok: " + p[-1]["content"], 3, 2, "stop") for p in prompts]


def test_a_failed_batch_is_retried_request_by_request():
    engine = PoisonEngine()
    worker = ModelWorker(engine, batch_size=8, batch_wait_ms=2000)  # long enough for all six to share a batch
    try:
        futures = [worker.submit([{"role": "user", "content": f"message {i}"}], GenParams()) for i in range(5)]
        poisoned = worker.submit([{"role": "user", "content": "poison"}], GenParams())
        assert [f.result(timeout=30).text for f in futures] == [f"ok: message {i}" for i in range(5)]
        error = poisoned.exception(timeout=30)
        assert isinstance(error, ApiError) and error.status == 400 and "TypeError" in error.message
        assert engine.batches[0] == 6  # they did share a batch, which failed as a whole
    finally:
        worker.close()


# --------------------------------------------------------------------------- 2. + 3. validation, in both modes
DEEP = 100_000
OUT_OF_RANGE = [
    ("JSON nested 100,000 deep", b'{"model": "default", "stream": STREAM, "messages": ' + b"[" * DEEP + b"]" * DEEP + b"}", None, "deeper than"),
    ("seed 2**70", {"seed": 2**70}, "seed", "seed"),
    ("temperature 1e-300", {"temperature": 1e-300}, "temperature", "0 (greedy) or between 0.01 and 2"),
    ("temperature NaN", b'{"model": "default", "stream": STREAM, "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', None, "NaN"),
    ("top_p NaN", b'{"model": "default", "stream": STREAM, "messages": [{"role": "user", "content": "hi"}], "top_p": NaN}', None, "NaN"),
    (
        "temperature Infinity",
        b'{"model": "default", "stream": STREAM, "messages": [{"role": "user", "content": "hi"}], "temperature": Infinity}',
        None,
        "Infinity",
    ),
    ("top_p 1e999", b'{"model": "default", "stream": STREAM, "messages": [{"role": "user", "content": "hi"}], "top_p": 1e999}', None, "finite"),
    ("top_p 0", {"top_p": 0}, "top_p", "in (0, 1]"),
    (
        "a lone surrogate",
        b'{"model": "default", "stream": STREAM, "messages": [{"role": "user", "content": "x \\ud800"}]}',
        "messages[0].content",
        "Unicode",
    ),
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("name, body, param, words", OUT_OF_RANGE, ids=[c[0] for c in OUT_OF_RANGE])
def test_values_outside_their_range_get_a_400_naming_the_field(server, name, body, param, words, stream):
    if isinstance(body, bytes):
        raw = body.replace(b"STREAM", b"true" if stream else b"false")
    else:
        raw = json.dumps({"model": "default", "messages": USER, "max_tokens": 2, "stream": stream, **body}).encode()
    r = post(server, raw)
    assert r.status_code == 400, (r.status_code, r.text[:300])  # a stream included: no 200 that ends as if all went well
    error = r.json()["error"]
    assert error["param"] == param and words in error["message"], error


@pytest.mark.parametrize(
    "failure, kind", [(RuntimeError("the model crashed"), "server_error"), (TypeError("bad input ids"), "invalid_request_error")]
)
def test_an_error_during_a_stream_is_reported_in_the_stream(server, tiny_engine, monkeypatch, failure, kind):
    def crash(*args, **kwargs):
        raise failure

    monkeypatch.setattr(tiny_engine._model, "generate", crash)
    for model in ("default", "counselor"):
        r = post(server, {"model": model, "messages": USER, "max_tokens": 3, "stream": True})
        assert r.status_code == 200
        events = sse_events(r)
        assert events[-1] == "[DONE]", events
        error = json.loads(events[-2])["error"]
        assert error["type"] == kind and str(failure) in error["message"], error
        assert not any(json.loads(e).get("choices", [{}])[0].get("finish_reason") for e in events[:-2]), events  # no "stop" pretending all went well
    plain = post(server, {"model": "default", "messages": USER, "max_tokens": 3})
    assert plain.status_code == (500 if kind == "server_error" else 400) and str(failure) in plain.json()["error"]["message"]


# --------------------------------------------------------------------------- 5. cancellation
def _raw_request(port: int, body: dict) -> socket.socket:
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
    )
    return sock


@pytest.mark.timeout(300)
def test_requests_whose_client_left_leave_the_queue_or_stop(endless_model_dir, monkeypatch):
    engine = LocalEngine(str(endless_model_dir), threads=1)
    engine.load()
    runs = []
    real_generate = engine._model.generate

    def counted(*args, **kwargs):
        runs.append(1)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(engine._model, "generate", counted)
    app = create_app(ServeConfig(rate=0, max_tokens_limit=ENDLESS_MAX_TOKENS, batch_wait_ms=0), engine=engine)
    worker = app.state.worker
    long = {"model": "default", "messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": ENDLESS_MAX_TOKENS}
    with BackgroundServer(app) as srv:
        first = _raw_request(srv.port, long)
        assert wait_for(lambda: len(runs) == 1), "the first request never reached the model"
        queued = _raw_request(srv.port, {**long, "temperature": 0.5})  # other settings: it waits, no shared batch
        assert wait_for(lambda: worker.pending == 2), worker.pending
        queued.close()
        first.close()
        # minutes of generation are left; a client that left must not keep the model busy
        assert wait_for(lambda: worker.pending == 0), f"{worker.pending} request(s) still running after their clients left"
        assert len(runs) == 1  # the queued one never ran
        r = httpx.post(f"{srv.url}/chat/completions", json={**long, "max_tokens": 2}, timeout=60)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2


# --------------------------------------------------------------------------- 6. web pages and keys
def test_only_json_posts_are_accepted_and_preflights_are_refused(server):
    before = list(server.app.state.worker.batches)
    body = json.dumps({"model": "default", "messages": USER, "max_tokens": 2}).encode()
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        r = post(server, body, headers={"Content-Type": kind} if kind else {})
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type", (kind, r.text)
    assert server.app.state.worker.batches == before  # the model never ran
    assert post(server, body, headers={"Content-Type": "application/json; charset=utf-8"}).status_code == 200
    preflight = httpx.options(
        f"{server.url}/chat/completions",
        timeout=30,
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert preflight.status_code >= 400 and not any(h.startswith("access-control-") for h in preflight.headers)


def test_unknown_host_names_are_refused(server):
    base = f"http://127.0.0.1:{server.port}"
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.evil.example"):
        for method, path in (("GET", "/health"), ("GET", "/v1/models"), ("POST", "/v1/chat/completions")):
            r = httpx.request(method, base + path, headers={**JSON, "Host": host}, content=b"{}", timeout=30)
            assert r.status_code == 403 and r.json()["error"]["code"] == "host_not_allowed", (host, path, r.text)
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", f"[::1]:{server.port}", "LOCALHOST"):
        assert httpx.get(base + "/v1/models", headers={"Host": host}, timeout=30).status_code == 200, host


def test_an_extra_allowed_host_is_answered(tiny_engine):
    app = create_app(ServeConfig(allowed_hosts=("psy.lan",)), engine=tiny_engine)
    with BackgroundServer(app) as srv:
        assert httpx.get(srv.url + "/models", headers={"Host": "psy.lan:80"}, timeout=30).status_code == 200
        assert httpx.get(srv.url + "/models", headers={"Host": "evil.example"}, timeout=30).status_code == 403


def test_health_without_the_key_shows_only_liveness(tiny_engine):
    app = create_app(ServeConfig(api_key="s3cret"), engine=tiny_engine)
    with BackgroundServer(app) as srv:
        health = f"http://127.0.0.1:{srv.port}/health"
        assert httpx.get(health, timeout=30).json() == {"status": "ok"}
        assert httpx.get(health, headers={"Authorization": "Bearer wrong"}, timeout=30).json() == {"status": "ok"}
        full = httpx.get(health, headers={"Authorization": "Bearer s3cret"}, timeout=30).json()
        assert full["status"] == "ok" and "queue" in full and full["models"]


def test_the_key_is_best_passed_through_the_environment(monkeypatch):
    from typer.testing import CliRunner

    import psyinsight.serve
    from psyinsight.cli import app

    seen = []
    monkeypatch.setattr(psyinsight.serve, "serve", lambda config, announce=None: seen.append(config))
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--api-key-env", "PSY_TEST_KEY"], env={"PSY_TEST_KEY": "s3cret"})
    assert result.exit_code == 0, result.output
    assert seen[-1].api_key == "s3cret"
    result = runner.invoke(app, ["serve", "--api-key-env", "PSY_TEST_UNSET"], env={"PSY_TEST_UNSET": ""})
    assert result.exit_code != 0 and "--api-key-env" in str(result.exception or result.output)
    help_text = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    assert "--api-key-env" in help_text and "ps" in help_text


# --------------------------------------------------------------------------- 7. nothing ignored silently
@pytest.mark.parametrize(
    "model, extra, ignored",
    [
        ("counselor", {"response_format": {"type": "json_object"}}, "response_format"),
        ("default", {"temperature": 0, "top_p": 0.5, "seed": 3, "user": "u1"}, "seed,top_p,user"),
        ("default", {"background": "a student", "stream_options": {"include_usage": True}}, "background,stream_options"),
        ("default", {"messages": [{"role": "user", "content": "hi", "name": "ann"}]}, "messages[].name"),
        ("default", {"temperature": 0.7, "top_p": 0.5, "seed": 3, "response_format": {"type": "json_object"}}, None),
    ],
)
def test_every_accepted_but_unused_parameter_is_named(server, model, extra, ignored):
    r = post(server, {"model": model, "messages": USER, "max_tokens": 2, **extra})
    assert r.status_code == 200, r.text
    assert r.headers.get("X-Psyinsight-Ignored") == ignored


# --------------------------------------------------------------------------- 8. speaker labels
class LabelEngine:
    """A model that answers by writing the client's turn: the reply is a speaker label and what follows."""

    text = "来访者：我今天很难过，什么都不想做。"

    def generate(self, prompts, params):
        return [Generation(self.text, 5, 9, "stop") for _ in prompts]

    def stream(self, prompt, params):
        for k in range(0, len(self.text), 2):
            yield self.text[k : k + 2]


def test_speaker_labels_are_stripped_the_same_streamed_or_not():
    app = create_app(ServeConfig(), engine=LabelEngine())
    with BackgroundServer(app) as srv:
        body = {"model": "counselor", "messages": [{"role": "user", "content": "我最近睡不好。"}]}
        whole = httpx.post(f"{srv.url}/chat/completions", json=body, timeout=60).json()["choices"][0]["message"]["content"]
        events = sse_events(httpx.post(f"{srv.url}/chat/completions", json={**body, "stream": True}, timeout=60))
        streamed = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1])
        assert streamed == whole
        assert "来访者" not in streamed
