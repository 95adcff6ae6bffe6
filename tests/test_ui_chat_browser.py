"""The chat app in headless Chromium: load, send, see the reply, toggle the reasoning, crisis, Chinese."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser.chrome import chrome, free_port, screenshot, serve_command, wait_for

pytestmark = pytest.mark.browser

THOUGHT_EN = "Counselor's observation and reasoning"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chrome() as driver:
        yield driver


@pytest.fixture(scope="module")
def chat_site(browser: Any) -> Iterator[Any]:
    """`psyinsight ui chat` served once for the module: the real counselor (the embedded default
    model behind the safety layer, short replies).

    One torch thread: on a shared 2-core machine that is several times faster than two.
    """
    port = free_port()
    args = ["ui", "chat", "--language", "en", "--region", "US", "--max-new-tokens", "24", "--threads", "1", "--port", str(port)]
    with serve_command(args, port, timeout=240) as url:
        browser.get(url)
        yield browser


def el(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def bubbles(driver: Any, role: str) -> list[str]:
    """Texts of the user or bot messages in the chat, in order."""
    from selenium.webdriver.common.by import By

    return [b.text for b in driver.find_elements(By.CSS_SELECTOR, f"#chat [data-testid='{role}']")]


def send(driver: Any, text: str) -> None:
    box = el(driver, "#message textarea")
    box.clear()
    box.send_keys(text)
    el(driver, "#send").click()


def replied(driver: Any) -> bool:
    """The reply is complete: the message box unlocks when the counselor has finished."""
    return el(driver, "#message textarea").is_enabled()


def set_reasoning(driver: Any, on: bool) -> None:
    box = el(driver, "#show-reasoning input")
    if box.is_selected() != on:
        box.click()
    wait_for(lambda: box.is_selected() == on, what="the reasoning checkbox")


def chat_text(driver: Any) -> str:
    return el(driver, "#chat").text


def test_send_a_message_see_the_reply_and_toggle_the_reasoning(chat_site: Any) -> None:
    d = chat_site
    wait_for(lambda: el(d, "#message textarea"), what="the message box")
    notice = el(d, "#safety-notice").text
    assert "Safety notice" in notice and "988" in notice and "911" in notice
    assert not el(d, "#show-reasoning input").is_selected()

    # A plainly ordinary message (the safety classifier scores it low), so the model answers.
    send(d, "I argued with my sister yesterday and I feel bad about it.")
    wait_for(lambda: "argued with my sister" in chat_text(d), what="the message shown at once")
    wait_for(lambda: len(bubbles(d, "bot")) == 1 and replied(d), timeout=120, what="the counselor's reply")
    assert "argued with my sister" in bubbles(d, "user")[0]
    reply = bubbles(d, "bot")[0]
    assert reply.strip() and "Crisis support" not in reply, "an ordinary message must reach the model, not the crisis reply"
    assert THOUGHT_EN not in chat_text(d), "reasoning is hidden by default"
    assert el(d, "#message textarea").get_attribute("value") == "", "the box is cleared after sending"

    set_reasoning(d, True)
    markers = ("Observation:", "Reasoning:", "gave no observation or reasoning")
    text = wait_for(lambda: THOUGHT_EN in (t := chat_text(d)) and any(m in t for m in markers) and t, what="the reasoning box and its content")
    assert reply.strip() in text, "the reply itself is unchanged"
    screenshot(d, "chat_reasoning_shown")

    set_reasoning(d, False)
    wait_for(lambda: THOUGHT_EN not in chat_text(d), what="the reasoning box to hide")
    assert reply.strip() in chat_text(d)
    screenshot(d, "chat_reasoning_hidden")


def test_a_crisis_message_gets_the_crisis_reply_and_banner(chat_site: Any) -> None:
    d = chat_site
    el(d, "#clear").click()
    wait_for(lambda: not bubbles(d, "bot"), what="a new conversation")
    send(d, "I want to kill myself tonight, I have the pills ready.")
    wait_for(lambda: len(bubbles(d, "bot")) == 1 and replied(d), timeout=60, what="the crisis reply")
    reply = bubbles(d, "bot")[0]
    assert "Crisis support" in reply and "988" in reply, "the fixed crisis message with the region's lines"
    banner = wait_for(lambda: el(d, "#crisis-banner"), what="the crisis banner")
    assert banner.is_displayed() and "flagged by the safety layer" in banner.text
    set_reasoning(d, True)
    wait_for(lambda: "safety layer detected a risk (suicide" in chat_text(d), what="the safety explanation")
    screenshot(d, "chat_crisis")
    set_reasoning(d, False)
    el(d, "#clear").click()
    wait_for(lambda: not bubbles(d, "bot"), what="a new conversation")
    from selenium.webdriver.common.by import By

    assert not [b for b in d.find_elements(By.ID, "crisis-banner") if b.is_displayed()], "a new conversation drops the banner"


def test_chinese_switches_the_page_and_the_replies(chat_site: Any) -> None:
    from selenium.webdriver.common.by import By

    d = chat_site
    option = d.find_element(By.CSS_SELECTOR, "#language input[type='radio'][value='cn']")
    option.find_element(By.XPATH, "./ancestor::label[1]").click()
    wait_for(lambda: "安全提示" in el(d, "#safety-notice").text, what="the Chinese notice")
    assert "12356" in el(d, "#safety-notice").text or "988" in el(d, "#safety-notice").text
    assert "显示推理" in el(d, "#show-reasoning").text and el(d, "#send").text == "发送"
    message = "最近工作很忙，想找人聊聊。"
    send(d, message)
    box = lambda: el(d, "#message textarea").get_attribute("value")  # noqa: E731
    wait_for(lambda: replied(d) and (len(bubbles(d, "bot")) == 1 or box() == message), timeout=120, what="the reply in Chinese mode")
    if bubbles(d, "bot"):  # the small model answered
        assert "工作很忙" in bubbles(d, "user")[0] and "危机支持" not in bubbles(d, "bot")[0]
    else:  # it answered nothing: no empty turn is kept, and the message is back in the box
        assert not bubbles(d, "user") and box() == message
    screenshot(d, "chat_chinese")


def test_the_model_s_observation_and_reasoning_reach_the_page(browser: Any) -> None:
    """Through the real Counselor and parser: the parsed observation and reasoning are what
    the toggle shows, and the reply is only the counselor's words."""
    from test_ui_chat import ScriptedEngine, scripted_counselor

    from psyinsight.ui.chat_app import CSS, ChatConfig, build_chat_app
    from psyinsight.ui.serving import launch

    engine = ScriptedEngine()  # streams; the pattern guard only (the crisis path is tested above)
    app = build_chat_app(scripted_counselor(engine), ChatConfig(show_reasoning=True))
    url = launch(app, css=CSS, port=free_port(), block=False, quiet=True)
    try:
        d = browser
        d.get(url)
        wait_for(lambda: el(d, "#message textarea"), what="the message box")
        assert el(d, "#show-reasoning input").is_selected()
        send(d, "Exams are next week and I lie awake every night.")
        wait_for(lambda: bubbles(d, "bot") and replied(d) and "What worries you most" in chat_text(d), timeout=60, what="the reply")
        text = wait_for(lambda: "Invite the client" in (t := chat_text(d)) and t, what="the reasoning")
        assert "Observation: The client is worried about exams" in text
        assert "Reasoning: Invite the client to name the worry" in text
        reply = [b for b in bubbles(d, "bot") if "What worries you most" in b][-1]
        assert "Therapist:" not in reply
        assert "Exams are next week" in engine.prompts[-1][-1]["content"], "the prompt holds the conversation"
        screenshot(d, "chat_parsed_reasoning")
        set_reasoning(d, False)
        wait_for(lambda: "Invite the client" not in chat_text(d), what="the reasoning to hide")
        assert "What worries you most when you lie awake?" in chat_text(d)
    finally:
        app.close()
