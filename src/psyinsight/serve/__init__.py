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
settings into one batch (micro-batching). On SIGTERM or Ctrl-C open requests get
``--shutdown-timeout`` seconds; then those still generating end with a 503 and the server
stops.

Modules, one job each: ``config`` (settings, ``ApiError``), ``limits`` (rate limiting),
``worker`` (the thread that owns the model), ``requests`` (checking a request body),
``replies`` (response bodies, the counselor's stream splitter, JSON mode), ``app`` (the
routes), ``server`` (running it).
"""

from psyinsight.serve.app import JSON_INSTRUCTION, create_app
from psyinsight.serve.config import API_KEY_ENV, ApiError, ServeConfig
from psyinsight.serve.limits import TokenBucket
from psyinsight.serve.replies import ReplySplitter, extract_json_object, iter_sse
from psyinsight.serve.requests import KNOWN_PARAMS, ChatRequest, parse_request
from psyinsight.serve.server import BackgroundServer, is_loopback, serve
from psyinsight.serve.worker import ModelWorker

__all__ = [
    "API_KEY_ENV", "JSON_INSTRUCTION", "KNOWN_PARAMS", "ApiError", "BackgroundServer", "ChatRequest", "ModelWorker",
    "ReplySplitter", "ServeConfig", "TokenBucket", "create_app", "extract_json_object", "is_loopback", "iter_sse",
    "parse_request", "serve",
]  # fmt: skip
