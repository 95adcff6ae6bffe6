"""Running the app: ``serve`` for ``psyinsight serve``, ``BackgroundServer`` for tests and benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from psyinsight.counsel.engine import LocalEngine
from psyinsight.errors import PsyInsightError
from psyinsight.serve.app import create_app
from psyinsight.serve.config import API_KEY_ENV, ServeConfig

CANCEL_AFTER_S = 5.0
"""After the grace period, how long what is left (a reply still being sent) gets before it is cancelled."""


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


class BackgroundServer:
    """Run the app with uvicorn in a thread (tests, benchmarks, ``chat --serve``)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0):
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


class _BoundedShutdownServer(uvicorn.Server):
    """uvicorn's server, stopping in bounded time and ending open replies properly.

    On SIGTERM or Ctrl-C uvicorn stops accepting connections and waits for the open
    requests: without a timeout for as long as a generation runs; with one it cancels
    them, and a streaming client sees its connection cut mid-reply. Here open requests get
    ``grace`` seconds; then those still waiting for the model end with a 503 (in a stream:
    an error event, then ``[DONE]``), and uvicorn's timeout cancels whatever is left. The
    app's shutdown then stops the model thread (see ``ModelWorker.close``).

    SIGINT and SIGTERM are handled alike: a clean stop that exits 0. (uvicorn re-raises the
    signal once it has stopped, which kills the process by SIGTERM, or raises
    KeyboardInterrupt at an arbitrary point of the interpreter's exit.) A second Ctrl-C
    stops at once.
    """

    def __init__(self, config: uvicorn.Config, *, grace: float, stop_generating: Callable[[], None]):
        super().__init__(config)
        self.grace, self.stop_generating = grace, stop_generating

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        timer = asyncio.get_running_loop().call_later(self.grace, self.stop_generating)
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()


def serve(config: ServeConfig, *, announce: Any = print) -> None:
    """Load the model, then serve until SIGTERM or Ctrl-C.

    After the signal, open requests get ``config.shutdown_timeout`` seconds to finish; the
    process stops at most ``CANCEL_AFTER_S`` seconds later.
    """
    engine = LocalEngine(config.model, config.adapter, device=config.device, threads=config.threads)
    engine.load()  # fail here, with a clear message, not on the first request
    app = create_app(config, engine=engine)
    if not is_loopback(config.host):
        announce(
            f"warning: binding {config.host}: the server is reachable from other machines"
            + ("" if (config.api_key or os.environ.get(API_KEY_ENV)) else " and has no API key (--api-key-env)")
        )
        if config.host in ("0.0.0.0", "::") and not config.allowed_hosts:
            announce("warning: only requests for 127.0.0.1, localhost or ::1 are answered; add the names clients use with --allowed-host")
    names = ", ".join(app.state.models)
    announce(f"serving {names} at http://{config.host}:{config.port}/v1 (counselor-only: {config.counselor})")
    if not config.counselor and not config.guard:
        announce(
            "warning: --no-guard: plain mode answers without the safety guard (counselor mode keeps it); do not put this server in front of people"
        )
    settings = uvicorn.Config(
        app, host=config.host, port=config.port, log_level="warning", timeout_graceful_shutdown=config.shutdown_timeout + CANCEL_AFTER_S
    )
    server = _BoundedShutdownServer(settings, grace=config.shutdown_timeout, stop_generating=app.state.stop_generating)
    try:
        server.run()
    except KeyboardInterrupt:  # a Ctrl-C outside uvicorn's handler (before it started)
        pass
    if not server.started:  # it could not bind (uvicorn has logged why): fail as uvicorn.run() does
        sys.exit(STARTUP_FAILURE)
