"""What several checks read: the drift ranking, feature strengths, the label change, the slice search, phrases and
plot helpers.

Each accessor caches its analysis in the context, so a pass runs once per investigation
whichever check asks first; checks never write results for each other. The analyses read
the context's fused passes (``ctx.log_scan``, ``ctx.sampled``, ``ctx.scan``: :mod:`workbench.data.scan`)
instead of the log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from workbench.rca import _strength as S
from workbench.windows import iso

if TYPE_CHECKING:
    from workbench.rca.context import Context

__all__ = ["BROKEN", "CHANGE", "CHANGED", "WORDS", "calendar", "change_words", "confined_segment", "confined_share", "coverage_delta",
           "describe_break", "drift", "feature_slices", "feature_strengths", "hhmm", "kind_inside", "label_change",
           "label_evidence", "move_size", "population_moved", "slices", "window_rows", "windows_shade"]


CHANGED = 0.2  # a feature with strength at least this changed at the onset (the feature check lists it)
BROKEN = 0.5  # a feature with strength at least this counts as broken
# the contract's ``change`` of a feature cause, by drift kind (a drift of another kind names none)
CHANGE = {"coverage": "coverage", "default": "coverage", "scale": "scale", "stale": "stale", "decorrelated": "decorrelated"}
# how a feature breaks, as against a population's mix of values moving: all a segment new in the incident can show
# against the traffic it joined (its own mix of values is no break)
BREAKS = ("coverage", "scale", "stale")
NEW_AGAINST_JOINED = "new in the incident: against the traffic it joined"  # how such a segment's reading is worded
WORDS = {"coverage": "lost coverage", "default": "lost coverage (a default served in place of its values)",
         "scale": "changed scale", "stale": "went stale", "distribution": "drifted",
         "decorrelated": "came loose from its rows (same values, no longer theirs)", "shift": "shifted (the population moved)"}


def coverage_delta(row: dict | None) -> float | None:
    """A drift row's coverage change (incident minus baseline share of non-null values; a row of
    :func:`workbench.data.drift.feature_drift` or of :func:`~workbench.data.drift.feature_by_slice`), None if unknown."""
    if not row:
        return None
    b, i = row.get("coverage_baseline"), row.get("coverage_incident")
    return i - b if b is not None and i is not None else None


def change_words(change: str | None, coverage_delta: float | None = None, default: str = "changed") -> str:
    """The words for how a feature changed (:data:`WORDS`). A coverage change that *raised* the share of values
    (``coverage_delta`` > 0: a feed that was empty filled again, a default that stopped being served) is a change of
    coverage too, but saying it "lost coverage" would send the reader to the wrong fix."""
    if change == "coverage" and coverage_delta is not None and coverage_delta > 0:
        return "gained coverage"
    return WORDS.get(change or "", default)


def drift(ctx: Context):
    from workbench.data.drift import feature_drift

    return ctx.cached("feature_drift", lambda: feature_drift(ctx.case, ctx.baseline, ctx.incident, scan=ctx.scan))


def label_change(ctx: Context):
    """The label rate's move between the windows against the prediction mean's
    (:class:`~workbench.data.labels.LabelShift`), and the part of it the inputs predict
    (:func:`workbench.model.rescore.labels_from_inputs`; None when the case has no features, the label rate moved
    less than ``MATERIAL`` or the rows cannot fit the label model), once per investigation."""
    from workbench.data.labels import MATERIAL, label_shift
    from workbench.model.rescore import labels_from_inputs

    ls = ctx.cached("label_shift", lambda: label_shift(ctx.case, ctx.baseline, ctx.incident, drift(ctx), scan=ctx.scan))
    inputs = None
    if ctx.case.features and abs(ls.label_log_change) >= MATERIAL:
        inputs = ctx.cached("labels_from_inputs", lambda: labels_from_inputs(*window_rows(ctx), ctx.case.features,
                                                                                      slices=ctx.case.slices))
    return ls, inputs


def move_size(log_change: float) -> float:
    """How large a rate's relative move is, as evidence: ``from_excess`` of its log change beyond ``MATERIAL`` (5%),
    scale 10%: the label rate's own size, and the predictions' move the labels' way."""
    from workbench.data.labels import MATERIAL

    return S.from_excess(abs(log_change), MATERIAL, 0.1)


def label_evidence(ls) -> float:
    """How strongly the label rate moved: significant (``from_z`` of its z) and large (:func:`move_size`): an effect
    size, with its sampling error only as a floor."""
    return S.from_z(abs(ls.label_z)) * move_size(ls.label_log_change)


def population_moved(ctx: Context) -> float:
    """Evidence that the population moved: the label rate moved (:func:`label_evidence`) and the inputs carry the move
    (the share of it a label model fitted on the baseline's rows predicts from the incident's inputs). A logging bug
    moves the labels alone; a population that moved brings its labels with it."""
    ls, inputs = label_change(ctx)
    return label_evidence(ls) * inputs.share if inputs is not None else 0.0


def feature_strengths(ctx: Context) -> dict[str, float]:
    """Strength per feature from the drift ranking's severity (JS distance beyond organic drift), via ``from_js``;
    0 for a feature that is the timestamp's calendar in both windows (:func:`calendar`): its drift is the windows'."""
    if not ctx.case.features:
        return {}

    def compute() -> dict[str, float]:  # numeric features only: a slice column's mix moving is not a broken feature
        table = drift(ctx).table.filter(pl.col("type") == "numeric")
        clock = calendar(ctx)
        return {row["feature"]: 0.0 if row["feature"] in clock else S.from_js(row["severity"])
                for row in table.select("feature", "severity").iter_rows(named=True)}

    return ctx.cached("feature_strengths", compute)


def calendar(ctx: Context, follow: bool = True) -> dict[str, str]:
    """The features that are a function of the timestamp's calendar in both windows' sampled rows, with the key
    (:func:`workbench.data.calendar.calendar_features`); with ``follow`` off, in the baseline's rows whether or not
    the incident's hours let that be checked."""
    from workbench.case.columns import TS
    from workbench.data.calendar import calendar_features

    def compute() -> dict[str, str]:
        cols = [TS, *ctx.case.features]
        before, after = (ctx.sampled.window_sample(w, None, cols) for w in (ctx.baseline, ctx.incident))
        return calendar_features(before, after, ctx.case.features, follow=follow)

    return ctx.cached("calendar_features" if follow else "calendar_features_baseline", compute)


def window_rows(ctx: Context) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The baseline's and the incident's rows of the windows' hash sample (uniform, no read), in time order, as many
    as the model-side checks read (:func:`workbench.model.isolation.rows_for_positives`: fewer on wide logs, more
    where positives are rare)."""
    from workbench.case.columns import LABEL, PREDICTION, SNAPSHOT, TS
    from workbench.model.isolation import rows_for_positives

    def draw() -> tuple[pl.DataFrame, pl.DataFrame]:
        cols = [TS, PREDICTION, LABEL, SNAPSHOT, *ctx.case.features, *ctx.case.slices]
        out = []
        for w in (ctx.baseline, ctx.incident):
            rows = ctx.sampled.window_sample(w, None, cols)  # in hash order: any head of it is a uniform sample
            out.append(rows.head(rows_for_positives(len(cols), rows[LABEL])).sort(TS, maintain_order=True))
        return out[0], out[1]

    return ctx.cached("window_rows", draw)


def slice_metric(ctx: Context) -> str:
    """The metric the slice search follows: the one that regressed most when it is a sum (AUC is not), else NE."""
    from workbench.data.slices import DIRECTION

    return ctx.onset.metric if ctx.onset.metric in DIRECTION else "normalized_entropy"


def feature_slices(ctx: Context, feature: str):
    """In which slice ``feature`` broke (:func:`workbench.data.drift.feature_by_slice`, bin edges from the baseline's
    sample rows that pass 2 fixed its edges on), once per investigation whichever check asks."""
    from workbench.data.drift import SAMPLE_ROWS, feature_by_slice

    def compute():
        edges_from = ctx.sampled.window_sample(ctx.baseline, SAMPLE_ROWS, [feature])
        return feature_by_slice(ctx.case, feature, ctx.baseline, ctx.incident, reference=edges_from, scheduler=ctx.scheduler)

    return ctx.cached(("feature_by_slice", feature), compute)


def calibration_reading(ctx: Context):
    """The windows' calibration shift (:func:`workbench.data.calibration.calibration_shift`), once per investigation
    whichever check asks (the calibration check, and the label check's loose-labels reading)."""
    from workbench.data.calibration import calibration_shift

    return ctx.cached("calibration_shift", lambda: calibration_shift(ctx.case, ctx.baseline, ctx.incident, scan=ctx.scan))


def slices(ctx: Context):
    from workbench.data.slices import find_slices

    # a regression found in one segment's own series is oriented the way that series moved (a small segment's
    # calibration can rise while the whole traffic drifted down), else by the whole traffic's move
    direction = ctx.onset.direction if ctx.segment is not None else None
    return ctx.cached("find_slices", lambda: find_slices(ctx.case, ctx.baseline, ctx.incident, metric=slice_metric(ctx),
                                                          scan=ctx.scan, direction=direction))


def confined_segment(ctx: Context) -> str | None:
    """The segment that holds the regression alone, or None (the whole traffic regressed)."""
    if ctx.segment is not None:
        return ctx.segment
    if not ctx.case.slices:
        return None
    search = slices(ctx)
    return search.top["slice"] if search.top is not None and search.confined else None


def confined_share(ctx: Context) -> float:
    """The share of the regression held by the top slice when it holds it alone (else 0)."""
    if not ctx.case.slices:
        return 0.0
    search = slices(ctx)
    top = search.top
    if top is not None and top["slice"] == ctx.segment:  # found in that segment only: it holds all of the regression
        return 1.0
    return S.from_share(top["explained_share"]) if top is not None and search.confined else 0.0


def describe_break(row: dict) -> str:
    """One phrase with the numbers behind a feature's break, for the evidence list.

    Any number may be missing (no placebo window before a baseline that starts with the
    data, a column without a scale band, a categorical column): it then reads "–".
    """
    f = {k: fmt_or_dash(v) for k, v in row.items()}
    kind = row["kind"]
    if kind == "coverage":
        return f"coverage {f['coverage_baseline']:.0%} → {f['coverage_incident']:.0%}"
    if kind == "scale" and row.get("scale_ratio"):
        return f"typical magnitude ×{f['scale_ratio']:.3g} (out-of-scale share {f['out_of_scale_incident']:.0%})"
    if kind == "default":
        return (f"the fill value {f['fill_value']:g} on {f['fill_share_incident']:.0%} of the values "
                f"({f['fill_share_baseline']:.0%} before)")
    if kind == "stale":
        return (f"top value's share {f['top_share_baseline']:.0%} → {f['top_share_incident']:.0%}, "
                f"distinct values {f['distinct_baseline']:.0f} → {f['distinct_incident']:.0f}, "
                f"in effective use {fmt_or_dash(row.get('effective_baseline')):.3g} → "
                f"{fmt_or_dash(row.get('effective_incident')):.3g}")
    usual = f" (usual {f['js_usual']:.2f})" if row.get("js_usual") is not None else " (no earlier window to compare)"
    return f"JS distance {f['js']:.2f}{usual}, PSI {f['psi']:.2f}"


class _Dash(float):
    """A missing number that formats as an en dash whatever the format spec."""

    def __format__(self, spec: str) -> str:
        return "–"


def fmt_or_dash(value: object) -> object:
    """``value``, or a float that formats as "–" when it is missing (None or NaN)."""
    if value is None or (isinstance(value, float) and value != value):
        return _Dash("nan")
    return value


def hhmm(ctx: Context) -> str:
    return f"{ctx.onset_time:%H:%M}" if ctx.onset_time else "the onset"


def windows_shade(ctx: Context) -> list:
    return [[iso(ctx.baseline.start), iso(ctx.baseline.end), "baseline"], [iso(ctx.incident.start), iso(ctx.incident.end), "incident"]]


SLICE_SAMPLE = 200  # sample rows per window inside a slice needed to say how a feature broke there


def broke_in_new_segment(ctx: Context, feature: str, where: str) -> bool:
    """Whether ``feature``, read in ``where``, a segment new in the incident, against the traffic it joined, broke
    there: only a break (``BREAKS``) counts; a new population's own mix of values is none."""
    return CHANGE.get(kind_inside(ctx, feature, where), "") in BREAKS


def kind_inside(ctx: Context, feature: str, where: str) -> str:
    """How ``feature`` broke inside the slice ``where`` (:func:`workbench.data.drift.kind_of_samples` on the windows'
    sampled rows there); ``distribution`` when the sample holds too few of its rows to say. A slice with under
    ``NEW_BELOW`` baseline rows in the sample (a value new in the incident) is compared with the whole baseline, the
    traffic it joined. Once per investigation whichever check asks (the feature check and the slice check both name a
    break's slice)."""
    from workbench.data.drift import kind_of_samples
    from workbench.data.slices import NEW_BELOW, slice_filter

    def compute() -> str:
        columns = [feature, *ctx.case.slices]
        base, inc = (ctx.sampled.window_sample(w, None, columns) for w in (ctx.baseline, ctx.incident))
        before, after = (frame.filter(slice_filter(where))[feature].cast(pl.Float64).to_numpy() for frame in (base, inc))
        if len(before) < NEW_BELOW:
            before = base[feature].cast(pl.Float64).to_numpy()
        return kind_of_samples(before, after) if min(len(before), len(after)) >= SLICE_SAMPLE else "distribution"

    return ctx.cached(("kind_inside", feature, where), compute)
