"""The model side (torch): build and score, snapshot diffs, activations, validation, re-scoring, feature isolation.

See ``README.md`` beside this file for the pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench._lazy import lazy_namespace

__all__ = [
    "ActivationDiff",
    "ActivationStats",
    "AttributionShift",
    "FeatureIsolation",
    "ServingConsistency",
    "SnapshotDiff",
    "SnapshotSwap",
    "SnapshotTimeline",
    "UnexplainedShift",
    "Validation",
    "attribution_shift",
    "build_model",
    "compare_activations",
    "default_batch",
    "default_holdout",
    "diff_state_dicts",
    "feature_matrix",
    "isolate_features",
    "load_model",
    "permutation_shap",
    "score",
    "serving_consistency",
    "snapshot_swap",
    "snapshot_timeline",
    "trace_activations",
    "unexplained_shift",
    "unit_importance",
    "validate_snapshot",
]

_EXPORTS = {
    "build_model": "workbench.model.load",
    "feature_matrix": "workbench.model.load",
    "load_model": "workbench.model.load",
    "score": "workbench.model.load",
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
}

if TYPE_CHECKING:
    from workbench.model.activations import ActivationDiff, compare_activations
    from workbench.model.diff import SnapshotDiff, SnapshotTimeline, diff_state_dicts, snapshot_timeline
    from workbench.model.isolation import AttributionShift, FeatureIsolation, attribution_shift, isolate_features, permutation_shap
    from workbench.model.load import build_model, feature_matrix, load_model, score
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

__getattr__, __dir__ = lazy_namespace("workbench.model", _EXPORTS, __all__)
