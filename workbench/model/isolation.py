"""Rank the features behind a prediction shift and a quality regression between two windows.

:func:`isolate_features` explains the model's logit on rows of the baseline and the
incident window with SHAP values, then measures per feature:

- ``prediction_shift``: mean attribution (incident) - mean attribution (baseline), in
  logits, and its share of the mean logit shift. With one model and one background,
  SHAP additivity makes the shares sum to 1; with two snapshots the change of the
  expected value is reported separately (``model_shift``).
- ``attribution_delta``: the Wasserstein-1 distance between the feature's
  attribution distributions in the two windows (catches a changed spread, not only a
  changed mean).
- ``loss_delta``: the change of the log loss the feature *adds*,
  ``mean[logloss(z) - logloss(z - phi_j)]`` incident minus baseline, in NE units;
  ``loss_share`` is its share of the NE regression (divided by the larger of the
  regression and the sum of the positive deltas, so the shares never add above 1). This is the loss explanation
  Lundberg et al. (2020, *From local explanations to global understanding with
  explainable AI for trees*, Nat. Mach. Intell.) use to monitor deployed models: a
  feature that broke starts adding loss even when its values look plausible.
- ``ne_recovered`` (counterfactual swap): the share of the NE regression recovered
  when the feature's incident values are replaced by values drawn from the baseline
  window in the same slice cell, and the rows re-scored (up to ``SWAP_ROWS`` labelled
  incident rows; the NE difference is paired on the same rows, so few rows suffice).

``score`` is the largest of ``loss_share``, ``ne_recovered`` (divided by the sum of
the positive recoveries when that exceeds 1) and ``drift_share`` (the feature's share
of the summed ``attribution_delta``), clipped to [0, 1]: the share of the change the
feature explains by the strongest of the three readings; features are ranked by it.
Each reading sums to at most 1 over features. Where labels are too few to measure NE,
only ``drift_share`` is used.

**With a model** (``method="model:shap+swap"``) each row is scored by the snapshot that
served it (or by ``snapshot``), SHAP values are interventional, against a background
of baseline rows, estimated by antithetic permutation sampling (Strumbelj & Kononenko
2014; the algorithm of ``shap.PermutationExplainer``) vectorized in torch: every
permutation telescopes from a background row to the explained row, so attributions
add up exactly to ``f(x) - E[f(background)]``. ``shap.DeepExplainer`` is not used: it
propagates DeepLIFT multipliers through modules only, so a model whose forward applies
a non-linearity outside a module (such as the sample model's ``sign * log1p``
input transform) gets attributions that miss additivity by several logits.
**Without a model** (``method="surrogate:treeshap"``, ``model_free=True``) a small
gradient-boosted tree ensemble (sklearn ``HistGradientBoostingRegressor``) is fitted
to the logit of the *logged* prediction on both windows and explained with
``shap.TreeExplainer`` (exact TreeSHAP); its held-out R^2 is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from workbench.errors import CaseError, WorkbenchError
from workbench.metrics import CLIP, entropy, fit_offset, logit, normalized_entropy, row_log_loss_logit, sigmoid
from workbench.model._shared import fmt, records, threads_for
from workbench.model._trees import ensemble_of
from workbench.model.validation import MIN_CLASS, sample_rows
from workbench.windows import Window

if TYPE_CHECKING:
    from workbench.case.loader import Case

__all__ = ["METHODS", "AttributionShift", "FeatureIsolation", "attribution_shift", "decorrelation", "isolate_features",
           "permutation_shap", "rows_for_positives", "rows_per_window"]

METHODS = ("auto", "model", "surrogate")
MODEL_METHOD, SURROGATE_METHOD = "model:shap+swap", "surrogate:treeshap"
SHAP_ROWS = 2_000  # rows per window explained by SHAP
SWAP_ROWS = 10_000  # labelled incident rows re-scored per swapped feature: paired NE differences need few rows
FIT_ROWS = 40_000  # rows the surrogate is fitted on (both windows together)
SPLIT_FEATURES = 200  # features a surrogate split considers at most (sklearn's max_features), see _fit_surrogate
BACKGROUND = 16  # background rows (8 antithetic permutation pairs) per explained row
MIN_LABELED = 500  # labelled rows per window below which NE readings are skipped
WINDOW_ROWS = 20_000  # rows per window the model-side checks read (isolation, the simulated mitigations) ...
WINDOW_VALUES = 10_000_000  # ... up to this many values per window on wide logs (see rows_per_window) ...
WINDOW_MIN_ROWS = 5_000  # ... and never fewer rows than this, ...
WINDOW_POSITIVES = 500  # ... and more, up to WINDOW_VALUES values, until they hold this many positives (rows_for_positives)

Logit = Callable[[np.ndarray], np.ndarray]  # raw feature rows (NaN = null) -> logits
# (incident rows x, their logits z, their row numbers) -> swap(j, values): the logits with column j set to values
Swapper = Callable[[np.ndarray, np.ndarray, np.ndarray], Callable[[int, np.ndarray], np.ndarray]]


# ---------------------------------------------------------------- SHAP by permutation sampling
def permutation_shap(f: Logit, x: np.ndarray, background: np.ndarray, *, seed: int = 0, chunk_rows: int = 200_000,
                     dtype: type = np.float32) -> tuple[np.ndarray, float]:
    """Interventional SHAP values of ``f`` at the rows ``x`` against ``background``; returns (phi, expected value).

    For every explained row and every background row ``b`` one random feature
    order is walked from ``b`` to ``x`` (each background pair shares an order and
    its reverse: antithetic sampling); a feature's attribution is the mean change of
    ``f`` when it switches. The walk telescopes, so ``phi.sum(1) + expected ==
    f(x)`` up to float error, whatever ``f`` is. Inputs are cast to ``dtype``
    (float32, as a torch model sees them).

    >>> w = np.array([1.0, -2.0])
    >>> phi, e = permutation_shap(lambda a: a @ w, np.array([[1.0, 1.0]]), np.zeros((4, 2)))
    >>> phi.round(6).tolist(), e
    ([[1.0, -2.0]], 0.0)
    """
    x = np.asarray(x, dtype)
    bg: np.ndarray = np.asarray(background, dtype)
    n, d = x.shape
    k = len(bg)
    rng = np.random.default_rng(seed)
    expected = float(np.mean(f(bg)))
    phi = np.zeros((n, d))
    per = max(1, chunk_rows // (k * (d + 1)))
    steps = np.arange(d + 1)
    for start in range(0, n, per):
        xs = x[start:start + per]
        m = len(xs)
        half = rng.random((m, (k + 1) // 2, d)).argsort(-1).argsort(-1)  # rank of each feature in a random order
        ranks = np.concatenate([half, d - 1 - half], axis=1)[:, :k]  # antithetic: the reversed order
        on = ranks[:, :, None, :] < steps[None, None, :, None]  # [m, k, d+1, d]: switched to x after t steps
        states = np.where(on, xs[:, None, None, :], bg[None, :, None, :])
        values = np.asarray(f(states.reshape(-1, d)), np.float64).reshape(m, k, d + 1)
        gain = np.take_along_axis(values, ranks + 1, axis=2) - np.take_along_axis(values, ranks, axis=2)
        phi[start:start + m] = gain.mean(1)
    return phi, expected


# ---------------------------------------------------------------- rows and scorers
def _rows(case: Case, window: Window, sample: int, seed: int) -> pl.DataFrame:
    from workbench.case.columns import LABEL, PREDICTION, SNAPSHOT, TS

    frame, _ = sample_rows(case.predictions.filter(window.contains(TS))
                           .select(TS, PREDICTION, LABEL, SNAPSHOT, *case.features, *case.slices), sample, seed=seed)
    if frame.height == 0:
        raise CaseError(case.sources.get("predictions", case.root), f"no served rows in the window {window}.",
                        f"pick windows inside the case's traffic, {case.start:%Y-%m-%d %H:%M} to {case.end:%Y-%m-%d %H:%M} UTC.")
    return frame


def _raw(frame: pl.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    """Feature values with nulls as NaN (each scorer fills them its own way)."""
    return frame.select(pl.col(f).cast(pl.Float64).fill_null(float("nan")) for f in features).to_numpy()


def _model_logit(case: Case, snapshot_id: str, cache: dict) -> Logit:
    import torch

    from workbench.model.load import load_model

    if snapshot_id not in cache:
        cache[snapshot_id] = load_model(case, snapshot_id)
    model = cache[snapshot_id]
    probability = case.model is not None and case.model.output == "probability"

    def f(x: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(np.nan_to_num(np.asarray(x, np.float32), copy=True, nan=0.0, posinf=0.0, neginf=0.0))
        out = np.empty(len(x))
        with torch.inference_mode(), threads_for(model):
            for s in range(0, len(x), 262_144):
                y = model(xt[s:s + 262_144]).reshape(-1).double()
                if probability:
                    y = torch.logit(y.clamp(CLIP, 1 - CLIP))
                out[s:s + 262_144] = y.numpy()
        return out

    return f


def _serving(case: Case, frame: pl.DataFrame, snapshot: str | None) -> np.ndarray:
    """The snapshot id that scores each row: ``snapshot`` if given, else the one that served it."""
    from workbench.case.columns import SNAPSHOT

    if snapshot is not None:
        return np.full(frame.height, case.snapshot(snapshot).snapshot_id, dtype=object)
    first = case.snapshots[0].snapshot_id
    known = {s.snapshot_id for s in case.snapshots}
    ids = frame[SNAPSHOT].fill_null(first).to_numpy().astype(object)
    ids[~np.isin(ids, list(known))] = first
    return ids


def _grouped(fs: dict[str, Logit], groups: np.ndarray, x: np.ndarray) -> np.ndarray:
    out = np.empty(len(x))
    for g in np.unique(groups):
        m = groups == g
        out[m] = fs[g](x[m])
    return out


def _cells(frame: pl.DataFrame, slices: tuple[str, ...]) -> np.ndarray:
    if not slices:
        return np.zeros(frame.height, dtype=object)
    return frame.select(pl.concat_str([pl.col(s).fill_null("∅") for s in slices], separator="|")).to_series().to_numpy()


def _resample_within(cells_to: np.ndarray, cells_from: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each target row, a random source row of the same slice cell (any row when the cell is empty)."""
    idx = rng.integers(0, len(cells_from), size=len(cells_to))
    order = np.argsort(cells_from, kind="stable")
    sorted_cells = cells_from[order]
    uniq, start, count = np.unique(sorted_cells, return_index=True, return_counts=True)
    pos = np.searchsorted(uniq, cells_to)
    pos = np.clip(pos, 0, len(uniq) - 1)
    hit = uniq[pos] == cells_to
    pick = start[pos] + (rng.random(len(cells_to)) * count[pos]).astype(np.int64)
    idx[hit] = order[pick[hit]]
    return idx


# ---------------------------------------------------------------- the readings
def _loss_added(z: np.ndarray, phi: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per feature: mean log loss with its attribution minus without it, over labelled rows."""
    lab = ~np.isnan(y)
    z, phi, y = z[lab, None], phi[lab], y[lab, None]
    if len(y) == 0:
        return np.full(phi.shape[1], np.nan)
    return (row_log_loss_logit(z, y) - row_log_loss_logit(z - phi, y)).mean(0)


def _w1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wasserstein-1 distance per column, from 201 quantiles."""
    q = np.linspace(0, 1, 201)
    return np.abs(np.quantile(a, q, axis=0) - np.quantile(b, q, axis=0)).mean(0)


def _ne(y: np.ndarray, z: np.ndarray) -> float:
    lab = ~np.isnan(y)
    if lab.sum() < MIN_LABELED or y[lab].sum() < MIN_CLASS or lab.sum() - y[lab].sum() < MIN_CLASS:
        return math.nan
    return normalized_entropy(sigmoid(z[lab]), y[lab])


@dataclass(frozen=True, slots=True)
class FeatureIsolation:
    """Features ranked by how much of the change between two windows each explains.

    ``table``: feature, rank, score, prediction_shift (logits), prediction_shift_share,
    attribution_delta (W1, logits), drift_share, loss_delta (NE units), loss_share,
    ne_recovered (share of the NE regression recovered by the swap),
    mean_attribution_baseline / _incident, permutation_loss_baseline / _incident, decorrelated_drop,
    decorrelated_drop_se, decorrelated_floor and decorrelated_reference (see :func:`_permutation_losses`; without
    a model the surrogate is permuted). ``method`` says how attributions were made;
    ``model_free`` is True for the surrogate. ``notes`` says what was skipped and why.
    """

    table: pl.DataFrame
    baseline: Window
    incident: Window
    method: str
    model_free: bool
    snapshot: str | None  # None: each row scored by the snapshot that served it
    rows_baseline: int
    rows_incident: int
    ne_baseline: float | None
    ne_incident: float | None
    prediction_shift: float  # mean logit, incident - baseline, on the explained rows
    model_shift: float  # the part of it from a changed expected value (another snapshot)
    additivity_gap: float  # max |sum(phi) + E - f(x)| over explained rows
    surrogate_r2: float | None
    notes: tuple[str, ...] = ()
    surrogate: Any = field(default=None, repr=False, compare=False)  # the fitted surrogate (model-free), not serialized

    @property
    def top(self) -> str | None:
        return self.table["feature"][0] if self.table.height else None

    def to_dict(self) -> dict:
        return {"method": self.method, "model_free": self.model_free, "snapshot": self.snapshot,
                "baseline": self.baseline.to_dict(), "incident": self.incident.to_dict(),
                "rows_baseline": self.rows_baseline, "rows_incident": self.rows_incident,
                "ne_baseline": _nz(self.ne_baseline), "ne_incident": _nz(self.ne_incident),
                "prediction_shift": _nz(self.prediction_shift), "model_shift": _nz(self.model_shift),
                "additivity_gap": _nz(self.additivity_gap), "surrogate_r2": _nz(self.surrogate_r2),
                "notes": list(self.notes), "table": records(self.table)}

    def __str__(self) -> str:
        how = (f"model-free surrogate (gradient-boosted trees on the logged prediction, R^2 {self.surrogate_r2:.3f}) + TreeSHAP"
               if self.model_free else "the model (SHAP + counterfactual swap)")
        lines = [f"feature isolation, {self.baseline} -> {self.incident}, by {how}",
                 f"  NE {fmt(self.ne_baseline, '.4f')} -> {fmt(self.ne_incident, '.4f')}; mean logit shift "
                 f"{self.prediction_shift:+.3f} ({self.model_shift:+.3f} from the snapshot change)"]
        for r in self.table.head(8).iter_rows(named=True):
            lines.append(f"  {r['rank']:>2}. {r['feature']:<26} explains {r['score']:>4.0%}  loss share {fmt(r['loss_share'], '.0%'):>5}  "
                         f"swap recovers {fmt(r['ne_recovered'], '.0%'):>5}  drift share {fmt(r['drift_share'], '.0%'):>4}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _nz(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def isolate_features(case: Case, baseline: Window, incident: Window, *, snapshot: str | None = None, method: str = "auto",
                     sample: int = WINDOW_ROWS, seed: int = 0,
                     rows: tuple[pl.DataFrame, pl.DataFrame] | None = None,
                     steady: Collection[str] | None = None) -> FeatureIsolation:
    """Rank features by the share of the prediction and NE change between ``baseline`` and ``incident`` each explains.

    ``method``: "auto" (the model when the case has model.py and snapshots, else the
    surrogate), "model" or "surrogate". ``sample`` rows are drawn per window, unless ``rows``
    gives them (baseline, incident: e.g. :meth:`workbench.data.scan.LogScan.window_sample`, no read).
    ``steady`` are the features whose distribution held, when known: only they can have come loose from their
    rows, so only the top ``CANDIDATES`` among them get their decorrelation reading decided on every row.

    >>> from workbench import open_case, Window
    >>> case = open_case("sample_data/cases/feature_scale_bug")  # f_user_ctr_30d scaled x0.01 from 02:00
    >>> iso = isolate_features(case, Window.hours("2026-11-19T02:00Z", 24), Window.hours("2026-11-20T02:00Z", 18))
    >>> iso.top, iso.method
    ('f_user_ctr_30d', 'model:shap+swap')
    """
    if method not in METHODS:
        from workbench.errors import suggest

        close = suggest(method, METHODS)
        raise WorkbenchError("isolate_features", f"unknown method '{method}'.",
                             f"did you mean '{close}'?" if close else f"use one of {list(METHODS)}")
    has_model = case.model is not None and bool(case.snapshots)
    if method == "model" and not has_model:
        raise CaseError(case.root, "method='model' needs model.py and snapshots/index.csv.",
                        "add them, or use method='surrogate' (model-free).")
    if not case.features:
        raise CaseError(case.root, "the case has no feature columns to isolate.",
                        'map them in workbench.toml: [columns] features = ["f_*"]')
    from workbench.model.load import model_problem  # "auto" falls back to the surrogate when model.py cannot be used

    use_model = has_model and (method == "model" or (method == "auto" and model_problem(case) is None))
    from workbench.case.columns import LABEL

    if rows is not None and rows[0].height and rows[1].height:
        base, inc = rows
    else:
        base, inc = _rows(case, baseline, sample, seed), _rows(case, incident, sample, seed + 1)
    xb, xi = _raw(base, case.features), _raw(inc, case.features)
    yb, yi = base[LABEL].to_numpy().astype(np.float64), inc[LABEL].to_numpy().astype(np.float64)
    rng = np.random.default_rng(seed)
    sb = rng.choice(len(xb), size=min(SHAP_ROWS, len(xb)), replace=False)
    si = rng.choice(len(xi), size=min(SHAP_ROWS, len(xi)), replace=False)
    bg = xb[rng.choice(len(xb), size=min(BACKGROUND, len(xb)), replace=False)]
    notes: list[str] = []
    r2 = None
    if use_model:
        cache: dict = {}
        gb, gi = _serving(case, base, snapshot), _serving(case, inc, snapshot)
        fs = {g: _model_logit(case, g, cache) for g in {*gb, *gi}}
        zb, zi = _grouped(fs, gb, xb), _grouped(fs, gi, xi)
        lost = int((~np.isfinite(zb)).sum() + (~np.isfinite(zi)).sum())
        if lost:  # a snapshot with a NaN in its weights: the model cannot say what moved rows it does not score
            notes.append(f"the snapshots that served the windows give no finite prediction on {lost:,} of the "
                         f"{len(zb) + len(zi):,} rows read (non-finite weights), so the features are read model-free")
            use_model = False
    if use_model:
        phi_b, eb = _explain(fs, gb[sb], xb[sb], bg, seed)
        phi_i, ei = _explain(fs, gi[si], xi[si], bg, seed + 1)
        swapper = _column_swapper(lambda x, rows: _grouped(fs, gi[rows], x))

        reference: Logit = fs[_reference_snapshot(gb)]
        reference_swapper = None
    else:
        import shap

        surrogate, r2 = _fit_surrogate(base, inc, xb, xi, seed)
        reference, swapper = _surrogate_scorer(surrogate)
        reference_swapper = swapper
        zb, zi = reference(xb), reference(xi)

        explainer = shap.TreeExplainer(surrogate)
        phi_b = np.asarray(explainer.shap_values(xb[sb], check_additivity=False))
        phi_i = np.asarray(explainer.shap_values(xi[si], check_additivity=False))
        e = float(np.ravel(explainer.expected_value)[0])
        eb, ei = np.full(len(sb), e), np.full(len(si), e)
        notes.append(f"model-free: attributions explain a surrogate of the logged prediction (held-out R^2 {r2:.3f}), "
                     "not the model itself")
    gap = float(max(np.abs(phi_b.sum(1) + eb - zb[sb]).max(), np.abs(phi_i.sum(1) + ei - zi[si]).max()))
    table, ne_b, ne_i = _readings(case, base, inc, xb, xi, yb, yi, zb, zi, sb, si, phi_b, phi_i, swapper, rng, notes)
    # whether values still belong to their rows: with the model, or without one with the surrogate standing in for it
    candidates = [f for f in table["feature"].head(CANDIDATES).to_list() if steady is None or f in steady]
    table = table.join(_permutation_losses(xb, xi, yb, yi, reference, case.features, rng, candidates,
                                           swapper=reference_swapper, logits=None if use_model else (zb, zi)),
                       on="feature", how="left")
    shift = float(zi[si].mean() - zb[sb].mean())
    return FeatureIsolation(table=table, baseline=baseline, incident=incident,
                            method=MODEL_METHOD if use_model else SURROGATE_METHOD, model_free=not use_model,
                            snapshot=case.snapshot(snapshot).snapshot_id if (snapshot and use_model) else None,
                            rows_baseline=len(xb), rows_incident=len(xi), ne_baseline=ne_b, ne_incident=ne_i,
                            prediction_shift=shift, model_shift=float(ei.mean() - eb.mean()), additivity_gap=gap,
                            surrogate_r2=r2, notes=tuple(notes), surrogate=None if use_model else surrogate)


def _explain(fs: dict[str, Logit], groups: np.ndarray, x: np.ndarray, bg: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """SHAP values per row with the row's own model; the expected value per row."""
    phi, expected = np.zeros_like(x), np.zeros(len(x))
    for g in np.unique(groups):
        m = groups == g
        phi[m], expected[m] = permutation_shap(fs[g], x[m], bg, seed=seed)
    return phi, expected


def rows_per_window(columns: int) -> int:
    """Rows per window the model-side checks read on a log of ``columns`` columns: ``WINDOW_ROWS`` up to 500 columns,
    then ``WINDOW_VALUES`` values (10k rows at 1,000 columns), at least ``WINDOW_MIN_ROWS``.

    Their cost is rows x features (the surrogate fit, SHAP, one swap per feature), so a fixed number of values keeps
    a 1,000-feature diagnosis inside its minute (at 16k rows per window isolation took 25 s of it, at 10k ~15 s); paired
    NE differences on 10k rows are still precise to ~0.003.
    """
    return min(WINDOW_ROWS, max(WINDOW_MIN_ROWS, WINDOW_VALUES // max(columns, 1)))


def rows_for_positives(columns: int, labels: pl.Series) -> int:
    """Rows per window the model-side checks read when the window's labels are rare: enough of ``labels`` (the
    window's sample in the order it is read) to hold ``WINDOW_POSITIVES`` positives, never fewer than
    :func:`rows_per_window` and never more than ``WINDOW_VALUES`` values.

    Their readings' noise is set by the positives, not the rows: 20,000 rows at a click rate of 0.5% hold some 100,
    and a feature whose values came loose from their rows could not be told from one that never mattered (its
    permutation loss within a standard error of 0; dev ``feature/decorrelated_shuffle``, seed 0)."""
    rows = rows_per_window(columns)
    seen = labels.fill_null(0).cast(pl.Float64).cum_sum()
    short = seen.head(rows)
    if not short.len() or short[-1] >= WINDOW_POSITIVES or seen.len() <= rows:
        return rows
    reached = min(int((seen < WINDOW_POSITIVES).sum()) + 1, seen.len())
    return max(rows, min(reached, WINDOW_VALUES // max(columns, 1)))


def _fit_surrogate(base: pl.DataFrame, inc: pl.DataFrame, xb: np.ndarray, xi: np.ndarray, seed: int):
    """A gradient-boosted surrogate of the logged logit on both windows, and its held-out R^2."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    from workbench.case.columns import PREDICTION

    x = np.vstack([xb, xi])
    z = np.concatenate([logit(base[PREDICTION].to_numpy()), logit(inc[PREDICTION].to_numpy())])
    rng = np.random.default_rng(seed)
    if len(x) > FIT_ROWS:
        keep = rng.choice(len(x), size=FIT_ROWS, replace=False)
        x, z = x[keep], z[keep]
    test = rng.random(len(x)) < 0.2
    # Shallow trees: TreeSHAP costs grow with depth squared; depth 4 keeps 4,000 rows under a second.
    # The split search costs features x bins per node: on wide logs each split considers SPLIT_FEATURES features drawn
    # at random (with 1,000 features and ~1,500 splits every feature is still offered ~300 times), which took a
    # 1,000-feature fit from 22 s to 14 s; up to SPLIT_FEATURES features every split sees them all, as before.
    params = {"max_iter": 100, "learning_rate": 0.2, "max_depth": 4, "early_stopping": False, "random_state": seed,
              "max_features": min(1.0, SPLIT_FEATURES / x.shape[1])}
    # OpenMP threads: one up to SPLIT_FEATURES features (a parallel region per node over few features costs more in
    # spinning threads than it saves, 10-20x on a busy machine); on wider logs each region builds histograms of
    # hundreds of features, and the default (every core, or OMP_NUM_THREADS) took a 1,000-feature fit from 11.9 s to
    # 7.0 s on 2 cores. The fitted model is the same: each feature's histogram is built by one thread.
    fit_x = x[~test]
    # sklearn's binning cannot place a threshold in a column without a value (a feature null in every fitted row; the
    # guard's baseline of a feature that was never logged): a constant there carries the same nothing, and keeps the
    # column's index for the attribution
    blank = ~np.isfinite(fit_x).any(axis=0)
    if blank.any():
        fit_x = np.where(blank, 0.0, fit_x)
    with threadpool_limits(limits=1 if x.shape[1] <= SPLIT_FEATURES else None, user_api="openmp"):
        model = HistGradientBoostingRegressor(**params).fit(fit_x, z[~test])
    resid = z[test] - model.predict(x[test])
    r2 = float(1 - resid.var() / z[test].var()) if z[test].var() > 0 else math.nan
    return model, r2


def _surrogate_scorer(surrogate: Any) -> tuple[Logit, Swapper]:
    """The surrogate's logits and its :data:`Swapper` (re-walking only the trees that read the swapped column when its
    trees can be read). One OpenMP thread: sklearn's tree code opens a parallel region per tree, and on a busy
    machine the spinning threads made predict (and a narrow fit) 10-20x slower than a single thread."""
    from threadpoolctl import threadpool_limits

    def logits(x: np.ndarray) -> np.ndarray:
        with threadpool_limits(limits=1, user_api="openmp"):
            return surrogate.predict(x)

    trees = ensemble_of(surrogate)
    if trees is None:
        return logits, _column_swapper(lambda x, rows: logits(x))

    def swapper(x: np.ndarray, z: np.ndarray, rows: np.ndarray) -> Callable[[int, np.ndarray], np.ndarray]:
        return trees.swapper(x, z)
    return logits, swapper


def _column_swapper(score: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Swapper:
    """A :data:`Swapper` for any scorer ``score(x, rows)``: the column is swapped in place and put back, so the
    matrix is never copied (1,000 features x 10,000 rows is 80 MB a copy)."""
    def swapper(x: np.ndarray, z: np.ndarray, rows: np.ndarray) -> Callable[[int, np.ndarray], np.ndarray]:
        def swap(j: int, values: np.ndarray) -> np.ndarray:
            kept = x[:, j].copy()
            x[:, j] = values
            try:
                return score(x, rows)
            finally:
                x[:, j] = kept
        return swap
    return swapper


def _readings(case: Case, base, inc, xb, xi, yb, yi, zb, zi, sb, si, phi_b, phi_i, swapper: Swapper, rng,
              notes) -> tuple:
    features = list(case.features)
    d = len(features)
    ne_b, ne_i = _ne(yb, zb), _ne(yi, zi)
    regression = ne_i - ne_b if math.isfinite(ne_b) and math.isfinite(ne_i) else math.nan
    shift = phi_i.mean(0) - phi_b.mean(0)
    dz = zi[si].mean() - zb[sb].mean()
    shift_share = shift / dz if abs(dz) > 1e-12 else np.full(d, np.nan)
    w1 = _w1(phi_i, phi_b)
    drift_share = w1 / w1.sum() if w1.sum() > 0 else np.zeros(d)
    # Loss each feature adds, in NE units of its window (entropy of that window's base rate).
    loss_delta = np.full(d, np.nan)
    if math.isfinite(regression):
        hb = entropy(np.nanmean(yb[sb])) if np.isfinite(yb[sb]).any() else math.nan
        hi = entropy(np.nanmean(yi[si])) if np.isfinite(yi[si]).any() else math.nan
        loss_delta = _loss_added(zi[si], phi_i, yi[si]) / hi - _loss_added(zb[sb], phi_b, yb[sb]) / hb
    recovered = np.full(d, np.nan)
    if math.isfinite(regression) and regression > 0:
        lab = np.flatnonzero(~np.isnan(yi))
        if len(lab) > SWAP_ROWS:
            lab = np.sort(rng.choice(lab, size=SWAP_ROWS, replace=False))
        cells_i, cells_b = _cells(inc, case.slices), _cells(base, case.slices)
        idx = _resample_within(cells_i[lab], cells_b, rng)
        y_lab = yi[lab]
        ne_here = normalized_entropy(sigmoid(zi[lab]), y_lab)  # the same rows, unswapped
        swap = swapper(xi[lab], zi[lab], lab)
        for j in range(d):
            recovered[j] = (ne_here - normalized_entropy(sigmoid(swap(j, xb[idx, j])), y_lab)) / regression
    elif math.isfinite(regression):
        notes.append(f"NE did not regress ({ne_b:.4f} -> {ne_i:.4f}): the swap has nothing to recover; ranked by attribution drift")
    else:
        notes.append(f"fewer than {MIN_LABELED} labelled rows (or too few of a class) in a window: NE readings skipped; "
                     "ranked by attribution drift")
    # Shares of the regression whose positive parts never sum above 1: one removal per feature is a separate
    # counterfactual, and when the whole world changed (labels, calibration) every important feature's removal
    # "helps"; normalizing by the larger of the regression and their sum turns that into a split, not 100% each.
    loss_share = np.full(d, np.nan)
    if math.isfinite(regression) and regression > 0:
        loss_share = loss_delta / max(regression, float(np.nansum(np.clip(loss_delta, 0, None))))
    recovered_share = recovered / max(1.0, float(np.nansum(np.clip(recovered, 0, None))))
    evidence = np.vstack([loss_share, recovered_share, drift_share])
    score = np.clip(np.nanmax(np.where(np.isnan(evidence), -np.inf, evidence), axis=0), 0.0, 1.0)
    table = pl.DataFrame({
        "feature": features, "score": score, "prediction_shift": shift, "prediction_shift_share": shift_share,
        "attribution_delta": w1, "drift_share": drift_share, "loss_delta": loss_delta, "loss_share": loss_share,
        "ne_recovered": recovered, "mean_attribution_baseline": phi_b.mean(0), "mean_attribution_incident": phi_i.mean(0),
    }).with_columns(pl.col(pl.Float64).fill_nan(None))
    table = table.sort(["score", "attribution_delta"], descending=True, nulls_last=True).with_row_index("rank", offset=1)
    rest = [c for c in table.columns if c not in ("feature", "rank")]
    table = table.with_columns(pl.col("rank").cast(pl.Int64)).select("feature", "rank", *rest)
    return table, (ne_b if math.isfinite(ne_b) else None), (ne_i if math.isfinite(ne_i) else None)


CANDIDATES = 3  # the features isolation ranks first are the ones the feature check reads as causes
PERMUTE_ROWS = 5_000  # labelled rows per window of the first permutation pass, which reads every feature ...
DROP_MATERIAL = 0.1  # ... a tenth of a feature's permutation loss gone is the least decorrelation that counts ...
DROP_ALPHA = 0.05  # ... read at this family-wise error rate over the informative features: where a candidate's
# sampling error (not its size) sets that bar, it is read again on every labelled row of the window

# The fewest other informative features whose median ratio ``g`` says what every feature lost alike (a label
# change). Over all the traffic, three: with one or two, a model that uses them together with a broken feature makes
# them lose importance along with it (dev feature/decorrelated_lag_hours, seed 3), and ``g`` would hide the break.
# Inside a segment that holds the regression alone, labels that stopped following the inputs there are the rival
# explanation, and two other informative features are enough (``SEGMENT_COMPARE_WITH``, rca.checks.features): when
# three features lost their signal together in one segment, g is near 0 and none of them reads as loose (dev
# slice/decoupled, seed 10: the segment is the cause). One is not: a feature the model reads together with a broken
# one (the rate a binary multiplies) loses its signal with it, just as under labels that left (dev
# feature/slice_confined, seed 1: a binary shuffled in one country, and the rate it multiplies there).
COMPARE_WITH = 3
SEGMENT_COMPARE_WITH = 2


def drop_floor(se: float | None, informative: int) -> float:
    """The level a ``decorrelated_drop`` must pass to count: ``DROP_MATERIAL``, or its sampling error at the
    Bonferroni bound over the ``informative`` features read, whichever is higher (effect size first, with noise as
    its floor). A healthy feature's drop is 0 plus noise, so at most ``DROP_ALPHA`` of cases see one pass by chance."""
    if se is None or not math.isfinite(se):
        return math.inf
    z = NormalDist().inv_cdf(1 - DROP_ALPHA / max(informative, 1))
    return max(DROP_MATERIAL, z * se)


def _reference_snapshot(serving: np.ndarray) -> str:
    """Whether values still belong to their rows is a property of the data, not of the model serving them: both
    windows' permutation losses use the snapshot that served most of the baseline."""
    values, counts = np.unique(serving, return_counts=True)
    return str(values[int(np.argmax(counts))])


def decorrelation(case: Case, base: pl.DataFrame, inc: pl.DataFrame, candidates: list[str] | tuple[str, ...] = (),
                  seed: int = 0, compare_with: int = COMPARE_WITH, surrogate: Any = None) -> pl.DataFrame:
    """The permutation readings of :func:`isolate_features` (``permutation_loss_baseline``/``_incident``,
    ``decorrelated_drop`` with its SE and floor) on the rows given, e.g. one segment's, without the attributions:
    whether each feature's values still belong to their rows there. ``candidates`` are read on every labelled row
    given where their reading is undecided; ``compare_with`` is the fewest other informative features the loss
    they lost alike is read from (:func:`_permutation_losses`). Needs the model (model.py and snapshots), or the
    ``surrogate`` a model-free :func:`isolate_features` fitted (``FeatureIsolation.surrogate``). The model's
    reference snapshot is the one that served most of ``base``: within a segment during a rollout it can differ
    from the whole window's."""
    from workbench.case.columns import LABEL

    if surrogate is None and (case.model is None or not case.snapshots):
        raise CaseError(case.root, "decorrelation readings need model.py and snapshots/index.csv, or a surrogate.",
                        "add them, or pass the surrogate of a model-free isolate_features (FeatureIsolation.surrogate).")
    unknown = [f for f in candidates if f not in case.features]
    if unknown:
        raise CaseError(case.root, f"not feature columns: {unknown}.", f"pick candidates among {list(case.features)}")
    swapper = None
    if surrogate is not None:
        reference, swapper = _surrogate_scorer(surrogate)
    else:
        reference = _model_logit(case, _reference_snapshot(_serving(case, base, None)), {})
    y = [frame[LABEL].to_numpy().astype(np.float64) for frame in (base, inc)]
    return _permutation_losses(_raw(base, case.features), _raw(inc, case.features), y[0], y[1], reference, case.features,
                               np.random.default_rng(seed), candidates, compare_with, swapper=swapper)


def _permutation_loss(x: np.ndarray, y: np.ndarray, z: np.ndarray, swapper: Swapper, rows: np.ndarray,
                      rng: np.random.Generator, columns: np.ndarray | None = None, *,
                      centred: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per feature (of ``columns``, default all): the rise of the window's NE when that feature is permuted among its
    rows, and its standard error. ``z`` are the scorer's logits of ``x`` and ``swapper`` re-scores a row set with
    one column replaced (:data:`Swapper`; the surrogate's re-walks only the trees that read the column).
    ``centred``: every logit first gets the offset that calibrates the rows in the large (:func:`fit_offset`).

    A feature that carries information about the label raises the loss when its values
    are shuffled; one whose values no longer belong to their rows raises it no more.
    """
    d = x.shape[1]
    rise, se = np.full(d, np.nan), np.full(d, np.nan)
    if len(rows) < MIN_LABELED:
        return rise, se
    xr, yr = x[rows], y[rows]
    h = float(entropy(float(yr.mean())))
    if not math.isfinite(h):
        return rise, se
    offset = fit_offset(z[rows], yr) if centred else 0.0
    base_loss = row_log_loss_logit(z[rows] + offset, yr)
    swap = swapper(xr, z[rows], rows)
    for j in range(d) if columns is None else columns:
        diff = (row_log_loss_logit(swap(j, xr[rng.permutation(len(rows)), j]) + offset, yr) - base_loss) / h
        rise[j], se[j] = float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(len(diff)))
    return rise, se


def _permutation_losses(xb: np.ndarray, xi: np.ndarray, yb: np.ndarray, yi: np.ndarray, reference: Logit,
                        features: tuple[str, ...], rng: np.random.Generator,
                        candidates: list[str] | tuple[str, ...] = (), compare_with: int = COMPARE_WITH,
                        swapper: Swapper | None = None,
                        logits: tuple[np.ndarray, np.ndarray] | None = None) -> pl.DataFrame:
    """Permutation loss in each window and ``decorrelated_drop``: how much of a feature's baseline permutation loss
    is gone in the incident, beyond the loss every informative feature lost alike, with its standard error.

    ``1 - (rise_i / rise_b) / g`` with ``g`` the median ratio over the other features whose
    baseline rise exceeds 3 SE (a label change lowers every feature's rise alike; a
    decorrelated feature's alone), when there are ``compare_with`` or more, else 1
    (:data:`COMPARE_WITH`), counted when the feature's own baseline rise exceeds
    3 SE; clipped to [0, 1]; its SE by the delta method from the two rises' SEs and ``g``'s;
    ``decorrelated_reference`` is how many features ``g`` was read from (0: taken as 1, or the
    feature is not informative). When ``g`` is within 3 SE of 0, every other informative feature
    lost its signal as well (labels that stopped following the inputs): the drop is 0, nothing
    being the feature's own, with no SE. With the model:
    the values of a feature that was lagged, shuffled or joined on the wrong key stop mattering
    to the loss while its distribution holds.

    A label rate that moved, with nothing loosened, must not read as a drop. Each window's rises are read on logits
    calibrated in the large on its own rows (``centred``: a segment whose clicks fell six-fold leaves the model
    over-predicting six-fold there, which shrinks every rise), and the ratio ``rise_i / rise_b`` compares them per
    unit of label variance, ``r(1 - r)``, not of label entropy ``H(r)``: a feature's information about the label
    (its Fisher information on the logit) scales with the variance, so dividing by the entropy, which falls more
    slowly, read a rate that fell from 3% to 0.5% as 29% of every feature's signal gone (dev slice/collapse, seed 16:
    one informative feature in the segment, nothing to compare it with, read as loose). The rises reported stay in NE.
    ``PERMUTE_ROWS`` rows per window read every
    feature; when a ``candidates`` feature (one the feature check will read) has a material drop
    whose floor (:func:`drop_floor`) is set by its sampling error, or a baseline rise these rows could not
    show above 3 SE, it and the informative features are read again on every labelled row given (the window's
    sample, ``rows_for_positives``) in each
    window that has more: the rows go where the answer is read and still noisy. ``reference`` scores the rows (the
    model, or without one the surrogate of the logged prediction); ``swapper`` re-scores them with one column
    replaced (default: ``reference`` on the swapped matrix); ``logits`` are ``reference``'s of ``xb`` and ``xi``
    when the caller has them already.
    """
    if swapper is None:
        swapper = _column_swapper(lambda x, rows: reference(x))

    def labelled(y: np.ndarray, cap: int | None) -> np.ndarray:
        lab = np.flatnonzero(~np.isnan(y))
        return np.sort(rng.choice(lab, size=cap, replace=False)) if cap is not None and len(lab) > cap else lab

    def drops(rb: np.ndarray, sb: np.ndarray, ri: np.ndarray, si: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        informative = np.isfinite(rb) & np.isfinite(ri) & (rb > 3 * sb)
        drop, drop_se = np.full(len(features), np.nan), np.full(len(features), np.nan)
        compared = np.zeros(len(features), dtype=np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = ri / rb * per_variance  # per unit of label variance (see above)
            ratio_se = np.sqrt(si ** 2 + (ri / rb * sb) ** 2) / rb * per_variance  # delta method for ri / rb
            for j in np.flatnonzero(informative):
                others = informative.copy()
                others[j] = False
                g, g_se = 1.0, 0.0
                m = int(others.sum())
                if m >= max(compare_with, 1):
                    # the median's SE: the mean's for one or two readings (the median of two is their mean), and
                    # sqrt(pi / 2) times it from three on (its large-sample value; about 1.35 at three: conservative)
                    g = float(np.median(ratio[others]))
                    g_se = math.sqrt((math.pi / 2 if m >= 3 else 1.0) * float(np.mean(ratio_se[others] ** 2)) / m)
                    compared[j] = m
                if g <= 3 * g_se:  # the others lost all their signal too (labels that left): nothing is its own
                    drop[j] = 0.0
                else:
                    drop[j] = float(np.clip(1.0 - ratio[j] / g, 0.0, 1.0))
                    drop_se[j] = math.hypot(ratio_se[j] / g, ratio[j] * g_se / g ** 2)
        return drop, drop_se, informative, compared

    def nats_per_variance(y: np.ndarray) -> float:  # H(r) / (r (1 - r)) of the window's label rate
        r = float(np.nanmean(y)) if np.isfinite(y).any() else math.nan
        return float(entropy(r)) / (r * (1 - r)) if 0 < r < 1 else math.nan

    per_variance = nats_per_variance(yi) / nats_per_variance(yb)
    zb, zi = logits if logits is not None else (reference(xb), reference(xi))
    rb, sb = _permutation_loss(xb, yb, zb, swapper, labelled(yb, PERMUTE_ROWS), rng, centred=True)
    ri, si = _permutation_loss(xi, yi, zi, swapper, labelled(yi, PERMUTE_ROWS), rng, centred=True)
    drop, drop_se, informative, compared = drops(rb, sb, ri, si)
    k = int(informative.sum())
    # undecided: a candidate whose material drop has a floor set by noise, or whose baseline signal the first rows
    # could not show above noise (at a base rate of 0.5% they hold some 25 positives)
    undecided = [j for j in (features.index(f) for f in candidates)
                 if (informative[j] and drop[j] >= DROP_MATERIAL and drop_floor(drop_se[j], k) > DROP_MATERIAL)
                 or (not informative[j] and np.isfinite(rb[j]) and np.isfinite(ri[j]))]
    if undecided:
        # the undecided and the informative others: their median ratio g is as noisy as they are
        again = np.union1d(np.flatnonzero(informative), undecided)
        for x, y, z, rise, se in ((xb, yb, zb, rb, sb), (xi, yi, zi, ri, si)):
            if np.isfinite(y).sum() > PERMUTE_ROWS:  # a window read whole already has nothing more to give
                rise2, se2 = _permutation_loss(x, y, z, swapper, labelled(y, None), rng, again, centred=True)
                rise[again], se[again] = rise2[again], se2[again]
        drop, drop_se, informative, compared = drops(rb, sb, ri, si)
        k = int(informative.sum())
    return pl.DataFrame({"feature": list(features), "permutation_loss_baseline": rb, "permutation_loss_incident": ri,
                         "decorrelated_drop": drop, "decorrelated_drop_se": drop_se,
                         "decorrelated_floor": [drop_floor(s, k) if math.isfinite(s) else math.nan for s in drop_se],
                         "decorrelated_reference": compared,
                         }).with_columns(pl.col(pl.Float64).fill_nan(None))


# ---------------------------------------------------------------- two snapshots, one window
@dataclass(frozen=True, slots=True)
class AttributionShift:
    """How feature importance changed from ``snapshot_a`` to ``snapshot_b`` on the same rows.

    ``table``: feature, importance_a, importance_b (mean |SHAP| in logits), delta,
    rank_a, rank_b, rank_change (positive: moved up), mean_attribution_a/_b; sorted
    by |delta|. ``spearman``: rank correlation of the two importance vectors.
    """

    snapshot_a: str
    snapshot_b: str
    window: Window
    table: pl.DataFrame
    spearman: float
    rows: int
    method: str = MODEL_METHOD

    def to_dict(self) -> dict:
        return {"snapshot_a": self.snapshot_a, "snapshot_b": self.snapshot_b, "window": self.window.to_dict(),
                "spearman": _nz(self.spearman), "rows": self.rows, "method": self.method, "table": records(self.table)}

    def __str__(self) -> str:
        lines = [f"attribution shift {self.snapshot_a} -> {self.snapshot_b} on {self.rows:,} rows of {self.window}: "
                 f"importance rank correlation {self.spearman:.3f}"]
        for r in self.table.head(8).iter_rows(named=True):
            lines.append(f"  {r['feature']:<26} importance {r['importance_a']:.3f} -> {r['importance_b']:.3f} "
                         f"({r['delta']:+.3f}), rank {r['rank_a']} -> {r['rank_b']}")
        return "\n".join(lines)


def _ranks(v: np.ndarray) -> np.ndarray:
    """1 = largest."""
    order = np.argsort(-v, kind="stable")
    ranks = np.empty(len(v), dtype=np.int64)
    ranks[order] = np.arange(1, len(v) + 1)
    return ranks


def attribution_shift(case: Case, snapshot_a: str, snapshot_b: str, window: Window, *, sample: int = SHAP_ROWS,
                      seed: int = 0) -> AttributionShift:
    """Compare SHAP feature importance of two snapshots on the rows of ``window``: which features changed importance.

    Both snapshots explain the same rows against the same background with the same
    random feature orders, so the difference is the snapshots', not sampling noise.
    """
    if case.model is None or not case.snapshots:
        raise CaseError(case.root, "comparing snapshot attributions needs model.py and snapshots/index.csv.",
                        "add them; without a model, isolate_features(..., method='surrogate') explains the logged predictions.")
    a, b = case.snapshot(snapshot_a).snapshot_id, case.snapshot(snapshot_b).snapshot_id
    rows = _rows(case, window, max(sample, BACKGROUND), seed)
    x = _raw(rows, case.features)
    rng = np.random.default_rng(seed)
    bg = x[rng.choice(len(x), size=min(BACKGROUND, len(x)), replace=False)]
    cache: dict = {}
    phi_a, _ = permutation_shap(_model_logit(case, a, cache), x, bg, seed=seed)
    phi_b, _ = permutation_shap(_model_logit(case, b, cache), x, bg, seed=seed)
    imp_a, imp_b = np.abs(phi_a).mean(0), np.abs(phi_b).mean(0)
    ra, rb = _ranks(imp_a), _ranks(imp_b)
    n = len(ra)
    rho = 1 - 6 * float(((ra - rb) ** 2).sum()) / (n * (n * n - 1)) if n > 1 else math.nan
    table = pl.DataFrame({
        "feature": list(case.features), "importance_a": imp_a, "importance_b": imp_b, "delta": imp_b - imp_a,
        "rank_a": ra, "rank_b": rb, "rank_change": ra - rb,
        "mean_attribution_a": phi_a.mean(0), "mean_attribution_b": phi_b.mean(0),
    }).sort(pl.col("delta").abs(), descending=True)
    return AttributionShift(snapshot_a=a, snapshot_b=b, window=window, table=table, spearman=rho, rows=len(x))
