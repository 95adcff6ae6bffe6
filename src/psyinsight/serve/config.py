"""The server's settings and its one error type (answered as OpenAI-style JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psyinsight.errors import PsyInsightError

API_KEY_ENV = "PSYINSIGHT_SERVE_KEY"


@dataclass
class ServeConfig:
    """Settings of the server (each is a ``psyinsight serve`` option)."""

    model: str = field(default="default", metadata={"help": "Base model: 'default'/'smollm2' (embedded) or a local folder."})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter folder from `psyinsight train`."})
    name: str | None = field(default=None, metadata={"help": "Model id to serve as; default from the model/adapter name."})
    counselor: bool = field(default=False, metadata={"help": "Serve every model name in counselor mode (safety layer always on)."})
    guard: bool = field(
        default=True, metadata={"help": "Run the safety guard in plain mode too (counselor mode always has it); off only by an explicit --no-guard."}
    )
    second_opinion_url: str | None = field(
        default=None, metadata={"help": "OpenAI-compatible URL of a guard model asked about borderline messages (fails closed)."}
    )
    second_opinion_model: str = field(default="default", metadata={"help": "Model name for the second-opinion endpoint."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to bind; 127.0.0.1 keeps it on this machine."})
    port: int = field(default=8000, metadata={"help": "Port to bind (0 = any free port)."})
    language: str = field(default="en", metadata={"help": "Counselor default language when a message has no Chinese: en or cn."})
    task: str | None = field(
        default=None, metadata={"help": "Counselor prompt task (default: the adapter's training task, else observation_reasoning)."}
    )
    region: str | None = field(default=None, metadata={"help": "Crisis hotline region (US, UK, CN, HK, TW, INTL...)."})
    crisis_resources: str | None = field(default=None, metadata={"help": "Crisis message + hotline YAML file."})
    max_body_bytes: int = field(default=256 * 1024, metadata={"help": "Largest request body accepted (413 above)."})
    max_messages: int = field(default=200, metadata={"help": "Most messages in one request."})
    max_input_chars: int = field(default=32_000, metadata={"help": "Most characters of message text in one request."})
    max_tokens_limit: int = field(default=1024, metadata={"help": "Largest max_tokens a request may ask for."})
    default_max_tokens: int = field(default=256, metadata={"help": "max_tokens when a request gives none."})
    rate: float = field(default=10.0, metadata={"help": "Requests per second per client (token bucket refill); 0 = no limit."})
    burst: int = field(default=40, metadata={"help": "Token bucket size: requests a client may send at once."})
    max_queue: int = field(default=256, metadata={"help": "Requests waiting for the model before 503s."})
    batch_size: int = field(default=8, metadata={"help": "Most concurrent requests generated as one batch."})
    batch_wait_ms: float = field(
        default=25.0, metadata={"help": "How long the worker waits to fill a batch (clients whose replies just came back send again within ms)."}
    )
    api_key: str | None = field(default=None, metadata={"help": f"Require 'Authorization: Bearer KEY' (or set ${API_KEY_ENV})."})
    allowed_hosts: tuple[str, ...] = field(
        default=(), metadata={"help": "Host names answered besides 127.0.0.1, localhost, ::1 and --host ('*': any)."}
    )
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1...; default: cuda when available."})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads; 1 is fastest on a CPU shared with other work."})
    shutdown_timeout: float = field(
        default=10.0, metadata={"help": "Seconds open requests get to finish on SIGTERM or Ctrl-C; then those still generating end with a 503."}
    )

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_messages",
            "max_input_chars",
            "max_tokens_limit",
            "default_max_tokens",
            "burst",
            "max_queue",
            "batch_size",
        ):
            if getattr(self, name) < 1:
                raise PsyInsightError("must be at least 1", where=f"--{name.replace('_', '-')}")
        if self.rate < 0:
            raise PsyInsightError("must be >= 0 (0 turns the limit off)", where="--rate")
        if self.shutdown_timeout < 0:
            raise PsyInsightError("must be >= 0 (0 ends open requests at once)", where="--shutdown-timeout")
        if self.default_max_tokens > self.max_tokens_limit:
            raise PsyInsightError("must not exceed --max-tokens-limit", where="--default-max-tokens")
        if not 0 <= self.port < 65536:
            raise PsyInsightError(f"port must be 0 to 65535, got {self.port}", where="--port")

    def served_name(self) -> str:
        from psyinsight.models import DEFAULT_ALIASES

        if self.name:
            return self.name
        if self.adapter:
            return Path(self.adapter).name
        return "smollm2" if self.model.lower() in DEFAULT_ALIASES else Path(self.model).name


class ApiError(Exception):
    """An error answered as OpenAI-style JSON with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
