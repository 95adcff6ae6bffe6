"""``psyinsight chat``: talk to the counselor in a terminal, locally or through a server.

Locally the ``Counselor`` (safety guard + model) runs in this process. With ``--url`` the
chat talks to a running ``psyinsight serve`` in counselor mode through the official
``openai`` client, streaming the reply as it is written. Either way the safety guard runs
here first, on every message: a person in crisis gets the crisis message even when the
server is down or the model fails. A failed or empty model reply is reported and never
stored as a turn; the person's message stays, so the guard keeps reading it.

The loop reads plain lines from stdin, so it works in a terminal, in tmux and with piped
input. Commands: ``/reasoning`` (show or hide the observation and reasoning), ``/lang en|cn``,
``/reset``, ``/help``, ``/quit``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from psyinsight.counsel.counselor import CounselorReply, EmptyReply
from psyinsight.counsel.safety import SafetyGuard, SafetyResult
from psyinsight.data.schema import Language, parse_language
from psyinsight.errors import PsyInsightError
from psyinsight.language import detect_language

HELP = "commands: /reasoning (toggle), /lang en|cn, /reset, /help, /quit"
LABELS = {
    "en": {
        "you": "you",
        "counselor": "counselor",
        "observation": "observation",
        "reasoning": "reasoning",
        "flagged": "[safety] This conversation was flagged. The message below is a fixed crisis message, not model text.",
        "empty": "(the model gave no reply this time and nothing was stored; please say it again or rephrase)",
    },
    "cn": {
        "you": "你",
        "counselor": "咨询师",
        "observation": "观察",
        "reasoning": "推理",
        "flagged": "[安全提示] 本次对话已被标记。以下是固定的危机求助信息，并非模型生成。",
        "empty": "（模型这次没有回复，本轮未保存；请再说一次或换个说法）",
    },
}


@dataclass
class ChatOptions:
    """How the terminal chat behaves."""

    language: str = "en"
    """Language of the labels and the default for the counselor: en or cn."""
    show_reasoning: bool = False
    """Print the counselor's observation and reasoning above each reply."""
    region: str | None = None
    """Crisis hotline region (US, UK, CN, HK, TW, INTL...)."""


class RemoteCounselor:
    """A counselor behind a running ``psyinsight serve`` (OpenAI-compatible), with a local guard in front."""

    def __init__(
        self,
        url: str,
        *,
        model: str = "counselor",
        api_key: str | None = None,
        timeout: float = 600.0,
        max_tokens: int | None = None,
        guard: SafetyGuard | None = None,
    ):
        from openai import OpenAI

        self.guard = guard or SafetyGuard()
        self.url = url.rstrip("/")
        if not self.url.endswith("/v1"):
            self.url += "/v1"
        self.model = model
        self.max_tokens = max_tokens
        self.client = OpenAI(base_url=self.url, api_key=api_key or "not-needed", timeout=timeout, max_retries=1)

    def _extra(self, language: str | None, region: str | None) -> dict[str, Any]:
        return {k: v for k, v in {"language": language, "region": region}.items() if v}

    def reply(
        self,
        history: list[dict[str, str]],
        language: str | None = None,
        *,
        region: str | None = None,
        on_delta: Callable[[str, str], None] | None = None,
    ) -> CounselorReply:
        """The counselor's turn; ``on_delta(kind, text)`` sees the stream ("content" / "reasoning").

        The local guard runs first: on risk the crisis message is answered here, without the server.
        """
        import openai

        risk = self.guard.check_history(history)
        if risk.risk:
            try:
                lang = parse_language(language) if language else detect_language(str(history[-1].get("content") or ""), cjk_share=0)
            except ValueError:  # an unknown code: the message's own script decides, never an error
                lang = detect_language(str(history[-1].get("content") or ""), cjk_share=0)
            message = self.guard.crisis_message(lang, region, category=risk.category)
            return CounselorReply(response=message, flagged=True, risk=risk, language=lang)
        try:
            stream = self.client.chat.completions.create(
                model=self.model,
                messages=history,
                stream=True,
                max_tokens=self.max_tokens,  # type: ignore[arg-type]
                extra_body=self._extra(language, region),
            )
            content, extension = [], {}
            for chunk in stream:
                extra = chunk.model_extra or {}
                if extra.get("error"):
                    raise PsyInsightError(str(extra["error"].get("message")), where=self.url)
                if extra.get("psyinsight"):
                    extension = extra["psyinsight"]
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                thought = (delta.model_extra or {}).get("reasoning_content")
                if thought and on_delta:
                    on_delta("reasoning", thought)
                if delta.content:
                    content.append(delta.content)
                    if on_delta:
                        on_delta("content", delta.content)
        except openai.APIStatusError as exc:
            raise PsyInsightError(f"the server answered {exc.status_code}: {_error_message(exc)}", where=self.url) from None
        except openai.APIConnectionError:
            raise PsyInsightError("cannot reach the server; is `psyinsight serve` running there?", where=self.url) from None
        response = "".join(content).strip()
        if not response:
            raise EmptyReply("the server returned an empty reply", where=self.url)
        risk = extension.get("risk")
        return CounselorReply(
            response=response,
            observation=extension.get("observation"),
            reasoning=extension.get("reasoning"),
            raw=extension.get("raw") or "",
            flagged=bool(extension.get("flagged")),
            risk=SafetyResult(**{k: v for k, v in risk.items() if k in SafetyResult.__dataclass_fields__}) if isinstance(risk, dict) else None,
            parse_ok=bool(extension.get("parse_ok", True)),
            language=parse_language(extension.get("language") or language or "en"),
        )


def _error_message(exc: Any) -> str:
    try:
        return str(exc.response.json()["error"]["message"])
    except Exception:
        return str(exc)


def run_chat(
    counselor: Any, options: ChatOptions | None = None, *, stdin: IO[str] | None = None, stdout: IO[str] | None = None
) -> list[dict[str, Any]]:
    """The read-reply loop; returns the conversation (with each reply's flag) at the end."""
    options = options or ChatOptions()
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    lang: Language = parse_language(options.language)
    chosen: Language | None = None  # set by /lang; otherwise each reply follows its message's language
    show = options.show_reasoning
    history: list[dict[str, str]] = []
    log: list[dict[str, Any]] = []

    def say(text: str = "", end: str = "\n") -> None:
        stdout.write(text + end)
        stdout.flush()

    say(f"psyinsight chat ({HELP})")
    while True:
        say(f"{LABELS[lang]['you']}> ", end="")
        line = stdin.readline()
        if not line:
            say()
            break
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            cmd, _, arg = text.partition(" ")
            if cmd in ("/quit", "/exit", "/q"):
                break
            if cmd == "/reset":
                history.clear()
                say("(conversation cleared)")
            elif cmd == "/reasoning":
                show = not show
                say(f"(reasoning {'shown' if show else 'hidden'})")
            elif cmd == "/lang":
                try:
                    lang = chosen = parse_language(arg or "")
                    say(f"(language: {lang})")
                except ValueError as exc:
                    say(f"({exc})")
            else:
                say(HELP)
            continue
        history.append({"role": "user", "content": text})
        labels = LABELS[lang]
        streamed = {"content": False}

        def on_delta(kind: str, delta: str) -> None:
            if kind == "content":
                if not streamed["content"]:
                    say(f"{labels['counselor']}> ", end="")
                streamed["content"] = True
                say(delta, end="")

        try:
            if isinstance(counselor, RemoteCounselor):
                reply = counselor.reply(list(history), chosen, region=options.region, on_delta=None if show else on_delta)
            else:
                reply = counselor.reply(list(history), language=chosen, region=options.region)
        except EmptyReply:
            say(labels["empty"])
            continue
        except Exception as exc:  # the model or the server failed: say so, store nothing, keep going
            message = str(exc) if isinstance(exc, PsyInsightError) else f"the model failed: {type(exc).__name__}: {exc}"
            say(f"error: {message}")
            continue
        if streamed["content"]:
            say()
        labels = LABELS[reply.language]
        if reply.flagged:
            say(labels["flagged"])
        if show and not reply.flagged:
            say(f"  ({labels['observation']}: {reply.observation or '-'})")
            say(f"  ({labels['reasoning']}: {reply.reasoning or '-'})")
        if not streamed["content"]:
            say(f"{labels['counselor']}> {reply.response}")
        history.append({"role": "assistant", "content": reply.response})
        log.append({"user": text, "reply": reply.response, "flagged": reply.flagged})
    return log
