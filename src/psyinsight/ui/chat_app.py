"""The counselor chat web app (Gradio Blocks).

A person talks to the counselor model; a "show reasoning" checkbox reveals, above each
counselor reply, what the model observed in the client's message and why it answered as it
did (the Psy-Insight chain of thought). The safety notice is always on the page; a reply
the safety layer flagged as a crisis is shown as a distinct crisis message and raises a
banner with the crisis resources. English and Chinese: the selector switches the page's
text and the language the counselor answers in.

The app takes any object with ``.reply(history, language=...)`` returning an object with
``response``, ``observation``, ``reasoning``, ``flagged`` (``psyinsight.counselor.Counselor``
in production, a fake in tests), so it is built and tested without a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from psyinsight.errors import PsyInsightError


class Replier(Protocol):
    def reply(self, history: list[dict[str, str]], language: str = ...) -> Any: ...


TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Psy-Insight counselor",
        "intro": "Talk to a counseling model trained on Psy-Insight. Tick *Show reasoning* to see what it noticed and why it answered.",
        "language": "Language",
        "show_reasoning": "Show reasoning",
        "placeholder": "Type your message and press Enter",
        "send": "Send",
        "clear": "New conversation",
        "chat": "Conversation",
        "observation": "Observation",
        "reasoning": "Reasoning",
        "thought": "Counselor's observation and reasoning",
        "crisis": "Crisis support",
        "empty": "Write a message first.",
        "error": "The counselor could not answer",
    },
    "cn": {
        "title": "Psy-Insight 心理咨询助手",
        "intro": "与基于 Psy-Insight 训练的心理咨询模型对话。勾选“显示推理”可查看模型观察到了什么以及为什么这样回答。",
        "language": "语言",
        "show_reasoning": "显示推理",
        "placeholder": "输入消息后按回车",
        "send": "发送",
        "clear": "新对话",
        "chat": "对话",
        "observation": "观察",
        "reasoning": "推理",
        "thought": "咨询师的观察与推理",
        "crisis": "危机支持",
        "empty": "请先输入消息。",
        "error": "咨询师无法回答",
    },
}

LANGUAGE_CHOICES = [("English", "en"), ("中文", "cn")]

CSS = """
#safety-notice { border-left: 4px solid #d97706; padding-left: 0.75em; }
#crisis-banner { border: 2px solid #b91c1c; background: #fef2f2; color: #7f1d1d; padding: 0.5em 0.75em; border-radius: 6px; }
"""


def default_notice(language: str) -> str:
    """The safety layer's notice for this language (``psyinsight.safety``)."""
    from psyinsight import safety

    return safety.safety_notice(language)


def crisis_resources(language: str) -> str:
    """The crisis message shown in the banner when a reply is flagged."""
    from psyinsight import safety

    return safety.crisis_message(language)


@dataclass
class ChatConfig:
    """What the chat page starts with."""

    language: str = "en"
    """Initial language: en or cn (zh accepted)."""
    show_reasoning: bool = False
    """Start with the reasoning visible."""
    title: str | None = None
    """Page title; defaults to the language's title."""


def _reply_fields(reply: Any) -> dict[str, Any]:
    return {
        "content": str(getattr(reply, "response", "") or ""),
        "observation": getattr(reply, "observation", None) or None,
        "reasoning": getattr(reply, "reasoning", None) or None,
        "flagged": bool(getattr(reply, "flagged", False)),
        "risk": getattr(reply, "risk", None),
    }


def render(turns: list[dict[str, Any]], show_reasoning: bool, language: str) -> list[dict[str, Any]]:
    """Chatbot messages for the stored turns.

    The reasoning is a separate "thought" message (Gradio's ``metadata.title``) before the
    reply it explains, so hiding it never changes the reply itself. A crisis reply opens
    with a marked heading.
    """
    t = TEXT[language]
    out: list[dict[str, Any]] = []
    for turn in turns:
        if turn["role"] == "user":
            out.append({"role": "user", "content": turn["content"]})
            continue
        if show_reasoning and (turn.get("observation") or turn.get("reasoning")):
            parts = []
            if turn.get("observation"):
                parts.append(f"**{t['observation']}:** {turn['observation']}")
            if turn.get("reasoning"):
                parts.append(f"**{t['reasoning']}:** {turn['reasoning']}")
            out.append({"role": "assistant", "content": "\n\n".join(parts), "metadata": {"title": t["thought"]}})
        content = turn["content"]
        if turn.get("flagged"):
            content = f"🚨 **{t['crisis']}**\n\n{content}"
        out.append({"role": "assistant", "content": content})
    return out


def _banner(turns: list[dict[str, Any]], language: str, resources: Callable[[str], str]) -> tuple[str, bool]:
    if turns and turns[-1]["role"] == "assistant" and turns[-1].get("flagged"):
        return f"### 🚨 {TEXT[language]['crisis']}\n\n{resources(language)}", True
    return "", False


def build_chat_app(
    counselor: Replier,
    config: ChatConfig | None = None,
    *,
    notice: Callable[[str], str] = default_notice,
    resources: Callable[[str], str] = crisis_resources,
) -> Any:
    """The chat page as a ``gr.Blocks``; call ``.launch(css=CSS, ...)`` (or ``serve``) on it."""
    import gradio as gr

    from psyinsight.schema import parse_language

    config = config or ChatConfig()
    try:
        lang0 = parse_language(config.language)
    except ValueError as exc:
        raise PsyInsightError(str(exc), where="language") from None
    t0 = TEXT[lang0]

    with gr.Blocks(title=config.title or t0["title"], analytics_enabled=False) as app:
        turns = gr.State([])
        heading = gr.Markdown(f"# {config.title or t0['title']}\n\n{t0['intro']}", elem_id="chat-heading")
        notice_box = gr.Markdown(notice(lang0), elem_id="safety-notice")
        banner = gr.Markdown("", visible=False, elem_id="crisis-banner")
        with gr.Row():
            language = gr.Radio(LANGUAGE_CHOICES, value=lang0, label=t0["language"], elem_id="language", scale=2)
            show = gr.Checkbox(value=config.show_reasoning, label=t0["show_reasoning"], elem_id="show-reasoning", scale=1)
        chat = gr.Chatbot(value=[], label=t0["chat"], elem_id="chat", height=460, feedback_options=None, buttons=["copy"])
        with gr.Row():
            box = gr.Textbox(placeholder=t0["placeholder"], show_label=False, elem_id="message", scale=6, lines=1, max_lines=6)
            send = gr.Button(t0["send"], variant="primary", elem_id="send", scale=1)
        clear = gr.Button(t0["clear"], elem_id="clear", size="sm")

        def respond(message: str, history: list[dict[str, Any]], show_reasoning: bool, lang: str):
            text = (message or "").strip()
            if not text:
                gr.Warning(TEXT[lang]["empty"])
                body, visible = _banner(history, lang, resources)
                return "", history, render(history, show_reasoning, lang), gr.update(value=body, visible=visible)
            history = [*history, {"role": "user", "content": text}]
            plain = [{"role": h["role"], "content": h["content"]} for h in history]
            try:
                reply = counselor.reply(plain, language=lang)
            except PsyInsightError as exc:
                raise gr.Error(f"{TEXT[lang]['error']}: {exc}") from None
            history = [*history, {"role": "assistant", **_reply_fields(reply)}]
            body, visible = _banner(history, lang, resources)
            return "", history, render(history, show_reasoning, lang), gr.update(value=body, visible=visible)

        def rerender(history: list[dict[str, Any]], show_reasoning: bool, lang: str):
            return render(history, show_reasoning, lang)

        def switch(lang: str, history: list[dict[str, Any]], show_reasoning: bool):
            t = TEXT[lang]
            body, visible = _banner(history, lang, resources)
            return (
                gr.update(value=f"# {config.title or t['title']}\n\n{t['intro']}"),
                gr.update(value=notice(lang)),
                gr.update(value=body, visible=visible),
                gr.update(label=t["language"]),
                gr.update(label=t["show_reasoning"]),
                gr.update(label=t["chat"], value=render(history, show_reasoning, lang)),
                gr.update(placeholder=t["placeholder"]),
                gr.update(value=t["send"]),
                gr.update(value=t["clear"]),
            )

        def reset():
            return [], [], gr.update(value="", visible=False)

        inputs = [box, turns, show, language]
        outputs = [box, turns, chat, banner]
        box.submit(respond, inputs, outputs, concurrency_limit=1)
        send.click(respond, inputs, outputs, concurrency_limit=1)
        show.change(rerender, [turns, show, language], [chat])
        language.change(switch, [language, turns, show], [heading, notice_box, banner, language, show, chat, box, send, clear])
        clear.click(reset, None, [turns, chat, banner])
        chat.clear(reset, None, [turns, chat, banner])  # the chatbot's own trash button
    return app
