"""A population that moved is a ``shift``, not a broken pipeline, even when it multiplies an input
(``workbench.rca.checks.features._shifted``); a unit change that arrived at once stays ``scale``."""

from __future__ import annotations

from tests.conftest import dev_case
from workbench import diagnose, open_case


def _answer(tmp_path, family: str, mode: str, seed: int):
    path, truth = dev_case(tmp_path, family, mode, seed)
    return truth, diagnose(open_case(path))


def test_a_latent_shift_that_multiplied_a_revenue_input_over_days_is_a_shift(tmp_path):
    """Proving ground dev shift/latent, seed 2: a latent factor moved 1.66 SD over 56 h and carried four correlated
    inputs with it. Two are log-normal revenues, which the move multiplied by 1.7: one factor maps their old values
    onto the new ones, the drift kind of a unit change. It arrived over a day and a half, so it is a shift."""
    truth, found = _answer(tmp_path, "shift", "latent", 2)
    top = found.root_causes[0]
    assert top.target in [truth["target"], *truth["target_equivalents"]]
    assert top.change == "shift"
    assert "the change arrived over" in found.evidence("feature_side").candidates[0].detail


def test_a_unit_change_that_arrived_at_once_stays_a_scale_break(tmp_path):
    """Proving ground dev feature/scale, seed 0: a feature multiplied by a unit factor at the onset."""
    truth, found = _answer(tmp_path, "feature", "scale", 0)
    top = found.root_causes[0]
    assert (top.kind, top.target, top.change) == ("feature", truth["target"], "scale")


def test_a_ramp_that_began_before_the_baseline_ended_is_named_through_the_labels_that_moved_with_it(tmp_path):
    """Proving ground dev shift/latent, seed 5: a ramp of two days; the detected onset lies in its middle, so the
    feature moved between the placebo and the baseline too and its excess over organic drift stays near the floor
    (no feature "changed"). The label rate fell by two thirds, a label model fitted on the baseline predicts most of
    that from the incident's inputs, and isolation gives the feature most of the change: the population moved."""
    truth, found = _answer(tmp_path, "shift", "latent", 5)
    assert found.evidence("feature_side").candidates == ()
    top = found.root_causes[0]
    assert (top.kind, top.change) == ("feature", "shift")
    assert top.target in [truth["target"], *truth["target_equivalents"]]
    assert [e for e in top.evidence if e[0] == "feature_isolation"]
    assert found.evidence("label_side").score < 0.2  # the labels did not change on their own


def test_labels_that_changed_on_their_own_are_no_population_shift(tmp_path):
    """Proving ground dev label/positives_lost, seed 4: clicks dropped from the log while the inputs stayed where
    they were. The label model predicts none of the move from the inputs, so no feature reads as a shift: the labels
    are named."""
    from workbench.rca.checks._common import population_moved
    from workbench.rca.context import Context

    truth, found = _answer(tmp_path, "label", "positives_lost", 4)
    assert (found.root_causes[0].kind, found.root_causes[0].target) == (truth["kind"], truth["target"])
    assert all(c.change != "shift" for c in found.root_causes)
    ctx = Context(open_case(tmp_path / "case"))
    assert population_moved(ctx) < 0.1


def test_correlated_inputs_that_moved_at_once_are_a_shift_only_when_the_labels_moved_with_them(monkeypatch):
    """Three correlated inputs that moved together at the onset read as a population moving only when the labels
    moved with the inputs (``population_moved``): one upstream table that broke moves its inputs at once too, and
    no label (held-back upstream/stale/1000122, draw S, read as a shift with the evidence at 0.00). The table is
    the drift check's, reduced to the three inputs; the population's evidence is set, the rest is the sample case
    ``upstream_break`` (its features break at once, so none arrives gradually)."""
    import polars as pl

    from tests.conftest import sample_case
    from workbench.rca.checks import features
    from workbench.rca.context import Context

    ctx = Context(open_case(sample_case("upstream_break")))
    names = ctx.case.features[:3]
    table = pl.DataFrame({"feature": names, "type": ["numeric"] * 3, "kind": ["distribution"] * 3,
                          "relation_baseline": [0.6, 0.5, 0.4]})
    monkeypatch.setattr(features, "population_moved", lambda ctx: 0.0)
    assert features._shifted(ctx, table) == {}
    monkeypatch.setattr(features, "population_moved", lambda ctx: 0.9)
    assert features._shifted(ctx, table) == dict.fromkeys(names, "3 correlated inputs moved together")


def test_inputs_that_drifted_in_while_the_labels_stayed_are_no_population_shift(tmp_path):
    """An input served 2 SDs higher, reached over three days, while the clicks follow its true values (a serving bug
    that ramped in): the change arrived gradually, like a population, but the predictions rose and the label rate did
    not follow (``labels_followed`` near 0). A population that moved would have brought its clicks with it, so the
    feature is named as drifted, with a pipeline's next steps."""
    from tests.data.analysis_data import write_case
    from workbench.rca.checks._common import label_change
    from workbench.rca.context import Context

    path = write_case(tmp_path / "ramp", seed=5, hours=240, per_hour=1500, onset=120, break_="ramp", offset=2.0)
    ctx = Context(open_case(path))
    ls, _ = label_change(ctx)
    assert ls.prediction_log_change > 0.3 and ls.labels_followed is not None and ls.labels_followed < 0.2, str(ls)
    top = diagnose(path).root_causes[0]
    assert (top.kind, top.target) == ("feature", "f_a")
    assert top.change != "shift"
