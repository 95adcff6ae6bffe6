"""The model worker: one thread owns the model; concurrent requests queue for it and are batched.

The model is not re-entrant and a batch of equal requests costs little more than one, so
every generation goes through this queue rather than running in the request handlers.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from psyinsight.counselor import Generation, GenParams
from psyinsight.serve.config import ApiError


@dataclass
class _Job:
    """A request waiting for, or getting, its generation."""

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
        """End the thread once the jobs queued so far are done (cancelled ones are skipped).

        The thread is a daemon, so a generation still running never keeps the process alive.
        """
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
