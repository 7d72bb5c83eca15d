"""Odd but valid logs through ``diagnose``, ``guard`` and ``info``: ``python benchmarks/odd_logs.py [CASE ...]``.

Each sample case named (default: ``control``, ``feature_scale_bug`` and ``snapshot_bad_data``) is copied under
``--out`` once per variant of its serving log that a real team might write: labels all 0, all 1, all null, as
floats or booleans; predictions constant or exactly 0 and 1; one hour, one row, one timestamp; a day without
serving; rows unsorted or written twice; timestamps without a zone or in another; a feature null, constant,
infinite in places, integer or text; a slice column of thousands of rare values; no snapshot column; the first
half unlabelled; and the model taken away. Every command must end with exit 0, 1 or 2, print no traceback and no
Python warning, and ``diagnose --json`` must list no check error (a crashed check is a bug, never a skip). Prints a
line per run, ``BAD`` first where one of those fails, and writes ``--results`` (JSON). About 15 minutes for the three
cases on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent / "sample_data" / "cases"
WORKBENCH = Path(sys.executable).with_name("workbench")


def variants(log: pl.DataFrame) -> Iterator[tuple[str, pl.DataFrame, bool]]:
    """``(name, log, keep the model)`` for each odd log made from ``log``."""
    rng = np.random.default_rng(0)
    n = log.height
    start, end = log["ts"].min(), log["ts"].max()
    row = pl.int_range(pl.len())
    yield "as_is", log, True
    yield "no_model", log, False
    yield "labels_all_zero", log.with_columns(pl.lit(0, pl.Int8).alias("label")), True
    yield "labels_all_one", log.with_columns(pl.lit(1, pl.Int8).alias("label")), True
    yield "labels_null", log.with_columns(pl.lit(None, pl.Int8).alias("label")), True
    yield "labels_float", log.with_columns(pl.col("label").cast(pl.Float64)), True
    yield "labels_bool", log.with_columns(pl.col("label").cast(pl.Boolean)), True
    yield "first_half_unlabelled", log.with_columns(
        pl.when(pl.col("ts") < start + (end - start) / 2).then(None).otherwise(pl.col("label")).alias("label")), True
    yield "prediction_constant", log.with_columns(pl.lit(0.05, pl.Float32).alias("prediction")), True
    yield "prediction_zero_one", log.with_columns(pl.when(row % 10 == 0).then(1.0).when(row % 10 == 1).then(0.0)
                                                  .otherwise(pl.col("prediction")).cast(pl.Float32).alias("prediction")), True
    yield "one_hour", log.filter(pl.col("ts") < start + timedelta(hours=1)), True
    yield "one_row", log.head(1), True
    yield "one_timestamp", log.with_columns(pl.lit(start).alias("ts")), True
    yield "day_without_serving", log.filter((pl.col("ts") < start + timedelta(hours=20))
                                            | (pl.col("ts") >= start + timedelta(hours=44))), True
    yield "unsorted", log.sample(fraction=1.0, shuffle=True, seed=1), True
    yield "rows_twice", pl.concat([log, log]), True
    yield "ts_without_zone", log.with_columns(pl.col("ts").dt.replace_time_zone(None)), True
    yield "ts_other_zone", log.with_columns(pl.col("ts").dt.convert_time_zone("America/New_York")), True
    feature = "f_ctr_7d" if "f_ctr_7d" in log.columns else next(c for c in log.columns if c.startswith("f_"))
    yield "feature_null", log.with_columns(pl.lit(None, pl.Float32).alias(feature)), True
    yield "feature_null_no_model", log.with_columns(pl.lit(None, pl.Float32).alias(feature)), False
    yield "feature_constant_no_model", log.with_columns(pl.lit(1.0, pl.Float32).alias(feature)), False
    yield "feature_infinite", log.with_columns(pl.when(row % 7 == 0).then(float("inf")).otherwise(pl.col(feature))
                                               .cast(pl.Float32).alias(feature)), True
    yield "feature_integer", log.with_columns(pl.col(feature).round(0).cast(pl.Int64)), True
    yield "feature_text", log.with_columns(pl.col(feature).cast(pl.String)), True
    rare = pl.Series("country", [f"c{i}" for i in rng.integers(0, 5000, n)])
    yield "slice_rare_values", log.with_columns(rare), True
    yield "slice_rare_values_no_model", log.with_columns(rare), False
    yield "snapshot_null", log.with_columns(pl.lit(None, pl.String).alias("snapshot_id")), True


def _without_model(case: Path) -> None:
    shutil.rmtree(case / "snapshots", ignore_errors=True)
    (case / "model.py").unlink(missing_ok=True)
    toml = case / "workbench.toml"
    toml.write_text(toml.read_text().split("[model]")[0])


def run(name: str, out: Path) -> list[dict]:
    source = SAMPLES / name
    log = pl.read_parquet(source / "predictions.parquet")
    results = []
    for variant, frame, model in variants(log):
        case = out / name / variant
        shutil.rmtree(case, ignore_errors=True)
        shutil.copytree(source, case)
        frame.write_parquet(case / "predictions.parquet")
        if not model:
            _without_model(case)
        for command in (["diagnose", str(case), "--json", "-q"], ["guard", str(case), "--json", "-q"], ["info", str(case), "-q"]):
            p = subprocess.run([str(WORKBENCH), *command], capture_output=True, text=True, timeout=1800)
            problems = []
            if p.returncode not in (0, 1, 2):
                problems.append(f"exit {p.returncode}")
            if "Traceback" in p.stderr:
                problems.append("traceback")
            if "Warning:" in p.stderr:
                problems.append("warning: " + next(line for line in p.stderr.splitlines() if "Warning:" in line).strip())
            summary = ""
            if command[0] == "diagnose" and p.returncode == 0:
                doc = json.loads(p.stdout)
                anomaly = doc["anomaly"]
                summary = (f"detected={anomaly.get('detected')} {anomaly.get('metric')} grain={anomaly.get('grain')} "
                           f"causes={[c['target'] for c in doc['root_causes'][:2]]}")
                problems += [f"check error: {e}" for e in doc["errors"]]
            last = p.stderr.strip().splitlines()[-1][:200] if p.stderr.strip() else ""
            results.append({"case": name, "variant": variant, "command": command[0], "exit": p.returncode,
                            "problems": problems, "summary": summary, "stderr_last": last})
            print(f"{'BAD ' if problems else 'ok  '}{name:18s} {variant:27s} {command[0]:8s} exit {p.returncode} {summary} "
                  f"{'; '.join(problems) or last}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("cases", nargs="*", default=["control", "feature_scale_bug", "snapshot_bad_data"])
    ap.add_argument("--out", type=Path, default=Path("/tmp/workbench-bench/odd_logs"))
    ap.add_argument("--results", type=Path, default=HERE / "results" / "odd_logs.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = [r for name in args.cases for r in run(name, args.out)]
    bad = [r for r in results if r["problems"]]
    print(f"{len(results)} runs, {len(bad)} with a problem")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({"runs": len(results), "bad": len(bad), "results": results}, indent=1) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
