"""When rows are served and when their labels arrive.

Volume per hour follows a daily and a weekly cycle (and a holiday factor when there
is one); counts are Poisson, timestamps uniform within the hour, so a log of N rows
costs O(N) vectorised work. Labels join with a per-case rate (85-100 %) and, in the
last ``label_delay_hours`` of the log, with a probability that rises with the row's age:
those nulls are delay, not an incident.
"""

from __future__ import annotations

import numpy as np

from proving_ground.world import DAY_US, HOUR_US, MONDAY_US


def timestamps(start_us: int, span_hours: float, rows_per_hour: float, daily_amp: float, weekly_amp: float,
               rng: np.random.Generator, holiday: tuple[int, int, float, float] | None = None,
               peak_hour: float | None = None) -> np.ndarray:
    """Sorted int64 microsecond timestamps of served rows in [start, start + span)."""
    n_bins = int(np.ceil(span_hours))
    edges = start_us + np.arange(n_bins, dtype=np.int64) * HOUR_US
    mid = edges + HOUR_US // 2
    hour = ((mid // HOUR_US) % 24).astype(np.float64)
    dow = ((mid - MONDAY_US) // DAY_US) % 7
    peak = rng.uniform(12, 22) if peak_hour is None else peak_hour
    cyc = 1 + daily_amp * np.cos(2 * np.pi * (hour - peak) / 24)
    cyc *= 1 + weekly_amp * np.cos(2 * np.pi * (dow - rng.uniform(0, 7)) / 7)
    cyc /= cyc.mean()
    lam = rows_per_hour * cyc
    lam[-1] *= span_hours - (n_bins - 1)  # the last bin may be partial
    if holiday is not None:
        a, b, factor, _ = holiday
        lam = np.where((mid >= a) & (mid < b), lam * factor, lam)
    counts = rng.poisson(lam)
    width = np.full(n_bins, HOUR_US, dtype=np.int64)
    width[-1] = max(1, int((span_hours - (n_bins - 1)) * HOUR_US))
    ts = np.repeat(edges, counts) + (rng.random(int(counts.sum())) * np.repeat(width, counts)).astype(np.int64)
    ts.sort(kind="stable")
    return ts


def joined(ts: np.ndarray, end_us: int, delay_hours: float, join_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Which rows have a label by the time the log was cut (bool)."""
    age = (end_us - ts) / HOUR_US
    p = np.full(len(ts), join_rate)
    if delay_hours > 0:
        p = p * np.clip(age / delay_hours, 0.0, 1.0) ** 0.6
    return rng.random(len(ts)) < p
