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
        {"model": "m", "messages": [{"role": "system", "content": "be brief"}, *USER], "max_tokens": 9,
         "temperature": 0.5, "top_p": 0.8, "seed": 3, "stop": "\n", "stream": True,
         "stream_options": {"include_usage": True}, "response_format": {"type": "json_object"}, "language": "zh"},
        CONFIG,
    )  # fmt: skip
    p = req.params
    assert (p.max_new_tokens, p.temperature, p.top_p, p.seed, p.stop, p.do_sample) == (9, 0.5, 0.8, 3, ("\n",), True)
    assert req.stream and req.include_usage and req.json_mode and req.language == "zh"
    assert req.ignored == []
    ignored = parse_request({"model": "m", "messages": USER, "presence_penalty": 0.5, "user": "u1", "logit_bias": None}, CONFIG)
    assert ignored.ignored == ["presence_penalty", "user"]
    parts = parse_request({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}, CONFIG)
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
        ({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, "messages[0].content[0]", "text content"),
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
