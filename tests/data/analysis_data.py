"""Small synthetic serving logs for the analysis tests: a daily cycle, label delay, optional injected breaks.

Independent of ``workbench.sample`` on purpose: other magnitudes, other columns,
so the analysis is not tuned to one generator.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

START = datetime(2026, 3, 2, tzinfo=UTC)


def write_case(root: Path, *, seed: int = 0, hours: int = 72, per_hour: float = 800, onset: int | None = None,
               break_: str = "signal", slice_: tuple[str, str] | None = None, delay_hours: int = 5,
               delay_bias: float = 0.0, end: int | None = None, offset: float = 0.8, round_to: int | None = None,
               day_sd: float = 0.0, bias: float = 0.0, drift: float = 0.0,
               earlier: tuple[int, int, float] | None = None, mix: tuple[int, str, float, float] | None = None) -> Path:
    """Write ``root/predictions.parquet`` and return ``root``.

    ``break_`` after ``onset`` (hours from the start), inside ``slice_`` if given:
    ``signal`` (clicks follow the features half as much), ``coverage`` (95% of ``f_a`` goes
    null and the model scores it as 0; ``coverage_all``: every value), ``scale`` (``f_b`` x 100, scored as such),
    ``stale`` (``f_a`` frozen), ``ramp`` (``f_a`` served ``offset`` SDs higher, reached linearly over the 72 hours
    after the onset, while the clicks follow its true values: a serving bug that ramped in), ``calibration`` (every
    logit + 0.8), ``labels``
    (40% of clicks logged as non-clicks), ``loose_labels`` (half the labels shuffled between incident rows); the break
    lasts until hour ``end`` when given
    (the incident recovers). ``offset`` is the calibration break's logit shift;
    ``round_to`` rounds the served predictions to that many decimals (exact 0s and 1s).
    ``day_sd`` gives each calendar day a common logit offset on the clicks (drawn with this standard deviation,
    unseen by the model): day-to-day variation of the calibration that is no incident.
    ``bias`` is added to every served logit: a model that runs that far off the label rate from the start.
    ``drift`` is a logit offset on the clicks that grows linearly from 0 to that value across the log, unseen by the
    model: a population drifting, no incident.
    ``earlier = (start, stop, offset)``: an earlier incident that ended, every served logit + ``offset`` on those hours
    (a snapshot served for a while, then rolled back).
    ``mix = (hour, country, share, offset)``: from ``hour`` on, ``country`` holds ``share`` of the traffic (the others
    keep their proportions), and the model serves that country ``offset`` higher in logit throughout, the log's
    whole length (a segment it always over-predicted): the traffic mix moves, no segment's quality does.
    Labels of the last ``delay_hours`` are
    partly missing; ``delay_bias`` > 0 makes late labels more often positive (so
    the joined ones look negative-heavy), the realistic bad case.
    """
    rng = np.random.default_rng(seed)
    h = np.arange(hours)
    volume = 1 + 0.4 * np.cos(2 * np.pi * (h - 19) / 24)
    counts = rng.poisson(per_hour * volume)
    hour = np.repeat(h, counts)
    n = len(hour)
    ts = np.sort(hour * 3600 + rng.uniform(0, 3600, n))
    hour = (ts // 3600).astype(int)
    cycle = np.cos(2 * np.pi * (hour % 24 - 21) / 24)
    countries, shares = ["US", "MX", "PL", "KR", "NG"], np.array([0.4, 0.2, 0.15, 0.15, 0.1])
    country = rng.choice(countries, n, p=shares)
    if mix is not None:
        moved = np.where(np.array(countries) == mix[1], mix[2], shares * (1 - mix[2]) / (1 - shares[countries.index(mix[1])]))
        country = np.where(hour >= mix[0], rng.choice(countries, n, p=moved), country)
    device = rng.choice(["phone", "tablet", "desktop"], n, p=[0.6, 0.15, 0.25])
    x = rng.standard_normal((3, n))
    f_a, f_b, f_c = x[0], np.exp(0.5 * x[1]), x[2]
    eff = {"US": 0.0, "MX": 0.2, "PL": -0.1, "KR": 0.1, "NG": -0.2}
    base = -2.2 + 0.25 * cycle + np.vectorize(eff.get)(country)
    true = base + 1.1 * f_a + 0.6 * np.log(f_b) + 0.2 * rng.standard_normal(n)
    score_a, score_b = f_a.copy(), f_b.copy()
    after = np.zeros(n, dtype=bool) if onset is None else (hour >= onset) & (hour < (end if end is not None else hours))
    if slice_ is not None:
        col = {"country": country, "device": device}[slice_[0]]
        after &= col == slice_[1]
    if break_ == "signal":
        true = np.where(after, base + 0.5 * (true - base) + 0.3, true)
    elif break_ in ("coverage", "coverage_all"):  # 95% of the values lost, or every one
        f_a = np.where(after & (rng.random(n) < (0.95 if break_ == "coverage" else 1.0)), np.nan, f_a)
        score_a = np.nan_to_num(f_a)
    elif break_ == "scale":
        f_b = np.where(after, f_b * 100, f_b)
        score_b = f_b
    elif break_ == "stale":
        f_a = np.where(after, f_a[np.flatnonzero(~after)[-1]], f_a)
        score_a = f_a
    elif break_ == "ramp":
        f_a = np.where(after, f_a + offset * np.clip((ts / 3600 - (onset or 0)) / 72, 0, 1), f_a)
        score_a = f_a
    logit = -2.2 + 0.25 * cycle + np.vectorize(eff.get)(country) + 1.1 * score_a + 0.6 * np.log(score_b) + bias
    if break_ == "calibration":
        logit = np.where(after, logit + offset, logit)
    if mix is not None:
        logit = np.where(country == mix[1], logit + mix[3], logit)
    if earlier is not None:
        logit = np.where((hour >= earlier[0]) & (hour < earlier[1]), logit + earlier[2], logit)
    p = 1 / (1 + np.exp(-logit))
    if round_to is not None:
        p = np.round(p, round_to)
    if day_sd:
        true = true + rng.normal(0.0, day_sd, hours // 24 + 1)[hour // 24]
    if drift:
        true = true + drift * ts / (hours * 3600)
    y = (rng.random(n) < 1 / (1 + np.exp(-true))).astype(float)
    if break_ == "labels":
        y = np.where(after & (y == 1) & (rng.random(n) < 0.4), 0.0, y)
    elif break_ == "loose_labels":  # half the incident's labels joined to other incident rows: the rate stays
        moved = np.flatnonzero(after & (rng.random(n) < 0.5))
        y[moved] = y[rng.permutation(moved)]
    age = hours - ts / 3600
    missing = np.where(age < delay_hours, np.clip(1.1 * np.exp(-age / 1.6), 0, 1), 0.0)
    missing = np.clip(missing * (1 + delay_bias * (2 * y - 1)), 0, 1)
    y = np.where(rng.random(n) < missing, np.nan, y)
    frame = pl.DataFrame({
        "ts": (np.datetime64(START.replace(tzinfo=None), "us") + (ts * 1e6).astype("timedelta64[us]")),
        "prediction": p, "label": y, "f_a": f_a, "f_b": np.round(f_b, 3), "f_c": f_c, "country": country, "device": device,
    }).with_columns(pl.col("ts").dt.replace_time_zone("UTC"), pl.col("label").fill_nan(None), pl.col("f_a").fill_nan(None))
    root.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(root / "predictions.parquet")
    return root
