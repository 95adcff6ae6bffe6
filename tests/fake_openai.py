"""A scripted OpenAI-compatible server on 127.0.0.1 for tests and benchmarks.

It answers ``POST /v1/chat/completions`` (and ``GET /v1/models``) from a thread, with a
configurable latency, a responder that writes the reply text, and faults injected on
purpose, either in order (``faults=["429", "500", ...]``, one per incoming request, then
"ok") or per request (``fault_fn(body, n) -> kind``). Every request is recorded.

Fault kinds:
- ``ok``: a normal completion from the responder.
- ``429`` (with ``Retry-After: 0``), ``500``, ``503``, or any other status as digits: errors.
- ``hang``: never answers (until the server stops or ``hang_s`` passes): a client timeout.
- ``invalid_json``: a normal completion whose message text is not JSON.
- ``truncated``: a normal completion whose text is the reply cut in half,
  ``finish_reason="length"`` (what a token limit does to JSON).
- ``bad_body``: HTTP 200 whose body is not JSON at all.
- ``truncated_body``: HTTP 200 whose JSON body is cut in half.
- ``reject_schema``: HTTP 400 naming ``response_format`` (a server that does not enforce JSON schemas).

Usage::

    with FakeOpenAI(responder=lambda body: '{"a": 1}', latency_s=0.2) as server:
        client = LLMClient(LLMConfig(base_url=server.url, model="fake"))
        ...
        server.count("ok")
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], str]
FaultFn = Callable[[dict[str, Any], int], str]

FAULT_KINDS = ("ok", "429", "500", "503", "hang", "invalid_json", "truncated", "bad_body", "truncated_body", "reject_schema")


def default_responder(body: dict[str, Any]) -> str:
    """A JSON object echoing the last message (JSON mode) or a plain sentence."""
    last = body.get("messages", [{}])[-1].get("content", "")
    if (body.get("response_format") or {}).get("type") == "json_object":
        return json.dumps({"echo": last[:80]})
    return f"You said: {last[:80]}"


_KEYS_LINE = re.compile(r"Keys: ([^\n]+?)\.?\s*$", re.MULTILINE)
_TURN_LINE = re.compile(r"^\[(?P<id>\d+-\d+)\] .*?\((?P<role>Seeker|Supporter)\):", re.MULTILINE)


def keys_responder(body: dict[str, Any]) -> str:
    """Valid answers for the build's annotation prompts, read off their "Keys:" line.

    Deterministic (the text depends only on the prompt), so two builds give the same output.
    """
    user = next((m["content"] for m in body.get("messages", []) if m.get("role") == "user"), "")
    found = _KEYS_LINE.findall(user)
    keys = found[-1] if found else ""
    tag = hashlib.sha256(user.encode()).hexdigest()[:6]
    if keys.startswith("kind"):
        return json.dumps({"kind": "dialogue", "role": "client", "participant": ""})
    if keys.startswith("background"):
        return json.dumps(
            {
                "background": f"A client seeking help ({tag}).",
                "reasoning": "The counselor explores the problem.",
                "summary": "The client gains a new view.",
                "guide": "Listen and reflect feelings.",
            }
        )
    if keys.startswith("psychotherapy"):
        return json.dumps({"psychotherapy": "Cognitive Behavioral Therapy", "topic": "Ongoing Depression", "stage": "1st Session"})
    if keys.startswith("is_same_qa"):
        return json.dumps({"is_same_qa": 0, "is_same_session": 1})
    if keys.startswith("turns"):
        # only the turns to annotate: the block after the window heading, up to the next blank line
        block = re.split(r"\n(?:Turns to annotate|需要标注的话轮)[^\n]*\n", user)[-1].split("\n\n")[0]
        rows = []
        for m in _TURN_LINE.finditer(block):
            if m.group("role") == "Seeker":
                rows.append({"id": m.group("id"), "observation": f"The client speaks ({tag}).", "emotions": ["Anxiety"]})
            else:
                rows.append({"id": m.group("id"), "reasoning": f"Asks to understand ({tag}).", "strategies": ["Question"]})
        return json.dumps({"turns": rows})
    return default_responder(body)


def messages_key(body: dict[str, Any]) -> str:
    """A hash of the request's messages and parameters: identifies repeated requests."""
    data = {k: v for k, v in body.items() if k != "stream"}
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops connections under 16-way load


@dataclass
class RequestRecord:
    n: int
    body: dict[str, Any]
    key: str
    fault: str
    status: int = 0
    delivered: bool = False
    """True once a successful (``ok``/``invalid_json``/``truncated``) answer was written out."""
    started: float = field(default_factory=time.monotonic)
    authorization: str = ""


class FakeOpenAI:
    """The server; a context manager that runs it in a daemon thread."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency_s: float = 0.0,
        faults: Sequence[str] = (),
        fault_fn: FaultFn | None = None,
        hang_s: float = 60.0,
        max_ok: int | None = None,
        port: int = 0,
    ):
        for kind in faults:
            if kind not in FAULT_KINDS and not kind.isdigit():
                raise ValueError(f"unknown fault {kind!r}; choose from {FAULT_KINDS}")
        self.responder = responder or default_responder
        self.latency_s = latency_s
        self.hang_s = hang_s
        self.max_ok = max_ok
        """After this many delivered answers, every further request hangs (a frozen server)."""
        self._faults = list(faults)
        self._fault_fn = fault_fn
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.records: list[RequestRecord] = []
        self.in_flight = 0
        """Requests received and not yet answered (counted down just before the answer is written)."""
        self.max_in_flight = 0
        self._server = _Server(("127.0.0.1", port), self._handler_class())
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection -----------------------------------------------------------------

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.records)

    def count(self, fault: str | None = None, *, delivered: bool | None = None) -> int:
        """Requests seen, optionally only those given ``fault`` and/or (not) delivered."""
        with self._lock:
            return sum(1 for r in self.records if (fault is None or r.fault == fault) and (delivered is None or r.delivered == delivered))

    def delivered_keys(self) -> list[str]:
        with self._lock:
            return [r.key for r in self.records if r.delivered]

    def reset_records(self) -> None:
        with self._lock:
            self.records.clear()
            self.max_in_flight = self.in_flight

    def set_faults(self, faults: Sequence[str]) -> None:
        with self._lock:
            self._faults = list(faults)

    # -- serving --------------------------------------------------------------------

    def _next_fault(self, body: dict[str, Any], n: int) -> str:
        if self.max_ok is not None and sum(1 for r in self.records if r.delivered) >= self.max_ok:
            return "hang"
        if self._fault_fn is not None:
            return self._fault_fn(body, n)
        if self._faults:
            return self._faults.pop(0)
        return "ok"

    def _completion(self, body: dict[str, Any], text: str, finish_reason: str) -> bytes:
        prompt_words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        return json.dumps(
            {
                "id": f"chatcmpl-fake-{int(time.time() * 1000)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
                "usage": {
                    "prompt_tokens": prompt_words,
                    "completion_tokens": len(text.split()),
                    "total_tokens": prompt_words + len(text.split()),
                },
            }
        ).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            _counted = False

            def _leave(self) -> None:
                """Count this request out of ``in_flight`` (once), before the client can see an answer."""
                if self._counted:
                    self._counted = False
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> bool:
                self._leave()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                    self.wfile.flush()
                    return True
                except OSError:
                    return False

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self) -> None:  # noqa: N802
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                self._counted = True
                try:
                    self._post()
                finally:
                    self._leave()

            def _post(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    self._send(400, b'{"error": {"message": "request body is not JSON"}}')
                    return
                with server._lock:
                    record = RequestRecord(n=len(server.records), body=body, key=messages_key(body), fault="ok")
                    record.authorization = self.headers.get("Authorization", "")
                    server.records.append(record)
                    record.fault = server._next_fault(body, record.n)
                if server.latency_s:
                    if server._stop.wait(server.latency_s):
                        return
                fault = record.fault
                if fault == "hang":
                    server._stop.wait(server.hang_s)
                    self.close_connection = True
                    return
                if fault == "reject_schema":  # a server that does not enforce JSON schemas (as an OpenAI-compatible one says so)
                    record.status = 400
                    message = {
                        "error": {
                            "message": "response_format json_schema is not supported",
                            "type": "invalid_request_error",
                            "param": "response_format",
                            "code": None,
                        }
                    }
                    self._send(400, json.dumps(message).encode())
                    return
                if fault.isdigit():
                    record.status = int(fault)
                    headers = {"Retry-After": "0"} if fault == "429" else {}
                    message = json.dumps({"error": {"message": f"scripted {fault}", "type": "fake", "code": fault}}).encode()
                    self._send(int(fault), message, headers)
                    return
                if fault == "bad_body":
                    record.status = 200
                    self._send(200, b"<html>upstream proxy error</html>")
                    return
                text = server.responder(body)
                finish = "stop"
                if fault == "invalid_json":
                    text = "Sure! Here is the answer you asked for: " + text.replace("{", "(").replace("}", ")")
                elif fault == "truncated":
                    text, finish = text[: max(1, len(text) // 2)], "length"
                payload = server._completion(body, text, finish)
                if fault == "truncated_body":
                    payload = payload[: len(payload) // 2]
                record.status = 200
                ok = self._send(200, payload)
                with server._lock:
                    record.delivered = ok and fault in ("ok", "invalid_json", "truncated")

        return Handler


def main() -> None:
    """Run a fake server from the command line (for trying the build by hand)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8009)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--keys", action="store_true", help="Answer the build's prompts (keys_responder).")
    args = parser.parse_args()
    with FakeOpenAI(keys_responder if args.keys else None, latency_s=args.latency, port=args.port) as server:
        print(f"listening on {server.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
