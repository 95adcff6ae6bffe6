"""Noticing that a client has left while its non-streaming request waits for the model.

A streaming response notices by itself (Starlette stops it when a write fails or the
client disconnects). A non-streaming handler sends nothing until the reply is ready, so
without this a client could queue many long jobs and leave, and the model would still run
them all. ``watching(receive)`` marks the current request; ``client_left()`` then returns
once its client has disconnected (and never returns when nothing is being watched).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

_receive: contextvars.ContextVar[Callable[[], Awaitable[dict[str, Any]]] | None] = contextvars.ContextVar("psyinsight_receive", default=None)


@contextlib.contextmanager
def watching(receive: Callable[[], Awaitable[dict[str, Any]]]) -> Iterator[None]:
    """Within this block, ``client_left`` watches the connection ``receive`` belongs to.

    Only for a request whose body has been read: ASGI's ``receive`` then yields nothing
    until ``http.disconnect``.
    """
    token = _receive.set(receive)
    try:
        yield
    finally:
        _receive.reset(token)


async def client_left() -> None:
    """Return once the watched client has disconnected."""
    receive = _receive.get()
    if receive is None:
        await asyncio.Event().wait()  # nothing watched: never
        return
    while (await receive())["type"] != "http.disconnect":
        pass
