"""Re-score logged rows with the case's model: two counterfactuals that separate causes.

* **Snapshot swap** — score the incident rows with the snapshot that served them
  and with the one that served the baseline. The NE difference between the two
  re-scorings is the snapshot's own share of the regression: both use the same
  logged features, so a feature break or a serving-side change cancels out.
* **Serving consistency** — score rows with the snapshot that served them and
  compare with the logged prediction. In a healthy system the two agree; when they
  agree in the baseline and not in the incident, something between the model and
  the log changed (a calibration or post-processing layer), since a broken feature
  or a bad snapshot changes both the same way.

Both use a uniform sample of labeled rows (``sample`` rows per window) for speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench.case.columns import LABEL, PREDICTION, SNAPSHOT
from workbench.case.loader import Case
from workbench.metrics import logit, normalized_entropy, row_log_loss
from workbench.model.load import feature_matrix, load_model, score
from workbench.windows import Window

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["ServingConsistency", "SnapshotSwap", "serving_consistency", "snapshot_swap"]

RESOLVABLE = 15.0  # |logit| above this is float32 saturation (p within ~3e-7 of 0 or 1)



def _rows(case: Case, window: Window, sample: int, labeled: bool, seed: int = 0) -> pl.DataFrame:
    lf = case.predictions.filter(window.contains())
    if labeled:
        lf = lf.filter(pl.col(LABEL).is_not_null())
    frame = lf.select(PREDICTION, LABEL, SNAPSHOT, *case.features).collect()
    return frame.sample(sample, seed=seed) if frame.height > sample else frame


def _rescore_by_snapshot(case: Case, frame: pl.DataFrame, snapshots: Iterable[str | None]) -> np.ndarray:
    out = np.full(frame.height, np.nan)
    ids = frame[SNAPSHOT].to_numpy()
    for sid in snapshots:
        if sid is None:
            continue
        mask = ids == sid
        if mask.any():
            model = load_model(case, sid)
            assert case.model is not None  # load_model raised CaseError otherwise
            out[mask] = score(model, feature_matrix(frame.filter(pl.Series(mask)), case.features), case.model.output)
    return out


@dataclass(frozen=True, slots=True)
class SnapshotSwap:
    """Incident NE as logged, and re-scored with the serving snapshot(s) and with the baseline's snapshot."""

    served: tuple[str, ...]
    replacement: str
    ne_baseline: float  # logged, baseline window
    ne_logged: float  # logged, incident window
    ne_rescored: float  # incident rows re-scored with the snapshot(s) that served them
    ne_swapped: float  # incident rows re-scored with the baseline's snapshot
    rows: int
    z: float  # paired z of (rescored - swapped): the same rows under both snapshots


    @property
    def recovered(self) -> float:
        """The snapshot's share of the regression: (rescored − swapped) / (logged − baseline); ~1 means it is the cause."""
        regression = self.ne_logged - self.ne_baseline
        if regression <= 1e-9:
            return 0.0
        return float((self.ne_rescored - self.ne_swapped) / regression)

    def to_dict(self) -> dict:
        return {"served": list(self.served), "replacement": self.replacement, "ne_baseline": self.ne_baseline,
                "ne_logged": self.ne_logged, "ne_rescored": self.ne_rescored, "ne_swapped": self.ne_swapped,
                "recovered": self.recovered, "rows": self.rows, "z": self.z}

    def __str__(self) -> str:
        return (f"incident NE {self.ne_rescored:.4f} with {', '.join(self.served)} vs {self.ne_swapped:.4f} with "
                f"{self.replacement} (logged {self.ne_logged:.4f}, baseline {self.ne_baseline:.4f}): the snapshot accounts "
                f"for {self.recovered:.0%} of the regression (paired z {self.z:.1f})")


def snapshot_swap(case: Case, baseline: Window, incident: Window, *, sample: int = 20_000) -> SnapshotSwap | None:
    """Score labeled incident rows with the snapshot that served most of the baseline.

    Returns None when the incident was served by that same snapshot (nothing to swap).
    Rows whose snapshot is unknown are left out of both re-scorings.
    """
    base = _rows(case, baseline, sample, labeled=True)
    inc = _rows(case, incident, sample, labeled=True, seed=1)
    if base.height == 0 or inc.height == 0:
        return None
    replacement = base[SNAPSHOT].drop_nulls().mode().sort()[0] if base[SNAPSHOT].null_count() < base.height else None
    served = tuple(sorted(set(inc[SNAPSHOT].drop_nulls().to_list()) - {replacement}))
    if replacement is None or not served:
        return None
    model = load_model(case, replacement)
    assert case.model is not None  # load_model raised CaseError otherwise
    swapped = score(model, feature_matrix(inc, case.features), case.model.output)
    rescored = _rescore_by_snapshot(case, inc, inc[SNAPSHOT].unique().to_list())
    ok = np.isfinite(rescored)
    y = inc[LABEL].to_numpy()
    # Paired: the same rows under both snapshots, so the per-row loss difference has a plain standard error.
    diff = row_log_loss(rescored[ok], y[ok]) - row_log_loss(swapped[ok], y[ok])
    se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.inf
    return SnapshotSwap(served=served, replacement=replacement,
                        ne_baseline=normalized_entropy(base[PREDICTION].to_numpy(), base[LABEL].to_numpy()),
                        ne_logged=normalized_entropy(inc[PREDICTION].to_numpy(), y),
                        ne_rescored=normalized_entropy(rescored[ok], y[ok]), ne_swapped=normalized_entropy(swapped[ok], y[ok]),
                        rows=int(ok.sum()), z=float(diff.mean() / se) if se > 0 else 0.0)


@dataclass(frozen=True, slots=True)
class ServingConsistency:
    """How far logged predictions are from the model's own output, in logits, per window."""

    gap_baseline: float  # median |logit(logged) - logit(rescored)|
    gap_incident: float
    shift_incident: float  # median signed logit(logged) - logit(rescored) in the incident
    rows: int

    @property
    def changed(self) -> float:
        """How much the serving path moved, in logits, beyond its baseline gap."""
        return max(self.gap_incident - self.gap_baseline, 0.0)

    def to_dict(self) -> dict:
        return {"gap_baseline": self.gap_baseline, "gap_incident": self.gap_incident,
                "shift_incident": self.shift_incident, "changed": self.changed, "rows": self.rows}

    def __str__(self) -> str:
        return (f"logged vs re-scored predictions differ by {self.gap_baseline:.3f} logits in the baseline and "
                f"{self.gap_incident:.3f} in the incident (median)")


def serving_consistency(case: Case, baseline: Window, incident: Window, *, sample: int = 5_000) -> ServingConsistency | None:
    """Compare logged predictions with the serving snapshot's own scores in both windows."""
    gaps = []
    for i, window in enumerate((baseline, incident)):
        frame = _rows(case, window, sample, labeled=False, seed=2 + i)
        if frame.height == 0:
            return None
        rescored = _rescore_by_snapshot(case, frame, frame[SNAPSHOT].unique().to_list())
        logged = frame[PREDICTION].to_numpy()
        # a probability within float32 resolution of 0 or 1 has no resolvable logit: a logged 1.0 and a re-scored
        # 1 - 1e-7 differ by 0.18 logits with the same model; such rows say nothing about the serving path
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(rescored) & (np.abs(logit(logged)) < RESOLVABLE) & (np.abs(logit(np.nan_to_num(rescored))) < RESOLVABLE)
        if ok.sum() == 0:
            return None
        gaps.append(logit(logged[ok]) - logit(rescored[ok]))
    return ServingConsistency(gap_baseline=float(np.median(np.abs(gaps[0]))), gap_incident=float(np.median(np.abs(gaps[1]))),
                              shift_incident=float(np.median(gaps[1])), rows=len(gaps[1]))
