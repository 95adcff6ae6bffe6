"""Server parts without a model: request checks, rate limit, JSON extraction, reply splitting."""

from __future__ import annotations

import json

import pytest

from psyinsight.errors import PsyInsightError
from psyinsight.serve import ApiError, ReplySplitter, ServeConfig, TokenBucket, extract_json_object, iter_sse, parse_request

CONFIG = ServeConfig(max_messages=4, max_input_chars=100, max_tokens_limit=64, default_max_tokens=16)
USER = [{"role": "user", "content": "hello"}]


def test_a_good_request_becomes_generation_params():
    req = parse_request(
        {
            "model": "m",
            "messages": [{"role": "system", "content": "be brief"}, *USER],
            "max_tokens": 9,
            "temperature": 0.5,
            "top_p": 0.8,
            "seed": 3,
            "stop": "\n",
            "stream": True,
            "stream_options": {"include_usage": True},
            "response_format": {"type": "json_object"},
            "language": "zh",
        },
        CONFIG,
    )
    p = req.params
    assert (p.max_new_tokens, p.temperature, p.top_p, p.seed, p.stop, p.do_sample) == (9, 0.5, 0.8, 3, ("\n",), True)
    assert req.stream and req.include_usage and req.json_mode and req.language == "zh"
    assert req.ignored == []
    ignored = parse_request({"model": "m", "messages": USER, "presence_penalty": 0.5, "user": "u1", "logit_bias": None}, CONFIG)
    assert ignored.ignored == ["presence_penalty", "user"]
    parts = parse_request(
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}, CONFIG
    )
    assert parts.messages[0]["content"] == "a\nb" and parts.params.max_new_tokens == 16 and not parts.params.do_sample


@pytest.mark.parametrize(
    "body, param, words",
    [
        ([], None, "JSON object"),
        ({"messages": USER}, "model", "'model' is required"),
        ({"model": "m"}, "messages", "non-empty list"),
        ({"model": "m", "messages": USER * 5}, "messages", "too many messages"),
        ({"model": "m", "messages": [{"role": "user", "content": "x" * 101}]}, "messages", "characters"),
        ({"model": "m", "messages": [{"role": "user", "content": ""}]}, "messages[0].content", "empty message"),
        ({"model": "m", "messages": [{"role": "assistant", "content": "hi"}]}, "messages[0].role", "last message"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0]",
            "text content",
        ),
        ({"model": "m", "messages": USER, "max_tokens": 65}, "max_tokens", "between 1 and 64"),
        ({"model": "m", "messages": USER, "max_tokens": "9"}, "max_tokens", "integer"),
        ({"model": "m", "messages": USER, "temperature": 3}, "temperature", "between 0 and 2"),
        ({"model": "m", "messages": USER, "n": 2}, "n", "between 1 and 1"),
        ({"model": "m", "messages": USER, "stop": ["a", ""]}, "stop", "non-empty strings"),
        ({"model": "m", "messages": USER, "response_format": {"type": "xml"}}, "response_format", "json_object"),
        ({"model": "m", "messages": USER, "stream": "yes"}, "stream", "true or false"),
    ],
)
def test_bad_requests_name_the_parameter(body, param, words):
    with pytest.raises(ApiError) as info:
        parse_request(body, CONFIG)
    assert info.value.status == 400 and info.value.param == param and words in info.value.message
    assert set(info.value.body()["error"]) == {"message", "type", "param", "code"}


def test_the_token_bucket_refills_at_its_rate():
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("a") == pytest.approx(0.5)
    assert bucket.take("b") == 0.0  # per client
    now[0] = 0.5
    assert bucket.take("a") == 0.0 and bucket.take("a") > 0
    assert TokenBucket(rate=0, burst=1).take("x") == 0.0  # off


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": 1}', {"a": 1}),
        ('Sure! Here it is:\n```json\n{"name": "Alice", "age": 30}\n```', {"name": "Alice", "age": 30}),
        ('{broken {"ok": [1, 2]} trailing', {"ok": [1, 2]}),
        ('["a list"]', None),
        ("no json here", None),
    ],
)
def test_json_mode_extracts_the_first_object(text, expected):
    found = extract_json_object(text)
    assert (json.loads(found) if found else None) == expected


def _split(pieces: list[str]) -> tuple[str, str]:
    splitter = ReplySplitter()
    out = [d for p in pieces for d in splitter.feed(p)] + splitter.close()
    return "".join(t for k, t in out if k == "reasoning"), "".join(t for k, t in out if k == "content")


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_the_splitter_separates_reasoning_from_the_reply_at_any_chunking(size):
    raw = "Observation: The client is tired.\nReasoning: Validate first.\nTherapist: That sounds exhausting.\nClient: yes it is"
    pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
    thought, reply = _split(pieces)
    assert thought.strip() == "Observation: The client is tired.\nReasoning: Validate first."
    assert reply.strip() == "That sounds exhausting."


@pytest.mark.parametrize(
    "raw, thought, reply",
    [
        ("Hello, I hear you. Tell me more.", "", "Hello, I hear you. Tell me more."),
        ("Therapist: Welcome back.", "", "Welcome back."),
        ("观察：来访者很焦虑。\n推理：先共情。\n咨询师：听起来你压力很大。", "观察：来访者很焦虑。\n推理：先共情。", "听起来你压力很大。"),
        ("Obs", "", "Obs"),
        ("Dialogue so far:\n\nClient: I argue with my mom.\n\nTherapist: That sounds tiring.\nClient: yes", "", "That sounds tiring."),
        ("Dialogue so far:\nClient: hi", "", "Dialogue so far:"),
    ],
)
def test_the_splitter_handles_replies_without_markers_and_chinese(raw, thought, reply):
    got_thought, got_reply = _split([raw[i : i + 2] for i in range(0, len(raw), 2)])
    assert got_thought.strip() == thought and got_reply.strip() == reply


def test_config_checks_and_served_names():
    assert ServeConfig().served_name() == "smollm2"
    assert ServeConfig(model="/models/mistral-7b").served_name() == "mistral-7b"
    assert ServeConfig(adapter="runs/en-obs-lora").served_name() == "en-obs-lora"
    assert ServeConfig(name="x").served_name() == "x"
    with pytest.raises(PsyInsightError, match="--max-body-bytes"):
        ServeConfig(max_body_bytes=0)
    with pytest.raises(PsyInsightError, match="--default-max-tokens"):
        ServeConfig(default_max_tokens=2000)
    with pytest.raises(PsyInsightError, match="--rate"):
        ServeConfig(rate=-1)
    with pytest.raises(PsyInsightError, match="--shutdown-timeout"):
        ServeConfig(shutdown_timeout=-1)


def test_sse_parsing():
    lines = ['data: {"a": 1}', "", ": comment", 'data: {"b": 2}', "data: [DONE]", 'data: {"c": 3}']
    assert list(iter_sse(iter(lines))) == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize(
    "extra, param, words",
    [
        ({"seed": 2**70}, "seed", "between"),
        ({"seed": -(2**63) - 1}, "seed", "between"),
        ({"temperature": 1e-300}, "temperature", "0 (greedy) or between 0.01 and 2"),
        ({"temperature": float("nan")}, "temperature", "finite"),
        ({"top_p": float("nan")}, "top_p", "finite"),
        ({"temperature": float("inf")}, "temperature", "finite"),
        ({"top_p": 0}, "top_p", "in (0, 1]"),
        ({"top_p": 1.01}, "top_p", "in (0, 1]"),
        ({"max_tokens": 2**70}, "max_tokens", "between 1 and 64"),
        ({"stop": "x" * 65}, "stop", "at most 64"),
        ({"region": "x" * 17}, "region", "at most 16"),
        ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage", "true or false"),
        ({"messages": [{"role": "user", "content": "x \ud800"}]}, "messages[0].content", "Unicode"),
    ],
)
def test_every_field_has_a_finite_declared_range(extra, param, words):
    with pytest.raises(ApiError) as info:
        parse_request({"model": "m", "messages": USER, **extra}, CONFIG)
    assert info.value.status == 400 and info.value.param == param and words in info.value.message, info.value.message


def test_the_edges_of_each_range_are_accepted():
    edges = {"seed": 2**64 - 1, "temperature": 0.01, "top_p": 1e-9, "max_tokens": 64}
    p = parse_request({"model": "m", "messages": USER, **edges}, CONFIG).params
    assert (p.seed, p.temperature, p.top_p, p.max_new_tokens) == (2**64 - 1, 0.01, 1e-9, 64)
    assert parse_request({"model": "m", "messages": USER, "temperature": 0, "seed": -(2**63)}, CONFIG).params.do_sample is False


@pytest.mark.parametrize(
    "raw, words",
    [
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "deeper than 32"),
        (b'{"t": NaN}', "NaN"),
        (b'{"t": -Infinity}', "Infinity"),
        (b'{"t": 1e999}', "finite"),
        (b'{"n": ' + b"9" * 5000 + b"}", "digits"),
        (b'{"s": "\\udc00"}', "Unicode"),
        (b'{"\\ud800": 1}', "Unicode"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_bodies_json_cannot_limit_are_refused_before_parsing(raw, words):
    from psyinsight.serve.requests import decode_body

    with pytest.raises(ApiError) as info:
        decode_body(raw)
    assert info.value.status == 400 and words in info.value.message
    assert decode_body(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "b": [[1]]}') == {"a": "[" * 42, "b": [[1]]}  # brackets in strings


def test_unused_parameters_are_named_per_mode():
    req = parse_request(
        {
            "model": "m",
            "messages": USER,
            "response_format": {"type": "json_object"},
            "top_p": 0.5,
            "background": "b",
            "region": "UK",
            "stream_options": {"include_usage": True},
            "user": "u",
        },
        CONFIG,
    )
    assert req.ignored_in("counselor") == ["response_format", "stream_options", "top_p", "user"]
    assert req.ignored_in("plain") == ["background", "stream_options", "top_p", "user"]  # region: the guard's crisis message
    sampled = parse_request(
        {"model": "m", "messages": USER, "temperature": 0.5, "top_p": 0.5, "seed": 1, "stream": True, "stream_options": {}}, CONFIG
    )
    assert sampled.ignored_in("plain") == []


def test_ignored_names_fit_in_a_header():
    from psyinsight.serve.requests import header_value

    assert header_value(["a", "b"]) == "a,b"
    value = header_value(["x,y", "来", "\x7f\n"] + [f"p{i}" for i in range(30)])
    assert value.isascii() and value.startswith("x\\u002cy,\\u6765,\\u007f\\n,") and value.endswith(",...")
    value.encode("latin-1")


SPLIT_PARTS = [
    "Observation: ",
    "Reasoning: ",
    "Therapist: ",
    "Client: ",
    "来访者：",
    "咨询师：",
    "观察：",
    "推理：",
    "\n",
    " ",
    "**Therapist:**",
    "Counselor: ",
    "\r\n",
    "**",
    ":",
    "hello",
    "I hear you.",
    "That sounds really hard to carry alone. ",
    "我明白你的感受，这确实不容易。",
]


def test_the_streamed_reply_is_the_parsed_reply_at_any_chunking():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    from psyinsight.generate.parse import parse_output

    @hypothesis.settings(max_examples=400, deadline=None, database=None)
    @hypothesis.given(st.lists(st.sampled_from(SPLIT_PARTS), min_size=1, max_size=25), st.integers(1, 9))
    def same(parts: list[str], size: int) -> None:
        raw = "".join(parts)
        _, streamed = _split([raw[i : i + size] for i in range(0, len(raw), size)])
        assert streamed.strip() == parse_output(raw).response, raw

    same()
    assert _split(["来访者：", "我今天很难过。"]) == ("", "")  # a speaker label at the start: no reply, streamed or not
