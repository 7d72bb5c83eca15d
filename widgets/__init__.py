"""The widget library (imported as ``workbench_widgets``): panel + holoviews views over workbench results.

It holds no analysis logic: every number it shows comes from a ``workbench`` call.
One call shows it all, in a notebook cell or under ``panel serve``::

    from workbench_widgets import investigate
    investigate("sample_data/cases/upstream_break")            # notebook
    investigate("sample_data/cases/upstream_break").servable() # panel serve app.py
"""

from __future__ import annotations

from workbench_widgets._plots import render_spec
from workbench_widgets.app import Investigator, investigate
from workbench_widgets.audit_view import AuditView, audit
from workbench_widgets.features_view import FeaturesView
from workbench_widgets.lineage_view import LineageView
from workbench_widgets.slices_view import SlicesView
from workbench_widgets.snapshots_view import SnapshotsView
from workbench_widgets.state import Investigation
from workbench_widgets.timeline import QualityTimeline
from workbench_widgets.tree_panel import TreePanel

__all__ = [
    "AuditView",
    "FeaturesView",
    "Investigation",
    "Investigator",
    "LineageView",
    "QualityTimeline",
    "SlicesView",
    "SnapshotsView",
    "TreePanel",
    "audit",
    "investigate",
    "render_spec",
]
