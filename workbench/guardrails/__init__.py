"""``workbench guard``: guardrail monitors on the newest window, so a scheduler can stop a bad snapshot, feature or
training window before it reaches production (exit status 1 when one trips). See :mod:`workbench.guardrails.monitors`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench._lazy import lazy_namespace

__all__ = ["MONITORS", "GuardReport", "MonitorResult", "guard", "newest_window"]

_EXPORTS = dict.fromkeys(__all__, "workbench.guardrails.monitors")

if TYPE_CHECKING:
    from workbench.guardrails.monitors import MONITORS, GuardReport, MonitorResult, guard, newest_window

__getattr__, __dir__ = lazy_namespace("workbench.guardrails", _EXPORTS, __all__)
