"""Diff model snapshots parameter by parameter, and find the first bad one in a timeline.

What breaks a model in production is rarely subtle: NaN/Inf weights, a layer that
exploded or was zeroed, units that died. :func:`diff_state_dicts` measures each of
these per tensor with vectorized torch ops (a 10M-parameter diff takes well under
a second). :func:`snapshot_timeline` judges every snapshot of a case against the
*benign* change between its consecutive snapshots, so a routine refresh never
alarms while a corrupted layer does.

The statistic (stated in :data:`STATISTIC`): for a parameter ``p`` and a change
``a -> b`` spanning ``k`` refreshes, ``v = ln(rel_l2) - ln(k)``; the reference is the
same parameter's ``n`` consecutive changes in this case, leaving out the change judged
and changes to or from a snapshot in alarm (and the change right after one, which may
undo it). ``z = (v - median) / (max(1.4826 MAD, ln 2 / 3.5) * sqrt(1 + 1/n))`` is the
modified z-score of Iglewicz & Hoaglin (1993, *How to Detect and Handle Outliers*),
widened into a prediction-interval statistic for one new change. It alarms above the
Student-t quantile with ``n - 1`` degrees of freedom at the tail level of their 3.5
cutoff (p = 2.3e-4), Bonferroni-split over the tests of one snapshot: with ~10
reference changes the MAD is itself uncertain, and a plain 3.5 would alarm on a
scalar bias every few refreshes. The same is done for ``ln(max_abs)`` (a single
exploding entry). The ``ln(k)`` term is the triangle inequality: ``k`` routine
refreshes move a tensor by at most ``k`` routine steps. The floor on the scale means
a change less than twice the typical one never alarms even when refreshes are
near-identical and the MAD is ~0. Hard alarms need no reference: NaN/Inf values, new
all-zero rows (gradient descent does not produce them), a changed shape or key set.
With fewer than :data:`MIN_REFERENCE` reference changes the t gate is too wide to say
anything, so absolute gates apply instead and the result says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench.case.snapshots import load_state_dict
from workbench.errors import CaseError, WorkbenchError, suggest
from workbench.model._shared import (
    COUNT_FLOOR,
    LOG_FLOOR,
    MIN_REFERENCE,
    Z_GATE,
    fmt,
    json_value,
    records,
    robust_z,
    safe_log,
    t_gate,
)
from workbench.model.load import build_model, model_problem
from workbench.model.trace import default_batch, trace_activations

if TYPE_CHECKING:
    import torch
    from polars.datatypes import DataTypeClass

    from workbench.case.loader import Case

__all__ = ["MIN_REFERENCE", "STATISTIC", "Z_GATE", "SnapshotDiff", "SnapshotTimeline", "diff_state_dicts", "snapshot_timeline"]

# Absolute gates when the case has too few snapshots for a benign reference.
ABSOLUTE_REL_L2 = 0.5  # a refresh that moves a tensor by half its norm is no refresh
STATISTIC = ("modified z-score of ln(rel_l2 / k) and ln(max_abs / k) per parameter against the median/MAD of the same "
             "parameter's consecutive changes in this case (k = refreshes spanned), widened by sqrt(1 + 1/n); alarm when z "
             "exceeds the Student-t(n-1) quantile at the tail of a normal z of 3.5, Bonferroni-split over the snapshot's "
             "tests; hard alarms on NaN/Inf, new all-zero rows or changed shapes")

DIFF_COLUMNS = {
    "name": pl.String, "shape": pl.String, "numel": pl.Int64, "rel_l2": pl.Float64, "max_abs": pl.Float64,
    "nonfinite": pl.Int64, "nonfinite_before": pl.Int64, "norm_ratio": pl.Float64, "sign_flip_share": pl.Float64,
    "dead_units": pl.Int64, "dead_units_before": pl.Int64, "inactive_units": pl.Int64, "inactive_units_before": pl.Int64,
    "bias_shift": pl.Float64, "status": pl.String,
}


# ---------------------------------------------------------------- one pair of snapshots
@dataclass(frozen=True, slots=True)
class SnapshotDiff:
    """Per-tensor change from state_dict ``a`` to ``b``.

    ``table`` has one row per tensor name in either dict: ``rel_l2`` = ||b-a|| / ||a||,
    ``max_abs`` = max |b-a|, ``nonfinite`` = NaN/Inf count in ``b``, ``norm_ratio`` =
    ||b|| / ||a||, ``sign_flip_share`` = share of nonzero entries whose sign flipped,
    ``dead_units`` = all-zero rows (dim 0) of tensors with ≥2 dims, ``inactive_units``
    = units constant on the probe batch (needs ``probe`` and ``model``), ``bias_shift``
    = mean(b-a) of 1-d ``*bias`` tensors, ``status`` = ok | added | removed | reshaped.
    rel_l2 and max_abs are +inf where ``b`` holds NaN/Inf.
    """

    table: pl.DataFrame
    rel_l2: float  # over every floating tensor together
    nonfinite: int

    @property
    def changed_keys(self) -> tuple[str, ...]:
        return tuple(self.table.filter(pl.col("status") != "ok")["name"])

    def to_dict(self) -> dict:
        return {"rel_l2": json_value(self.rel_l2), "nonfinite": self.nonfinite, "table": records(self.table)}

    def __str__(self) -> str:
        top = self.table.sort("rel_l2", descending=True, nulls_last=True).head(5)
        lines = [f"snapshot diff: {self.table.height} tensors, overall rel_l2 {fmt(self.rel_l2)}, {self.nonfinite} NaN/Inf values"]
        for r in top.iter_rows(named=True):
            lines.append(f"  {r['name']:<32} rel_l2 {fmt(r['rel_l2']):>8}  max_abs {fmt(r['max_abs']):>8}  "
                         f"NaN/Inf {r['nonfinite'] or 0}  dead {r['dead_units'] if r['dead_units'] is not None else '—'}  {r['status']}")
        return "\n".join(lines)


def _norm(t: torch.Tensor) -> float:
    """L2 norm in the tensor's own precision: torch reduces with cascade summation, so float32 keeps
    ~1e-6 relative accuracy on 10M entries without an 80 MB float64 copy."""
    import torch

    return float(torch.linalg.vector_norm(t)) if t.numel() else 0.0


def _count_nonfinite(t: torch.Tensor, norm: float) -> int:
    import torch

    if math.isfinite(norm) or not t.is_floating_point():
        return 0  # a finite norm means every entry is finite: no mask needed
    return int(t.numel() - int(torch.isfinite(t).sum()))


def _tensor_row(name: str, a: torch.Tensor | None, b: torch.Tensor | None) -> dict:
    """Every measure of one tensor; ``_nd``/``_na`` (norms of the change and of ``a``) feed the overall rel_l2."""
    import torch

    row: dict = dict.fromkeys(DIFF_COLUMNS)
    row["name"] = name
    ref = b if b is not None else a
    assert ref is not None  # a tensor name comes from a or b
    row["shape"] = "x".join(map(str, ref.shape)) or "scalar"
    row["numel"] = int(ref.numel())
    if a is None or b is None:
        row["status"] = "added" if a is None else "removed"
        return row
    if a.shape != b.shape:
        row["status"] = "reshaped"
        row["nonfinite"] = _count_nonfinite(b, _norm(b)) if b.is_floating_point() else 0
        return row
    row["status"] = "ok"
    fa, fb = (a, b) if a.is_floating_point() and b.is_floating_point() else (a.double(), b.double())
    # One subtraction, then reductions: every op is vectorized over the tensor.
    na, nb = _norm(fa), _norm(fb)
    row["nonfinite"], row["nonfinite_before"] = _count_nonfinite(fb, nb), _count_nonfinite(fa, na)
    d = fb - fa
    if row["nonfinite"]:
        row["rel_l2"] = row["max_abs"] = row["norm_ratio"] = math.inf
    else:
        nd = _norm(d)
        row["rel_l2"] = nd / na if na > 0 else (0.0 if nd == 0 else math.inf)
        lo, hi = torch.aminmax(d) if d.numel() else (torch.zeros(()), torch.zeros(()))
        row["max_abs"] = max(-float(lo), float(hi))
        row["norm_ratio"] = nb / na if na > 0 else (1.0 if nb == 0 else math.inf)
        row["_nd"], row["_na"] = nd, na
    nonzero = int(torch.count_nonzero(fa))
    row["sign_flip_share"] = float(((fa * fb) < 0).sum()) / nonzero if nonzero else 0.0
    if fb.dim() >= 2 and fb.shape[0] > 0:
        row["dead_units"] = int((fb.reshape(fb.shape[0], -1) == 0).all(dim=1).sum())
        row["dead_units_before"] = int((fa.reshape(fa.shape[0], -1) == 0).all(dim=1).sum())
    if fb.dim() == 1 and name.endswith("bias") and fb.numel():
        row["bias_shift"] = float(d.double().mean()) if not row["nonfinite"] else math.nan
    return row


def _inactive_by_prefix(model: torch.nn.Module, state: Mapping[str, torch.Tensor], probe: np.ndarray) -> dict[str, int]:
    """Units constant on ``probe`` (a ReLU that never fires), per state_dict prefix of the layer producing them."""

    model.load_state_dict(dict(state), strict=True)
    table = trace_activations(model, probe).table
    out: dict[str, int] = {}
    for r in table.iter_rows(named=True):
        if r["parameter"] and r["dead_units"] is not None and not r["layer"].startswith("("):
            out[r["parameter"]] = max(out.get(r["parameter"], 0), r["dead_units"])
    return out


def diff_state_dicts(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], *, probe: np.ndarray | None = None,
                     model: torch.nn.Module | None = None) -> SnapshotDiff:
    """Per-tensor change from ``a`` (before) to ``b`` (after).

    ``probe`` is a sample batch of model inputs (float32 ``[n, n_features]``); with
    ``model`` (the architecture, weights are ignored and it is not modified) it adds
    the units never active on the batch per layer (``inactive_units``).

    >>> import torch
    >>> a = {"w": torch.ones(2, 3)}
    >>> diff_state_dicts(a, {"w": torch.tensor([[1.0, 1, 1], [0, 0, 0]])}).table["dead_units"].to_list()
    [1]
    """
    if probe is not None and model is None:
        raise WorkbenchError("diff_state_dicts", "a probe batch needs the model architecture to run on.",
                             "pass model=build_model(case) (its weights are not used), or leave probe out.")

    rows = [_tensor_row(name, a.get(name), b.get(name)) for name in dict.fromkeys([*a, *b])]
    if probe is not None and model is not None:
        import copy

        arch = copy.deepcopy(model)  # a verb never mutates its input
        before, after = _inactive_by_prefix(arch, a, probe), _inactive_by_prefix(arch, b, probe)
        for row in rows:
            prefix = row["name"].rpartition(".")[0]
            if row["status"] == "ok" and prefix in after and row["name"].endswith("weight"):
                row["inactive_units"], row["inactive_units_before"] = after[prefix], before.get(prefix)
    ok = [r for r in rows if r["status"] == "ok" and b[r["name"]].is_floating_point()]
    num, den = sum(r.get("_nd", 0.0) ** 2 for r in ok), sum(r.get("_na", 0.0) ** 2 for r in ok)
    table = pl.DataFrame([{k: r[k] for k in DIFF_COLUMNS} for r in rows], schema=DIFF_COLUMNS, orient="row")
    nonfinite = int(table["nonfinite"].fill_null(0).sum())
    overall = math.inf if nonfinite else (math.sqrt(num / den) if den > 0 else 0.0)
    return SnapshotDiff(table=table, rel_l2=overall, nonfinite=nonfinite)


# ---------------------------------------------------------------- the timeline
@dataclass(frozen=True, slots=True)
class SnapshotTimeline:
    """Every snapshot judged against the benign change between consecutive snapshots of its case.

    ``table``: one row per snapshot (published order): ``compared_to`` (the last
    snapshot not in alarm before it), ``steps`` (refreshes spanned), overall
    ``rel_l2`` and ``rel_l2_vs_stable``, ``nonfinite``, ``dead_units_delta``, ``z`` and
    ``gate`` of the most anomalous parameter (``top_parameter``; z = +inf for a hard
    gate), ``alarm`` (z > gate for any parameter), ``reason``.
    ``params``: the per-parameter diff of every snapshot against ``compared_to``
    with ``z`` and ``alarm`` columns (see :meth:`param_table`).
    """

    table: pl.DataFrame
    params: pl.DataFrame
    stable_id: str | None
    statistic: str
    fallback: bool  # True: too few snapshots for a benign reference; absolute gates were used

    @property
    def alarm(self) -> bool:
        return bool(self.table["alarm"].any())

    @property
    def first_bad(self) -> str | None:
        bad = self.table.filter(pl.col("alarm"))
        return bad["snapshot_id"][0] if bad.height else None

    @property
    def bad_parameters(self) -> tuple[str, ...]:
        """The first bad snapshot's parameters in alarm, most anomalous first."""
        if self.first_bad is None:
            return ()
        return tuple(self.param_table(self.first_bad).filter(pl.col("alarm"))["name"])

    def param_table(self, snapshot_id: str) -> pl.DataFrame:
        """The per-parameter diff of ``snapshot_id`` against the snapshot it was compared to, most anomalous first."""
        known = self.table["snapshot_id"].to_list()
        if snapshot_id not in known:
            close = suggest(snapshot_id, known)
            raise WorkbenchError("snapshot timeline", f"no snapshot '{snapshot_id}'.",
                                 f"did you mean '{close}'?" if close else f"known snapshots: {known}")
        return _rank(self.params.filter(pl.col("snapshot_id") == snapshot_id).drop("snapshot_id"))

    def to_dict(self) -> dict:
        return {"alarm": self.alarm, "first_bad": self.first_bad, "bad_parameters": list(self.bad_parameters),
                "stable": self.stable_id, "statistic": self.statistic, "fallback": self.fallback,
                "table": records(self.table)}

    def __str__(self) -> str:
        head = (f"first bad snapshot: {self.first_bad} (parameters: {', '.join(self.bad_parameters[:4])})"
                if self.first_bad else "no snapshot alarms: every change is within the case's benign refresh variation")
        lines = [f"snapshot timeline: {self.table.height} snapshots, stable {self.stable_id}", f"  {head}"]
        if self.fallback:
            lines.append(f"  note: fewer than {MIN_REFERENCE} consecutive changes to learn benign variation from; absolute gates used")
        for r in self.table.iter_rows(named=True):
            flag = "ALARM" if r["alarm"] else "ok"
            lines.append(f"  {r['snapshot_id']:<14} {r['published_at']:%m-%d %H:%M}  vs {r['compared_to'] or '—':<14} "
                         f"rel_l2 {fmt(r['rel_l2']):>8}  z {fmt(r['z'], '.1f'):>6} / {fmt(r['gate'], '.1f'):<5} "
                         f"{flag:<5} {r['reason'] or ''}")
        return "\n".join(lines)


def _judge(diff: pl.DataFrame, steps: int, reference: dict[str, dict[str, list[float]]] | None) -> pl.DataFrame:
    """Add ``z``, ``gate``, ``alarm`` and ``why`` to one per-parameter diff; ``reference`` None means absolute gates."""
    span = math.log(steps)
    rows = list(diff.iter_rows(named=True))
    tests = 2 * sum(r["status"] == "ok" for r in rows) + sum(r["inactive_units"] is not None for r in rows)
    zs, gates, whys = [], [], []
    for r in rows:
        z, gate, why = math.nan, math.nan, ""
        new_dead = (r["dead_units"] or 0) - (r["dead_units_before"] or 0)
        if r["status"] != "ok":
            z, why = math.inf, f"tensor {r['status']}"
        elif r["nonfinite"] and r["nonfinite"] > (r["nonfinite_before"] or 0):
            z, why = math.inf, f"{r['nonfinite']:,} NaN/Inf values"
        elif new_dead > 0:
            z, why = math.inf, f"{new_dead} new all-zero rows"
        elif reference is None:
            if r["rel_l2"] is not None and r["rel_l2"] > ABSOLUTE_REL_L2 and r["shape"].count("x") >= 1:
                z, why = math.inf, f"rel_l2 {fmt(r['rel_l2'])} > {ABSOLUTE_REL_L2} (absolute gate)"
        else:
            ref = reference.get(r["name"], {})
            cands = []
            logs = (("rel_l2", safe_log(r["rel_l2"]) - span), ("max_abs", safe_log(r["max_abs"]) - span))
            for key, value, floor in ((k, v, LOG_FLOOR) for k, v in logs):
                zk, n = robust_z(value, ref.get(key, []), floor)
                cands.append((zk, t_gate(n, tests), key))
            if r["inactive_units"] is not None and r["inactive_units_before"] is not None:
                zk, n = robust_z(float(r["inactive_units"] - r["inactive_units_before"]), ref.get("inactive", []), COUNT_FLOOR)
                cands.append((zk, t_gate(n, tests), "inactive"))
            cands = [c for c in cands if not math.isnan(c[0])]
            if cands:
                z, gate, key = max(cands, key=lambda c: c[0] / c[1] if c[1] > 0 else c[0])
                if z > gate and key == "inactive":
                    why = f"{r['inactive_units'] - r['inactive_units_before']} more units never active on the probe batch"
                elif z > gate:
                    typical = float(np.median(ref["rel_l2"])) if ref.get("rel_l2") else math.nan
                    ratio = math.exp(safe_log(r["rel_l2"]) - span - typical)
                    why = (f"changed {ratio:.3g}x its typical refresh{f' (per step, over {steps})' if steps > 1 else ''}: "
                           f"rel_l2 {fmt(r['rel_l2'])}, max_abs {fmt(r['max_abs'])}, norm ratio {fmt(r['norm_ratio'])}")
        if math.isinf(z) and z > 0:
            gate = Z_GATE if math.isnan(gate) else gate
        zs.append(z)
        gates.append(gate)
        whys.append(why or None)
    alarms = [bool(z > g) for z, g in zip(zs, gates, strict=True)]
    return diff.with_columns(pl.Series("z", zs, pl.Float64), pl.Series("gate", gates, pl.Float64),
                             pl.Series("alarm", alarms, pl.Boolean), pl.Series("why", whys, pl.String))


def _reference_values(diffs: dict[int, SnapshotDiff], exclude: set[int]) -> dict[str, dict[str, list[float]]]:
    ref: dict[str, dict[str, list[float]]] = {}
    for i, d in diffs.items():
        if i in exclude:
            continue
        for r in d.table.filter(pl.col("status") == "ok").iter_rows(named=True):
            slot = ref.setdefault(r["name"], {"rel_l2": [], "max_abs": [], "inactive": []})
            slot["rel_l2"].append(safe_log(r["rel_l2"]))
            slot["max_abs"].append(safe_log(r["max_abs"]))
            if r["inactive_units"] is not None and r["inactive_units_before"] is not None:
                slot["inactive"].append(float(r["inactive_units"] - r["inactive_units_before"]))
    return ref


def _stable_index(case: Case) -> int:
    stable = [i for i, s in enumerate(case.snapshots) if s.stable]
    return stable[0] if stable else 0


def snapshot_timeline(case: Case, *, batch: np.ndarray | None = None) -> SnapshotTimeline:
    """Judge each snapshot against its predecessor, relative to the case's benign refresh variation.

    Each snapshot is diffed against the last snapshot before it that is not in
    alarm (so the refresh after a bad snapshot is not blamed for undoing it).
    ``batch`` (model inputs) adds units never active; by default a sample of the
    case's rows is used when the case has a model. See the module docstring for the
    statistic. ``first_bad`` is the earliest snapshot in alarm.

    >>> from workbench import open_case
    >>> timeline = snapshot_timeline(open_case("sample_data/cases/snapshot_corrupt"))
    >>> timeline.first_bad, timeline.bad_parameters[0]
    ('ctr-20261120-0009', 'net.0.weight')
    """

    snaps = case.snapshots
    if not snaps:
        raise CaseError(case.root / "snapshots", "the case has no snapshots.",
                        "list published snapshots in snapshots/index.csv: snapshot_id,published_at,file[,stable]")
    model = None
    if case.model is not None and model_problem(case) is None:  # the probe is optional: skip it when model.py fails
        model = build_model(case)
        if batch is None:
            batch = default_batch(case)
    elif batch is not None:
        raise CaseError(case.root, "a probe batch was given but the case has no model.py to run it on.",
                        "add model.py, or call snapshot_timeline without batch.")
    probe = batch if model is not None else None
    cache: dict[int, dict] = {}

    def state(i: int) -> dict:
        if i not in cache:
            if len(cache) > 3:  # keep memory bounded for large models: the walk only looks back a little
                cache.pop(min(k for k in cache if k != stable))
            cache[i] = load_state_dict(snaps[i].path)
        return cache[i]

    def diff(i: int, j: int) -> SnapshotDiff:
        return diff_state_dicts(state(i), state(j), probe=probe, model=model)

    stable = _stable_index(case)
    consecutive = {j: diff(j - 1, j) for j in range(1, len(snaps))}
    fallback = len(consecutive) - 1 < MIN_REFERENCE
    # Pass 1: judge the plain consecutive changes, leave-one-out, to find the changes that are outliers
    # themselves; they and the change right after them (which may undo them) leave the reference.
    suspicious: set[int] = set()
    if not fallback:
        suspicious = {j for j, d in consecutive.items() if _judge(d.table, 1, _reference_values(consecutive, {j}))["alarm"].any()}
    # Pass 2: walk in publish order, comparing each snapshot with the last one not in alarm.
    rows, params = [], []
    last_good = 0
    alarmed: set[int] = set()
    for j, snap in enumerate(snaps):
        vs_stable = _overall(state(stable), state(j)) if j != stable else 0.0
        if j == 0:
            rows.append(_row(snap, None, None, vs_stable, None, "first snapshot: nothing to compare with"))
            continue
        d = consecutive[j] if last_good == j - 1 else diff(last_good, j)
        ref = None
        if not fallback:
            flagged = suspicious | alarmed
            exclude = {j} | flagged | {k + 1 for k in flagged}
            if len(consecutive.keys() - exclude) < MIN_REFERENCE:
                exclude = {j}  # too much left out: fall back on the median/MAD's own robustness
            ref = _reference_values(consecutive, exclude)
        judged = _judge(d.table, j - last_good, ref)
        compared = snaps[last_good].snapshot_id
        rows.append(_row(snap, compared, j - last_good, vs_stable, d, None, judged))
        params.append(judged.with_columns(pl.lit(snap.snapshot_id).alias("snapshot_id"), pl.lit(compared).alias("compared_to")))
        if judged["alarm"].any():
            alarmed.add(j)
        else:
            last_good = j
    table = pl.DataFrame(rows, schema=TIMELINE_COLUMNS, orient="row")
    statistic = STATISTIC if not fallback else (
        f"absolute gates (fewer than {MIN_REFERENCE} consecutive changes to learn benign variation from): NaN/Inf, "
        f"new all-zero rows, changed shapes, rel_l2 > {ABSOLUTE_REL_L2} on a weight matrix")
    return SnapshotTimeline(table=table, params=pl.concat(params, how="diagonal_relaxed") if params else pl.DataFrame(),
                            stable_id=snaps[stable].snapshot_id, statistic=statistic, fallback=fallback)


TIMELINE_COLUMNS: dict[str, DataTypeClass | pl.DataType] = {
    "snapshot_id": pl.String, "published_at": pl.Datetime("us", "UTC"), "stable": pl.Boolean, "compared_to": pl.String,
    "steps": pl.Int64, "rel_l2": pl.Float64, "rel_l2_vs_stable": pl.Float64, "nonfinite": pl.Int64,
    "dead_units_delta": pl.Int64, "z": pl.Float64, "gate": pl.Float64, "top_parameter": pl.String, "alarm": pl.Boolean,
    "reason": pl.String,
}


def _overall(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """||b - a|| / ||a|| over every floating tensor present in both with one shape; +inf if b holds NaN/Inf."""
    num = den = 0.0
    for name, t in b.items():
        s = a.get(name)
        if s is not None and s.shape == t.shape and t.is_floating_point():
            nd = _norm(t - s)
            if not math.isfinite(nd):
                return math.inf
            num, den = num + nd ** 2, den + _norm(s) ** 2
    return math.sqrt(num / den) if den > 0 else 0.0


def _row(snap, compared_to: str | None, steps: int | None, vs_stable: float, d: SnapshotDiff | None, note: str | None,
         judged: pl.DataFrame | None = None) -> tuple:
    rel = nonfinite = dead = z = gate = top = None
    alarm, reason = False, note
    if d is not None and judged is not None:
        ok = d.table.filter(pl.col("status") == "ok")
        rel, nonfinite = d.rel_l2, d.nonfinite
        dead = int((ok["dead_units"].fill_null(0) - ok["dead_units_before"].fill_null(0)).sum())
        ranked = _rank(judged)
        if ranked.height:
            first = ranked.row(0, named=True)
            z, gate, top = first["z"], first["gate"], first["name"]
            alarm = bool(first["alarm"])
            reason = f"{top}: {first['why']}" if alarm else None
    return (snap.snapshot_id, snap.published_at, snap.stable, compared_to, steps, rel, vs_stable, nonfinite, dead,
            z, gate, top, alarm, reason)


def _rank(judged: pl.DataFrame) -> pl.DataFrame:
    """Parameters most anomalous first: alarms, then by z relative to its gate."""
    ratio = pl.when(pl.col("z").is_infinite() & (pl.col("z") > 0)).then(pl.lit(math.inf)).otherwise(pl.col("z") / pl.col("gate"))
    return (judged.with_columns(ratio.fill_nan(None).alias("_r")).sort(["alarm", "_r"], descending=True, nulls_last=True)
            .drop("_r"))
