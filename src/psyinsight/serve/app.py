"""The FastAPI app: the routes, the guards in front of the model, and the two serving modes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from psyinsight.counsel.counselor import Counselor
from psyinsight.counsel.engine import Generation, GenParams, LocalEngine
from psyinsight.counsel.safety.reply_screen import StreamScreen
from psyinsight.errors import PsyInsightError
from psyinsight.serve.config import API_KEY_ENV, ApiError, ServeConfig
from psyinsight.serve.disconnect import client_left, watching
from psyinsight.serve.limits import TokenBucket
from psyinsight.serve.replies import ReplySplitter, chunk_event, completion_body, error_event, extension_of, extract_json_object, thought_of, usage_of
from psyinsight.serve.requests import ChatRequest, decode_body, header_value, parse_request
from psyinsight.serve.security import RequestGuard, allowed_hosts
from psyinsight.serve.structured import StructuredEngine, constrained
from psyinsight.serve.worker import ModelWorker

log = logging.getLogger(__name__)

JSON_INSTRUCTION = "Respond with a single valid JSON object and nothing else."


def create_app(config: ServeConfig, *, engine: Any = None, counselor: Counselor | None = None) -> FastAPI:
    """The FastAPI app. ``engine`` defaults to a ``LocalEngine`` for ``config.model``/``adapter``."""
    from psyinsight.counsel.safety import SafetyConfig, SafetyGuard

    engine = StructuredEngine(engine or LocalEngine(config.model, config.adapter, device=config.device, threads=config.threads))
    if counselor is None:
        guard = SafetyGuard(
            SafetyConfig(
                resources_path=config.crisis_resources,
                region=config.region,
                second_opinion_url=config.second_opinion_url,
                second_opinion_model=config.second_opinion_model,
            )
        )
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
    stopping = asyncio.Event()  # set on shutdown: requests still waiting for the model end with a 503

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        worker.close()

    app = FastAPI(title="psyinsight serve", version="1", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.add_middleware(RequestGuard, hosts=allowed_hosts(config.host, config.allowed_hosts))
    app.state.worker = worker
    app.state.config = config
    app.state.models = listed
    app.state.stop_generating = stopping.set  # called on the event loop by serve() once its grace period is over

    def error(exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(
            ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code="not_found" if exc.status_code == 404 else None)
        )

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
        too_big = ApiError(413, f"the request body is larger than this server's limit of {config.max_body_bytes} bytes", code="request_too_large")
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
    async def health(request: Request) -> dict[str, Any]:
        try:
            authorize(request)
        except ApiError:
            return {"status": "ok"}  # liveness only, without the key
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
                raise ApiError(
                    429,
                    f"rate limit: at most {config.rate:g} requests/second (burst {config.burst}) per client; retry in {wait:.2f}s",
                    type="rate_limit_error",
                    code="rate_limit_exceeded",
                    headers={"Retry-After": str(max(1, round(wait + 0.5)))},
                )
            data = decode_body(await read_body(request))
            named = data.get("model") if isinstance(data, dict) else None
            guarded = modes.get(named) if isinstance(named, str) else None
            if guarded == "counselor" or (guarded == "plain" and config.guard):
                crisis = await crisis_first(data)  # before the request is checked: nothing can skip the guard
                if crisis is not None:
                    return crisis
            req = parse_request(data, config)
            mode = modes.get(req.model)
            if mode is None:
                raise ApiError(
                    404,
                    f"the model {req.model!r} does not exist here; this server serves {', '.join(listed)} (GET /v1/models)",
                    param="model",
                    code="model_not_found",
                )
            ignored = req.ignored_in(mode)
            if mode == "plain" and not config.guard:  # no guard, no crisis message: nothing reads them
                ignored = sorted({*ignored, *(k for k in ("language", "region") if k in req.given)})
            if ignored:  # accepted for compatibility, but say so: never ignore silently
                log.warning("ignored request parameters: %s", header_value(ignored))
            with contextlib.nullcontext() if req.stream else watching(request.receive):
                response = await (counselor_mode(req) if mode == "counselor" else plain_mode(req))
            if ignored:
                response.headers["X-Psyinsight-Ignored"] = header_value(ignored)
            return response
        except ApiError as exc:
            return error(exc)
        except PsyInsightError as exc:
            return error(ApiError(400, str(exc), code="invalid_request"))

    async def unless_stopping(waiting: Awaitable[Any]) -> Any:
        """``waiting``'s result, or a 503 once the server stops generating (``waiting`` is then
        cancelled), or a 499 once the client of a non-streaming request has left.

        Without this, a shutdown waits for every generation in progress, however long.
        """
        task = asyncio.ensure_future(waiting)
        stop = asyncio.ensure_future(stopping.wait())
        gone = asyncio.ensure_future(client_left())
        try:
            done, _ = await asyncio.wait((task, stop, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            task.cancel()  # no-op when done; a queued job whose future is cancelled never runs
            stop.cancel()
            gone.cancel()
        if task in done:
            return task.result()
        if gone in done and stop not in done:
            raise ApiError(499, "the client closed the request", code="client_closed")
        raise ApiError(503, "the server is shutting down; retry shortly", type="server_error", code="shutting_down", headers={"Retry-After": "1"})

    async def generate(prompt: list[dict[str, str]], params: GenParams) -> Generation:
        job = worker.submit_job(prompt, params)
        try:
            return await unless_stopping(asyncio.wrap_future(job.future))
        finally:
            job.cancelled.set()  # no-op once done; else it leaves the queue or stops at its next token

    def stream_generation(prompt: list[dict[str, str]], text: str, params: GenParams) -> Generation:
        """Token accounting for a streamed reply (counted after the fact, capped at the limit)."""
        count = getattr(engine, "count_tokens", None)
        completion = min(count(text), params.max_new_tokens) if count else 0
        prompt_tokens = engine.count_prompt_tokens(prompt) if hasattr(engine, "count_prompt_tokens") else 0
        return Generation(text.strip(), prompt_tokens, completion, "length" if completion >= params.max_new_tokens else "stop")

    async def stream_pieces(prompt: list[dict[str, str]], params: GenParams) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()

        def sink(piece: str | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped, nobody reads on
                loop.call_soon_threadsafe(pieces.put_nowait, piece)

        job = worker.submit_stream(prompt, params, sink)
        try:
            while (piece := await unless_stopping(pieces.get())) is not None:
                yield piece
            exc = job.future.exception() if job.future.done() else None
            if exc is not None:
                raise exc
        finally:
            job.cancelled.set()

    def sse(events: AsyncIterator[str]) -> Any:
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def crisis_response(reply: Any, name: str, stream: bool) -> Any:
        """The fixed crisis message as a completion or a stream (flagged in the ``psyinsight`` field)."""
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not stream:
            return completion_body(rid, name, created, {"role": "assistant", "content": reply.response}, "stop", usage_of(None), extension_of(reply))

        async def crisis_events() -> AsyncIterator[str]:
            yield chunk_event(rid, name, created, {"role": "assistant", "content": ""})
            yield chunk_event(rid, name, created, {"content": reply.response})
            yield chunk_event(rid, name, created, {}, "stop", psyinsight=extension_of(reply))
            yield "data: [DONE]\n\n"

        return sse(crisis_events())

    async def crisis_first(data: dict[str, Any]) -> Any:
        """The crisis response when the request's messages show risk, else None.

        Reads the raw body, so a request that would fail its checks (an unknown language, an
        empty turn, a bad parameter) still gets the hotlines when it shows risk.
        """
        messages = data.get("messages")
        if not isinstance(messages, list):
            return None
        risk = await asyncio.to_thread(counselor.check, messages)
        if not risk.risk:
            return None
        language = data.get("language") if isinstance(data.get("language"), str) else None
        region = data.get("region") if isinstance(data.get("region"), str) else None
        reply = counselor.crisis_reply(risk, counselor.crisis_language(messages, language), region)
        return crisis_response(reply, str(data.get("model")), data.get("stream") is True)

    async def screened_stream(pieces: AsyncIterator[str], screen: StreamScreen) -> AsyncIterator[str]:
        """``pieces`` released sentence by sentence once screened; stops the model at the first unsafe one."""
        async for piece in pieces:
            released = screen.feed(piece)
            if screen.verdict is not None:
                break
            if released:
                yield released
        else:
            if rest := screen.close():
                yield rest

    async def plain_mode(req: ChatRequest) -> Any:
        prompt, params = req.messages, req.params
        if req.json_mode:  # ask for JSON, and open the reply with "{" so a small model follows
            prompt, params = _with_json_instruction(prompt), dataclasses.replace(params, prefix="{")
        enforced = req.response_format is not None and (engine.supports() or req.response_format.kind == "json_schema")
        if enforced:  # constrained decoding: every token keeps the answer inside the schema (serve/structured.py)
            await asyncio.to_thread(engine.check, req.response_format)  # compiling a new schema takes about a second
            params = constrained(params, req.response_format)  # type: ignore[arg-type]
        rid, created, name = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), req.model
        if not req.stream:
            g = await generate(prompt, params)
            text = g.text
            if req.json_mode and not enforced:
                text = extract_json_object(text) or text
            if config.guard and (withheld := counselor.screen(text, None)) is not None:
                return crisis_response(counselor.crisis_reply(withheld, counselor.crisis_language(req.messages, req.language)), name, False)
            return completion_body(rid, name, created, {"role": "assistant", "content": text}, g.finish_reason, usage_of(g), None)

        async def events() -> AsyncIterator[str]:
            yield chunk_event(rid, name, created, {"role": "assistant", "content": ""})
            try:
                screen = StreamScreen(json=req.json_mode)
                if req.json_mode and not enforced:  # the object is only known once complete: send it whole
                    g = await generate(prompt, params)
                    text = extract_json_object(g.text) or g.text
                    if not config.guard or screen.feed(text) + screen.close():
                        yield chunk_event(rid, name, created, {"content": text})
                    finish = g.finish_reason
                else:
                    pieces = []
                    source = screened_stream(stream_pieces(prompt, params), screen) if config.guard else stream_pieces(prompt, params)
                    async for piece in source:
                        pieces.append(piece)
                        yield chunk_event(rid, name, created, {"content": piece})
                    g = stream_generation(prompt, screen.text or "".join(pieces), params)
                    finish = g.finish_reason
                if screen.verdict is not None:  # the rest of the reply is withheld: the crisis message instead
                    withheld = counselor.screen(screen.text, None)
                    reply = counselor.crisis_reply(withheld, counselor.crisis_language(req.messages, req.language))  # type: ignore[arg-type]
                    yield chunk_event(rid, name, created, {"content": reply.response})
                    yield chunk_event(rid, name, created, {}, "stop", psyinsight=extension_of(reply))
                    yield "data: [DONE]\n\n"
                    return
                yield chunk_event(rid, name, created, {}, finish, **({"usage": usage_of(g)} if req.include_usage else {}))
            except Exception as exc:  # headers are sent: report in-band
                yield error_event(exc)
            yield "data: [DONE]\n\n"

        return sse(events())

    async def counselor_mode(req: ChatRequest) -> Any:
        history = req.messages
        lang = counselor.resolve_language(history, req.language)
        risk = counselor.check(history)  # crisis_first has already answered a risky conversation
        name = req.model
        if risk.risk:
            return crisis_response(counselor.crisis_reply(risk, lang, req.region), name, req.stream)
        prompt = counselor.prompt(history, lang, req.background, req.params)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not req.stream:
            g = await generate(prompt, req.params)
            reply = counselor.finish(g, lang, risk)  # screens the reply: unsafe text becomes the crisis message
            if reply.flagged:
                return crisis_response(reply, name, False)
            message = {"role": "assistant", "content": reply.response, "reasoning_content": thought_of(reply)}
            return completion_body(rid, name, created, message, g.finish_reason, usage_of(g), extension_of(reply))

        async def events() -> AsyncIterator[str]:
            yield chunk_event(rid, name, created, {"role": "assistant", "content": ""})
            splitter = ReplySplitter()
            screen = StreamScreen(after_risk=counselor.guard.after_risk(risk))
            try:
                async for piece in screened_stream(stream_pieces(prompt, req.params), screen):
                    for kind, delta in splitter.feed(piece):
                        yield chunk_event(rid, name, created, {"reasoning_content" if kind == "reasoning" else "content": delta})
                if screen.verdict is not None:  # the rest of the reply is withheld: the crisis message instead
                    reply = counselor.crisis_reply(counselor.screen(screen.text, risk) or risk, lang, req.region)  # type: ignore[arg-type]
                    yield chunk_event(rid, name, created, {"content": reply.response})
                    yield chunk_event(rid, name, created, {}, "stop", psyinsight=extension_of(reply))
                    yield "data: [DONE]\n\n"
                    return
                for kind, delta in splitter.close():
                    yield chunk_event(rid, name, created, {"reasoning_content" if kind == "reasoning" else "content": delta})
                g = stream_generation(prompt, splitter.text, req.params)
                reply = counselor.finish(g, lang, risk)
                usage = {"usage": usage_of(g)} if req.include_usage else {}
                yield chunk_event(rid, name, created, {}, g.finish_reason, psyinsight=extension_of(reply), **usage)
            except Exception as exc:
                yield error_event(exc)
            yield "data: [DONE]\n\n"

        return sse(events())

    return app


def _with_json_instruction(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Ask for JSON in the system message (small models need telling; OpenAI requires it too)."""
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{JSON_INSTRUCTION}"}, *messages[1:]]
    return [{"role": "system", "content": JSON_INSTRUCTION}, *messages]
