"""The rating app in headless Chromium: blind A/B, rate a pair, revise it, find it in the export."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser.chrome import chrome, free_port, screenshot, serve_command, wait_for

from psyinsight.ui.ratings import CRITERIA

pytestmark = pytest.mark.browser

SYSTEMS = ("zetamodel", "omegamodel")
IDS = ["en-000500/3", "en-000501/5", "en-000502/7"]


def _write(tmp: Path) -> dict[str, Path]:
    paths = {}
    for system, word in zip(SYSTEMS, ("Zebra", "Otter")):
        rows = [
            {
                "id": i,
                "text": "",
                "response": f"{word} reply {n}: how did that feel?",
                "observation": f"{word} observes the client",
                "reasoning": f"{word} reasons",
                "reference": "ref",
            }
            for n, i in enumerate(IDS)
        ]
        paths[system] = tmp / f"{system}.jsonl"
        paths[system].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    examples = [
        {
            "id": i,
            "messages": [
                {"role": "system", "content": "SECRET INSTRUCTION"},
                {"role": "user", "content": f"Client: I keep failing exams (case {n})."},
            ],
            "target": "t",
            "reference": "r",
        }
        for n, i in enumerate(IDS)
    ]
    paths["examples"] = tmp / "examples.jsonl"
    paths["examples"].write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def rating_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`psyinsight ui rate` (A/B) served once for the module, and one browser on it."""
    tmp = tmp_path_factory.mktemp("rating")
    paths = _write(tmp)
    db = tmp / "ratings.sqlite"
    port = free_port()
    args = [
        "ui",
        "rate",
        str(paths[SYSTEMS[0]]),
        str(paths[SYSTEMS[1]]),
        "--examples",
        str(paths["examples"]),
        "--db",
        str(db),
        "--seed",
        "7",
        "--port",
        str(port),
    ]
    with chrome() as driver, serve_command(args, port) as url:  # no browser: skip before serving
        driver.get(url)
        yield {"driver": driver, "db": db, "tmp": tmp, "study": " vs ".join(SYSTEMS)}


def by_id(driver: Any, elem_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, elem_id)


def choose(driver: Any, elem_id: str, value: str) -> None:
    """Click the visible label of a radio option (a real click, as a person would)."""
    from selenium.webdriver.common.by import By

    option = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type='radio'][value='{value}']")
    label = option.find_element(By.XPATH, "./ancestor::label[1]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", label)
    label.click()


def checked(driver: Any, elem_id: str) -> str | None:
    from selenium.webdriver.common.by import By

    found = [i.get_attribute("value") for i in driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} input[type='radio']") if i.is_selected()]
    return found[0] if found else None


def side_system(text: str) -> str:
    return SYSTEMS[0] if "Zebra" in text else SYSTEMS[1]


def test_rate_a_blind_pair_revise_it_and_find_it_in_the_export(rating_site: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    d = rating_site["driver"]
    # Saving before starting is refused with a message, not an error page.
    box = wait_for(lambda: d.find_element(By.CSS_SELECTOR, "#rater-id input, #rater-id textarea"), what="the rater id box")
    by_id(d, "start").click()
    wait_for(lambda: "Enter your rater id" in by_id(d, "status").text, what="the missing rater id warning")

    box.send_keys("rater-7")
    by_id(d, "start").click()
    wait_for(lambda: "Item 1 of 3" in by_id(d, "progress").text, what="the first item")
    import urllib.request

    with urllib.request.urlopen(d.current_url.split("?")[0].rstrip("/") + "/config", timeout=10) as resp:
        config = resp.read().decode("utf-8")
    page = d.page_source
    for system in SYSTEMS:
        assert system not in page and system not in config, "model names must never reach the browser"
    assert "SECRET INSTRUCTION" not in page and "I keep failing exams" in by_id(d, "context").text
    a_text, b_text = by_id(d, "response-a").text, by_id(d, "response-b").text
    assert a_text.startswith("Response A") and b_text.startswith("Response B")
    assert {side_system(a_text), side_system(b_text)} == set(SYSTEMS)
    first_item = by_id(d, "item-id").text.split()[-1]
    assert first_item in IDS

    # An incomplete rating is refused and names what is missing.
    for c in CRITERIA:
        choose(d, f"a-{c}", "4")
    by_id(d, "save-next").click()
    wait_for(lambda: "Not saved" in by_id(d, "status").text and "response B" in by_id(d, "status").text, what="the incomplete-rating warning")

    for c, v in zip(CRITERIA, ("2", "3", "1", "5")):
        choose(d, f"b-{c}", v)
    choose(d, "preference", "B")
    screenshot(d, "rating_ab_filled")
    by_id(d, "save-next").click()
    wait_for(lambda: "Item 2 of 3" in by_id(d, "progress").text, what="the second item")
    assert "Saved item" in by_id(d, "status").text and "1 of 3 rated" in by_id(d, "progress").text

    # Back to the rated item: the stored scores are shown; revise one and save again.
    by_id(d, "previous").click()
    wait_for(lambda: "Item 1 of 3" in by_id(d, "progress").text and checked(d, "b-comfort") == "1", what="the stored scores")
    assert "✓ rated" in by_id(d, "progress").text
    assert [checked(d, f"a-{c}") for c in CRITERIA] == ["4"] * 4 and checked(d, "preference") == "B"
    choose(d, "b-comfort", "3")
    by_id(d, "save-next").click()
    wait_for(lambda: "Item 2 of 3" in by_id(d, "progress").text, what="the next item after revising")
    screenshot(d, "rating_ab_saved")

    with sqlite3.connect(rating_site["db"]) as conn:
        assert conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 1, "re-rating updates the row"

    # The export (the CLI command) unblinds: side A's scores belong to the model shown as A.
    from test_ui_cli import cli_app
    from typer.testing import CliRunner

    out = rating_site["tmp"] / "export.csv"
    result = CliRunner().invoke(cli_app(), ["ui", "export-ratings", str(rating_site["db"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = {r["side"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert set(rows) == {"A", "B"}
    assert rows["A"]["system"] == side_system(a_text) and rows["B"]["system"] == side_system(b_text)
    assert [rows["A"][c] for c in CRITERIA] == ["4"] * 4
    assert [rows["B"][c] for c in CRITERIA] == ["2", "3", "3", "5"]
    assert rows["A"]["rater"] == "rater-7" and rows["A"]["item"] == first_item
    assert rows["A"]["preferred_system"] == side_system(b_text) and rows["A"]["seed"] == "7"
    assert rows["A"]["created_at"] <= rows["A"]["updated_at"]


def test_a_returning_rater_resumes_at_the_first_unrated_item(rating_site: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    d = rating_site["driver"]
    d.get(d.current_url)  # a fresh page: the rater comes back later
    box = wait_for(lambda: d.find_element(By.CSS_SELECTOR, "#rater-id input, #rater-id textarea"), what="the rater id box")
    box.send_keys("rater-7")
    by_id(d, "start").click()
    wait_for(lambda: "Welcome back" in by_id(d, "status").text, what="the resume message")
    assert "Item 2 of 3" in by_id(d, "progress").text and "✓ rated" not in by_id(d, "progress").text


def test_single_response_mode(rating_site: dict[str, Any]) -> None:
    """One predictions file: one response, no preference; the rating is stored and exported."""
    from selenium.webdriver.common.by import By

    from psyinsight.ui.items import load_items
    from psyinsight.ui.rating_app import CSS, RatingConfig, build_rating_app
    from psyinsight.ui.ratings import RatingStore, long_rows
    from psyinsight.ui.serving import launch

    tmp = rating_site["tmp"]
    store = RatingStore(tmp / "single.sqlite")
    app = build_rating_app(load_items([tmp / f"{SYSTEMS[0]}.jsonl"]), store, RatingConfig(seed=7))
    url = launch(app, css=CSS, port=free_port(), block=False, quiet=True)
    try:
        d = rating_site["driver"]
        d.get(url)
        box = wait_for(lambda: d.find_element(By.CSS_SELECTOR, "#rater-id input, #rater-id textarea"), what="the rater id box")
        box.send_keys("solo\n")  # Enter starts too
        wait_for(lambda: "Item 1 of 3" in by_id(d, "progress").text, what="the first item")
        assert by_id(d, "response-a").text.startswith("Response\n") or by_id(d, "response-a").text.startswith("Response ")
        assert not [e for e in d.find_elements(By.ID, "response-b") if e.is_displayed()]
        assert not [e for e in d.find_elements(By.ID, "preference") if e.is_displayed()]
        for c, v in zip(CRITERIA, ("5", "4", "3", "2")):
            choose(d, f"a-{c}", v)
        by_id(d, "save-next").click()
        wait_for(lambda: "Item 2 of 3" in by_id(d, "progress").text, what="the second item")
        screenshot(d, "rating_single")
    finally:
        app.close()
    rows = long_rows(store.ratings())
    assert len(rows) == 1 and rows[0]["system"] == SYSTEMS[0] and rows[0]["mode"] == "single"
    assert [rows[0][c] for c in CRITERIA] == [5, 4, 3, 2] and rows[0]["rater"] == "solo"
