"""The label side: did the labels move on their own, and how late do they arrive?

A label-side incident (a click-logging bug, a join that drops positives) moves
the label rate while the model's inputs and outputs stay put; a model- or
feature-side incident moves the predictions. :func:`label_shift` states that
test; :func:`label_delay` profiles how complete the labels are by the age of
the hour, so the latest hours are read as *waiting*, not as an incident.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench._render import fmt, jsonable, records
from workbench.case.loader import Case
from workbench.data._frames import PERIOD, collect_windows
from workbench.data._sums import SUMS, sum_aggs
from workbench.data.drift import FeatureDrift, feature_drift
from workbench.data.quality import HALF_CLICK, pool_sums
from workbench.metrics import metric_from_sums, reliable_end, two_proportion_se
from workbench.windows import Window, iso

if TYPE_CHECKING:
    from workbench.data.scan import WindowScan

__all__ = ["LabelDelay", "LabelShift", "label_delay", "label_shift"]

MATERIAL = math.log(1.05)  # a label-rate change under 5% is not a label incident
FOLLOW = 0.25  # predictions "did not follow" when they moved less than a quarter as much


@dataclass(frozen=True, slots=True)
class LabelShift:
    """Label rate vs predictions between two windows, with the verdict ``labels_moved_alone``.

    Changes are relative (``incident / baseline - 1``). ``label_z`` is the
    two-proportion z statistic of the label rate, ``prediction_z`` the z statistic of
    the change of log prediction mean (sampling error of each window's mean).

    ``followed`` compares *effect sizes*, not z-scores (on millions of rows a 2% refresh
    drift is 5σ): the share of the label rate's relative change that the prediction mean
    followed, ``max(|Δ ln p| - 2 SE, 0) / |Δ ln r|``, clipped to [0, 1], where sampling
    error is only a floor under the prediction's change. A label incident leaves
    predictions where they were (``followed`` near 0); a model- or feature-side incident
    moves them with or against the labels. ``features_broken`` lists the features whose
    drift kind is not ``none``. ``test`` states the rule behind the verdict.
    """

    baseline: Window
    incident: Window
    label_rate_baseline: float
    label_rate_incident: float
    label_rate_change: float
    label_z: float
    prediction_mean_baseline: float
    prediction_mean_incident: float
    prediction_change: float
    prediction_z: float
    calibration_ratio_baseline: float
    calibration_ratio_incident: float
    label_log_change: float
    prediction_log_change: float
    followed: float
    features_broken: tuple[str, ...]
    labels_moved_alone: bool
    test: str

    @property
    def labels_followed(self) -> float | None:
        """The mirror of ``followed``: the share of the prediction mean's relative change that the label rate followed
        in its direction, ``max(|Δ ln r| - 2 SE, 0) / |Δ ln p|`` clipped to [0, 1] (0 when it moved the other way);
        None when the predictions did not move materially (``MATERIAL``, at 3 SE) or the label rate cannot be read.
        A population that moved brings its labels with it; inputs that moved while the labels stayed were served
        wrong."""
        p, r = self.prediction_log_change, self.label_log_change
        if not all(math.isfinite(v) for v in (p, r, self.prediction_z, self.label_z)):
            return None
        if abs(p) < MATERIAL or abs(self.prediction_z) < 3:
            return None
        if p * r <= 0:
            return 0.0
        se = abs(r / self.label_z) if self.label_z else 0.0
        return min(1.0, max(abs(r) - 2 * se, 0.0) / abs(p))

    def to_dict(self) -> dict:
        return jsonable({f: getattr(self, f) for f in self.__slots__})  # type: ignore[return-value]

    def __str__(self) -> str:
        verdict = "labels moved alone" if self.labels_moved_alone else "not a label-only change"
        return (f"{verdict}: label rate {fmt(self.label_rate_baseline, 4)} -> {fmt(self.label_rate_incident, 4)} "
                f"({self.label_rate_change:+.1%}, z {fmt(self.label_z, 1)}), predictions "
                f"{fmt(self.prediction_mean_baseline, 4)} -> {fmt(self.prediction_mean_incident, 4)} ({self.prediction_change:+.1%}, "
                f"z {fmt(self.prediction_z, 1)}), "
                f"features broken: {list(self.features_broken) or 'none'}")


def label_shift(case: Case, baseline: Window, incident: Window, drift: FeatureDrift | None = None, *,
                alpha: float = 0.001, scan: WindowScan | None = None) -> LabelShift:
    """Did the label rate move while predictions and features did not?

    The verdict ``labels_moved_alone`` holds when (1) the label rate changed
    significantly (two-proportion z test, two-sided ``alpha``) and materially
    (at least 5% relative), (2) the prediction mean moved less than a quarter as
    much (relative, log scale; model refreshes move it a little all the time), and
    (3) no numeric feature broke (``drift``, recomputed when not given). ``scan``
    (:func:`workbench.data.scan.window_scan` over these windows) supplies the sums (and the drift) without reading the log.

    >>> from workbench import open_case
    >>> from workbench import detect_onset
    >>> case = open_case("sample_data/cases/label_drift")
    >>> onset = detect_onset(case)
    >>> label_shift(case, onset.baseline, onset.incident).labels_moved_alone
    True
    """
    sums = scan.sums({"b": baseline, "i": incident}) if scan is not None else None
    if sums is None:
        sums = collect_windows(case, {"b": baseline, "i": incident}, lambda rows: rows.group_by(PERIOD).agg(sum_aggs()))
    side = {p: {s: np.array([float(sums.filter(pl.col(PERIOD) == p)[s].sum())]) for s in SUMS} for p in ("b", "i")}
    rate = {p: float(metric_from_sums(side[p], "label_rate")[0][0]) for p in side}
    pred = {p: float(metric_from_sums(side[p], "prediction_mean")[0][0]) for p in side}
    # of log(mean); predictions that are all 0 have no spread, and their mean no sampling error (0/0 in the formula)
    pred_se = {p: float(np.nan_to_num(metric_from_sums(side[p], "prediction_mean")[1][0])) for p in side}
    cal = {p: pool_sums(side[p], "calibration_ratio") for p in side}
    nb, ni = side["b"]["labeled"][0], side["i"]["labeled"][0]
    pooled = (side["b"]["positives"][0] + side["i"]["positives"][0]) / max(nb + ni, 1)
    se = two_proportion_se(pooled, nb, ni) if 0 < pooled < 1 else math.nan
    z = (rate["i"] - rate["b"]) / se if se and math.isfinite(se) else math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        # a window whose clicks all stopped counts half a click, as the detector's do: a label rate gone to 0 is a
        # label change of at least log(2 k_b n_i / n_b), not an undefined one that let the check pass
        half = {p: max(side[p]["positives"][0], HALF_CLICK) / side[p]["labeled"][0] for p in side}
        lab = math.log(half["i"] / half["b"]) if nb > 0 and ni > 0 and rate["b"] + rate["i"] > 0 else math.nan
        # and predictions that all fell to 0 count half a click's worth, as a window's calibration ratio does
        served = {p: max(side[p]["pred_sum"][0], HALF_CLICK) / side[p]["rows"][0] for p in side}
        prd = math.log(served["i"] / served["b"]) if side["b"]["rows"][0] > 0 and side["i"]["rows"][0] > 0 else math.nan
    # no error on either side (predictions constant in both windows): no z, as before the error's 0/0 was read as 0
    pz = (prd / math.sqrt(pred_se["b"] ** 2 + pred_se["i"] ** 2)
          if math.isfinite(prd) and pred_se["b"] + pred_se["i"] > 0 else math.nan)
    if drift is None:
        drift = feature_drift(case, baseline, incident, categorical=False, scan=scan)
    broken = tuple(drift.table.filter((pl.col("kind") != "none") & (pl.col("type") == "numeric"))["feature"].to_list())
    crit = NormalDist().inv_cdf(1 - alpha / 2)
    moved = abs(z) >= crit and abs(lab) >= MATERIAL
    prd_se = math.sqrt(pred_se["b"] ** 2 + pred_se["i"] ** 2)
    followed = (min(1.0, max(abs(prd) - 2 * prd_se, 0.0) / abs(lab)) if math.isfinite(lab) and lab != 0 and math.isfinite(prd)
                else 1.0)
    still = followed <= FOLLOW
    test = (f"label rate changed (|z| >= {crit:.2f} and >= 5%), the prediction mean followed < {FOLLOW:.0%} of its relative "
            "change (beyond 2 SE of its own noise), no numeric feature broke")
    return LabelShift(
        baseline=baseline, incident=incident, label_rate_baseline=rate["b"], label_rate_incident=rate["i"],
        label_rate_change=math.expm1(lab) if math.isfinite(lab) else math.nan, label_z=z,
        prediction_mean_baseline=pred["b"], prediction_mean_incident=pred["i"],
        prediction_change=math.expm1(prd) if math.isfinite(prd) else math.nan, prediction_z=pz,
        calibration_ratio_baseline=cal["b"], calibration_ratio_incident=cal["i"], label_log_change=lab,
        prediction_log_change=prd, followed=followed, features_broken=broken,
        labels_moved_alone=bool(moved and still and not broken), test=test)


@dataclass(frozen=True, slots=True)
class LabelDelay:
    """Label completeness by the age of the hour.

    ``table``: ``hour``, ``age_hours`` (hours from the hour's start to the case's
    end), ``rows``, ``labeled``, ``join_rate``, ``completeness`` (join rate over the
    typical, i.e. median, join rate), ``reliable``. ``delay_hours`` counts the
    trailing hours below 90% completeness; ``reliable_until`` is the end of the last
    reliably labeled hour.
    """

    table: pl.DataFrame
    typical_join_rate: float
    delay_hours: int
    reliable_until: datetime

    def to_dict(self) -> dict:
        return {"typical_join_rate": jsonable(self.typical_join_rate), "delay_hours": self.delay_hours,
                "reliable_until": iso(self.reliable_until), "table": records(self.table)}

    def __str__(self) -> str:
        late = self.table.filter(~pl.col("reliable")).sort("hour")
        detail = ", ".join(f"{r['age_hours']:.0f}h old {r['completeness']:.0%}" for r in late.iter_rows(named=True))
        return (f"labels: typical join rate {fmt(self.typical_join_rate, 3)}; the latest {self.delay_hours} hour(s) are still "
                f"waiting ({detail or 'none'}); reliable until {iso(self.reliable_until)}")


def label_delay(case: Case) -> LabelDelay:
    """The label join rate by age of hour, from the case's hourly profile (no data pass).

    >>> from workbench import open_case
    >>> label_delay(open_case("sample_data/cases/control")).delay_hours
    6
    """
    h = case.hourly.sort("hour")
    join = (h["labeled"] / h["rows"]).to_numpy()
    typical = float(np.median(join)) if len(join) else math.nan
    end = reliable_end(join, h["rows"].to_numpy())
    table = h.with_columns(
        ((pl.lit(case.end) - pl.col("hour")).dt.total_seconds() / 3600.0).alias("age_hours"),
        (pl.col("labeled") / pl.col("rows")).alias("join_rate"),
    ).with_columns((pl.col("join_rate") / typical).alias("completeness"),
                   (pl.int_range(pl.len()) < end).alias("reliable"))
    until = h["hour"][end - 1] + timedelta(hours=1) if end else case.start
    return LabelDelay(table=table, typical_join_rate=typical, delay_hours=len(join) - end, reliable_until=until)
