"""A server process in a test: a free local port, and waiting until ``psyinsight serve`` answers."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(url: str, proc: subprocess.Popen, timeout: float, stderr_text: Callable[[], str]) -> None:
    """Return once ``url``/models answers 200; fail with the server's stderr if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"psyinsight serve exited early: {stderr_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/models", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"psyinsight serve not ready within {timeout:.0f} s")
