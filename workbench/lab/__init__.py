"""The regression lab: A/B tests of training workflows for time-to-first-batch (TTFB).

Import-light on purpose: a training script does ``from workbench.lab import
mark`` and must not pay for polars, scipy or torch. Everything else loads on
first attribute access. See ``workbench/lab/README.md`` for the pipeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from workbench.lab.marks import FIRST_BATCH, mark, shrink

__all__ = [
    "FIRST_BATCH",
    "BisectResult",
    "Comparison",
    "LabError",
    "LabSettings",
    "PhaseComparison",
    "RunSet",
    "SampleRepo",
    "Variant",
    "assess",
    "bisect",
    "compare",
    "compare_revisions",
    "make_sample_repo",
    "mark",
    "run_interleaved",
    "shrink",
]

_LAZY = {
    "BisectResult": "workbench.lab.bisection",
    "bisect": "workbench.lab.bisection",
    "Comparison": "workbench.lab.comparison",
    "PhaseComparison": "workbench.lab.comparison",
    "assess": "workbench.lab.comparison",
    "compare": "workbench.lab.comparison",
    "compare_revisions": "workbench.lab.comparison",
    "LabError": "workbench.lab.errors",
    "LabSettings": "workbench.lab.settings",
    "RunSet": "workbench.lab.runner",
    "Variant": "workbench.lab.runner",
    "run_interleaved": "workbench.lab.runner",
    "SampleRepo": "workbench.lab.sample_repo",
    "make_sample_repo": "workbench.lab.sample_repo",
}

if TYPE_CHECKING:
    from workbench.lab.bisection import BisectResult, bisect
    from workbench.lab.comparison import Comparison, PhaseComparison, assess, compare, compare_revisions
    from workbench.lab.errors import LabError
    from workbench.lab.runner import RunSet, Variant, run_interleaved
    from workbench.lab.sample_repo import SampleRepo, make_sample_repo
    from workbench.lab.settings import LabSettings


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench.lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
