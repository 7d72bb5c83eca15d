"""Write one sample case: simulate, train, publish snapshots, serve, inject, log.

The pipeline, in order (see README.md in this folder):

1. ``incidents.plan`` draws the incident (target, onset, magnitude) from the seed.
2. The base model is trained on 4 days of history; a snapshot is published
   every 6 h by warm-starting from the last one (a bad snapshot, if planned,
   is published at the onset).
3. The 72 h served window is simulated in 6 h blocks (bounded memory): truth,
   labels, label delay, feature breaks, scoring by the serving snapshot,
   calibration; each block is appended to its day's parquet file.
4. training sample, model.py, lineage.json, events.csv, workbench.toml and
   truth.json are written.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from workbench.sample import _events as events
from workbench.sample import _lineage as lineage
from workbench.sample import _training as training
from workbench.sample import _world as world
from workbench.sample import incidents
from workbench.sample.columns import DEFAULT_ROWS, PARTITION_ROWS, SNAPSHOT_FORMATS, ColumnNames
from workbench.sample.incidents import INCIDENTS, Plan

BLOCK_HOURS = 6
FINE_TUNE_ROWS = 6_000
_OUTPUTS = (
    "workbench.toml",
    "predictions.parquet",
    "predictions",
    "training.parquet",
    "snapshots",
    "model.py",
    "lineage.json",
    "events.csv",
    "truth.json",
)
ROW_GROUP_ROWS = 1_000_000  # blocks are buffered up to this many rows per row group


def _parquet_options(schema: pa.Schema, cols: ColumnNames) -> dict[str, object]:
    """zstd; delta-encoded timestamps; byte-stream-split for continuous floats.

    Dictionary encoding pays off for the many rounded, low-cardinality
    features and the slice strings, not for predictions or embeddings.
    """
    split = [cols.prediction] + [cols.feature(f.name) for f in world.FEATURES if f.family == "gaussian"]
    split = [c for c in split if c in schema.names]
    encoding = {cols.timestamp: "DELTA_BINARY_PACKED"} | dict.fromkeys(split, "BYTE_STREAM_SPLIT")
    return {
        "compression": "zstd",
        "compression_level": 9,
        "use_dictionary": [c for c in schema.names if c not in encoding],
        "column_encoding": encoding,
    }


Progress = Callable[[str], None]


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check(incident: str, rows: int, snapshot_format: str) -> None:
    from workbench.errors import WorkbenchError, suggest

    if incident not in INCIDENTS:
        close = suggest(incident, INCIDENTS)
        raise WorkbenchError("--incident", f"unknown incident {incident!r}.",
                             f"did you mean {close!r}?" if close else f"choose one of {list(INCIDENTS)}")
    if rows < world.WINDOW_HOURS:
        raise WorkbenchError("--rows", f"rows={rows} is too small.", f"ask for at least {world.WINDOW_HOURS} rows (one per hour).")
    if snapshot_format not in SNAPSHOT_FORMATS:
        raise WorkbenchError("--snapshot-format", f"unknown snapshot format {snapshot_format!r}.",
                             f"choose one of {list(SNAPSHOT_FORMATS)}")


def generate_case(
    incident: str,
    out: Path | str,
    *,
    seed: int = 0,
    rows: int | None = None,
    partitioned: bool | None = None,
    progress: Progress | None = None,
    columns: ColumnNames | None = None,
    snapshot_format: str = "safetensors",
) -> Path:
    """Write a sample ads-CTR case with one injected incident and its answer.

    Parameters
    ----------
    incident
        One of ``INCIDENTS``; ``"control"`` injects nothing.
    out
        The case directory; created if missing. Files this function writes
        are replaced, anything else in it is left alone.
    seed
        Drives everything: traffic, model, incident target, onset and size.
        The same arguments give the same bytes in every file.
    rows
        Served rows over the 72 h window (default 36,000).
    partitioned
        Write ``predictions/date=YYYY-MM-DD/part-0.parquet`` instead of one
        file; by default when ``rows`` exceeds 2,000,000.
    progress
        Called with a short message per stage (e.g. ``print`` to stderr).
    columns
        Output column names; ``ColumnNames.renamed()`` exercises the mapping.
    snapshot_format
        ``"safetensors"`` or ``"pt"`` (``torch.save`` of the state_dict).

    Returns
    -------
    Path
        The case directory.

    Examples
    --------
    >>> import tempfile
    >>> case = generate_case("label_drift", tempfile.mkdtemp(), seed=1, rows=2000)
    >>> sorted(p.name for p in case.iterdir())[:4]
    ['events.csv', 'lineage.json', 'model.py', 'predictions.parquet']
    """
    rows = DEFAULT_ROWS if rows is None else int(rows)
    _check(incident, rows, snapshot_format)
    partitioned = rows > PARTITION_ROWS if partitioned is None else partitioned
    cols = columns or ColumnNames()
    say = progress or (lambda _msg: None)
    out = Path(out)
    ours = [name for name in _OUTPUTS if (out / name).exists()]
    if ours and not (out / "truth.json").exists():  # a case the user wrote: nothing the user gave is modified
        from workbench.errors import WorkbenchError

        raise WorkbenchError("--out", f"{out} holds a case this generator did not write ({', '.join(ours)}; no "
                             "truth.json); nothing was changed.", "choose a new or empty folder for --out.")
    out.mkdir(parents=True, exist_ok=True)
    for name in _OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    p = incidents.plan(incident, seed)
    say(f"{incident} (seed {seed}): training the base model")
    hist = training.history(seed)
    snapshots = _publish_snapshots(p, seed, training.train_base(seed, hist), say)
    _write_snapshots(out / "snapshots", snapshots, snapshot_format)
    _write_predictions(out, p, seed, rows, snapshots, partitioned, cols, say)
    say("writing training sample, model, lineage, events and truth")
    _write_training(out / "training.parquet", hist, seed, rows, cols)
    (out / "model.py").write_text(resources.files("workbench.sample").joinpath("ctr_model.py").read_text())
    _write_json(out / "lineage.json", lineage.lineage_json(cols.feature))
    _write_events(out / "events.csv", events.change_log(p, seed, [(s, t) for s, t, _ in snapshots]))
    (out / "workbench.toml").write_text(_toml(seed, cols))
    _write_json(out / "truth.json", _truth(p, seed, cols, snapshots))
    return out


Snapshot = tuple[str, int, training.StateDict]  # id, published_at (us), state


def _publish_snapshots(p: Plan, seed: int, base: training.StateDict, say: Progress) -> list[Snapshot]:
    """Snapshot 0 (just before the window), then one every 6 h, each warm-started."""
    n = world.WINDOW_HOURS // incidents.SNAPSHOT_EVERY_H
    jitter_min = np.random.default_rng(np.random.SeedSequence([seed, 6])).integers(3, 15, size=n)
    published = [world.START_US - 2 * world.HOUR_US + int(jitter_min[0]) * 60_000_000]
    published += [
        world.START_US + k * incidents.SNAPSHOT_EVERY_H * world.HOUR_US + int(jitter_min[k]) * 60_000_000
        for k in range(1, n)
    ]
    say(f"publishing {n} snapshots")
    states = [base]
    for k in range(1, n):
        end_h = k * incidents.SNAPSHOT_EVERY_H
        rng = np.random.default_rng(np.random.SeedSequence([seed, 3, k]))
        counts = world.rows_per_hour(rng, FINE_TUNE_ROWS, end_h - 12, 12)
        data = world.simulate(rng, world.timestamps(rng, counts, end_h - 12))
        data.label = world.draw_labels(rng, data.true_logit)
        bad = k == p.snapshot_index
        if bad and p.mode == "shuffled_labels":
            data.label = rng.permutation(data.label)
        elif bad and p.mode == "downsampled_negatives":
            data = data.take(np.flatnonzero((data.label == 1.0) | (rng.random(len(data)) < p.magnitude)))
        if bad and p.incident == "snapshot_bad_data":
            state = training.fine_tune(seed, states[-1], data, steps=100, lr=2e-3, stream=k)
        else:
            state = training.fine_tune(seed, states[-1], data, stream=k)
        if bad and p.incident == "snapshot_corrupt":
            assert p.layer is not None
            state = dict(state)
            state[p.layer] = incidents.corrupt_tensor(p, state[p.layer])
        states.append(state)
    ids = [f"ctr-{datetime.fromtimestamp(t / 1e6, tz=UTC):%Y%m%d-%H%M}" for t in published]
    return list(zip(ids, published, states, strict=True))


def _write_snapshots(folder: Path, snapshots: list[Snapshot], fmt: str) -> None:
    from safetensors.torch import save_file

    from workbench.sample.ctr_model import CTRModel

    folder.mkdir(parents=True)
    lines = ["snapshot_id,published_at,file,stable"]
    for i, (sid, published, state) in enumerate(snapshots):
        file = f"{sid}.{fmt}"
        if fmt == "pt":
            model = CTRModel()
            model.load_state_dict(state)
            torch.save(model.state_dict(), folder / file)
        else:
            save_file({k: v.contiguous() for k, v in state.items()}, str(folder / file))
        lines.append(f"{sid},{_iso(published)},{file},{'true' if i == 0 else 'false'}")
    (folder / "index.csv").write_text("\n".join(lines) + "\n")


def _schema(cols: ColumnNames, *, served: bool) -> pa.Schema:
    fields = [pa.field(cols.timestamp, pa.timestamp("us", tz="UTC"))]
    if served:
        fields.append(pa.field(cols.prediction, pa.float32()))
    fields.append(pa.field(cols.label, pa.int8()))
    if served:
        fields.append(pa.field(cols.snapshot, pa.string()))
    fields += [pa.field(c, pa.float32()) for c in cols.features()]
    fields += [pa.field(cols.slice(s), pa.string()) for s in world.SLICES]
    return pa.schema(fields)


def _table(
    cols: ColumnNames, traffic: world.Traffic, *, prediction: np.ndarray | None = None, snapshot: pa.Array | None = None
) -> pa.Table:
    label = traffic.label
    assert label is not None
    arrays: list[pa.Array] = [pa.array(traffic.ts, type=pa.timestamp("us", tz="UTC"))]
    if prediction is not None:
        arrays.append(pa.array(prediction, type=pa.float32()))
    arrays.append(pa.array(np.nan_to_num(label).astype(np.int8), mask=np.isnan(label)))
    if snapshot is not None:
        arrays.append(snapshot)
    arrays += [pa.array(traffic.features[f].astype(np.float32), from_pandas=True) for f in world.FEATURE_NAMES]
    arrays += [pc.take(pa.array(values), pa.array(traffic.slices[s])) for s, values in world.SLICES.items()]
    return pa.Table.from_arrays(arrays, schema=_schema(cols, served=prediction is not None))


def _write_predictions(
    out: Path,
    p: Plan,
    seed: int,
    rows: int,
    snapshots: list[Snapshot],
    partitioned: bool,
    cols: ColumnNames,
    say: Progress,
) -> None:
    counts = world.rows_per_hour(np.random.default_rng(np.random.SeedSequence([seed, 0])), rows, 0, world.WINDOW_HOURS)
    end_us = world.START_US + world.WINDOW_HOURS * world.HOUR_US
    published = np.array([t for _, t, _ in snapshots], dtype=np.int64)
    ids = pa.array([s for s, _, _ in snapshots])
    schema = _schema(cols, served=True)
    last_values: dict[str, float] = {}
    pending: list[pa.Table] = []  # blocks of the current file not written yet
    path: Path | None = None
    writer: pq.ParquetWriter | None = None

    def flush() -> None:
        if pending:
            assert writer is not None
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
            pending.clear()

    try:
        for b in range(world.WINDOW_HOURS // BLOCK_HOURS):
            h0 = b * BLOCK_HOURS
            rng = np.random.default_rng(np.random.SeedSequence([seed, 1, b]))
            traffic = world.simulate(rng, world.timestamps(rng, counts[h0 : h0 + BLOCK_HOURS], h0))
            incidents.apply_truth(p, traffic)
            traffic.label = world.draw_labels(rng, traffic.true_logit)
            delayed = world.label_delay_mask(rng, traffic.ts, end_us)
            rng_incident = np.random.default_rng(np.random.SeedSequence([seed, 9, b]))
            incidents.apply_labels(p, traffic, rng_incident)
            traffic.label[delayed] = np.nan
            incidents.apply_features(p, traffic, rng_incident, last_values)

            x = world.feature_matrix(traffic)
            served_by = np.searchsorted(published, traffic.ts, side="right") - 1
            logit = np.empty(len(traffic), dtype=np.float32)
            for k in np.unique(served_by):
                m = served_by == k
                logit[m] = training.score(snapshots[k][2], x[m])
            logit = incidents.apply_calibration(p, logit, traffic.ts)
            prediction = torch.sigmoid(torch.from_numpy(logit)).numpy()

            day = datetime.fromtimestamp((world.START_US + h0 * world.HOUR_US) / 1e6, tz=UTC).date()
            if partitioned:
                want = out / "predictions" / f"date={day.isoformat()}" / "part-0.parquet"
            else:
                want = out / "predictions.parquet"
            if want != path:
                flush()
                if writer is not None:
                    writer.close()
                want.parent.mkdir(parents=True, exist_ok=True)
                say(f"writing {want.relative_to(out)}")
                path, writer = want, pq.ParquetWriter(want, schema, **_parquet_options(schema, cols))
            pending.append(_table(cols, traffic, prediction=prediction, snapshot=pc.take(ids, pa.array(served_by))))
            if sum(len(t) for t in pending) >= ROW_GROUP_ROWS:
                flush()
        flush()
    finally:
        if writer is not None:
            writer.close()


def _write_training(path: Path, hist: world.Traffic, seed: int, rows: int, cols: ColumnNames) -> None:
    """A uniform sample of the base model's training rows."""
    n = min(len(hist), max(6_000, rows // 4))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 8]))
    idx = np.sort(rng.choice(len(hist), size=n, replace=False))
    table = _table(cols, hist.take(idx))
    pq.write_table(table, path, **_parquet_options(table.schema, cols))


def _write_json(path: Path, doc: object) -> None:
    path.write_text(json.dumps(doc, indent=2) + "\n")


def _write_events(path: Path, log: list[events.Event]) -> None:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["ts", "kind", "target", "description"])
    w.writerows((_iso(t), kind, target, desc) for t, kind, target, desc in log)
    path.write_text(buf.getvalue())


def _toml(seed: int, cols: ColumnNames) -> str:
    def q(items: list[str]) -> str:
        return "[" + ", ".join(f'"{i}"' for i in items) + "]"

    features = ["f_*"] if cols.is_default else cols.features()
    return (
        f"# Sample case written by workbench.sample (seed {seed}); truth.json holds the answer.\n"
        "[case]\n"
        f'name = "ads ctr sample, 2026-11-18 to 2026-11-20, seed {seed}"\n'
        'task = "binary"\n\n'
        "[columns]\n"
        f'timestamp  = "{cols.timestamp}"\n'
        f'prediction = "{cols.prediction}"\n'
        f'label      = "{cols.label}"\n'
        f'snapshot   = "{cols.snapshot}"\n'
        f"features   = {q(features)}\n"
        f"slices     = {q([cols.slice(s) for s in world.SLICES])}\n\n"
        "[model]\n"
        'factory = "model.py:build"\n'
        'output  = "logit"\n'
    )


def _truth(p: Plan, seed: int, cols: ColumnNames, snapshots: list[Snapshot]) -> dict[str, object]:
    target: str | None
    if p.kind == "none":
        target = None
    elif p.kind == "feature":
        target = cols.feature(p.features[0])
    elif p.kind == "upstream":
        target = p.node
    elif p.kind == "snapshot":
        assert p.snapshot_index is not None
        target = snapshots[p.snapshot_index][0]
    elif p.kind == "label":
        target = cols.label
    elif p.kind == "calibration":
        target = "calibration"
    else:  # slice
        assert p.slice is not None
        target = f"{cols.slice(p.slice[0])}={p.slice[1]}"
    truth: dict[str, object] = {
        "kind": p.kind,
        "target": target,
        "onset": None if p.onset_us is None else _iso(p.onset_us),
    }
    if p.kind == "feature" and p.slice is not None:
        truth["slice"] = f"{cols.slice(p.slice[0])}={p.slice[1]}"
    if p.layer is not None:
        truth["layer"] = p.layer
    broken = ", ".join(cols.feature(f) for f in p.features)
    truth["description"] = cols.rename_text(p.note).replace("{features}", broken)
    truth["details"] = {
        "incident": p.incident,
        "seed": seed,
        "mode": p.mode or None,
        "magnitude": round(p.magnitude, 4) if p.mode else None,
        "features": [cols.feature(f) for f in p.features],
        "implicated_event": p.implicated_event,
        "organic_drift": [cols.feature(f) for f in world.DRIFT_FEATURES],
    }
    return truth
