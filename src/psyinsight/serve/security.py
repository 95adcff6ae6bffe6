"""What keeps web pages out of a local server: a Host allow-list and JSON-only POSTs.

A keyless server on 127.0.0.1 is still reachable from any web page the user opens. Two
holes are closed here, before any route runs:

* **Simple cross-origin requests.** A page may POST ``text/plain`` (or a form) to any
  address without asking first. Only ``application/json`` is accepted, which a browser
  sends cross-origin only after a CORS preflight (``OPTIONS``), and every preflight is
  refused (no ``Access-Control-Allow-*`` header is ever sent).
* **DNS rebinding.** A page on ``evil.example`` whose name then resolves to 127.0.0.1
  talks to the server as same-origin, but its requests carry ``Host: evil.example``.
  Only the names in the allow-list are answered: 127.0.0.1, localhost, ::1, the
  ``--host`` the server binds, and any ``--allowed-host``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host names the server answers ("*" in ``extra`` turns the check off)."""
    return frozenset(h.strip().lower().strip("[]") for h in (*LOOPBACK_NAMES, host, *extra) if h.strip())


def host_name(header: str) -> str:
    """The name in a Host header, without the port ("[::1]:8000" → "::1")."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class RequestGuard:
    """ASGI middleware: refuses unknown Host names, CORS preflights and non-JSON POSTs."""

    def __init__(self, app: Any, hosts: frozenset[str]):
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self.refusal(scope["method"], headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message, code = refusal
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def refusal(self, method: str, headers: dict[str, str]) -> tuple[int, str, str] | None:
        """(status, message, code) for a request refused before routing, else None."""
        if "*" not in self.hosts:
            name = host_name(headers.get("host", ""))
            if name not in self.hosts:
                return (
                    403,
                    f"the Host {name or '(none)'!r} is not served here; allowed: {', '.join(sorted(self.hosts))} "
                    "(start the server with --allowed-host NAME to add one)",
                    "host_not_allowed",
                )
        if method == "OPTIONS":
            return 405, "cross-origin requests are not served (CORS preflight refused)", "cors_refused"
        if method == "POST":
            kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if kind != "application/json":
                return (415, f"the request body must be sent as 'Content-Type: application/json', not {kind or '(none)'!r}", "unsupported_media_type")
        return None
