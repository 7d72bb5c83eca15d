"""The development / held-back split: which families, modes, names and parameter bands each side draws from.

The held-back set exists to tell whether a method generalises or was fitted to the
development cases. So the two sides share the *kinds* of incident but differ in
everything a tuned method could latch onto by accident:

* **names**: feature, slice, snapshot-id, lineage and event vocabularies are built
  from disjoint token sets (a dev feature name never occurs in held, and so on);
* **parameter bands**: traffic, span, base rate, snapshot cadence and incident
  severity are drawn from interleaved bands of one overall range (dev takes the
  1st, 3rd, 5th... band, held the ones between), so held values are never ones
  dev was tuned on, yet stay inside the realistic range;
* **held-only modes**: some incident modes are never drawn for dev (``HELD_ONLY``);
* **seeds**: dev seeds are ``[0, 1_000_000)``, held seeds ``[1_000_000, 2_000_000)``.

Everything here is data; ``scenario.draw`` reads it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

SEED_RANGES = {"dev": (0, 1_000_000), "held": (1_000_000, 2_000_000)}

#: family -> every mode, in a stable order. Modes listed in HELD_ONLY are never drawn for dev.
MODES: dict[str, tuple[str, ...]] = {
    "feature": ("coverage_null", "coverage_default", "scale", "stale_constant", "stale_block",
                "decorrelated_shuffle", "decorrelated_lag_hours", "decorrelated_lag_days", "mixed", "slice_confined"),
    "upstream": ("coverage", "stale", "scale"),
    "snapshot": ("scaled_tensor", "zeroed_rows", "sign_flip", "shuffled_labels", "negative_sampling", "nan_tensor"),
    "label": ("positives_lost", "spurious_positives", "duplicated_positives"),
    "calibration": ("offset", "temperature"),
    "slice": ("collapse", "decoupled"),
    "shift": ("latent", "boolean_share"),
    "multi": ("coverage_plus_calibration", "two_features"),
    "sparse": ("no_incident", "with_incident"),
    "control": ("quiet", "organic_drift", "traffic_mix", "holiday"),
}
FAMILIES: tuple[str, ...] = tuple(MODES)

#: Modes that only the held-back set ever draws.
HELD_ONLY: frozenset[tuple[str, str]] = frozenset({
    ("feature", "coverage_default"),       # values become a default (0, -1, a prior) instead of null
    ("feature", "decorrelated_lag_days"),  # served values from rows 1-7 days earlier
    ("snapshot", "nan_tensor"),            # a NaN in one tensor; serving falls back to a constant
    ("label", "duplicated_positives"),     # positive rows logged twice
    ("calibration", "temperature"),        # logits divided by a temperature instead of shifted
    ("control", "holiday"),                # one day with different volume and base rate
})


def modes_for(family: str, split: str) -> tuple[str, ...]:
    """The modes a split draws for ``family`` (dev never sees a HELD_ONLY mode)."""
    if family not in MODES:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    check_split(split)
    return tuple(m for m in MODES[family] if split == "held" or (family, m) not in HELD_ONLY)


def check_split(split: str) -> None:
    if split not in SEED_RANGES:
        raise ValueError(f"unknown split {split!r}; 'dev' or 'held'")


# --------------------------------------------------------------------------- parameter bands
# One overall range per parameter, cut into bands; dev draws from the even-numbered bands
# and held from the odd ones, so the two sides interleave and never overlap.

def _interleave(edges: list[float]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    bands = list(itertools.pairwise(edges))
    return bands[0::2], bands[1::2]


_RATE_DEV, _RATE_HELD = _interleave([1.3, 1.8, 2.3, 2.8, 3.3, 3.8, 4.3, 5.0])        # log10 rows per hour, 20..100k
_SPAN_DEV, _SPAN_HELD = _interleave([72, 144, 240, 480, 960, 1920, 3600, 4380])       # hours, 3 days..6 months
_BASE_DEV, _BASE_HELD = _interleave([0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.30])      # base rate
_SEV_DEV, _SEV_HELD = _interleave([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])                      # incident severity in [0, 1]
_REFRESH_DEV, _REFRESH_HELD = _interleave([4, 12, 24, 72, 168])                        # hours between snapshots


# --------------------------------------------------------------------------- vocabularies
@dataclass(frozen=True)
class Vocab:
    """Name material for one split. Token sets are disjoint between splits."""

    entities: tuple[str, ...]
    quantities: dict[str, str]            # quantity -> distribution family
    windows: tuple[str, ...]
    standalone: dict[str, str]            # whole feature names -> family
    bundle_suffixes: tuple[str, ...]
    slices: dict[str, tuple[str, ...]]    # slice column -> values
    snapshot_styles: tuple[str, ...]
    snapshot_prefixes: tuple[str, ...]
    source_kinds: tuple[str, ...]         # lineage kind of the upstream sources (table, stream, ...)
    source_names: tuple[str, ...]
    pipeline_kind: str
    pipeline_names: tuple[str, ...]
    event_kinds: tuple[str, ...]
    services: tuple[str, ...]
    case_words: tuple[str, ...]


DEV_VOCAB = Vocab(
    entities=("user", "ad", "advertiser", "campaign", "creative", "query", "publisher"),
    quantities={"clicks": "count", "impressions": "count", "conversions": "count", "installs": "count",
                "likes": "count", "searches": "count", "ctr": "rate", "cvr": "rate", "bounce_rate": "rate",
                "like_rate": "rate", "spend_usd": "lognormal", "dwell_time_s": "lognormal", "bid_usd": "lognormal",
                "revenue_usd": "lognormal", "quality_score": "score", "relevance_score": "score",
                "freshness_score": "score", "embedding_sim": "gauss", "score_delta": "gauss",
                "is_new": "binary", "is_premium": "binary", "has_video": "binary"},
    windows=("1h", "1d", "7d", "28d"),
    standalone={"hour_of_week": "time", "ad_position": "count", "page_depth": "count",
                "ad_quality_score": "score", "position_bias": "gauss"},
    bundle_suffixes=("v2", "smoothed", "raw"),
    slices={"country": ("US", "GB", "DE", "FR", "JP", "BR", "IN", "CA", "MX", "AU", "ES", "IT"),
            "platform": ("ios", "android", "web", "ipad"),
            "surface": ("feed", "search", "stories", "explore", "notifications", "profile"),
            "device_type": ("phone", "tablet", "desktop", "tv", "console"),
            "ad_format": ("banner", "video", "carousel", "native", "interstitial", "rewarded", "playable")},
    snapshot_styles=("semver", "dated"),
    snapshot_prefixes=("ctr", "rank", "pctr"),
    source_kinds=("table",),
    source_names=("ads_impressions_hourly", "ad_clicks", "user_events_daily", "campaign_catalog", "creative_meta",
                  "query_log", "advertiser_accounts", "billing_events", "publisher_inventory", "user_profile_snapshot",
                  "conversion_postbacks", "bid_requests"),
    pipeline_kind="pipeline",
    pipeline_names=("user_agg_v2", "ctr_rollup", "ad_stats_daily", "campaign_features", "query_features",
                    "creative_embed", "advertiser_agg", "publisher_stats", "context_features", "conv_join"),
    event_kinds=("deploy", "config_push", "pipeline_rerun", "schema_change"),
    services=("ranker-frontend", "ads-serving", "feature-store", "bidder", "ctr-trainer"),
    case_words=("ads ctr", "feed ranking", "search ads", "promoted posts"),
)

HELD_VOCAB = Vocab(
    entities=("viewer", "item", "seller", "listing", "author", "session", "doc", "channel"),
    quantities={"views": "count", "saves": "count", "shares": "count", "purchases": "count", "follows": "count",
                "comments": "count", "save_rate": "rate", "share_rate": "rate", "purchase_rate": "rate",
                "completion_rate": "rate", "watch_seconds": "lognormal", "price_eur": "lognormal",
                "gmv_eur": "lognormal", "latency_ms": "lognormal", "trust_score": "score",
                "popularity_index": "score", "two_tower_dot": "gauss", "cosine_affinity": "gauss",
                "is_returning": "binary", "is_verified": "binary", "has_discount": "binary"},
    windows=("30m", "24h", "3d", "14d", "90d"),
    standalone={"hour_of_day_local": "time", "day_of_week": "time", "query_doc_bm25": "score",
                "slot_index": "count", "scroll_depth_px": "lognormal"},
    bundle_suffixes=("new", "ema", "dedup"),
    slices={"region": ("emea", "apac", "latam", "na", "mena", "ssa", "oceania", "cis"),
            "os": ("ios_17", "ios_18", "android_14", "android_15", "windows", "macos", "linux", "chromeos"),
            "placement": ("top_slot", "sidebar", "inline_3", "inline_7", "footer", "overlay", "grid"),
            "app_version": ("5.1.0", "5.2.0", "5.2.1", "5.3.0", "6.0.0", "6.0.2"),
            "network_type": ("wifi", "cell_4g", "cell_5g", "cell_3g", "ethernet"),
            "locale": ("en-US", "pt-BR", "de-DE", "hi-IN", "ja-JP", "es-MX", "fr-FR", "ko-KR", "id-ID", "tr-TR")},
    snapshot_styles=("sha", "ckpt"),
    snapshot_prefixes=("ckpt", "model", "m"),
    source_kinds=("stream", "dataset"),
    source_names=("kafka.viewer_events", "warehouse.listing_dim", "lake.item_interactions", "cdc.seller_accounts",
                  "warehouse.orders_fact", "kafka.session_beacons", "lake.doc_index", "warehouse.channel_dim",
                  "cdc.price_changes", "kafka.playback_events", "lake.search_sessions", "warehouse.author_dim"),
    pipeline_kind="job",
    pipeline_names=("etl/item_stats@v3", "etl/viewer_profile@v7", "spark/listing_agg", "flink/session_counts",
                    "etl/seller_quality", "dbt/doc_features", "spark/channel_rollup", "flink/playback_agg",
                    "etl/price_index", "dbt/author_scores"),
    event_kinds=("release", "flag_flip", "backfill", "migration"),
    services=("reco-api", "edge-cache", "feature-hub", "ranking-svc", "trainer-cron"),
    case_words=("marketplace reco", "video feed", "doc search", "notifications ranking"),
)


@dataclass(frozen=True)
class Split:
    """Everything that differs between the development and the held-back set."""

    name: str
    seeds: tuple[int, int]
    vocab: Vocab
    log10_rows_per_hour: list[tuple[float, float]]
    span_hours: list[tuple[float, float]]
    base_rate: list[tuple[float, float]]
    severity: list[tuple[float, float]]
    refresh_hours: list[tuple[float, float]]
    held_only: frozenset[tuple[str, str]] = field(default=HELD_ONLY)


SPLITS: dict[str, Split] = {
    "dev": Split("dev", SEED_RANGES["dev"], DEV_VOCAB, _RATE_DEV, _SPAN_DEV, _BASE_DEV, _SEV_DEV, _REFRESH_DEV),
    "held": Split("held", SEED_RANGES["held"], HELD_VOCAB, _RATE_HELD, _SPAN_HELD, _BASE_HELD, _SEV_HELD, _REFRESH_HELD),
}


def severity_top(split: str) -> float:
    """The highest severity a split's bands allow (escalation stops there)."""
    return max(hi for _, hi in SPLITS[split].severity)
