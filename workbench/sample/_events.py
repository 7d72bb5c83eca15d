"""The change log (events.csv): mostly harmless changes, a few near the onset.

Background events are drawn from the seed alone, so every incident of one
seed shares them; the incident adds distractors on unrelated nodes near its
onset and, for some seeds, one change on the culprit shortly before it.
"""

from __future__ import annotations

import numpy as np

from workbench.sample import _lineage as lineage
from workbench.sample import _world as world
from workbench.sample.incidents import INCIDENTS, Plan

Event = tuple[int, str, str, str]  # ts (us), kind, target, description

_MINUTE_US = 60_000_000
_PIPELINES = tuple(n for n in lineage.all_nodes() if n.startswith("pipeline:"))
_TABLES = tuple(n for n in lineage.all_nodes() if n.startswith("table:"))
_CONFIG_KEYS = ("batch_size", "max_lag_minutes", "dedup_window_s", "parallelism", "retry_limit", "ttl_hours")
_COLUMNS = ("campaign_region", "placement_group", "sdk_build", "consent_flags", "creative_hash", "bid_strategy")


def _build(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("0123456789abcdef"), size=7))


def _describe(rng: np.random.Generator, kind: str, target: str) -> str:
    match kind:
        case "deploy":
            return f"deploy {target} build {_build(rng)}"
        case "config_push":
            key = str(rng.choice(_CONFIG_KEYS))
            old = int(rng.integers(2, 64))
            return f"config push: {key} {old} -> {old + int(rng.integers(1, 16))}"
        case "pipeline_rerun":
            return f"rerun of {target} for the previous partition (late-arriving data)"
        case "schema_change":
            return f"added nullable column `{rng.choice(_COLUMNS)}` to {target}"
        case "backfill":
            return f"backfill of {target}, last {int(rng.integers(2, 15))} days"
        case "experiment_ramp":
            lo = int(rng.choice((1, 5, 10, 25)))
            return f"ramp {target} from {lo}% to {2 * lo}% of traffic"
    raise AssertionError(kind)  # pragma: no cover


def _random_event(rng: np.random.Generator, exclude: set[str]) -> tuple[str, str]:
    kind = str(
        rng.choice(
            ("deploy", "config_push", "pipeline_rerun", "schema_change", "backfill", "experiment_ramp"),
            p=(0.25, 0.25, 0.2, 0.1, 0.08, 0.12),
        )
    )
    pools = {
        "deploy": _PIPELINES + lineage.SERVICES,
        "config_push": _PIPELINES + lineage.SERVICES,
        "pipeline_rerun": _PIPELINES,
        "schema_change": _TABLES,
        "backfill": _TABLES + _PIPELINES,
        "experiment_ramp": tuple(f"experiment:ranker_ab_{i}" for i in range(31, 37)),
    }
    pool = [t for t in pools[kind] if t not in exclude]
    return kind, str(rng.choice(pool))


def related_nodes(p: Plan) -> set[str]:
    """Change-log targets that would point at the culprit."""
    if p.node is not None:
        return {p.node, *lineage.children(p.node)}
    if p.features:
        return {n for f in p.features for n in lineage.ancestors(f)}
    return {
        "calibration": {"service:ctr-serving"},
        "label": {"service:label-joiner"},
        "snapshot": {"job:ctr-trainer"},
    }.get(p.kind, set())


def _implicated(p: Plan, rng: np.random.Generator) -> tuple[str, str, str]:
    if p.incident == "feature_slice_break":
        assert p.slice is not None
        app = f"client:{p.slice[1]}-app"
        return "deploy", app, f"roll out {app} 8.{int(rng.integers(10, 30))}.0 to 100% of users"
    if p.node is not None:
        return "schema_change", p.node, f"migrated {p.node} to a new partition layout"
    if p.features:
        target = str(rng.choice(lineage.parent_pipelines(p.features[0])))
        kind = str(rng.choice(("deploy", "config_push")))
        return kind, target, _describe(rng, kind, target)
    if p.kind == "calibration":
        v = int(rng.integers(10, 40))
        return "config_push", "service:ctr-serving", f"config push: calibration profile v{v} -> v{v + 1}"
    if p.kind == "label":
        return "deploy", "service:label-joiner", f"deploy service:label-joiner build {_build(rng)}"
    return "config_push", "job:ctr-trainer", "config push: trainer input window 12h -> 6h"


def change_log(p: Plan, seed: int, snapshots: list[tuple[str, int]]) -> list[Event]:
    """All events, sorted by time. ``snapshots`` is [(snapshot_id, published_us)]."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 13]))
    start = world.START_US - 24 * world.HOUR_US
    end = world.START_US + (world.WINDOW_HOURS - 1) * world.HOUR_US
    n = int(rng.poisson(0.75 * (end - start) / world.HOUR_US))
    times = np.sort(rng.integers(start // _MINUTE_US, end // _MINUTE_US, size=n)) * _MINUTE_US
    related = related_nodes(p)
    onset = p.onset_us
    events: list[Event] = []
    for t in times:
        kind, target = _random_event(rng, set())
        near = onset is not None and abs(int(t) - onset) < 3 * world.HOUR_US
        if near and target in related:
            continue  # keep the culprit's own changes an explicit part of the plan
        events.append((int(t), kind, target, _describe(rng, kind, target)))

    for i, (sid, published) in enumerate(snapshots):
        desc = (
            f"published {sid}: trained on {world.HISTORY_HOURS // 24} days of history"
            if i == 0
            else f"published {sid}: warm-started from {snapshots[i - 1][0]}, fine-tuned on the last 12 h"
        )
        events.append((published, "model_publish", sid, desc))

    if onset is not None:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 14, INCIDENTS.index(p.incident)]))
        for _ in range(int(rng.integers(2, 4))):
            t = onset + int(rng.integers(-90, 30)) * _MINUTE_US
            kind, target = _random_event(rng, related)
            events.append((t, kind, target, _describe(rng, kind, target)))
        if p.implicated_event:
            t = onset - int(rng.integers(4, 45)) * _MINUTE_US
            kind, target, desc = _implicated(p, rng)
            events.append((t, kind, target, desc))
    events.sort()
    return events
