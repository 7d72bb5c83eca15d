"""The label check: labels that changed on their own, not a population that moved them through the inputs."""

from __future__ import annotations

from tests.conftest import dev_case


def test_predictions_that_moved_materially_with_the_labels_speak_for_a_population_shift(tmp_path):
    """Proving ground dev shift/boolean_share, seed 3: a boolean's share moved, labels +34%, the served predictions
    +13% (39% of the label change; a label model on the inputs predicts 55% of it). A logging bug would have left the
    predictions where they were, so the label cause yields to the shifted feature."""
    from workbench import diagnose, open_case

    path, truth = dev_case(tmp_path, "shift", "boolean_share", 3)
    found = diagnose(open_case(path))
    label = found.evidence("label_side")
    assert "following 39% of the label change" in label.summary and label.score < 0.2
    top = found.root_causes[0]
    assert (top.kind, top.target, top.change) == ("feature", truth["target"], "shift")
