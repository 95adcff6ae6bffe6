"""Headless Chromium for the web-app tests: find it, start it, serve an app, save screenshots.

The browser runs with no network besides 127.0.0.1 (no sync, no component updates, no
QUIC) and a throw-away profile. Tests skip with instructions only when Chromium or its
driver is not installed; CI installs both (``scripts/setup.sh``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from local_server import free_port  # noqa: F401  (the browser tests take it from here)

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver",)
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
)
HOW_TO_INSTALL = "headless Chromium is not installed: run `sudo apt-get install chromium chromium-driver` (scripts/setup.sh does it)"


def _first(env: str, candidates: tuple[str, ...], name: str) -> str | None:
    if os.environ.get(env):  # an explicit choice: used only if it is there
        return os.environ[env] if Path(os.environ[env]).is_file() else None
    for c in candidates:
        if Path(c).is_file():
            return c
    return shutil.which(name)


def chromium_paths() -> tuple[str, str] | None:
    """(browser, driver) paths, or None when either is missing."""
    browser = _first("CHROMIUM_BIN", CHROMIUM_CANDIDATES, "chromium")
    driver = _first("CHROMEDRIVER_BIN", DRIVER_CANDIDATES, "chromedriver")
    if browser and driver:
        return browser, driver
    return None


@contextlib.contextmanager
def chrome() -> Iterator[Any]:
    """A headless Chromium webdriver with a temporary profile; skips when not installed."""
    found = chromium_paths()
    if found is None:
        pytest.skip(HOW_TO_INSTALL)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = found
    with tempfile.TemporaryDirectory(prefix="psyinsight-chrome-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in CHROME_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()


@contextlib.contextmanager
def serve_command(args: list[str], port: int, timeout: float = 90.0, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``psyinsight <args>`` as a subprocess serving on ``port``; yield its URL once it answers."""
    import subprocess
    import sys
    import urllib.request

    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **(env or {})}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "psyinsight.cli", *args], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"`psyinsight {' '.join(args)}` exited with {proc.returncode}:\n{log.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    try:
        deadline = time.monotonic() + timeout
        while not up():
            if time.monotonic() > deadline:
                raise AssertionError(f"`psyinsight {' '.join(args)}` did not serve {url} within {timeout:.0f}s")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy (exceptions count as not yet); return its value."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the page is still rendering
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last!r})" if last else ""))


def screenshot(driver: Any, name: str) -> Path:
    """Save a full-page PNG under artifacts/screenshots/ (kept by CI as a test artefact)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    size = driver.get_window_size()
    height = driver.execute_script("return Math.min(document.documentElement.scrollHeight, 6000)")
    driver.set_window_size(size["width"], max(size["height"], int(height) + 20))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(size["width"], size["height"])
    return path
