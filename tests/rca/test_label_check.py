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


def test_labels_that_came_loose_from_their_rows_are_named(tmp_path):
    """Half the incident's labels joined to other rows (a label join on the wrong key): the label rate, the inputs,
    the predictions all stay, the ranking collapses. The labels are named, as having come loose."""
    from tests.data.analysis_data import write_case
    from workbench import diagnose

    path = write_case(tmp_path / "c", seed=12, hours=168, per_hour=800, onset=120, break_="loose_labels")
    found = diagnose(path)
    assert found.anomaly["detected"]
    top = found.top
    assert (top.kind, top.target) == ("label", "label") and "came loose" in top.summary, str(found)


def test_a_ranking_lost_through_a_broken_input_is_not_loose_labels(tmp_path):
    from tests.data.analysis_data import write_case
    from workbench import diagnose

    found = diagnose(write_case(tmp_path / "c", seed=13, hours=168, per_hour=800, onset=120, break_="stale"))
    assert (found.top.kind, found.top.target) == ("feature", "f_a")
    assert all(c.kind != "label" for c in found.root_causes)
