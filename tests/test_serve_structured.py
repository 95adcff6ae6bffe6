"""``response_format`` in ``psyinsight serve``: json_schema / json_object enforced by constrained decoding.

The embedded SmolLM2 writes invalid JSON for most annotation prompts when left alone; with
a schema every answer must parse and validate, streamed or not. A schema that is not JSON
Schema is a 400 naming the field.
"""

from __future__ import annotations

import json

import httpx
import pytest

from psyinsight.counsel.engine import GenParams, LocalEngine
from psyinsight.serve import BackgroundServer, ServeConfig, create_app
from psyinsight.serve.config import ApiError
from psyinsight.serve.structured import constrained, parse_response_format

openai = pytest.importorskip("openai")
jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("xgrammar")

SCHEMA = {
    "type": "object",
    "properties": {
        "emotion": {"type": "string", "enum": ["Anxiety", "Sadness", "Anger", "Unknown"]},
        "intensity": {"type": "integer", "minimum": 1, "maximum": 5},
        "note": {"type": "string", "maxLength": 40},
    },
    "required": ["emotion", "intensity", "note"],
    "additionalProperties": False,
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "turn_label", "schema": SCHEMA, "strict": True}}
ASK = [{"role": "user", "content": "Client: I can't breathe before exams and my hands shake.\nLabel the client's emotion."}]


# -- the request side, no model -------------------------------------------------------------


def test_response_formats_are_parsed_like_openai_and_vllm():
    assert parse_response_format(None) is None and parse_response_format({"type": "text"}) is None
    assert parse_response_format({"type": "json_object"}).kind == "json_object"
    fmt = parse_response_format(FORMAT)
    assert fmt.kind == "json_schema" and fmt.name == "turn_label" and json.loads(fmt.schema) == SCHEMA
    # the same schema written in another key order is the same format: such requests batch together
    reordered = {"type": "json_schema", "json_schema": {"name": "turn_label", "schema": dict(reversed(SCHEMA.items()))}}
    assert parse_response_format(reordered) == fmt
    a, b = constrained(GenParams(prefix="{"), fmt), constrained(GenParams(), fmt)
    assert a == b and a.prefix == "" and a != GenParams() and a != constrained(GenParams(), parse_response_format({"type": "json_object"}))


@pytest.mark.parametrize(
    "value, param",
    [
        ({"type": "xml"}, "response_format"),
        ({"type": "json_schema"}, "response_format.json_schema"),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "response_format.json_schema.schema"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}, "response_format.json_schema.schema"),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"properties": {"a": {"minLength": -1}}}}},
            "response_format.json_schema.schema",
        ),
    ],
)
def test_bad_response_formats_are_a_400_naming_the_field(value, param):
    with pytest.raises(ApiError) as info:
        parse_response_format(value)
    assert info.value.status == 400 and info.value.param == param


# -- end to end with the embedded model ---------------------------------------------------


@pytest.fixture(scope="module")
def server():
    try:
        engine = LocalEngine("default", threads=1)
        engine.load()
    except Exception as exc:  # the wheel is part of the dev setup; say how to get it
        pytest.skip(f"the embedded SmolLM2 model is not available ({exc}); run scripts/setup.sh")
    app = create_app(ServeConfig(default_max_tokens=8, max_body_bytes=64 * 1024), engine=engine)
    with BackgroundServer(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=300)


def test_json_schema_answers_parse_and_validate(client):
    r = client.chat.completions.create(model="default", messages=ASK, max_tokens=48, response_format=FORMAT)
    answer = json.loads(r.choices[0].message.content)
    jsonschema.validate(answer, SCHEMA)
    assert r.choices[0].finish_reason == "stop" and 0 < r.usage.completion_tokens <= 48


def test_without_the_schema_the_same_request_does_not_give_that_object(client):
    """What the constraint is for: left alone, the model does not produce the schema's object."""
    r = client.chat.completions.create(model="default", messages=ASK, max_tokens=48)
    try:
        jsonschema.validate(json.loads(r.choices[0].message.content), SCHEMA)
        valid = True
    except (json.JSONDecodeError, jsonschema.ValidationError):
        valid = False
    assert not valid


def test_json_schema_streams_pieces_that_join_into_a_valid_object(client):
    chunks = list(client.chat.completions.create(model="default", messages=ASK, max_tokens=48, response_format=FORMAT, stream=True))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 3  # streamed as written, not sent whole at the end
    jsonschema.validate(json.loads("".join(pieces)), SCHEMA)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_json_object_is_enforced_too(client):
    r = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Describe a cat."}], max_tokens=40, response_format={"type": "json_object"}
    )
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content), dict)
    else:
        assert r.choices[0].message.content.startswith("{")


def test_an_invalid_schema_is_a_400_over_http(server):
    body = {
        "model": "default",
        "messages": ASK,
        "max_tokens": 8,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "nonsense"}}}},
        },
    }
    r = httpx.post(f"{server.url}/chat/completions", json=body, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format.json_schema.schema"
    body["stream"] = True
    r = httpx.post(f"{server.url}/chat/completions", json=body, timeout=60)
    assert r.status_code == 400
