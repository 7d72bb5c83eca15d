"""The lineage check weighs an upstream node by how well a break there explains its changed and unchanged features."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from scipy.stats import binom

from tests.conftest import dev_case
from workbench.rca.checks.features import REACH, node_posterior


@pytest.mark.parametrize(("below", "fed", "changed", "features"), [(2, 2, 2, 8), (2, 4, 2, 8), (3, 4, 5, 12), (2, 3, 2, 3)])
def test_node_posterior_is_the_binomial_likelihood_ratio_at_even_odds(below, fed, changed, features):
    """The pattern's likelihood under "the node broke" (each fed feature shows it with REACH) against "the features
    changed on their own" (at the case's rate): the binomial coefficients cancel, so scipy's pmf ratio is the same."""
    ratio = binom.pmf(below, fed, REACH) / binom.pmf(below, fed, changed / features)
    assert node_posterior(below, fed, changed, features) == pytest.approx(ratio / (1 + ratio), rel=1e-9)


def test_a_node_with_healthy_features_is_a_weak_explanation():
    """Every feature of a node broken: likely its break. Half of them healthy: two separate breaks that share a source
    (the proving ground's multi/two_features) are likelier than a table break that spared half of what it feeds."""
    assert node_posterior(2, 2, 2, 8) > 0.9
    assert node_posterior(2, 4, 2, 8) < 0.25
    assert node_posterior(3, 3, 3, 8) > node_posterior(3, 4, 3, 8) > node_posterior(3, 5, 3, 8)
    # a node that feeds most of a small model is weak evidence even when all of it broke: that is most of the model
    assert node_posterior(2, 2, 2, 3) < node_posterior(2, 2, 2, 8)


def test_a_table_that_lost_some_rows_is_named_with_the_features_it_feeds(tmp_path):
    """A source that lost 15% of its rows (proving ground dev upstream/coverage, seed 5) feeds four features. While a
    log of a few days was judged on its periods' spread alone, the onset came 36 hours early and the windows diluted
    the break: one feature read as broken, three only as changed, and the node's pattern of changed features (four
    of four) still named the table. With the log's slow variation estimated over parts of days the onset is within
    three hours and all four read as broken."""

    from workbench import diagnose, open_case

    path, truth = dev_case(tmp_path, "upstream", "coverage", 5)
    found = diagnose(open_case(path))
    onset = datetime.fromisoformat(found.anomaly["onset"])
    assert abs(onset - datetime.fromisoformat(truth["onset"])) <= timedelta(hours=3)
    lineage = found.evidence("lineage")
    assert sorted(lineage.data["broken"]) == sorted(lineage.data["covered"]) == sorted(truth["features_affected"])
    top = found.root_causes[0]
    assert (top.kind, top.target) in {("upstream", t) for t in (truth["target"], *truth["target_equivalents"])}


def test_a_boolean_the_broken_table_feeds_counts_as_changed_though_it_reads_as_a_shift(tmp_path):
    """A table whose six features froze at 68% of rows (dev upstream/stale, seed 14): five read as stale, the sixth, a
    boolean, moved its share over 18 hours at a 6-hour grain and read as a population shift. Left out of the changed
    features, it cost the table one of its six (past the reach a break has), and a pipeline feeding three of them
    was preferred, with the other two "elsewhere"; the top cause was one stale feature. Counted as changed, the table
    is named; and since the labels did not follow the predictions' move, the boolean no longer reads as a shift."""

    from workbench import diagnose, open_case

    path, truth = dev_case(tmp_path, "upstream", "stale", 14)
    found = diagnose(open_case(path))
    shifted = set(found.evidence("feature_side").data["shifted"])
    # the boolean no longer reads as a shift: the predictions moved and the labels did not follow (labels_followed)
    assert not shifted & set(truth["features_affected"])
    lineage = found.evidence("lineage")
    assert sorted(lineage.data["covered"]) == sorted(truth["features_affected"])
    assert not shifted & set(lineage.data["broken"])
    top = found.root_causes[0]
    assert (top.kind, top.target, top.change) == ("upstream", truth["target"], "stale")


def test_the_node_that_explains_every_changed_feature_is_preferred_to_a_pipeline_below_it(tmp_path):
    """A table that froze (dev upstream/stale, seed 17) feeds four features through two pipelines: three read as
    stale, and the fourth, a boolean frozen at its common value, shows no change. The pipeline below it that feeds two
    of the three has the higher posterior (every feature it feeds changed), but it leaves the third to a break of its
    own at the same hour; the table explains all three and is more likely broken than not, so it is named."""
    from workbench import diagnose, open_case
    from workbench.rca.checks.features import PLAUSIBLE

    path, truth = dev_case(tmp_path, "upstream", "stale", 17)
    found = diagnose(open_case(path))
    lineage = found.evidence("lineage")
    assert lineage.data["node"] == truth["target"]
    assert set(lineage.data["covered"]) == set(lineage.data["changed"]) < set(truth["features_affected"])
    assert node_posterior(len(lineage.data["covered"]), len(lineage.data["fed"]), len(lineage.data["changed"]),
                          len(open_case(path).features)) >= PLAUSIBLE
    top = found.root_causes[0]
    assert (top.kind, top.target, top.change) == ("upstream", truth["target"], "stale")


def test_a_table_broken_in_one_segment_names_the_segment(tmp_path, monkeypatch):
    """Dev upstream/coverage seed 0 with its break confined to one segment (the generator's segment, a tenth to a
    third of the traffic; an outside test's catalog replica was empty for one country only): each feature the table
    feeds broke there alone, so the table did too. The cause named the table and never the segment, nor did its
    backfill; both name it now, and the same repairs over all the traffic follow."""
    import json
    import sys

    import proving_ground as pg
    from workbench import diagnose, open_case

    generator = sys.modules["proving_ground.generate"]
    targets = generator._Gen._targets

    def confined(self):
        targets(self)
        self.causes[0]["segment"] = self._pick_segment(self.rng("segment"), 0.1, 0.3)

    monkeypatch.setattr(generator._Gen, "_targets", confined)
    path = pg.generate(pg.draw("upstream", "dev", 0, mode="coverage", max_rows=200_000), tmp_path / "case")
    truth = json.loads((path / "truth.json").read_text(encoding="utf-8"))
    found = diagnose(open_case(path))
    top = found.root_causes[0]
    assert top.kind == "upstream" and truth["slice"] and top.slice == truth["slice"], (top, truth["slice"])
    assert f"only for {truth['slice']}" in top.summary
    plan = [m for m in top.mitigations if m.action == "backfill"]
    assert [m.slice for m in plan] == [truth["slice"], None], plan
