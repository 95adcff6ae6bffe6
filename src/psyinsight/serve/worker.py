"""The model worker: one thread owns the model; concurrent requests queue for it and are batched.

The model is not re-entrant and a batch of equal requests costs little more than one, so
every generation goes through this queue rather than running in the request handlers.

One request never harms another: when a batch fails, each of its requests is run again
alone, so only the one at fault fails. A request whose client left is dropped from the
queue, or stopped at its next token. ``close`` stops the generation in progress, ends the
queued requests with a 503 and joins the thread, so no model code runs while the
interpreter exits.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psyinsight.counsel.engine import Generation, GenParams
from psyinsight.errors import PsyInsightError
from psyinsight.serve.config import ApiError
from psyinsight.serve.engine import ServingEngine

log = logging.getLogger(__name__)

INPUT_ERRORS = (PsyInsightError, UnicodeError, ValueError, TypeError, OverflowError, RecursionError)
"""Errors a request's own input raises in the tokenizer or the model (a 400, not a server bug)."""


def as_api_error(exc: BaseException) -> ApiError:
    """The HTTP error for a failed generation: 400 when the input is at fault, else 500."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, INPUT_ERRORS):
        return ApiError(400, f"the model cannot process this request: {type(exc).__name__}: {exc}", code="unprocessable_input")
    return ApiError(500, f"generation failed: {type(exc).__name__}: {exc}", type="server_error")


def _fail(jobs: Sequence[_Job], exc: BaseException, error: ApiError | None = None) -> None:
    """Answer each job not yet answered with ``error`` (default: ``exc`` as an API error); a 500 is logged."""
    error = error or as_api_error(exc)
    if error.status == 500:
        log.error("generation failed", exc_info=exc)
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error)


def _shutting_down() -> ApiError:
    return ApiError(503, "the server is shutting down; retry shortly", type="server_error", code="shutting_down", headers={"Retry-After": "1"})


@dataclass
class _Job:
    """A request waiting for, or getting, its generation."""

    prompt: list[dict[str, str]]
    params: GenParams
    future: concurrent.futures.Future[Any]
    stream_to: Any = None
    """For streaming jobs: a callback receiving each text piece, then None at the end."""
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set when the client has left: dropped from the queue, or stopped at its next token."""


class ModelWorker:
    """One thread owns the model; concurrent requests queue here and are batched.

    Non-streaming requests with equal decoding settings that are waiting together run as
    one ``generate`` batch (up to ``batch_size``); a streaming request runs alone.
    """

    def __init__(self, engine: Any, *, batch_size: int = 8, batch_wait_ms: float = 25.0, max_queue: int = 256):
        self.engine = engine if isinstance(engine, ServingEngine) else ServingEngine(engine)
        self.batch_size = batch_size
        self.batch_wait = batch_wait_ms / 1000.0
        self.max_queue = max_queue
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._deferred: deque[_Job] = deque()
        self._pending = 0
        self._lock = threading.Lock()
        self._running: list[_Job] = []
        self._closing = threading.Event()
        self.batches: list[int] = []
        """Sizes of the batches run so far (the last 1000), for /health and the benchmark."""
        self.skipped = 0
        """Requests dropped from the queue because their client had left."""
        self._thread = threading.Thread(target=self._run, name="psyinsight-model", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._pending

    def _admit(self) -> None:
        with self._lock:
            if self._closing.is_set():
                raise _shutting_down()
            if self._pending >= self.max_queue:
                raise ApiError(
                    503,
                    f"the server is busy ({self._pending} requests waiting); retry shortly",
                    type="server_error",
                    code="overloaded",
                    headers={"Retry-After": "1"},
                )
            self._pending += 1

    def submit_job(self, prompt: list[dict[str, str]], params: GenParams) -> _Job:
        """Queue a generation; set ``job.cancelled`` when its client leaves."""
        self._admit()
        job = _Job(prompt, params, concurrent.futures.Future())
        self._queue.put(job)
        return job

    def submit(self, prompt: list[dict[str, str]], params: GenParams) -> concurrent.futures.Future[Generation]:
        return self.submit_job(prompt, params).future

    def submit_stream(self, prompt: list[dict[str, str]], params: GenParams, sink: Any) -> _Job:
        self._admit()
        job = _Job(prompt, params, concurrent.futures.Future(), stream_to=sink)
        self._queue.put(job)
        return job

    def close(self, timeout: float = 60.0) -> None:
        """Stop: the generation in progress stops at its next token, queued requests end with a
        503, and the thread is joined (within ``timeout`` seconds)."""
        with self._lock:
            self._closing.set()
            running = list(self._running)
        for job in running:
            job.cancelled.set()
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the model thread did not stop within %.0f s", timeout)

    def _next(self, timeout: float | None) -> _Job | None:
        if self._deferred:
            return self._deferred.popleft()
        return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()

    def _done(self, n: int) -> None:
        with self._lock:
            self._pending -= n

    def _start(self, job: _Job) -> bool:
        """Mark ``job`` running; False (and it is dropped) when its client left or the server stops."""
        if self._closing.is_set():
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(_shutting_down())
            self._end_stream(job)
            self._done(1)
            return False
        if job.cancelled.is_set() or not job.future.set_running_or_notify_cancel():
            if not job.future.done() and job.future.set_running_or_notify_cancel():
                job.future.set_exception(ApiError(499, "the client closed the request", code="client_closed"))
            self.skipped += 1
            self._end_stream(job)
            self._done(1)
            return False
        return True

    @staticmethod
    def _end_stream(job: _Job) -> None:
        if job.stream_to is not None:
            job.stream_to(None)

    def _run(self) -> None:
        while True:
            job = self._next(None)
            if job is None:
                if self._closing.is_set():
                    while self._deferred:  # anything put back while forming the last batch
                        self._start(self._deferred.popleft())
                    while True:
                        try:
                            rest = self._queue.get_nowait()
                        except queue.Empty:
                            return
                        if rest is not None:
                            self._start(rest)
                continue
            if not self._start(job):
                continue
            if job.stream_to is not None:
                self._run_stream(job)
                continue
            batch = [job]
            deadline = time.monotonic() + self.batch_wait
            while len(batch) < self.batch_size and not self._closing.is_set():
                try:
                    nxt = self._next(max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                if nxt.stream_to is None and nxt.params == job.params:
                    if self._start(nxt):
                        batch.append(nxt)
                else:
                    self._deferred.append(nxt)
                    break
            self._run_batch(batch)

    def _generate(self, batch: list[_Job]) -> list[Generation]:
        with self._lock:
            self._running = batch
            if self._closing.is_set():  # close() came while the batch was formed
                for j in batch:
                    j.cancelled.set()
        try:
            return self.engine.generate([j.prompt for j in batch], batch[0].params, [j.cancelled for j in batch])
        finally:
            with self._lock:
                self._running = []

    def _run_batch(self, batch: list[_Job]) -> None:
        try:
            try:
                results = self._generate(batch)
            except Exception as exc:
                if len(batch) == 1 or self._closing.is_set():
                    raise
                log.warning("a batch of %d failed (%s: %s); running each request alone", len(batch), type(exc).__name__, exc)
                for j in batch:  # only the request at fault fails
                    self._run_alone(j)
                return
            if self._closing.is_set():
                raise _shutting_down()  # the replies were cut short
            self.batches = [*self.batches[-999:], len(batch)]
            for j, r in zip(batch, results):
                j.future.set_result(r)
        except BaseException as exc:  # the server stays up; each request gets the error
            _fail(batch, exc, _shutting_down() if self._closing.is_set() else None)
        finally:
            self._done(len(batch))

    def _run_alone(self, job: _Job) -> None:
        try:
            result = self._generate([job])[0]
            self.batches = [*self.batches[-999:], 1]
            job.future.set_result(result)
        except BaseException as exc:
            _fail([job], exc)

    def _run_stream(self, job: _Job) -> None:
        with self._lock:
            self._running = [job]
            if self._closing.is_set():
                job.cancelled.set()
        try:
            for piece in self.engine.stream(job.prompt, job.params, job.cancelled):
                job.stream_to(piece)
            if self._closing.is_set():
                raise _shutting_down()
            job.future.set_result(None)
        except BaseException as exc:
            _fail([job], exc)
        finally:
            with self._lock:
                self._running = []
            job.stream_to(None)
            self._done(1)
