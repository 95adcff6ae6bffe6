"""``psyinsight serve``: an OpenAI-compatible HTTP server over a local model (+ adapter).

Two modes, chosen per request by the model name (``GET /v1/models`` lists them):

* **plain** (``<name>``, ``default``, ``smollm2``): the messages go straight to the model
  through its chat template, as any OpenAI-compatible server does. The construction
  pipeline and the judge use this, including ``response_format={"type": "json_object"}``.
* **counselor** (``<name>-counselor``, ``counselor``): the request goes through
  ``psyinsight.counselor.Counselor``: the safety guard first (a crisis reply never comes
  from the model), then the counselor prompt; the reply is in ``message.content``, the
  observation and reasoning in ``message.reasoning_content`` and, parsed, in the
  top-level ``psyinsight`` object (with ``flagged`` and the safety verdict).

Started with ``--counselor``, every model name is served in counselor mode, so a
deployment cannot be talked around its safety layer by picking the plain name.

Guards: a request-body size limit (413), a token bucket per client (429 with
Retry-After), a bounded queue (503), limits on messages, input size and max_tokens (400).
Every error is an OpenAI-style JSON body ``{"error": {"message", "type", "param",
"code"}}`` and the server keeps running. One model instance serves all requests: a
worker thread owns it and groups concurrent non-streaming requests with the same decoding
settings into one batch (micro-batching).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from psyinsight.counselor import Counselor, CounselorReply, Generation, GenParams, LocalEngine, validate_history
from psyinsight.errors import PsyInsightError

log = logging.getLogger(__name__)

API_KEY_ENV = "PSYINSIGHT_SERVE_KEY"
JSON_INSTRUCTION = "Respond with a single valid JSON object and nothing else."


@dataclass
class ServeConfig:
    """Settings of the server (each is a ``psyinsight serve`` option)."""

    model: str = field(default="default", metadata={"help": "Base model: 'default'/'smollm2' (embedded) or a local folder."})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder from `psyinsight train`."})
    name: str | None = field(default=None, metadata={"help": "Model id to serve as; default from the model/adapter name."})
    counselor: bool = field(default=False, metadata={"help": "Serve every model name in counselor mode (safety layer always on)."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to bind; 127.0.0.1 keeps it on this machine."})
    port: int = field(default=8000, metadata={"help": "Port to bind (0 = any free port)."})
    language: str = field(default="en", metadata={"help": "Counselor default language when a message has no Chinese: en or cn."})
    task: str = field(default="observation_reasoning", metadata={"help": "Counselor prompt task: dialog, reasoning, observation_reasoning."})
    region: str | None = field(default=None, metadata={"help": "Crisis hotline region (US, UK, CN, HK, TW, INTL...)."})
    crisis_resources: str | None = field(default=None, metadata={"help": "Crisis message + hotline YAML file."})
    max_body_bytes: int = field(default=256 * 1024, metadata={"help": "Largest request body accepted (413 above)."})
    max_messages: int = field(default=200, metadata={"help": "Most messages in one request."})
    max_input_chars: int = field(default=32_000, metadata={"help": "Most characters of message text in one request."})
    max_tokens_limit: int = field(default=1024, metadata={"help": "Largest max_tokens a request may ask for."})
    default_max_tokens: int = field(default=256, metadata={"help": "max_tokens when a request gives none."})
    rate: float = field(default=10.0, metadata={"help": "Requests per second per client (token bucket refill); 0 = no limit."})
    burst: int = field(default=40, metadata={"help": "Token bucket size: requests a client may send at once."})
    max_queue: int = field(default=256, metadata={"help": "Requests waiting for the model before 503s."})
    batch_size: int = field(default=8, metadata={"help": "Most concurrent requests generated as one batch."})
    batch_wait_ms: float = field(default=25.0, metadata={"help": "How long the worker waits to fill a batch (clients whose replies just came back send again within ms)."})
    api_key: str | None = field(default=None, metadata={"help": f"Require 'Authorization: Bearer KEY' (or set ${API_KEY_ENV})."})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1...; default: cuda when available."})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads; 1 is fastest on a CPU shared with other work."})

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_messages", "max_input_chars", "max_tokens_limit", "default_max_tokens", "burst", "max_queue", "batch_size"):
            if getattr(self, name) < 1:
                raise PsyInsightError("must be at least 1", where=f"--{name.replace('_', '-')}")
        if self.rate < 0:
            raise PsyInsightError("must be >= 0 (0 turns the limit off)", where="--rate")
        if self.default_max_tokens > self.max_tokens_limit:
            raise PsyInsightError("must not exceed --max-tokens-limit", where="--default-max-tokens")
        if not 0 <= self.port < 65536:
            raise PsyInsightError(f"port must be 0 to 65535, got {self.port}", where="--port")

    def served_name(self) -> str:
        from psyinsight.models import DEFAULT_ALIASES

        if self.name:
            return self.name
        if self.adapter:
            return Path(self.adapter).name
        return "smollm2" if self.model.lower() in DEFAULT_ALIASES else Path(self.model).name


# --------------------------------------------------------------------------- errors
class ApiError(Exception):
    """An error answered as OpenAI-style JSON with an HTTP status."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# --------------------------------------------------------------------------- rate limit
class TokenBucket:
    """Per-client token buckets: ``rate`` tokens/second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, *, clock: Any = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 when a request may go now, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > 10_000:  # forget idle clients (their buckets are full anyway)
                horizon = self.burst / self.rate
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < horizon}
            return (1.0 - tokens) / self.rate


# --------------------------------------------------------------------------- the model worker
@dataclass
class _Job:
    prompt: list[dict[str, str]]
    params: GenParams
    future: concurrent.futures.Future[Any]
    stream_to: Any = None
    """For streaming jobs: a callback receiving each text piece, then None at the end."""
    cancelled: threading.Event = field(default_factory=threading.Event)


class ModelWorker:
    """One thread owns the model; concurrent requests queue here and are batched.

    Non-streaming requests with equal decoding settings that are waiting together run as
    one ``generate`` batch (up to ``batch_size``); a streaming request runs alone.
    """

    def __init__(self, engine: Any, *, batch_size: int = 8, batch_wait_ms: float = 25.0, max_queue: int = 256):
        self.engine = engine
        self.batch_size = batch_size
        self.batch_wait = batch_wait_ms / 1000.0
        self.max_queue = max_queue
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._deferred: deque[_Job] = deque()
        self._pending = 0
        self._lock = threading.Lock()
        self.batches: list[int] = []
        """Sizes of the batches run so far (the last 1000), for /health and the benchmark."""
        self._thread = threading.Thread(target=self._run, name="psyinsight-model", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._pending

    def _admit(self) -> None:
        with self._lock:
            if self._pending >= self.max_queue:
                raise ApiError(503, f"the server is busy ({self._pending} requests waiting); retry shortly",
                               type="server_error", code="overloaded", headers={"Retry-After": "1"})  # fmt: skip
            self._pending += 1

    def submit(self, prompt: list[dict[str, str]], params: GenParams) -> concurrent.futures.Future[Generation]:
        self._admit()
        job = _Job(prompt, params, concurrent.futures.Future())
        self._queue.put(job)
        return job.future

    def submit_stream(self, prompt: list[dict[str, str]], params: GenParams, sink: Any) -> _Job:
        self._admit()
        job = _Job(prompt, params, concurrent.futures.Future(), stream_to=sink)
        self._queue.put(job)
        return job

    def close(self) -> None:
        self._queue.put(None)

    def _next(self, timeout: float | None) -> _Job | None:
        if self._deferred:
            return self._deferred.popleft()
        return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()

    def _done(self, n: int) -> None:
        with self._lock:
            self._pending -= n

    def _run(self) -> None:
        while True:
            job = self._next(None)
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                self._done(1)
                continue
            if job.stream_to is not None:
                self._run_stream(job)
                continue
            batch = [job]
            deadline = time.monotonic() + self.batch_wait
            while len(batch) < self.batch_size:
                try:
                    nxt = self._next(max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                if nxt.stream_to is None and nxt.params == job.params:
                    if nxt.future.set_running_or_notify_cancel():
                        batch.append(nxt)
                    else:
                        self._done(1)
                else:
                    self._deferred.append(nxt)
                    break
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Job]) -> None:
        try:
            results = self.engine.generate([j.prompt for j in batch], batch[0].params)
            self.batches = [*self.batches[-999:], len(batch)]
            for j, r in zip(batch, results):
                j.future.set_result(r)
        except BaseException as exc:  # the server stays up; each request gets the error
            for j in batch:
                if not j.future.done():
                    j.future.set_exception(exc)
        finally:
            self._done(len(batch))

    def _run_stream(self, job: _Job) -> None:
        try:
            if job.cancelled.is_set():  # the client left while it waited
                job.future.set_result(None)
                return
            pieces = self.engine.stream(job.prompt, job.params)
            try:
                for piece in pieces:
                    if job.cancelled.is_set():
                        break
                    job.stream_to(piece)
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()  # cancels the generation if we stopped early
            job.future.set_result(None)
        except BaseException as exc:
            job.future.set_exception(exc)
        finally:
            job.stream_to(None)
            self._done(1)


# --------------------------------------------------------------------------- request parsing
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
    fmt = data.get("response_format")
    json_mode = False
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind not in ("text", "json_object"):
            raise ApiError(400, "response_format.type must be 'text' or 'json_object'", param="response_format")
        json_mode = kind == "json_object"
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
        language=data.get("language"), region=data.get("region"), background=data.get("background"),
        ignored=sorted(k for k in data if k not in KNOWN_PARAMS and data[k] is not None),
    )  # fmt: skip


# --------------------------------------------------------------------------- JSON mode
def extract_json_object(text: str) -> str | None:
    """The first complete JSON object in ``text`` (small models wrap JSON in prose or fences)."""
    decoder = json.JSONDecoder()
    # A reply cut by max_tokens often misses only its closing characters: try those too.
    for candidate in (text, text + "}", text + '"}', text + "]}", text + '"]}'):
        for match in re.finditer(r"\{", candidate):
            try:
                obj, _ = decoder.raw_decode(candidate[match.start() :])
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return json.dumps(obj, ensure_ascii=False)
    return None


# --------------------------------------------------------------------------- counselor streaming
_THOUGHT_WORDS = ("observation", "reasoning", "strategy", "观察", "推理", "策略")
_RESPONSE_MARK = re.compile(r"(?:^|\n)[ \t]*(?:\*\*)?(?:therapist|counsel+or|response|咨询师|心理咨询师|治疗师)(?:\*\*)?[ \t]*[:：][ \t]*", re.I)
_CLIENT_MARK = re.compile(r"\n[ \t]*(?:\*\*)?(?:client|seeker|patient|来访者|求助者)(?:\*\*)?[ \t]*[:：]", re.I)
_HOLD = 24


class ReplySplitter:
    """Splits a counselor's streamed output into reasoning and reply deltas as it arrives.

    Follows ``psyinsight.parse``: text opening with Observation / Reasoning goes to
    ``reasoning_content`` up to the "Therapist:" marker; text after that marker goes to
    ``content``, up to a line where the model starts writing the client's turn. Other text
    before a "Therapist:" marker is a preamble the parser drops (it stays in ``raw``);
    output with no marker at all is the reply, sent when the stream ends. A short tail is
    held back until it cannot be the start of a marker.
    """

    def __init__(self) -> None:
        self.text = ""
        self.mode: str | None = None  # None (undecided), "reasoning", "preamble", "content", "done"
        self.sent = {"reasoning": 0, "content": 0}
        self.content_start = 0

    def _decide(self) -> None:
        head = self.text.lstrip().lstrip("*").lower()
        mark = _RESPONSE_MARK.match(self.text)
        if mark:
            self.mode, self.content_start = "content", mark.end()
        elif any(head.startswith(w) for w in _THOUGHT_WORDS):
            self.mode = "reasoning"
        elif len(head) >= 16 or not any(w.startswith(head[: len(w)]) for w in _THOUGHT_WORDS + ("therapist", "counselor", "咨询师")):
            self.mode = "preamble"

    def _to_content(self, mark: re.Match[str]) -> None:
        self.mode, self.content_start = "content", mark.end()
        self.sent["content"] = mark.end()

    def _emit(self, final: bool) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.mode is None:
            self._decide()
        if self.mode == "preamble" or (self.mode is None and final):
            mark = _RESPONSE_MARK.search(self.text)
            if mark:
                self._to_content(mark)
            elif final:  # no marker at all: the whole text is the reply
                self.mode, self.content_start = "content", 0
        if self.mode == "reasoning":
            mark = _RESPONSE_MARK.search(self.text)
            end = mark.start() if mark else (len(self.text) if final else len(self.text) - _HOLD)
            if end > self.sent["reasoning"]:
                out.append(("reasoning", self.text[self.sent["reasoning"] : end]))
                self.sent["reasoning"] = end
            if mark:
                self._to_content(mark)
        if self.mode == "content":
            start = max(self.sent["content"], self.content_start)
            stop = _CLIENT_MARK.search(self.text, self.content_start)
            end = stop.start() if stop else (len(self.text) if final else len(self.text) - _HOLD)
            if end > start:
                out.append(("content", self.text[start:end]))
                self.sent["content"] = end
            if stop:
                self.mode = "done"
        return out

    def feed(self, piece: str) -> list[tuple[str, str]]:
        self.text += piece
        return self._emit(final=False)

    def close(self) -> list[tuple[str, str]]:
        return self._emit(final=True) if self.mode != "done" else []


# --------------------------------------------------------------------------- the app
def _completion(rid: str, model: str, created: int, message: dict[str, Any], finish: str, usage: dict[str, int],
                extra: dict[str, Any] | None) -> JSONResponse:  # fmt: skip
    body: dict[str, Any] = {
        "id": rid, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
    }  # fmt: skip
    if extra is not None:
        body["psyinsight"] = extra
    return JSONResponse(body)


def _chunk(rid: str, model: str, created: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}  # fmt: skip
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _usage(g: Generation | None) -> dict[str, int]:
    if g is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {"prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens, "total_tokens": g.prompt_tokens + g.completion_tokens}


def _thought(reply: CounselorReply) -> str | None:
    parts = [f"Observation: {reply.observation}" if reply.observation else "", f"Reasoning: {reply.reasoning}" if reply.reasoning else ""]
    text = "\n".join(p for p in parts if p)
    return text or None


def _extension(reply: CounselorReply) -> dict[str, Any]:
    return {
        "mode": "counselor",
        "observation": reply.observation,
        "reasoning": reply.reasoning,
        "flagged": reply.flagged,
        "risk": reply.risk.to_dict() if reply.risk is not None else None,
        "parse_ok": reply.parse_ok,
        "language": reply.language,
        "raw": reply.raw,
    }


def create_app(config: ServeConfig, *, engine: Any = None, counselor: Counselor | None = None) -> FastAPI:
    """The FastAPI app. ``engine`` defaults to a ``LocalEngine`` for ``config.model``/``adapter``."""
    from psyinsight.safety import SafetyConfig, SafetyGuard

    engine = engine or LocalEngine(config.model, config.adapter, device=config.device, threads=config.threads)
    if counselor is None:
        guard = SafetyGuard(SafetyConfig(resources_path=config.crisis_resources, region=config.region))
        counselor = Counselor(config.model, config.adapter, config.language, guard, engine=engine, task=config.task, region=config.region)
    counselor.guard.warm_up()
    worker = ModelWorker(engine, batch_size=config.batch_size, batch_wait_ms=config.batch_wait_ms, max_queue=config.max_queue)
    limiter = TokenBucket(config.rate, config.burst)
    api_key = config.api_key or os.environ.get(API_KEY_ENV) or None
    base = config.served_name()
    counselor_id = f"{base}-counselor"
    listed = [counselor_id] if config.counselor else [base, counselor_id]
    modes = {counselor_id: "counselor", "counselor": "counselor"}
    for alias in (base, "default", "smollm2", config.model):
        modes.setdefault(alias, "counselor" if config.counselor else "plain")
    created_at = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        worker.close()

    app = FastAPI(title="psyinsight serve", version="1", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.worker = worker
    app.state.config = config
    app.state.models = listed

    def error(exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code="not_found" if exc.status_code == 404 else None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return error(ApiError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error"))

    def client_key(request: Request) -> str:
        auth = request.headers.get("authorization", "")
        if api_key and auth:
            return "key:" + auth[-16:]
        return "ip:" + (request.client.host if request.client else "?")

    def authorize(request: Request) -> None:
        if api_key and request.headers.get("authorization", "") != f"Bearer {api_key}":
            raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", type="authentication_error", code="invalid_api_key")

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        too_big = ApiError(413, f"the request body is larger than this server's limit of {config.max_body_bytes} bytes",
                           code="request_too_large")  # fmt: skip
        if length and length.isdigit() and int(length) > config.max_body_bytes:
            raise too_big
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_body_bytes:
                raise too_big
            chunks.append(chunk)
        return b"".join(chunks)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "queue": worker.pending, "models": listed, "counselor_only": config.counselor}

    @app.get("/v1/models")
    async def models(request: Request) -> Any:
        try:
            authorize(request)
        except ApiError as exc:
            return error(exc)
        return {"object": "list", "data": [{"id": m, "object": "model", "created": created_at, "owned_by": "psyinsight"} for m in listed]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        try:
            authorize(request)
            wait = limiter.take(client_key(request))
            if wait > 0:
                raise ApiError(429, f"rate limit: at most {config.rate:g} requests/second (burst {config.burst}) per client; retry in {wait:.2f}s",
                               type="rate_limit_error", code="rate_limit_exceeded", headers={"Retry-After": str(max(1, round(wait + 0.5)))})  # fmt: skip
            body = await read_body(request)
            try:
                data = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
                raise ApiError(400, f"the request body is not valid JSON{where}: {getattr(exc, 'msg', exc)}", code="invalid_json") from None
            req = parse_request(data, config)
            mode = modes.get(req.model)
            if mode is None:
                raise ApiError(404, f"the model {req.model!r} does not exist here; this server serves {', '.join(listed)} (GET /v1/models)",
                               param="model", code="model_not_found")  # fmt: skip
            if req.ignored:  # accepted for compatibility, but say so: never ignore silently
                log.warning("ignored request parameters: %s", ", ".join(req.ignored))
            response = await (counselor_mode(req) if mode == "counselor" else plain_mode(req))
            if req.ignored:
                response.headers["X-Psyinsight-Ignored"] = ",".join(req.ignored)
            return response
        except ApiError as exc:
            return error(exc)
        except PsyInsightError as exc:
            return error(ApiError(400, str(exc), code="invalid_request"))

    async def generate(prompt: list[dict[str, str]], params: GenParams) -> Generation:
        return await asyncio.wrap_future(worker.submit(prompt, params))

    def stream_generation(prompt: list[dict[str, str]], text: str, params: GenParams) -> Generation:
        """Token accounting for a streamed reply (counted after the fact, capped at the limit)."""
        count = getattr(engine, "count_tokens", None)
        completion = min(count(text), params.max_new_tokens) if count else 0
        prompt_tokens = engine.count_prompt_tokens(prompt) if hasattr(engine, "count_prompt_tokens") else 0
        return Generation(text.strip(), prompt_tokens, completion, "length" if completion >= params.max_new_tokens else "stop")

    async def stream_pieces(prompt: list[dict[str, str]], params: GenParams) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        job = worker.submit_stream(prompt, params, lambda p: loop.call_soon_threadsafe(pieces.put_nowait, p))
        try:
            while (piece := await pieces.get()) is not None:
                yield piece
            exc = job.future.exception() if job.future.done() else None
            if exc is not None:
                raise exc
        finally:
            job.cancelled.set()

    def sse(events: AsyncIterator[str]) -> Any:
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def plain_mode(req: ChatRequest) -> Any:
        prompt, params = req.messages, req.params
        if req.json_mode:  # ask for JSON, and open the reply with "{" so a small model follows
            prompt, params = _with_json_instruction(prompt), dataclasses.replace(params, prefix="{")
        rid, created, name = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), req.model
        if not req.stream:
            g = await generate(prompt, params)
            text = g.text
            if req.json_mode:
                text = extract_json_object(text) or text
            return _completion(rid, name, created, {"role": "assistant", "content": text}, g.finish_reason, _usage(g), None)

        async def events() -> AsyncIterator[str]:
            yield _chunk(rid, name, created, {"role": "assistant", "content": ""})
            try:
                if req.json_mode:  # the object is only known once complete: send it whole
                    g = await generate(prompt, params)
                    yield _chunk(rid, name, created, {"content": extract_json_object(g.text) or g.text})
                    finish = g.finish_reason
                else:
                    pieces = []
                    async for piece in stream_pieces(prompt, params):
                        pieces.append(piece)
                        yield _chunk(rid, name, created, {"content": piece})
                    g = stream_generation(prompt, "".join(pieces), params)
                    finish = g.finish_reason
                yield _chunk(rid, name, created, {}, finish, **({"usage": _usage(g)} if req.include_usage else {}))
            except Exception as exc:  # headers are sent: report in-band
                yield f"data: {json.dumps(ApiError(500, f'generation failed: {exc}', type='server_error').body())}\n\n"
            yield "data: [DONE]\n\n"

        return sse(events())

    async def counselor_mode(req: ChatRequest) -> Any:
        history = req.messages
        lang = counselor.resolve_language(history, req.language)
        risk = counselor.check(history)  # before any model
        rid, created, name = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), req.model
        if risk.risk:
            reply = counselor.crisis_reply(risk, lang, req.region)
            if not req.stream:
                return _completion(rid, name, created, {"role": "assistant", "content": reply.response}, "stop", _usage(None), _extension(reply))

            async def crisis_events() -> AsyncIterator[str]:
                yield _chunk(rid, name, created, {"role": "assistant", "content": ""})
                yield _chunk(rid, name, created, {"content": reply.response})
                yield _chunk(rid, name, created, {}, "stop", psyinsight=_extension(reply))
                yield "data: [DONE]\n\n"

            return sse(crisis_events())
        prompt = counselor.prompt(history, lang, req.background)
        if not req.stream:
            g = await generate(prompt, req.params)
            reply = counselor.finish(g, lang, risk)
            message = {"role": "assistant", "content": reply.response, "reasoning_content": _thought(reply)}
            return _completion(rid, name, created, message, g.finish_reason, _usage(g), _extension(reply))

        async def events() -> AsyncIterator[str]:
            yield _chunk(rid, name, created, {"role": "assistant", "content": ""})
            splitter = ReplySplitter()
            try:
                async for piece in stream_pieces(prompt, req.params):
                    for kind, delta in splitter.feed(piece):
                        yield _chunk(rid, name, created, {"reasoning_content" if kind == "reasoning" else "content": delta})
                for kind, delta in splitter.close():
                    yield _chunk(rid, name, created, {"reasoning_content" if kind == "reasoning" else "content": delta})
                g = stream_generation(prompt, splitter.text, req.params)
                reply = counselor.finish(g, lang, risk)
                usage = {"usage": _usage(g)} if req.include_usage else {}
                yield _chunk(rid, name, created, {}, g.finish_reason, psyinsight=_extension(reply), **usage)
            except Exception as exc:
                yield f"data: {json.dumps(ApiError(500, f'generation failed: {exc}', type='server_error').body())}\n\n"
            yield "data: [DONE]\n\n"

        return sse(events())

    return app


def _with_json_instruction(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Ask for JSON in the system message (small models need telling; OpenAI requires it too)."""
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{JSON_INSTRUCTION}"}, *messages[1:]]
    return [{"role": "system", "content": JSON_INSTRUCTION}, *messages]


# --------------------------------------------------------------------------- running it
def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


class BackgroundServer:
    """Run the app with uvicorn in a thread (tests, benchmarks, ``chat --serve``)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="psyinsight-serve", daemon=True)

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise PsyInsightError("the server did not start", where="serve")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(config: ServeConfig, *, announce: Any = print) -> None:
    """Load the model, then serve until interrupted."""
    import uvicorn

    engine = LocalEngine(config.model, config.adapter, device=config.device, threads=config.threads)
    engine.load()  # fail here, with a clear message, not on the first request
    app = create_app(config, engine=engine)
    if not is_loopback(config.host):
        announce(f"warning: binding {config.host}: the server is reachable from other machines" +
                 ("" if (config.api_key or os.environ.get(API_KEY_ENV)) else " and has no API key (--api-key)"))  # fmt: skip
    names = ", ".join(app.state.models)
    announce(f"serving {names} at http://{config.host}:{config.port}/v1 (counselor-only: {config.counselor})")
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")


def iter_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse ``data:`` lines of an SSE stream into JSON objects (stops at ``[DONE]``)."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        yield json.loads(payload)
