"""The guardrail before serving: score a snapshot on holdout data and gate it against the stable one.

:func:`validate_snapshot` re-scores a labelled holdout with the candidate snapshot
and with a reference (by default the stable snapshot) and compares them on the
same rows. Each gate is *relative to the reference* and its tolerance comes from
the sampling noise of the metric on this holdout and the spread of benign
refreshes, never from a fixed number:

- **NaN/Inf**: the candidate outputs a non-finite prediction where the reference
  does not. No tolerance: a NaN served is a bug.
- **NE** (normalized entropy, He et al. 2014, *Practical Lessons from Predicting
  Clicks on Ads at Facebook*: mean log loss divided by the entropy of the
  holdout's base rate): fails when the candidate is worse by more than
  ``Z * SE(NE)``, the NE's own bootstrap standard error on this holdout (a
  degradation smaller than that could not even be seen by monitoring on a sample of
  this size), *and* the paired bootstrap of the difference says it is real
  (``delta > Z * SE(delta)``).
- **AUC**: fails when the candidate's AUC is lower by more than ``Z`` times the
  Hanley & McNeil (1982) standard error of the reference's AUC.
- **Calibration**: the calibration ratio is mean prediction / mean label; fails when
  the candidate's is worse than the reference's by more than ``Z`` times the bootstrap
  SE of ``ln ratio``. Worse is the monitors' definition
  (:func:`workbench.data.onset.worsening`): further from 1 on the log scale, and a
  move across 1 that does not end closer to it counts whole (the labels are the
  same rows', so the predictions made it): 1.06 -> 0.93 is 0.13 worse, where the
  distance from 1 alone read 0.014 worse, within a tolerance of 0.016. Benign refreshes
  that wobble across 1 count whole too, so a reference near 1 gets the tolerance of
  their moves' size: on the sample ``control``'s candidate 0.42 in log units (0.13
  with the distance alone, which took a refresh from 0.976 to 1.025 for no change).

``Z = 3.5``, the one-sided normal tail of 2.3e-4 used across the model-side checks
(:data:`workbench.model.diff.Z_GATE`). Benign refreshes also move these metrics
(a fine-tune on the last 12 hours shifts calibration with the time-of-day mix), so
when at least :data:`~workbench.model.diff.MIN_REFERENCE` other snapshots were
published before the candidate, each tolerance becomes
``sqrt((Z * SE)^2 + (t * sqrt(1 + 1/n) * s)^2)``, where ``s = 1.4826 * median
|m_s - m_ref|`` over those ``n`` snapshots scored on the same rows (the typical
benign distance from the reference, robust to a few bad ones; for calibration the
median size of their worsening as the candidate's is read, which is the size of their
move unless it crossed 1 to end closer to it) and ``t`` the
Student-t quantile with ``n - 1`` degrees of freedom at the same tail: a prediction
interval for one more benign refresh when the spread itself is estimated from few.
The prediction distribution (mean and quantiles) is reported, not gated.

The holdout defaults to labelled served rows published before the candidate
(what the candidate could not have been tuned on *after* publishing), up to
``sample`` rows drawn uniformly; with too few of them, ``training.parquet``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench.data.onset import worsening
from workbench.errors import CaseError, NotEnoughData, WorkbenchError
from workbench.metrics import CLIP, auc, auc_se, entropy, normalized_entropy, row_log_loss
from workbench.model._shared import MAD_TO_SD, MIN_REFERENCE, TAIL, Z_GATE, fmt, records, threads_for

if TYPE_CHECKING:
    from workbench.case.loader import Case

__all__ = ["GATES", "Validation", "default_holdout", "sample_rows", "validate_snapshot"]

Z = Z_GATE
BOOTSTRAP = 200  # Poisson bootstrap resamples: SE to ~5% relative precision
MIN_ROWS, MIN_CLASS = 1_000, 30  # below this the NE and AUC standard errors are not trustworthy
CLASS_ROWS = 1_000  # rows of the rarer class a holdout is sized to hold (holdout_size)
MAX_HOLDOUT = 400_000  # ... up to this many rows: each snapshot of the history is scored on all of them
GATES = (f"relative to the reference snapshot on the same holdout rows; tolerance = sqrt(({Z} x sampling SE)^2 + (t x benign "
         "refresh spread)^2), t the Student-t(n-1) quantile at the same tail for n earlier snapshots. NaN/Inf: none where the "
         "reference has none. NE: worse by more than the tolerance (bootstrap SE) and significant by a paired bootstrap. "
         "AUC: lower by more than the tolerance (Hanley-McNeil SE). Calibration (ratio mean p / mean y): worse by more than the "
         "tolerance (bootstrap SE of its log), worse meaning further from 1 on the log scale, a move across 1 that does not "
         "end closer to it counting whole.")


# ---------------------------------------------------------------- metrics
def _bootstrap(y: np.ndarray, p_ref: np.ndarray, p_cand: np.ndarray, seed: int) -> dict[str, float]:
    """Poisson-bootstrap SEs: NE of the reference, paired NE difference, ln calibration ratio of the reference."""
    rng = np.random.default_rng(seed)
    ll_r, ll_c = row_log_loss(p_ref, y), row_log_loss(p_cand, y)
    ne_r, d_ne, lcal = [], [], []
    batch = max(1, min(50, 2_500_000 // max(len(y), 1)))  # resamples at a time: ~10 MB of weights at any holdout size
    for start in range(0, BOOTSTRAP, batch):
        w = rng.poisson(1.0, size=(min(batch, BOOTSTRAP - start), len(y))).astype(np.float32)
        tot = w.sum(1)
        rate = (w @ y) / tot
        h = entropy(rate)
        r = (w @ ll_r) / tot / h
        c = (w @ ll_c) / tot / h
        ne_r.append(r)
        d_ne.append(c - r)
        lcal.append(np.log((w @ p_ref) / np.maximum(w @ y, CLIP)))
    return {"ne": float(np.std(np.concatenate(ne_r), ddof=1)), "delta_ne": float(np.std(np.concatenate(d_ne), ddof=1)),
            "log_cal": float(np.std(np.concatenate(lcal), ddof=1))}


# ---------------------------------------------------------------- holdout
def sample_rows(lf: pl.LazyFrame, n: int, *, seed: int = 0) -> tuple[pl.DataFrame, int]:
    """Up to ``n`` rows drawn uniformly from ``lf`` without collecting all of it, and how many rows it held.

    A first pass counts the rows; when there are more than ``2n``, a hash of each
    row keeps about ``2n`` of them while streaming, and ``n`` are drawn from those. A served
    row is hashed by its timestamp and prediction (two rows tie only when one impression was
    logged twice), other rows by all their values: on a log with 1,000 features, hashing
    two columns instead of all of them halved the time of a window's sample.
    """
    from workbench.case.columns import PREDICTION, TS

    total = int(lf.select(pl.len()).collect().item())
    if total > 2 * n:
        cut = int(2 * n / total * (2**64 - 1))
        key = pl.struct(TS, PREDICTION) if {TS, PREDICTION} <= set(lf.collect_schema().names()) else pl.struct(pl.all())
        lf = lf.filter(key.hash(seed) < cut)
    frame = lf.collect()
    return (frame.sample(n, seed=seed) if frame.height > n else frame), total


def holdout_size(case: Case, before: datetime, sample: int = 50_000) -> int:
    """Rows enough for the rarer class to hold ``CLASS_ROWS`` (by the log's labelled rows before ``before``), at least
    ``sample`` and at most ``MAX_HOLDOUT``: the calibration gate's error is about ``1 / sqrt(positives)``, so 50,000
    rows at a 0.2 % click rate held 100 clicks, a tolerance of 0.35 in log units, and a snapshot that served
    predictions 1.4 times too high (0.34) passed (outside test 7, ``i04``); 1,000 clicks put it near 0.11."""
    head = case.profile.filter(pl.col("period") < pl.lit(before))
    return _sized(float(head["labeled"].sum()), float(head["positives"].sum()), sample, len(case.features))


def _sized(labeled: float, positives: float, sample: int, features: int) -> int:
    """:func:`holdout_size` from the labelled rows and clicks it is judged on; capped, like every row sample, at
    ``SAMPLE_CELLS`` values (a 400,000-row holdout of 1,000 features would hold 1.6 GB of floats)."""
    from workbench.data.scan import SAMPLE_CELLS

    if labeled <= 0:
        return sample
    rarer = min(positives, labeled - positives) / labeled
    wanted = min(MAX_HOLDOUT, max(sample, math.ceil(CLASS_ROWS / max(rarer, 1e-9))))
    return int(max(sample, min(wanted, SAMPLE_CELLS // (features + 1))))


def default_holdout(case: Case, before: datetime, *, sample: int = 50_000, seed: int = 0) -> tuple[pl.DataFrame, str]:
    """Labelled rows for validation: served rows before ``before``, else ``training.parquet``.

    Returns up to ``sample`` rows (feature columns and ``label``), or more where the rarer class is rare
    (:func:`holdout_size`), and a sentence saying where they came from.
    """
    from workbench.case.columns import LABEL, TS

    sample = holdout_size(case, before, sample)
    cols = [*case.features, LABEL]
    served, total = sample_rows(case.predictions.filter((pl.col(TS) < pl.lit(before)) & pl.col(LABEL).is_not_null())
                                .select(cols), sample, seed=seed)
    if _enough(served):
        frame, where = served, f"labelled served rows before {before:%Y-%m-%d %H:%M} UTC"
    elif case.training is not None:
        frame, total = sample_rows(case.training.filter(pl.col(LABEL).is_not_null()).select(cols), sample, seed=seed)
        where = "training.parquet (too few labelled served rows before the candidate was published)"
        if not _enough(frame):
            raise NotEnoughData(case.sources.get("training", case.root), f"too few labelled rows to validate on ({frame.height:,}).",
                            f"validation needs at least {MIN_ROWS:,} labelled rows with {MIN_CLASS} of each class; pass holdout=...")
    else:
        raise NotEnoughData(case.root, f"too few labelled served rows before {before:%Y-%m-%d %H:%M} UTC ({served.height:,}) "
                        "and no training.parquet to validate on.",
                        "add training.parquet (a labelled sample of training rows), or pass holdout=... explicitly.")
    return frame, f"{where}: {frame.height:,} of {total:,} rows"


def _enough(frame: pl.DataFrame) -> bool:
    from workbench.case.columns import LABEL

    if frame.height < MIN_ROWS:
        return False
    pos = int(frame[LABEL].sum())
    return pos >= MIN_CLASS and frame.height - pos >= MIN_CLASS


# ---------------------------------------------------------------- the verdict
@dataclass(frozen=True, slots=True)
class Validation:
    """A snapshot's verdict against a reference on one holdout.

    ``metrics``: one row per metric (nan_rate, ne, auc, calibration_ratio,
    prediction_mean, prediction_p10/p50/p90) with ``candidate``, ``reference``,
    ``delta``, ``tolerance`` and ``passed`` (null for metrics that are reported only).
    ``reasons``: one plain sentence per gate, failures first.
    """

    snapshot_id: str
    reference_id: str
    passed: bool
    metrics: pl.DataFrame
    reasons: tuple[str, ...]
    holdout: str
    rows: int
    gates: str = GATES

    def to_dict(self) -> dict:
        return {"snapshot_id": self.snapshot_id, "reference_id": self.reference_id, "passed": self.passed,
                "reasons": list(self.reasons), "holdout": self.holdout, "rows": self.rows, "gates": self.gates,
                "metrics": records(self.metrics)}

    def __str__(self) -> str:
        lines = [f"snapshot {self.snapshot_id}: {'PASS' if self.passed else 'FAIL'} against {self.reference_id}",
                 f"  holdout: {self.holdout}"]
        lines += [f"  - {r}" for r in self.reasons]
        lines.append(f"  {'metric':<18} {'candidate':>10} {'reference':>10} {'delta':>10} {'tolerance':>10}")
        for r in self.metrics.iter_rows(named=True):
            verdict = "" if r["passed"] is None else ("ok" if r["passed"] else "FAIL")
            lines.append(f"  {r['metric']:<18} {fmt(r['candidate'], '.4g'):>10} {fmt(r['reference'], '.4g'):>10} "
                         f"{fmt(r['delta'], '+.3g'):>10} {fmt(r['tolerance'], '.3g'):>10} {verdict}")
        return "\n".join(lines)


def _reference_for(case: Case, candidate: str) -> str:
    """The latest snapshot marked stable published at or before the candidate, else the first snapshot."""
    snap = case.snapshot(candidate)
    stable = [s for s in case.snapshots if s.stable and s.published_at <= snap.published_at]
    if stable:
        return stable[-1].snapshot_id
    return case.snapshots[0].snapshot_id


def _check_holdout(case: Case, holdout: pl.DataFrame) -> pl.DataFrame:
    from workbench.case.columns import LABEL

    if LABEL not in holdout.columns and case.columns.label in holdout.columns:
        holdout = holdout.rename({case.columns.label: LABEL})
    missing = [c for c in (*case.features, LABEL) if c not in holdout.columns]
    if missing:
        raise WorkbenchError("holdout", f"missing column(s) {missing}.",
                             f"pass the case's feature columns and '{LABEL}' (0/1), e.g. case.predictions.select(...).collect().",
                             [f"available: {holdout.columns[:12]}"])
    holdout = holdout.filter(pl.col(LABEL).is_not_null())
    if not _enough(holdout):
        raise WorkbenchError("holdout", f"too few labelled rows ({holdout.height:,}).",
                             f"validation needs at least {MIN_ROWS:,} labelled rows with {MIN_CLASS} of each class.")
    return holdout


def validate_snapshot(case: Case, snapshot_id: str, *, holdout: pl.DataFrame | None = None, reference: str | None = None,
                      sample: int = 50_000, seed: int = 0) -> Validation:
    """Score ``snapshot_id`` and ``reference`` (default: the stable snapshot) on a holdout; pass or fail with reasons.

    >>> from workbench import open_case
    >>> case = open_case("sample_data/cases/snapshot_bad_data")  # ctr-20261120-1209 was tuned on bad data
    >>> validate_snapshot(case, "ctr-20261120-1209").passed, validate_snapshot(case, "ctr-20261120-0613").passed
    (False, True)
    """
    from workbench.case.columns import LABEL
    from workbench.model.load import feature_matrix, load_model, score

    if case.model is None:
        raise CaseError(case.root, "validation re-scores rows with the snapshot, but the case has no model.py.",
                        "add model.py with a build() factory returning the architecture of the snapshots.")
    cand = case.snapshot(snapshot_id)
    ref_id = case.snapshot(reference).snapshot_id if reference else _reference_for(case, cand.snapshot_id)
    if holdout is None:
        holdout, where = default_holdout(case, cand.published_at, sample=sample, seed=seed)
    else:
        holdout = _check_holdout(case, holdout)
        total = holdout.height
        sample = _sized(float(total), float(holdout[LABEL].sum()), sample, len(case.features))  # as the default's
        if total > sample:
            holdout = holdout.sample(sample, seed=seed)
        where = f"given holdout: {holdout.height:,} of {total:,} labelled rows"
    x = feature_matrix(holdout, case.features)
    y = holdout[LABEL].to_numpy().astype(np.float64)
    output = case.model.output

    def scored(sid: str) -> np.ndarray:
        model = load_model(case, sid)
        with threads_for(model):
            return score(model, x, output)

    p_c = scored(cand.snapshot_id)
    p_r = p_c if ref_id == cand.snapshot_id else scored(ref_id)
    # The benign refresh spread: other snapshots published before the candidate, on the same rows.
    history = [s.snapshot_id for s in case.snapshots
               if s.published_at < cand.published_at and s.snapshot_id not in (ref_id, cand.snapshot_id)]
    others = [scored(sid) for sid in history] if len(history) >= MIN_REFERENCE else []
    return _verdict(cand.snapshot_id, ref_id, y, p_r, p_c, where, seed, others)


def _calibration_worse(p: np.ndarray, p_r: np.ndarray, y: np.ndarray) -> float:
    """How much worse the calibration ratio of predictions ``p`` is than the reference's ``p_r`` on the same rows and
    labels, on the log scale (:func:`workbench.data.onset.worsening`, the one definition the monitors use). The
    labels are the same, so the predictions made the whole move: one that crosses 1 without ending closer to it
    counts whole (1.06 -> 0.93 is 0.13 worse, not the 0.014 of the distance from 1), otherwise it is the change in
    distance from 1."""
    level = math.log(p_r.mean() / y.mean())
    shift = math.log(p.mean() / p_r.mean())
    return worsening("calibration_ratio", level, shift, moved=shift)


def _spread(y: np.ndarray, p_r: np.ndarray, others: list[np.ndarray]) -> dict[str, float]:
    """The benign refresh spread per gated metric, as a tolerance term: 1.4826 x median |metric(other) -
    metric(reference)| (calibration: |:func:`_calibration_worse`|, the candidate's reading), times the Student-t(n-1)
    quantile at the gate's tail and sqrt(1 + 1/n) (a prediction interval for one new snapshot from n earlier ones,
    whose spread is itself estimated)."""
    if not others:
        return {"ne": 0.0, "auc": 0.0, "log_cal": 0.0}
    ne_r, auc_r = normalized_entropy(p_r, y), auc(p_r, y)
    ok = [p for p in others if np.isfinite(p).all()]
    if len(ok) < MIN_REFERENCE:
        return {"ne": 0.0, "auc": 0.0, "log_cal": 0.0}
    d_ne = [normalized_entropy(p, y) - ne_r for p in ok]
    d_auc = [auc(p, y) - auc_r for p in ok]
    d_cal = [_calibration_worse(p, p_r, y) for p in ok]
    from scipy.special import stdtrit

    t = float(stdtrit(len(ok) - 1, 1.0 - TAIL)) * math.sqrt(1 + 1 / len(ok))
    return {k: t * MAD_TO_SD * float(np.median(np.abs(v))) for k, v in (("ne", d_ne), ("auc", d_auc), ("log_cal", d_cal))}


def _verdict(cand_id: str, ref_id: str, y: np.ndarray, p_r: np.ndarray, p_c: np.ndarray, where: str, seed: int,
             others: Sequence[np.ndarray] = ()) -> Validation:
    bad_c, bad_r = ~np.isfinite(p_c), ~np.isfinite(p_r)
    fails: list[str] = []
    passes: list[str] = []
    rows: list[tuple[str, float, float, float, float | None, bool | None]] = []  # METRIC_SCHEMA; no tolerance or gate for quantiles
    nan_c, nan_r = float(bad_c.mean()), float(bad_r.mean())
    nan_ok = not (bad_c & ~bad_r).any()
    rows.append(("nan_rate", nan_c, nan_r, nan_c - nan_r, 0.0, nan_ok))
    (passes if nan_ok else fails).append(
        "no NaN/Inf predictions" if nan_ok and not bad_c.any() else
        f"{int(bad_c.sum()):,} of {len(y):,} predictions are NaN/Inf ({nan_c:.1%}) where the reference's are finite")
    keep = ~(bad_c | bad_r)
    y, p_r, p_c = y[keep], p_r[keep], p_c[keep]
    if len(y) < MIN_ROWS or y.sum() < MIN_CLASS or len(y) - y.sum() < MIN_CLASS:
        fails.append("too few finite predictions left to measure NE, AUC or calibration")
        return Validation(cand_id, ref_id, False, pl.DataFrame(rows, schema=METRIC_SCHEMA, orient="row"), tuple(fails + passes),
                          where, len(keep))
    se = _bootstrap(y, p_r, p_c, seed)
    spread = _spread(y, p_r, [p[keep] for p in others])
    noise = (f"sampling SE and the refresh spread of {len(others)} earlier snapshots" if others else
             f"{Z} x SE; fewer than {MIN_REFERENCE} earlier snapshots to learn refresh spread from")
    ne_c, ne_r = normalized_entropy(p_c, y), normalized_entropy(p_r, y)
    d = ne_c - ne_r
    tol = math.hypot(Z * se["ne"], spread["ne"])
    ne_ok = not (d > tol and d > Z * se["delta_ne"])
    rows.append(("ne", ne_c, ne_r, d, tol, ne_ok))
    (passes if ne_ok else fails).append(
        f"NE {ne_c:.4f} vs {ne_r:.4f}: {'worse' if d > 0 else 'better'} by {abs(d):.4f}, "
        f"{'beyond' if not ne_ok else 'within'} the tolerance {tol:.4f} ({noise}; bootstrap over {len(y):,} rows)")
    n1 = int(y.sum())
    a_c, a_r = auc(p_c, y), auc(p_r, y)
    tol_a = math.hypot(Z * auc_se(a_r, n1, len(y) - n1), spread["auc"])
    auc_ok = not (a_r - a_c > tol_a)
    rows.append(("auc", a_c, a_r, a_c - a_r, tol_a, auc_ok))
    (passes if auc_ok else fails).append(
        f"AUC {a_c:.4f} vs {a_r:.4f}: {'lower' if a_c < a_r else 'higher'} by {abs(a_c - a_r):.4f}, "
        f"{'beyond' if not auc_ok else 'within'} the tolerance {tol_a:.4f} ({noise}, Hanley-McNeil SE)")
    cal_c, cal_r = float(p_c.mean() / y.mean()), float(p_r.mean() / y.mean())
    tol_c = math.hypot(Z * se["log_cal"], spread["log_cal"])
    worse = _calibration_worse(p_c, p_r, y)
    cal_ok = not (worse > tol_c)
    rows.append(("calibration_ratio", cal_c, cal_r, worse, tol_c, cal_ok))  # delta: the worsening, in its tolerance's log units
    (passes if cal_ok else fails).append(
        f"calibration ratio {cal_c:.3f} vs {cal_r:.3f} (mean prediction / mean label): {'worse' if worse > 0 else 'better'} "
        f"by {abs(worse):.3f} in log units, {'beyond' if not cal_ok else 'within'} the tolerance of {tol_c:.3f} ({noise})")
    for name, fn in (("prediction_mean", np.mean), ("prediction_p10", lambda v: np.quantile(v, 0.1)),
                     ("prediction_p50", np.median), ("prediction_p90", lambda v: np.quantile(v, 0.9))):
        c, r = float(fn(p_c)), float(fn(p_r))
        rows.append((name, c, r, c - r, None, None))
    if cand_id == ref_id:
        passes.insert(0, "the candidate is the reference snapshot: only the NaN/Inf gate can fail")
    metrics = pl.DataFrame(rows, schema=METRIC_SCHEMA, orient="row")
    return Validation(cand_id, ref_id, not fails, metrics, tuple(fails + passes), where, len(keep))


#: One row per measure: ``delta`` is candidate - reference, except the calibration ratio's, which is how much worse
#: it is in log units (:func:`_calibration_worse`), the units of its ``tolerance``; ``passed`` is null for a measure
#: that is shown but not gated.
METRIC_SCHEMA = {"metric": pl.String, "candidate": pl.Float64, "reference": pl.Float64, "delta": pl.Float64,
                 "tolerance": pl.Float64, "passed": pl.Boolean}
