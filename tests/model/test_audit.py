"""The data-dependency audit against a generated world's known weights and bundles, and its CLI and HTML forms."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest

from tests.conftest import dev_case, sample_case
from workbench import Window, open_case
from workbench.cli import main
from workbench.model.audit import _spearman, audit_dependencies


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A proving-ground model with 28 features, 11 of zero weight and two bundles of near-copies (truth.json)."""
    import proving_ground as pg

    root = pg.generate(pg.draw("snapshot", "dev", 3, mode="negative_sampling", max_rows=30_000),
                       tmp_path_factory.mktemp("pg") / "case")
    truth = json.loads((root / "truth.json").read_text())
    case = open_case(root)
    onset = datetime.fromisoformat(truth["onset"].replace("Z", "+00:00"))
    return truth, audit_dependencies(case, Window(case.start, onset))  # a healthy stretch: before the injected incident


def test_the_features_the_generator_gave_zero_weight_are_removal_candidates(world):
    truth, audit = world
    zero = set(truth["zero_weight_features"])
    assert zero and zero <= set(audit.candidates), sorted(zero - set(audit.candidates))
    weights = {f["name"]: abs(f["weight"]) for f in truth["world"]["features"]}
    strong = {f for f, w in weights.items() if w >= 0.3 and f not in {m for b in truth["bundles"] for m in b["features"]}}
    assert not strong & set(audit.candidates)  # a feature that carries real signal is never proposed for removal
    assert audit.table["share"].sum() == pytest.approx(1.0)


def test_it_names_the_bundles_the_generator_built_and_keeps_one_member_of_each(world):
    truth, audit = world
    assert {frozenset(b.features) for b in audit.bundles} == {frozenset(b["features"]) for b in truth["bundles"]}
    for b in audit.bundles:
        assert set(b.features) - {b.signal} <= set(audit.candidates)  # all but the member kept are redundant
        assert b.min_rho >= 0.9 and b.why
        kept = audit.table.filter(audit.table["feature"] == b.signal).row(0, named=True)
        assert kept["signal"] and "redundant" not in kept["reason"]


def test_spearman_is_pairwise_complete():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 3))
    x[:, 1] = x[:, 0] + 0.2 * rng.normal(size=3000)
    x[rng.random(3000) < 0.3, 1] = np.nan  # nulls must not dilute the correlation (a median fill would)
    both = ~np.isnan(x[:, 1])
    assert _spearman(x)[0, 1] == pytest.approx(spearmanr(x[both, 0], x[both, 1]).statistic, abs=2e-3)


def test_audit_cli_json_html_and_lineage_shares(capsys, tmp_path):
    page = tmp_path / "audit.html"
    assert main(["audit", str(sample_case("upstream_break")), "--json", "-q", "--html", str(page)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "model:shap" and out["snapshot"]
    assert sum(f["share"] for f in out["features"]) == pytest.approx(1.0, abs=1e-6)
    nodes = {r["node"]: r for r in out["lineage"]}
    assert set(nodes["table:ad_catalog"]["features"]) == {"f_ad_embed_0", "f_ad_embed_1", "f_ad_quality_score", "f_ctx_relevance"}
    share = {f["feature"]: f["share"] for f in out["features"]}
    assert nodes["table:ad_catalog"]["share"] == pytest.approx(sum(share[f] for f in nodes["table:ad_catalog"]["features"]), abs=1e-3)
    html = page.read_text()
    assert "<h2>Removal candidates</h2>" in html and "table:ad_catalog" in html and "<script" not in html


def test_without_a_model_each_feature_is_permuted_against_the_surrogate_itself(tmp_path):
    """The same world with model.py and its ``[model]`` table removed: the audit explains a surrogate of the logged
    prediction. A feature's permutation loss is the surrogate's loss with it permuted minus the surrogate's own, so a
    feature no tree reads (SHAP share exactly 0) adds exactly nothing; measured against the logged prediction, as
    before, every feature carried the surrogate's own error as well, and strong features' SEs doubled."""
    import re

    import polars as pl


    root, truth = dev_case(tmp_path, "snapshot", "negative_sampling", 3, max_rows=30_000)
    (root / "model.py").unlink()
    toml = root / "workbench.toml"
    toml.write_text(re.sub(r"\[model\][^\[]*", "", toml.read_text(encoding="utf-8"), flags=re.S), encoding="utf-8")
    frozen = truth["zero_weight_features"][0]  # logged as one value: no tree can read it
    log = root / "predictions.parquet"
    pl.read_parquet(log).with_columns(pl.lit(1.0, pl.Float32).alias(frozen)).write_parquet(log)
    case = open_case(root)
    onset = datetime.fromisoformat(truth["onset"].replace("Z", "+00:00"))
    audit = audit_dependencies(case, Window(case.start, onset))
    assert audit.method == "surrogate:treeshap"
    row = audit.table.filter(feature=frozen).row(0, named=True)
    assert row["share"] == 0 and row["permutation_rise"] == 0 and row["permutation_se"] == 0, row
    assert set(truth["zero_weight_features"]) <= set(audit.candidates)
