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

from psyinsight.counselor import CounselorReply, Generation


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
_THOUGHT_WORDS = ("observation", "reasoning", "strategy", "观察", "推理", "策略")
_RESPONSE_MARK = re.compile(r"(?:^|\n)[ \t]*(?:\*\*)?(?:therapist|counsel+or|response|咨询师|心理咨询师|治疗师)(?:\*\*)?[ \t]*[:：][ \t]*", re.I)
_CLIENT_MARK = re.compile(r"\n[ \t]*(?:\*\*)?(?:client|seeker|patient|来访者|求助者)(?:\*\*)?[ \t]*[:：]", re.I)
_HOLD = 24


class ReplySplitter:
    """Splits a counselor's streamed output into reasoning and reply deltas as it arrives.

    Follows ``psyinsight.parse``: text opening with Observation / Reasoning goes to
    ``reasoning_content`` up to the "Therapist:" marker; text after that marker goes to
    ``content``, up to a line where the model starts writing the client's turn. Other text
    before a "Therapist:" marker is a preamble the parser drops (it stays in ``raw``);
    output with no marker at all is the reply, sent when the stream ends. A short tail is
    held back until it cannot be the start of a marker.
    """

    def __init__(self) -> None:
        self.text = ""
        self.mode: str | None = None  # None (undecided), "reasoning", "preamble", "content", "done"
        self.sent = {"reasoning": 0, "content": 0}
        self.content_start = 0

    def _decide(self) -> None:
        head = self.text.lstrip().lstrip("*").lower()
        mark = _RESPONSE_MARK.match(self.text)
        if mark:
            self.mode, self.content_start = "content", mark.end()
        elif any(head.startswith(w) for w in _THOUGHT_WORDS):
            self.mode = "reasoning"
        elif len(head) >= 16 or not any(w.startswith(head[: len(w)]) for w in _THOUGHT_WORDS + ("therapist", "counselor", "咨询师")):
            self.mode = "preamble"

    def _to_content(self, mark: re.Match[str]) -> None:
        self.mode, self.content_start = "content", mark.end()
        self.sent["content"] = mark.end()

    def _emit(self, final: bool) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.mode is None:
            self._decide()
        if self.mode == "preamble" or (self.mode is None and final):
            mark = _RESPONSE_MARK.search(self.text)
            if mark:
                self._to_content(mark)
            elif final:  # no marker at all: the whole text is the reply
                self.mode, self.content_start = "content", 0
        if self.mode == "reasoning":
            mark = _RESPONSE_MARK.search(self.text)
            end = mark.start() if mark else (len(self.text) if final else len(self.text) - _HOLD)
            if end > self.sent["reasoning"]:
                out.append(("reasoning", self.text[self.sent["reasoning"] : end]))
                self.sent["reasoning"] = end
            if mark:
                self._to_content(mark)
        if self.mode == "content":
            start = max(self.sent["content"], self.content_start)
            stop = _CLIENT_MARK.search(self.text, self.content_start)
            end = stop.start() if stop else (len(self.text) if final else len(self.text) - _HOLD)
            if end > start:
                out.append(("content", self.text[start:end]))
                self.sent["content"] = end
            if stop:
                self.mode = "done"
        return out

    def feed(self, piece: str) -> list[tuple[str, str]]:
        self.text += piece
        return self._emit(final=False)

    def close(self) -> list[tuple[str, str]]:
        return self._emit(final=True) if self.mode != "done" else []


# --------------------------------------------------------------------------- response bodies
def completion_body(rid: str, model: str, created: int, message: dict[str, Any], finish: str, usage: dict[str, int],
                    extra: dict[str, Any] | None) -> JSONResponse:  # fmt: skip
    """A whole ``chat.completion``; ``extra`` is the counselor's ``psyinsight`` object."""
    body: dict[str, Any] = {
        "id": rid, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
    }  # fmt: skip
    if extra is not None:
        body["psyinsight"] = extra
    return JSONResponse(body)


def chunk_event(rid: str, model: str, created: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    """One ``chat.completion.chunk`` as an SSE event."""
    body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}  # fmt: skip
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


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
