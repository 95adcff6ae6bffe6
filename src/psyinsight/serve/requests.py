"""Checking a /v1/chat/completions request body: every problem is a 400 that names the parameter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psyinsight.counselor import GenParams, validate_history
from psyinsight.errors import PsyInsightError
from psyinsight.serve.config import ApiError, ServeConfig
from psyinsight.serve.structured import ResponseFormat, parse_response_format


def _message_text(content: Any, where: str) -> str:
    """A message's text: a string, or OpenAI content parts of type text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, "only text content parts are supported", param=f"{where}.content[{i}]", code="unsupported_content")
            texts.append(part["text"])
        return "\n".join(texts)
    raise ApiError(400, "content must be a string or a list of text parts", param=f"{where}.content")


@dataclass
class ChatRequest:
    """A checked /v1/chat/completions request."""

    model: str
    messages: list[dict[str, str]]
    params: GenParams
    stream: bool = False
    include_usage: bool = False
    json_mode: bool = False
    response_format: ResponseFormat | None = None
    """json_object / json_schema: enforced by constrained decoding where the engine allows it."""
    language: str | None = None
    region: str | None = None
    background: str | None = None
    ignored: list[str] = field(default_factory=list)
    """Parameters this server accepts but does not apply (sent back in a header)."""


KNOWN_PARAMS = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "seed", "stop",
    "stream", "stream_options", "response_format", "language", "region", "background",
})  # fmt: skip


def _number(data: dict[str, Any], key: str, kind: type, lo: float | None = None, hi: float | None = None) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ApiError(400, f"'{key}' must be {'an integer' if kind is int else 'a number'}", param=key, code="invalid_type")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ApiError(400, f"'{key}' must be between {lo} and {hi}, got {value}", param=key, code="invalid_value")
    return value


def parse_request(data: Any, config: ServeConfig) -> ChatRequest:
    """Check a request body; every problem is a 400 naming the parameter."""
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_body")
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ApiError(400, "'model' is required (GET /v1/models lists the served names)", param="model", code="missing_model")
    raw = data.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content}", param="messages", code="invalid_messages")
    if len(raw) > config.max_messages:
        raise ApiError(400, f"too many messages ({len(raw)} > {config.max_messages})", param="messages", code="too_many_messages")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or "role" not in m:
            raise ApiError(400, "each message needs 'role' and 'content'", param=f"messages[{i}]", code="invalid_messages")
        messages.append({"role": m["role"], "content": _message_text(m.get("content"), f"messages[{i}]")})
    try:
        messages = validate_history(messages)
    except PsyInsightError as exc:
        param = exc.where or "messages"
        raise ApiError(400, str(exc).removeprefix(f"{param}: "), param=param, code="invalid_messages") from None
    chars = sum(len(m["content"]) for m in messages)
    if chars > config.max_input_chars:
        raise ApiError(400, f"the messages hold {chars} characters, more than this server's limit of {config.max_input_chars}",
                       param="messages", code="context_length_exceeded")  # fmt: skip
    if _number(data, "n", int, 1, 1) not in (None, 1):
        raise ApiError(400, "only n=1 is supported", param="n")
    max_tokens = _number(data, "max_completion_tokens", int, 1, config.max_tokens_limit)
    if max_tokens is None:
        max_tokens = _number(data, "max_tokens", int, 1, config.max_tokens_limit)
    temperature = _number(data, "temperature", float, 0, 2)
    top_p = _number(data, "top_p", float, 0, 1)
    seed = _number(data, "seed", int)
    stop = data.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop)):
        raise ApiError(400, "'stop' must be a string or a list of up to 4 non-empty strings", param="stop")
    response_format = parse_response_format(data.get("response_format"))
    json_mode = response_format is not None
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false", param="stream")
    options = data.get("stream_options") or {}
    for key in ("language", "region", "background"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ApiError(400, f"'{key}' must be a string", param=key)
    params = GenParams(
        max_new_tokens=max_tokens or config.default_max_tokens,
        temperature=float(temperature or 0.0),
        top_p=float(top_p) if top_p else 1.0,
        seed=int(seed) if seed is not None else 13,
        stop=tuple(stop or ()),
    )
    return ChatRequest(
        model=model.strip(), messages=messages, params=params, stream=stream,
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")), json_mode=json_mode,
        response_format=response_format, language=data.get("language"), region=data.get("region"), background=data.get("background"),
        ignored=sorted(k for k in data if k not in KNOWN_PARAMS and data[k] is not None),
    )  # fmt: skip
