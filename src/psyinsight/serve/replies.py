"""What the server sends back: OpenAI-shaped completions and stream chunks, the counselor's
reply split into reasoning and content as it streams, JSON pulled out of a small model's
prose, and ``iter_sse`` for clients reading such a stream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from fastapi.responses import JSONResponse

from psyinsight.counsel.counselor import CounselorReply
from psyinsight.counsel.engine import Generation
from psyinsight.serve.config import ApiError


# --------------------------------------------------------------------------- JSON mode
def extract_json_object(text: str) -> str | None:
    """The first complete JSON object in ``text`` (small models wrap JSON in prose or fences)."""
    decoder = json.JSONDecoder()
    # A reply cut by max_tokens often misses only its closing characters: try those too.
    for candidate in (text, text + "}", text + '"}', text + "]}", text + '"]}'):
        for match in re.finditer(r"\{", candidate):
            try:
                obj, _ = decoder.raw_decode(candidate[match.start() :])
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return json.dumps(obj, ensure_ascii=False)
    return None


# --------------------------------------------------------------------------- counselor streaming
_HOLD = 24
"""Characters held back while streaming: enough for any marker or speaker label to complete."""


class ReplySplitter:
    """Splits a counselor's streamed output into reasoning and reply deltas as it arrives.

    The reply is what ``psyinsight.generate.parse.parse_output`` makes of the text so far, so a
    streamed reply is the non-streamed one, speaker labels and all: text after the
    "Therapist:" marker, up to a line where the model starts writing the client's turn
    ("Client:", "来访者：", also at the very start). Until a response marker appears the
    text may be a preamble the parser drops, so nothing is sent; output with no marker at
    all is the reply, sent when the stream ends. Text opening with an Observation /
    Reasoning marker goes to ``reasoning_content`` up to the response marker. A short tail
    is held back until it cannot be the start of a marker or label.
    """

    def __init__(self) -> None:
        self.text = ""
        self.sent = {"reasoning": "", "content": ""}

    def _emit(self, final: bool) -> list[tuple[str, str]]:
        from psyinsight.generate.parse import clean_text, first_marker, parse_output

        cleaned = clean_text(self.text)
        hold = 0 if final else _HOLD
        response = first_marker(cleaned, "response")
        first = first_marker(cleaned)
        wanted: dict[str, str] = {"reasoning": "", "content": ""}
        if first is not None and first.start() == 0 and first is not response:  # opens with Observation / Reasoning
            end = response.start() if response is not None else len(cleaned) - hold
            wanted["reasoning"] = cleaned[: max(0, end)].rstrip() if response is not None or final else cleaned[: max(0, end)]
        if response is not None or final:
            reply = parse_output(self.text).response
            wanted["content"] = reply[: max(0, len(reply) - hold)]
        out = []
        for kind in ("reasoning", "content"):
            new, sent = wanted[kind], self.sent[kind]
            if len(new) > len(sent) and new.startswith(sent):  # what was sent is never taken back
                out.append((kind, new[len(sent) :]))
                self.sent[kind] = new
        return out

    def feed(self, piece: str) -> list[tuple[str, str]]:
        self.text += piece
        return self._emit(final=False)

    def close(self) -> list[tuple[str, str]]:
        return self._emit(final=True)


# --------------------------------------------------------------------------- response bodies
def completion_body(
    rid: str, model: str, created: int, message: dict[str, Any], finish: str, usage: dict[str, int], extra: dict[str, Any] | None
) -> JSONResponse:
    """A whole ``chat.completion``; ``extra`` is the counselor's ``psyinsight`` object."""
    body: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
    }
    if extra is not None:
        body["psyinsight"] = extra
    return JSONResponse(body)


def chunk_event(rid: str, model: str, created: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    """One ``chat.completion.chunk`` as an SSE event."""
    body = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        **extra,
    }
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def error_event(exc: BaseException) -> str:
    """An error in a stream whose headers are sent: an OpenAI-style error event (``[DONE]`` follows)."""
    error = exc if isinstance(exc, ApiError) else ApiError(500, f"generation failed: {type(exc).__name__}: {exc}", type="server_error")
    return f"data: {json.dumps(error.body(), ensure_ascii=False)}\n\n"


def usage_of(g: Generation | None) -> dict[str, int]:
    """Token counts; all zero when the model did not run (a crisis reply)."""
    if g is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {"prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens, "total_tokens": g.prompt_tokens + g.completion_tokens}


def thought_of(reply: CounselorReply) -> str | None:
    """Observation and reasoning as one ``reasoning_content`` text."""
    parts = [f"Observation: {reply.observation}" if reply.observation else "", f"Reasoning: {reply.reasoning}" if reply.reasoning else ""]
    text = "\n".join(p for p in parts if p)
    return text or None


def extension_of(reply: CounselorReply) -> dict[str, Any]:
    """The top-level ``psyinsight`` object of a counselor reply."""
    return {
        "mode": "counselor",
        "observation": reply.observation,
        "reasoning": reply.reasoning,
        "flagged": reply.flagged,
        "risk": reply.risk.to_dict() if reply.risk is not None else None,
        "parse_ok": reply.parse_ok,
        "language": reply.language,
        "raw": reply.raw,
    }


# --------------------------------------------------------------------------- reading a stream (clients)
def iter_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse ``data:`` lines of an SSE stream into JSON objects (stops at ``[DONE]``)."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        yield json.loads(payload)
