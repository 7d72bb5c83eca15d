"""workbench.case.loader: a valid case opens lazily; every broken input gets its own message, exit 2, files untouched."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import sample_cases, tree_digest
from workbench.case.columns import LABEL, PREDICTION, SNAPSHOT, TS
from workbench.case.loader import open_case
from workbench.cli import main
from workbench.errors import CaseError, SnapshotError


def test_small_case_opens_with_canonical_columns(small_case):
    case = open_case(small_case)
    assert isinstance(case.predictions, pl.LazyFrame)
    schema = case.predictions.collect_schema()
    assert schema[TS] == pl.Datetime("us", "UTC")
    assert schema[PREDICTION] == pl.Float64 and schema[LABEL] == pl.Float64
    assert case.features == ("f_a", "f_b", "f_c")
    assert case.slices == ("country", "platform")  # default: the string columns
    assert case.rows == 48 * 200 and case.hourly.height == 48
    assert [s.snapshot_id for s in case.snapshots] == ["s1", "s2"]
    assert case.lineage.features_of("table:t") == {"f_a", "f_b", "f_c"}
    assert case.events.height == 2 and case.events["description"][1] == "retention, 30d"
    # rows with no snapshot_id column are served by the latest snapshot published at or before ts
    served = case.predictions.group_by(pl.col(TS).dt.date().alias("day")).agg(pl.col(SNAPSHOT).unique()).sort("day").collect()
    assert served[SNAPSHOT].to_list() == [["s1"], ["s2"]]
    assert case.warnings == ()


@pytest.mark.parametrize("path", sample_cases(), ids=lambda p: p.name)
def test_every_sample_case_opens(path):
    case = open_case(path)
    truth = json.loads((path / "truth.json").read_text())
    assert case.rows > 0 and case.features
    if truth["kind"] == "feature":
        assert truth["target"] in case.features
    assert any("label delay" in w for w in case.warnings)


def test_mapping_with_user_column_names(small_case):
    df = pl.read_parquet(small_case / "predictions.parquet").rename(
        {"ts": "event_time", "prediction": "p_click", "label": "clicked", "f_a": "x_a", "f_b": "x_b", "f_c": "x_c"})
    df.write_parquet(small_case / "predictions.parquet")
    pl.read_parquet(small_case / "training.parquet").rename(
        {"ts": "event_time", "label": "clicked", "f_a": "x_a", "f_b": "x_b", "f_c": "x_c"}).write_parquet(small_case / "training.parquet")
    (small_case / "workbench.toml").write_text(
        '[case]\nname = "mapped"\n[columns]\ntimestamp = "event_time"\nprediction = "p_click"\n'
        'label = "clicked"\nfeatures = ["x_*"]\nslices = ["platform"]\n')
    case = open_case(small_case)
    assert case.name == "mapped" and case.features == ("x_a", "x_b", "x_c") and case.slices == ("platform",)
    assert case.columns.prediction == "p_click"
    assert set(case.training.collect_schema().names()) >= {TS, LABEL, "x_a"}


def test_a_training_sample_under_the_contracts_own_names_opens_with_a_mapped_log(small_case):
    """The contract names the training sample's columns ``ts`` and ``label``; a serving log whose columns are mapped
    (``clicked``, ``event_time``) must not make them unreadable (outside test 4: "column 'clicked' (label) not found",
    with a hint to map the log's label to ``label``, which would break the log). The mapped names work too (above)."""
    df = pl.read_parquet(small_case / "predictions.parquet").rename(
        {"ts": "event_time", "prediction": "p_click", "label": "clicked"})
    df.write_parquet(small_case / "predictions.parquet")
    (small_case / "workbench.toml").write_text(
        '[case]\nname = "mapped"\n[columns]\ntimestamp = "event_time"\nprediction = "p_click"\n'
        'label = "clicked"\nfeatures = ["f_*"]\nslices = ["platform"]\n')
    case = open_case(small_case)
    training = case.training.collect()
    source = pl.read_parquet(small_case / "training.parquet")
    assert {TS, LABEL} <= set(training.columns) and training.height == source.height
    assert training[LABEL].sum() == source["label"].sum() and training[TS].dtype == pl.Datetime("us", "UTC")


def test_partitioned_and_csv_sources(small_case):
    df = pl.read_parquet(small_case / "predictions.parquet")
    (small_case / "predictions.parquet").unlink()
    df.with_columns(date=pl.col("ts").dt.date()).write_parquet(small_case / "predictions", partition_by="date")
    assert open_case(small_case).rows == df.height
    shutil.rmtree(small_case / "predictions")
    df.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(small_case / "predictions.csv")
    case = open_case(small_case)
    assert case.rows == df.height and case.predictions.collect_schema()[TS] == pl.Datetime("us", "UTC")


def test_warnings_label_delay_all_null_feature_unsorted(small_case):
    df = pl.read_parquet(small_case / "predictions.parquet")
    last = df["ts"].max()
    df = df.with_columns(
        pl.when(pl.col("ts") > last - pl.duration(hours=3)).then(None).otherwise(pl.col("label")).alias("label"),
        pl.lit(None, pl.Float32).alias("f_c"),
    ).reverse()
    df.write_parquet(small_case / "predictions.parquet")
    warnings = " | ".join(open_case(small_case).warnings)
    assert "labels are missing in the latest 3 hour(s)" in warnings
    assert "feature 'f_c' is null in every row" in warnings
    assert "not sorted by time" in warnings


# ---------------------------------------------------------------- broken inputs
def _rewrite(case: Path, fn) -> None:
    path = case / "predictions.parquet"
    fn(pl.read_parquet(path)).write_parquet(path)


def _evil_pickle(case: Path) -> None:
    marker = case.parent / "PWNED"

    class Evil:
        def __reduce__(self):
            return (__import__("os").system, (f"touch {marker}",))

    with open(case / "snapshots" / "s2.pt", "wb") as fh:
        pickle.dump({"w": Evil()}, fh, protocol=2)


def _pickled_module(case: Path) -> None:
    import torch

    torch.save(torch.nn.Linear(3, 1), case / "snapshots" / "s2.pt")


BROKEN = {
    "missing_predictions": (lambda c: (c / "predictions.parquet").unlink(), "put the serving log at"),
    "missing_column": (lambda c: _rewrite(c, lambda d: d.rename({"prediction": "p_click"})),
                       '[columns] prediction = "p_click"'),
    "timestamp_unparseable": (lambda c: (pl.read_parquet(c / "predictions.parquet")
                                         .with_columns(pl.col("ts").dt.strftime("%Y-%m-%d %H:%M").alias("ts"))
                                         .with_columns(pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("yesterday"))
                                                       .otherwise(pl.col("ts")).alias("ts"))
                                         .write_csv(c / "predictions.csv"), (c / "predictions.parquet").unlink()),
                              "write ISO 8601 timestamps"),
    "prediction_not_numeric": (lambda c: _rewrite(c, lambda d: d.with_columns(pl.col("prediction").cast(pl.String))),
                               "store the served probability as a float column"),
    "label_not_binary": (lambda c: _rewrite(c, lambda d: d.with_columns(pl.col("label") * 2)),
                         "labels must be 0/1 (or true/false)"),
    "label_text": (lambda c: _rewrite(c, lambda d: d.with_columns(pl.col("label").cast(pl.String))),
                   "store the joined outcome as 0/1 or true/false"),
    "prediction_out_of_range": (lambda c: _rewrite(c, lambda d: d.with_columns(pl.col("prediction") * 3)),
                                "if you logged logits, store sigmoid(logit)"),
    "prediction_all_nan": (lambda c: _rewrite(c, lambda d: d.with_columns(pl.lit(float("nan")).alias("prediction"))),
                           "log the served probability in every row the model scored"),
    "empty_table": (lambda c: _rewrite(c, lambda d: d.head(0)), "needs at least one row per hour"),
    "misspelled_toml_key": (lambda c: (c / "workbench.toml").write_text('[columns]\npredicton = "p"\n'),
                            "did you mean 'prediction'?"),
    "one_column_two_roles": (lambda c: (c / "workbench.toml").write_text('[columns]\nprediction = "label"\n'),
                             "column 'label' is mapped twice: as the prediction and as the label"),
    "invalid_toml": (lambda c: (c / "workbench.toml").write_text('[columns\nprediction = "p"\n'), "fix the syntax"),
    "feature_not_numeric": (lambda c: _rewrite(c, lambda d: d.with_columns(pl.col("f_b").cast(pl.String))),
                            "list 'f_b' under [columns] slices instead"),
    "duplicate_snapshot_id": (lambda c: (c / "snapshots" / "index.csv").write_text(
        "snapshot_id,published_at,file\ns1,2026-11-17T00:00:00Z,s1.safetensors\ns1,2026-11-19T00:00:00Z,s2.pt\n"),
        "snapshot ids must be unique"),
    "stable_not_a_boolean": (lambda c: (c / "snapshots" / "index.csv").write_text(
        "snapshot_id,published_at,file,stable\ns1,2026-11-17T00:00:00Z,s1.safetensors,maybe\ns2,2026-11-19T00:00:00Z,s2.pt,\n"),
        "write true (a snapshot known to be good), false, or leave it empty"),
    "lineage_unknown_node": (lambda c: (c / "lineage.json").write_text(json.dumps(
        {"nodes": [{"id": "table:t"}], "edges": [{"from": "table:t", "to": "feature:f_z"}]})),
        'add {"id": "feature:f_z"'),
    "lineage_cycle": (lambda c: (c / "lineage.json").write_text(json.dumps(
        {"nodes": [{"id": "a"}, {"id": "b"}], "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}]})),
        "remove the edge that points back"),
    "event_timestamp": (lambda c: (c / "events.csv").write_text(
        "ts,kind,target,description\n2026-11-18T05:00:00Z,deploy,x,y\nlast tuesday,deploy,x,y\n"), "(line 3)"),
    "model_file_missing": (lambda c: ((c / "workbench.toml").write_text('[model]\nfactory = "net.py:build"\n')),
                           "remove the [model] table"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_case_gets_its_message(name, small_case, capsys):
    breaker, hint = BROKEN[name]
    breaker(small_case)
    before = tree_digest(small_case)
    with pytest.raises(CaseError) as err:
        open_case(small_case)
    assert hint in str(err.value)
    assert main(["info", str(small_case), "-q"]) == 2
    captured = capsys.readouterr()
    assert hint in captured.err and "Traceback" not in captured.err and captured.out == ""
    assert tree_digest(small_case) == before  # nothing the user gave was modified


# A snapshot file that is missing, unreadable or unsafe sets snapshots/ aside: the log's checks still run, and every
# check that needs the snapshots says why it was skipped (the contract: the checks that the present files allow)
SET_ASIDE = {
    "snapshot_file_missing": (lambda c: (c / "snapshots" / "s2.pt").unlink(), "fix the 'file' column of snapshots/index.csv"),
    "snapshot_unreadable": (lambda c: (c / "snapshots" / "s2.pt").write_bytes(b"\x00garbage" * 10), "unreadable"),
    "snapshot_not_state_dict": (_pickled_module, "not a state_dict"),
    "snapshot_executes_code": (_evil_pickle, "loading it would execute code"),
}


@pytest.mark.parametrize("name", sorted(SET_ASIDE))
def test_a_broken_snapshot_file_sets_the_snapshots_aside_and_says_why(name, small_case):
    from workbench import diagnose

    breaker, hint = SET_ASIDE[name]
    breaker(small_case)
    before = tree_digest(small_case)
    case = open_case(small_case)
    assert case.snapshots == () and hint in case.snapshot_problem
    assert any("snapshots/ set aside" in w and hint in w for w in case.warnings)
    found = diagnose(small_case)
    reasons = {s["check"]: s["reason"] for s in found.to_dict()["skipped"]}
    assert hint in reasons["model_side"] and hint in reasons["snapshot_validation"]
    assert not found.errors
    with pytest.raises(CaseError, match="set aside"):
        case.snapshot("s2")
    assert tree_digest(small_case) == before  # nothing the user gave was modified
    assert not (small_case.parent / "PWNED").exists()


def test_malicious_snapshot_never_runs(small_case):
    _evil_pickle(small_case)
    from workbench.case.snapshots import load_state_dict

    with pytest.raises(SnapshotError, match="nothing was run"):
        load_state_dict(small_case / "snapshots" / "s2.pt")
    assert not (small_case.parent / "PWNED").exists()
    # the same file through the real CLI (`python -m workbench`) in a fresh process: the case opens without it, and says so
    proc = subprocess.run([sys.executable, "-m", "workbench", "info", str(small_case)], capture_output=True, text=True)
    assert proc.returncode == 0 and "would execute code" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    assert not (small_case.parent / "PWNED").exists()


def test_safe_snapshots_load(small_case):
    from workbench.case.snapshots import load_state_dict

    a = load_state_dict(small_case / "snapshots" / "s1.safetensors")
    b = load_state_dict(small_case / "snapshots" / "s2.pt")
    assert a.keys() == b.keys() == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_model_scores_rows(small_case):
    from workbench.model.load import feature_matrix, load_model, score

    case = open_case(small_case)
    frame = case.predictions.head(50).collect()
    p = score(load_model(case, "s1"), feature_matrix(frame, case.features))
    assert p.shape == (50,) and ((p > 0) & (p < 1)).all()


def test_a_slice_or_feature_the_log_lacks_names_its_list_and_a_free_column(small_case):
    from workbench.errors import CaseError

    (small_case / "workbench.toml").write_text('[columns]\nfeatures = ["f_a", "f_b", "f_c"]\nslices = ["region", "platform"]\n')
    with pytest.raises(CaseError) as info:
        open_case(small_case)
    text = str(info.value)
    assert "'region' (listed in [columns] slices) not found" in text and "remove 'region'" in text, text
    assert "prediction" not in text.split("available:")[-1].split("\n")[0]  # a column another role holds is not offered
    (small_case / "workbench.toml").write_text('[columns]\nfeatures = ["f_a", "f_bb"]\n')
    with pytest.raises(CaseError, match=r"'f_bb' \(listed in \[columns\] features\) not found") as info:
        open_case(small_case)
    assert "replace 'f_bb' with 'f_b'" in str(info.value)


def test_rows_without_a_finite_prediction_are_left_out_and_said(small_case):
    """Outside test 5, i15: a serving build that wrote NaN for 5 % of its rows (timeouts) beside a post-processing
    change was refused outright, so neither fault could be diagnosed. Rows without a finite prediction (NaN, inf,
    null) are now left out of every figure, and the case says how many and when."""
    frame = pl.read_parquet(small_case / "predictions.parquet")
    late = pl.col("ts") >= datetime(2026, 11, 19, 6, tzinfo=UTC)
    odd = pl.int_range(pl.len()) % 20
    _rewrite(small_case, lambda d: d.with_columns(
        pl.when(late & (odd == 0)).then(float("nan")).when(late & (odd == 1)).then(None)
        .when(late & (odd == 2)).then(float("inf")).otherwise(pl.col("prediction")).alias("prediction")))
    lost = frame.with_columns(odd.alias("k")).filter(late & (pl.col("k") < 3))
    case = open_case(small_case)
    assert case.unscored is not None and case.unscored.rows == lost.height > 0
    assert case.unscored.first == lost["ts"].min() and case.unscored.last == lost["ts"].max()
    assert case.rows == frame.height - lost.height == case.predictions.select(pl.len()).collect().item()
    assert case.predictions.select(pl.col("prediction").is_finite().all()).collect().item()
    assert int(case.profile["rows"].sum()) == case.rows
    said = [w for w in case.warnings if "carry no finite prediction" in w]
    assert said and f"{lost.height:,} served row(s)" in said[0] and "2026-11-19 06:0" in said[0]
    from workbench import diagnose

    summary = diagnose(case).evidence("prediction_quality").summary
    assert f"{lost.height:,} served row(s)" in summary and "left out of every figure" in summary


def test_a_feature_with_values_on_scored_rows_is_not_called_all_null(small_case):
    """A review: parquet footers count a feature's nulls over every row, the unscored ones too, while the case's rows
    are the scored ones; a feature null on the unscored rows and on most scored ones read as "null in every row"."""
    k = pl.int_range(pl.len()) % 10
    _rewrite(small_case, lambda d: d.with_columns(
        pl.when(k < 3).then(float("nan")).otherwise(pl.col("prediction")).alias("prediction"),
        pl.when(k < 9).then(None).otherwise(pl.col("f_c")).alias("f_c")))
    case = open_case(small_case)
    assert case.unscored is not None and case.predictions.select(pl.col("f_c").is_not_null().sum()).collect().item() > 0
    assert not [w for w in case.warnings if "'f_c' is null in every row" in w], case.warnings


def test_info_json_writes_times_as_the_contract_does(capsys):
    """`info --json` wrote `2026-11-18T00:00:00+00:00` where `diagnose --json` and `guard --json` write `...Z`; one
    form now, the contract's."""
    import json
    import re

    from tests.conftest import sample_case

    assert main(["info", str(sample_case("control")), "--json", "-q"]) == 0
    info = json.loads(capsys.readouterr().out)
    times = [info["start"], info["end"], *(s["published_at"] for s in info["snapshots"])]
    assert times and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in times), times


def test_two_default_files_of_one_table_say_which_was_read(small_case):
    """predictions.parquet and predictions.csv both in the case: the parquet is read, as the contract's order says, and
    the case now says so instead of choosing silently."""
    pl.read_parquet(small_case / "predictions.parquet").head(100).write_csv(small_case / "predictions.csv")
    case = open_case(small_case)
    said = [w for w in case.warnings if "predictions.parquet, predictions.csv are all in the case" in w]
    assert said and "predictions.parquet was read" in said[0] and case.rows > 100


def test_a_path_that_is_no_case_directory_says_what_it_is(tmp_path, small_case):
    """A mistyped path read "not a directory" (it is not anything); the log file itself is a file inside the case."""
    with pytest.raises(CaseError, match="does not exist"):
        open_case(tmp_path / "no_such_case")
    with pytest.raises(CaseError, match="is a file, not a directory") as err:
        open_case(small_case / "predictions.parquet")
    assert "the case directory that holds it" in str(err.value)
