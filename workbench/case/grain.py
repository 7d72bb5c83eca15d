"""The log's own time grain: the finest period at which enough periods hold enough labelled rows to test.

A quality metric measured over a period is trustworthy when the period holds
enough labelled examples of both outcomes: the per-period normalized entropy,
calibration ratio and AUC rest on normal approximations of binomial counts,
which hold once a period has at least ``MIN_POSITIVES`` positives and
``MIN_NEGATIVES`` negatives (the usual ``n p >= 20`` rule). A change-point scan
needs enough such periods on both sides of a change: at least ``MIN_PERIODS``
testable periods, and at least ``MIN_SHARE`` of the periods with traffic in the labelled span
testable (so a grain where most periods are too thin is not chosen for its few
busy ones), with traffic in at least ``MIN_SERVED`` of its periods (nor a grain finer than the traffic's cadence,
a batch scored once a day, for its bursts). A period without any row is otherwise missing, not thin: a log whose
serving stopped for a day read "too sparse to test at any grain" over two days of 500 rows an hour. A period's
positives are the observed ones or, when more, the ones the
model expects (``sum p`` over its labelled rows), and its negatives likewise, as the
detector counts them (:func:`workbench.metrics.counted_classes`): under no change
the two agree, and an incident that removes the clicks (or collapses the
predictions) must not make the log untestable by its own symptom. The grain is the
finest of ``GRAINS`` that qualifies, capped so the series has at most ``MAX_PERIODS`` periods (a six-month log is scanned hourly or
coarser, not every 15 minutes). ``[case] grain`` in ``workbench.toml`` overrides
the choice when at least ``MIN_PERIODS`` of its periods are testable (else the case is untestable at it, and says
which grain would do: a weekly grain over three days read "no regression" for a window after the log). When no
grain qualifies the case is *too sparse to test*: the workbench says so instead of reporting "no regression".

Everything here reads the case's 15-minute profile (rows, labelled rows,
positives and the predictions' sum over the labelled rows per 15 minutes, from the
validation pass): no data pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import polars as pl

from workbench.metrics import counted_classes, reliable_end

__all__ = ["GRAINS", "MIN_NEGATIVES", "MIN_PERIODS", "MIN_POSITIVES", "GrainChoice", "choose_grain", "grain_delta", "grain_words",
           "profile_at"]

GRAINS = ("15m", "1h", "6h", "1d", "1w")
MIN_POSITIVES = MIN_NEGATIVES = 20
MIN_PERIODS = 12
MIN_SHARE = 0.8
MIN_SERVED = 0.5  # periods with traffic, of all the periods in the labelled span: the grain is not finer than the traffic
MAX_PERIODS = 2400
_DELTA = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "6h": timedelta(hours=6), "1d": timedelta(days=1),
          "1w": timedelta(weeks=1)}


def grain_delta(grain: str) -> timedelta:
    """The length of one period of ``grain`` (one of :data:`GRAINS`)."""
    return _DELTA[grain]


def profile_at(profile: pl.DataFrame, grain: str) -> pl.DataFrame:
    """The 15-minute profile summed to periods of ``grain`` (``period``, ``rows``, ``labeled``, ``positives`` and, when
    the profile has it, ``pred_sum_labeled``), every period from the first to the last included (those without
    traffic hold zeros)."""
    counts = [c for c in ("rows", "labeled", "positives", "pred_sum_labeled") if c in profile.columns]
    summed = profile.group_by(pl.col("period").dt.truncate(grain)).agg(pl.col(counts).sum())
    if summed.is_empty():
        return summed
    first, last = cast(datetime, summed["period"].min()), cast(datetime, summed["period"].max())  # a Datetime column's bounds
    every = pl.datetime_range(first, last, interval=grain, eager=True).alias("period")
    return (pl.DataFrame(every).join(summed, on="period", how="left")
            .with_columns(pl.col(counts).fill_null(0)).sort("period"))


@dataclass(frozen=True, slots=True)
class GrainChoice:
    """The chosen grain (None: too sparse to test at any grain), why, and the tally behind it.

    ``table`` has one row per grain considered: ``grain``, ``periods`` (with traffic, in the
    reliably labelled span), ``testable`` (periods with enough positives and
    negatives, each observed or, when more, expected), ``share``, ``fits`` (whether it qualifies).
    """

    grain: str | None
    reason: str
    table: pl.DataFrame
    requested: bool = False

    @property
    def testable(self) -> bool:
        return self.grain is not None

    def to_dict(self) -> dict:
        return {"grain": self.grain, "reason": self.reason, "requested": self.requested,
                "table": self.table.to_dicts()}


def _tally(profile: pl.DataFrame, grain: str, min_count: int = MIN_POSITIVES) -> dict:
    p = profile_at(profile, grain)
    if p.is_empty():
        return {"grain": grain, "periods": 0, "testable": 0, "share": 0.0, "served_share": 0.0}
    join = (p["labeled"] / p["rows"]).fill_nan(0.0).to_numpy()
    end = reliable_end(join, p["rows"].to_numpy())
    head = p.head(end)
    observed = head["positives"].cast(pl.Float64).to_numpy()
    expected = head["pred_sum_labeled"].cast(pl.Float64).to_numpy() if "pred_sum_labeled" in head.columns else observed
    labeled = head["labeled"].cast(pl.Float64).to_numpy()
    positives, negatives = counted_classes(observed, expected, labeled)
    ok = int(((positives >= min_count) & (negatives >= min_count)).sum())
    served = int((head["rows"] > 0).sum())  # periods without a row are missing, not thin (module docstring)
    return {"grain": grain, "periods": served, "testable": ok, "share": ok / served if served else 0.0,
            "served_share": served / end if end else 0.0, "all_periods": p.height}


def choose_grain(profile: pl.DataFrame, requested: str | None = None, *, min_count: int = MIN_POSITIVES) -> GrainChoice:
    """The finest qualifying grain of :data:`GRAINS` for the 15-minute ``profile`` (see the module docstring);
    ``min_count`` positives and negatives make a period testable.

    >>> from datetime import datetime, UTC
    >>> hours = [datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(72)]
    >>> busy = pl.DataFrame({"period": hours, "rows": [2_000] * 72, "labeled": [2_000] * 72, "positives": [100] * 72})
    >>> choose_grain(busy).grain
    '1h'
    >>> choose_grain(busy.with_columns(pl.col("positives") // 50)).grain is None
    True
    """
    rows = [_tally(profile, g, min_count) for g in GRAINS]
    for r in rows:
        r["fits"] = bool(r["testable"] >= MIN_PERIODS and r["share"] >= MIN_SHARE and r["served_share"] >= MIN_SERVED
                         and r.get("all_periods", 0) <= MAX_PERIODS)
    table = pl.DataFrame(rows, schema={"grain": pl.String, "periods": pl.Int64, "testable": pl.Int64, "share": pl.Float64,
                                       "served_share": pl.Float64, "all_periods": pl.Int64, "fits": pl.Boolean})
    fit = next((r for r in rows if r["fits"]), None)
    if requested is not None:
        r = next(r for r in rows if r["grain"] == requested)
        why = (f"[case] grain = {requested!r}: {r['testable']} of {r['periods']} periods hold at least {min_count} "
               "positives and negatives (observed or, when more, expected by the model)")
        if r["testable"] >= MIN_PERIODS:  # the share and the cap are the automatic choice's; a request is honoured
            return GrainChoice(requested, why, table, requested=True)
        instead = f"the finest that can is {fit['grain']!r}" if fit is not None else "no grain can"
        return GrainChoice(None, f"{why}, and a test needs {MIN_PERIODS}: choose another [case] grain ({instead}) or "
                           "remove it to let the workbench choose", table, requested=True)
    if fit is not None:
        return GrainChoice(fit["grain"], f"the finest period at which {fit['testable']} of {fit['periods']} periods hold at "
                           f"least {min_count} positives and {min_count} negatives (observed or, when more, expected)", table)
    best = max(rows, key=lambda r: (r["testable"], -GRAINS.index(r["grain"])))
    labeled = int(profile["labeled"].sum()) if profile.height else 0
    positives = int(profile["positives"].sum()) if profile.height else 0
    why = (f"too sparse to test at any grain: {labeled:,} labelled rows ({positives:,} positives) in all; even per "
           f"{grain_words(best['grain'])} only {best['testable']} of {best['periods']} periods with traffic hold {min_count} positives and "
           f"{min_count} negatives, observed or expected by the model (a test needs {MIN_PERIODS} such periods, and "
           f"{MIN_SHARE:.0%} of the periods with traffic, with traffic in {MIN_SERVED:.0%} of the periods)")
    return GrainChoice(None, why, table)


def grain_words(grain: str) -> str:
    """A grain as a sentence says it ("per hour", "per 15 minutes"); another period's name as it is."""
    return {"15m": "15 minutes", "1h": "hour", "6h": "6 hours", "1d": "day", "1w": "week"}.get(grain, grain)

