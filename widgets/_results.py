"""Compute once, render many: the ``workbench`` calls the views draw, each run once and cached.

Views never compute: they ask :class:`Results` for a result object (a diagnosis,
a quality series, a drift table...) and draw it. Every method here is one call
into ``workbench`` (its public namespace) with the case and the windows, typed by
the result it returns; results are cached by their arguments, so switching tabs,
opening nodes or selecting slices never rescans the data. When the diagnosis
carries its own cache (the checks' results for the detected windows), it is
reused rather than recomputed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

import workbench as wb

if TYPE_CHECKING:
    import polars as pl
    import torch

    from workbench import (
        ActivationDiff,
        Case,
        Diagnosis,
        FeatureDrift,
        FeatureIsolation,
        FeatureSlices,
        Onset,
        QualitySeries,
        SliceDeltas,
        SliceSearch,
        SnapshotDiff,
        SnapshotTimeline,
        Validation,
        Window,
    )

__all__ = ["Results"]

T = TypeVar("T")


class Results:
    """The case, its diagnosis, and a cache of every analysis result a view asked for."""

    def __init__(self, case: Case, diagnosis: Diagnosis | None = None):
        self.case = case
        self._diagnosis = diagnosis
        self._cache: dict[Hashable, Any] = {}
        self._lock = threading.RLock()
        self.calls: list[Hashable] = []  # what was actually computed (tests assert nothing is recomputed)
        self.seconds: dict[Hashable, float] = {}  # how long each computation took

    # ------------------------------------------------------------------ the cache
    def cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        t0 = time.perf_counter()
        value = compute()  # outside the lock: a long pass must not block cheap lookups
        with self._lock:
            self._cache.setdefault(key, value)
            self.calls.append(key)
            self.seconds[key] = time.perf_counter() - t0
            return self._cache[key]

    def has(self, key: Hashable) -> bool:
        return key in self._cache

    def _from_diagnosis(self, key: Hashable, windows: tuple[Window, Window] | None) -> Any:
        """A result the diagnosis already computed for its own windows (``Diagnosis.results``), if any."""
        d = self._diagnosis
        if d is None:
            return None
        shared = getattr(d, "results", None)
        if not shared or (windows is not None and windows != (d.baseline, d.incident)):
            return None
        return shared.get(key)

    def _windowed(self, key: str, fn: Callable[..., T], baseline: Window, incident: Window) -> T:
        found = self._from_diagnosis(key, (baseline, incident))
        if found is not None:
            return found  # the diagnosis caches this very call's result
        return self.cached((key, baseline, incident), lambda: fn(self.case, baseline, incident))

    # ------------------------------------------------------------------ the diagnosis
    @property
    def ready(self) -> bool:
        return self._diagnosis is not None

    def diagnosis(self, progress: Callable[[str], None] | None = None) -> Diagnosis:
        """The diagnosis (run once: ``workbench.rca.diagnose``)."""
        with self._lock:
            if self._diagnosis is not None:
                return self._diagnosis
        t0 = time.perf_counter()
        d = wb.diagnose(self.case, progress=progress)
        with self._lock:
            if self._diagnosis is None:
                self._diagnosis = d
                self.calls.append("diagnose")
                self.seconds["diagnose"] = time.perf_counter() - t0
            return self._diagnosis

    # ------------------------------------------------------------------ analysis results
    def quality(self, by: str | tuple[str, ...] | None = None, every: str = "1h") -> QualitySeries:
        """``workbench.data.quality.quality_series`` (one grouped pass; per slice column when ``by``)."""
        return self.cached(("quality", by, every), lambda: wb.quality_series(self.case, every=every, by=by))

    def onset(self) -> Onset:
        """``workbench.data.onset.detect_onset`` on the cached hourly series (no second pass)."""
        found = self._from_diagnosis("onset", None)
        return found if found is not None else self.cached("onset", lambda: wb.detect_onset(self.quality()))

    @property
    def segment(self) -> str | None:
        """``column=value`` when the diagnosis read the onset on one segment's series (the whole traffic showed none)."""
        return self._from_diagnosis("segment", None)

    def slices(self, baseline: Window, incident: Window) -> SliceSearch:
        """``workbench.data.slices.find_slices``: the segments the search found, best first."""
        return self._windowed("find_slices", wb.find_slices, baseline, incident)

    def slice_deltas(self, baseline: Window, incident: Window) -> SliceDeltas:
        """``workbench.data.slices.slice_deltas``: every slice value and pair of values, baseline vs incident (one pass)."""
        return self._windowed("slice_deltas", wb.slice_deltas, baseline, incident)

    def drift(self, baseline: Window, incident: Window) -> FeatureDrift:
        """``workbench.data.drift.feature_drift``: ranked features."""
        return self._windowed("feature_drift", wb.feature_drift, baseline, incident)

    def feature_timeline(self, features: tuple[str, ...]) -> pl.DataFrame:
        """``workbench.data.drift.feature_timeline``: coverage and mean of features per hour (one pass)."""
        return self.cached(("feature_timeline", features), lambda: wb.feature_timeline(self.case, list(features)))

    def skew(self, window: Window) -> FeatureDrift:
        """``workbench.data.drift.training_skew``: serving in ``window`` vs the training sample."""
        return self.cached(("training_skew", window), lambda: wb.training_skew(self.case, window))

    def feature_by_slice(self, feature: str, baseline: Window, incident: Window) -> FeatureSlices:
        """``workbench.data.drift.feature_by_slice``: where (which slice) one feature broke."""
        return self.cached(("feature_by_slice", feature, baseline, incident),
                           lambda: wb.feature_by_slice(self.case, feature, baseline, incident))

    def isolation(self, baseline: Window, incident: Window) -> FeatureIsolation:
        """``workbench.model.isolation.isolate_features``: how much of the regression each feature explains."""
        return self._windowed("isolation", wb.isolate_features, baseline, incident)

    def snapshot_timeline(self) -> SnapshotTimeline:
        """``workbench.model.diff.snapshot_timeline``."""
        found = self._from_diagnosis("snapshot_timeline", None)
        return found if found is not None else self.cached(
            "snapshot_timeline", lambda: wb.snapshot_timeline(self.case))

    def validation(self, snapshot_id: str) -> Validation:
        """``workbench.model.validation.validate_snapshot``."""
        return self.cached(("validation", snapshot_id), lambda: wb.validate_snapshot(self.case, snapshot_id))

    def activations(self, a: str, b: str) -> ActivationDiff:
        """``workbench.model.activations.compare_activations``: where two snapshots diverge, layer by layer."""
        return self.cached(("activations", a, b), lambda: wb.compare_activations(self.case, a, b))

    def weight_diff(self, a: str, b: str) -> SnapshotDiff:
        """``workbench.model.diff.diff_state_dicts`` of snapshot ``a`` → ``b`` (per-tensor change)."""
        return self.cached(("weight_diff", a, b),
                           lambda: wb.diff_state_dicts(self.state_dict(a), self.state_dict(b)))

    def state_dict(self, snapshot_id: str) -> dict[str, torch.Tensor]:
        """The snapshot's tensors (``workbench.case.snapshots.load_state_dict``: safe loading)."""
        snap = self.case.snapshot(snapshot_id)
        return self.cached(("state_dict", snapshot_id), lambda: wb.load_state_dict(snap.path))
