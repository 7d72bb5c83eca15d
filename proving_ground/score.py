"""Scoring one diagnosis (the JSON contract of ``workbench diagnose --json``) against a case's truth.

The rules, so that every figure in a report means one thing:

* **detected** (incident cases that are not too sparse): ``anomaly.detected`` is true.
* **false alarm** (controls): ``anomaly.detected`` is true *or* any root cause is given.
* **sparse handled** (``truth.too_sparse``): the answer did not quietly say "no
  regression": there is a ``skipped`` entry for the check ``prediction_quality`` whose
  reason mentions "sparse", or ``anomaly.grain`` is null and some ``skipped`` entry's reason
  mentions "sparse". Reporting a detected anomaly on such a log is counted apart
  (``sparse_reported_anomaly``).
* **onset error**, in periods of ``anomaly.grain`` ("15m", "1h", "1d", "1w"; 1h when absent):
  answer onset minus the true onset floored to the period (weeks start on Monday),
  signed; also in hours.
* **end error** (truth has an end): answer end minus the true end rounded *up* to the
  period (``anomaly.end`` is the first period after recovery); ``end_found`` false
  when the answer gives no end.
* **cause match**: same ``kind`` and the target equals the true target or one of its
  ``target_equivalents`` (upstream nodes with the same downstream features; the other
  shifted features of a population shift). A ``feature:`` prefix on a feature target
  is tolerated; ``column=value`` is compared without spaces around ``=``.
  ``first``: the top cause matches a true cause. ``top3``: the first three causes
  contain *every* true cause (one for single-cause cases, both for ``multi``).
* **change** (feature causes): the matched answer cause's ``change`` is one the truth
  accepts (``mixed`` accepts coverage or scale); None when no cause matched. An answer
  that names no change counts as wrong (``change_given`` tells the two apart).
* **slice named** (truth has a slice): a top-3 cause has that ``slice``, or is a
  ``slice`` cause with it as target, or ``anomaly.segment`` equals it.
* **confidence**: the top cause's confidence and whether it was right, for a
  reliability table in bands 0-0.1 ... 0.9-1.0; ``causes_right``, whether each listed cause
  names a true cause (all false on a control), which the confidence map is fitted on.
* **mitigation**: the top cause's first mitigation recovers >= 0.5 (``predicted.recovery``)
  and its ``predicted.value`` minus the counterfactual value of the same metric (what
  the model would have scored on the incident window without the incident).
  ``mitigation_ceiling``: the share of the regression the best action could recover on that
  metric (the answer's headline metric when the first action has no prediction), where the
  generator knows the best action: a segment's change alone, corrected exactly in the served
  predictions (``counterfactual.ideal``, :func:`ceiling`). Where it is under one half (a
  segment whose clicks no longer follow the inputs), the one-half bar cannot be met, and
  ``summarize`` counts those cases apart.
* **errors**: entries of ``errors`` (v2), plus ``skipped`` entries whose reason says a
  check failed (how v1 reports a check that raised).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from proving_ground.metrics import CAL_MIN, NE_MIN

_GRAIN = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")


def parse_grain(grain: str | None) -> timedelta:
    """'15m', '1h', '1d', '1w' -> timedelta (1 h when absent or unreadable)."""
    m = _GRAIN.match(grain or "")
    if not m:
        return timedelta(hours=1)
    n, unit = int(m.group(1)), m.group(2)
    return {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n)}[unit]


def _t(s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        d = datetime.fromisoformat(str(s).replace("Z", "+00:00"))
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _floor(t: datetime, g: timedelta) -> datetime:
    if g >= timedelta(weeks=1):
        monday = datetime(1970, 1, 5, tzinfo=UTC)
        k = (t - monday) // g
        return monday + k * g
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((t - epoch) // g) * g


def _ceil(t: datetime, g: timedelta) -> datetime:
    f = _floor(t, g)
    return f if f == t else f + g


def _norm_slice(s: Any) -> str | None:
    if s is None:
        return None
    s = str(s)
    if "=" in s:
        a, b = s.split("=", 1)
        return f"{a.strip()}={b.strip()}"
    return s.strip()


def _norm_target(kind: str, target: Any) -> str | None:
    if target is None:
        return None
    t = str(target)
    if kind == "feature" and t.startswith("feature:"):
        t = t[len("feature:"):]
    if kind == "slice":
        return _norm_slice(t)
    return t


def match(rc: dict, tc: dict) -> bool:
    """Does an answer's root cause name a true cause (kind + target or an equivalent)?"""
    kind = rc.get("kind")
    if kind != tc.get("kind"):
        return False
    got = _norm_target(kind, rc.get("target"))
    want = {_norm_target(kind, t) for t in [tc.get("target"), *tc.get("target_equivalents", [])] if t is not None}
    return got in want


def confidence_band(c: float | None) -> str | None:
    if c is None or not isinstance(c, (int, float)) or math.isnan(c):
        return None
    k = min(9, max(0, math.floor(float(c) * 10)))
    return f"{k / 10:.1f}-{(k + 1) / 10:.1f}"


def load_truth(case_dir: str | Path) -> dict:
    return json.loads((Path(case_dir) / "truth.json").read_text(encoding="utf-8"))


def score(case_dir: str | Path, answer: dict, truth: dict | None = None) -> dict:
    """Per-case outcomes of ``answer`` (the diagnose JSON) on the case at ``case_dir``. See the module doc."""
    truth = truth if truth is not None else load_truth(case_dir)
    a = answer.get("anomaly") or {}
    causes = [c for c in (answer.get("root_causes") or []) if isinstance(c, dict)]
    skipped = [s for s in (answer.get("skipped") or []) if isinstance(s, dict)]
    grain_s = a.get("grain")
    g = parse_grain(grain_s)
    sparse = bool(truth.get("too_sparse"))
    incident = truth.get("kind") not in (None, "none") and not sparse
    control = truth.get("kind") in (None, "none") and not sparse
    detected = bool(a.get("detected"))
    out: dict[str, Any] = {
        "case": str(case_dir), "family": truth["family"], "mode": truth["mode"], "split": truth["split"],
        "seed": truth["seed"], "kind": truth["kind"], "target": truth["target"],
        "magnitude_bucket": truth.get("magnitude_bucket"), "detectable": truth.get("detectable"),
        "too_sparse": sparse, "incident": incident, "control": control, "grain": grain_s or None,
        "answer_detected": detected, "answer_metric": a.get("metric"),
        "top": f"{causes[0].get('kind')}:{causes[0].get('target')}" if causes else None,
        "detected": None, "false_alarm": None, "sparse_handled": None, "sparse_reported_anomaly": None,
        "onset_error_periods": None, "onset_error_hours": None, "end_found": None, "end_error_periods": None,
        "first": None, "top3": None, "change_correct": None, "change_given": None, "slice_named": None,
        "confidence": None, "confidence_band": None,
        "causes_right": [incident and any(match(rc, tc) for tc in (truth.get("causes") or [])) for rc in causes],
        "mitigation_recovers": None, "mitigation_metric": None, "mitigation_value_error": None,
        "mitigation_ceiling": None,
        "errors": len(answer.get("errors") or []),
        "check_failures": sum(1 for s in skipped if "check failed" in str(s.get("reason", "")).lower()),
    }
    if control:
        out["false_alarm"] = bool(detected or causes)
    if sparse:
        reasons_q = [str(s.get("reason", "")).lower() for s in skipped if s.get("check") == "prediction_quality"]
        any_sparse = any("sparse" in str(s.get("reason", "")).lower() for s in skipped)
        out["sparse_handled"] = any("sparse" in r for r in reasons_q) or ("grain" in a and a.get("grain") is None and any_sparse)
        out["sparse_reported_anomaly"] = detected
    if not incident:
        if causes:
            out["confidence"] = causes[0].get("confidence")
            out["confidence_band"] = confidence_band(out["confidence"])
        return out
    out["detected"] = detected
    onset_true = _t(truth.get("onset"))
    onset_ans = _t(a.get("onset"))
    if detected and onset_true and onset_ans:
        ref = _floor(onset_true, g)
        out["onset_error_periods"] = round((onset_ans - ref) / g, 3)
        out["onset_error_hours"] = round((onset_ans - onset_true).total_seconds() / 3600, 3)
    end_true = _t(truth.get("end"))
    if end_true and detected:
        end_ans = _t(a.get("end"))
        out["end_found"] = end_ans is not None
        if end_ans is not None:
            out["end_error_periods"] = round((end_ans - _ceil(end_true, g)) / g, 3)
    true_causes = truth.get("causes") or []
    if true_causes:
        out["first"] = bool(causes) and out["causes_right"][0]
        top3 = causes[:3]
        out["top3"] = all(any(match(rc, tc) for rc in top3) for tc in true_causes)
        with_change = [tc for tc in true_causes if tc.get("change")]
        if with_change:
            got = None
            for rc in top3:
                tc = next((tc for tc in with_change if match(rc, tc)), None)
                if tc is not None:
                    got = rc.get("change") in (tc.get("changes_accepted") or [tc.get("change")])
                    out["change_given"] = rc.get("change") is not None
                    break
            out["change_correct"] = got
    tslice = _norm_slice(truth.get("slice"))
    if tslice:
        named = _norm_slice(a.get("segment")) == tslice
        for rc in causes[:3]:
            if _norm_slice(rc.get("slice")) == tslice or (rc.get("kind") == "slice" and _norm_slice(rc.get("target")) == tslice):
                named = True
        out["slice_named"] = named
    if causes:
        c0 = causes[0]
        out["confidence"] = c0.get("confidence")
        out["confidence_band"] = confidence_band(out["confidence"])
        mits = c0.get("mitigations") or []
        if mits and isinstance(mits[0], dict):
            pred = mits[0].get("predicted") or {}
            rec = pred.get("recovery")
            out["mitigation_recovers"] = bool(isinstance(rec, (int, float)) and rec >= 0.5)
            metric = pred.get("metric")
            clean = ((truth.get("counterfactual") or {}).get("clean") or {})
            out["mitigation_metric"] = metric
            if metric in clean and isinstance(pred.get("value"), (int, float)) and clean[metric] is not None:
                out["mitigation_value_error"] = round(float(pred["value"]) - float(clean[metric]), 6)
        out["mitigation_ceiling"] = ceiling(truth, (out["mitigation_metric"] or a.get("metric")))
    return out


AUC_MIN = 0.01  # an AUC fall that counts as material for a ceiling (NE and calibration: metrics.NE_MIN, CAL_MIN)


def ceiling(truth: dict, metric: str | None) -> float | None:
    """The share of the regression on ``metric`` that the best action could recover (see the module docstring).

    ``counterfactual.ideal`` is the quality of the served predictions corrected by the segment's change exactly
    (a collapse's logit drop; for a segment whose clicks no longer follow the inputs, each prediction mixed with
    the segment's mean in the share of rows swapped, which no row shows): against the baseline before the onset
    and the served window. None where the generator knows no such correction (every cause but a segment's alone),
    or where the move from the baseline to the served window is not material on ``metric`` (NE by ``NE_MIN``
    relative, AUC by ``AUC_MIN``, the calibration ratio ``CAL_MIN`` further from 1 in logs): a ratio over a move
    that small is mostly noise (a segment's collapse the whole traffic barely shows read 8.5 and 0.48), and a
    ceiling under one half must not leave a case out on noise. The calibration ratio's distances from 1 are plain:
    the workbench counts a correction that overshoots past 1 against it, so there a ceiling can sit above what
    the workbench could report."""
    cf = truth.get("counterfactual") or {}
    vals = [d.get(metric) if isinstance(d, dict) and metric else None
            for d in (truth.get("baseline"), cf.get("served"), cf.get("ideal"))]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
        return None
    b, i, after = (float(v) for v in vals)  # type: ignore[arg-type]
    if metric == "calibration_ratio":
        if min(b, i, after) <= 0:
            return None
        b, i, after = abs(math.log(b)), abs(math.log(i)), abs(math.log(after))
    sign = -1.0 if metric == "auc" else 1.0
    regression = (i - b) * sign
    floor = {"normalized_entropy": NE_MIN * b, "auc": AUC_MIN, "calibration_ratio": CAL_MIN}.get(metric or "", math.inf)
    return round((i - after) * sign / regression, 4) if regression >= floor else None


# --------------------------------------------------------------------------- aggregation
def _rate(rows: list[dict], key: str) -> tuple[int, float | None]:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return len(vals), (sum(bool(v) for v in vals) / len(vals) if vals else None)


def summarize(rows: list[dict]) -> dict:
    """Headline figures over scored cases (rates over the cases where each score applies).

    Detection and cause figures count only incidents marked detectable by construction;
    failures (the runner raised) count as missed everywhere they would have applied.
    """
    inc = [r for r in rows if r.get("incident") and r.get("detectable") is not False]
    out: dict[str, Any] = {"cases": len(rows), "failures": sum(1 for r in rows if r.get("failure"))}
    out["incidents"] = len(inc)
    out["detected"] = _rate(inc, "detected")[1]
    for k in ("first", "top3", "change_correct", "slice_named", "end_found", "mitigation_recovers"):
        n, v = _rate(inc, k)
        out[k] = v
        out[f"{k}_n"] = n
    # the cases where some action could recover half (the ceiling allows it, or the truth cannot say)
    possible = [r for r in inc if r.get("mitigation_recovers") is not None and not (
        isinstance(r.get("mitigation_ceiling"), (int, float)) and r["mitigation_ceiling"] < 0.5)]
    out["mitigation_possible_n"], out["mitigation_recovers_possible"] = _rate(possible, "mitigation_recovers")
    ctl = [r for r in rows if r.get("control")]
    out["controls"] = len(ctl)
    out["false_alarm"] = _rate(ctl, "false_alarm")[1]
    sp = [r for r in rows if r.get("too_sparse")]
    out["sparse"] = len(sp)
    out["sparse_handled"] = _rate(sp, "sparse_handled")[1]
    errs = [abs(r["onset_error_periods"]) for r in inc if r.get("onset_error_periods") is not None]
    out["onset_abs_error_median"] = statistics.median(errs) if errs else None
    out["onset_within_1"] = (sum(e <= 1 for e in errs) / len(errs)) if errs else None
    ends = [abs(r["end_error_periods"]) for r in inc if r.get("end_error_periods") is not None]
    out["end_abs_error_median"] = statistics.median(ends) if ends else None
    out["errors"] = sum(r.get("errors", 0) + r.get("check_failures", 0) for r in rows)
    return out


def reliability(rows: list[dict]) -> list[dict]:
    """Per confidence band of the top cause (incidents only): how many, the fraction right, the mean confidence stated,
    and the fraction right's exact 95 % interval (Clopper-Pearson). A band of three answers all right at a stated
    0.76 is 24 points off, and its interval, 0.29-1, holds the stated value: a thin band cannot show a confidence
    wrong by 0.1, and the interval says how far it can."""
    from scipy.stats import beta

    bands: dict[str, list[tuple[bool, float]]] = {}
    for r in rows:
        if r.get("incident") and r.get("confidence_band") and r.get("first") is not None:
            bands.setdefault(r["confidence_band"], []).append((bool(r["first"]), float(r["confidence"])))
    out = []
    for b, v in sorted(bands.items()):
        n, k = len(v), sum(right for right, _ in v)
        low = float(beta.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0
        high = float(beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0
        out.append({"band": b, "n": n, "right": k / n, "stated": sum(c for _, c in v) / n, "interval": [low, high]})
    return out
