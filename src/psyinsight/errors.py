"""The one exception type a user can cause.

Every error that bad input, a bad flag or a missing file can trigger is a
``PsyInsightError`` whose message names the file (or setting) and the place. The CLI
prints the message and exits 2; nothing else is ever shown as a traceback.
"""

from __future__ import annotations

from pathlib import Path


class PsyInsightError(Exception):
    """A user-facing error: bad input, a missing file, a wrong setting."""

    def __init__(self, message: str, *, path: str | Path | None = None, where: str | None = None):
        self.path = str(path) if path is not None else None
        self.where = where
        prefix = ""
        if self.path:
            prefix = f"{self.path}"
            if where:
                prefix += f" ({where})"
            prefix += ": "
        elif where:
            prefix = f"{where}: "
        super().__init__(prefix + message)
