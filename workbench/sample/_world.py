"""The simulated ads world: traffic, features, slices and the true click process.

Every row is one served ad impression. Three latent factors drive both the
features and the true click probability, so the model sees noisy views of
what really matters and cannot be perfect (normalized entropy ~0.8-0.9):

- ``u``, user engagement: user history counts and rates, dwell time, embeddings
- ``a``, ad quality: ad CTRs, quality score, bid, ad embedding
- ``r``, query-ad relevance: only ``f_ctx_relevance`` sees it

All functions here are vectorized over rows and draw from the generator they
are given, in a fixed order, so a seed reproduces every value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
WINDOW_START = datetime(2026, 11, 18, tzinfo=UTC)
START_US = int(WINDOW_START.timestamp()) * 1_000_000
WINDOW_HOURS = 72  # the served window: three days of traffic
HISTORY_HOURS = 96  # the base model's training data precedes the window

COUNTRIES = ("US", "IN", "BR", "GB", "DE", "FR", "JP", "CA")
COUNTRY_SHARE = (0.40, 0.10, 0.18, 0.08, 0.07, 0.07, 0.06, 0.04)
COUNTRY_EFFECT = (0.0, -0.12, 0.08, 0.05, -0.08, -0.04, -0.15, 0.04)
PLATFORMS = ("android", "ios", "web")
PLATFORM_SHARE = (0.55, 0.35, 0.10)
PLATFORM_EFFECT = (0.0, 0.12, -0.30)
AD_TYPES = ("native", "banner", "video", "carousel")
AD_TYPE_SHARE = (0.45, 0.25, 0.18, 0.12)
AD_TYPE_EFFECT = (0.12, -0.25, 0.0, 0.08)
SLICES = {"country": COUNTRIES, "platform": PLATFORMS, "ad_type": AD_TYPES}


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One dense model input: its distribution family and serving quirks."""

    name: str
    family: str  # count | rate | gaussian | heavy_tail | bounded | binary
    null_rate: float  # share of rows where the feature store returns null
    log: bool  # the model applies a signed log1p before standardising
    decimals: int  # values are logged at this precision


# Model input order is alphabetical, so a glob such as "f_*" resolves to the
# same order whether a loader keeps file order or sorts the matches.
FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("f_ad_bid", "heavy_tail", 0.012, True, 2),
    FeatureSpec("f_ad_embed_0", "gaussian", 0.021, False, 3),
    FeatureSpec("f_ad_embed_1", "gaussian", 0.021, False, 3),
    FeatureSpec("f_ad_impressions_7d", "count", 0.015, True, 0),
    FeatureSpec("f_ad_quality_score", "bounded", 0.018, False, 1),
    FeatureSpec("f_advertiser_ctr_30d", "rate", 0.027, False, 4),
    FeatureSpec("f_ctr_7d", "rate", 0.024, False, 4),
    FeatureSpec("f_ctx_relevance", "bounded", 0.034, False, 3),
    FeatureSpec("f_days_since_last_click", "heavy_tail", 0.041, True, 1),
    FeatureSpec("f_dwell_time", "heavy_tail", 0.046, True, 1),
    FeatureSpec("f_hist_spend_7d", "heavy_tail", 0.013, True, 1),
    FeatureSpec("f_hour_ctr_prior", "rate", 0.010, False, 4),
    FeatureSpec("f_is_mobile_app", "binary", 0.011, False, 0),
    FeatureSpec("f_is_new_user", "binary", 0.016, False, 0),
    FeatureSpec("f_is_retargeted", "binary", 0.019, False, 0),
    FeatureSpec("f_landing_load_ms", "heavy_tail", 0.037, True, 0),
    FeatureSpec("f_position", "bounded", 0.010, False, 0),
    FeatureSpec("f_session_depth", "count", 0.029, True, 0),
    FeatureSpec("f_user_age_days", "count", 0.022, True, 0),
    FeatureSpec("f_user_clicks_30d", "count", 0.031, True, 0),
    FeatureSpec("f_user_ctr_30d", "rate", 0.033, False, 4),
    FeatureSpec("f_user_embed_0", "gaussian", 0.025, False, 3),
    FeatureSpec("f_user_impressions_30d", "count", 0.031, True, 0),
    FeatureSpec("f_viewability", "rate", 0.044, False, 3),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
SPEC = {f.name: f for f in FEATURES}
# Organic drift: slow trends in two features the true click process barely
# uses. Present in every case, the control included; never an incident target.
DRIFT_FEATURES = ("f_ad_impressions_7d", "f_user_age_days")


@dataclass(slots=True)
class Traffic:
    """A block of simulated rows: raw features (NaN = null) and the truth."""

    ts: np.ndarray  # int64 microseconds since the epoch, UTC
    slices: dict[str, np.ndarray]  # column -> int8 codes into SLICES[column]
    features: dict[str, np.ndarray]  # name -> float64, NaN where null
    true_logit: np.ndarray  # float64 logit of the true click probability
    label: np.ndarray | None = field(default=None)  # float64 0/1, NaN = not joined

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, idx: np.ndarray) -> Traffic:
        return Traffic(
            ts=self.ts[idx],
            slices={k: v[idx] for k, v in self.slices.items()},
            features={k: v[idx] for k, v in self.features.items()},
            true_logit=self.true_logit[idx],
            label=None if self.label is None else self.label[idx],
        )


def hourly_volume(hours: np.ndarray) -> np.ndarray:
    """Relative traffic per hour: a daily cycle peaking in the US evening."""
    hod = hours % 24
    day = hours // 24
    return (1.0 + 0.45 * np.cos(2 * np.pi * (hod - 20) / 24)) * (1.0 + 0.03 * np.sin(day))


def rows_per_hour(rng: np.random.Generator, n_rows: int, first_hour: int, n_hours: int) -> np.ndarray:
    """Split ``n_rows`` over hours ``first_hour ..`` (relative to the window) by volume."""
    w = hourly_volume(np.arange(first_hour, first_hour + n_hours))
    return rng.multinomial(n_rows, w / w.sum())


def timestamps(rng: np.random.Generator, counts: np.ndarray, first_hour: int) -> np.ndarray:
    """Sorted millisecond-resolution timestamps, ``counts[i]`` in hour ``first_hour + i``."""
    hour = np.repeat(np.arange(first_hour, first_hour + len(counts), dtype=np.int64), counts)
    offset_ms = rng.integers(0, 3_600_000, size=len(hour), dtype=np.int64)
    ts = START_US + hour * HOUR_US + offset_ms * 1000
    return np.sort(ts)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def daily_cycle(ts: np.ndarray) -> np.ndarray:
    """+1 at 21:00 UTC, -1 at 09:00 UTC: clicks are likelier at night."""
    hod = (ts % DAY_US) / HOUR_US
    return np.cos(2 * np.pi * (hod - 21) / 24)


def simulate(rng: np.random.Generator, ts: np.ndarray) -> Traffic:
    """Draw one impression per timestamp: slices, features and the true logit."""
    n = len(ts)
    t_days = (ts - START_US) / DAY_US  # negative in the history period
    cycle = daily_cycle(ts)

    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_SHARE).astype(np.int8)
    platform = rng.choice(len(PLATFORMS), size=n, p=PLATFORM_SHARE).astype(np.int8)
    ad_type = rng.choice(len(AD_TYPES), size=n, p=AD_TYPE_SHARE).astype(np.int8)

    u, a, r = rng.standard_normal((3, n))
    noise = rng.standard_normal((16, n))
    is_new = rng.random(n) < 0.07
    retargeted = rng.random(n) < np.where(u > 0.8, 0.22, 0.11)
    position = np.minimum(rng.geometric(0.38, size=n), 8).astype(np.float64)
    is_mobile = (platform != 2) ^ (rng.random(n) < 0.03)

    user_imps = np.round(np.exp(5.0 + 0.25 * u + 0.8 * noise[0]) * np.where(is_new, 0.05, 1.0))
    user_ctr_latent = _sigmoid(-2.6 + 0.9 * u + 0.2 * noise[1])
    user_clicks = rng.poisson(user_imps * user_ctr_latent).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        user_ctr = np.where(user_imps > 0, user_clicks / user_imps, np.nan)
    days_since_click = np.exp(1.2 - 0.6 * u + 1.1 * noise[2])
    age_days = np.where(
        is_new,
        rng.integers(0, 7, size=n).astype(np.float64),
        np.round(np.exp(5.6 + 0.3 * u + 0.9 * noise[3]) * (1.0 + 0.05 * t_days)),
    )
    load_ms = np.round(np.exp(6.6 + 0.45 * noise[4] + np.where(platform == 2, 0.3, 0.0)))
    viewability = np.clip(rng.beta(6.0, 2.0, size=n) - 0.04 * (position - 1), 0.0, 1.0)
    bid = np.maximum(np.exp(-0.4 + 0.25 * a + 0.7 * noise[5]), 0.01)

    features = {
        "f_ad_bid": bid,
        "f_ad_embed_0": 0.35 * a + 0.95 * noise[6],
        "f_ad_embed_1": noise[7],
        "f_ad_impressions_7d": np.round(np.exp(8.5 + 0.3 * a + 1.3 * noise[8]) * (1.0 + 0.06 * t_days)),
        "f_ad_quality_score": np.clip(5.5 + 0.9 * a + 1.6 * noise[9], 0.0, 10.0),
        "f_advertiser_ctr_30d": _sigmoid(-2.5 + 0.3 * a + 0.6 * noise[10]),
        "f_ctr_7d": _sigmoid(-2.55 + 0.9 * a + 0.2 * noise[11]),
        "f_ctx_relevance": np.tanh(0.8 * r + 0.2 * noise[12]),
        "f_days_since_last_click": days_since_click,
        "f_dwell_time": np.exp(3.0 + 0.15 * u + 0.8 * noise[13]),
        "f_hist_spend_7d": (rng.pareto(1.5, size=n) + 1.0) * 40.0 * np.exp(0.2 * a),
        "f_hour_ctr_prior": 0.085 * np.exp(0.2 * cycle + 0.05 * noise[14]),
        "f_is_mobile_app": is_mobile.astype(np.float64),
        "f_is_new_user": is_new.astype(np.float64),
        "f_is_retargeted": retargeted.astype(np.float64),
        "f_landing_load_ms": load_ms,
        "f_position": position,
        "f_session_depth": 1.0 + rng.poisson(np.exp(0.9 + 0.25 * u)),
        "f_user_age_days": age_days,
        "f_user_clicks_30d": user_clicks,
        "f_user_ctr_30d": user_ctr,
        "f_user_embed_0": 0.35 * u + 0.95 * noise[15],
        "f_user_impressions_30d": user_imps,
        "f_viewability": viewability,
    }
    null_draw = rng.random((len(FEATURES), n))
    for i, spec in enumerate(FEATURES):
        x = np.round(features[spec.name], spec.decimals)
        x[null_draw[i] < spec.null_rate] = np.nan
        features[spec.name] = x

    true_logit = (
        -2.60
        + 1.20 * u
        + 1.15 * a
        + 1.10 * r
        - 0.42 * (position - 1)
        + 0.30 * retargeted
        - 0.20 * is_new
        + 0.15 * cycle
        + np.asarray(PLATFORM_EFFECT)[platform]
        + np.asarray(COUNTRY_EFFECT)[country]
        + np.asarray(AD_TYPE_EFFECT)[ad_type]
        + 0.8 * (viewability - 0.7)
        - 0.15 * np.log(load_ms / 735.0)
        + 0.12 * np.log(bid / 0.7)
        + 0.25 * rng.standard_normal(n)
    )
    return Traffic(
        ts=ts,
        slices={"country": country, "platform": platform, "ad_type": ad_type},
        features=features,
        true_logit=true_logit,
    )


def draw_labels(rng: np.random.Generator, true_logit: np.ndarray) -> np.ndarray:
    """label ~ Bernoulli(sigmoid(true_logit)), as float64 0/1."""
    return (rng.random(len(true_logit)) < _sigmoid(true_logit)).astype(np.float64)


def label_delay_mask(rng: np.random.Generator, ts: np.ndarray, end_us: int) -> np.ndarray:
    """True where the label is not joined yet at the end of the window.

    The share still missing decays with the row's age: ~80% in the last hour,
    ~45% two hours back, ~5% five hours back, none after six hours.
    """
    age_h = (end_us - ts) / HOUR_US
    p_missing = np.where(age_h < 6.0, np.clip(1.05 * np.exp(-age_h / 1.8), 0.0, 1.0), 0.0)
    return rng.random(len(ts)) < p_missing


def feature_matrix(traffic: Traffic) -> np.ndarray:
    """float32 [n, 24] in model input order, nulls filled with 0.0."""
    x = np.empty((len(traffic), len(FEATURES)), dtype=np.float32)
    for j, name in enumerate(FEATURE_NAMES):
        x[:, j] = np.nan_to_num(traffic.features[name], nan=0.0)
    return x
