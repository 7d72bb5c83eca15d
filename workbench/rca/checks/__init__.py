"""The default decision tree: how an expert triages a prediction-quality regression.

Order matters for reading, not for correctness: every check looks at the same
baseline and incident windows (from the onset), and the ranking weighs all the
evidence together. Each check states in its docstring what its strength means.
"""

from __future__ import annotations

from workbench.rca.checks.calibration import calibration
from workbench.rca.checks.features import feature_isolation, feature_side, lineage, training_skew
from workbench.rca.checks.labels import label_side
from workbench.rca.checks.quality import prediction_quality
from workbench.rca.checks.slices import slice_check
from workbench.rca.checks.snapshots import activation_trace, model_side, served_beside, snapshot_validation
from workbench.rca.tree import Node, Tree, registered

__all__ = ["DEFAULT_NODES", "default_tree"]

DEFAULT_NODES = (
    Node("prediction_quality", "Did prediction quality regress beyond its normal variation, and when?", prediction_quality,
         children=("label_side", "model_side", "served_beside", "feature_side", "calibration", "slice"),
         read="fail means a watched metric (normalized entropy, calibration ratio or AUC) got worse beyond its "
              "cycle-aware normal range; the headline names the one that regressed most, the onset its first bad "
              "period."),
    Node("label_side", "Did the labels move while predictions and features did not?", label_side,
         read="fail means the label rate shifted on its own: a logging or join problem, not the model."),
    Node("model_side", "Was a snapshot published near the onset, and is it different from the benign refreshes?", model_side,
         children=("snapshot_validation", "activation_trace"), requires=("snapshots",),
         read="fail means a snapshot started serving at the onset and its weights changed unlike a routine refresh."),
    Node("served_beside", "Did a snapshot serving beside others do worse than the rows served beside it?", served_beside,
         requires=("snapshot_column",),
         read="fail means the rows of a canary or A/B snapshot are worse than the other snapshots' rows in the same hours."),
    Node("snapshot_validation", "Does the suspect snapshot fail the gates on holdout data?", snapshot_validation,
         requires=("snapshots", "model"),
         read="fail means re-scoring holdout rows with it is measurably worse than with the stable snapshot."),
    Node("activation_trace", "Which layer diverges first between the suspect and the previous snapshot?", activation_trace,
         requires=("snapshots", "model"),
         read="names the first layer whose activations moved beyond what benign refreshes move them."),
    Node("feature_side", "Did a feature lose coverage, change scale, go stale or drift?", feature_side,
         children=("training_skew", "feature_isolation", "lineage"), requires=("features",),
         read="features are ranked by effect sizes (coverage lost, PSI, scale ratio, repeated values), not p-values."),
    Node("training_skew", "Do the broken features differ from the training data?", training_skew,
         requires=("features", "training"),
         read="a feature that matched training before the onset and not after broke at serving time."),
    Node("feature_isolation", "How much of the regression does each feature explain?", feature_isolation,
         requires=("features",),
         read="with the model: replacing one feature's incident values by baseline ones and re-scoring; without: a surrogate."),
    Node("lineage", "Which upstream node feeds the broken features, and as few others as possible?", lineage,
         requires=("features", "lineage"),
         read="names the most specific table or pipeline that covers the features that broke together."),
    Node("calibration", "Did predictions move in scale while inputs and snapshot did not?", calibration,
         read="fail means ranking quality (AUC) held while the calibration ratio moved: a calibration shift."),
    Node("slice", "Is the regression confined to one traffic segment?", slice_check, requires=("slices",),
         read="names the segment where the regression concentrates; it stands as a cause only when nothing else explains it."),
)


def default_tree() -> Tree:
    """The expert triage order, plus every node added with :func:`workbench.rca.tree.register`."""
    tree = Tree({node.name: node for node in DEFAULT_NODES}, root="prediction_quality")
    for node, parent in registered():
        tree = tree.with_node(node, parent)
    return tree
