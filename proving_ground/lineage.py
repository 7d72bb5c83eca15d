"""Upstream lineage (sources -> pipelines -> features) and the change log around the incident.

The DAG is random but built around the incident: for an upstream break one source
feeds exactly the broken features (through one or two pipelines), so the culprit is
well defined; every node whose downstream feature set equals the broken set is an
equally right answer and is listed in ``truth.target_equivalents``.

Events are evidence, never proof: background changes all over the log, distractors on
innocent nodes near the onset, and only sometimes an event on the true culprit.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from proving_ground.split import SPLITS
from proving_ground.world import HOUR_US


def build(feature_cols: list[str], rng: np.random.Generator, split: str, culprit: list[int] | None = None) -> dict:
    """Lineage over the feature columns. Returns {"nodes", "edges", "sources", "pipeline_of", "sources_of", "culprit"}."""
    v = SPLITS[split].vocab
    F = len(feature_cols)
    n_src = int(rng.integers(3, min(10, len(v.source_names)) + 1))
    n_pipe = int(rng.integers(2, min(8, len(v.pipeline_names)) + 1))
    src_names = [f"{rng.choice(v.source_kinds)}:{s}" for s in rng.choice(v.source_names, size=n_src, replace=False)]
    pipe_names = [f"{v.pipeline_kind}:{p}" for p in rng.choice(v.pipeline_names, size=n_pipe, replace=False)]
    culprit = list(culprit or [])
    others = [j for j in range(F) if j not in culprit]
    pipeline_of: dict[int, int] = {}
    reads: dict[int, set[int]] = {}
    culprit_src = None
    if culprit:
        # source 0 feeds only pipelines 0 (and maybe 1), which output exactly the culprit features
        culprit_src = 0
        n_cp = 2 if (len(culprit) >= 3 and n_pipe >= 3 and rng.random() < 0.5) else 1
        for k, j in enumerate(culprit):
            pipeline_of[j] = k % n_cp
        for p in range(n_cp):
            reads[p] = {0} | ({int(rng.integers(1, n_src))} if rng.random() < 0.5 else set())
        free_pipes = list(range(n_cp, n_pipe)) or [n_pipe - 1]
        for p in free_pipes:
            reads[p] = {int(s) for s in rng.choice(np.arange(1, n_src), size=min(int(rng.integers(1, 4)), n_src - 1), replace=False)}
        for j in others:
            pipeline_of[j] = int(rng.choice(free_pipes))
    else:
        for p in range(n_pipe):
            reads[p] = {int(s) for s in rng.choice(n_src, size=int(rng.integers(1, min(3, n_src) + 1)), replace=False)}
        for j in range(F):
            pipeline_of[j] = int(rng.integers(n_pipe))
    used_pipes = sorted(set(pipeline_of.values()))
    used_src = sorted({s for p in used_pipes for s in reads[p]})
    nodes = [{"id": src_names[s], "kind": src_names[s].split(":")[0]} for s in used_src]
    nodes += [{"id": pipe_names[p], "kind": v.pipeline_kind} for p in used_pipes]
    nodes += [{"id": f"feature:{c}", "kind": "feature"} for c in feature_cols]
    edges = [{"from": src_names[s], "to": pipe_names[p]} for p in used_pipes for s in sorted(reads[p])]
    edges += [{"from": pipe_names[pipeline_of[j]], "to": f"feature:{feature_cols[j]}"} for j in range(F)]
    sources_of = {j: sorted(src_names[s] for s in reads[pipeline_of[j]]) for j in range(F)}
    return {"nodes": nodes, "edges": edges, "pipeline_of": {j: pipe_names[p] for j, p in pipeline_of.items()},
            "sources_of": sources_of, "culprit": src_names[culprit_src] if culprit_src is not None else None}


def downstream(lineage: dict) -> dict[str, frozenset[str]]:
    """node id -> the set of feature nodes downstream of it."""
    children: dict[str, list[str]] = {}
    for e in lineage["edges"]:
        children.setdefault(e["from"], []).append(e["to"])
    memo: dict[str, frozenset[str]] = {}

    def walk(n: str) -> frozenset[str]:
        if n not in memo:
            if n.startswith("feature:"):
                memo[n] = frozenset([n])
            else:
                memo[n] = frozenset().union(*[walk(c) for c in children.get(n, [])]) if children.get(n) else frozenset()
        return memo[n]

    return {n["id"]: walk(n["id"]) for n in lineage["nodes"]}


def equivalents(lineage: dict, features: list[str]) -> list[str]:
    """Non-feature nodes whose downstream feature set is exactly ``features`` (column names)."""
    want = frozenset(f"feature:{c}" for c in features)
    return sorted(n for n, s in downstream(lineage).items() if s == want and not n.startswith("feature:"))


def sources_disjoint(lineage: dict, a: int, b: int) -> bool:
    return not set(lineage["sources_of"][a]) & set(lineage["sources_of"][b])


_DESCR = {
    "deploy": "deployed {t} build {b}", "release": "released {t} {b}",
    "config_push": "config push to {t}", "flag_flip": "flag flipped on {t}",
    "pipeline_rerun": "reran {t} for the last partition", "backfill": "backfilled {t}",
    "schema_change": "added a nullable column to {t}", "migration": "migrated {t} storage",
}


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def events(rng: np.random.Generator, split: str, start_us: int, end_us: int, lineage: dict | None,
           onset_us: int | None, culprit: tuple[str, str, str] | None, snapshots: list[tuple[str, int]]) -> tuple[list[dict], bool]:
    """Change-log rows (ts, kind, target, description) and whether an event on the culprit was included.

    ``culprit`` is (kind, target, description) of an event that points at the true cause.
    """
    v = SPLITS[split].vocab
    targets = list(v.services)
    if lineage:
        targets += [n["id"] for n in lineage["nodes"] if not n["id"].startswith("feature:")]
    span_days = (end_us - start_us) / (24 * HOUR_US)
    n_bg = min(300, int(rng.poisson(span_days * rng.uniform(0.3, 1.5))) + 1)
    rows = []

    def add(t: int, kind: str, target: str, desc: str | None = None) -> None:
        b = f"{rng.integers(100, 999)}.{rng.integers(0, 99)}"
        rows.append({"ts": int(t), "kind": kind, "target": target,
                     "description": desc or _DESCR[kind].format(t=target, b=b)})

    innocent = [t for t in targets if not culprit or t != culprit[1]]
    for t in rng.integers(start_us, end_us, n_bg):
        add(int(t), str(rng.choice(v.event_kinds)), str(rng.choice(innocent)))
    if snapshots and rng.random() < 0.5:
        for sid, t in snapshots:
            if start_us <= t < end_us:
                add(t + int(rng.integers(0, 600)) * 1_000_000, v.event_kinds[0], sid, f"published model snapshot {sid}")
    with_culprit = False
    if onset_us is not None:
        for _ in range(int(rng.integers(1, 4))):  # distractors near the onset
            add(onset_us + int(rng.uniform(-6, 6) * HOUR_US), str(rng.choice(v.event_kinds)), str(rng.choice(innocent)))
        if culprit and rng.random() < 0.5:
            kind, target, desc = culprit
            add(onset_us + int(rng.uniform(-1.5, 0.5) * HOUR_US), kind, target, desc)
            with_culprit = True
    rows = [r for r in rows if start_us - 24 * HOUR_US <= r["ts"] < end_us]
    rows.sort(key=lambda r: r["ts"])
    for r in rows:
        r["ts"] = _iso(r["ts"])
    return rows, with_culprit
