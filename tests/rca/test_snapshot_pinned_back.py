"""An old snapshot pinned back into serving publishes nothing: the log's snapshot column says when it started."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import numpy as np
import polars as pl

from tests.conftest import sample_case
from workbench import diagnose, open_case
from workbench.model.load import feature_matrix, load_model, score

OLD = "ctr-20261101-0300"


def _pinned_back(tmp_path):
    """Sample `control` with an old snapshot (the first one's weights, its first layer halved: a model from before the
    features it leans on) published on 11-01 and pinned back into serving at 11-20 06:00. Every row from then on names
    it and carries its score; the index's refreshes go on being published, and serve nothing."""
    from safetensors.torch import load_file, save_file

    root = shutil.copytree(sample_case("control"), tmp_path / "case")
    index = pl.read_csv(root / "snapshots" / "index.csv")
    first = index.row(0, named=True)
    state = load_file(str(root / "snapshots" / first["file"]))
    layer = sorted(k for k in state if k.endswith("weight"))[0]
    state[layer] = state[layer] * 0.5
    save_file(state, str(root / "snapshots" / f"{OLD}.safetensors"))
    old = pl.DataFrame({"snapshot_id": [OLD], "published_at": ["2026-11-01T03:00:00Z"], "file": [f"{OLD}.safetensors"],
                        "stable": [False]})
    pl.concat([old, index.with_columns(pl.col("stable").cast(pl.Boolean))]).write_csv(root / "snapshots" / "index.csv")
    rows = pl.read_parquet(root / "predictions.parquet")
    pinned = (rows["ts"] >= datetime(2026, 11, 20, 6, tzinfo=UTC)).to_numpy()
    case = open_case(root)
    p = rows["prediction"].to_numpy().astype(np.float64)
    p[pinned] = score(load_model(case, OLD), feature_matrix(rows.filter(pl.Series(pinned)), case.features),
                      case.model.output)
    rows.with_columns(pl.Series("prediction", p).cast(rows["prediction"].dtype),
                      pl.when(pl.Series(pinned)).then(pl.lit(OLD)).otherwise(pl.col("snapshot_id"))
                      .cast(rows["snapshot_id"].dtype).alias("snapshot_id")).write_parquet(root / "predictions.parquet")
    return root


def test_a_snapshot_pinned_back_is_named_from_the_log_and_rolled_back_to_what_served_before(tmp_path):
    """The refresh published at 06:09 served none of the incident's rows; before, it was the suspect by its publish
    time, and the old snapshot, published weeks earlier, was never looked at (outside test 3: "no cause"). And the
    rollback looked only at snapshots published before the old one: none."""
    result = diagnose(open_case(_pinned_back(tmp_path)))
    assert result.anomaly["detected"], result.anomaly
    top = result.top
    assert top is not None and top.kind == "snapshot" and top.target == OLD, [c.to_dict() for c in result.root_causes]
    assert "started serving at 2026-11-20 06:0" in top.summary, top.summary
    first = top.mitigations[0]
    assert first.action == "rollback" and first.target != OLD and first.target.startswith("ctr-202611"), first
    assert "pinned back" in first.how and first.predicted is not None and first.predicted.recovery > 0.5, first
    assert not result.errors
