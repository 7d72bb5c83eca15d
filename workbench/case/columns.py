"""The canonical role names of the serving log, and the user's column behind each role.

The loader exposes every table with these names (``ts``, ``prediction``, ``label``,
``snapshot_id``), so analysis code never deals with the user's naming; ``Columns``
keeps the user's names for messages and for the JSON contract.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LABEL", "PREDICTION", "ROLES", "SNAPSHOT", "TS", "Columns"]

TS, PREDICTION, LABEL, SNAPSHOT = "ts", "prediction", "label", "snapshot_id"
ROLES = {"timestamp": TS, "prediction": PREDICTION, "label": LABEL, "snapshot": SNAPSHOT}


@dataclass(frozen=True, slots=True)
class Columns:
    """The user's column names for each role."""

    timestamp: str
    prediction: str
    label: str
    snapshot: str | None
    features: tuple[str, ...]
    slices: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"timestamp": self.timestamp, "prediction": self.prediction, "label": self.label,
                "snapshot": self.snapshot, "features": list(self.features), "slices": list(self.slices)}
