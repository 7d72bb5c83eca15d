"""The plan attached to each root cause: contract shape, order, what happens without a model, and a plan that raises."""

from __future__ import annotations

import shutil
from dataclasses import replace

import jsonschema
import pytest

from tests.conftest import sample_case
from tests.rca.test_diagnosis import MITIGATION
from workbench import Window, open_case
from workbench.model.mitigate import Simulation
from workbench.rca import mitigations as plans
from workbench.rca.context import Context
from workbench.rca.mitigations import Mitigation, plan_mitigations
from workbench.rca.ranking import RootCause


def _sim(recovery: float, action: str = "fallback") -> Simulation:
    return Simulation(action, "f_a", "normalized_entropy", 0.80, 0.90, 0.90 - 0.1 * recovery, recovery, 5_000, "by hand",
                      (("normalized_entropy", 0.90 - 0.1 * recovery),))


def _cause(kind: str = "feature", target: str = "f_a", **kw) -> RootCause:
    return RootCause(kind=kind, target=target, confidence=0.8, strength=0.8, summary="by hand", evidence=(), path=("x",), **kw)


def test_every_mitigation_fits_the_contract_and_says_it_is_a_prediction():
    window = Window("2026-11-20T00:00Z", "2026-11-21T00:00Z")
    items = [Mitigation("fallback", "f_a", "Serve f_a as null.", predicted=_sim(0.9), serve="default"),
             Mitigation("recalibrate", "calibration", "Multiply the odds by 0.8.", predicted=_sim(0.6, "recalibrate"),
                        factor=0.8, scale="odds"),
             Mitigation("exclude_training", "label", "Leave it out.", window=window, reason="the next refresh"),
             Mitigation("investigate", "f_a", "Backfill f_a.", reason="re-scoring needs model.py", proposes="backfill")]
    for m in items:
        jsonschema.validate(m.to_dict(), MITIGATION)
    assert items[0].to_dict()["predicted"] == {"metric": "normalized_entropy", "value": 0.81, "recovery": 0.9, "baseline": 0.8,
                                               "incident": 0.9, "rows": 5000, "after": {"normalized_entropy": 0.81},
                                               "method": "by hand"}
    assert "NE from 0.900 to 0.810, 90% of the regression (predicted" in str(items[0])
    assert items[2].to_dict()["from"] == "2026-11-20T00:00:00Z" and items[2].to_dict()["predicted"] is None
    with pytest.raises(ValueError, match="not one of"):
        Mitigation("retrain", "f_a", "no such action")


def test_order_is_best_predicted_first_then_the_unsimulated_and_harmful_actions_are_left_out():
    items = [Mitigation("recalibrate", "calibration", "", predicted=_sim(0.4)),
             Mitigation("investigate", "f_a", "", reason="no model"),
             Mitigation("backfill", "table:t", "", predicted=_sim(0.95)),
             Mitigation("rollback", "v1", "", predicted=_sim(0.6)),
             Mitigation("fallback", "f_a", "", predicted=_sim(-0.2))]
    # recovers >= half, best first; then what cannot be simulated; then the weak stop-gaps; never what makes it worse
    assert [m.action for m in plans._ordered(items)] == ["backfill", "rollback", "investigate", "recalibrate"]
    # a stop-gap follows the cause's useful fixes even when it predicts more (it is fitted to the incident's rows)
    # (dev feature/slice_confined/7: the recalibration read 1.07, the segment's backfill 0.96); a weak fix follows it
    items = [Mitigation("recalibrate", "calibration", "", predicted=_sim(1.07)),
             Mitigation("backfill", "feature:f_a", "", predicted=_sim(0.96)),
             Mitigation("fallback", "f_a", "", predicted=_sim(0.3))]
    assert [m.action for m in plans._ordered(items, ("recalibrate",))] == ["backfill", "recalibrate", "fallback"]
    assert [m.action for m in plans._ordered(items)] == ["recalibrate", "backfill", "fallback"]


def test_a_plan_that_raises_is_an_errors_entry_never_a_crash(small_case, monkeypatch):
    def boom(ctx, cause):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(plans, "plan", boom)
    ctx = Context(open_case(small_case))
    out = plan_mitigations(ctx, [_cause()])
    assert out[0].mitigations == () and out[0].to_dict()["mitigations"] == []
    assert ctx.errors and ctx.errors[0]["check"] == "mitigations:feature:f_a" and "simulated bug" in ctx.errors[0]["error"]


def test_without_a_model_the_repairs_are_re_scored_by_a_surrogate_or_say_investigate(tmp_path, monkeypatch):
    """No model.py: backfill and fallback are re-scored by a surrogate of the logged prediction when it explains enough
    of it (the method says so); when it does not, they are ``investigate`` with the reason, and recalibration is
    simulated either way."""
    from workbench.model import mitigate

    bare = tmp_path / "case"
    bare.mkdir()
    shutil.copy(sample_case("feature_scale_bug") / "predictions.parquet", bare)
    case = open_case(bare)
    windows = Window("2026-11-19T02:00Z", "2026-11-19T18:00Z"), Window("2026-11-20T02:00Z", "2026-11-20T18:00Z")
    got = plans.plan(Context(case, None, *windows), _cause(target="f_user_ctr_30d", change="scale"))
    by = {m.proposes or m.action: m for m in got}
    assert by["backfill"].action == "backfill" and "surrogate" in by["backfill"].predicted.method
    assert by["backfill"].recovery > 0.5 and got[0].recovery >= 0.5
    monkeypatch.setattr(mitigate, "STAND_IN_R2", 1.01)  # no surrogate explains that much
    got = plans.plan(Context(case, None, *windows), _cause(target="f_user_ctr_30d", change="scale"))
    by = {m.proposes or m.action: m for m in got}
    assert by["backfill"].action == by["fallback"].action == "investigate"
    assert "model.py" in (by["backfill"].reason or "") and "R^2" in by["backfill"].reason and by["backfill"].predicted is None
    assert by["recalibrate"].action == "recalibrate" and by["recalibrate"].predicted is not None
    # the only simulated action comes first when it recovers at least half, else after the unsimulated ones
    assert (got[0] is by["recalibrate"]) == (by["recalibrate"].recovery >= 0.5)


def test_a_population_shift_is_fixed_by_a_refresh_on_the_new_population(tmp_path):
    """The population moved over 36 h into a mix the served model gets wrong; nothing broke. The first action is the
    serving snapshot's refresh without the old population, simulated as a model refit on the incident's rows."""
    from tests.model.test_mitigate import shift_case
    from workbench import diagnose

    shift_case(tmp_path, ramp_hours=36, snapshot=True)
    top = diagnose(tmp_path).root_causes[0]
    assert (top.kind, top.target, top.change) == ("feature", "f_b", "shift")
    first = top.mitigations[0]
    assert (first.action, first.target) == ("exclude_training", "m1") and first.window is not None
    assert first.window.start <= open_case(tmp_path).predictions.select("ts").min().collect().item()
    assert first.predicted is not None and first.predicted.recovery > 0.5 and "refit" in first.predicted.method
    jsonschema.validate(first.to_dict(), MITIGATION)
    assert [m.action for m in top.mitigations] == ["exclude_training", "recalibrate"]  # never a backfill or fallback


def test_without_a_snapshot_a_refresh_is_investigated_and_its_prediction_told_in_words(tmp_path):
    """The same shift without snapshots: the contract's ``exclude_training`` names the snapshot a refresh replaces, so
    the action stays ``investigate`` (``predicted`` null), and its words carry the refit's simulated recovery."""
    import re

    from tests.model.test_mitigate import shift_case
    from workbench import diagnose

    shift_case(tmp_path, ramp_hours=36, snapshot=False)
    top = diagnose(tmp_path).root_causes[0]
    assert (top.kind, top.target, top.change) == ("feature", "f_b", "shift")
    refresh = next(m for m in top.mitigations if m.proposes == "exclude_training")
    assert refresh.action == "investigate" and refresh.predicted is None and "no snapshot" in (refresh.reason or "")
    share = re.search(r"refit on the new population would move .* (\d+)% of the regression \(predicted", refresh.how)
    assert share is not None and int(share.group(1)) > 50, refresh.how
    jsonschema.validate(refresh.to_dict(), MITIGATION)


def test_several_likely_causes_are_ordered_by_the_share_their_own_fix_recovers():
    """Rule 7 of the ranking: a scale break (calibration, its recalibration recovers 7%) stated as likely as a coverage
    loss (its backfill recovers 89%) follows it; a feature's recalibration is a stop-gap, not its share; an unlikely
    cause never moves up; two fixes that each recover half or more keep the confidence order; and without a simulated
    share for each likely cause the order stays."""
    from workbench.rca.ranking import by_share, explained_share

    calibration = _cause("calibration", "calibration", mitigations=(
        Mitigation("recalibrate", "calibration", "Multiply the odds.", predicted=_sim(0.07, "recalibrate"), factor=1.3,
                   scale="odds"),))
    feature = _cause(mitigations=(Mitigation("backfill", "pipeline:p", "Backfill.", predicted=_sim(0.89, "backfill")),
                                  Mitigation("recalibrate", "calibration", "Stop-gap.", predicted=_sim(0.95, "recalibrate"),
                                             factor=1.3, scale="odds")))
    rollback = Mitigation("rollback", "v1", "Roll back.", predicted=_sim(1.0, "rollback"))
    unlikely = replace(_cause("snapshot", "v2", mitigations=(rollback,)), confidence=0.3)
    assert explained_share(feature) == 0.89 and explained_share(calibration) == 0.07
    assert [c.kind for c in by_share([calibration, feature, unlikely])] == ["feature", "calibration", "snapshot"]
    other = _cause(target="f_b", mitigations=(Mitigation("fallback", "f_b", "Serve f_b.", predicted=_sim(0.95)),))
    assert by_share([feature, other]) == [feature, other]
    unsimulated = _cause("label", "label", mitigations=(Mitigation("investigate", "label", "Check the join.", reason="x"),))
    assert by_share([calibration, unsimulated]) == [calibration, unsimulated]


def test_an_upstream_node_falls_back_feature_by_feature():
    """The contract's fallback targets a feature; a node's four features came as one action, "f_ad_embed_0,
    f_ad_embed_1, f_ad_quality_score, f_ctx_relevance", which a team's automation cannot serve. Each is its own action
    now, simulated alone (here one of them recovers 26 % of the regression where the four together recovered 24 %; a
    fallback that would make things worse is not proposed), and the node's backfill, which restores them all, comes
    first."""
    from workbench import diagnose, open_case

    case = open_case(sample_case("upstream_break"))
    top = diagnose(case).root_causes[0]
    fallbacks = [m for m in top.mitigations if m.action == "fallback"]
    assert top.kind == "upstream" and fallbacks
    assert all(m.target in case.features for m in fallbacks), [m.target for m in fallbacks]
    assert top.mitigations[0].action == "backfill" and top.mitigations[0].target == top.target
