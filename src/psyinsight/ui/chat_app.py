"""The counselor chat web app (Gradio Blocks).

A person talks to the counselor model; a "show reasoning" checkbox reveals, above each
counselor reply, what the model observed in the client's message and why it answered as it
did (the Psy-Insight chain of thought). The safety notice is always on the page; a reply
the safety layer flagged as a crisis is shown as a distinct crisis message and raises a
banner. English and Chinese: the selector switches the page's text and the language the
counselor answers in. Replies stream in as the model writes them.

The app takes any object with ``.reply(history, language=...)`` returning an object with
``response``, ``observation``, ``reasoning``, ``flagged`` and ``risk``: a local
``psyinsight.counsel.counselor.Counselor`` (streamed through its engine, safety check first), a
``psyinsight.counsel.chat.RemoteCounselor`` for a running ``psyinsight serve`` (streamed through
``on_delta``), or any other (answered in one piece).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from psyinsight.errors import PsyInsightError

log = logging.getLogger(__name__)


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
        "empty_reply": "(The model returned no text.)",
        "no_reasoning": "The model gave no observation or reasoning for this reply.",
        "safety_reasoning": "The safety layer detected a risk{what} in the conversation: the reply is its fixed crisis message, not model text.",
        "crisis_banner": "This conversation was flagged by the safety layer: the reply below is a fixed crisis message, not model text. Please contact a person now: the lines are listed in the message.",
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
        "empty_reply": "（模型没有返回任何文字。）",
        "no_reasoning": "模型没有为这条回复给出观察或推理。",
        "safety_reasoning": "安全模块在对话中检测到风险{what}：这条回复是它的固定危机提示，不是模型生成的文字。",
        "crisis_banner": "安全模块标记了本次对话：下面的回复是固定的危机提示，不是模型生成的文字。请立即联系真人求助，热线见提示内容。",
        "empty": "请先输入消息。",
        "error": "咨询师无法回答",
    },
}

NOTICE: dict[str, str] = {
    "en": (
        "⚠️ **Safety notice.** This is a research demo of a language model, not a counselor and not a crisis service; "
        "its replies can be wrong. Do not use it for medical or emergency help. If you are in danger or thinking of "
        "harming yourself or someone else, call {emergency} now or reach a crisis line: {lines}."
    ),
    "cn": (
        "⚠️ **安全提示。** 这是一个语言模型的研究演示，不是心理咨询师，也不是危机干预服务；它的回复可能有误。"
        "请勿用于医疗或紧急求助。如果你有危险，或有伤害自己或他人的想法，请立即拨打 {emergency}，或联系危机热线：{lines}。"
    ),
}

LANGUAGE_CHOICES = [("English", "en"), ("中文", "cn")]

CSS = """
#safety-notice { border-left: 4px solid #d97706; padding-left: 0.75em; }
#crisis-banner { border: 2px solid #b91c1c; background: #fef2f2; color: #7f1d1d; padding: 0.5em 0.75em; border-radius: 6px; }
"""


def safety_notice(language: str, *, region: str | None = None, resources_path: str | Path | None = None) -> str:
    """The always-visible notice: what this app is not, and the region's crisis lines.

    The lines come from the safety layer's resources file (``psyinsight.counsel.safety``), the
    same file its crisis replies are filled from, so the page and the replies agree.
    """
    from psyinsight.counsel.safety.resources import load_resources

    lang = "cn" if language == "cn" else "en"
    res = load_resources(resources_path)
    reg = res.region(region, lang)
    sep, join = ("：", "；") if lang == "cn" else (": ", "; ")
    lines = join.join(f"{line.name}{sep}{line.contact}" for line in reg.lines[:3])
    return NOTICE[lang].format(emergency=reg.emergency, lines=lines)


@dataclass
class ChatConfig:
    """What the chat page starts with."""

    language: str = "en"
    """Initial language: en or cn (zh accepted)."""
    show_reasoning: bool = False
    """Start with the reasoning visible."""
    title: str | None = None
    """Page title; defaults to the language's title."""
    region: str | None = None
    """Crisis-line region for the notice (US, UK, CN, INTL...); default per language."""
    crisis_resources: str | None = None
    """A crisis resources YAML file (default: the bundled one or $PSYINSIGHT_CRISIS_RESOURCES)."""


def _risk_dict(risk: Any) -> dict[str, Any] | None:
    if risk is None:
        return None
    if hasattr(risk, "to_dict"):
        return dict(risk.to_dict())
    if isinstance(risk, dict):
        return dict(risk)
    return {"category": str(risk)}


def _reply_fields(reply: Any, language: str = "en") -> dict[str, Any]:
    # A reply the parser could not split keeps the raw text, and an empty one says so: the
    # conversation sent back to the counselor never holds an empty turn.
    content = str(getattr(reply, "response", "") or "").strip() or str(getattr(reply, "raw", "") or "").strip()
    return {
        "content": content or TEXT[language]["empty_reply"],
        "observation": getattr(reply, "observation", None) or None,
        "reasoning": getattr(reply, "reasoning", None) or None,
        "flagged": bool(getattr(reply, "flagged", False)),
        "risk": _risk_dict(getattr(reply, "risk", None)),
    }


def _thought(turn: dict[str, Any], t: dict[str, str]) -> str:
    """The text of the reasoning box: the model's chain of thought, or why there is none."""
    if turn.get("flagged"):
        risk = turn.get("risk") or {}
        what = ", ".join(str(risk[k]) for k in ("category", "source") if risk.get(k))
        return t["safety_reasoning"].format(what=f" ({what})" if what else "")
    parts = []
    if turn.get("observation"):
        parts.append(f"**{t['observation']}:** {turn['observation']}")
    if turn.get("reasoning"):
        parts.append(f"**{t['reasoning']}:** {turn['reasoning']}")
    return "\n\n".join(parts) or ("*…*" if turn.get("streaming") else f"*{t['no_reasoning']}*")


def render(turns: list[dict[str, Any]], show_reasoning: bool, language: str) -> list[dict[str, Any]]:
    """Chatbot messages for the stored turns.

    The reasoning is a separate "thought" message (Gradio's ``metadata.title``) before the
    reply it explains, so hiding it never changes the reply itself. Every counselor reply
    gets one when reasoning is shown, saying so when the model gave none; for a crisis
    reply it says what the safety layer detected. A crisis reply opens with a marked heading.
    """
    t = TEXT[language]
    out: list[dict[str, Any]] = []
    for turn in turns:
        if turn["role"] == "user":
            out.append({"role": "user", "content": turn["content"]})
            continue
        if show_reasoning:
            out.append({"role": "assistant", "content": _thought(turn, t), "metadata": {"title": t["thought"]}})
        content = turn["content"]
        if turn.get("flagged"):
            content = f"🚨 **{t['crisis']}**\n\n{content}"
        out.append({"role": "assistant", "content": content})
    return out


TurnUpdate = tuple[list[dict[str, Any]], str | None, str | None, bool]
"""(history, message to put back in the box, error text, done)."""


def stream_turn(counselor: Replier, history: list[dict[str, Any]], language: str) -> Iterator[TurnUpdate]:
    """The counselor's reply to a history ending with the person's message, as it is written.

    Yields the history with the growing reply (``done`` False), then the final one. A
    local ``Counselor`` streams through its engine with the steps of ``Counselor.reply``
    (validate, safety check before any model, the fixed crisis reply, prompt, generate,
    parse); a counselor whose ``reply`` takes ``on_delta`` (``RemoteCounselor``) streams
    through that; any other answers in one piece. On failure the last update takes the
    person's message off the history and hands it back with the error, so the page stays
    usable and a retry does not send the message twice.
    """
    if not history or history[-1]["role"] != "user":
        yield history, None, None, True
        return
    plain = [{"role": h["role"], "content": h["content"]} for h in history]
    if _streams_locally(counselor):
        parts = _stream_local(counselor, plain, language)
    elif "on_delta" in inspect.signature(counselor.reply).parameters:
        parts = _stream_remote(counselor, plain, language)
    else:
        parts = _one_piece(counselor, plain, language)
    final: Any = None
    try:
        with contextlib.closing(parts):
            for kind, value in parts:
                if kind == "partial":
                    yield [*history, value], None, None, False
                else:
                    final = value
    except Exception as exc:  # keep the page usable whatever the model does
        log.exception("the counselor failed to reply")
        yield history[:-1], history[-1]["content"], str(exc), True
        return
    yield [*history, {"role": "assistant", **_reply_fields(final, language)}], None, None, True


def take_turn(counselor: Replier, history: list[dict[str, Any]], language: str) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """The final state of ``stream_turn``: (history, message to put back, error text)."""
    last: TurnUpdate = (history, None, None, True)
    for last in stream_turn(counselor, history, language):  # noqa: B007  (the loop keeps the last update)
        pass
    return last[0], last[1], last[2]


def _streams_locally(counselor: Any) -> bool:
    needed = ("resolve_language", "crisis_language", "check", "screen", "crisis_reply", "prompt", "finish", "params", "task")
    return all(hasattr(counselor, n) for n in needed) and hasattr(getattr(counselor, "engine", None), "stream")


def _partial(content: str, observation: str | None, reasoning: str | None) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": content.strip() or "…",
        "observation": observation or None,
        "reasoning": reasoning or None,
        "flagged": False,
        "risk": None,
        "streaming": True,
    }


def _stream_local(counselor: Any, plain: list[dict[str, str]], language: str) -> Iterator[tuple[str, Any]]:
    """("partial", turn) while the model writes, then ("final", CounselorReply).

    The guard runs first, on the history as given; the model's text is shown sentence by
    sentence once screened, and an unsafe sentence ends the turn with the crisis message.
    """
    from psyinsight.counsel.counselor import EmptyReply, validate_history
    from psyinsight.counsel.engine import Generation
    from psyinsight.counsel.safety.reply_screen import StreamScreen
    from psyinsight.generate.parse import expected_fields, parse_output

    risk = counselor.check(plain)  # before anything else
    if risk.risk:
        yield "final", counselor.crisis_reply(risk, counselor.crisis_language(plain, language))
        return
    history = validate_history(plain)
    lang = counselor.resolve_language(history, language)
    prompt = counselor.prompt(history, lang)
    engine, params, expect = counselor.engine, counselor.params, expected_fields(counselor.task)
    screen = StreamScreen(after_risk=counselor.guard.after_risk(risk))
    text = ""
    with contextlib.closing(iter(engine.stream(prompt, params))) as pieces:  # closing cancels the generation
        for piece in pieces:
            text += screen.feed(piece)
            if screen.verdict is not None:
                yield "final", counselor.crisis_reply(counselor.screen(screen.text, risk), lang)
                return
            parsed = parse_output(text, lang, expect=expect)
            yield "partial", _partial(parsed.response, parsed.observation, parsed.reasoning)
    text += screen.close()
    count = getattr(engine, "count_tokens", None)
    completion = min(count(text), params.max_new_tokens) if count else 0
    prompt_tokens = engine.count_prompt_tokens(prompt) if hasattr(engine, "count_prompt_tokens") else 0
    finish = "length" if completion >= params.max_new_tokens else "stop"
    reply = counselor.finish(Generation(screen.text.strip(), prompt_tokens, completion, finish), lang, risk)
    if not reply.flagged and not reply.response.strip():
        raise EmptyReply("the model returned an empty reply", where="model")
    yield "final", reply


def _one_piece(counselor: Replier, plain: list[dict[str, str]], language: str) -> Iterator[tuple[str, Any]]:
    yield "final", counselor.reply(plain, language=language)


def _stream_remote(counselor: Any, plain: list[dict[str, str]], language: str) -> Iterator[tuple[str, Any]]:
    """Streams a ``reply(..., on_delta=...)`` running in a thread."""
    pieces: queue.Queue[tuple[str, str] | None] = queue.Queue()
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["reply"] = counselor.reply(plain, language=language, on_delta=lambda kind, delta: pieces.put((kind, delta)))
        except Exception as exc:  # handed to the caller below
            result["error"] = exc
        finally:
            pieces.put(None)

    threading.Thread(target=run, name="psyinsight-ui-reply", daemon=True).start()
    content = thought = ""
    while (item := pieces.get()) is not None:
        kind, delta = item
        if kind == "reasoning":
            thought += delta
        else:
            content += delta
        yield "partial", _partial(content, None, thought)
    if "error" in result:
        raise result["error"]
    yield "final", result["reply"]


def _banner(turns: list[dict[str, Any]], language: str) -> tuple[str, bool]:
    if any(t["role"] == "assistant" and t.get("flagged") for t in turns):
        return f"**🚨 {TEXT[language]['crisis']}.** {TEXT[language]['crisis_banner']}", True
    return "", False


def build_chat_app(
    counselor: Replier,
    config: ChatConfig | None = None,
    *,
    notice: Callable[[str], str] | None = None,
) -> Any:
    """The chat page as a ``gr.Blocks``; serve it with ``serving.launch(app, css=CSS)``.

    ``notice(language)`` gives the safety notice text (default: ``safety_notice`` with the
    config's region and resources file); it is read once per language, up front, so a bad
    resources file fails here and not in front of a user.
    """
    from psyinsight.data.schema import parse_language

    config = config or ChatConfig()
    try:
        lang0 = parse_language(config.language)
    except ValueError as exc:
        raise PsyInsightError(str(exc), where="language") from None
    t0 = TEXT[lang0]
    if notice is None:
        notices = {lang: safety_notice(lang, region=config.region, resources_path=config.crisis_resources) for lang in TEXT}
    else:
        notices = {lang: notice(lang) for lang in TEXT}

    import gradio as gr  # after the settings are checked: a bad setting fails fast

    with gr.Blocks(title=config.title or t0["title"], analytics_enabled=False) as app:
        turns = gr.State([])
        heading = gr.Markdown(f"# {config.title or t0['title']}\n\n{t0['intro']}", elem_id="chat-heading")
        notice_box = gr.Markdown(notices[lang0], elem_id="safety-notice")
        banner = gr.Markdown("", visible=False, elem_id="crisis-banner")
        with gr.Row():
            language = gr.Radio(LANGUAGE_CHOICES, value=lang0, label=t0["language"], elem_id="language", scale=2)
            show = gr.Checkbox(value=config.show_reasoning, label=t0["show_reasoning"], elem_id="show-reasoning", scale=1)
        chat = gr.Chatbot(value=[], label=t0["chat"], elem_id="chat", height=460, feedback_options=None, buttons=["copy"])
        with gr.Row():
            box = gr.Textbox(placeholder=t0["placeholder"], show_label=False, elem_id="message", scale=6, lines=1, max_lines=6)
            send = gr.Button(t0["send"], variant="primary", elem_id="send", scale=1)
        clear = gr.Button(t0["clear"], elem_id="clear", size="sm")

        def add_user(message: str, history: list[dict[str, Any]], show_reasoning: bool, lang: str):
            """Step 1: show the person's message at once; lock the box until the reply is in."""
            text = (message or "").strip()
            if not text:
                gr.Warning(TEXT[lang]["empty"])
                return gr.update(), history, render(history, show_reasoning, lang), gr.update()
            history = [*history, {"role": "user", "content": text}]
            return gr.update(value="", interactive=False), history, render(history, show_reasoning, lang), gr.update(interactive=False)

        def answer(history: list[dict[str, Any]], show_reasoning: bool, lang: str):
            """Step 2: the counselor's reply, shown as it is written; the box unlocks at the end."""
            for now, restored, error, done in stream_turn(counselor, history, lang):
                if error:
                    gr.Warning(f"{TEXT[lang]['error']}: {error}")
                body, visible = _banner(now, lang)
                if not done:
                    yield gr.update(), now, render(now, show_reasoning, lang), gr.update(value=body, visible=visible), gr.update()
                    continue
                unlocked = gr.update(value=restored, interactive=True) if restored is not None else gr.update(interactive=True)
                yield unlocked, now, render(now, show_reasoning, lang), gr.update(value=body, visible=visible), gr.update(interactive=True)

        def rerender(history: list[dict[str, Any]], show_reasoning: bool, lang: str):
            return render(history, show_reasoning, lang)

        def switch(lang: str, history: list[dict[str, Any]], show_reasoning: bool):
            t = TEXT[lang]
            body, visible = _banner(history, lang)
            return (
                gr.update(value=f"# {config.title or t['title']}\n\n{t['intro']}"),
                gr.update(value=notices[lang]),
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

        for trigger in (box.submit, send.click):
            # The last step renders again with the checkbox as it is now: a reader may tick
            # "show reasoning" while the reply is still being written.
            trigger(add_user, [box, turns, show, language], [box, turns, chat, send], queue=False).then(
                answer, [turns, show, language], [box, turns, chat, banner, send], concurrency_limit=1
            ).then(rerender, [turns, show, language], [chat], queue=False)
        show.change(rerender, [turns, show, language], [chat])
        language.change(switch, [language, turns, show], [heading, notice_box, banner, language, show, chat, box, send, clear])
        clear.click(reset, None, [turns, chat, banner])
        chat.clear(reset, None, [turns, chat, banner])  # the chatbot's own trash button
    return app
