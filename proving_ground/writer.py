"""Writing a case directory: the serving log, training sample, snapshots, model.py, lineage, events, toml.

The serving log is written in row groups straight from the generator's arrays through
an index (``order``), so even a duplicated-row incident or an unsorted log never holds
a second full copy of the feature matrix. Format variety (odd column names, dtypes,
timestamp encodings, hive directories, CSV) is applied only here: the generator's
arrays are the same whatever the format.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import torch

from proving_ground.world import DAY_US

ROW_GROUP = 250_000

# Column names for the format-variety sweep: spaces, unicode, SQL and HTML look-alikes.
ODD = {
    "timestamp": ["event_time", "served at", "時刻", "select", "timestamp (utc)", "Zeit/UTC", "<i>when</i>", "ts"],
    "prediction": ["prédiction", "p(click)", "<b>x</b>", "score model", "pred-ctr", "prediction", "予測"],
    "label": ["clicked?", "drop table", "étiquette", "is click", "label;--", "y", "outcome 0/1"],
    "snapshot": ["model version", "modèle", "from", "<snap>", "snapshot_id"],
}
_SLICE_ODD = ["{n} ", "{N}", "<td>{n}</td>", "order", "group", "{n}/segment", "ségment {n}", "{n} name"]
_FEATURE_MANGLE = ["{sp}", "{Title}", "<b>{n}</b>", "select {n}", "{n} (raw)", "Δ {n}", "{n}·é", "{n}'s value",
                   "drop table {n}", "{n}-ütf8", "{n} ", "  {n}"]
_FORBIDDEN = set("*?[]{}")  # glob metacharacters would turn a toml feature name into a pattern


def _clean(name: str) -> str:
    name = name.strip()
    return "".join(c for c in name if c not in _FORBIDDEN) or "x"


def column_names(feature_names: list[str], slice_names: list[str], odd: bool, toml: bool,
                 rng: np.random.Generator) -> dict[str, Any]:
    """Role -> column name. Without a toml the contract's defaults must apply (features ``f_*``)."""
    if not toml:
        return {"timestamp": "ts", "prediction": "prediction", "label": "label", "snapshot": "snapshot_id",
                "features": [f"f_{n}" for n in feature_names], "slices": list(slice_names)}
    if not odd:
        return {"timestamp": "ts", "prediction": "prediction", "label": "label", "snapshot": "snapshot_id",
                "features": list(feature_names), "slices": list(slice_names)}
    taken: set[str] = {"date"}  # the hive partition column

    def unique(name: str) -> str:
        base = _clean(name)
        out, k = base, 2
        while out.lower() in taken:
            out, k = f"{base}_{k}", k + 1
        taken.add(out.lower())
        return out

    roles = {r: unique(str(rng.choice(ODD[r]))) for r in ("timestamp", "prediction", "label", "snapshot")}
    feats = []
    for n in feature_names:
        if rng.random() < 0.45:
            pat = str(rng.choice(_FEATURE_MANGLE))
            n = pat.format(n=n, sp=n.replace("_", " "), Title=n.replace("_", " ").title())
        feats.append(unique(n))
    slices = []
    for n in slice_names:
        if rng.random() < 0.6:
            n = str(rng.choice(_SLICE_ODD)).format(n=n, N=n.upper())
        slices.append(unique(n))
    return {**roles, "features": feats, "slices": slices}


# --------------------------------------------------------------------------- arrays -> arrow
def _ts_array(ts_us: np.ndarray, spec: str) -> pa.Array:
    if spec == "epoch_s":
        return pa.array(ts_us // 1_000_000, type=pa.int64())
    if spec.startswith("iso:"):
        arr = pa.array(ts_us, type=pa.timestamp("us"))
        import pyarrow.compute as pc
        text = pc.strftime(arr, format="%Y-%m-%dT%H:%M:%S")
        tail = {"iso:Z": "Z", "iso:offset": "+00:00", "iso:naive": ""}[spec]
        return pc.binary_join_element_wise(text, pa.scalar(tail), "") if tail else text
    unit, tz = spec.split(":")
    tz = None if tz == "naive" else tz
    vals = (ts_us // 1000) if unit == "ms" else (ts_us * 1000 if unit == "ns" else ts_us)
    return pa.array(vals, type=pa.timestamp(unit, tz=tz))


def _label_array(y: np.ndarray, mask: np.ndarray, dtype: str) -> pa.Array:
    """y: int8 0/1; mask: True where the label is null (not joined)."""
    if dtype == "bool":
        return pa.array(y.astype(bool), mask=mask, type=pa.bool_())
    if dtype == "float64":
        return pa.array(y.astype(np.float64), mask=mask, type=pa.float64())
    return pa.array(y.astype(dtype), mask=mask, type=pa.from_numpy_dtype(np.dtype(dtype)))


def _feature_array(x: np.ndarray, dtype: str) -> pa.Array:
    mask = np.isnan(x)
    if dtype == "int64":
        return pa.array(np.nan_to_num(x, nan=0.0).astype(np.int64), mask=mask, type=pa.int64())
    arr = x.astype(dtype, copy=False)
    return pa.array(arr, mask=mask if mask.any() else None, type=pa.from_numpy_dtype(np.dtype(dtype)))


def _slice_array(codes: np.ndarray, values: tuple[str, ...], dictionary: bool) -> pa.Array:
    d = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(list(values), type=pa.string()))
    return d if dictionary else d.cast(pa.string())


def feature_dtypes(families: list[str], policy: str, rng: np.random.Generator) -> list[str]:
    out = []
    for fam in families:
        if policy == "mixed":
            out.append("int64" if fam in ("count", "binary", "time") and rng.random() < 0.7 else str(rng.choice(["float32", "float64"])))
        else:
            out.append(policy)
    return out


def write_log(path_base: Path, cols: dict[str, Any], fmt: dict[str, Any], order: np.ndarray, data: dict[str, Any],
              training: bool = False) -> str:
    """Write rows ``order`` (indices into ``data`` arrays) as parquet / hive directory / CSV. Returns the path written.

    ``data``: ts (int64 us), y (int8), y_null (bool), X ([n, F] float32, NaN = null), and for the
    serving log p (float64), slices ([n, S] codes), slice_values, snap (int codes) and snap_ids.
    """
    layout = fmt["predictions"]
    fdt = data["feature_dtypes"]

    def table(idx: np.ndarray) -> pa.Table:
        arrays, names = [], []
        arrays.append(_ts_array(data["ts"][idx], fmt["timestamp"]))
        names.append(cols["timestamp"])
        if not training:
            arrays.append(pa.array(data["p"][idx].astype(fmt["prediction_dtype"])))
            names.append(cols["prediction"])
        arrays.append(_label_array(data["y"][idx], data["y_null"][idx], fmt["label_dtype"]))
        names.append(cols["label"])
        if not training and data.get("snap") is not None:
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(data["snap"][idx].astype(np.int32)),
                                                         pa.array(data["snap_ids"])).cast(pa.string()))
            names.append(cols["snapshot"])
        X = data["X"]
        for j, name in enumerate(cols["features"]):
            arrays.append(_feature_array(X[idx, j], fdt[j]))
            names.append(name)
        if not training:
            for i, name in enumerate(cols["slices"]):
                arrays.append(_slice_array(data["slices"][idx, i], data["slice_values"][i], fmt["slices_dictionary"]))
                names.append(name)
        if fmt.get("column_order"):
            perm = fmt["column_order"] if not training else None
            if perm:
                pos = {n: k for k, n in enumerate(names)}
                keep = [n for n in perm if n in pos]
                arrays = [arrays[pos[n]] for n in keep]
                names = keep
        return pa.Table.from_arrays(arrays, names=names)

    stem = "training" if training else "predictions"
    if layout == "csv":
        path = path_base / f"{stem}.csv"
        writer = None
        with open(path, "wb") as fh:
            for a in range(0, len(order), ROW_GROUP):
                t = table(order[a:a + ROW_GROUP])
                t = t.cast(pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                                      for f in t.schema]))
                if writer is None:
                    writer = pacsv.CSVWriter(fh, t.schema)
                writer.write_table(t)
            if writer is None:
                writer = pacsv.CSVWriter(fh, table(order[:0]).schema)
            writer.close()
        return path.name
    if layout == "hive" and not training:
        root = path_base / stem
        root.mkdir(parents=True, exist_ok=True)
        day = (data["ts"][order] // DAY_US)
        bounds = np.flatnonzero(np.diff(day)) + 1 if fmt["sorted"] else None
        if bounds is None:
            uniq = np.unique(day)
            groups = [order[day == d] for d in uniq]
        else:
            groups = np.split(order, bounds)
        for g in groups:
            d = datetime.fromtimestamp(int(data["ts"][g[0]] // DAY_US * 86400), UTC).strftime("%Y-%m-%d")
            part = root / f"date={d}"
            part.mkdir(exist_ok=True)
            t = table(g)
            pq.write_table(t, part / "part-0.parquet", row_group_size=ROW_GROUP, use_dictionary=_dict_cols(t))
        return f"{stem}/"
    path = path_base / f"{stem}.parquet"
    w = None
    for a in range(0, max(len(order), 1), ROW_GROUP):
        t = table(order[a:a + ROW_GROUP])
        if w is None:
            w = pq.ParquetWriter(path, t.schema, use_dictionary=_dict_cols(t))
        w.write_table(t)
    w.close()
    return path.name


def _dict_cols(t: pa.Table) -> list[str]:
    """Dictionary-encode only string columns: trying it on float columns costs 15x the write time."""
    return [f.name for f in t.schema if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type)]


# --------------------------------------------------------------------------- the other files
def toml_string(s: str) -> str:
    """A TOML basic string (JSON escapes are valid TOML escapes)."""
    return json.dumps(s, ensure_ascii=False)


def write_toml(path: Path, case_name: str, cols: dict[str, Any], model: dict | None, snapshot_column: bool) -> None:
    lines = ["[case]", f"name = {toml_string(case_name)}", 'task = "binary"', "", "[columns]",
             f"timestamp  = {toml_string(cols['timestamp'])}", f"prediction = {toml_string(cols['prediction'])}",
             f"label      = {toml_string(cols['label'])}"]
    if snapshot_column:
        lines.append(f"snapshot   = {toml_string(cols['snapshot'])}")
    lines.append("features   = [" + ", ".join(toml_string(f) for f in cols["features"]) + "]")
    lines.append("slices     = [" + ", ".join(toml_string(s) for s in cols["slices"]) + "]")
    if model:
        lines += ["", "[model]", f"factory = {toml_string('model.py:' + model['factory'])}",
                  f"output  = {toml_string(model['output'])}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_snapshots(root: Path, snaps: list, stable_column: bool, file_kind: str, rng: np.random.Generator) -> None:
    from safetensors.torch import save_file

    d = root / "snapshots"
    d.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in snaps:
        kind = file_kind if file_kind != "mixed" else ("pt" if rng.random() < 0.3 else "safetensors")
        fname = f"{s.id}.{kind}"
        state = {k: v.detach().contiguous().clone() for k, v in s.state.items()}
        if kind == "pt":
            torch.save(state, d / fname)
        else:
            save_file(state, str(d / fname))
        s.file = fname
        row = {"snapshot_id": s.id, "published_at": datetime.fromtimestamp(s.published_us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "file": fname}
        if stable_column:
            row["stable"] = "true" if s.stable else "false"
        rows.append(row)
    with open(d / "index.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_events(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["ts", "kind", "target", "description"])
        w.writeheader()
        w.writerows(rows)
