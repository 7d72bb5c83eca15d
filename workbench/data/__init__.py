"""The passes over the serving log (polars): quality, onset, segments, drift, slices, labels, calibration, estimates.

See ``README.md`` beside this file for the pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench._lazy import lazy_namespace

__all__ = [
    "CalibrationShift",
    "Estimate",
    "FeatureDrift",
    "FeatureSlices",
    "LabelDelay",
    "LabelShift",
    "MetricVerdict",
    "Onset",
    "QualitySeries",
    "Reliability",
    "SegmentOnset",
    "SliceDeltas",
    "SliceSearch",
    "calibration_shift",
    "detect_onset",
    "detect_segment_onset",
    "estimate_unlabeled",
    "feature_by_slice",
    "feature_drift",
    "feature_timeline",
    "find_slices",
    "finish",
    "label_delay",
    "label_shift",
    "measure_windows",
    "merge_partials",
    "quality_between",
    "quality_partial",
    "quality_series",
    "reliability",
    "slice_cells",
    "slice_deltas",
    "training_skew",
]

_EXPORTS = {
    "QualitySeries": "workbench.data.quality",
    "quality_series": "workbench.data.quality",
    "quality_between": "workbench.data.quality",
    "quality_partial": "workbench.data.quality",
    "merge_partials": "workbench.data.quality",
    "finish": "workbench.data.quality",
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
    "slice_cells": "workbench.data.slices",
    "slice_deltas": "workbench.data.slices",
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
}

if TYPE_CHECKING:
    from workbench.data.calibration import CalibrationShift, Reliability, calibration_shift, reliability
    from workbench.data.drift import FeatureDrift, FeatureSlices, feature_by_slice, feature_drift, feature_timeline, training_skew
    from workbench.data.estimate import Estimate, estimate_unlabeled
    from workbench.data.labels import LabelDelay, LabelShift, label_delay, label_shift
    from workbench.data.onset import MetricVerdict, Onset, detect_onset, measure_windows
    from workbench.data.quality import QualitySeries, finish, merge_partials, quality_between, quality_partial, quality_series
    from workbench.data.segments import SegmentOnset, detect_segment_onset
    from workbench.data.slices import SliceDeltas, SliceSearch, find_slices, slice_cells, slice_deltas

__getattr__, __dir__ = lazy_namespace("workbench.data", _EXPORTS, __all__)
