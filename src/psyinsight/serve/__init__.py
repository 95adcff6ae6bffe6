"""``psyinsight serve``: an OpenAI-compatible HTTP server over a local model (+ adapter).

Two modes, chosen per request by the model name (``GET /v1/models`` lists them):

* **plain** (``<name>``, ``default``, ``smollm2``): the messages go straight to the model
  through its chat template, as any OpenAI-compatible server does. The construction
  pipeline and the judge use this, including ``response_format={"type": "json_object"}``.
* **counselor** (``<name>-counselor``, ``counselor``): the request goes through
  ``psyinsight.counsel.counselor.Counselor``: the safety guard first (a crisis reply never comes
  from the model), then the counselor prompt; the reply is in ``message.content``, the
  observation and reasoning in ``message.reasoning_content`` and, parsed, in the
  top-level ``psyinsight`` object (with ``flagged`` and the safety verdict).

Started with ``--counselor``, every model name is served in counselor mode, so a
deployment cannot be talked around its safety layer by picking the plain name.

Guards: a Host allow-list and JSON-only POSTs (no CORS; against web pages reaching a
local server), a request-body size limit (413), JSON depth and finite numbers, a token
bucket per client (429 with Retry-After), a bounded queue (503), the fields' declared
ranges, limits on messages, input size and max_tokens (400).
Every error is an OpenAI-style JSON body ``{"error": {"message", "type", "param",
"code"}}`` (in a stream: an error event, then ``[DONE]``) and the server keeps running.
Parameters accepted but not used are named in the ``X-Psyinsight-Ignored`` header. One
model instance serves all requests: a worker thread owns it and groups concurrent
non-streaming requests with the same decoding settings into one batch (micro-batching);
a failed batch is retried request by request, so one bad request fails alone. A request
whose client left is dropped or stopped at its next token. On SIGTERM or Ctrl-C open
requests get ``--shutdown-timeout`` seconds; then those still generating end with a 503,
the model thread is stopped and joined, and the process exits 0.

Modules, one job each: ``config`` (settings, ``ApiError``), ``limits`` (rate limiting),
``security`` (Host allow-list, JSON-only POST), ``requests`` (checking a request body),
``engine`` (cancellable generation, whole characters), ``worker`` (the thread that owns
the model), ``disconnect`` (noticing a client that left), ``replies`` (response bodies,
the counselor's stream splitter, JSON mode), ``app`` (the routes), ``server`` (running it).
"""

from psyinsight.serve.app import JSON_INSTRUCTION, create_app
from psyinsight.serve.config import API_KEY_ENV, ApiError, ServeConfig
from psyinsight.serve.engine import ServingEngine
from psyinsight.serve.limits import TokenBucket
from psyinsight.serve.replies import ReplySplitter, extract_json_object, iter_sse
from psyinsight.serve.requests import KNOWN_PARAMS, ChatFields, ChatRequest, decode_body, parse_request
from psyinsight.serve.security import RequestGuard, allowed_hosts
from psyinsight.serve.server import BackgroundServer, is_loopback, serve
from psyinsight.serve.worker import ModelWorker

__all__ = [
    "API_KEY_ENV",
    "JSON_INSTRUCTION",
    "KNOWN_PARAMS",
    "ApiError",
    "BackgroundServer",
    "ChatFields",
    "ChatRequest",
    "ModelWorker",
    "ReplySplitter",
    "RequestGuard",
    "ServeConfig",
    "ServingEngine",
    "TokenBucket",
    "allowed_hosts",
    "create_app",
    "decode_body",
    "extract_json_object",
    "is_loopback",
    "iter_sse",
    "parse_request",
    "serve",
]
