"""What a check returns: a verdict, a strength, one plain sentence, and the data its plot needs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["CHANGES", "KINDS", "VERDICTS", "Candidate", "Evidence"]

# Root-cause kinds of the JSON contract, and how a feature cause may have changed.
KINDS = ("snapshot", "feature", "upstream", "label", "calibration", "slice")
CHANGES = ("coverage", "scale", "stale", "decorrelated", "skew", "shift")
# How a check reads: "fail" found a problem, "pass" ruled one out, "warn" is suspicious
# but not conclusive, "skip" could not run (a file is missing or it was not needed),
# "error" raised: a bug in the check, never the same as a skip.
VERDICTS = ("fail", "warn", "pass", "skip", "info", "error")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A hypothesis a check raises: ``kind``/``target`` as in the JSON contract.

    ``strength`` in [0, 1] is how strongly *this* check supports it. ``explains``
    lists other candidates (kind, target) this one accounts for: an upstream table
    explains the features it feeds, so those are demoted when the table is likely.
    A ``fallback`` candidate (a slice) stands only when nothing else explains the
    regression.
    """

    kind: str
    target: str
    strength: float
    summary: str
    detail: str = ""
    layer: str | None = None
    slice: str | None = None
    explains: tuple[tuple[str, str], ...] = ()
    fallback: bool = False
    change: str | None = None  # a feature cause's change (contract v2): coverage, scale, stale, decorrelated, skew, shift
    # a finer reading than kind and change that picks the next step (Diagnosis.next_steps), never printed in the JSON:
    # a slice cause is "joined" (new rows joined the segment) or "new" (the segment is new in the incident)
    situation: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"candidate kind {self.kind!r} is not one of {KINDS}")
        if self.change is not None and self.change not in CHANGES:
            raise ValueError(f"candidate change {self.change!r} is not one of {CHANGES}")
        object.__setattr__(self, "strength", float(min(max(self.strength, 0.0), 1.0)))

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.target)


@dataclass(frozen=True, slots=True)
class Evidence:
    """The outcome of one check at one node of the tree."""

    check: str
    verdict: str
    score: float
    summary: str
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    candidates: tuple[Candidate, ...] = ()
    reason: str = ""  # why it was skipped, or the error it raised
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")

    @classmethod
    def skipped(cls, check: str, reason: str) -> Evidence:
        return cls(check=check, verdict="skip", score=0.0, summary=f"skipped: {reason}", reason=reason)

    @classmethod
    def failed(cls, check: str, error: str, log: Path | str) -> Evidence:
        """The check raised ``error``: a bug to report (traceback in ``log``), not a verdict."""
        first = error.splitlines()[0] if error else "error"
        return cls(check=check, verdict="error", score=0.0, summary=f"ERROR: the check raised {first} (traceback in {log})",
                   reason=error, data={"log": str(log)})

    def timed(self, seconds: float) -> Evidence:
        """The same evidence with its run time."""
        return replace(self, seconds=seconds)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "verdict": self.verdict, "score": round(self.score, 4), "summary": self.summary,
                "detail": self.detail, "reason": self.reason, "seconds": round(self.seconds, 3),
                "candidates": [{"kind": c.kind, "target": c.target, "strength": round(c.strength, 4), "summary": c.summary}
                               for c in self.candidates]}
