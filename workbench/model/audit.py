"""The data-dependency audit: what the model in a case depends on, and what it could do without.

Technical debt in ML systems hides in data dependencies (Sculley et al. 2015, *Hidden
technical debt in machine learning systems*, NeurIPS): *epsilon features* that add almost
nothing but can still break, *bundled features* of which one carries the signal, and
upstream tables nobody tracks. :func:`audit_dependencies` measures each, for one snapshot
on a sample of rows from a window that is taken to be healthy:

* **Attribution share**: each feature's mean ``|SHAP|`` over the sampled rows divided by the
  sum over features (interventional SHAP by antithetic permutation sampling,
  :func:`workbench.model.isolation.permutation_shap`, against ``BACKGROUND`` background rows).
* **Permutation importance**: the rise of NE when the feature's values are shuffled among
  the labelled rows, with the standard error of the per-row loss differences
  (the permutation loss of :mod:`workbench.model.isolation`).
* **Removal candidates**, two rules, stated so a reader can check them:

  - *epsilon*: a permutation importance not distinguishable from zero (a rise below
    ``Z_ZERO`` standard errors) **and** an attribution share below an equal share (``1 / d``,
    d features). The share alone does not decide: a model fitted on finite data puts some
    weight on noise features, more so on features correlated with useful ones, and that
    weight shows in SHAP but not in the loss. Without labelled rows to measure the loss, a
    share below ``SHARE_FLOOR`` of an equal share decides alone;
  - *redundant*: a member of a bundle that is not the one carrying the signal.

* **Bundles**: connected groups of features whose absolute Spearman rank correlation, over the
  rows where both are present, is at least ``BUNDLE_RHO`` (0.9). Which member to keep is asked
  of the labels: a logistic regression of the label on all members together (normal scores)
  judges each *given* the others, and a member is singled out when its coefficient is
  ``Z_CARRIER`` SE from zero and every other's within ``Z_ZERO``. Near-copies differ by a few
  percent of their variance, so on most logs the labels cannot tell (the model then spreads its
  attribution over the copies too), and the audit says so and keeps the member the model relies
  on most: keeping any one of near-copies keeps nearly all the signal. What the labels single
  out is the copy whose *logged* values carry the most signal, which need not be the one the
  world's outcome depends on (a copy logged as a rounded count measures it worse than a smooth
  sibling does): on the proving ground's development cases the labels singled out a member in
  2 of 23 bundles, and one of the two was the generator's. The other members are *redundant*
  removal candidates.
* **Lineage**: each upstream table or pipeline (``lineage.json``), the features it feeds and
  the share of the model's attribution that flows through it (the sum of their shares;
  a feature fed by two nodes counts for both).

Without a usable model the attributions explain a gradient-boosted surrogate of the logged
prediction (TreeSHAP), as :func:`workbench.model.isolation.isolate_features` does, and say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench._render import fmt, records
from workbench.case.columns import LABEL, PREDICTION, SNAPSHOT, TS
from workbench.errors import CaseError
from workbench.model.isolation import (
    BACKGROUND,
    _column_swapper,
    _model_logit,
    _permutation_loss,
    _raw,
    _surrogate_scorer,
    permutation_shap,
)
from workbench.model.validation import sample_rows
from workbench.windows import Window

if TYPE_CHECKING:
    from workbench.case.loader import Case

__all__ = ["BUNDLE_RHO", "SHARE_FLOOR", "Bundle", "DependencyAudit", "audit_dependencies"]

BUNDLE_RHO = 0.9
SHARE_FLOOR = 0.1  # of an equal share: without labels, a feature with under a tenth of 1/d of the attribution
Z_ZERO = 2.0  # a permutation importance below this many standard errors is not distinguishable from zero
Z_CARRIER = 3.0  # a bundle member's coefficient given the others must be this many SE from zero to single it out
SHAP_ROWS = 1_000  # rows explained (fewer for wide models: SHAP_BUDGET model evaluations at most)
SHAP_BUDGET = 4_000_000
PERMUTE_ROWS = 10_000
CORR_ROWS = 20_000


@dataclass(frozen=True, slots=True)
class Bundle:
    """Features that move together (``|Spearman| >= BUNDLE_RHO``). ``signal`` is the one to keep: the one that carries
    the signal when the labels single it out (``identified``), else the one the model relies on most."""

    features: tuple[str, ...]
    signal: str
    min_rho: float  # the weakest correlation that links a member to the group
    identified: bool = False  # the labels single out ``signal``; else it is the member the model relies on most
    why: str = ""

    def to_dict(self) -> dict:
        return {"features": list(self.features), "signal": self.signal, "identified": self.identified,
                "min_rho": round(self.min_rho, 4), "why": self.why}


@dataclass(frozen=True, slots=True)
class DependencyAudit:
    """What the model depends on.

    ``table``: one row per feature, by attribution share: feature, share, mean_abs_shap,
    permutation_rise (NE units), permutation_se, coverage, bundle (index into ``bundles``),
    signal (carries its bundle's signal), candidate (a removal candidate), reason.
    ``lineage``: node, kind, features (fed), share (of the attribution flowing through it),
    candidates (features below it that are removal candidates). ``method`` says what was
    explained; ``rule`` states the removal rules.
    """

    case: str
    snapshot: str | None
    window: Window
    method: str
    rows: int
    labelled_rows: int
    table: pl.DataFrame
    bundles: tuple[Bundle, ...]
    lineage: pl.DataFrame
    rule: str
    notes: tuple[str, ...] = ()

    @property
    def candidates(self) -> tuple[str, ...]:
        return tuple(self.table.filter(pl.col("candidate"))["feature"].to_list())

    def to_dict(self) -> dict:
        return {"case": self.case, "snapshot": self.snapshot, "window": self.window.to_dict(), "method": self.method,
                "rows": self.rows, "labelled_rows": self.labelled_rows, "rule": self.rule,
                "candidates": list(self.candidates), "bundles": [b.to_dict() for b in self.bundles],
                "features": records(self.table), "lineage": records(self.lineage), "notes": list(self.notes)}

    def __str__(self) -> str:
        t = self.table
        lines = [f"data-dependency audit: {self.case}",
                 f"  {self.method}{' ' + self.snapshot if self.snapshot else ''} on {self.rows:,} rows of {self.window} "
                 f"({self.labelled_rows:,} labelled for permutation importance)",
                 f"  {t.height} features; {len(self.candidates)} removal candidate(s); {len(self.bundles)} bundle(s)", "",
                 "attribution share (top 10):"]
        for r in t.head(10).iter_rows(named=True):
            lines.append(f"  {r['feature']:<32} {r['share']:>6.1%}  permutation {fmt(r['permutation_rise'], 4)} "
                         f"± {fmt(r['permutation_se'], 4)} NE")
        lines += ["", f"removal candidates ({self.rule}):"]
        cand = t.filter(pl.col("candidate"))
        lines += [f"  - {r['feature']}: {r['reason']}" for r in cand.iter_rows(named=True)] or ["  none"]
        lines += ["", f"bundles (|Spearman| >= {BUNDLE_RHO:.2f}):"]
        lines += [f"  - {', '.join(b.features)}: keep {b.signal} ({b.why}; min |rho| {b.min_rho:.2f})"
                  for b in self.bundles] or ["  none"]
        lines += ["", "upstream dependencies (share of the attribution through each):"]
        lines += [f"  - {r['node']} ({r['kind']}): {r['share']:.1%} through {len(r['features'])} feature(s)"
                  + (f"; {len(r['candidates'])} removable" if r["candidates"] else "")
                  for r in self.lineage.iter_rows(named=True)] or ["  no lineage.json"]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _default_window(case: Case) -> Window:
    """The week of data before the last day (the newest day may hold an incident), clipped to the data."""
    end = max(case.end - timedelta(days=1), case.start + (case.end - case.start) / 2)
    return Window(max(case.start, end - timedelta(days=7)), end)


def _spearman(x: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of every pair of columns of ``x`` over the rows where both are present.

    Each column is ranked over its non-null values once; the pairwise-complete Pearson
    correlation of the ranks comes from four matrix products (sums, squares and cross
    products restricted to the rows both columns hold), so it costs O(n d^2), no loop over pairs.
    """
    frame = pl.DataFrame(x, schema=[f"c{j}" for j in range(x.shape[1])], orient="row").fill_nan(None)
    ranks = frame.select(pl.all().rank("average")).to_numpy().astype(np.float64)
    m = (~np.isnan(ranks)).astype(np.float64)
    r = np.nan_to_num(ranks, nan=0.0)
    n = m.T @ m
    sx = r.T @ m  # sx[i, j]: the sum of column i's ranks over the rows column j also holds
    sxx = (r * r).T @ m
    sxy = r.T @ r
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = n * sxy - sx * sx.T
        var = (n * sxx - sx * sx) * (n * sxx - sx * sx).T
        rho = cov / np.sqrt(var)
    rho[n < 30] = 0.0  # too few rows in common to say
    return np.nan_to_num(rho, nan=0.0)


def _carrier(x: np.ndarray, y: np.ndarray) -> tuple[int, float] | None:
    """The bundle member whose own values explain the label *given* the others, and its z; None when none does.

    A logistic regression of the label on all the members together (normal scores of their
    ranks, rows where all are present): near-copies share what they have in common, and
    only the carrier adds to it. The carrier is identified when its coefficient is at least
    ``Z_CARRIER`` standard errors from zero and no other member's is beyond ``Z_ZERO``; copies
    differ by a few percent of their variance, so this takes many labelled rows, and often
    the rows say nothing.
    """
    from scipy.stats import norm

    from workbench.metrics import sigmoid

    keep = ~np.isnan(y) & ~np.isnan(x).any(1)
    xs, ys = x[keep], y[keep]
    k = x.shape[1]
    if min(ys.sum(), len(ys) - ys.sum()) < 10 * (k + 1):
        return None
    ranks = pl.DataFrame(xs, schema=[f"c{j}" for j in range(k)], orient="row").select(pl.all().rank("average")).to_numpy()
    design = np.column_stack([norm.ppf((ranks - 0.5) / len(ys)), np.ones(len(ys))])
    w = np.zeros(k + 1)
    hess = np.eye(k + 1)
    for _ in range(25):  # Newton / IRLS iterations on k + 1 parameters
        p = sigmoid(design @ w)
        hess = (design * (p * (1 - p))[:, None]).T @ design + 1e-6 * np.eye(k + 1)
        step = np.linalg.solve(hess, design.T @ (ys - p))
        w += step
        if np.abs(step).max() < 1e-8:
            break
    z = np.abs(w[:k]) / np.sqrt(np.diag(np.linalg.inv(hess))[:k])
    order = np.argsort(-z)
    if z[order[0]] >= Z_CARRIER and (k < 2 or z[order[1]] < Z_ZERO):
        return int(order[0]), float(z[order[0]])
    return None


def _bundles(rho: np.ndarray, features: tuple[str, ...], share: np.ndarray, x: np.ndarray, y: np.ndarray) -> list[Bundle]:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    linked = np.abs(rho) >= BUNDLE_RHO
    np.fill_diagonal(linked, False)
    _, label = connected_components(csr_matrix(linked), directed=False)
    out = []
    for g in np.unique(label):
        members = np.flatnonzero(label == g)
        if len(members) < 2:
            continue
        sub = np.abs(rho[np.ix_(members, members)])
        np.fill_diagonal(sub, 0.0)
        members = members[np.argsort(-share[members], kind="stable")]
        found = _carrier(x[:, members], y)
        if found is not None:
            signal, identified = features[members[found[0]]], True
            why = (f"the labels favour it given the others (z {found[1]:.1f}, the others within {Z_ZERO:g}): of the copies, it "
                   "carries the most signal in the logged values")
        else:
            signal, identified = features[members[0]], False
            why = ("not identifiable from these rows (no member explains the label given the others); keep the one the model "
                   "relies on most")
        out.append(Bundle(tuple(features[j] for j in members), signal, float(sub.max(1).min()), identified, why))
    return sorted(out, key=lambda b: b.features)


def audit_dependencies(case: Case, window: Window | None = None, *, snapshot: str | None = None, sample: int = SHAP_ROWS,
                       seed: int = 0) -> DependencyAudit:
    """Attribution shares, removal candidates, bundles and upstream dependencies of the model (module docstring).

    ``window`` is a healthy stretch of traffic (default: the week before the last day);
    ``snapshot`` the model to audit (default: the snapshot that served most of the window's rows).

    >>> from workbench import open_case
    >>> audit = audit_dependencies(open_case("sample_data/cases/control"))
    >>> round(audit.table["share"].sum(), 6), audit.method
    (1.0, 'model:shap')
    """
    if not case.features:
        raise CaseError(case.root, "the case has no feature columns to audit.", 'map them in workbench.toml: [columns] features = ["f_*"]')
    from workbench.model.load import model_problem

    window = window or _default_window(case)
    features = case.features
    d = len(features)
    notes: list[str] = []
    frame, _ = sample_rows(case.predictions.filter(window.contains(TS)).select(TS, PREDICTION, LABEL, SNAPSHOT, *features),
                               max(CORR_ROWS, PERMUTE_ROWS), seed=seed)
    if frame.height < 50:
        raise CaseError(case.sources.get("predictions", case.root), f"only {frame.height} served rows in the window {window}.",
                        f"pick a window inside the case's traffic, {case.start:%Y-%m-%d %H:%M} to {case.end:%Y-%m-%d %H:%M} UTC.")
    x = _raw(frame, features)
    rng = np.random.default_rng(seed)
    n_shap = int(min(sample, max(50, SHAP_BUDGET // (BACKGROUND * (d + 1))), len(x)))
    explain = rng.choice(len(x), size=n_shap, replace=False)
    background = x[rng.choice(len(x), size=min(BACKGROUND, len(x)), replace=False)]
    use_model = case.model is not None and bool(case.snapshots) and model_problem(case) is None
    sid: str | None = None
    if use_model:
        served = frame[SNAPSHOT].drop_nulls()
        sid = (case.snapshot(snapshot).snapshot_id if snapshot else served.mode().sort()[0] if served.len() else
               max(case.snapshots, key=lambda s: s.published_at).snapshot_id)
        f = _model_logit(case, sid, {})
        phi, _ = permutation_shap(f, x[explain], background, seed=seed)
        method = "model:shap"

        swapper = _column_swapper(lambda xs, rows: f(xs))
        z = f(x)
    else:
        import shap
        from threadpoolctl import threadpool_limits

        from workbench.model.isolation import _fit_surrogate

        with threadpool_limits(limits=1, user_api="openmp"):
            surrogate, r2 = _fit_surrogate(frame, frame.head(0), x, x[:0], seed)
            z = surrogate.predict(x)
        phi = np.asarray(shap.TreeExplainer(surrogate).shap_values(x[explain], check_additivity=False))
        method = "surrogate:treeshap"
        notes.append(f"no usable model ({model_problem(case) if case.model is not None else 'no model.py'}): attributions "
                     f"explain a surrogate of the logged prediction (held-out R^2 {r2:.3f}), not the model itself")
        _, swapper = _surrogate_scorer(surrogate)

    mean_abs = np.abs(phi).mean(0)
    share = mean_abs / mean_abs.sum() if mean_abs.sum() > 0 else np.full(d, 1.0 / d)
    y = frame[LABEL].cast(pl.Float64).to_numpy()
    labelled = np.flatnonzero(~np.isnan(y))
    if len(labelled) > PERMUTE_ROWS:
        labelled = np.sort(rng.choice(labelled, size=PERMUTE_ROWS, replace=False))
    # the loss with the feature permuted against the loss of the same scorer (the surrogate's own error is in both)
    rise, se = _permutation_loss(x, y, z, swapper, labelled, rng)
    if not np.isfinite(rise).any():
        notes.append(f"too few labelled rows ({len(labelled):,}) for permutation importance: only the attribution share decides")
    corr_rows = rng.choice(len(x), size=min(CORR_ROWS, len(x)), replace=False)
    bundles = _bundles(_spearman(x[corr_rows]), features, share, x, y)
    measured = np.isfinite(rise) & np.isfinite(se)
    zero = measured & ~(rise > Z_ZERO * se)  # the loss does not notice the feature (a harmful one included)
    epsilon = np.where(measured, zero & (share < 1.0 / d), share < SHARE_FLOOR / d)
    bundle_of = {f: i for i, b in enumerate(bundles) for f in b.features}
    reasons = []
    for j, name in enumerate(features):  # one reason per feature: the result table, not the data
        b = bundle_of.get(name)
        if b is not None and bundles[b].signal != name:
            keep = bundles[b].signal
            reasons.append(f"redundant: bundled with {keep} (|rho| >= {BUNDLE_RHO}), which "
                           + ("carries the signal" if bundles[b].identified else "the model relies on most"))
        elif epsilon[j] and measured[j]:
            reasons.append(f"epsilon: a permutation importance of {rise[j]:+.4f} NE, within {Z_ZERO:g} SE ({se[j]:.4f}) of "
                           f"zero, and {share[j]:.2%} of the attribution (an equal share is {1 / d:.2%})")
        elif epsilon[j]:
            reasons.append(f"epsilon: {share[j]:.2%} of the attribution, under {SHARE_FLOOR:g} of an equal share "
                           "(no labelled rows to measure its permutation importance)")
        else:
            reasons.append("")
    coverage = 1.0 - np.isnan(x).mean(0)
    table = pl.DataFrame({
        "feature": list(features), "share": share, "mean_abs_shap": mean_abs, "permutation_rise": rise, "permutation_se": se,
        "coverage": coverage, "bundle": [bundle_of.get(f) for f in features],
        "signal": [bundle_of.get(f) is not None and bundles[bundle_of[f]].signal == f for f in features],
        "candidate": [bool(r) for r in reasons], "reason": reasons,
    }, schema_overrides={"bundle": pl.Int64}).with_columns(pl.col(pl.Float64).fill_nan(None)).sort("share", descending=True)
    rule = (f"epsilon: permutation importance within {Z_ZERO:g} SE of zero and attribution share < 1/d (without labels: "
            f"share < {SHARE_FLOOR:g}/d); redundant: a bundle member that does not carry the signal")
    return DependencyAudit(case=case.name, snapshot=sid, window=window, method=method, rows=len(explain),
                           labelled_rows=len(labelled), table=table, bundles=tuple(bundles),
                           lineage=_lineage(case, table), rule=rule, notes=tuple(notes))


def _lineage(case: Case, table: pl.DataFrame) -> pl.DataFrame:
    schema = pl.Schema([("node", pl.String()), ("kind", pl.String()), ("features", pl.List(pl.String())),
                        ("share", pl.Float64()), ("candidates", pl.List(pl.String()))])
    graph = case.lineage
    if graph is None:
        return pl.DataFrame(schema=schema)
    share = dict(zip(table["feature"], table["share"], strict=True))
    candidate = set(table.filter(pl.col("candidate"))["feature"])
    rows = []
    for node, kind in graph.kinds.items():  # the lineage graph: hundreds of nodes, not rows of data
        if node.startswith("feature:"):
            continue
        fed = sorted(graph.features_of(node) & share.keys())
        if fed:
            rows.append({"node": node, "kind": kind, "features": fed, "share": float(sum(share[f] for f in fed)),
                         "candidates": [f for f in fed if f in candidate]})
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(rows, schema=schema).sort(["share", "node"], descending=[True, False])

