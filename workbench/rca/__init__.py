"""The root-cause engine: a guided decision tree over a case, ranked causes, one diagnosis.

See ``README.md`` beside this file for the pipeline and how to add your own checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench._lazy import lazy_namespace

__all__ = [
    "Candidate",
    "Context",
    "Diagnosis",
    "Evidence",
    "Node",
    "RootCause",
    "Tree",
    "default_tree",
    "diagnose",
    "load_plugins",
    "register",
]

_EXPORTS = {
    "Context": "workbench.rca.context",
    "Diagnosis": "workbench.rca.diagnosis",
    "diagnose": "workbench.rca.diagnosis",
    "Candidate": "workbench.rca.evidence",
    "Evidence": "workbench.rca.evidence",
    "RootCause": "workbench.rca.ranking",
    "Node": "workbench.rca.tree",
    "Tree": "workbench.rca.tree",
    "load_plugins": "workbench.rca.tree",
    "register": "workbench.rca.tree",
    "default_tree": "workbench.rca.checks",
}

if TYPE_CHECKING:
    from workbench.rca.checks import default_tree
    from workbench.rca.context import Context
    from workbench.rca.diagnosis import Diagnosis, diagnose
    from workbench.rca.evidence import Candidate, Evidence
    from workbench.rca.ranking import RootCause
    from workbench.rca.tree import Node, Tree, load_plugins, register

__getattr__, __dir__ = lazy_namespace("workbench.rca", _EXPORTS, __all__)
