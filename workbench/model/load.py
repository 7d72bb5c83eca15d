"""Build the case's model from ``model.py`` and score feature rows with a snapshot.

``model.py`` is code the case author wrote (like a notebook), so it is imported;
snapshots are data and are never executed (see :mod:`workbench.case.snapshots`).
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING

import numpy as np

from workbench.case.snapshots import Snapshot, load_state_dict
from workbench.errors import CaseError, SnapshotError

if TYPE_CHECKING:
    import polars as pl
    import torch

    from workbench.case.loader import Case

__all__ = ["build_model", "feature_matrix", "load_model", "score"]


def build_model(case: Case) -> torch.nn.Module:
    """Call the factory named in ``[model] factory`` (default ``model.py:build``)."""
    if case.model is None:
        raise CaseError(case.root, "the case has no model.py.", "add model.py with a build() factory to enable model checks.")
    path = case.root / case.model.file
    name = f"_workbench_case_model_{abs(hash(str(path)))}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as exc:
            raise CaseError(path, f"importing it failed: {type(exc).__name__}: {exc}", "fix the error in model.py.") from None
        sys.modules[name] = module
    factory = getattr(sys.modules[name], case.model.function, None)
    if not callable(factory):
        raise CaseError(path, f"has no callable '{case.model.function}'.",
                        f'define def {case.model.function}(): ... or set [model] factory = "model.py:NAME".')
    import torch

    model = factory()
    if not isinstance(model, torch.nn.Module):
        raise CaseError(path, f"{case.model.function}() returned {type(model).__name__}, not a torch.nn.Module.", "return the nn.Module.")
    return model.eval()


def load_model(case: Case, snapshot: Snapshot | str) -> torch.nn.Module:
    """The case's model with the weights of ``snapshot`` loaded (strict key match), in eval mode."""
    snap = case.snapshot(snapshot) if isinstance(snapshot, str) else snapshot
    model = build_model(case)
    state = load_state_dict(snap.path)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise SnapshotError(snap.path, "its keys do not match the model built by model.py.",
                            "publish snapshots of the same architecture as model.py builds.",
                            [f"missing: {result.missing_keys[:8]}", f"unexpected: {result.unexpected_keys[:8]}"])
    return model.eval()


def feature_matrix(frame: pl.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    """Rows as the model sees them: float32, features in mapping order, nulls (and NaN) as 0.0."""
    x = frame.select(features).to_numpy().astype(np.float32, copy=False)
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def score(model: torch.nn.Module, x: np.ndarray, output: str = "logit", batch: int = 65_536) -> np.ndarray:
    """Probabilities for the rows ``x`` (float32 ``[n, n_features]``)."""
    import torch

    out = np.empty(len(x), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(x), batch):
            y = model(torch.from_numpy(np.ascontiguousarray(x[start:start + batch]))).reshape(-1).double()
            out[start:start + batch] = (torch.sigmoid(y) if output == "logit" else y).numpy()
    return out
