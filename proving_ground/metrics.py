"""Quality metrics on labelled rows, with their sampling error, for the realized effect of an incident.

Definitions follow the usual CTR conventions (and the workbench contract's names):
normalized entropy NE = mean log loss / entropy of the label rate; calibration ratio =
Σ p / Σ y; AUC by ranks with ties averaged. Written here from the definitions (the
proving ground must not share code with the system it grades).
"""

from __future__ import annotations

import math

import numpy as np


def _ll(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def entropy(rate: float) -> float:
    rate = min(max(rate, 1e-7), 1 - 1e-7)
    return -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))


def auc(p: np.ndarray, y: np.ndarray) -> float:
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    ps = p[order]
    ranks = np.empty(len(p))
    # average ranks over ties
    _, first, counts = np.unique(ps, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def quality(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """NE, calibration ratio and AUC of predictions p on labels y (both float arrays of labelled rows)."""
    n = len(y)
    if n == 0 or y.sum() == 0:
        return {"normalized_entropy": float("nan"), "calibration_ratio": float("nan"), "auc": float("nan"),
                "rows": n, "positives": int(y.sum())}
    h = entropy(float(y.mean()))
    return {"normalized_entropy": float(_ll(p, y).mean() / h), "calibration_ratio": float(p.sum() / y.sum()),
            "auc": auc(p, y), "rows": int(n), "positives": int(y.sum())}


def effect(p_served: np.ndarray, y_served: np.ndarray, p_clean: np.ndarray, y_clean: np.ndarray,
           before: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float]:
    """How the served quality differs from the counterfactual on the same window, in sampling errors.

    ``z_ne`` divides the NE change by the standard error of the window's served NE, ``z_cal`` the log calibration
    change by the error of log Σy. The pair is not used for the error: the workbench never sees the counterfactual.
    ``before`` (the served predictions and labels of the labelled rows before the onset) adds the error of the level
    a detector compares the window with, which it can only estimate from those rows: the error of a difference of
    two windows is both windows' errors in quadrature. Without it (version 6 and before) a window with a short
    history counted as detectable at a z no comparison of windows could reach (dev ``feature/mixed/16``: 504
    clicks before the onset, 1,950 in the window, z 10.5 on the window alone, 4.7 against its history).
    """
    qs, qc = quality(p_served, y_served), quality(p_clean, y_clean)
    out = {"served": qs, "clean": qc}
    if not (qs["positives"] and qc["positives"]):
        out.update(ne_rel=0.0, calibration_log=0.0, auc_delta=0.0, z_ne=0.0, z_cal=0.0, z=0.0)
        return out
    se_ne, se_cal = _errors(p_served, y_served, p_clean, y_clean)
    if before is not None:
        if len(before[1]) and before[1].sum() > 0:
            se_ne_before, se_cal_before = _errors(*before, *before)
            se_ne, se_cal = math.hypot(se_ne, se_ne_before), math.hypot(se_cal, se_cal_before)
        else:  # not one click before the onset (a thin segment): no level to compare the window with
            se_ne = se_cal = math.inf
    ne_rel = qs["normalized_entropy"] / qc["normalized_entropy"] - 1
    cal_log = math.log(qs["calibration_ratio"] / qc["calibration_ratio"])
    z_ne = (qs["normalized_entropy"] - qc["normalized_entropy"]) / se_ne
    z_cal = abs(cal_log) / se_cal
    out.update(ne_rel=float(ne_rel), calibration_log=float(cal_log),
               auc_delta=float(qs["auc"] - qc["auc"]) if not (math.isnan(qs["auc"]) or math.isnan(qc["auc"])) else 0.0,
               z_ne=float(z_ne), z_cal=float(z_cal))
    out["z"] = float(max(z_ne if ne_rel >= NE_MIN else 0.0, z_cal if abs(cal_log) >= CAL_MIN else 0.0, 0.0))
    return out


def _errors(p_served: np.ndarray, y_served: np.ndarray, p_clean: np.ndarray, y_clean: np.ndarray) -> tuple[float, float]:
    """The standard errors of a window's served NE (delta method on the row losses) and of its log calibration ratio
    (the binomial error of log Σy, from the clean predictions: what the label count would vary by)."""
    ll = _ll(p_served, y_served)
    h = entropy(float(y_served.mean()))
    se_ne = float(ll.std() / math.sqrt(len(ll)) / h) + 1e-12
    var_y = float((p_clean * (1 - p_clean)).sum())
    return se_ne, math.sqrt(var_y) / max(float(y_clean.sum()), 1.0) + 1e-12


NE_MIN = 0.02     # relative NE change that counts as material
CAL_MIN = 0.10    # |log calibration ratio change| that counts as material
Z_MIN = 6.0       # standard errors of the window against the rows before the onset (both windows' errors)


def detectable(e: dict) -> bool:
    """Material (NE +2 % or calibration ±10 % in log) and at least 6 standard errors (:func:`effect`'s z)."""
    return bool((e["ne_rel"] >= NE_MIN and e["z_ne"] >= Z_MIN) or (abs(e["calibration_log"]) >= CAL_MIN and e["z_cal"] >= Z_MIN))


def strength(e: dict) -> float:
    """Effect size in units of the materiality thresholds (counting only metrics that clear 6 SE)."""
    s = 0.0
    if e["z_ne"] >= Z_MIN:
        s = max(s, e["ne_rel"] / NE_MIN)
    if e["z_cal"] >= Z_MIN:
        s = max(s, abs(e["calibration_log"]) / CAL_MIN)
    return float(s)


def bucket(e: dict) -> str:
    s = strength(e)
    return "small" if s < 2.5 else "medium" if s < 6 else "large"
