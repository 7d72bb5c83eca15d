"""One model's activations: a hook on every leaf module, layer statistics, unit importance.

:func:`trace_activations` hooks every leaf module (a module without children) and
records, for its output on a sample batch: mean, std, *dead* units (constant over
the batch: a ReLU that never fires outputs a constant 0; a zeroed row outputs a
constant bias) and NaN/Inf values. Layers are listed in the order they ran.

Layers map to state_dict prefixes: a layer with parameters is its own prefix; a
parameter-free layer (ReLU, Dropout) maps to the last layer with parameters that
ran before it. Tensors owned by no leaf module (e.g. normalisation buffers used in
``forward``) act before the first leaf: they get a pseudo-layer named
``(input to <first leaf>)`` that records the first leaf's input.

:func:`unit_importance` scores the units of one layer by gradient x activation
(Shrikumar et al. 2016, *Not Just a Black Box*; the first-order Taylor estimate of
the output change when a unit is switched off).

Comparing two snapshots' activations is :mod:`workbench.model.activations`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench.errors import WorkbenchError, suggest
from workbench.model._shared import fmt, records, threads_for

if TYPE_CHECKING:
    import torch

    from workbench.case.loader import Case

__all__ = ["ActivationStats", "capture", "default_batch", "layer_stats", "matrix", "trace_activations", "unit_importance"]

STATS_COLUMNS = {"order": pl.Int64, "layer": pl.String, "kind": pl.String, "parameter": pl.String, "units": pl.Int64,
                 "mean": pl.Float64, "std": pl.Float64, "dead_units": pl.Int64, "dead_share": pl.Float64, "nonfinite": pl.Int64}


def default_batch(case: Case, n: int = 2048, *, seed: int = 0) -> np.ndarray:
    """A sample batch of model inputs: training rows if the case has them, else early served traffic.

    Early traffic means rows served before the second snapshot was published
    (the first snapshot's period), the rows least likely to hold the incident.
    """
    from workbench.case.columns import TS
    from workbench.model.load import feature_matrix

    features = list(case.features)
    frame = None
    if case.training is not None and set(features) <= set(case.training.collect_schema().names()):
        frame = case.training.select(features).collect()
    if frame is None or frame.height < min(n, 64):
        lf = case.predictions
        if len(case.snapshots) >= 2:
            early = lf.filter(pl.col(TS) < pl.lit(case.snapshots[1].published_at))
            if early.select(pl.len()).collect().item() >= min(n, 256):
                lf = early
        frame = lf.select(features).collect()
    if frame.height > n:
        frame = frame.sample(n, seed=seed)
    return feature_matrix(frame, case.features)


# ---------------------------------------------------------------- hooks
def _leaves(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return {name: m for name, m in model.named_modules() if name and not any(True for _ in m.children())}


def _root_tensors(model: torch.nn.Module) -> list[str]:
    """state_dict keys owned by no leaf module (used by non-module code in a forward)."""
    leaves = _leaves(model)
    return [k for k in model.state_dict() if k.rpartition(".")[0] not in leaves]


def matrix(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    return t.reshape(t.shape[0], -1).double() if t.dim() >= 1 and t.shape[0] else t.reshape(1, -1).double()


def capture(model: torch.nn.Module, x: np.ndarray) -> list[tuple[str, str, str | None, torch.Tensor]]:
    """(layer, kind, state_dict prefix, output as [n, units]) for every leaf, in the order they ran."""
    import torch

    leaves = _leaves(model)
    owns = {name for name, m in leaves.items() if any(True for _ in m.parameters(recurse=False))
            or any(True for _ in m.buffers(recurse=False))}
    seen: list[tuple[str, str, str | None, torch.Tensor]] = []
    done: set[str] = set()
    root = _root_tensors(model)

    def hook(name: str):
        def record(module, inputs, output):
            if name in done:
                return  # a module called twice: keep its first call
            if not seen and root and inputs and isinstance(inputs[0], torch.Tensor):
                seen.append((f"(input to {name})", "input", ", ".join(root), matrix(inputs[0])))
            out = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(out, torch.Tensor):
                done.add(name)
                owner = name if name in owns else next((s[2] for s in reversed(seen) if s[1] != "input"), None)
                seen.append((name, type(module).__name__, owner, matrix(out)))
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in leaves.items()]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode(), threads_for(model):
            model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return seen


def layer_stats(t: torch.Tensor) -> dict:
    import torch

    finite = torch.isfinite(t)
    nonfinite = int(t.numel() - int(finite.sum()))
    if nonfinite:  # mask only when needed: boolean indexing copies the tensor
        vals = t[finite]
        lo, hi = torch.where(finite, t, torch.inf).amin(0), torch.where(finite, t, -torch.inf).amax(0)
    else:
        vals, lo, hi = t, t.amin(0), t.amax(0)
    dead = int(((hi - lo) == 0).sum())  # constant over the batch (a column holding NaN/Inf never counts)
    units = t.shape[1]
    return {"units": units, "mean": float(vals.mean()) if vals.numel() else math.nan,
            "std": float(vals.std()) if vals.numel() > 1 else math.nan, "dead_units": dead,
            "dead_share": dead / units if units else 0.0, "nonfinite": nonfinite}


@dataclass(frozen=True, slots=True)
class ActivationStats:
    """Per-layer activation statistics on one batch (``table``: order, layer, kind, parameter, units,
    mean, std, dead_units, dead_share, nonfinite), layers in the order they ran."""

    table: pl.DataFrame
    rows: int

    def to_dict(self) -> dict:
        return {"rows": self.rows, "table": records(self.table)}

    def __str__(self) -> str:
        lines = [f"activations on {self.rows:,} rows:"]
        for r in self.table.iter_rows(named=True):
            lines.append(f"  {r['layer']:<28} {r['kind']:<10} units {r['units']:>5}  mean {fmt(r['mean']):>8}  "
                         f"std {fmt(r['std']):>8}  dead {r['dead_share']:.0%}  NaN/Inf {r['nonfinite']}")
        return "\n".join(lines)


def trace_activations(model: torch.nn.Module, x: np.ndarray) -> ActivationStats:
    """Record mean, std, dead units and NaN/Inf of every leaf module's output on ``x`` (float32 ``[n, n_features]``).

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())
    >>> trace_activations(net, np.ones((4, 2), np.float32)).table["layer"].to_list()
    ['0', '1']
    """
    with threads_for(model):
        rows = [{"order": i, "layer": layer, "kind": kind, "parameter": prefix, **layer_stats(t)}
                for i, (layer, kind, prefix, t) in enumerate(capture(model, x))]
    return ActivationStats(table=pl.DataFrame(rows, schema=STATS_COLUMNS, orient="row"), rows=len(x))


# ---------------------------------------------------------------- unit importance
def _resolve_layer(model: torch.nn.Module, layer: str) -> tuple[torch.nn.Module, bool]:
    """The module whose output (False) or input (True) ``layer`` names."""
    modules = dict(model.named_modules())
    if layer.startswith("(input to ") and layer.endswith(")") and layer[10:-1] in modules:
        return modules[layer[10:-1]], True
    if layer in modules and layer:
        return modules[layer], False
    prefix = layer.rpartition(".")[0]
    if prefix in modules and prefix:  # a parameter name such as net.2.weight
        return modules[prefix], False
    names = [n for n in modules if n]
    close = suggest(layer, names)
    raise WorkbenchError("unit_importance", f"the model has no layer '{layer}'.",
                         f"did you mean '{close}'?" if close else f"layers: {names[:20]}")


def unit_importance(model: torch.nn.Module, x: np.ndarray, layer: str) -> pl.DataFrame:
    """Gradient x activation of each unit of ``layer`` on the rows ``x``, most important first.

    ``layer`` is a module name (``net.2``), a parameter name (``net.2.weight``) or a
    pseudo-layer ``(input to net.0)``. Columns: unit, importance (mean |g·a| over
    rows), contribution (mean g·a, signed), activation_mean, dead (constant over
    the rows). The gradient is of the model's summed output.
    """
    import torch

    module, on_input = _resolve_layer(model, layer)
    store: dict[str, torch.Tensor] = {}

    def grab(_m, inputs, output=None):
        t = inputs[0] if on_input else (output[0] if isinstance(output, (tuple, list)) else output)
        store["act"] = t

    handle = module.register_forward_pre_hook(grab) if on_input else module.register_forward_hook(grab)
    was_training = model.training
    try:
        model.eval()
        with torch.enable_grad(), threads_for(model):
            # The input requires grad so a layer fed only by buffers (normalisation) still has a gradient.
            out = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).requires_grad_(True))
            act = store["act"]
            if not act.requires_grad:
                raise WorkbenchError("unit_importance", f"layer '{layer}' does not depend on the model's parameters or input.",
                                     "pick a layer inside the network.")
            (grad,) = torch.autograd.grad(out.reshape(-1).sum(), act)
    finally:
        handle.remove()
        model.train(was_training)
    a = matrix(act)
    ga = (matrix(grad) * a)
    spread = a.amax(0) - a.amin(0)
    frame = pl.DataFrame({
        "unit": np.arange(a.shape[1], dtype=np.int64),
        "importance": ga.abs().mean(0).numpy(),
        "contribution": ga.mean(0).numpy(),
        "activation_mean": a.mean(0).numpy(),
        "dead": (spread == 0).numpy(),
    })
    return frame.sort("importance", descending=True, nulls_last=True)
