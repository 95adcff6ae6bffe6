"""Checking a /v1/chat/completions request body: every problem is a 400 that names the parameter.

The body is read in two steps. ``decode_body`` turns bytes into JSON with the limits JSON
itself lacks: nesting depth (checked before parsing, so a deep body never reaches the
recursive parser), finite numbers only (no ``NaN``, ``Infinity`` or ``1e999``) and valid
Unicode (a lone surrogate such as ``"\\ud800"`` breaks tokenizers and UTF-8 encoders).
``parse_request`` then checks the fields against ``ChatFields``, the pydantic model that
declares each field's type and finite range, and the messages against the chat rules.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from psyinsight.counsel.counselor import validate_history
from psyinsight.counsel.engine import GenParams
from psyinsight.errors import PsyInsightError
from psyinsight.serve.config import ApiError, ServeConfig
from psyinsight.serve.structured import ResponseFormat, parse_response_format

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects in a request body (a chat request needs 4)."""
MIN_TEMPERATURE = 0.01
"""Below this (but above 0, which is greedy) the softmax overflows to inf/nan."""
SEED_RANGE = (-(2**63), 2**64 - 1)
"""What ``torch.manual_seed`` accepts."""


# --------------------------------------------------------------------------- bytes → JSON
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether arrays/objects in ``text`` nest deeper than ``limit`` (brackets in strings do not count)."""
    if text.count("[") + text.count("{") <= limit:  # the common case: too few brackets to nest that deep
        return False
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth -= 1
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows; numbers must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:40]} is too large; numbers must be finite")
    return value


def _bad_unicode(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) in ``value`` that is not valid Unicode, else None."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where or "body"
        elif isinstance(item, dict):
            for key, sub in item.items():
                name = f"{where}.{key}" if where else str(key)
                try:
                    key.encode("utf-8")
                except UnicodeEncodeError:
                    return where or "body"
                stack.append((sub, name))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
    return None


def decode_body(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Bytes → JSON value, or a 400: not UTF-8, not JSON, too deep, not finite, not valid Unicode."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the request body is not valid JSON: not UTF-8 ({exc.reason} at byte {exc.start})", code="invalid_json") from None
    if json_depth_exceeds(text, max_depth):
        raise ApiError(400, f"the request body is not valid JSON here: it nests deeper than {max_depth} levels", code="invalid_json")
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the request body is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}", code="invalid_json") from None
    except (ValueError, RecursionError) as exc:  # NaN/Infinity/1e999, an integer too long to convert
        raise ApiError(400, f"the request body is not valid JSON here: {exc}", code="invalid_json") from None
    where = _bad_unicode(data)
    if where is not None:
        raise ApiError(400, "invalid Unicode: a lone surrogate (\\ud800-\\udfff) is not a character", param=where, code="invalid_unicode")
    return data


# --------------------------------------------------------------------------- the fields
class _Part(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class StreamOptions(_Part):
    include_usage: bool = False


class ChatFields(BaseModel):
    """Every field of a chat request but the messages, with its type and finite range.

    Validated with ``context={"config": ServeConfig}`` for the limits set per server.
    Unknown fields are allowed (OpenAI clients send many) and reported as ignored.
    """

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")

    model: str = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    """0 is greedy; sampling needs at least ``MIN_TEMPERATURE``."""
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(None, ge=1, le=1)
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: dict[str, Any] | None = None
    """Checked by ``structured.parse_response_format`` (text, json_object or json_schema)."""
    language: str | None = Field(None, max_length=16)
    region: str | None = Field(None, max_length=16)
    background: str | None = Field(None, max_length=4000)

    @field_validator("max_tokens", "max_completion_tokens")
    @classmethod
    def _within_limit(cls, value: int | None, info: ValidationInfo) -> int | None:
        config = (info.context or {}).get("config")
        limit = config.max_tokens_limit if config else None
        if value is not None and limit is not None and value > limit:
            raise ValueError(f"'{info.field_name}' must be between 1 and {limit}, got {value}")
        return value

    @field_validator("temperature")
    @classmethod
    def _greedy_or_sampling(cls, value: float | None) -> float | None:
        if value is not None and 0 < value < MIN_TEMPERATURE:
            raise ValueError(f"'temperature' must be 0 (greedy) or between {MIN_TEMPERATURE} and 2, got {value}")
        return value

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value
        if stops is not None and (len(stops) > 4 or not all(s and len(s) <= 64 for s in stops)):
            raise ValueError("'stop' must be a string or a list of up to 4 non-empty strings of at most 64 characters")
        return value


def _bounds(name: str) -> str:
    lo = hi = None
    lo_open = False
    for m in ChatFields.model_fields[name].metadata:
        if hasattr(m, "ge"):
            lo = m.ge
        if hasattr(m, "gt"):
            lo, lo_open = m.gt, True
        if hasattr(m, "le"):
            hi = m.le
    if lo_open:
        return f"in ({lo}, {hi}]"
    return f"between {lo} and {hi}"


_TYPES = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "model_type": "an object",
    "dict_type": "an object",
    "finite_number": "a finite number",
}


def _field_error(exc: ValidationError) -> ApiError:
    """The first pydantic error as a 400 naming the parameter."""
    err = exc.errors(include_url=False)[0]
    tags = {"str", "int", "float", "bool", "none", "StreamOptions", "ResponseFormat"}  # pydantic's names for union members
    loc = [str(p) for p in err["loc"] if not (str(p) in tags or str(p).startswith(("list[", "function-", "union[", "nullable[")))]
    name = str(err["loc"][0])
    param = ".".join(loc) or name
    kind, value = err["type"], err.get("input")
    if name == "model" and kind in ("missing", "string_too_short", "string_type"):
        return ApiError(400, "'model' is required (GET /v1/models lists the served names)", param="model", code="missing_model")
    if name == "stop" or (name == "stream" and kind == "bool_type"):
        message = (
            "'stream' must be true or false"
            if name == "stream"
            else "'stop' must be a string or a list of up to 4 non-empty strings of at most 64 characters"
        )
    elif param == "response_format.type" or (name == "response_format" and kind != "missing"):
        param, message = "response_format", "response_format must be an object whose type is 'text', 'json_object' or 'json_schema'"
    elif kind == "value_error":
        message = str(err["ctx"]["error"])
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        message = f"'{param}' must be {_bounds(name)}, got {value!r}"
    elif kind in _TYPES:
        message = f"'{param}' must be {_TYPES[kind]}"
    elif kind == "string_too_long":
        message = f"'{param}' must be at most {err['ctx']['max_length']} characters"
    else:
        message = f"'{param}': {err['msg']}"
    return ApiError(400, message, param=param, code="invalid_value" if "than" in kind else "invalid_type" if kind in _TYPES else None)


# --------------------------------------------------------------------------- messages
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


def _messages(raw: Any, config: ServeConfig) -> tuple[list[dict[str, str]], list[str]]:
    """Checked, NFC-normalised messages, and the message fields this server does not use."""
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content}", param="messages", code="invalid_messages")
    if len(raw) > config.max_messages:
        raise ApiError(400, f"too many messages ({len(raw)} > {config.max_messages})", param="messages", code="too_many_messages")
    messages, extra = [], set()
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or "role" not in m:
            raise ApiError(400, "each message needs 'role' and 'content'", param=f"messages[{i}]", code="invalid_messages")
        text = unicodedata.normalize("NFC", _message_text(m.get("content"), f"messages[{i}]"))
        messages.append({"role": m["role"], "content": text})
        extra.update(f"messages[].{k}" for k in m if k not in ("role", "content") and m[k] is not None)
    try:
        messages = validate_history(messages)
    except PsyInsightError as exc:
        param = exc.where or "messages"
        raise ApiError(400, str(exc).removeprefix(f"{param}: "), param=param, code="invalid_messages") from None
    chars = sum(len(m["content"]) for m in messages)
    if chars > config.max_input_chars:
        raise ApiError(
            400,
            f"the messages hold {chars} characters, more than this server's limit of {config.max_input_chars}",
            param="messages",
            code="context_length_exceeded",
        )
    return messages, sorted(extra)


# --------------------------------------------------------------------------- the request
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
    """Parameters this server accepts but does not apply, in any mode (sent back in a header)."""
    given: frozenset[str] = frozenset()
    """The parameters the body set (not null)."""

    def ignored_in(self, mode: str) -> list[str]:
        """``ignored`` plus what ``mode`` ("plain" or "counselor") leaves unused in this request."""
        unused = set(self.ignored)
        unused.update(k for k in UNUSED_IN[mode] if k in self.given)
        if self.json_mode and mode == "counselor":
            unused.add("response_format")  # the counselor answers in its own format
        if not self.params.do_sample:  # greedy decoding draws nothing
            unused.update(k for k in ("top_p", "seed") if k in self.given)
        if not self.stream and "stream_options" in self.given:
            unused.add("stream_options")
        return sorted(unused)


KNOWN_PARAMS = frozenset(ChatFields.model_fields) | {"messages"}
UNUSED_IN: dict[str, tuple[str, ...]] = {
    "plain": ("background",),  # the counselor prompt uses it; language and region serve the guard's crisis message
    "counselor": (),
}
"""Known parameters a mode does not use."""


def parse_request(data: Any, config: ServeConfig) -> ChatRequest:
    """Check a decoded request body; every problem is a 400 naming the parameter."""
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_body")
    where = _bad_unicode(data)  # decode_body checks this too; callers may pass a dict built in Python
    if where is not None:
        raise ApiError(400, "invalid Unicode: a lone surrogate (\\ud800-\\udfff) is not a character", param=where, code="invalid_unicode")
    known = {k: v for k, v in data.items() if k in KNOWN_PARAMS and k != "messages" and v is not None}
    try:
        fields = ChatFields.model_validate(known, context={"config": config})
    except ValidationError as exc:
        if "model" in known or not any(e["loc"][:1] == ("model",) for e in exc.errors()):
            raise _field_error(exc) from None
        raise ApiError(400, "'model' is required (GET /v1/models lists the served names)", param="model", code="missing_model") from None
    if not fields.model.strip():
        raise ApiError(400, "'model' is required (GET /v1/models lists the served names)", param="model", code="missing_model")
    messages, extra = _messages(data.get("messages"), config)
    stop = [fields.stop] if isinstance(fields.stop, str) else fields.stop
    temperature = fields.temperature or 0.0
    response_format = parse_response_format(fields.response_format)
    params = GenParams(
        max_new_tokens=fields.max_completion_tokens or fields.max_tokens or config.default_max_tokens,
        temperature=float(temperature),
        top_p=float(fields.top_p) if fields.top_p is not None else 1.0,
        seed=fields.seed if fields.seed is not None else 13,
        stop=tuple(stop or ()),
    )
    given = frozenset(k for k, v in data.items() if v is not None)
    unknown = sorted(k for k in given if k not in KNOWN_PARAMS)
    if fields.max_completion_tokens is not None and fields.max_tokens is not None:
        unknown.append("max_tokens")  # max_completion_tokens wins
    return ChatRequest(
        model=fields.model.strip(),
        messages=messages,
        params=params,
        stream=fields.stream,
        include_usage=bool(fields.stream_options and fields.stream_options.include_usage),
        json_mode=response_format is not None,
        response_format=response_format,
        language=fields.language,
        region=fields.region,
        background=fields.background,
        ignored=sorted(set(unknown) | set(extra)),
        given=given,
    )


def header_value(names: list[str], limit: int = 20) -> str:
    """Parameter names for a response header: ASCII only (names are client text), at most ``limit``."""
    shown = [json.dumps(n)[1:-1].replace(",", "\\u002c").replace("\x7f", "\\u007f") for n in names[:limit]]
    return ",".join(shown + (["..."] if len(names) > limit else []))
