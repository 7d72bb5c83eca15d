"""Calibration: reliability curves per window, and the calibration-only signature.

A serving-side calibration change (a logit offset, a temperature) moves the
predictions' scale but not their order: AUC holds while the calibration ratio
moves. :func:`calibration_shift` tests exactly that; :func:`reliability` draws
mean prediction against label rate per prediction bin, from the same mergeable
score-bin partials as :mod:`workbench.data.quality` (labeled rows only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench._render import fmt, jsonable, records
from workbench.case.columns import LABEL, PREDICTION
from workbench.case.loader import Case
from workbench.data._frames import PERIOD, collect_windows
from workbench.data.quality import EB, SB, finish, quality_partial
from workbench.errors import WorkbenchError
from workbench.metrics import auc, auc_se, calibration_log_se, counted_positives
from workbench.windows import Window

if TYPE_CHECKING:
    from workbench.data.scan import WindowScan

__all__ = ["CalibrationShift", "Reliability", "RowsCalibration", "calibration_of_rows", "calibration_shift", "moved_by_predictions",
           "reliability"]

MATERIAL = math.log(1.05)  # calibration ratio moved by at least 5%
AUC_MATERIAL = 0.01  # an AUC drop below this is not a ranking regression
STRATEGIES = ("quantile", "uniform")


@dataclass(frozen=True, slots=True)
class Reliability:
    """A reliability curve: ``table`` has ``bin``, ``labeled``, ``mean_prediction``, ``label_rate``, ``gap``
    (label rate minus mean prediction), ``ci_low``/``ci_high`` (Wilson 95% interval of the label rate);
    ``ece`` is the window's equal-width expected calibration error (10 bins; ``bins`` bins when uniform)."""

    table: pl.DataFrame
    window: Window
    strategy: str
    ece: float
    calibration_ratio: float

    def pairs(self) -> list[tuple[float, float]]:
        """``(mean_prediction, label_rate)`` per bin, in bin order."""
        return list(zip(self.table["mean_prediction"].to_list(), self.table["label_rate"].to_list(), strict=True))

    def to_dict(self) -> dict:
        return {"window": self.window.to_dict(), "strategy": self.strategy, "ece": jsonable(self.ece),
                "calibration_ratio": jsonable(self.calibration_ratio), "table": records(self.table)}

    def __str__(self) -> str:
        worst = self.table.sort(pl.col("gap").abs(), descending=True).row(0, named=True) if self.table.height else None
        tail = f"; largest gap {worst['gap']:+.4f} at mean prediction {fmt(worst['mean_prediction'], 4)}" if worst else ""
        return (f"reliability {self.window} ({self.table.height} {self.strategy} bins): ECE {fmt(self.ece, 4)}, "
                f"calibration ratio {fmt(self.calibration_ratio)}{tail}")


def _curve(partial: pl.DataFrame, bins: int, strategy: str) -> pl.DataFrame:
    lab = partial.filter(pl.col("labeled") > 0).sort(SB, EB)
    if lab.is_empty():
        return pl.DataFrame(schema={"bin": pl.Int64, "labeled": pl.Int64, "mean_prediction": pl.Float64,
                                    "label_rate": pl.Float64, "gap": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64})
    if strategy == "uniform":
        group = pl.col(EB).cast(pl.Int64)
    else:  # equal labeled mass: bin by the cumulative share of labeled rows before each score bin
        total = lab["labeled"].sum()
        group = ((pl.col("labeled").cum_sum() - pl.col("labeled")) * bins // total).cast(pl.Int64)
    out = lab.with_columns(group.alias("bin")).group_by("bin").agg(
        pl.col("labeled").sum(), pl.col("positives").sum(), pl.col("pred_sum_labeled").sum()).sort("bin")
    n, k = out["labeled"].to_numpy().astype(float), out["positives"].to_numpy()
    z = 1.959964
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return out.select(
        "bin", "labeled", (pl.col("pred_sum_labeled") / pl.col("labeled")).alias("mean_prediction"),
        (pl.col("positives") / pl.col("labeled")).alias("label_rate"),
    ).with_columns((pl.col("label_rate") - pl.col("mean_prediction")).alias("gap"),
                   pl.Series("ci_low", centre - half), pl.Series("ci_high", centre + half))


def _check(bins: int, strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise WorkbenchError("reliability", f"unknown strategy '{strategy}'.", f"use one of {list(STRATEGIES)}.")
    if bins < 2:
        raise WorkbenchError("reliability", f"bins={bins} is too few.", "use at least 2 bins (10 is usual).")


def _partials(case: Case, windows: dict[str, Window], bins: int, strategy: str) -> dict[str, pl.DataFrame]:
    part = collect_windows(case, windows, lambda rows: quality_partial(rows, [PERIOD], ece_bins=bins if strategy == "uniform" else 10))
    return {name: part.filter(pl.col(PERIOD) == name).drop(PERIOD) for name in windows}


def reliability(case: Case, window: Window, bins: int = 10, strategy: str = "quantile") -> Reliability:
    """The reliability curve of ``window``: ``bins`` bins of equal labeled mass (``quantile``, default:
    CTR predictions crowd near 0) or of equal width in prediction (``uniform``).

    >>> from workbench import open_case
    >>> from workbench import Window
    >>> curve = reliability(open_case("sample_data/cases/control"), Window.hours("2026-11-19T00:00:00Z", 24))
    >>> curve.table.height, round(curve.calibration_ratio, 1)
    (10, 1.0)
    """
    _check(bins, strategy)
    part = _partials(case, {"w": window}, bins, strategy)["w"]
    return _reliability(part, window, bins, strategy)


def _reliability(part: pl.DataFrame, window: Window, bins: int, strategy: str) -> Reliability:
    summary = finish(part, []) if part.height else None
    ece = summary["ece"][0] if summary is not None else math.nan  # equal-width bins: 10, or `bins` when uniform
    cr = summary["calibration_ratio"][0] if summary is not None else math.nan
    return Reliability(table=_curve(part, bins, strategy), window=window, strategy=strategy,
                       ece=ece if ece is not None else math.nan, calibration_ratio=cr if cr is not None else math.nan)


@dataclass(frozen=True, slots=True)
class CalibrationShift:
    """AUC and calibration before/after, and the calibration-only signature.

    ``auc_se`` is the standard error of the AUC difference (Hanley & McNeil per
    window, independent windows), ``auc_drop_z`` the drop over it; ``calibration_z`` the z statistic of the change
    of log calibration ratio (binomial error of the positives). ``calibration_only``
    = ``calibration_moved`` (ratio moved >= 5%, two-sided ``alpha``), ``ranking_steady``
    (AUC dropped by less than max(0.01, 2.58 SE)) and the predictions, not the labels,
    moved (``|prediction_change| > |label_rate_change|``, relative, log scale).
    """

    baseline: Window
    incident: Window
    auc_baseline: float
    auc_incident: float
    auc_se: float
    auc_drop_z: float
    calibration_ratio_baseline: float
    calibration_ratio_incident: float
    calibration_z: float
    ece_baseline: float
    ece_incident: float
    ne_baseline: float
    ne_incident: float
    prediction_change: float
    label_rate_change: float
    calibration_moved: bool
    ranking_steady: bool
    calibration_only: bool
    reliability_baseline: Reliability
    reliability_incident: Reliability
    test: str

    def to_dict(self) -> dict:
        fields = {f: getattr(self, f) for f in self.__slots__ if not f.startswith("reliability")}
        out: dict = jsonable(fields)  # type: ignore[assignment]  # jsonable keeps a dict a dict
        out["reliability_baseline"] = self.reliability_baseline.to_dict()
        out["reliability_incident"] = self.reliability_incident.to_dict()
        return out

    def __str__(self) -> str:
        verdict = "calibration-only change" if self.calibration_only else "not a calibration-only change"
        return (f"{verdict}: AUC {fmt(self.auc_baseline)} -> {fmt(self.auc_incident)} (SE {fmt(self.auc_se)}), "
                f"calibration ratio {fmt(self.calibration_ratio_baseline)} -> {fmt(self.calibration_ratio_incident)} "
                f"(z {fmt(self.calibration_z, 1)}), NE {fmt(self.ne_baseline)} -> {fmt(self.ne_incident)}")


def calibration_shift(case: Case, baseline: Window, incident: Window, *, alpha: float = 0.001, bins: int = 10,
                      scan: WindowScan | None = None) -> CalibrationShift:
    """Ranking quality (AUC) vs calibration between two windows, in one pass (none with ``scan``,
    :func:`workbench.data.scan.window_scan` over these windows: the same partials).

    >>> from workbench import open_case
    >>> from workbench import detect_onset
    >>> case = open_case("sample_data/cases/calibration_shift")
    >>> onset = detect_onset(case)
    >>> calibration_shift(case, onset.baseline, onset.incident).calibration_only
    True
    """
    parts = scan.quality_parts({"b": baseline, "i": incident}) if scan is not None else None
    if parts is None:
        parts = _partials(case, {"b": baseline, "i": incident}, bins, "quantile")
    s = {k: finish(v, []).row(0, named=True) if v.height else None for k, v in parts.items()}

    def get(k: str, col: str) -> float:
        row = s[k]
        v = row[col] if row is not None else None
        return float(v) if v is not None else math.nan

    se = {k: auc_se(get(k, "auc"), get(k, "positives"), get(k, "labeled") - get(k, "positives")) for k in s}
    d_se = math.sqrt(se["b"] ** 2 + se["i"] ** 2)
    cr_b, cr_i = get("b", "calibration_ratio"), get("i", "calibration_ratio")

    def var_log(k: str) -> float:
        n, pos = get(k, "labeled"), get(k, "positives")
        return (1 - pos / n) / pos if n > 0 and pos > 0 else math.nan

    log_change = math.log(cr_i / cr_b) if cr_b > 0 and cr_i > 0 else math.nan
    cz = log_change / math.sqrt(var_log("b") + var_log("i")) if math.isfinite(log_change) else math.nan
    crit = NormalDist().inv_cdf(1 - alpha / 2)
    moved = bool(abs(cz) >= crit and abs(log_change) >= MATERIAL)
    drop = get("b", "auc") - get("i", "auc")
    steady = bool(math.isfinite(drop) and drop < max(AUC_MATERIAL, 2.576 * d_se))

    def log_ratio(col: str) -> float:
        a, b = get("b", col), get("i", col)
        return math.log(b / a) if a > 0 and b > 0 else math.nan

    pm, lr = log_ratio("prediction_mean"), log_ratio("label_rate")
    predictions_side = bool(abs(pm) > abs(lr)) if math.isfinite(pm) and math.isfinite(lr) else False
    test = (f"calibration ratio moved >= 5% with |z| >= {crit:.2f}, AUC dropped by less than "
            f"max({AUC_MATERIAL}, 2.58 SE = {2.576 * d_se:.4f}), and the prediction mean moved more than the label rate")
    return CalibrationShift(
        baseline=baseline, incident=incident, auc_baseline=get("b", "auc"), auc_incident=get("i", "auc"), auc_se=d_se,
        auc_drop_z=drop / d_se if d_se > 0 and math.isfinite(drop) else math.nan,
        calibration_ratio_baseline=cr_b, calibration_ratio_incident=cr_i, calibration_z=cz,
        ece_baseline=get("b", "ece"), ece_incident=get("i", "ece"), ne_baseline=get("b", "normalized_entropy"),
        ne_incident=get("i", "normalized_entropy"), prediction_change=math.expm1(pm), label_rate_change=math.expm1(lr),
        calibration_moved=moved, ranking_steady=steady, calibration_only=moved and steady and predictions_side,
        reliability_baseline=_reliability(parts["b"], baseline, bins, "quantile"),
        reliability_incident=_reliability(parts["i"], incident, bins, "quantile"), test=test)


def moved_by_predictions(prediction_log_change: float, label_log_change: float) -> float:
    """The share of a calibration ratio's move the predictions made rather than the labels (``|Δ ln mean p|`` over
    the sum of both sides): a label change moves the ratio too, and is not a calibration shift."""
    p, y = abs(prediction_log_change), abs(label_log_change)
    return p / (p + y) if p + y > 0 else 0.0


MIN_CLICKS = 20  # each window's rows must hold (or expect) this many clicks for their calibration to be read


@dataclass(frozen=True, slots=True)
class RowsCalibration:
    """The calibration ratio's move between two sets of labelled rows (:func:`calibration_of_rows`).

    ``ratio_baseline`` is the baseline rows' ``sum p / sum y`` reweighted to the incident rows' mix of slice cells;
    ``z`` the log move over its binomial error (:func:`workbench.metrics.calibration_log_se`, both windows);
    ``prediction_log_change`` and ``label_log_change`` the two sides of that move (log of the reweighted means);
    ``auc_drop_z`` the AUC drop over its Hanley-McNeil error."""

    rows_baseline: int
    rows_incident: int
    ratio_baseline: float
    ratio_incident: float
    z: float
    prediction_log_change: float
    label_log_change: float
    auc_baseline: float
    auc_incident: float
    auc_drop_z: float

    @property
    def log_change(self) -> float:
        return math.log(self.ratio_incident / self.ratio_baseline)

    @property
    def by_predictions(self) -> float:
        return moved_by_predictions(self.prediction_log_change, self.label_log_change)

    def to_dict(self) -> dict:
        return jsonable({f: getattr(self, f) for f in self.__slots__})  # type: ignore[return-value]

    def __str__(self) -> str:
        return (f"on the {self.rows_incident:,} sampled incident rows it did not reach (against {self.rows_baseline:,} "
                f"baseline rows, reweighted to their slice mix), the calibration ratio went {fmt(self.ratio_baseline)}"
                f" -> {fmt(self.ratio_incident)} (z {fmt(self.z, 1)}) and AUC {fmt(self.auc_baseline)} -> "
                f"{fmt(self.auc_incident)}")


def calibration_of_rows(before: pl.DataFrame, after: pl.DataFrame, cells: tuple[str, ...] = ()) -> RowsCalibration | None:
    """How the calibration ratio moved between the rows ``before`` and ``after`` (frames with the prediction, the label
    and the slice columns ``cells``); None when either holds fewer than :data:`MIN_CLICKS` clicks, observed or
    expected, on labelled rows.

    Why: a break reaches only some rows (a feature that lost coverage leaves the rows that kept it as they were), so
    a calibration shift beside it shows, undiluted by the break, on the rows it did not reach. Those rows may be a
    different mix of traffic in the two windows (a partner that lost the feed), so the baseline's sums are
    reweighted to the incident's share of each slice cell (post-stratification; cells the baseline lacks are left
    out of both) before the two ratios are compared.
    """
    by = list(cells) or ["_cell"]

    def sums(rows: pl.DataFrame) -> pl.DataFrame:
        labelled = rows.filter(pl.col(LABEL).is_not_null() & pl.col(PREDICTION).is_not_null())
        if not cells:
            labelled = labelled.with_columns(pl.lit(0).alias("_cell"))
        return labelled.group_by(by).agg(pl.len().alias("n"), pl.col(PREDICTION).cast(pl.Float64).sum().alias("p"),
                                        pl.col(LABEL).cast(pl.Float64).sum().alias("y"))

    joined = sums(after).join(sums(before), on=by, how="inner", suffix="_b", nulls_equal=True)
    if joined.is_empty():
        return None
    n_i, p_i, y_i = (joined[c].to_numpy().astype(float) for c in ("n", "p", "y"))
    n_b, p_b, y_b = (joined[c].to_numpy().astype(float) for c in ("n_b", "p_b", "y_b"))
    if min(counted_positives(y_i.sum(), p_i.sum()), counted_positives(y_b.sum(), p_b.sum())) < MIN_CLICKS:
        return None
    w = n_i / n_b  # the incident's rows per baseline row, per cell
    wp, wy = float((w * p_b).sum()), float((w * y_b).sum())  # reweighted, the baseline holds the incident's rows per cell
    if min(wy, float(y_i.sum()), wp, float(p_i.sum())) <= 0:
        return None
    se = math.hypot(float(calibration_log_se(n_b.sum(), p_b.sum(), y_b.sum())),
                    float(calibration_log_se(n_i.sum(), p_i.sum(), y_i.sum())))
    ratio_b, ratio_i = wp / wy, float(p_i.sum() / y_i.sum())
    ab, ai = (auc(rows[PREDICTION].cast(pl.Float64).to_numpy(), rows[LABEL].cast(pl.Float64).to_numpy())
              for rows in (before, after))
    drop_se = math.hypot(auc_se(ab, y_b.sum(), n_b.sum() - y_b.sum()), auc_se(ai, y_i.sum(), n_i.sum() - y_i.sum()))
    return RowsCalibration(
        rows_baseline=int(n_b.sum()), rows_incident=int(n_i.sum()), ratio_baseline=ratio_b, ratio_incident=ratio_i,
        z=math.log(ratio_i / ratio_b) / se if se > 0 else math.nan,
        prediction_log_change=math.log(float(p_i.sum()) / wp), label_log_change=math.log(float(y_i.sum()) / wy),
        auc_baseline=ab, auc_incident=ai,
        auc_drop_z=(ab - ai) / drop_se if drop_se > 0 and math.isfinite(ab - ai) else math.nan)
