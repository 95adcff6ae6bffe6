"""The project's one LLM client: any OpenAI-compatible server, cached, concurrent, accounted.

Used by the construction pipeline (``psyinsight build``), the LLM judge and API generation
(``psyinsight generate --base-url``). Why one client:
the same retry policy, the same on-disk cache and the same token/cost accounting everywhere.

- Transport: the official ``openai`` package (``AsyncOpenAI`` with ``base_url``); its own
  retries are off so that every attempt is ours and is counted.
- Concurrency: ``complete_many`` runs requests on one event loop under a semaphore of
  ``max_concurrency``.
- Retries: 429, 5xx, timeouts, connection errors and unparseable response bodies are retried
  with exponential backoff (``Retry-After`` is honoured, capped); other 4xx fail at once.
- Cache: SQLite, keyed by a hash of (model, messages, parameters); only successful results
  are written, each committed as soon as it arrives, so a run killed at any point loses no
  finished call and a rerun makes zero requests for cached inputs.
- Secrets: the API key is read from the environment variable named in the config, never
  stored in the config, the cache, a log line or an error message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from psyinsight.errors import PsyInsightError

DUMMY_API_KEY = "sk-local-no-key"
"""Sent when the key variable is unset: local servers (psyinsight serve, vLLM) ignore it."""

CACHE_SCHEMA_VERSION = 1


def public_settings(config: Any) -> dict[str, Any]:
    """An endpoint config (``LLMConfig``, the judge's) as a run report writes it: its fields, the cache path as text.

    The key is never a field, only the name of the variable that holds it, so nothing secret is written.
    """
    data = asdict(config)
    data["cache_path"] = str(config.cache_path) if config.cache_path else None
    return data


@dataclass
class LLMConfig:
    """How to reach an OpenAI-compatible chat endpoint, and how hard to try."""

    base_url: str = field(default="http://127.0.0.1:8000/v1", metadata={"help": "OpenAI-compatible base URL (ends in /v1)."})
    model: str = field(default="default", metadata={"help": "Model name sent with every request."})
    api_key_env: str = field(
        default="OPENAI_API_KEY",
        metadata={"help": "Name of the environment variable holding the API key (the key itself is never stored)."},
    )
    max_concurrency: int = field(default=8, metadata={"help": "Requests in flight at once."})
    max_retries: int = field(default=4, metadata={"help": "Retries after the first attempt on 429/5xx/timeouts."})
    timeout_s: float = field(default=60.0, metadata={"help": "Per-attempt timeout in seconds."})
    cache_path: Path | None = field(default=None, metadata={"help": "SQLite cache file; None disables caching."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature (0 makes reruns reproducible)."})
    max_tokens: int | None = field(default=None, metadata={"help": "Completion token limit per request; None: server default."})
    backoff_s: float = field(default=0.5, metadata={"help": "First retry delay; doubles each retry (with jitter)."})
    backoff_max_s: float = field(default=20.0, metadata={"help": "Upper bound for one retry delay, Retry-After included."})
    prompt_price_per_mtok: float = field(default=0.0, metadata={"help": "Price of one million prompt tokens (for cost accounting)."})
    completion_price_per_mtok: float = field(default=0.0, metadata={"help": "Price of one million completion tokens (for cost accounting)."})
    progress: bool = field(default=False, metadata={"help": "Show a progress bar on stderr."})
    structured: str = field(
        default="auto",
        metadata={
            "help": "How a request's JSON schema is sent: auto (response_format json_schema, and json_object from the first "
            "time the server rejects it), json_schema, or json_object (schemas never sent)."
        },
    )

    def __post_init__(self) -> None:
        if self.structured not in ("auto", "json_schema", "json_object"):
            raise PsyInsightError(f"must be auto, json_schema or json_object, got {self.structured!r}", where="LLMConfig.structured")
        if self.max_concurrency < 1:
            raise PsyInsightError(f"must be at least 1, got {self.max_concurrency}", where="LLMConfig.max_concurrency")
        if self.max_retries < 0:
            raise PsyInsightError(f"must be 0 or more, got {self.max_retries}", where="LLMConfig.max_retries")
        if self.timeout_s <= 0:
            raise PsyInsightError(f"must be positive, got {self.timeout_s}", where="LLMConfig.timeout_s")
        if not re.match(r"^https?://", self.base_url):
            raise PsyInsightError(f"{self.base_url!r} is not an http(s) URL; use e.g. http://127.0.0.1:8000/v1", where="LLMConfig.base_url")
        if self.cache_path is not None:
            self.cache_path = Path(self.cache_path)

    def api_key(self) -> str:
        """The key from the environment (or a dummy for local servers); never logged."""
        return os.environ.get(self.api_key_env) or DUMMY_API_KEY

    def public_dict(self) -> dict[str, Any]:
        """The settings for a run report (no key: only the variable's name)."""
        return public_settings(self)


@dataclass
class ChatRequest:
    """One chat completion to make. ``params`` go to the server as extra parameters
    (e.g. ``max_tokens``, ``seed``, ``stop``) and are part of the cache key."""

    messages: list[dict[str, str]]
    json_mode: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    """A JSON Schema the answer must follow: sent as ``response_format`` json_schema where the server takes it."""
    schema_name: str = "answer"
    tag: str = ""
    """A label for accounting (e.g. the pipeline step); not sent, not in the cache key."""


@dataclass
class ChatResult:
    """The outcome of one request: ``text`` on success, ``error`` (a one-line reason) on failure."""

    text: str | None
    error: str | None = None
    cached: bool = False
    usage: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    finish_reason: str | None = None
    key: str = ""
    tag: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


@dataclass
class LLMStats:
    """Running totals over the client's lifetime (HTTP attempts, cache hits, tokens, cost)."""

    requests_made: int = 0
    """HTTP attempts sent, retries included."""
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    """Counts of attempt failures by kind (``429``, ``500``, ``timeout``, ``invalid_body``...)."""
    by_tag: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per-tag totals: calls, cache_hits, failed, prompt_tokens, completion_tokens, cost."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cache_key(model: str, messages: Sequence[dict[str, str]], params: dict[str, Any]) -> str:
    """A stable hash of what determines a completion: model, messages and parameters."""
    payload = json.dumps(
        {"v": CACHE_SCHEMA_VERSION, "model": model, "messages": list(messages), "params": params},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    """Successful completions in SQLite (WAL mode), one committed row per result.

    Safe across threads (one lock around the connection) and across processes (SQLite's
    own locking with a busy timeout).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, model TEXT, text TEXT, finish_reason TEXT, usage TEXT, created REAL)"
            )
        except sqlite3.DatabaseError as exc:
            raise PsyInsightError(f"cannot open the LLM cache: {exc}; delete the file to start afresh", path=self.path) from None

    def get(self, key: str) -> tuple[str, str | None, dict[str, int]] | None:
        with self._lock:
            row = self._db.execute("SELECT text, finish_reason, usage FROM completions WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return row[0], row[1], json.loads(row[2] or "{}")

    def put(self, key: str, model: str, text: str, finish_reason: str | None, usage: dict[str, int]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?, ?, ?)",
                (key, model, text, finish_reason, json.dumps(usage), time.time()),
            )

    def delete(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM completions WHERE key = ?", (key,))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Retryable(Exception):
    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


class _Fatal(Exception):
    def __init__(self, kind: str, message: str, param: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.param = param


def _retry_after(response: Any) -> float | None:
    try:
        value = response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


class LLMClient:
    """Chat completions against one OpenAI-compatible endpoint (see the module docstring)."""

    def __init__(self, config: LLMConfig):
        self.config = config
        self.stats = LLMStats()
        self.cache = ResponseCache(config.cache_path) if config.cache_path else None
        self._stats_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}
        self._semaphores: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        """One limit per loop, shared by concurrent ``complete_many`` calls from several threads."""
        self.schemas_accepted: bool | None = None
        """Whether the server took a json_schema ``response_format`` (None: not asked yet)."""

    # -- public API -----------------------------------------------------------------

    def complete(self, request: ChatRequest) -> ChatResult:
        return self.complete_many([request])[0]

    def complete_many(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Run ``requests`` concurrently; results come back in the same order.

        Never raises for a failed request: its ``ChatResult.error`` says why. Runs on the
        client's own event loop thread, so it works the same from plain code, notebooks and
        servers, and keeps its connections (and TLS setup) from one call to the next.
        """
        future = asyncio.run_coroutine_threadsafe(self.acomplete_many(requests), self._ensure_loop())
        return future.result()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._stats_lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="psyinsight-llm", daemon=True)
                self._thread.start()
            return self._loop

    def _transport(self) -> Any:
        """One AsyncOpenAI client per event loop (connections belong to a loop)."""
        from openai import AsyncOpenAI

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = AsyncOpenAI(base_url=self.config.base_url, api_key=self.config.api_key(), max_retries=0, timeout=self.config.timeout_s)
            self._clients[loop] = client
        return client

    async def acomplete_many(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """The async form of ``complete_many``."""
        results: list[ChatResult | None] = [None] * len(requests)
        pending: list[int] = []
        for index, request in enumerate(requests):
            hit = self._from_cache(request)
            if hit is not None:
                results[index] = hit
            else:
                pending.append(index)
        if pending:
            client = self._transport()
            semaphore = self._semaphores.setdefault(asyncio.get_running_loop(), asyncio.Semaphore(self.config.max_concurrency))
            bar = self._progress(len(pending))
            try:

                async def one(index: int) -> None:
                    async with semaphore:
                        results[index] = await self._complete_one(client, requests[index])
                    if bar is not None:
                        bar.update(1)

                await asyncio.gather(*(one(i) for i in pending))
            finally:
                if bar is not None:
                    bar.close()
        return [r for r in results if r is not None]

    def request_params(self, request: ChatRequest) -> dict[str, Any]:
        """The parameters sent (and hashed) for ``request``: config defaults, then its own."""
        params: dict[str, Any] = {"temperature": self.config.temperature}
        if self.config.max_tokens is not None:
            params["max_tokens"] = self.config.max_tokens
        params.update(request.params)
        if request.schema is not None and self.config.structured != "json_object" and self.schemas_accepted is not False:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": request.schema, "strict": True},
            }
        elif request.json_mode or request.schema is not None:
            params["response_format"] = {"type": "json_object"}
        return params

    def key_of(self, request: ChatRequest) -> str:
        return cache_key(self.config.model, request.messages, self.request_params(request))

    def forget(self, result: ChatResult) -> None:
        """Drop a result from the cache: the caller found the answer unusable (e.g. empty), so a rerun asks again."""
        if self.cache is not None and result.key:
            self.cache.delete(result.key)

    def close(self) -> None:
        """Close connections, stop the loop thread and close the cache (the client is done)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            client = self._clients.pop(loop, None)
            if client is not None:
                asyncio.run_coroutine_threadsafe(client.close(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            loop.close()
        self._loop = None
        self._clients.clear()
        self._semaphores.clear()
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------

    def _progress(self, total: int) -> Any:
        if not self.config.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="llm", unit="call", leave=False)

    def _account(self, tag: str, **deltas: float) -> None:
        with self._stats_lock:
            for name, value in deltas.items():
                if name in {"prompt_tokens", "completion_tokens", "cost", "cache_hits", "succeeded", "failed"}:
                    setattr(self.stats, name, getattr(self.stats, name) + value)
            bucket = self.stats.by_tag.setdefault(
                tag, {"calls": 0, "cache_hits": 0, "failed": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0}
            )
            bucket["calls"] += 1
            for name in ("cache_hits", "failed", "prompt_tokens", "completion_tokens", "cost"):
                bucket[name] += deltas.get(name, 0)

    def _cost(self, usage: dict[str, int]) -> float:
        return (
            usage.get("prompt_tokens", 0) * self.config.prompt_price_per_mtok
            + usage.get("completion_tokens", 0) * self.config.completion_price_per_mtok
        ) / 1e6

    def _from_cache(self, request: ChatRequest) -> ChatResult | None:
        if self.cache is None:
            return None
        key = self.key_of(request)
        hit = self.cache.get(key)
        if hit is None:
            return None
        text, finish_reason, usage = hit
        self._account(request.tag, cache_hits=1)
        return ChatResult(text=text, cached=True, usage=usage, attempts=0, finish_reason=finish_reason, key=key, tag=request.tag)

    async def _complete_one(self, client: Any, request: ChatRequest) -> ChatResult:
        key = self.key_of(request)
        params = self.request_params(request)
        attempts = 0
        last_error = "not attempted"
        while attempts <= self.config.max_retries:
            attempts += 1
            with self._stats_lock:
                self.stats.requests_made += 1
                if attempts > 1:
                    self.stats.retries += 1
            try:
                text, finish_reason, usage = await self._attempt(client, request.messages, params)
                if params.get("response_format", {}).get("type") == "json_schema":
                    self.schemas_accepted = True
            except _Retryable as exc:
                last_error = f"{exc.kind}: {exc}"
                self._count_error(exc.kind)
                if attempts > self.config.max_retries:
                    break
                await asyncio.sleep(self._delay(attempts, exc.retry_after))
                continue
            except _Fatal as exc:
                self._count_error(exc.kind)
                last_error = f"{exc.kind}: {exc}"
                schema_sent = params.get("response_format", {}).get("type") == "json_schema"
                if schema_sent and self.config.structured == "auto" and exc.kind == "400" and (exc.param or "").startswith("response_format"):
                    self.schemas_accepted = False  # this server does not enforce schemas: ask for plain JSON from now on
                    key, params = self.key_of(request), self.request_params(request)
                    attempts -= 1
                    continue
                break
            if self.cache is not None:
                self.cache.put(key, self.config.model, text, finish_reason, usage)
            self._account(request.tag, succeeded=1, cost=self._cost(usage), **usage)
            return ChatResult(text=text, cached=False, usage=usage, attempts=attempts, finish_reason=finish_reason, key=key, tag=request.tag)
        self._account(request.tag, failed=1)
        return ChatResult(text=None, error=last_error, attempts=attempts, key=key, tag=request.tag)

    def _count_error(self, kind: str) -> None:
        with self._stats_lock:
            self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        base = self.config.backoff_s * (2 ** (attempt - 1))
        delay = base * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.config.backoff_max_s)

    async def _attempt(self, client: Any, messages: list[dict[str, str]], params: dict[str, Any]) -> tuple[str, str | None, dict[str, int]]:
        """One HTTP attempt through the openai client's generic ``post`` (its documented way to
        send a request without building typed models: half the client CPU per call, which is
        what limits throughput at high concurrency); errors and the body are classified here."""
        import openai

        body = {"model": self.config.model, "messages": messages, **params}
        try:
            response = await asyncio.wait_for(
                client.post("/chat/completions", cast_to=_raw_response_type(), body=body),
                timeout=self.config.timeout_s + 5.0,
            )
            data = json.loads(response.text)
        except (TimeoutError, openai.APITimeoutError):
            raise _Retryable("timeout", f"no answer within {self.config.timeout_s:g} s") from None
        except openai.RateLimitError as exc:
            raise _Retryable("429", "rate limited", _retry_after(exc.response)) from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            if status >= 500 or status in (408, 409):
                raise _Retryable(str(status), f"server error {status}", _retry_after(exc.response)) from None
            hint = " (check the API key variable)" if status in (401, 403) else ""
            error = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else {}
            param = error.get("param") if isinstance(error, dict) else None
            raise _Fatal(str(status), f"request rejected with status {status}{hint}", param if isinstance(param, str) else None) from None
        except openai.APIConnectionError as exc:
            raise _Retryable("connection", f"cannot reach {self.config.base_url}: {type(exc).__name__}") from None
        except (openai.APIResponseValidationError, json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            raise _Retryable("invalid_body", f"unreadable response body ({type(exc).__name__})") from None
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise _Retryable("invalid_body", "response has no choices[0].message.content") from None
        if not isinstance(text, str):
            raise _Retryable("invalid_body", "response message has no text content")
        usage: dict[str, int] = {}
        raw_usage = data.get("usage") if isinstance(data, dict) else None
        if isinstance(raw_usage, dict):
            usage = {
                "prompt_tokens": int(raw_usage.get("prompt_tokens") or 0),
                "completion_tokens": int(raw_usage.get("completion_tokens") or 0),
            }
        return text, choice.get("finish_reason"), usage


def _raw_response_type() -> type:
    """The HTTP response class the installed openai client returns for ``cast_to`` (httpx or its fork)."""
    from openai import _base_client

    return _base_client.httpx2.Response if hasattr(_base_client, "httpx2") else _base_client.httpx.Response


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_json_object(text: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """Read a JSON object out of a model's reply: bare, in a ```json fence, or amid prose.

    Returns ``(object, None)`` or ``(None, reason)``; never raises, so callers keep the raw
    text with the reason.
    """
    if text is None:
        return None, "no text"
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start : end + 1])
    reason = "no JSON object found"
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            continue
        if isinstance(value, dict):
            return value, None
        reason = f"expected a JSON object, got {type(value).__name__}"
    return None, reason
