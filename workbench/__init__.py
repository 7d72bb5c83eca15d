"""The ML investigation workbench: why did a ranking model's predictions go bad?

One public namespace: every function and result type a notebook, a script or a
widget needs is reachable as ``workbench.<name>``, e.g.::

    from workbench import open_case, diagnose, detect_onset, feature_drift

Module paths below it are private detail and may move. Importing ``workbench`` is
cheap: each name loads its module on first use, so a training script can
``from workbench.lab import mark`` without paying for polars or torch.

The layout follows the pipeline a case goes through:

- ``case/``   read and validate a case (config, columns, lineage, events, snapshot files)
- ``data/``   the polars passes over the serving log (quality, onset, drift, slices, labels, calibration)
- ``model/``  everything that loads snapshots and runs torch (diff, activations, validation, re-scoring, isolation)
- ``rca/``    the decision tree: checks, evidence, ranking, the diagnosis, the mitigations of each cause
- ``guardrails/`` ``workbench guard``: guardrail monitors on the newest window
- ``report/`` the HTML report; ``lab/`` the training-workflow lab; ``sample/`` the sample cases
- ``metrics.py`` the one definition of each statistic; ``windows.py`` time windows; ``errors.py``; ``cli.py``
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench._lazy import lazy_namespace

__all__ = [
    "ActivationDiff",
    "ActivationStats",
    "AttributionShift",
    "CalibrationShift",
    "Candidate",
    "Case",
    "CaseError",
    "Columns",
    "Config",
    "Context",
    "DependencyAudit",
    "Diagnosis",
    "Estimate",
    "Evidence",
    "FeatureDrift",
    "FeatureIsolation",
    "FeatureSlices",
    "GrainChoice",
    "GuardReport",
    "LabelDelay",
    "LabelShift",
    "Lineage",
    "MetricVerdict",
    "Mitigation",
    "MonitorResult",
    "Node",
    "Onset",
    "QualitySeries",
    "Reliability",
    "RootCause",
    "SegmentOnset",
    "ServedSide",
    "ServingConsistency",
    "Simulation",
    "Simulator",
    "SliceDeltas",
    "SliceSearch",
    "Snapshot",
    "SnapshotDiff",
    "SnapshotError",
    "SnapshotSwap",
    "SnapshotTimeline",
    "Tree",
    "UnexplainedShift",
    "Validation",
    "Window",
    "WorkbenchError",
    "attribution_shift",
    "audit_dependencies",
    "build_model",
    "calibration_shift",
    "choose_grain",
    "compare_activations",
    "default_batch",
    "default_holdout",
    "default_tree",
    "detect_onset",
    "detect_segment_onset",
    "diagnose",
    "diff_state_dicts",
    "estimate_unlabeled",
    "feature_by_slice",
    "feature_drift",
    "feature_timeline",
    "find_slices",
    "guard",
    "isolate_features",
    "label_delay",
    "label_shift",
    "last_good_snapshot",
    "load_model",
    "load_plugins",
    "load_state_dict",
    "measure_windows",
    "open_case",
    "permutation_shap",
    "quality_between",
    "quality_series",
    "read_config",
    "read_lineage",
    "read_snapshot_index",
    "register",
    "reliability",
    "render_report",
    "served_side_by_side",
    "serving_consistency",
    "slice_deltas",
    "snapshot_swap",
    "snapshot_timeline",
    "trace_activations",
    "training_skew",
    "unexplained_shift",
    "unit_importance",
    "validate_snapshot",
    "write_report",
]
__version__ = "0.1.0"

_EXPORTS = {
    "Case": "workbench.case.loader",
    "open_case": "workbench.case.loader",
    "Columns": "workbench.case.columns",
    "Config": "workbench.case.config",
    "read_config": "workbench.case.config",
    "GrainChoice": "workbench.case.grain",
    "choose_grain": "workbench.case.grain",
    "Lineage": "workbench.case.lineage",
    "read_lineage": "workbench.case.lineage",
    "Snapshot": "workbench.case.snapshots",
    "load_state_dict": "workbench.case.snapshots",
    "read_snapshot_index": "workbench.case.snapshots",
    "QualitySeries": "workbench.data.quality",
    "quality_series": "workbench.data.quality",
    "quality_between": "workbench.data.quality",
    "MetricVerdict": "workbench.data.onset",
    "Onset": "workbench.data.onset",
    "detect_onset": "workbench.data.onset",
    "measure_windows": "workbench.data.onset",
    "SegmentOnset": "workbench.data.segments",
    "detect_segment_onset": "workbench.data.segments",
    "FeatureDrift": "workbench.data.drift",
    "FeatureSlices": "workbench.data.drift",
    "feature_by_slice": "workbench.data.drift",
    "feature_drift": "workbench.data.drift",
    "feature_timeline": "workbench.data.drift",
    "training_skew": "workbench.data.drift",
    "SliceDeltas": "workbench.data.slices",
    "SliceSearch": "workbench.data.slices",
    "find_slices": "workbench.data.slices",
    "slice_deltas": "workbench.data.slices",
    "ServedSide": "workbench.data.served_by",
    "served_side_by_side": "workbench.data.served_by",
    "LabelDelay": "workbench.data.labels",
    "LabelShift": "workbench.data.labels",
    "label_delay": "workbench.data.labels",
    "label_shift": "workbench.data.labels",
    "CalibrationShift": "workbench.data.calibration",
    "Reliability": "workbench.data.calibration",
    "calibration_shift": "workbench.data.calibration",
    "reliability": "workbench.data.calibration",
    "Estimate": "workbench.data.estimate",
    "estimate_unlabeled": "workbench.data.estimate",
    "build_model": "workbench.model.load",
    "load_model": "workbench.model.load",
    "SnapshotDiff": "workbench.model.diff",
    "SnapshotTimeline": "workbench.model.diff",
    "diff_state_dicts": "workbench.model.diff",
    "snapshot_timeline": "workbench.model.diff",
    "ActivationDiff": "workbench.model.activations",
    "compare_activations": "workbench.model.activations",
    "ActivationStats": "workbench.model.trace",
    "default_batch": "workbench.model.trace",
    "trace_activations": "workbench.model.trace",
    "unit_importance": "workbench.model.trace",
    "Validation": "workbench.model.validation",
    "default_holdout": "workbench.model.validation",
    "validate_snapshot": "workbench.model.validation",
    "ServingConsistency": "workbench.model.rescore",
    "SnapshotSwap": "workbench.model.rescore",
    "serving_consistency": "workbench.model.rescore",
    "snapshot_swap": "workbench.model.rescore",
    "UnexplainedShift": "workbench.model.rescore",
    "unexplained_shift": "workbench.model.rescore",
    "AttributionShift": "workbench.model.isolation",
    "FeatureIsolation": "workbench.model.isolation",
    "attribution_shift": "workbench.model.isolation",
    "isolate_features": "workbench.model.isolation",
    "permutation_shap": "workbench.model.isolation",
    "DependencyAudit": "workbench.model.audit",
    "audit_dependencies": "workbench.model.audit",
    "Simulation": "workbench.model.mitigate",
    "Simulator": "workbench.model.mitigate",
    "last_good_snapshot": "workbench.model.mitigate",
    "Context": "workbench.rca.context",
    "Diagnosis": "workbench.rca.diagnosis",
    "diagnose": "workbench.rca.diagnosis",
    "Candidate": "workbench.rca.evidence",
    "Evidence": "workbench.rca.evidence",
    "RootCause": "workbench.rca.ranking",
    "Mitigation": "workbench.rca.mitigations",
    "Node": "workbench.rca.tree",
    "Tree": "workbench.rca.tree",
    "load_plugins": "workbench.rca.tree",
    "register": "workbench.rca.tree",
    "default_tree": "workbench.rca.checks",
    "GuardReport": "workbench.guardrails.monitors",
    "MonitorResult": "workbench.guardrails.monitors",
    "guard": "workbench.guardrails.monitors",
    "render_report": "workbench.report.html",
    "write_report": "workbench.report.html",
    "CaseError": "workbench.errors",
    "SnapshotError": "workbench.errors",
    "WorkbenchError": "workbench.errors",
    "Window": "workbench.windows",
}

if TYPE_CHECKING:
    from workbench.case.columns import Columns
    from workbench.case.config import Config, read_config
    from workbench.case.grain import GrainChoice, choose_grain
    from workbench.case.lineage import Lineage, read_lineage
    from workbench.case.loader import Case, open_case
    from workbench.case.snapshots import Snapshot, load_state_dict, read_snapshot_index
    from workbench.data.calibration import CalibrationShift, Reliability, calibration_shift, reliability
    from workbench.data.drift import FeatureDrift, FeatureSlices, feature_by_slice, feature_drift, feature_timeline, training_skew
    from workbench.data.estimate import Estimate, estimate_unlabeled
    from workbench.data.labels import LabelDelay, LabelShift, label_delay, label_shift
    from workbench.data.onset import MetricVerdict, Onset, detect_onset, measure_windows
    from workbench.data.quality import QualitySeries, quality_between, quality_series
    from workbench.data.segments import SegmentOnset, detect_segment_onset
    from workbench.data.served_by import ServedSide, served_side_by_side
    from workbench.data.slices import SliceDeltas, SliceSearch, find_slices, slice_deltas
    from workbench.errors import CaseError, SnapshotError, WorkbenchError
    from workbench.guardrails.monitors import GuardReport, MonitorResult, guard
    from workbench.model.activations import ActivationDiff, compare_activations
    from workbench.model.audit import DependencyAudit, audit_dependencies
    from workbench.model.diff import SnapshotDiff, SnapshotTimeline, diff_state_dicts, snapshot_timeline
    from workbench.model.isolation import AttributionShift, FeatureIsolation, attribution_shift, isolate_features, permutation_shap
    from workbench.model.load import build_model, load_model
    from workbench.model.mitigate import Simulation, Simulator, last_good_snapshot
    from workbench.model.rescore import (
        ServingConsistency,
        SnapshotSwap,
        UnexplainedShift,
        serving_consistency,
        snapshot_swap,
        unexplained_shift,
    )
    from workbench.model.trace import ActivationStats, default_batch, trace_activations, unit_importance
    from workbench.model.validation import Validation, default_holdout, validate_snapshot
    from workbench.rca.checks import default_tree
    from workbench.rca.context import Context
    from workbench.rca.diagnosis import Diagnosis, diagnose
    from workbench.rca.evidence import Candidate, Evidence
    from workbench.rca.mitigations import Mitigation
    from workbench.rca.ranking import RootCause
    from workbench.rca.tree import Node, Tree, load_plugins, register
    from workbench.report.html import render_report, write_report
    from workbench.windows import Window

__getattr__, __dir__ = lazy_namespace("workbench", _EXPORTS, __all__)
