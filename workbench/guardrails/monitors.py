"""The guardrail monitors of ``workbench guard``: the newest window against the one before it, trip or pass.

A scheduler runs ``workbench guard CASE`` before publishing a snapshot, a feature or a
training window; exit status 1 stops it. Every monitor compares the **newest window**
(by default the last ``[guard] window`` of data, one day) with the **baseline**, the window
of the same length just before it, so a daily run compares each day with the day before:

==================  ======================  ==================================================================
monitor             target                  trips when (``[guard]`` key, default)
==================  ======================  ==================================================================
feature_coverage    each feature            its share of non-null values fell by more than ``coverage_drop``
                                            (0.1, absolute); ``value`` the window's coverage, ``threshold``
                                            the baseline's minus the drop
feature_scale       each feature            its typical magnitude (mean ``|x|``) moved by more than
                                            ``scale_factor`` (x2) either way, and the move is new (drift
                                            severity at least 0.1, the floor of a small effect: a clock
                                            feature's day-to-day swing is usual); ``value`` the ratio
feature_drift       each feature            its drift severity, the Jensen-Shannon distance (null bin
                                            included) *beyond the same distance over the same lag one window
                                            earlier* (organic drift; :func:`workbench.data.drift.feature_drift`),
                                            is at least ``drift_severity`` (0.25); it also reads values that
                                            no longer belong to their rows
label_drift         the label column        the label rate moved by more than ``label_change`` (10 %) and
                                            by ``z`` (4) standard errors (two-proportion z)
calibration         calibration_ratio       Σ prediction / Σ label moved by more than ``calibration_change``
                                            (10 %) and by ``z`` standard errors of its log
calibration         unexplained_            the predictions moved by more than ``serving_change`` (25 %) in odds
                    prediction_shift        that no input explains, by ``z`` standard errors: no labels needed,
                                            so it sees a calibration or post-processing change while labels are
                                            still joining (model-free, :func:`workbench.model.rescore.unexplained_shift`;
                                            ``value`` the odds ratio left unexplained beyond the surrogate's error).
                                            A routine refresh moves the predictions past their inputs too, by
                                            up to 18 % on the dev controls: hence a wider limit than the ratio's
quality             normalized_entropy,     NE rose by more than ``ne_rise`` (2 %), or AUC fell by more than
                    auc                     ``auc_drop`` (1 %), each by ``z`` standard errors (labels only)
quality             unscored_rows           the share of rows served without a finite prediction (NaN, inf,
                                            null), which every other monitor leaves out, rose by more than
                                            ``unscored_rise`` (1 point) and by ``z`` standard errors
                                            (two-proportion z; by the quarter hours the windows cover); ``value`` the
                                            window's share, ``threshold`` the baseline's plus the rise
(both)                                      calibration_ratio and quality also trip when the diagnosis's change-point
                                            scan over the log up to the window's end finds the metric regressing
                                            from a period inside the window, or inside the baseline and still in
                                            the window: an onset in yesterday's last hours, which yesterday's scan
                                            could not see yet, trips today (and a regression yesterday's run saw
                                            trips today's too while it lasts). Family-wise alpha 0.001: at most
                                            0.1 % more false alarms per run. A whole-window comparison dilutes a
                                            regression that starts late in the window
quality             METRIC in SEGMENT       one segment (``column=value``; under 5 % of the rows, on its clicks'
                    (``segments`` when      counts alone) regresses alone from a period the same scan would count,
                    none does)              on its own series
                                            (family-wise alpha 0.001 over every segment and metric, each confirmed
                                            by the slice search;
                                            :func:`workbench.data.segments.detect_segment_onset`): a segment's
                                            collapse that the whole traffic's monitors dilute. ``calibration``
                                            when the metric is the ratio; ``value`` the segment's metric after
                                            over before, ``threshold`` null
(traffic mix)                               label_drift, calibration_ratio and normalized_entropy pass when they
                                            would trip on a move the traffic mix carries (:mod:`workbench.data.mix`):
                                            beyond the limit over a slice column's values both windows hold, within
                                            it and at most half of it inside them under either window's weights; the
                                            detail says what moved
(features, label)                            the feature monitors and label_drift also trip when the window's
                                            last quarter, against the same hours one window earlier (the daily
                                            cycle stays out), trips them (each needs 2,000 rows): a feed frozen
                                            at 19:00 is a fifth of a day, which a whole-day comparison dilutes
snapshot_gate       the newest snapshot     it fails :func:`workbench.model.validation.validate_snapshot`
                                            against the stable one (needs ``model.py``; ``snapshot_gate``)
==================  ======================  ==================================================================

Ratios (``label_drift``, ``calibration``, ``quality``) have ``value`` = window / baseline and
``threshold`` = 1 ± the allowed change (a segment's row: over its scan's windows, and no
threshold). A monitor that cannot run says why (``skip``): no labelled rows in a window, no
features, no model. Each label-based monitor needs both an effect size and a z, because on
millions of rows every change is significant and on a hundred rows a large change can be noise.

**False alarms.** The defaults were set on the proving ground's development controls only
(quiet traffic, organic drift, traffic-mix drift; the held-back controls were never used), and
their false-alarm rate was then measured on fresh development controls by
``benchmarks/guard_mitigations.py``: the figures, with the number of cases and the trip rate on
incidents whose onset falls in the window, are in the README (*Guardrails*) and in
``benchmarks/results/guard_mitigations.json``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

from workbench._render import fmt
from workbench.metrics import two_proportion_se
from workbench.windows import Window, iso

if TYPE_CHECKING:
    from collections.abc import Callable

    from workbench.case.config import GuardConfig
    from workbench.case.loader import Case
    from workbench.data.mix import MixReading

__all__ = ["MONITORS", "STATUSES", "GuardReport", "MonitorResult", "guard", "newest_window"]

MONITORS = ("feature_coverage", "feature_scale", "feature_drift", "label_drift", "calibration", "quality", "snapshot_gate")
STATUSES = ("trip", "pass", "skip")
MIN_LABELED = 200  # labelled rows per window below which a label-based monitor is skipped
UNEXPLAINED_ROWS = 20_000  # rows per window the unexplained prediction shift reads
LATE = 4  # the window's last quarter is also guarded on its own, against the same hours before (_late_part) ...
LATE_ROWS = 2_000  # ... when it and they hold this many rows


@dataclass(frozen=True, slots=True)
class MonitorResult:
    """One monitor's verdict on one target (a row of the contract's ``monitors``)."""

    monitor: str
    target: str
    status: str
    value: float | None
    threshold: float | None
    detail: str

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS or self.status not in STATUSES:
            raise ValueError(f"monitor {self.monitor!r} / status {self.status!r}: use one of {MONITORS} / {STATUSES}")

    def to_dict(self) -> dict:
        def num(v: float | None) -> float | None:
            return round(float(v), 6) if v is not None and math.isfinite(v) else None

        return {"monitor": self.monitor, "target": self.target, "status": self.status, "value": num(self.value),
                "threshold": num(self.threshold), "detail": self.detail}


@dataclass(frozen=True, slots=True)
class GuardReport:
    """Every monitor's verdict on the newest window; ``tripped`` when one tripped (exit status 1)."""

    case: str
    window: Window
    baseline: Window
    monitors: tuple[MonitorResult, ...]
    thresholds: GuardConfig

    @property
    def tripped(self) -> bool:
        return any(m.status == "trip" for m in self.monitors)

    @property
    def trips(self) -> tuple[MonitorResult, ...]:
        return tuple(m for m in self.monitors if m.status == "trip")

    def to_dict(self) -> dict:
        """The JSON of ``workbench guard --json`` (contract v2)."""
        return {"case": self.case, "window": {"from": iso(self.window.start), "to": iso(self.window.end)},
                "tripped": self.tripped, "monitors": [m.to_dict() for m in self.monitors]}

    def __str__(self) -> str:
        lines = [f"guard: {self.case}", f"window {self.window} against the baseline {self.baseline}",
                 f"verdict: {'TRIPPED' if self.tripped else 'pass'} ({len(self.trips)} of "
                 f"{sum(m.status != 'skip' for m in self.monitors)} monitors tripped)"]
        shown = [m for m in self.monitors if m.status != "pass"]
        for m in sorted(shown, key=lambda m: (m.status != "trip", MONITORS.index(m.monitor))):
            lines.append(f"  [{m.status:>4}] {m.monitor} {m.target}: {m.detail}")
        passed = sum(m.status == "pass" for m in self.monitors)
        lines.append(f"  ({passed} monitor(s) passed; thresholds: " + ", ".join(f"{k}={v}" for k, v in asdict(self.thresholds).items())
                     + ")")
        return "\n".join(lines)


def newest_window(case: Case, length: str = "1d") -> Window:
    """The last ``length`` of the case's data (``1h``, ``6h``, ``1d``, ``1w``), ending with its last hour of traffic
    (scored or not: :attr:`workbench.case.loader.Case.last_served`)."""
    from workbench.case.grain import grain_delta

    end = case.last_served  # hours the serving path left wholly unscored are the newest, for unscored_rows to see
    return Window(max(end - grain_delta(length), case.start), end)


def guard(case: Case, window: Window | None = None, *, thresholds: GuardConfig | None = None) -> GuardReport:
    """Run every monitor on ``window`` (default: :func:`newest_window`) against the same span just before it.

    ``thresholds`` default to the case's ``[guard]`` table (``workbench.toml``), else the
    defaults the module docstring states with their measured false-alarm rate.

    >>> from workbench import open_case
    >>> report = guard(open_case("sample_data/cases/control"))
    >>> report.tripped, sorted({m.monitor for m in report.monitors})[:3]
    (False, ['calibration', 'feature_coverage', 'feature_drift'])
    """
    t = thresholds or case.config.guard
    given = window is not None
    window = window or newest_window(case, t.window)
    case.require_rows(window, "--window", "pick a window inside the log, or --window latest (the newest [guard] window, "
                      "a day by default).", unscored_too=True)
    length = window.duration
    if window.start - length < case.start:
        length = max(window.start - case.start, timedelta(0))
    if length <= timedelta(0):
        from workbench.errors import WorkbenchError

        raise WorkbenchError(case.sources.get("predictions", case.root), f"no data before the window {window} to compare it with.",
                             f"pick a window that starts after {case.start:%Y-%m-%d %H:%M} UTC" + (
                                 "." if given else f", or a shorter [guard] window (now {t.window}) in workbench.toml: "
                                 "the newest window needs one as long before it."))
    baseline = Window(window.start - length, window.start)
    results = [*_feature_monitors(case, baseline, window, t), *_label_monitors(case, baseline, window, t),
               _unexplained_monitor(case, baseline, window, t), _unscored_monitor(case, baseline, window, t),
               _snapshot_gate(case, window, t)]
    late = _late_part(case, baseline, window)
    if late is not None:
        results = _with_late(results, [*_feature_monitors(case, *late, t), _label_drift(case, *late, t)], late[1])
    return GuardReport(case=case.name, window=window, baseline=baseline, monitors=tuple(results), thresholds=t)


# ---------------------------------------------------------------- a break late in the window
def _late_part(case: Case, baseline: Window, window: Window) -> tuple[Window, Window] | None:
    """The window's last ``1 / LATE`` and the same hours of the day as many whole days earlier as the window spans
    (one at least), when both hold ``LATE_ROWS`` rows: a feature that broke or labels that changed in the window's last
    hours are diluted in a whole-day comparison (a feed frozen at 19:00 is a fifth of the day), and the same hours of
    an earlier day keep the daily cycle out of the comparison. (One window earlier, as this read before, is another
    time of day for a window that is not whole days: an outside test's 18-hour window compared 19:30-24:00 with
    01:30-06:00 and tripped a time-of-day prior at x2.14.) None when the window is too short or too thin to split."""
    from workbench.case.columns import TS

    part = window.duration / LATE
    if part < timedelta(hours=1) or baseline.duration < window.duration:
        return None
    late = Window(window.end - part, window.end)
    back = timedelta(days=max(1, math.ceil(window.duration / timedelta(days=1))))
    before = Window(late.start - back, late.end - back)
    counts = case.predictions.select(*(late_or_before.contains(TS).sum().alias(str(i))
                                       for i, late_or_before in enumerate((before, late)))).collect(engine="streaming")
    return (before, late) if min(counts.row(0)) >= LATE_ROWS else None


def _with_late(whole: list[MonitorResult], late: list[MonitorResult], part: Window) -> list[MonitorResult]:
    """Each monitor's verdict on the whole window, tripped instead by its verdict on the late part when only that
    tripped (its detail says so)."""
    tripped = {(m.monitor, m.target): m for m in late if m.status == "trip"}
    out = []
    for m in whole:
        t = tripped.get((m.monitor, m.target))
        out.append(m if t is None or m.status == "trip" else
                   MonitorResult(t.monitor, t.target, "trip", t.value, t.threshold,
                                 f"in the window's last {_hours(part)} against the same hours before: {t.detail} "
                                 f"(the whole window: {m.detail})"))
    return out


def _hours(window: Window) -> str:
    h = window.duration.total_seconds() / 3600
    return f"{h:g} h" if h < 48 else f"{h / 24:g} days"


# ---------------------------------------------------------------- the feature monitors
def _feature_monitors(case: Case, baseline: Window, window: Window, t: GuardConfig) -> list[MonitorResult]:
    if not case.features:
        return [MonitorResult(m, "*", "skip", None, None, "no feature columns mapped ([columns] features)")
                for m in ("feature_coverage", "feature_scale", "feature_drift")]
    from workbench.data.drift import FLOOR, OUT_OF_BAND, feature_drift, out_of_band

    table = feature_drift(case, baseline, window, categorical=False).table.filter(pl.col("type") == "numeric")
    clocks: dict[str, str] | None = None

    def out_of_scale(row: dict) -> float:
        """Values out of scale beyond the baseline's (:func:`out_of_band`), 0 for a clock feature: a short baseline's
        hours put the next day's hour of the week out of its band by the calendar alone."""
        nonlocal clocks
        share = out_of_band(row)
        if share < OUT_OF_BAND:
            return share
        if clocks is None:
            from workbench.data.calendar import calendar_features
            from workbench.model.rescore import sample_window

            rows = sample_window(case, baseline, UNEXPLAINED_ROWS, seed=0)
            clocks = calendar_features(rows, rows, case.features, follow=False)
        return 0.0 if row["feature"] in clocks else share

    out: list[MonitorResult] = []
    for r in table.sort("feature").iter_rows(named=True):  # one row per feature: the result table, not the data
        f = r["feature"]
        cb, ci = r["coverage_baseline"], r["coverage_incident"]
        if cb is None or ci is None or cb <= 0:
            out.append(MonitorResult("feature_coverage", f, "skip", ci, None, "no values in the baseline to compare with"))
        else:
            floor = cb - t.coverage_drop
            trip = ci < floor
            out.append(MonitorResult("feature_coverage", f, "trip" if trip else "pass", ci, floor,
                                     f"coverage {cb:.1%} → {ci:.1%} (trips below {floor:.1%})"))
        ratio, sev = r["scale_ratio"], r["severity"]
        if ratio is None or not math.isfinite(ratio) or ratio <= 0:
            out.append(MonitorResult("feature_scale", f, "skip", None, t.scale_factor, "no magnitude to compare (no values)"))
        else:
            # a break is new when it moved the distribution, or put values out of scale on a share of the rows
            tail = out_of_scale(r)
            new = (sev is not None and math.isfinite(sev) and sev >= FLOOR) or tail >= OUT_OF_BAND
            trip = max(ratio, 1 / ratio) > t.scale_factor and new
            usual = "" if new or max(ratio, 1 / ratio) <= t.scale_factor else "; it moves this much usually (drift severity " \
                f"{fmt(sev, 2)} < {FLOOR:g}), e.g. a clock feature"
            if tail >= OUT_OF_BAND:
                usual = f"; {tail:.1%} of its values out of scale"
            out.append(MonitorResult("feature_scale", f, "trip" if trip else "pass", ratio, t.scale_factor,
                                     f"typical magnitude x{ratio:.3g} (trips beyond x{t.scale_factor:g} either way{usual})"))
        if sev is None or not math.isfinite(sev):
            out.append(MonitorResult("feature_drift", f, "skip", None, t.drift_severity, "no distribution to compare"))
        else:
            trip = sev >= t.drift_severity
            usual = f", usual {fmt(r['js_usual'], 2)}" if r.get("js_usual") is not None else ""
            out.append(MonitorResult("feature_drift", f, "trip" if trip else "pass", sev, t.drift_severity,
                                     f"drift severity {sev:.2f} ({r['kind']}; JS {fmt(r['js'], 2)}{usual}; trips at "
                                     f"{t.drift_severity:g})"))
    return out


# ---------------------------------------------------------------- the label-based monitors
def _label_monitors(case: Case, baseline: Window, window: Window, t: GuardConfig) -> list[MonitorResult]:
    from workbench.data.onset import measure_windows

    label = case.columns.label
    labeled, positives, reason = _label_counts(case, baseline, window)
    if reason is not None:
        return [MonitorResult("label_drift", label, "skip", None, None, reason),
                MonitorResult("calibration", "calibration_ratio", "skip", None, None, reason),
                MonitorResult("quality", "normalized_entropy", "skip", None, None, reason),
                MonitorResult("quality", "auc", "skip", None, None, reason),
                MonitorResult("quality", "segments", "skip", None, None, reason)]
    mix = _mix_readings(case, baseline, window)
    out = [_label_rate(label, labeled, positives, t, mix)]
    m = measure_windows(case, baseline, window)
    found = _change_points(case, baseline, window)
    out.append(_segment_change_point(case, baseline, window))
    for v in m.metrics:
        if v.metric == "calibration_ratio":
            r = v.current / v.baseline if v.baseline > 0 else math.nan
            out.append(_scanned(_mix_pass(_ratio("calibration", "calibration_ratio", r, t.calibration_change, v.severity, t.z,
                                                 f"calibration ratio {v.baseline:.3f} → {v.current:.3f} ({_pct(r)}, "
                                                 f"{v.severity:.1f} SE; trips beyond ±{t.calibration_change:.0%} and {t.z:g} "
                                                 f"SE)"), mix, "calibration_ratio", t.calibration_change), found))
        elif v.metric in ("normalized_entropy", "auc"):
            r = v.current / v.baseline if v.baseline > 0 else math.nan
            limit = t.ne_rise if v.metric == "normalized_entropy" else t.auc_drop
            worse = (r - 1) if v.metric == "normalized_entropy" else (1 - r)
            name = "NE" if v.metric == "normalized_entropy" else "AUC"
            if not math.isfinite(r) or not math.isfinite(v.severity):
                out.append(MonitorResult("quality", v.metric, "skip", None, None, f"{name} could not be measured in both windows"))
                continue
            trip = worse > limit and v.severity >= t.z
            threshold = 1 + limit if v.metric == "normalized_entropy" else 1 - limit
            result = MonitorResult("quality", v.metric, "trip" if trip else "pass", r, threshold,
                                   f"{name} {v.baseline:.4f} → {v.current:.4f} ({_pct(r)}, {v.severity:.1f} SE worse; trips "
                                   f"{'above' if name == 'NE' else 'below'} x{threshold:.3g} and {t.z:g} SE)")
            out.append(_scanned(_mix_pass(result, mix, v.metric, limit) if name == "NE" else result, found))
    return out


def _label_counts(case: Case, baseline: Window, window: Window) -> tuple[dict[str, float], dict[str, float], str | None]:
    """Labelled rows and positives of the baseline (``b``) and the window (``w``), and why a label-based monitor
    cannot run on them (None when it can)."""
    from workbench.data.quality import quality_between

    counts = {k: quality_between(case, w) for k, w in (("b", baseline), ("w", window))}
    labeled = {k: float(v["labeled"].sum()) if v.height else 0.0 for k, v in counts.items()}
    positives = {k: float((v["label_rate"] * v["labeled"]).sum()) if v.height else 0.0 for k, v in counts.items()}
    few = [k for k in ("b", "w") if labeled[k] < MIN_LABELED or positives[k] < 1 or positives[k] > labeled[k] - 1]
    if not few:
        return labeled, positives, None
    which = " and ".join({"b": "the baseline", "w": "the window"}[k] for k in few)
    return labeled, positives, (f"too few labelled rows in {which} ({', '.join(f'{labeled[k]:,.0f}' for k in few)}; "
                                f"needs {MIN_LABELED} with both classes): labels may still be joining")


def _label_rate(label: str, labeled: dict[str, float], positives: dict[str, float], t: GuardConfig,
                mix: Callable[[], list[MixReading]]) -> MonitorResult:
    """``label_drift`` from the labelled rows and positives of the baseline (``b``) and the window (``w``), passed when
    the traffic mix carries its move (:func:`_mix_pass`)."""
    rate_b, rate_w = positives["b"] / labeled["b"], positives["w"] / labeled["w"]
    pooled = (positives["b"] + positives["w"]) / (labeled["b"] + labeled["w"])
    se = two_proportion_se(pooled, labeled["b"], labeled["w"])
    z = (rate_w - rate_b) / se if se > 0 else 0.0
    ratio = rate_w / rate_b if rate_b > 0 else math.nan
    return _mix_pass(_ratio("label_drift", label, ratio, t.label_change, abs(z), t.z,
                            f"label rate {rate_b:.3%} → {rate_w:.3%} ({_pct(ratio)}, z {z:+.1f}; trips beyond "
                            f"±{t.label_change:.0%} and {t.z:g} SE)"), mix, "label_rate", t.label_change)


def _label_drift(case: Case, baseline: Window, window: Window, t: GuardConfig) -> MonitorResult:
    """The ``label_drift`` monitor alone (the late part of the window: calibration and quality have the scan)."""
    labeled, positives, reason = _label_counts(case, baseline, window)
    if reason is not None:
        return MonitorResult("label_drift", case.columns.label, "skip", None, None, reason)
    return _label_rate(case.columns.label, labeled, positives, t, _mix_readings(case, baseline, window))


MIXED = ("label_rate", "calibration_ratio", "normalized_entropy")  # the metrics of the monitors the traffic mix may pass


def _mix_readings(case: Case, baseline: Window, window: Window) -> Callable[[], list[MixReading]]:
    """The window's label rate, calibration ratio and NE at the baseline's mix of each slice column
    (:func:`workbench.data.mix.mix_readings`), read once and only when a monitor that trips asks."""
    from functools import cache

    from workbench.data._sums import window_cells
    from workbench.data.mix import mix_readings

    @cache
    def read() -> list[MixReading]:
        columns = tuple(case.slices)
        if not columns:
            return []
        return mix_readings(window_cells(case, baseline, window, columns), columns, MIXED, baseline, window)

    return read


def _mix_pass(result: MonitorResult, mix: Callable[[], list[MixReading]], metric: str, limit: float) -> MonitorResult:
    """``result``, passed when it tripped on a move the traffic mix carries (:func:`workbench.data.mix.carried` with the
    monitor's limit: beyond it over the values a slice column's windows share, within it and at most half of that
    inside the values under either window's weights): a population that moved between segments whose own labels,
    calibration and NE held, as the diagnosis reads a regression. ``metric``: the monitor's (one of ``MIXED``);
    ``limit``: the relative change allowed, either way for the ratios, upward for NE."""
    from workbench.data.mix import carried

    if result.status != "trip":
        return result

    def limits(r: MixReading, before: str, after: str) -> float:
        b, a = r.values[before], r.values[after]
        if not (b > 0 and a > 0):
            return math.nan
        return (a / b - 1) / limit if metric == "normalized_entropy" else abs(math.log(a / b)) / math.log1p(limit)

    for r in mix():
        if r.metric == metric and carried(r, limits):
            return MonitorResult(result.monitor, result.target, "pass", result.value, result.threshold,
                                 f"{result.detail}; {r}: within the limit, a traffic-mix finding")
    return result


def _unexplained_monitor(case: Case, baseline: Window, window: Window, t: GuardConfig) -> MonitorResult:
    """The label-free half of calibration: the prediction shift no input explains (a serving-side change)."""
    from workbench.model.rescore import USABLE_R2, sample_window, unexplained_shift

    target = "unexplained_prediction_shift"
    if not case.features:
        return MonitorResult("calibration", target, "skip", None, None, "no feature columns mapped ([columns] features)")
    base, new = (sample_window(case, w, UNEXPLAINED_ROWS, seed=i) for i, w in enumerate((baseline, window)))
    u = unexplained_shift(base, new, case.features)
    threshold = 1 + t.serving_change
    if u is None or not u.usable:
        why = ("too few of the window's rows lie inside what the baseline held (its values, its hours of the day)"
               if u is None else f"the surrogate of the logged prediction has R^2 {u.r2:.2f} on "
               f"held-out baseline rows (needs {USABLE_R2:g})")
        return MonitorResult("calibration", target, "skip", None, threshold, f"cannot separate inputs from serving: {why}")
    odds = math.exp(math.copysign(u.margin, u.unexplained))
    trip = u.margin > math.log(threshold) and u.z >= t.z
    return MonitorResult("calibration", target, "trip" if trip else "pass", odds, threshold,
                         f"{u} (trips beyond ±{t.serving_change:.0%} in odds and {t.z:g} SE)")


def _unscored_monitor(case: Case, baseline: Window, window: Window, t: GuardConfig) -> MonitorResult:
    """Rows the serving path wrote without a finite prediction, which the loader leaves out of every other monitor
    (:class:`workbench.case.loader.Unscored`): a scoring service timing out writes NaN, and the rest of the traffic
    looks healthy. Counted by the 15 minutes the windows start (the loader keeps both counts per 15 minutes): exact for
    windows on a quarter hour, as the default ones are."""
    def periods(table: pl.DataFrame, column: str, w: Window) -> float:
        return float(table.filter(w.contains("period"))[column].sum())

    lost = case.unscored.profile if case.unscored is not None else pl.DataFrame(
        {"period": [], "unscored": []}, schema={"period": case.profile.schema["period"], "unscored": pl.UInt32})
    counts = {k: (periods(lost, "unscored", w), periods(case.profile, "rows", w)) for k, w in (("b", baseline), ("w", window))}
    total = {k: lost_k + scored for k, (lost_k, scored) in counts.items()}
    if min(total.values()) <= 0:
        return MonitorResult("quality", "unscored_rows", "skip", None, None, "no rows in a window")
    share = {k: counts[k][0] / total[k] for k in counts}
    se = two_proportion_se((counts["b"][0] + counts["w"][0]) / (total["b"] + total["w"]), total["b"], total["w"])
    z = (share["w"] - share["b"]) / se if se > 0 else 0.0
    threshold = share["b"] + t.unscored_rise
    trip = share["w"] > threshold and z >= t.z
    return MonitorResult("quality", "unscored_rows", "trip" if trip else "pass", share["w"], threshold,
                         f"rows without a finite prediction {share['b']:.2%} → {share['w']:.2%} of the rows served "
                         f"({int(counts['w'][0]):,} in the window, z {z:+.1f}; trips {t.unscored_rise:.0%} above the "
                         f"baseline's share and beyond {t.z:g} SE)")


def _change_points(case: Case, baseline: Window, window: Window) -> dict[str, str]:
    """Metrics whose regression starts in this run (:func:`_this_run`): ``metric -> why``, from the diagnosis's
    change-point scan (:func:`workbench.data.onset.detect_onset`) over the log up to the window's end.

    A window-against-baseline comparison dilutes a regression that starts late in the
    window (three bad hours of a day); the scan finds the period it starts in. Its
    family-wise false-alarm rate is the detector's (``alpha`` 0.001 over the watched
    metrics per run), so it adds at most 0.1 % of false alarms per guard run.
    """
    from workbench.case.columns import TS
    from workbench.data.onset import detect_onset
    from workbench.data.quality import quality_series

    if not case.grain.testable or case.grain.grain is None:
        return {}
    series = quality_series(case, every=case.grain.grain, rows=pl.col(TS) < pl.lit(window.end))
    if series.table.height < 2:
        return {}
    onset = detect_onset(series, slices_from=case)  # a move the traffic mix carries is no regression here either
    out = {}
    for v in onset.metrics:
        if v.regressed and _this_run(v.onset, v.end, baseline, window):
            out[v.metric] = (f"the change-point scan finds it regressing from {v.onset:%Y-%m-%d %H:%M} UTC (robust z "
                             f"{v.severity:.1f}, threshold {v.threshold:.1f}, family-wise alpha 0.001)")
    return out


def _this_run(onset: datetime | None, end: datetime | None, baseline: Window, window: Window) -> bool:
    """Whether a regression the scan found belongs to this run: it starts inside the window, or inside the baseline
    and lasts into the window. The scan needs ``MIN_LENGTH`` periods of a shift, so an onset in the last hours of
    yesterday's window was not yet visible to yesterday's run; today's sees it. The rule takes any onset in the
    baseline, so a regression yesterday's run already saw trips today's too while it lasts (a scheduler stays stopped
    for a second window); one that started before the baseline was the business of earlier runs."""
    return onset is not None and baseline.start <= onset < window.end and (end is None or end > window.start)


def _segment_change_point(case: Case, baseline: Window, window: Window) -> MonitorResult:
    """A regression one segment holds alone that belongs to this run (:func:`_this_run`): the diagnosis's segment scan
    (:func:`workbench.data.segments.detect_segment_onset`) over the rows served before the window's end. A segment
    holding a tenth of the traffic can collapse while the whole traffic's monitors stay within their limits (the sample
    case ``slice_shift``: country=BR's clicks collapse, the whole day's NE and calibration pass). Only segments whose
    onset belongs to the run compete, so one regressing for weeks does not hide one that starts now. Its family-wise
    false-alarm rate is the segment scan's (``alpha`` 0.001 over every segment and metric if its Gaussian model holds;
    a small segment's heavier tails are why each is confirmed by the slice search), so it adds at most 0.1 % of false
    alarms per guard run. A trip's ``value`` is the segment's metric over the scan's own incident window against its
    baseline (not the guard's windows), its ``threshold`` null, its target the metric and the segment (``METRIC in
    column=value``); a run that finds none passes as ``segments``, so a scheduler that follows a row across runs keys
    it on the monitor alone."""
    from workbench.data.segments import detect_segment_onset

    if not case.slices:
        return MonitorResult("quality", "segments", "skip", None, None, "the case has no slice columns")
    if not case.grain.testable or case.grain.grain is None:
        return MonitorResult("quality", "segments", "skip", None, None, "too few labelled rows per period to scan a segment")
    found = detect_segment_onset(case, until=window.end, accept=lambda o: _this_run(o.onset, o.end, baseline, window))
    if found is None:
        return MonitorResult("quality", "segments", "pass", None, None,
                             f"no segment regressing alone from inside the window or, still in it, from the baseline: "
                             f"{', '.join(case.slices)} scanned (family-wise alpha 0.001)")
    o = found.onset
    ratio = o.current_value / o.baseline_value if o.baseline_value > 0 else math.nan
    monitor = "calibration" if o.metric == "calibration_ratio" else "quality"
    return MonitorResult(monitor, f"{o.metric} in {found.segment}", "trip", ratio, None,
                         f"{found.segment} alone: {o.metric} {fmt(o.baseline_value)} → {fmt(o.current_value)} from "
                         f"{o.onset:%Y-%m-%d %H:%M} UTC (robust z {o.severity:.1f}, threshold {o.threshold:.1f}; "
                         f"{found.tested} segment series tested, family-wise alpha {found.alpha:g}, confirmed by the slice search)")


def _scanned(result: MonitorResult, found: dict[str, str]) -> MonitorResult:
    """``result``, tripped as well when the change-point scan found its metric regressing in this run (:func:`_this_run`)."""
    why = found.get(result.target)
    if why is None or result.status == "skip":
        return result
    return MonitorResult(result.monitor, result.target, "trip", result.value, result.threshold, f"{result.detail}; {why}")


def _ratio(monitor: str, target: str, ratio: float, change: float, z: float, z_min: float, detail: str) -> MonitorResult:
    """A symmetric ratio monitor: trips when ``|ln ratio| > ln(1 + change)`` and ``z >= z_min``."""
    if not math.isfinite(ratio) or ratio <= 0:
        return MonitorResult(monitor, target, "skip", None, 1 + change, "the ratio is not defined (a window without positives)")
    trip = abs(math.log(ratio)) > math.log1p(change) and math.isfinite(z) and z >= z_min
    return MonitorResult(monitor, target, "trip" if trip else "pass", ratio, 1 + change, detail)


def _pct(ratio: float) -> str:
    return f"{ratio - 1:+.1%}" if math.isfinite(ratio) else "–"


# ---------------------------------------------------------------- the snapshot gate
def _snapshot_gate(case: Case, window: Window, t: GuardConfig) -> MonitorResult:
    if not t.snapshot_gate:
        return MonitorResult("snapshot_gate", "*", "skip", None, None, "turned off ([guard] snapshot_gate = false)")
    if not case.snapshots:
        return MonitorResult("snapshot_gate", "*", "skip", None, None, f"snapshots/ set aside: {case.snapshot_problem}"
                             if case.snapshot_problem else "no snapshots/index.csv")
    published = [s for s in case.snapshots if s.published_at < window.end]
    if not published:
        return MonitorResult("snapshot_gate", "*", "skip", None, None, "no snapshot published before the window's end "
                             "(snapshots/index.csv)")
    newest = max(published, key=lambda s: s.published_at)
    from workbench.model.load import model_problem

    problem = model_problem(case)
    if problem is not None:
        return MonitorResult("snapshot_gate", newest.snapshot_id, "skip", None, None, f"cannot re-score: {problem}")
    from workbench.model.validation import validate_snapshot

    try:
        v = validate_snapshot(case, newest.snapshot_id)
    except Exception as exc:  # too few labelled rows to validate on is a skip with the validator's own reason
        from workbench.errors import WorkbenchError

        if not isinstance(exc, WorkbenchError):
            raise
        return MonitorResult("snapshot_gate", newest.snapshot_id, "skip", None, None, str(exc).splitlines()[0])
    # the value and threshold of the gate that failed (the first, as the detail's reason), else of NE's
    gated = v.metrics.filter(pl.col("passed").not_()) if not v.passed else pl.DataFrame()
    gate = gated if gated.height else v.metrics.filter(pl.col("metric") == "ne")
    delta, tol = (gate["delta"][0], gate["tolerance"][0]) if gate.height else (None, None)
    if gate.height and gate["metric"][0] == "auc" and delta is not None:  # its worsening, as the others read: a fall
        delta = -delta
    return MonitorResult("snapshot_gate", newest.snapshot_id, "pass" if v.passed else "trip", delta, tol,
                         f"{'passes' if v.passed else 'fails'} validation against {v.reference_id}: {v.reasons[0]}")
