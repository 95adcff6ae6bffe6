"""Validation findings: one problem, its exact place, and how serious it is."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "defect", "suspect", "note"]
"""``error``: the data cannot be used as is (structure, unknown label).
``defect``: a known defect that the normaliser repairs.
``suspect``: a consistency check's sign of likely corruption that no rule can repair (``consistency.py``).
``note``: a property worth knowing that is not wrong (a session opening with the counselor)."""


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    file: str
    message: str
    dialog_id: str | None = None
    turn: str | None = None
    field: str | None = None

    def place(self, *, sep: str = "=") -> list[str]:
        """The dialog, turn and field the finding points at, as ``name<sep>value`` (only those set)."""
        named = (("dialog_id", self.dialog_id), ("turn", self.turn), ("field", self.field))
        return [f"{name}{sep}{value}" for name, value in named if value is not None]

    @property
    def location(self) -> str:
        return " ".join([self.file, *self.place()])

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)
