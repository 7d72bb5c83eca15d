"""The ML investigation workbench: why did a ranking model's predictions go bad?

Importing ``workbench`` is cheap: submodules load on first use, so a training
script can ``from workbench.lab import mark`` without paying for polars or torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["Case", "CaseError", "Window", "WorkbenchError", "open_case"]
__version__ = "0.1.0"

_LAZY = {
    "Case": "workbench.case",
    "open_case": "workbench.case",
    "CaseError": "workbench.errors",
    "WorkbenchError": "workbench.errors",
    "Window": "workbench.windows",
}

if TYPE_CHECKING:
    from workbench.case import Case, open_case
    from workbench.errors import CaseError, WorkbenchError
    from workbench.windows import Window


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
