"""Trace a model's activations layer by layer, and find where two snapshots diverge.

:func:`trace_activations` hooks every leaf module (a module without children) and
records, for its output on a sample batch: mean, std, *dead* units (constant over
the batch: a ReLU that never fires outputs a constant 0; a zeroed row outputs a
constant bias) and NaN/Inf values. Layers are listed in the order they ran.

:func:`compare_activations` runs two snapshots on the *same* rows and splits each
layer's change into a **centered** part, ``||(b - mean b) - (a - mean a)|| / ||a - mean a||``
(the pattern across rows changed: a scaled or scrambled layer), and a **mean shift**,
``sqrt(n) ||mean b - mean a|| / ||a - mean a||`` (the layer moved as a whole: a bias).
Routine refreshes mostly shift means (a fine-tune on the last hours moves the
output's intercept), so splitting keeps that common, noisy motion from masking a
corrupted layer. Each part is judged against the same layer's parts between
*benign* consecutive snapshots of the case (pairs involving neither compared
snapshot nor one the parameter timeline alarms on) with the statistic of
:mod:`workbench.model.diff`: a modified z-score of ``ln(part / k)`` (``k``
refreshes spanned: the triangle-inequality allowance) against the median and MAD of
the benign values, the MAD never below the one pooled over layers (one MAD from ~10
pairs is itself noisy), widened by ``sqrt(1 + 1/n)``; a layer diverges when either
z exceeds the Student-t gate (:func:`workbench.model._shared.t_gate`) for the pooled
residuals, Bonferroni-split over the 2 x layers tests. The first layer in forward
order above the gate is where the snapshots diverge; corruption propagates
downstream, so earlier layers stay quiet. ``rel_diff = ||b - a|| / ||a||`` is
reported too.

Layers map to state_dict prefixes: a layer with parameters is its own prefix; a
parameter-free layer (ReLU, Dropout) maps to the last layer with parameters that
ran before it. Tensors owned by no leaf module (e.g. normalisation buffers used in
``forward``) act before the first leaf: they get a pseudo-layer named
``(input to <first leaf>)`` that records the first leaf's input.

:func:`unit_importance` scores the units of one layer by gradient x activation
(Shrikumar et al. 2016, *Not Just a Black Box*; the first-order Taylor estimate of
the output change when a unit is switched off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench.errors import WorkbenchError
from workbench.model._shared import LOG_FLOOR, MAD_TO_SD, MIN_REFERENCE, Z_GATE, fmt, records, safe_log, t_gate, threads_for
from workbench.model.diff import diff_state_dicts, snapshot_timeline
from workbench.model.trace import capture, default_batch, layer_stats, unit_importance

if TYPE_CHECKING:
    import torch

    from workbench.case.loader import Case

__all__ = ["ActivationDiff", "compare_activations"]

ABSOLUTE_REL_DIFF = 0.5  # fallback gate without a benign reference: a layer's output moved by half its norm
STATISTIC = ("modified z-score of ln(centered change / k) and ln(mean shift / k) per layer against the median/MAD (never "
             "below the MAD pooled over layers) of the same layer between benign consecutive snapshots of the case (k = "
             "refreshes spanned); diverges when z exceeds the Student-t gate at the tail of a normal z of 3.5, Bonferroni over "
             "2 x layers, or NaN/Inf appear")




def _rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    import torch

    if a.shape != b.shape:
        return math.inf
    bad_b, bad_a = int((~torch.isfinite(b)).sum()), int((~torch.isfinite(a)).sum())
    if bad_b > bad_a:
        return math.inf
    d = torch.nan_to_num(b - a, nan=0.0, posinf=0.0, neginf=0.0)
    na = float(torch.linalg.vector_norm(torch.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)))
    nd = float(torch.linalg.vector_norm(d))
    return nd / na if na > 0 else (0.0 if nd == 0 else math.inf)


# ---------------------------------------------------------------- comparing snapshots
@dataclass(frozen=True, slots=True)
class ActivationDiff:
    """Two snapshots run on the same rows, compared layer by layer.

    ``table``: order, layer, kind, parameter (state_dict prefix), rel_diff, z,
    diverged, mean/std/dead_share/nonfinite for ``a`` and ``b``.
    ``first_divergent_layer`` is the first layer (forward order) beyond benign
    variation; ``first_divergent_parameter`` the state_dict tensor under it that
    changed most; ``units`` the gradient x activation importance of that layer's
    units in both snapshots.
    """

    snapshot_a: str
    snapshot_b: str
    table: pl.DataFrame
    first_divergent_layer: str | None
    first_divergent_parameter: str | None
    units: pl.DataFrame | None
    rows: int
    statistic: str
    fallback: bool

    def to_dict(self) -> dict:
        return {"snapshot_a": self.snapshot_a, "snapshot_b": self.snapshot_b, "rows": self.rows,
                "first_divergent_layer": self.first_divergent_layer, "first_divergent_parameter": self.first_divergent_parameter,
                "statistic": self.statistic, "fallback": self.fallback, "table": records(self.table),
                "units": records(self.units.head(20)) if self.units is not None else None}

    def __str__(self) -> str:
        head = (f"first divergent layer: {self.first_divergent_layer} (parameter {self.first_divergent_parameter})"
                if self.first_divergent_layer else "no layer diverges beyond the case's benign refresh variation")
        lines = [f"activations {self.snapshot_a} -> {self.snapshot_b} on {self.rows:,} rows", f"  {head}"]
        for r in self.table.iter_rows(named=True):
            lines.append(f"  {r['layer']:<28} rel_diff {fmt(r['rel_diff']):>8}  z {fmt(r['z'], '.1f'):>6} / {fmt(r['gate'], '.1f'):<5} "
                         f"{'DIVERGES' if r['diverged'] else ''}")
        return "\n".join(lines)


def compare_activations(case: Case, snapshot_a: str, snapshot_b: str, *, batch: np.ndarray | None = None) -> ActivationDiff:
    """Run ``snapshot_a`` and ``snapshot_b`` on the same batch and name the first layer where they diverge.

    The benign reference is every consecutive pair of the case's snapshots that
    involves neither ``a`` nor ``b``; with fewer than ``MIN_REFERENCE`` (5) such pairs
    an absolute gate (rel_diff > 0.5 or new NaN/Inf) is used and ``fallback`` says so.
    ``batch`` defaults to :func:`default_batch`.
    """
    from workbench.model.load import build_model

    with threads_for(build_model(case)):
        return _compare(case, snapshot_a, snapshot_b, batch)


def _parts(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(centered change, mean shift) of one layer's output from ``a`` to ``b`` on the same rows.

    centered = ||(b - mean b) - (a - mean a)|| / ||a - mean a||: how the pattern across rows
    changed; shift = sqrt(n) ||mean b - mean a|| / ||a - mean a||: how far the layer's mean
    moved, in units of its spread. Both +inf where ``b`` gained NaN/Inf.
    """
    import torch

    if a.shape != b.shape or int((~torch.isfinite(b)).sum()) > int((~torch.isfinite(a)).sum()):
        return math.inf, math.inf
    a, b = torch.nan_to_num(a), torch.nan_to_num(b)
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = a - ma, b - mb
    spread = float(torch.linalg.vector_norm(ca))
    change = float(torch.linalg.vector_norm(cb - ca))
    shift = float(torch.linalg.vector_norm(mb - ma)) * math.sqrt(a.shape[0])
    if spread == 0:
        return (0.0 if change == 0 else math.inf), (0.0 if shift == 0 else math.inf)
    return change / spread, shift / spread


def _benign_pairs(case: Case, ia: int, ib: int, batch: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive snapshot pairs that involve neither compared snapshot nor one the parameter timeline alarms on."""

    alarmed = {i for i, flag in enumerate(snapshot_timeline(case, batch=batch).table["alarm"]) if flag}
    skip = {ia, ib} | alarmed
    return [(i - 1, i) for i in range(1, len(case.snapshots)) if not {i - 1, i} & skip]


def _compare(case: Case, snapshot_a: str, snapshot_b: str, batch: np.ndarray | None) -> ActivationDiff:
    from workbench.case.snapshots import load_state_dict
    from workbench.model.load import load_model

    ids = [s.snapshot_id for s in case.snapshots]
    ia, ib = ids.index(case.snapshot(snapshot_a).snapshot_id), ids.index(case.snapshot(snapshot_b).snapshot_id)
    x = default_batch(case) if batch is None else batch
    cap_a, cap_b = capture(load_model(case, snapshot_a), x), capture(load_model(case, snapshot_b), x)
    if [c[0] for c in cap_a] != [c[0] for c in cap_b]:
        raise WorkbenchError(case.root / "model.py", f"snapshots {snapshot_a} and {snapshot_b} ran different layers on the same batch.",
                             "compare snapshots of one architecture (the forward must not depend on the weights).")
    layers = [c[0] for c in cap_a]
    pairs = _benign_pairs(case, ia, ib, x)
    fallback = len(pairs) < MIN_REFERENCE
    ref = np.zeros((0, len(layers), 2))
    if not fallback:  # ln(centered), ln(shift) per benign pair and layer
        values, prev = [], None
        for i in sorted({k for p in pairs for k in p}):
            cur = capture(load_model(case, ids[i]), x)
            if prev is not None and (i - 1, i) in pairs:
                values.append([[safe_log(v) for v in _parts(t0, t1)] for (_, _, _, t0), (_, _, _, t1) in zip(prev, cur, strict=True)])
            prev = cur
        ref = np.asarray(values)
    n = len(ref)
    if n:
        med = np.median(ref, axis=0)
        # per-layer scale, never below the scale pooled over layers: one MAD from ~10 pairs is itself noisy
        own = MAD_TO_SD * np.median(np.abs(ref - med), axis=0)
        pooled = MAD_TO_SD * np.median(np.abs(ref - med).reshape(-1, 2), axis=0)
        scale = np.maximum(np.maximum(own, pooled[None, :]), LOG_FLOOR) * math.sqrt(1 + 1 / n)
        gate = t_gate(n * len(layers), 2 * len(layers))
    steps = max(abs(ib - ia), 1)
    rows, first = [], None
    for i, ((layer, kind, prefix, ta), (_, _, _, tb)) in enumerate(zip(cap_a, cap_b, strict=True)):
        rel = _rel_diff(ta, tb)
        centered, shift = _parts(ta, tb)
        if fallback:
            z_c = z_s = math.inf if max(centered, shift, rel) > ABSOLUTE_REL_DIFF else 0.0
            g = Z_GATE
        else:
            v = np.array([safe_log(centered), safe_log(shift)]) - math.log(steps)
            z_c, z_s = ((v - med[i]) / scale[i]).tolist()
            z_c, z_s = (math.inf if math.isinf(centered) else z_c), (math.inf if math.isinf(shift) else z_s)
            g = gate
        z = max(z_c, z_s)
        diverged = bool(z > g)
        sa, sb = layer_stats(ta), layer_stats(tb)
        rows.append({"order": i, "layer": layer, "kind": kind, "parameter": prefix, "rel_diff": rel, "centered_diff": centered,
                     "mean_shift": shift, "z_centered": z_c, "z_shift": z_s, "z": z, "gate": g, "diverged": diverged,
                     "mean_a": sa["mean"], "mean_b": sb["mean"], "std_a": sa["std"], "std_b": sb["std"],
                     "dead_share_a": sa["dead_share"], "dead_share_b": sb["dead_share"],
                     "nonfinite_a": sa["nonfinite"], "nonfinite_b": sb["nonfinite"]})
        if diverged and first is None:
            first = rows[-1]
    table = pl.DataFrame(rows, infer_schema_length=None)
    parameter, units = None, None
    if first is not None:
        diff = diff_state_dicts(load_state_dict(case.snapshot(snapshot_a).path), load_state_dict(case.snapshot(snapshot_b).path)).table
        owned = [p.strip() for p in first["parameter"].split(",")] if first["kind"] == "input" else None
        prefix = first["parameter"]
        cand = diff.filter(pl.col("name").is_in(owned) if owned else pl.col("name").str.starts_with(f"{prefix}."))
        if cand.height:
            parameter = cand.sort("rel_l2", descending=True, nulls_last=True)["name"][0]
        layer = first["layer"]
        ua = unit_importance(load_model(case, snapshot_a), x, layer)
        ub = unit_importance(load_model(case, snapshot_b), x, layer)
        units = (ub.select("unit", pl.col("importance").alias("importance_b"), pl.col("activation_mean").alias("activation_mean_b"),
                           pl.col("dead").alias("dead_b"))
                 .join(ua.select("unit", pl.col("importance").alias("importance_a"), pl.col("activation_mean").alias("activation_mean_a"),
                                 pl.col("dead").alias("dead_a")), on="unit", how="left")
                 .with_columns((pl.col("importance_b") - pl.col("importance_a")).alias("importance_delta"))
                 .sort("importance_delta", descending=True, nulls_last=True))
    return ActivationDiff(snapshot_a=case.snapshot(snapshot_a).snapshot_id, snapshot_b=case.snapshot(snapshot_b).snapshot_id,
                          table=table, first_divergent_layer=first["layer"] if first else None,
                          first_divergent_parameter=parameter, units=units, rows=len(x),
                          statistic=STATISTIC if not fallback else (f"absolute gate (fewer than {MIN_REFERENCE} benign consecutive "
                                                                    f"pairs): divergence > {ABSOLUTE_REL_DIFF} or new NaN/Inf"),
                          fallback=fallback)


