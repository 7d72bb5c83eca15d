"""The upstream data lineage: tables and pipelines that feed the feature columns.

Edges point downstream. A feature column ``f_x`` is the node ``feature:f_x``.
The graph is small (hundreds of nodes), so plain Python sets are the right tool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from workbench.errors import CaseError, suggest

__all__ = ["FEATURE_PREFIX", "Lineage", "read_lineage"]

FEATURE_PREFIX = "feature:"


@dataclass(frozen=True)
class Lineage:
    """A validated DAG: ``kinds`` maps node id to kind, ``edges`` are (upstream, downstream)."""

    kinds: dict[str, str]
    edges: tuple[tuple[str, str], ...]

    @cached_property
    def _children(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {n: [] for n in self.kinds}
        for a, b in self.edges:
            out[a].append(b)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def _parents(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {n: [] for n in self.kinds}
        for a, b in self.edges:
            out[b].append(a)
        return {k: tuple(v) for k, v in out.items()}

    def _walk(self, start: str, step: dict[str, tuple[str, ...]]) -> frozenset[str]:
        seen: set[str] = set()
        todo = list(step.get(start, ()))
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(step[node])
        return frozenset(seen)

    def descendants(self, node: str) -> frozenset[str]:
        """Every node reachable downstream of ``node`` (not itself)."""
        return self._walk(node, self._children)

    def ancestors(self, node: str) -> frozenset[str]:
        """Every node upstream of ``node`` (not itself)."""
        return self._walk(node, self._parents)

    def features_of(self, node: str) -> frozenset[str]:
        """Feature *column names* downstream of ``node``."""
        return frozenset(n.removeprefix(FEATURE_PREFIX) for n in self.descendants(node) if n.startswith(FEATURE_PREFIX))

    def upstream_of_feature(self, feature: str) -> frozenset[str]:
        """Non-feature nodes upstream of the feature column ``feature``."""
        return frozenset(n for n in self.ancestors(FEATURE_PREFIX + feature) if not n.startswith(FEATURE_PREFIX))

    def to_dict(self) -> dict:
        return {"nodes": [{"id": n, "kind": k} for n, k in self.kinds.items()],
                "edges": [{"from": a, "to": b} for a, b in self.edges]}


def _find_cycle(kinds: dict[str, str], edges: list[tuple[str, str]]) -> list[str] | None:
    children: dict[str, list[str]] = {n: [] for n in kinds}
    for a, b in edges:
        children[a].append(b)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in kinds:
        if root in state:
            continue
        stack = [(root, iter(children[root]))]
        path = [root]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(children[nxt])))
                path.append(nxt)
    return None


def read_lineage(path: Path) -> Lineage:
    """Read and validate ``lineage.json`` (unknown nodes and cycles are errors)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CaseError(path, f"not valid JSON: {exc}.", "fix the syntax; the format is {\"nodes\": [...], \"edges\": [...]}.") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("nodes"), list) or not isinstance(raw.get("edges", []), list):
        raise CaseError(path, "expected an object with lists 'nodes' and 'edges'.",
                        'write {"nodes": [{"id": "table:x", "kind": "table"}], "edges": [{"from": "table:x", "to": "feature:f_x"}]}')
    kinds: dict[str, str] = {}
    for i, node in enumerate(raw["nodes"]):
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            raise CaseError(path, f"nodes[{i}] has no string 'id': {node!r}.", 'each node is {"id": "table:x", "kind": "table"}.')
        if node["id"] in kinds:
            raise CaseError(path, f"node '{node['id']}' is listed twice.", "keep one entry per node id.")
        kinds[node["id"]] = str(node.get("kind", "node"))
    edges: list[tuple[str, str]] = []
    for i, edge in enumerate(raw.get("edges", [])):
        if not isinstance(edge, dict) or not isinstance(edge.get("from"), str) or not isinstance(edge.get("to"), str):
            raise CaseError(path, f"edges[{i}] needs string 'from' and 'to': {edge!r}.",
                            'each edge is {"from": "table:x", "to": "pipeline:y"}.')
        for end in ("from", "to"):
            if edge[end] not in kinds:
                close = suggest(edge[end], kinds)
                hint = f"did you mean '{close}'?" if close else f"add {{\"id\": \"{edge[end]}\", \"kind\": \"...\"}} to nodes."
                raise CaseError(path, f"edges[{i}] '{end}' names unknown node '{edge[end]}'.", hint)
        edges.append((edge["from"], edge["to"]))
    cycle = _find_cycle(kinds, edges)
    if cycle:
        raise CaseError(path, f"lineage has a cycle: {' -> '.join(cycle)}.",
                        "edges point downstream (table -> pipeline -> feature); remove the edge that points back.")
    return Lineage(kinds=kinds, edges=tuple(edges))
