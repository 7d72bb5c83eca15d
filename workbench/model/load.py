"""Build the case's model from ``model.py`` and score feature rows with a snapshot.

``model.py`` is code the case author wrote (like a notebook), so it is imported;
snapshots are data and are never executed (see :mod:`workbench.case.snapshots`).

Whether the model can be used at all is decided once per opened case by
:func:`model_problem`: it builds the model, loads the newest (and the stable)
snapshot into it and runs a two-row forward pass. A factory that raises, a
``model.py`` that fails to import, a factory that returns something other than an
``nn.Module``, parameters that do not match the snapshots, or a forward that cannot
take the case's feature rows all come back as one line naming ``model.py`` and the
exception. That line is the reason the model checks give for being skipped (the
``model`` requirement in :meth:`workbench.rca.context.Context.missing`): it is the
user's input, not a workbench bug. A host that must not execute a case's code (a
served workbench, see ``workbench_widgets.serve``) calls :func:`forbid_model_code`
first; then ``model.py`` is never imported and its reason is given instead.
"""

from __future__ import annotations

import importlib.util
import sys
import weakref
from typing import TYPE_CHECKING

import numpy as np

from workbench.case.snapshots import Snapshot, load_state_dict
from workbench.errors import CaseError, SnapshotError, WorkbenchError

if TYPE_CHECKING:
    import polars as pl
    import torch

    from workbench.case.loader import Case

__all__ = ["build_model", "feature_matrix", "forbid_model_code", "load_model", "model_problem", "score"]

# Per opened case (by identity; an entry is dropped when its case is garbage-collected): why its model cannot
# be used (None: it can), and the cases whose model.py must never run. A Case is frozen and holds tables, so it
# is neither hashable nor the place for this; two sessions never share a Case, so they never share an entry.
_PROBLEMS: dict[int, str | None] = {}
_FORBIDDEN: dict[int, str] = {}


def _forget_when_freed(case: Case) -> None:
    key = id(case)
    if key not in _PROBLEMS and key not in _FORBIDDEN:
        weakref.finalize(case, _forget, key)


def _forget(key: int) -> None:
    _PROBLEMS.pop(key, None)
    _FORBIDDEN.pop(key, None)


def forbid_model_code(case: Case, reason: str) -> None:
    """Never import ``case``'s ``model.py``: :func:`build_model` raises and :func:`model_problem` returns ``reason``.

    For hosts that open cases from people they do not trust with code execution (a
    served workbench whose operator did not allow model code under the case's root).
    The model checks are then skipped with ``reason``; model-free checks still run.
    """
    _forget_when_freed(case)
    _FORBIDDEN[id(case)] = reason
    _PROBLEMS[id(case)] = reason


def build_model(case: Case) -> torch.nn.Module:
    """Call the factory named in ``[model] factory`` (default ``model.py:build``): a fresh model in eval mode.

    Every way it can fail raises a :class:`~workbench.errors.CaseError` naming ``model.py``
    and the function: the file fails to import, the function is missing, it raises, or it
    returns something other than a ``torch.nn.Module``.
    """
    if case.model is None:
        raise CaseError(case.root, "the case has no model.py.", "add model.py with a build() factory to enable model checks.")
    path = case.root / case.model.file
    if id(case) in _FORBIDDEN:
        raise CaseError(path, f"not run: {_FORBIDDEN[id(case)]}", "run the workbench yourself to use the model checks.")
    name = f"_workbench_case_model_{abs(hash(str(path)))}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:  # a factory file without a .py suffix
            raise CaseError(path, "cannot be imported as a Python module.", 'name it with a .py suffix: [model] factory = "model.py:build"')
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # user code: a failed import, a syntax error, even sys.exit()
            raise CaseError(path, f"importing it failed: {_one_line(exc)}", f"fix the error in {case.model.file}.") from None
        sys.modules[name] = module
    function = case.model.function
    factory = getattr(sys.modules[name], function, None)
    if not callable(factory):
        raise CaseError(path, f"has no callable '{function}'.",
                        f'define def {function}(): ... or set [model] factory = "{case.model.file}:NAME".')
    import torch

    try:
        model = factory()
    except (Exception, SystemExit) as exc:
        raise CaseError(path, f"{function}() raised {_one_line(exc)}", f"fix {function}() in {case.model.file}.") from None
    if not isinstance(model, torch.nn.Module):
        raise CaseError(path, f"{function}() returned {type(model).__name__}, not a torch.nn.Module.", "return the nn.Module.")
    return model.eval()


def load_model(case: Case, snapshot: Snapshot | str) -> torch.nn.Module:
    """The case's model with the weights of ``snapshot`` loaded (strict key match), in eval mode."""
    snap = case.snapshot(snapshot) if isinstance(snapshot, str) else snapshot
    model = build_model(case)
    state = load_state_dict(snap.path)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same names, other shapes
        raise SnapshotError(snap.path, "its tensors do not fit the model built by model.py.",
                            "publish snapshots of the same architecture as model.py builds.",
                            [line.strip() for line in str(exc).splitlines()[1:4]]) from None
    if result.missing_keys or result.unexpected_keys:
        raise SnapshotError(snap.path, "its keys do not match the model built by model.py.",
                            "publish snapshots of the same architecture as model.py builds.",
                            [f"missing: {result.missing_keys[:8]}", f"unexpected: {result.unexpected_keys[:8]}"])
    return model.eval()


def model_problem(case: Case) -> str | None:
    """Why the case's model cannot be used, in one line naming ``model.py``; None when it can.

    Decided once per opened case: build the model, load the newest snapshot (and the
    stable one) into it, and score two rows of zeros, which must give two outputs
    (``[n]`` or ``[n, 1]``). A case without ``model.py`` has the problem that it has none.
    """
    key = id(case)
    if key not in _PROBLEMS:
        problem = _try_model(case)
        _forget_when_freed(case)
        _PROBLEMS[key] = problem
    return _PROBLEMS[key]


def _try_model(case: Case) -> str | None:
    if case.model is None:
        return "the case has no model.py (or [model] factory)"
    file, function, n = case.model.file, case.model.function, len(case.features)
    try:
        build_model(case)  # the import and the factory, with their own messages
        snaps = sorted(case.snapshots, key=lambda s: s.published_at)
        tried = [*snaps[-1:], *(s for s in snaps if s.stable and s is not snaps[-1])][:2]
        model = None
        for snap in tried:
            model = load_model(case, snap)
        model = model if model is not None else build_model(case)
        if n:
            import torch

            with torch.inference_mode():
                out = model(torch.zeros(2, n))
            if not isinstance(out, torch.Tensor) or out.numel() != 2:
                what = f"a tensor of shape {list(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
                return (f"{file}: the model {function}() builds returns {what} for 2 rows of {n} features, "
                        "expected [2] or [2, 1] (fix its forward)")
    except WorkbenchError as exc:
        return _reason(exc, case)
    except Exception as exc:  # the forward pass is user code too
        return f"{file}: the model {function}() builds fails on 2 rows of {n} features: {_one_line(exc)}"
    return None


def _reason(exc: WorkbenchError, case: Case) -> str:
    """A CaseError as one line, its source shown relative to the case."""
    source = exc.source
    root = str(case.root)
    if source.startswith(root):
        source = source[len(root):].lstrip("/\\") or source
    details = f" ({'; '.join(exc.details)})" if exc.details else ""
    return f"{source}: {exc.fact.rstrip('.')}{details}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


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
