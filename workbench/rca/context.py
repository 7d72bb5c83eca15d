"""What checks share during one investigation: the case, the windows, and a cache of results.

Checks never recompute what an earlier check computed: every analysis result is
cached here under a key, so the CLI, the report and the widgets stay consistent
and the expensive passes (feature drift, slice search, SHAP) run once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from workbench.case import Case
    from workbench.onset import Onset
    from workbench.rca.evidence import Evidence
    from workbench.windows import Window

__all__ = ["Context"]

T = TypeVar("T")


class Context:
    """One investigation's shared state (mutable on purpose: it is the cache)."""

    def __init__(self, case: Case, progress: Callable[[str], None] | None = None,
                 baseline: Window | None = None, incident: Window | None = None):
        self.case = case
        self.say = progress or (lambda _m: None)
        self.evidence: dict[str, Evidence] = {}
        self._cache: dict[Any, Any] = {}
        self._windows = (baseline, incident) if baseline and incident else None

    @property
    def results(self) -> dict[Any, Any]:
        """The cache itself (the diagnosis exposes it read-only)."""
        return self._cache

    def cached(self, key: Any, compute: Callable[[], T]) -> T:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def has(self, requirement: str) -> bool:
        case = self.case
        return {
            "snapshots": bool(case.snapshots),
            "model": case.model is not None and bool(case.snapshots),
            "lineage": case.lineage is not None,
            "training": case.training is not None,
            "events": case.events is not None and case.events.height > 0,
            "features": bool(case.features),
            "slices": bool(case.slices),
        }[requirement]

    @property
    def onset(self) -> Onset:
        """The whole traffic's onset; when it shows none, a confirmed segment's (see :attr:`segment`)."""
        return self.cached("onset", self._detect)

    @property
    def segment(self) -> str | None:
        """``column=value`` when the regression was found in one segment only."""
        _ = self.onset
        return self._cache.get("segment")

    def _detect(self) -> Onset:
        from workbench.onset import detect_onset
        from workbench.segment_onset import detect_segment_onset

        whole = detect_onset(self.case)
        if whole.detected or not self.case.slices:
            return whole
        self.say("no regression in the whole traffic; scanning segments")
        found = detect_segment_onset(self.case)
        if found is None:
            return whole
        self._cache["segment"] = found.segment
        self._cache["segment_onset"] = found
        return found.onset

    @property
    def detected(self) -> bool:
        return bool(self.onset.detected)

    @property
    def onset_time(self) -> datetime | None:
        return self.onset.onset

    @property
    def baseline(self) -> Window:
        return self._windows[0] if self._windows else self.onset.baseline

    @property
    def incident(self) -> Window:
        return self._windows[1] if self._windows else self.onset.incident
