"""Scenarios: every top-level parameter of one generated case, drawn from a split's bands.

A :class:`Scenario` is small, frozen and JSON-serialisable; ``generate`` turns it into a
case directory deterministically. Choices that depend on the generated world (which
feature breaks, which slice value, which tensor) are made inside ``generate`` from
the scenario's own seed and recorded in ``truth.json``, so the scenario stays short
while the case stays reproducible from it alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from proving_ground.split import FAMILIES, SPLITS, check_split, modes_for

DEFAULT_MAX_ROWS = 2_000_000

#: Families whose incident may end inside the log (a rollback, a fixed pipeline).
_CAN_END = {"feature", "upstream", "snapshot", "label", "calibration", "slice", "multi"}


@dataclass(frozen=True)
class Scenario:
    """Every drawn parameter of one case. Treat the dict fields as read-only.

    Times are hours from ``start`` (an ISO ``...Z`` instant) so a scenario reads the
    same whatever the calendar date.
    """

    family: str
    mode: str
    split: str
    seed: int
    variety: bool
    max_rows: int
    start: str
    span_hours: float
    rows_per_hour: float
    daily_amplitude: float
    weekly_amplitude: float
    base_rate: float
    n_features: int
    n_factors: int
    n_bundles: int
    n_slices: int
    signal_sd: float
    hidden_sd: float
    label_delay_hours: float
    join_rate: float
    model_kind: str
    model_output: str
    refresh_hours: float
    snapshot_style: str
    training_rows: int
    onset_hours: float | None
    end_hours: float | None
    severity: float
    incident: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bool] = field(default_factory=dict)
    format: dict[str, Any] = field(default_factory=dict)
    too_sparse: bool = False

    def __post_init__(self) -> None:
        # key order of the dict fields must not depend on how the scenario was built (JSON round trips sort them)
        for name in ("incident", "files", "format"):
            object.__setattr__(self, name, dict(sorted(dict(getattr(self, name)).items())))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scenario:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def key(self) -> str:
        """A short stable hash of every parameter (cache key for generated cases)."""
        return f"{zlib.crc32(self.to_json().encode()):08x}"

    @property
    def name(self) -> str:
        return f"{self.family}-{self.mode}-{self.seed}"


def rng_for(split: str, family: str, mode: str, seed: int, tag: str) -> np.random.Generator:
    """An independent, stable random stream per (case, purpose). crc32, not hash(): stable across runs."""
    return np.random.default_rng([zlib.crc32(s.encode()) for s in (split, family, mode, tag)] + [seed])


def _band(rng: np.random.Generator, bands: list[tuple[float, float]], log: bool = False) -> float:
    lo, hi = bands[rng.integers(len(bands))]
    if log:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


def draw(family: str, split: str, seed: int, **overrides: Any) -> Scenario:
    """Draw one scenario of ``family`` for ``split``.

    ``overrides`` fix any :class:`Scenario` field (``mode="scale"``, ``rows_per_hour=500``,
    ``variety=True``, ``max_rows=100_000``...); the remaining fields are drawn *given*
    the fixed ones, so dependent choices (onset inside the span, rows under the cap)
    stay consistent. Seeds outside the split's range are refused: the held-back set
    must never be drawn by accident with a development seed.
    """
    check_split(split)
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    lo, hi = SPLITS[split].seeds
    if not lo <= seed < hi:
        raise ValueError(f"seed {seed} is outside the {split} range [{lo}, {hi})")
    names = {f.name for f in dataclasses.fields(Scenario)}
    unknown = set(overrides) - names
    if unknown:
        raise TypeError(f"unknown scenario fields: {sorted(unknown)}")
    allowed = modes_for(family, split)
    mode = overrides.get("mode")
    pick_rng = rng_for(split, family, "", seed, "mode")
    if mode is None:
        mode = str(allowed[pick_rng.integers(len(allowed))])
    elif mode not in allowed:
        raise ValueError(f"mode {mode!r} is not drawn for {family}/{split}; one of {allowed}")
    rng = rng_for(split, family, mode, seed, "draw")
    sp = SPLITS[split]
    o = overrides

    def pick(name: str, fn):  # an override wins; the draw still happens so later draws do not move
        v = fn()
        return o.get(name, v)

    variety = bool(pick("variety", lambda: False))
    max_rows = int(pick("max_rows", lambda: DEFAULT_MAX_ROWS))
    sparse = family == "sparse"

    # ---- calendar and traffic
    day = int(rng.integers(0, 3 * 365))
    odd = rng.random() < 0.4
    minute = int(rng.integers(0, 24 * 60)) if odd else 0
    start_s = 1_735_689_600 + day * 86400 + minute * 60  # from 2025-01-01T00:00Z
    start = pick("start", lambda: _iso(start_s))
    if sparse:
        span = float(pick("span_hours", lambda: float(rng.uniform(72, 1440))))
        rate = float(pick("rows_per_hour", lambda: float(10 ** rng.uniform(-1.7, 0.3))))  # 0.02..2 rows/h
    else:
        span = float(pick("span_hours", lambda: _band(rng, sp.span_hours, log=True)))
        rate = float(pick("rows_per_hour", lambda: 10 ** _band(rng, sp.log10_rows_per_hour)))
    base_rate = float(pick("base_rate", lambda: _band(rng, sp.base_rate, log=True)))
    join_rate = float(pick("join_rate", lambda: float(rng.uniform(0.85, 1.0))))
    if sparse:
        # well under a few hundred labelled positives in total: cap the expected count at ~150
        rate * span * base_rate * join_rate
        if "rows_per_hour" not in o:
            rate = min(2.0, float(rng.uniform(10, 150)) / (span * base_rate * join_rate))
    else:
        # trade rate against span to respect the row cap, then make sure there is enough to measure
        if rate * span > max_rows and "rows_per_hour" not in o:
            excess = rate * span / max_rows
            if "span_hours" not in o:
                span = max(72.0, span / excess ** 0.35)
            rate = max_rows / span
        need = 8000.0  # expected labelled positives over the log (room for a 6-SE effect of ~10 %)
        if rate * span * base_rate * join_rate < need and "rows_per_hour" not in o:
            rate = min(max_rows / span, need / (span * base_rate * join_rate))
    daily_amp = float(pick("daily_amplitude", lambda: float(rng.uniform(0.15, 0.6))))
    weekly_amp = float(pick("weekly_amplitude", lambda: float(rng.uniform(0.0, 0.3))))

    # ---- world
    n_features = int(pick("n_features", lambda: int(np.clip(round(math.exp(rng.uniform(math.log(3), math.log(40)))), 3, 40))))
    n_factors = int(pick("n_factors", lambda: int(rng.integers(1, 5))))
    n_bundles = int(pick("n_bundles", lambda: int(rng.integers(0, 1 + min(3, n_features // 4)))))
    need_slice = family == "slice" or mode in ("slice_confined", "traffic_mix")
    n_slices = int(pick("n_slices", lambda: int(rng.integers(1 if need_slice else 0, 5))))
    signal_sd = float(pick("signal_sd", lambda: float(rng.uniform(1.0, 2.0))))
    hidden_sd = float(pick("hidden_sd", lambda: float(rng.uniform(0.3, 0.8))))
    delay = float(pick("label_delay_hours", lambda: float(rng.uniform(0, min(24.0, 0.15 * span)))))
    model_kind = str(pick("model_kind", lambda: str(rng.choice(["logistic", "logistic", "mlp1", "mlp2"]))))
    model_output = str(pick("model_output", lambda: "probability" if rng.random() < 0.2 else "logit"))
    refresh = float(pick("refresh_hours", lambda: _band(rng, sp.refresh_hours, log=True)))
    refresh = max(refresh, (span + 48) / 80)  # at most ~80 snapshots per case
    style = str(pick("snapshot_style", lambda: str(rng.choice(sp.vocab.snapshot_styles))))
    training_rows = int(pick("training_rows", lambda: int(rng.integers(3000, 30001))))

    # ---- onset / end
    onset = end = None
    has_incident = family not in ("control",) and not (family == "sparse" and mode == "no_incident")
    lo_on, hi_on, min_len = onset_bounds(span, delay)
    if has_incident:
        onset = float(pick("onset_hours", lambda: float(rng.uniform(lo_on, hi_on))))
        ends = family in _CAN_END and rng.random() < 0.3
        tail = delay + max(6.0, 0.05 * span)  # the recovery must be visible in labelled data
        room = span - tail - onset
        if ends and room > min_len + 4:
            dur = float(rng.uniform(min_len, room))
            end = float(pick("end_hours", lambda: onset + dur))
        else:
            end = o.get("end_hours")
    elif mode == "holiday":
        onset = float(pick("onset_hours", lambda: float(rng.uniform(lo_on, hi_on))))
    severity = float(pick("severity", lambda: _band(rng, sp.severity)))

    incident = dict(pick("incident", lambda: _incident_params(family, mode, split, rng)))

    # ---- optional files and format
    files = dict(pick("files", lambda: _files(family, mode, variety, rng)))
    fmt = dict(pick("format", lambda: _format(variety, files, rng)))
    return Scenario(family=family, mode=mode, split=split, seed=seed, variety=variety, max_rows=max_rows, start=start,
                    span_hours=round(span, 4), rows_per_hour=round(rate, 6), daily_amplitude=round(daily_amp, 4),
                    weekly_amplitude=round(weekly_amp, 4), base_rate=round(base_rate, 6), n_features=n_features,
                    n_factors=n_factors, n_bundles=n_bundles, n_slices=n_slices, signal_sd=round(signal_sd, 4),
                    hidden_sd=round(hidden_sd, 4), label_delay_hours=round(delay, 4), join_rate=round(join_rate, 4),
                    model_kind=model_kind, model_output=model_output, refresh_hours=round(refresh, 4),
                    snapshot_style=style, training_rows=training_rows,
                    onset_hours=None if onset is None else round(onset, 4),
                    end_hours=None if end is None else round(end, 4), severity=round(severity, 4), incident=incident,
                    files=files, format=fmt, too_sparse=sparse)


def onset_bounds(span: float, delay: float) -> tuple[float, float, float]:
    """(earliest, latest onset, minimum incident length) in hours: a warm-up of >= 20 % of the span and
    >= 2 days where the span allows; the incident's labelled part long enough to measure."""
    lo_on = max(0.2 * span, min(48.0, 0.45 * span))
    min_len = max(8.0, 0.06 * span)
    hi_on = max(lo_on, span - delay - min_len)
    return lo_on, hi_on, min_len


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _incident_params(family: str, mode: str, split: str, rng: np.random.Generator) -> dict[str, Any]:
    """Mode parameters that do not depend on severity or on the generated world."""
    p: dict[str, Any] = {}
    if family == "feature":
        if mode == "coverage_default":
            p["default"] = str(rng.choice(["zero", "minus_one", "prior"]))
        elif mode in ("scale", "mixed"):
            p["direction"] = "up" if rng.random() < 0.65 else "down"
        elif mode == "decorrelated_lag_hours":
            p["lag_hours"] = float(rng.uniform(1, 24))
        elif mode == "decorrelated_lag_days":
            p["lag_hours"] = float(24 * rng.integers(1, 8))
        elif mode == "slice_confined":
            p["inner"] = str(rng.choice(["coverage_null", "scale", "stale_constant", "decorrelated_shuffle"]))
            p["direction"] = "up" if rng.random() < 0.65 else "down"
    elif family == "upstream":
        p["n_features"] = int(rng.integers(2, 7))
        p["direction"] = "up" if rng.random() < 0.65 else "down"
    elif family == "calibration":
        p["direction"] = "up" if rng.random() < 0.5 else "down"
    elif family == "shift":
        p["ramp_hours"] = float(rng.uniform(24, 72))
    elif family == "multi":
        if mode == "coverage_plus_calibration":
            p["direction"] = "up" if rng.random() < 0.5 else "down"
        else:
            p["changes"] = [str(c) for c in rng.choice(["coverage_null", "scale", "stale_constant"], size=2)]
            p["direction"] = "up" if rng.random() < 0.65 else "down"
    elif family == "sparse" and mode == "with_incident":
        p["inner"] = str(rng.choice(["feature:coverage_null", "calibration:offset", "label:positives_lost"]))
        p["direction"] = "up"
    elif family == "control":
        if mode == "organic_drift":
            p["drift_sd"] = float(rng.uniform(0.1, 0.35))
        elif mode == "traffic_mix":
            p["mix_logit"] = float(rng.uniform(0.5, 1.2))
        elif mode == "holiday":
            p["volume_factor"] = float(rng.choice([rng.uniform(0.4, 0.75), rng.uniform(1.3, 1.8)]))
            p["logit_offset"] = float(rng.choice([-1, 1]) * rng.uniform(0.04, 0.1))
    return p


def _files(family: str, mode: str, variety: bool, rng: np.random.Generator) -> dict[str, bool]:
    """Which optional files the case has. Snapshot and label cases always carry snapshots."""
    snapshots = family in ("snapshot", "label") or rng.random() < 0.75
    model = snapshots and (family == "snapshot" or rng.random() < 0.8)
    lineage = family == "upstream" or (family == "multi" and mode == "two_features") or rng.random() < 0.6
    return {"workbench_toml": (not variety) or rng.random() < 0.85, "training": bool(rng.random() < 0.6),
            "snapshots": bool(snapshots), "model": bool(model), "lineage": bool(lineage),
            "events": bool(rng.random() < 0.65), "snapshot_column": bool(snapshots and rng.random() < 0.3)}


def _format(variety: bool, files: dict[str, bool], rng: np.random.Generator) -> dict[str, Any]:
    """File format choices. Without variety: one clean conventional parquet file."""
    dictionary = bool(rng.random() < 0.3)
    if not variety:
        return {"predictions": "parquet", "timestamp": "us:UTC", "prediction_dtype": "float32", "label_dtype": "int8",
                "feature_dtype": "float32", "slices_dictionary": dictionary, "sorted": True, "odd_names": False,
                "snapshot_files": "mixed", "output_shape": "n"}
    layout = str(rng.choice(["parquet", "hive", "csv"], p=[0.4, 0.35, 0.25]))
    if layout == "hive" and not files["workbench_toml"]:
        layout = "parquet"  # without a toml every string column is a slice, the hive `date` partition too
    if layout == "csv":
        ts = str(rng.choice(["iso:Z", "iso:offset", "iso:naive", "epoch_s"], p=[0.35, 0.25, 0.25, 0.15]))
    else:
        unit = str(rng.choice(["ms", "us", "ns"]))
        tz = str(rng.choice(["UTC", "naive", "Europe/Berlin", "America/Los_Angeles"], p=[0.4, 0.3, 0.15, 0.15]))
        ts = "epoch_s" if rng.random() < 0.1 else f"{unit}:{tz}"
    return {"predictions": layout, "timestamp": ts,
            "prediction_dtype": str(rng.choice(["float32", "float64"])),
            "label_dtype": str(rng.choice(["int8", "int64", "bool", "float64"])),
            "feature_dtype": str(rng.choice(["float32", "float64", "mixed"])),
            "slices_dictionary": dictionary and layout != "csv", "sorted": bool(rng.random() < 0.85),
            "odd_names": bool(files["workbench_toml"]), "snapshot_files": str(rng.choice(["safetensors", "pt", "mixed"])),
            "output_shape": str(rng.choice(["n", "n1"]))}


def suite(split: str, seeds_per_mode: int, families: list[str] | tuple[str, ...] | None = None,
          max_rows: int = DEFAULT_MAX_ROWS, variety: bool = False, first_seed: int = 0) -> list[Scenario]:
    """Every mode of every family the split draws, ``seeds_per_mode`` seeds each.

    Seeds are ``split_start + first_seed + i``: dev 0, 1, 2...; held 1_000_000, 1_000_001...
    """
    check_split(split)
    base = SPLITS[split].seeds[0] + first_seed
    out = []
    for fam in families or FAMILIES:
        for mode in modes_for(fam, split):
            for i in range(seeds_per_mode):
                out.append(draw(fam, split, base + i, mode=mode, max_rows=max_rows, variety=variety))
    return out
