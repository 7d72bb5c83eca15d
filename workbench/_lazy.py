"""Lazy package namespaces: names resolve to their module on first use, so imports stay cheap.

``import workbench`` must not pay for polars, torch or shap (a training script
imports ``workbench.lab`` for its marks; ``workbench --help`` must answer at once).
Each package lists ``name -> module`` once; :func:`lazy_namespace` gives it the
module-level ``__getattr__`` and ``__dir__`` (PEP 562).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

__all__ = ["lazy_namespace"]


def lazy_namespace(package: str, exports: Mapping[str, str], public: list[str]) -> tuple[Callable[[str], object],
                                                                                        Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, resolving each name in ``exports`` from its module."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(set(public) | set(exports))

    return __getattr__, __dir__
