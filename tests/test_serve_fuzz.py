"""Fuzzing ``psyinsight serve`` over HTTP: random request bodies against a running server
(the tiny random Llama). A client's error is never a 500, in a reply or in a stream, and
the server stays up.

Bodies mix well-formed chats with wrong types, out-of-range and non-finite numbers,
lone surrogates, deep nesting, unknown fields and broken JSON. ``language`` mixes the codes
the counselor knows with unknown ones: a crisis gets the hotlines whatever the code, and any
other message with an unknown code is a 400.
"""

from __future__ import annotations

import json

import httpx
import pytest

from psyinsight.counsel.engine import LocalEngine
from psyinsight.serve import BackgroundServer, ServeConfig, create_app

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ODD_TEXT = st.sampled_from(["\ud800", "x \udfff y", "\x00", "NaN", "来访者：", "Therapist:", "\u202e", "a" * 70, " ", ""])
TEXT = st.text(max_size=30) | ODD_TEXT
NUMBERS = (
    st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, -1, 1e-300, 2**63, 2**64, 0.5, 2.0, 1e308])
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)

ROLE = st.sampled_from(["user", "assistant", "system", "tool", "developer", ""]) | VALUES
CONTENT = (
    TEXT | VALUES | st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]) | VALUES, "text": TEXT | VALUES}), max_size=2)
)
MESSAGE = st.fixed_dictionaries({"role": ROLE, "content": CONTENT}, optional={"name": VALUES})
SAY = st.text(min_size=1, max_size=30).filter(str.strip) | st.sampled_from(["来访者：我很难过", "Therapist: hi", "x \ud800"])
CHAT = st.lists(st.tuples(SAY, SAY), max_size=2).flatmap(
    lambda turns: SAY.map(
        lambda last: [m for u, a in turns for m in ({"role": "user", "content": u}, {"role": "assistant", "content": a})]
        + [{"role": "user", "content": last}]
    )
)


def mostly(valid: st.SearchStrategy, invalid: st.SearchStrategy = VALUES) -> st.SearchStrategy:
    """``valid`` seven times in eight: many bodies should get as far as the model."""
    return st.one_of(*[valid] * 7, invalid)


FIELDS = {
    "max_tokens": mostly(st.integers(1, 8), st.integers(-2, 12) | VALUES),
    "max_completion_tokens": mostly(st.integers(1, 8), st.integers(-2, 12) | VALUES),
    "temperature": mostly(st.sampled_from([0, 0.01, 0.7, 2]), st.sampled_from([2.5, -1, 1e-300, 0.009]) | VALUES),
    "top_p": mostly(st.sampled_from([1e-9, 0.5, 1]), st.sampled_from([0, 1.5]) | VALUES),
    "seed": mostly(st.integers(-(2**63), 2**64 - 1), NUMBERS | VALUES),
    "n": mostly(st.just(1), st.integers(-1, 3) | VALUES),
    "stop": mostly(TEXT | st.lists(TEXT, max_size=4), st.lists(TEXT, min_size=5, max_size=6) | VALUES),
    "stream": mostly(st.booleans()),
    "stream_options": mostly(
        st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}), st.fixed_dictionaries({"include_usage": VALUES}) | VALUES
    ),
    "response_format": mostly(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object"])}),
        st.fixed_dictionaries({"type": st.sampled_from(["json_schema"]) | VALUES}) | VALUES,
    ),
    "region": mostly(st.sampled_from(["UK", "CN", "US", "XX"]), TEXT | VALUES),
    "background": mostly(TEXT),
    "presence_penalty": VALUES,
    "logit_bias": VALUES,
}
MODELS = st.sampled_from(["default", "smollm2", "counselor", "smollm2-counselor"])
BODIES = st.fixed_dictionaries(
    {"model": mostly(MODELS, st.sampled_from(["gpt-4", ""]) | VALUES), "messages": mostly(CHAT, st.lists(MESSAGE, max_size=3) | VALUES)},
    optional={**FIELDS, "language": st.sampled_from(["en", "cn", "zh", "fr", "xx"])},
).flatmap(lambda body: st.dictionaries(TEXT, VALUES, max_size=1).map(lambda extra: {**extra, **body}))
JSON_BODIES = BODIES.map(lambda body: json.dumps(body, allow_nan=True).encode())  # NaN and Infinity as literals; surrogates escaped
RAW = st.one_of(
    JSON_BODIES,
    JSON_BODIES,
    JSON_BODIES,
    JSON_BODIES,
    JSON_BODIES.flatmap(lambda raw: st.integers(0, len(raw)).map(lambda k: raw[:k])),
    st.integers(1, 5000).map(lambda depth: b'{"model": "default", "messages": ' + b"[" * depth + b"]" * depth + b"}"),
    st.binary(max_size=64),
)


@pytest.fixture(scope="module")
def server(tiny_llama_dir):
    engine = LocalEngine(str(tiny_llama_dir), threads=1)
    engine.load()
    app = create_app(ServeConfig(rate=0, max_tokens_limit=8, default_max_tokens=3, max_body_bytes=64 * 1024), engine=engine)
    with BackgroundServer(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=120, headers={"Content-Type": "application/json"}) as client:
        yield client


def check(http: httpx.Client, raw: bytes) -> None:
    """No 500 for ``raw``, in the reply or in its stream, and the server still answers."""
    r = http.post("/chat/completions", content=raw)
    hypothesis.event(f"status {r.status_code}")
    assert r.status_code < 500, (r.status_code, r.text[:500], raw[:300])
    if r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"):
        events = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:")]
        assert events and events[-1] == "[DONE]", events[-3:]
        for event in events[:-1]:
            error = json.loads(event).get("error")
            assert error is None or error["type"] != "server_error", (error, raw[:300])
    elif r.status_code != 200:
        error = r.json()["error"]
        assert error["message"] and error["type"] == "invalid_request_error" or r.status_code == 401, error
    assert http.get("/models").status_code == 200


@settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=RAW)
def test_random_bodies_never_get_a_500_and_the_server_stays_up(http, raw):
    check(http, raw)


WELL_FORMED = st.fixed_dictionaries(
    {"model": MODELS, "messages": CHAT}, optional={**FIELDS, "language": st.sampled_from(["en", "cn", "zh", "fr", "xx"])}
)


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=WELL_FORMED.map(lambda body: json.dumps(body, allow_nan=True).encode()))
def test_well_formed_chats_with_random_settings_never_get_a_500(http, raw):
    check(http, raw)
