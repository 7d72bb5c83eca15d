"""The upstream data lineage of the sample world: tables -> pipelines -> features.

Pipelines are shared (``pipeline:ctr_agg`` feeds three features) and some
features have several parents (``f_dwell_time`` is joined from two
pipelines). A table that reaches its features through two pipelines is the
only node that explains all of them breaking together, which is what makes
it a well-posed ``upstream`` incident target.
"""

from __future__ import annotations

from collections.abc import Callable

# upstream node -> downstream nodes; features are written without the
# "feature:" prefix here and renamed on output.
_EDGES: dict[str, tuple[str, ...]] = {
    "table:ad_clicks": ("pipeline:ctr_agg", "pipeline:user_history", "pipeline:advertiser_stats"),
    "table:ad_impressions": ("pipeline:ctr_agg", "pipeline:user_history", "pipeline:impression_counts"),
    "table:user_profiles": ("pipeline:profile_sync", "pipeline:user_history"),
    "table:ad_catalog": ("pipeline:ad_features", "pipeline:relevance_model"),
    "table:query_logs": ("pipeline:relevance_model",),
    "table:advertiser_billing": ("pipeline:bidding_snapshot", "pipeline:advertiser_stats"),
    "table:session_events": ("pipeline:session_stream", "pipeline:device_enrich"),
    "table:ad_server_logs": ("pipeline:serving_context", "pipeline:page_perf_agg"),
    "pipeline:ctr_agg": ("f_ctr_7d", "f_advertiser_ctr_30d", "f_hour_ctr_prior"),
    "pipeline:user_history": (
        "f_user_clicks_30d",
        "f_user_ctr_30d",
        "f_days_since_last_click",
        "f_user_impressions_30d",
    ),
    "pipeline:impression_counts": ("f_ad_impressions_7d", "f_user_impressions_30d"),
    "pipeline:profile_sync": ("f_user_age_days", "f_is_new_user", "f_user_embed_0"),
    "pipeline:ad_features": ("f_ad_quality_score", "f_ad_embed_0", "f_ad_embed_1"),
    "pipeline:relevance_model": ("f_ctx_relevance",),
    "pipeline:bidding_snapshot": ("f_ad_bid",),
    "pipeline:advertiser_stats": ("f_hist_spend_7d", "f_advertiser_ctr_30d"),
    "pipeline:session_stream": ("f_session_depth", "f_dwell_time"),
    "pipeline:device_enrich": ("f_is_mobile_app",),
    "pipeline:serving_context": ("f_position", "f_is_retargeted"),
    "pipeline:page_perf_agg": ("f_viewability", "f_landing_load_ms", "f_dwell_time"),
}

# Free-text change-log targets that are not lineage nodes.
SERVICES = ("service:ctr-serving", "service:feature-store", "service:ad-server", "service:label-joiner")


def _node(name: str, rename: Callable[[str], str]) -> str:
    return name if ":" in name else f"feature:{rename(name)}"


def lineage_json(rename: Callable[[str], str]) -> dict[str, list[dict[str, str]]]:
    """The ``lineage.json`` document, feature nodes named by ``rename``."""
    nodes: dict[str, str] = {}
    edges = []
    for src, dsts in _EDGES.items():
        nodes[src] = src.split(":")[0]
        for dst in dsts:
            dst_id = _node(dst, rename)
            nodes[dst_id] = "feature" if ":" not in dst else dst.split(":")[0]
            edges.append({"from": src, "to": dst_id})
    order = {"table": 0, "pipeline": 1, "feature": 2}
    node_list = [{"id": k, "kind": v} for k, v in sorted(nodes.items(), key=lambda kv: (order[kv[1]], kv[0]))]
    return {"nodes": node_list, "edges": edges}


def downstream_features(node: str) -> tuple[str, ...]:
    """Sorted internal feature names reachable from ``node``."""
    seen: set[str] = set()
    stack = [node]
    while stack:
        for child in _EDGES.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return tuple(sorted(n for n in seen if ":" not in n))


def ancestors(feature: str) -> tuple[str, ...]:
    """Sorted lineage nodes upstream of an internal feature name."""
    parents: dict[str, set[str]] = {}
    for src, dsts in _EDGES.items():
        for dst in dsts:
            parents.setdefault(dst, set()).add(src)
    seen: set[str] = set()
    stack = [feature]
    while stack:
        for p in parents.get(stack.pop(), ()):
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return tuple(sorted(seen))


def children(node: str) -> tuple[str, ...]:
    """Direct downstream nodes (internal feature names unprefixed)."""
    return _EDGES.get(node, ())


def parent_pipelines(feature: str) -> tuple[str, ...]:
    return tuple(sorted(src for src, dsts in _EDGES.items() if feature in dsts))


def all_nodes() -> tuple[str, ...]:
    """Every table and pipeline id, sorted."""
    return tuple(sorted(_EDGES))
