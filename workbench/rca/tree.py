"""The decision tree as data: nodes are questions with a check and the children to visit next.

Teams extend it from their own code without editing the package::

    from workbench.rca import Evidence, Node, register

    def ab_test_overlap(ctx):
        ...
        return Evidence("ab_test_overlap", "pass", 0.0, "No experiment started near the onset.")

    register(Node("ab_tests", "Did an A/B test start near the onset?", ab_test_overlap), parent="model_side")

A registered node shows up everywhere the tree is used: ``workbench diagnose``,
the HTML report and the decision-tree widget. Installed packages can register
nodes through the ``workbench.checks`` entry-point group; the CLI also imports
modules named in ``--plugin`` or the ``WORKBENCH_PLUGINS`` environment variable.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from workbench.errors import WorkbenchError, suggest

if TYPE_CHECKING:
    from workbench.rca.context import Context
    from workbench.rca.evidence import Evidence

__all__ = ["REQUIREMENTS", "Node", "Tree", "load_plugins", "register", "registered"]

Check = Callable[["Context"], "Evidence"]

# What a node may need, and the file that provides it (said when the check is skipped).
REQUIREMENTS = {
    "snapshots": "no snapshots/index.csv",
    "snapshot_column": "no snapshot column in the serving log ([columns] snapshot)",
    "model": "no model.py (or [model] factory)",
    "lineage": "no lineage.json",
    "training": "no training.parquet",
    "events": "no events.csv",
    "features": "no feature columns mapped ([columns] features)",
    "slices": "no slice columns ([columns] slices)",
}


@dataclass(frozen=True)
class Node:
    """One question of the investigation.

    ``check`` returns :class:`~workbench.rca.evidence.Evidence`; ``requires`` names
    inputs from :data:`REQUIREMENTS` (the node is skipped, with the reason, when one
    is missing); ``read`` tells a non-expert how to read the verdict.
    """

    name: str
    question: str
    check: Check
    children: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    read: str = ""

    def __post_init__(self) -> None:
        unknown = [r for r in self.requires if r not in REQUIREMENTS]
        if unknown:
            close = suggest(unknown[0], REQUIREMENTS)
            raise WorkbenchError(f"node '{self.name}'", f"unknown requirement {unknown[0]!r}.",
                                 f"did you mean {close!r}?" if close else f"use one of {sorted(REQUIREMENTS)}")


@dataclass(frozen=True)
class Tree:
    """An immutable tree of nodes; ``with_node`` returns a new tree."""

    nodes: dict[str, Node] = field(default_factory=dict)
    root: str = "prediction_quality"

    def with_node(self, node: Node, parent: str) -> Tree:
        if parent not in self.nodes:
            close = suggest(parent, self.nodes)
            raise WorkbenchError(f"node '{node.name}'", f"parent '{parent}' is not in the tree.",
                                 f"did you mean '{close}'?" if close else f"nodes: {sorted(self.nodes)}")
        nodes = dict(self.nodes)
        if node.name in nodes and node.name not in nodes[parent].children:
            raise WorkbenchError(f"node '{node.name}'", "a node of that name exists elsewhere in the tree.", "choose another name.")
        nodes[node.name] = node
        if node.name not in nodes[parent].children:
            nodes[parent] = replace(nodes[parent], children=(*nodes[parent].children, node.name))
        return Tree(nodes, self.root)

    def walk(self) -> Iterator[tuple[Node, tuple[str, ...]]]:
        """Depth-first, children in order: (node, path from the root to it)."""
        stack: list[tuple[str, tuple[str, ...]]] = [(self.root, (self.root,))]
        while stack:
            name, path = stack.pop()
            node = self.nodes[name]
            yield node, path
            stack.extend((child, (*path, child)) for child in reversed(node.children))

    def to_dict(self) -> dict:
        return {"root": self.root, "nodes": [{"name": n.name, "question": n.question, "children": list(n.children),
                                              "requires": list(n.requires), "read": n.read} for n in self.nodes.values()]}


_REGISTERED: list[tuple[Node, str]] = []


def registered() -> tuple[tuple[Node, str], ...]:
    """Every ``(node, parent)`` added with :func:`register`, in order."""
    return tuple(_REGISTERED)


def register(node: Node, parent: str) -> None:
    """Add ``node`` under ``parent`` in every tree built from now on (CLI, report, widgets)."""
    _REGISTERED[:] = [(n, p) for n, p in _REGISTERED if n.name != node.name]
    _REGISTERED.append((node, parent))


def load_plugins(modules: list[str] | tuple[str, ...] = ()) -> None:
    """Import plugin modules (which call :func:`register`) from arguments, env and entry points."""
    from importlib.metadata import entry_points

    names = [*modules, *filter(None, os.environ.get("WORKBENCH_PLUGINS", "").split(","))]
    for name in names:
        try:
            importlib.import_module(name.strip())
        except ImportError as exc:
            raise WorkbenchError(f"plugin '{name}'", f"cannot be imported: {exc}.",
                                 "make sure the module is on PYTHONPATH (or installed) and imports cleanly.") from None
    for ep in entry_points(group="workbench.checks"):
        ep.load()
