"""Launching a Gradio app the same way everywhere: local, no share link, no analytics."""

from __future__ import annotations

import os
from typing import Any

from psyinsight.errors import PsyInsightError


def quiet_gradio() -> None:
    """Turn Gradio's usage analytics off; call before importing gradio."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"


def launch(app: Any, *, css: str = "", host: str = "127.0.0.1", port: int = 7860, block: bool = True, quiet: bool = False) -> str:
    """Serve ``app`` on ``host:port`` (never a public share link); returns the local URL.

    ``block=False`` returns at once with the server running in a thread (tests, notebooks);
    stop it with ``app.close()``.
    """
    quiet_gradio()
    if not 0 < port < 65536:
        raise PsyInsightError(f"port must be 1 to 65535, got {port}", where="--port")
    try:
        _, url, _ = app.launch(
            server_name=host,
            server_port=port,
            share=False,
            css=css,
            prevent_thread_lock=not block,
            quiet=quiet,
            ssr_mode=False,
            footer_links=["settings"],
        )
    except OSError as exc:
        raise PsyInsightError(f"cannot serve on {host}:{port} ({exc}); pick another port with --port", where="--port") from None
    return url
