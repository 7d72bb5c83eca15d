"""Which features broke: every feature, baseline vs incident (or serving vs training), in one pass per window.

The pass (mergeable partial aggregates, streaming):

1. **Reference edges.** A hash sample (~50k rows) of the reference window gives
   each numeric feature ``bins - 1`` quantile edges (and one just below its minimum
   when the lowest edge is the minimum itself, an atom: a value below it then has a
   bin of its own, as a value above the maximum has) and its scale band (``|x|``
   between a tenth of its ~1st and ten times its ~99th percentile).
2. **Profiles.** One ``select`` per window counts, per feature, nulls,
   ``x <= edge`` for every edge (cumulative histogram), sums of ``x``, ``x^2``,
   ``|x|``, the tail sums beyond the outer edges and values out of the scale
   band. Profiles of disjoint parts add up.
3. **Samples.** Hash samples of both windows, cut to equal size, give quantiles,
   distinct counts, the share of repeated values, the top value's share and the
   number of values in effective use (inverse Simpson; distinct counts grow with
   sample size, so only equal sizes compare).

Per feature: coverage (non-null share) before/after, PSI and Jensen-Shannon
distance on the histogram *with a null bin* (only a null bin sees a coverage
drop), KS and Wasserstein-1 on non-null values (W1 divided by the reference IQR,
else std, so features compare), moments, quantiles, staleness, scale ratio
(mean ``|x|`` after / before). Definitions in :mod:`workbench.data._distances`.

**Severity** is an effect size, not a p-value (on a million rows every
difference is "significant"): the JS distance (null bin included; ~0.42 x a shift
in standard deviations, so 0.1 is a small effect) *in excess of the same
distance over the same time lag before the baseline* (the *placebo* window:
the baseline moved back by the baseline-to-incident lag, when the data reaches
that far). Organic drift moves a feature as much between placebo and baseline
as between baseline and incident, so its excess is ~0; a break is new. Serving
vs training has no placebo: severity is the plain JS distance.

**Kind** names where the moved mass went, once ``severity >= 0.1``:
``coverage`` when the null/non-null split moved more than the values did (or a window
has no values left to compare);
``scale`` when at least half of the moved value mass left the scale band;
``stale`` when at least half of the moved mass piled onto one value (the top value's share
rose) and fewer values remain: fewer distinct ones, or an order of magnitude fewer in
effective use (the inverse Simpson index of equal-size samples: a boolean whose mix moved is
not stale, a feed frozen on one of 51 grid values is, though the other 7 % of its rows still
show all 51), or the values look replayed: an order of magnitude fewer distinct values than
the baseline held in the same range, on a grid no coarser than before (a feed replaying a few
dozen recent values, which no single value dominates; a range that narrowed keeps the
values it had, and rounding is not staleness);
``default`` when the value that took the moved mass is a sentinel pipelines fill a missing value with (0
or -1) and the baseline hardly held it (:func:`fill_value`): a coverage loss served as a default rather than
as a null (checked before ``scale``, ``stale`` and ``distribution``, which it would otherwise read as: a
count served as -1 leaves the scale band);
``scale`` too when one factor maps the baseline's values onto the incident's,
taking away at least half of their KS distance (a unit change that stays inside
the band, or whose heavy tail a cap kept from following); else ``distribution``.
Below the floor, a feature whose distribution held but whose relation to its row
fell apart (its correlation with the features it moved with, or with the label,
dropped: :func:`relations`) is ``decorrelated``, with that drop as its severity;
otherwise ``none``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench._render import fmt, records
from workbench.case.columns import LABEL, TS
from workbench.case.loader import Case
from workbench.data._distances import js_distance, ks_from_cdf, ks_sorted, psi, total_variation, wasserstein_from_cdf
from workbench.data._frames import PERIOD, check_columns, collect_sums, hash_sample, window_frames, window_rows
from workbench.errors import WorkbenchError
from workbench.metrics import MAD_TO_SD
from workbench.windows import Window

if TYPE_CHECKING:
    from workbench.data.scan import WindowScan

__all__ = ["OUT_OF_BAND", "FeatureDrift", "FeatureSlices", "arrival_hours", "feature_by_slice", "feature_drift",
           "feature_timeline", "kind_of_samples", "out_of_band", "relations", "training_skew"]

BINS = 20
SAMPLE_ROWS = 50_000  # edges and quantiles; bins are 5% wide, a 50k sample places them within ~0.2%
FLOOR = 0.1  # JS distance of a small effect (Cohen's d ~ 0.24)
KIND_SHARE = 0.5  # share of the moved mass a kind must explain
SCALE_BAND = 10.0
# Values out of the scale band on this much more of the rows than in the baseline are a unit error on a minority of
# them (a parser bug that multiplies a twentieth of a field by 1,000 or more), whatever the distance says: moving 5% of
# the mass to a bin of its own is a JS distance of ~0.08, under FLOOR, as a 5% coverage loss is. No organic drift puts
# values ten times beyond the baseline's ~99th percentile.
OUT_OF_BAND = 0.01


def out_of_band(row: dict) -> float:
    """The share of a drift table row's values that left the scale band beyond the baseline's share and the placebo
    window's (0 when none): a clock feature in a short log leaves the baseline's band every day, the window before
    the baseline as much as the incident (dev label/spurious_positives/3: hour_of_week 29 % out of the band of a
    baseline of a few days)."""
    b, i, usual = (row.get(k) for k in ("out_of_scale_baseline", "out_of_scale_incident", "out_of_scale_usual"))
    if b is None or i is None or not (math.isfinite(b) and math.isfinite(i)):
        return 0.0
    before = max(float(b), float(usual)) if usual is not None and math.isfinite(usual) else float(b)
    return max(float(i) - before, 0.0)
COLUMNS = ("feature", "type", "kind", "severity", "rank", "js", "js_usual", "psi", "ks", "wasserstein",
           "coverage_baseline", "coverage_incident", "coverage_delta", "mean_baseline", "mean_incident",
           "std_baseline", "std_incident", "p01_baseline", "p01_incident", "p50_baseline", "p50_incident",
           "p99_baseline", "p99_incident", "repeat_share_baseline", "repeat_share_incident",
           "distinct_baseline", "distinct_incident", "top_share_baseline", "top_share_incident",
           "effective_baseline", "effective_incident",
           "scale_ratio", "out_of_scale_baseline", "out_of_scale_incident", "out_of_scale_usual", "moved_share",
           "relation_baseline",
           "relation_incident", "relation_se", "label_relation_baseline", "label_relation_incident", "relation_drop",
           "fill_value", "fill_share_baseline", "fill_share_incident")


# ---------------------------------------------------------------- reference and profiles
@dataclass(frozen=True, slots=True)
class _Reference:
    features: tuple[str, ...]
    edges: dict[str, np.ndarray]
    band: dict[str, tuple[float, float]]  # |x| scale band
    spread: dict[str, float]  # IQR, else std, else 1


def _q(xs: np.ndarray, q: float | np.ndarray) -> np.ndarray:
    """Linear-interpolated quantiles of an already sorted array (numpy's default definition)."""
    pos = np.asarray(q) * (len(xs) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _sorted(frame: pl.DataFrame, features: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Each feature's non-null sample values, sorted once (quantiles, runs and edges all read them)."""
    return {f: np.sort(frame[f].drop_nulls().drop_nans().to_numpy()) if f in frame.columns else np.array([]) for f in features}


def _reference(sample: dict[str, np.ndarray] | pl.DataFrame, features: tuple[str, ...], bins: int) -> _Reference:
    if isinstance(sample, pl.DataFrame):
        sample = _sorted(sample, features)
    edges, band, spread = {}, {}, {}
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    for f in features:
        xs = sample[f]
        if not len(xs):
            edges[f], band[f], spread[f] = np.array([]), (0.0, math.inf), 1.0
            continue
        edges[f] = np.unique(_q(xs, qs))
        if edges[f][0] <= xs[0]:  # the lowest edge is the minimum itself: an atom (a boolean's 0, a clock feature
            # that holds one value over a short window). Bins are closed on the right, so a value below it would share
            # the atom's bin and read as no move, while the same move up leaves the top edge and reads as total; a
            # bin of its own below the minimum, as above the maximum, makes the two directions alike
            edges[f] = np.r_[np.nextafter(xs[0], -np.inf), edges[f]]
        # the scale band from the sorted values: |x| up to ten times its ~99th percentile, down to a tenth
        # of the ~1st percentile of the positive magnitudes (no second sort of |x|)
        hi = float(max(abs(_q(xs, 0.005)), abs(_q(xs, 0.995)))) * SCALE_BAND
        pos = xs[np.searchsorted(xs, 0.0, side="right"):]
        if not len(pos):
            pos = -xs[: np.searchsorted(xs, 0.0, side="left")][::-1]
        lo = float(_q(pos, 0.01)) / SCALE_BAND if len(pos) else 0.0
        band[f] = (lo, hi if hi > 0 else math.inf)
        q25, q75 = _q(xs, np.array([0.25, 0.75]))
        sd = float(np.std(xs))
        spread[f] = float(q75 - q25) if q75 > q25 else sd if sd > 0 else 1.0
    return _Reference(features, edges, band, spread)


def _profile_exprs(ref: _Reference, column: str = "{f}", suffix: str = "", count: pl.Expr | None = None) -> list[pl.Expr]:
    """The profile aggregations; ``column`` formats the input column name (``{f}``, ``{j}``)."""
    out: list[pl.Expr] = []
    for j, f in enumerate(ref.features):
        x = pl.col(column.format(f=f, j=j))
        e = ref.edges[f]
        lo, hi = ref.band[f]
        out += [x.count().alias(f"{j}|nn"), x.sum().alias(f"{j}|s1"), (x * x).sum().alias(f"{j}|s2"),
                x.abs().sum().alias(f"{j}|sabs"),
                ((x.abs() > hi) | ((x.abs() < lo) & (x != 0))).sum().alias(f"{j}|oos")]
        if len(e):
            out += [(x <= float(v)).sum().alias(f"{j}|c{k}") for k, v in enumerate(e)]
            out += [pl.when(x <= float(e[0])).then(x).sum().alias(f"{j}|le"),
                    pl.when(x > float(e[-1])).then(x).sum().alias(f"{j}|gt")]
    return [(pl.len() if count is None else count).alias(f"n{suffix}"), *((o.name.suffix(suffix) for o in out) if suffix else out)]


def _masked_profiles(lf: pl.LazyFrame, windows: list[Window], ref: _Reference) -> tuple[pl.LazyFrame, list[pl.Expr]]:
    """One query over the rows of all windows, each window's columns masked: one read instead of one per window."""
    masks = [w.contains(TS) for w in windows]
    masked = [pl.when(m).then(pl.col(f)).alias(f"{j}@{k}") for k, m in enumerate(masks) for j, f in enumerate(ref.features)]
    exprs = [e for k in range(len(masks)) for e in _profile_exprs(ref, f"{{j}}@{k}", f"#{k}", pl.col(f"_m{k}").sum())]
    return lf.filter(pl.any_horizontal(masks)).select(*masked, *[m.alias(f"_m{k}") for k, m in enumerate(masks)]), exprs


def _window_profiles(case: Case, windows: list[Window], ref: _Reference, cats: tuple[str, ...], extra: list[pl.LazyFrame],
                     sliced: bool = True) -> tuple[list[dict], dict[str, list[pl.DataFrame]], list[pl.DataFrame]] | None:
    """Profiles and category counts of ``windows`` of the serving log, plus the ``extra`` queries, in one ``collect_all``.

    Time-ordered logs are read window by window (:func:`~workbench.data._frames.window_frames`);
    otherwise one query reads the rows once and masks each window's columns. None
    when the row ranges turned out wrong (the log is not in time order): the
    caller redoes its passes with ``sliced=False``.
    """
    frames, is_sliced = window_frames(case, windows, sliced=sliced)
    if is_sliced:
        queries = [fr.select(_profile_exprs(ref)) for fr in frames]
        if cats:
            tagged = pl.concat([fr.select(*cats, pl.lit(k, pl.Int8).alias("_w")) for k, fr in enumerate(frames)])
            queries.append(tagged.group_by("_w", *cats).agg(pl.len()))
    else:
        base, exprs = _masked_profiles(case.predictions, windows, ref)
        queries = [base.select(exprs)]
        period: pl.Expr = pl.lit(None, pl.Int8)
        for k, w in reversed(list(enumerate(windows))):
            period = pl.when(w.contains(TS)).then(pl.lit(k, pl.Int8)).otherwise(period)
        if cats:
            queries.append(case.predictions.filter(pl.any_horizontal([w.contains(TS) for w in windows]))
                           .group_by(period.alias("_w"), *cats).agg(pl.len()))
    out = pl.collect_all(queries + extra, engine="streaming")
    more = out[len(queries):]
    counts: dict[str, list[pl.DataFrame]] = {}
    if is_sliced:
        profiles = [o.row(0, named=True) for o in out[: len(windows)]]
        if [p["n"] for p in profiles] != [window_rows(case, w) for w in windows]:  # the log is not in time order after all
            return None
    else:
        row = out[0].row(0, named=True)
        profiles = [{key.rsplit("#", 1)[0]: v for key, v in row.items() if key.endswith(f"#{w}")} for w in range(len(windows))]
    if cats:  # marginal counts per window and category value, from the small cross-product table
        tally: dict[str, list[dict]] = {c: [{} for _ in windows] for c in cats}
        for row in out[len(queries) - 1].iter_rows(named=True):
            for c in cats:
                d = tally[c][row["_w"]]
                d[row[c]] = d.get(row[c], 0) + row["len"]
        counts = {c: [pl.DataFrame({c: list(d), "len": list(d.values())}, schema={c: pl.String, "len": pl.Int64})
                      for d in tally[c]] for c in cats}
    return profiles, counts, more


def merge_profiles(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Profiles of disjoint parts -> the profile of their union."""
    return pl.concat(frames).select(pl.all().sum())  # every profile entry is a count or a sum


@dataclass(frozen=True, slots=True)
class _Stats:
    n: float
    nulls: float
    hist: np.ndarray  # non-null counts per bin, len(edges) + 1
    cdf: np.ndarray  # at the edges, over non-null values
    mean: float
    std: float
    tails: tuple[float, float]
    mean_abs: float
    oos: float  # out-of-scale share of non-null

    @property
    def full(self) -> np.ndarray:
        return np.r_[self.nulls, self.hist]


def _stats(row: dict, j: int, edges: np.ndarray) -> _Stats:
    n = float(row["n"])
    nn = float(row[f"{j}|nn"])  # non-null rows (the null count cannot be read off a masked column)
    nulls = n - nn
    cum = np.array([row[f"{j}|c{k}"] for k in range(len(edges))], dtype=float)
    hist = np.diff(np.r_[0.0, cum, nn]) if len(edges) else np.array([nn])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (row[f"{j}|s1"] or 0.0) / nn if nn else math.nan
        var = (row[f"{j}|s2"] or 0.0) / nn - mean * mean if nn else math.nan
        tails = (0.0, 0.0)
        if len(edges) and nn:
            lo = (cum[0] * edges[0] - (row[f"{j}|le"] or 0.0)) / nn
            hi = ((row[f"{j}|gt"] or 0.0) - (nn - cum[-1]) * edges[-1]) / nn
            tails = (lo, hi)
        return _Stats(n, nulls, hist, cum / nn if nn else cum * math.nan, mean, math.sqrt(max(var, 0.0)) if nn else math.nan,
                      tails, (row[f"{j}|sabs"] or 0.0) / nn if nn else math.nan, row[f"{j}|oos"] / nn if nn else math.nan)


STALE_ROWS = 20_000  # equal-size samples for distinct counts and the top value's share


def _equal_sample(xs: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` of the sorted values ``xs`` drawn without replacement, still sorted: counts of distinct or repeated values
    grow with the sample's size, so only equal sizes compare."""
    return xs if len(xs) == m else xs[np.sort(rng.choice(len(xs), m, replace=False))]


def _sample_stats(xb: np.ndarray, xi: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    """Quantiles (sorted samples) and staleness on equal-size subsamples."""
    out: dict[str, float] = {}
    for tag, xs in (("baseline", xb), ("incident", xi)):
        qs = _q(xs, np.array([0.01, 0.5, 0.99])) if len(xs) else [math.nan] * 3
        out |= {f"p01_{tag}": float(qs[0]), f"p50_{tag}": float(qs[1]), f"p99_{tag}": float(qs[2])}
    m = min(len(xb), len(xi), STALE_ROWS)
    for tag, xs in (("baseline", xb), ("incident", xi)):
        if m < 20:
            out[f"distinct_{tag}"] = out[f"repeat_share_{tag}"] = out[f"top_share_{tag}"] = out[f"effective_{tag}"] = math.nan
            continue
        sub = _equal_sample(xs, m, rng)
        change = np.flatnonzero(np.diff(sub) != 0)
        runs = np.diff(np.r_[-1, change, m - 1])
        out[f"distinct_{tag}"] = float(len(runs))
        out[f"repeat_share_{tag}"] = 1.0 - len(runs) / m
        out[f"top_share_{tag}"] = float(runs.max()) / m
        out[f"effective_{tag}"] = 1.0 / float(np.square(runs / m).sum())  # inverse Simpson: values in effective use
    return out


MOST = 0.8  # a feature that broke in a slice holding more of the traffic than this broke nearly everywhere
SLICE_ALPHA = 0.001  # family-wise over the slices a feature is compared in (Bonferroni)
RELATION_ROWS = 5_000  # rows per window for the correlation matrices (the SE of a correlation: ~0.014)
PARTNERS = 3  # the features a feature moved with most in the baseline


def _ranks(x: np.ndarray) -> np.ndarray:
    """Column ranks scaled to [0, 1] with NaN kept (Spearman's correlation is Pearson's on ranks).

    Average ranks of the present values, as ``scipy.stats.rankdata(..., nan_policy="omit")`` gives them (a test
    checks), computed by polars across columns in parallel: 4x faster on 1,000 columns.
    """
    present = np.isfinite(x).sum(axis=0)
    frame = pl.from_numpy(np.where(np.isfinite(x), x, np.nan)).fill_nan(None)
    out = frame.select(pl.all().rank("average").cast(pl.Float64) / pl.all().count()).to_numpy().astype(np.float64)
    out[:, present < 2] = np.nan
    return out


def _corr(x: np.ndarray) -> np.ndarray:
    """Pairwise correlation of the columns of ``x`` over rows where both are present (vectorized)."""
    m = np.isfinite(x).astype(float)
    z = np.nan_to_num(x)
    n = m.T @ m
    with np.errstate(invalid="ignore", divide="ignore"):
        s1, s2 = z.T @ m, (z * z).T @ m  # sums of column i over rows where column j is present
        sxy = z.T @ z
        cov = sxy - s1 * s1.T / n
        var_i, var_j = s2 - s1 * s1 / n, (s2 - s1 * s1 / n).T
        r = cov / np.sqrt(var_i * var_j)
    return np.where(n >= 30, r, np.nan)


def _rms(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.sqrt(np.mean(finite**2))) if len(finite) else math.nan


def relations(frame_b: pl.DataFrame, frame_i: pl.DataFrame, feats: tuple[str, ...], steady: set[str]) -> dict[str, dict[str, float]]:
    """How each feature moved with the others and with the label, in each window (model-free decorrelation).

    For feature ``j``: its ``PARTNERS`` strongest baseline partners ``P`` among the
    ``steady`` features (whose own distribution held: a partner that broke would drag the
    relation down with it), Spearman ``|rho| >= 0.2``; ``relation = sqrt(mean rho^2 over P)``
    in the baseline and, for the same partners, in the incident. And its rank correlation
    with the label in each window, the incident one scaled back by how much the other
    informative features' label correlations moved (their median ratio), so a change of
    the labels themselves (which weakens every feature's relation alike) is not read as
    one feature coming loose. ``relation_drop`` is the larger of the two drops, counted
    only when it exceeds three standard errors of a correlation on these rows and half the
    baseline value: a feature whose values were lagged, shuffled or joined on the wrong key
    keeps its distribution but stops moving with its row. A drop of 0.1 is Cohen's small effect.
    ``relation_se`` is that standard error (``1 / sqrt(rows)``).
    """
    if not feats:
        return {}
    rng = np.random.default_rng(3)

    def matrix(frame: pl.DataFrame) -> np.ndarray:
        x = frame.select([pl.col(f).cast(pl.Float64) for f in feats] + [pl.col(LABEL).cast(pl.Float64)]).to_numpy()
        if len(x) > RELATION_ROWS:
            x = x[np.sort(rng.choice(len(x), RELATION_ROWS, replace=False))]
        return _ranks(x)

    xb, xi = matrix(frame_b), matrix(frame_i)
    if len(xb) < 30 or len(xi) < 30:
        return {}
    rb, ri = _corr(xb), _corr(xi)
    d = len(feats)
    se = 1.0 / math.sqrt(min(len(xb), len(xi)))
    ok = np.array([f in steady for f in feats])
    lab_b, lab_i = np.abs(rb[:d, d]), np.abs(ri[:d, d])
    informative = ok & np.isfinite(lab_b) & np.isfinite(lab_i) & (lab_b >= 3 * se)
    out: dict[str, dict[str, float]] = {}
    for j, f in enumerate(feats):
        row = np.where(ok, np.abs(rb[j, :d]), np.nan)
        row[j] = np.nan
        order = np.argsort(np.nan_to_num(row, nan=-1.0))[::-1][:PARTNERS]
        partners = [k for k in order if np.isfinite(row[k]) and row[k] >= 0.2]
        rel_b, rel_i = (_rms(r[j, partners]) for r in (rb, ri))
        others = informative.copy()
        others[j] = False
        scale = float(np.median(lab_i[others] / lab_b[others])) if others.sum() >= 3 else math.nan
        expected = float(lab_b[j]) * scale
        drops = [b - i for b, i in ((rel_b, rel_i), (expected, float(lab_i[j])))
                 if math.isfinite(b) and math.isfinite(i) and b - i >= 3 * se and b - i >= 0.5 * b]
        out[f] = {"relation_baseline": rel_b, "relation_incident": rel_i, "relation_se": se, "label_relation_baseline": float(lab_b[j]),
                  "label_relation_incident": float(lab_i[j]), "relation_drop": max(drops, default=0.0)}
    return out


def _kind(severity: float, js_cov: float, js_val: float, moved: float, oos_delta: float, top_delta: float,
          fewer_values: bool = True) -> str:
    """The drift kind (module docstring). Staleness is values that stopped changing: the top value took the moved mass
    *and* fewer values remain (``fewer_values``, :func:`_fewer_values`); a boolean whose share of ones went from 57% to
    75% still uses both of its values (1.96 -> 1.60 in effect), which is a mix that moved, not a feed that froze.
    A feed that replays its last few dozen values has no top value (dev feature/stale_block/30: 34 values, the top
    one 3% of the rows), but it holds few of the values the baseline held in its range (:func:`_replayed`, read by
    :func:`_numeric_kind` on the samples where this says "distribution"), whatever their effective number. A feature
    left with no values in a window (all null) has no value distribution to compare (``js_val`` NaN): its whole move
    is coverage (dev feature/coverage_null/1, a feature 100% null, was "distribution" and its cause named no change)."""
    if not severity >= FLOOR:
        return "none"
    if js_cov >= js_val or not math.isfinite(js_val):  # no values left on a side to compare: only coverage moved
        return "coverage"
    if oos_delta >= KIND_SHARE * moved:
        return "scale"
    if fewer_values and top_delta >= KIND_SHARE * moved:
        return "stale"
    return "distribution"


def _unit_change(xb: np.ndarray, xi: np.ndarray) -> dict[str, float]:
    """The one factor that best maps the baseline's values onto the incident's (the ratio of their median nonzero
    magnitudes), and the KS distance between the two samples before and after applying it (sorted samples)."""
    mag_b, mag_i = np.abs(xb[xb != 0]), np.abs(xi[xi != 0])
    if not (len(mag_b) and len(mag_i)):
        return {"_unit_factor": math.nan, "_ks_sample": math.nan, "_ks_rescaled": math.nan}
    factor = float(np.median(mag_i) / np.median(mag_b))
    return {"_unit_factor": factor, "_ks_sample": ks_sorted(xb, xi), "_ks_rescaled": ks_sorted(xb * factor, xi)}


def _multiplied(change: dict[str, float]) -> bool:
    """A unit change (``change`` from :func:`_unit_change`): one factor (at least x1.5 or /1.5) maps the baseline's
    values onto the incident's, taking away at least ``KIND_SHARE`` of their KS distance, which a change of shape or
    mix does not do. Judged on the whole sample, not on a few moments: a heavy tail that a cap or a few outliers kept
    from scaling does not hide a median multiplied by 1,000."""
    factor, before, after = (change[k] for k in ("_unit_factor", "_ks_sample", "_ks_rescaled"))
    if not (math.isfinite(factor) and factor > 0 and abs(math.log(factor)) >= math.log(1.5)):
        return False
    return bool(math.isfinite(before) and math.isfinite(after) and after <= (1 - KIND_SHARE) * before)


def _numeric_rows(ref: _Reference, prof_b: dict, prof_i: dict, prof_p: dict | None, sample_b: dict[str, np.ndarray],
                  sample_i: dict[str, np.ndarray]) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for j, f in enumerate(ref.features):
        e = ref.edges[f]
        b, i = _stats(prof_b, j, e), _stats(prof_i, j, e)
        js = float(js_distance(b.full, i.full))
        usual = float(js_distance(_stats(prof_p, j, e).full, b.full)) if prof_p is not None else math.nan
        excess = js - usual if prof_p is not None and math.isfinite(usual) else js
        cov_b, cov_i = (b.n - b.nulls) / b.n if b.n else math.nan, (i.n - i.nulls) / i.n if i.n else math.nan
        moved = float(total_variation(b.hist, i.hist))
        ss = _sample_stats(sample_b[f], sample_i[f], rng)
        row = {
            "feature": f, "type": "numeric", "severity": max(0.0, excess), "_excess": excess,
            "js": js, "js_usual": usual, "psi": float(psi(b.full, i.full)), "ks": ks_from_cdf(b.cdf, i.cdf),
            "wasserstein": wasserstein_from_cdf(e, b.cdf, i.cdf, b.tails, i.tails) / ref.spread[f],
            "coverage_baseline": cov_b, "coverage_incident": cov_i, "coverage_delta": cov_i - cov_b,
            "mean_baseline": b.mean, "mean_incident": i.mean, "std_baseline": b.std, "std_incident": i.std,
            "scale_ratio": i.mean_abs / b.mean_abs if b.mean_abs else math.nan,
            "out_of_scale_baseline": b.oos, "out_of_scale_incident": i.oos,
            "out_of_scale_usual": _stats(prof_p, j, e).oos if prof_p is not None else math.nan, "moved_share": moved, **ss,
        }
        row["kind"], fill = _numeric_kind(max(0.0, excess), b, i, ss, sample_b[f], sample_i[f])
        row |= dict(zip(("fill_value", "fill_share_baseline", "fill_share_incident"), fill or (None, None, None), strict=True))
        rows.append(row)
    return rows


def _numeric_kind(severity: float, b: _Stats, i: _Stats, ss: dict[str, float], xb: np.ndarray,
                  xi: np.ndarray) -> tuple[str, tuple[float, float, float] | None]:
    """The drift kind of one numeric feature (module docstring) from its two windows' profiles, the staleness
    statistics of their samples (:func:`_sample_stats`) and the sorted samples themselves: the rules of the windows'
    profiles and of a slice's sampled rows (:func:`kind_of_samples`) in one place. With the kind, a ``default``'s
    fill value and its shares before and after (:func:`fill_value`), else None."""
    js_cov = float(js_distance(np.array([b.nulls, b.n - b.nulls]), np.array([i.nulls, i.n - i.nulls])))
    top_delta = ss["top_share_incident"] - ss["top_share_baseline"]
    fewer = _fewer_values(ss)
    moved = float(total_variation(b.hist, i.hist))
    kind = _kind(severity, js_cov, float(js_distance(b.hist, i.hist)), moved,
                 i.oos - b.oos if math.isfinite(i.oos - b.oos) else 0.0, top_delta if math.isfinite(top_delta) else 0.0,
                 fewer)
    # a replay, only where it decides: subsampling the samples costs ~1.5 ms a feature
    if kind == "distribution" and _replayed(xb, xi, np.random.default_rng(1)):
        kind = "stale"
    if kind in ("scale", "stale", "distribution"):  # a count served as -1 on 85 % of its rows left the scale band
        fill = fill_value(xb, xi, moved)
        if fill is not None:
            return "default", fill
    # only for a feature that moved without a kind yet: two KS distances over the samples cost ~25 ms a feature
    if kind == "distribution" and _multiplied(_unit_change(xb, xi)):
        return "scale", None
    return kind, None


FILL_VALUES = (0.0, -1.0)  # the sentinels pipelines serve for a missing value
FILL_RARE = 0.01  # ... when the baseline held that value on fewer rows than this (a default that was not there)


def fill_value(xb: np.ndarray, xi: np.ndarray, moved: float) -> tuple[float, float, float] | None:
    """The default a feature's rows took in place of their values, with its share of the present values before and
    after, or None: a sentinel (0 or -1) that the baseline held on under ``FILL_RARE`` of its rows and that took at
    least ``KIND_SHARE`` of the moved mass (``moved``, the total variation of the binned values). A feed frozen on its
    last value looks the same but for the value, which is any value the feed had: a rare one only by chance. A
    coverage loss served as a default is a coverage loss: the fix is the join or the feed that stopped filling the
    value, not the feed's freshness (held-back ``feature/coverage_default`` read "went stale" or "drifted"). A
    mean imputation is not told apart: a value within 0.05 standard deviations of the baseline's mean caught a dev
    feed frozen on its last value (``upstream/stale/17``: 0.8816 against a mean of 0.910, sd 1.17), and the serving
    mean need not be the one imputed. ``xb`` and ``xi``: the present values of the two windows' samples, sorted."""
    if not (len(xb) and len(xi)) or not moved > 0:
        return None
    best: tuple[float, float, float] | None = None
    for v in FILL_VALUES:
        before = float(np.searchsorted(xb, v, "right") - np.searchsorted(xb, v, "left")) / len(xb)
        after = float(np.searchsorted(xi, v, "right") - np.searchsorted(xi, v, "left")) / len(xi)
        if before < FILL_RARE and after - before > (best[2] - best[1] if best else 0.0):
            best = (v, before, after)
    return best if best is not None and best[2] - best[1] >= KIND_SHARE * moved else None


FEWER = 0.1  # "fewer values" by a share: an order of magnitude (in effective use; distinct, for a replay)


def _fewer_values(ss: dict[str, float]) -> bool:
    """Whether fewer values remain in equal-size samples: fewer distinct ones (a boolean frozen on one of its two), or
    an order of magnitude fewer in effective use (``FEWER``), by the inverse Simpson index ``1 / sum p_v^2``, the
    number of equally common values that would repeat as often. Distinct counts are made by the rarest values: a feed
    frozen on 4.8 for 93 % of its rows (dev feature/stale_constant/20, 51 grid values, 1.2 in effective use) still
    showed all 51 values in the other 7 %, and read "drifted". Half as many was too loose (a review): seven equally
    common values of which one rose to 55 % (7 -> 2.9), or a mix of three going 50/30/20 -> 90/5/5 (2.6 -> 1.2), are
    mixes that moved. Too few rows to count (NaN): true, so the top value's share alone decides."""
    return (not ss["distinct_incident"] >= ss["distinct_baseline"]
            or not ss["effective_incident"] > FEWER * ss["effective_baseline"])


def _replayed(xb: np.ndarray, xi: np.ndarray, rng: np.random.Generator) -> bool:
    """Whether the incident's values look replayed from a few earlier ones (a feed stuck on its recent past): they hold
    an order of magnitude fewer distinct values (``FEWER``) than the baseline held *in the same range* (equal-size
    samples of the incident's values and of the baseline's inside their minimum and maximum), on a decimal grid no
    coarser than before (:func:`_decimals`: a feed that started rounding to whole numbers repeats its values too,
    but it is a change of precision, not staleness; a review). A replay shows a few of the many values the baseline
    had there; a distribution that narrowed shows them all: 20,000 integers from 0-999 narrowed to 300-399 keep the
    100 values the baseline had in that range (a review), while dev feature/stale_block/19, replaying 8 values of a
    0.001 grid, holds 8 where the baseline held thousands. (A rise in the share of repeated values said the same
    only where the baseline seldom repeated: that grid repeats on 72 % of 20,000 rows already.) ``xb``, ``xi``: the
    present values of the two windows' samples, sorted."""
    if not (len(xb) and len(xi)):
        return False
    inside = xb[np.searchsorted(xb, xi[0], "left"):np.searchsorted(xb, xi[-1], "right")]
    m = min(len(inside), len(xi), STALE_ROWS)
    if m < 20:
        return False

    def distinct(xs: np.ndarray) -> int:
        return int(np.count_nonzero(np.diff(_equal_sample(xs, m, rng))) + 1)

    return distinct(xi) <= FEWER * distinct(inside) and _decimals(xi) >= _decimals(xb)


def _decimals(x: np.ndarray, most: int = 6) -> int:
    """The fewest decimals on whose grid 99 % of the finite values of ``x`` lie (``most + 1`` when none up to
    ``most``): 0 for whole numbers, 1 for halves or tenths. The tolerance allows for float32 storage (about 7
    significant digits)."""
    x = x[np.isfinite(x)]
    if not len(x):
        return most + 1
    for d in range(most + 1):
        q = x * 10.0**d
        if np.mean(np.abs(q - np.round(q)) <= 1e-3 + 1e-6 * np.abs(q)) >= 0.99:
            return d
    return most + 1


def _categorical_rows(cats: tuple[str, ...], counts: dict[str, list[pl.DataFrame]], placebo: bool) -> list[dict]:
    rows = []
    for c in cats:
        frames = counts[c]
        keys = sorted({v for fr in frames for v in fr[c].to_list() if v is not None})
        def vec(fr: pl.DataFrame, keys: list = keys, c: str = c) -> np.ndarray:
            d = dict(zip(fr[c].to_list(), fr["len"].to_list(), strict=True))
            return np.array([d.get(None, 0)] + [d.get(k, 0) for k in keys], dtype=float)
        vb, vi = vec(frames[0]), vec(frames[1])
        js = float(js_distance(vb, vi))
        usual = float(js_distance(vec(frames[2]), vb)) if placebo else math.nan
        excess = js - usual if placebo and math.isfinite(usual) else js
        nb, ni = vb.sum(), vi.sum()
        cov_b, cov_i = 1 - vb[0] / nb if nb else math.nan, 1 - vi[0] / ni if ni else math.nan
        top_b = vb[1:].max() / (nb - vb[0]) if nb - vb[0] > 0 else math.nan
        top_i = vi[1:].max() / (ni - vi[0]) if ni - vi[0] > 0 else math.nan
        moved = float(total_variation(vb[1:], vi[1:]))
        js_cov = float(js_distance(np.array([vb[0], nb - vb[0]]), np.array([vi[0], ni - vi[0]])))
        kind = _kind(max(0.0, excess), js_cov, float(js_distance(vb[1:], vi[1:])), moved, 0.0,
                     top_i - top_b if math.isfinite(top_i - top_b) else 0.0)
        rows.append({"feature": c, "type": "categorical", "kind": kind, "severity": max(0.0, excess), "_excess": excess,
                     "js": js, "js_usual": usual, "psi": float(psi(vb, vi)), "coverage_baseline": cov_b,
                     "coverage_incident": cov_i, "coverage_delta": cov_i - cov_b,
                     "distinct_baseline": float((vb[1:] > 0).sum()), "distinct_incident": float((vi[1:] > 0).sum()),
                     "top_share_baseline": top_b, "top_share_incident": top_i, "moved_share": moved})
    return rows


def _finish(rows: list[dict]) -> pl.DataFrame:
    schema = dict.fromkeys(COLUMNS, pl.Float64) | {"feature": pl.String, "type": pl.String, "kind": pl.String, "rank": pl.Int64}
    if not rows:
        return pl.DataFrame(schema=schema)
    frame = pl.DataFrame([{c: r.get(c) for c in (*COLUMNS, "_excess") if c != "rank"} for r in rows],
                         schema={c: schema.get(c, pl.Float64) for c in (*COLUMNS, "_excess") if c != "rank"})
    frame = frame.with_columns(pl.col(pl.Float64).fill_nan(None)).sort("_excess", descending=True, nulls_last=True)
    return frame.with_columns(pl.int_range(1, frame.height + 1).alias("rank")).select(COLUMNS)


# ---------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One row per feature (numeric, then the categorical slice columns), ranked by severity.

    ``reference`` is ``"baseline"`` (window vs window) or ``"training"`` (serving vs
    ``training.parquet``); ``placebo`` is the window that measured each feature's
    usual drift (``js_usual``), if any. See the module docstring for the columns.
    """

    table: pl.DataFrame
    baseline: Window | None
    incident: Window
    reference: str = "baseline"
    placebo: Window | None = None

    @property
    def broken(self) -> pl.DataFrame:
        """Rows whose kind is not ``none``, worst first."""
        return self.table.filter(pl.col("kind") != "none")

    def to_dict(self) -> dict:
        return {"reference": self.reference, "baseline": self.baseline.to_dict() if self.baseline else None,
                "incident": self.incident.to_dict(), "placebo": self.placebo.to_dict() if self.placebo else None,
                "table": records(self.table)}

    def __str__(self) -> str:
        ref = str(self.baseline) if self.baseline else "training.parquet"
        broken = self.broken
        lines = [f"feature drift, {self.incident} vs {ref}: {broken.height} of {self.table.height} features broke"]
        for r in self.table.head(max(3, min(broken.height, 8))).iter_rows(named=True):
            lines.append(f"  {r['rank']:>2}. {r['feature']:<28} {r['kind']:<12} severity {fmt(r['severity'])}  "
                         f"coverage {fmt(r['coverage_baseline'], 2)}->{fmt(r['coverage_incident'], 2)}  psi {fmt(r['psi'], 2)}")
        return "\n".join(lines)


def _features(case: Case, features: tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    return case.features if features is None else check_columns(case, features, "feature", case.features)


def _placebo(case: Case, baseline: Window, incident: Window) -> Window | None:
    lag = incident.start - baseline.start
    if lag.total_seconds() <= 0:
        return None
    start, end = max(baseline.start - lag, case.start), baseline.end - lag
    if end <= start or (end - start) < 0.5 * baseline.duration:
        return None
    return Window(start, end)


def _sample(case: Case, window: Window, target: int, columns: list[str], sliced: bool = True) -> pl.LazyFrame:
    """A hash sample of about ``target`` rows of ``window`` (lazy)."""
    (frame,), _ = window_frames(case, [window], sliced=sliced)
    keep = hash_sample(window_rows(case, window), target)
    return (frame if keep is None else frame.filter(keep)).select(columns)


def feature_drift(case: Case, baseline: Window, incident: Window, *, features: tuple[str, ...] | list[str] | None = None,
                  categorical: bool = True, bins: int = BINS, sample_rows: int = SAMPLE_ROWS, placebo: bool = True,
                  scan: WindowScan | None = None) -> FeatureDrift:
    """Every feature, baseline vs incident window: coverage, PSI, JS, KS, W1, moments, staleness, scale, severity.

    ``scan`` (:func:`workbench.data.scan.window_scan` over these windows) supplies the profiles, category counts and
    window samples without reading the log; its samples are the pass-1 hash sample's rows, so quantiles, staleness,
    relations and the bin edges agree with this function's own samples within sampling error (counts on the edges
    are exact either way).

    >>> from workbench import open_case
    >>> from workbench import detect_onset
    >>> case = open_case("sample_data/cases/feature_coverage_drop")
    >>> onset = detect_onset(case)
    >>> feature_drift(case, onset.baseline, onset.incident).table["kind"][0]
    'coverage'
    """
    feats = _features(case, features)
    cats = case.slices if categorical else ()
    pw = _placebo(case, baseline, incident) if placebo else None
    windows = [baseline, incident] + ([pw] if pw else [])
    scanned = scan.drift_inputs(baseline, incident, pw, feats, cats, bins, sample_rows, STALE_ROWS) if scan is not None else None
    if scanned is not None:  # the fused passes (workbench.data.scan) computed the same profiles, counts and samples
        ref, profiles, counts, frame_b, frame_i = scanned
        sample_b = _sorted(frame_b, feats)
    else:
        for sliced in (True, False):
            # pass 1: the reference sample fixes the edges
            frame_b = _sample(case, baseline, sample_rows, [*feats, LABEL], sliced).collect(engine="streaming")
            sample_b = _sorted(frame_b, feats)
            ref = _reference(sample_b, feats, bins)
            # pass 2: every window's profile, the category counts and the incident sample (quantiles, staleness, relations)
            done = _window_profiles(case, windows, ref, cats, [_sample(case, incident, STALE_ROWS, [*feats, LABEL], sliced)], sliced)
            if done is not None:
                break
        assert done is not None
        profiles, counts, (frame_i,) = done
    rows = _numeric_rows(ref, profiles[0], profiles[1], profiles[2] if pw else None, sample_b, _sorted(frame_i, feats))
    related = relations(frame_b, frame_i, feats, {r["feature"] for r in rows if r["kind"] == "none"})
    for row in rows:
        rel = related.get(row["feature"], {})
        row |= rel
        if row["kind"] == "none" and rel.get("relation_drop", 0.0) >= FLOOR:
            # the values kept their distribution but no longer belong to their rows
            row["kind"], row["severity"] = "decorrelated", rel["relation_drop"]
    rows += _categorical_rows(cats, counts, pw is not None)
    return FeatureDrift(table=_finish(rows), baseline=baseline, incident=incident, reference="baseline", placebo=pw)


def training_skew(case: Case, window: Window, *, features: tuple[str, ...] | list[str] | None = None, bins: int = BINS,
                  sample_rows: int = SAMPLE_ROWS) -> FeatureDrift:
    """Serving (``window``) vs ``training.parquet`` for every feature the training sample has."""
    if case.training is None:
        raise WorkbenchError(case.root, "no training.parquet: training-serving skew needs a sample of training examples.",
                             "add training.parquet (ts, label and the feature columns) to the case.")
    tschema = case.training.collect_schema()
    feats = tuple(f for f in _features(case, features) if f in tschema)
    cats = tuple(c for c in case.slices if c in tschema)
    train_rows = case.training.select(pl.len()).collect().item()
    keep = hash_sample(train_rows, sample_rows) if TS in tschema else None
    sample_t = _sorted((case.training if keep is None else case.training.filter(keep)).select(list(feats)).collect(), feats)
    ref = _reference(sample_t, feats, bins)
    train = [case.training.select(_profile_exprs(ref))] + [case.training.group_by(c).agg(pl.len()) for c in cats]
    done = None
    for sliced in (True, False):
        done = _window_profiles(case, [window], ref, cats, [*train, _sample(case, window, STALE_ROWS, list(feats), sliced)], sliced)
        if done is not None:
            break
    assert done is not None
    serving, scounts, more = done
    counts = {c: [more[1 + k], scounts[c][0]] for k, c in enumerate(cats)}
    rows = _numeric_rows(ref, more[0].row(0, named=True), serving[0], None, sample_t, _sorted(more[-1], feats))
    rows += _categorical_rows(cats, counts, False)
    return FeatureDrift(table=_finish(rows), baseline=None, incident=window, reference="training")


def feature_timeline(case: Case, features: tuple[str, ...] | list[str] | None = None, every: str = "1h", *,
                     scheduler: object = None) -> pl.DataFrame:
    """Coverage and mean per time window per feature (long format: window, feature, rows, coverage, mean), one pass
    (on a Dask cluster with ``scheduler``: :func:`workbench.data._frames.collect_sums`)."""
    feats = _features(case, features)
    aggs = [pl.len().alias("rows")]
    for j, f in enumerate(feats):
        x = pl.col(f).cast(pl.Float64)
        aggs += [x.null_count().alias(f"{j}|null"), x.count().alias(f"{j}|nn"), x.sum().alias(f"{j}|sum")]
    period = pl.col(TS).dt.truncate(every).alias("window")
    wide = collect_sums(case, lambda rows: rows.group_by(period).agg(aggs), ["window"], scheduler=scheduler)
    parts = [wide.select("window", "rows", pl.lit(f).alias("feature"), (1 - pl.col(f"{j}|null") / pl.col("rows")).alias("coverage"),
                         pl.when(pl.col(f"{j}|nn") > 0).then(pl.col(f"{j}|sum") / pl.col(f"{j}|nn")).alias("mean"))
             for j, f in enumerate(feats)]
    return pl.concat(parts).sort("feature", "window") if parts else pl.DataFrame()


def arrival_hours(timeline: pl.DataFrame, onset: datetime, before: Window, columns: tuple[str, ...] = ("mean", "coverage")
                  ) -> float:
    """How long a feature's change took to arrive: hours from 20% to 80% of its move, on the per-period statistic
    (of ``columns`` of :func:`feature_timeline`) that moved most beyond its period-to-period noise.

    ``timeline`` is one feature's rows of :func:`feature_timeline`. A statistic's move is from
    its median over ``before`` to the median of the last third of the periods after ``onset``,
    its noise ``1.4826 MAD`` over ``before``; progress is smoothed by a running median of
    three periods. A break arrives within a period or two; a population shift over many
    hours or days. The arrival is timed where the change shows: a feed frozen on two values
    drawn from its recent past moves its daily mean by 3.5 of the mean's daily noise, so the
    mean's progress wanders and a step reads as days, while its coverage stepped from 95%
    to 100% at once, 25 times its noise (dev feature/stale_block/16: 96 h on the mean, a
    "shift"). A coverage's noise is at least its binomial sampling error at the period's rows:
    a feed that never had a null has a MAD of 0, and one null in ten thousand after the onset
    must not outweigh a mean that moved sixty times its noise (a review's case). NaN when no
    statistic moved.
    """
    t = timeline.sort("window")
    in_before = t.filter(before.contains("window"))
    after = t.filter(pl.col("window") >= pl.lit(onset))
    if in_before.is_empty() or after.height < 3:
        return math.nan
    best: tuple[float, str, float, float] | None = None
    for column in columns:
        base, final = in_before[column].median(), after.tail(max(after.height // 3, 1))[column].median()
        if not isinstance(base, (int, float)) or not isinstance(final, (int, float)) or not math.isfinite(final - base) \
                or final == base:
            continue
        mad = (in_before[column] - base).abs().median()
        spread = MAD_TO_SD * (float(mad) if isinstance(mad, (int, float)) else 0.0)
        if column == "coverage":  # a share: never less noisy than its sampling error (a feed with no nulls has MAD 0)
            typical = in_before["rows"].median()
            c, rows = (base + final) / 2, float(typical) if isinstance(typical, (int, float)) else 0.0
            spread = max(spread, math.sqrt(c * (1 - c) / rows) if rows > 0 else math.inf)
        moved = abs(final - base) / spread if spread > 0 else math.inf
        if best is None or moved > best[0]:
            best = (moved, column, float(base), float(final))
    if best is None:
        return math.nan
    _, column, base, final = best
    around = t.filter(pl.col("window") >= pl.lit(onset - (before.end - before.start)))
    progress = ((around[column] - base) / (final - base)).rolling_median(3, min_samples=1).to_numpy()
    times = around["window"].to_numpy()
    reached = np.flatnonzero(progress >= 0.8)
    if not len(reached):
        return math.nan
    t80 = int(reached[0])
    below = np.flatnonzero(progress[:t80] <= 0.2)
    t20 = int(below[-1]) if len(below) else 0
    return float((times[t80] - times[t20]) / np.timedelta64(1, "h"))


# ---------------------------------------------------------------- where a feature broke
def kind_of_samples(before: np.ndarray, after: np.ndarray, *, seed: int = 0) -> str:
    """The drift kind (module docstring) of one feature from two samples of its raw values (NaN = null), by the same
    rules as the windows' profiles (:func:`_numeric_kind`): bin edges and scale band from ``before``, the moved mass
    from the binned counts, staleness and a unit change from the sorted samples. It classifies a break found inside
    one slice, which the whole traffic's profile dilutes (a x10 unit change on a third of the rows reads as a drift
    there); the severity is the plain JS distance, since the slice search already compared the break with the rest
    of the traffic's drift."""
    xb, xi = (np.sort(x[np.isfinite(x)]) for x in (before, after))
    ref = _reference({"x": xb}, ("x",), BINS)
    b, i = (_sample_profile(raw, xs, ref.edges["x"], ref.band["x"]) for raw, xs in ((before, xb), (after, xi)))
    ss = _sample_stats(xb, xi, np.random.default_rng(seed))
    return _numeric_kind(float(js_distance(b.full, i.full)), b, i, ss, xb, xi)[0]


def _sample_profile(raw: np.ndarray, xs: np.ndarray, edges: np.ndarray, band: tuple[float, float]) -> _Stats:
    """A window profile (:class:`_Stats`) of a sample: ``raw`` its values (NaN = null), ``xs`` the present ones sorted."""
    nn = float(len(xs))
    cum = np.searchsorted(xs, edges, side="right").astype(float)
    hist = np.diff(np.r_[0.0, cum, nn]) if len(edges) else np.array([nn])
    lo, hi = band
    mag = np.abs(xs)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _Stats(float(len(raw)), float(len(raw)) - nn, hist, cum / nn if nn else cum * math.nan,
                      float(xs.mean()) if nn else math.nan, float(xs.std()) if nn else math.nan, (0.0, 0.0),
                      float(mag.mean()) if nn else math.nan,
                      float(((mag > hi) | ((mag < lo) & (xs != 0))).mean()) if nn else math.nan)


@dataclass(frozen=True, slots=True)
class FeatureSlices:
    """For one feature: its break (JS distance, null bin included) per slice value and in the rest of traffic.

    ``table``: ``slice``, ``level``, ``share``, ``js`` (inside), ``js_rest`` (outside),
    ``p`` (the G test's p-value that the slice's two windows share one distribution),
    ``coverage_baseline``, ``coverage_incident``, ``mean_baseline``, ``mean_incident``,
    ``score = js - js_rest``, ``new`` (a single value with under ``NEW_BELOW`` baseline rows, new in the incident, as
    the slice search counts it: compared with the whole baseline, the traffic it joined). ``concentrated`` is true
    when a slice holding less than
    ``MOST`` of the traffic broke (``js >= 0.1``, and ``p`` below ``SLICE_ALPHA`` over the
    slices compared: sampling error is the floor) and the rest did not (``js_rest < 0.1``);
    such slices rank first, the smallest description first (a single value before a pair).
    """

    feature: str
    table: pl.DataFrame
    baseline: Window
    incident: Window
    concentrated: bool

    @property
    def top(self) -> dict | None:
        return self.table.row(0, named=True) if self.table.height else None

    def to_dict(self) -> dict:
        return {"feature": self.feature, "baseline": self.baseline.to_dict(), "incident": self.incident.to_dict(),
                "concentrated": self.concentrated, "top": records(self.table.head(1))[0] if self.table.height else None,
                "table": records(self.table)}

    def __str__(self) -> str:
        if not self.table.height:
            return f"{self.feature}: no slices"
        t = self.top
        assert t is not None
        where = f"only in {t['slice']}" if self.concentrated else f"not confined to one slice (top {t['slice']})"
        return f"{self.feature} broke {where}: JS {fmt(t['js'])} inside vs {fmt(t['js_rest'])} outside, share {fmt(t['share'], 2)}"


def feature_by_slice(case: Case, feature: str, baseline: Window, incident: Window,
                     columns: tuple[str, ...] | list[str] | None = None, pairs: bool = True,
                     sample_rows: int = SAMPLE_ROWS, *, reference: pl.DataFrame | None = None,
                     scheduler: object = None) -> FeatureSlices:
    """In which slice value (or pair) did ``feature`` break? One grouped pass over that feature and the slice columns.

    The bin edges come from ``reference`` (baseline rows holding ``feature``, e.g. the
    window's share of the pass-1 sample, :meth:`workbench.data.scan.LogScan.window_sample`)
    or from a sample of the baseline drawn here; with ``scheduler`` the pass runs on a Dask
    cluster (:func:`workbench.data._frames.collect_sums`).
    """
    from workbench.data.slices import NEW_BELOW

    check_columns(case, [feature], "feature", case.features)
    cols = case.slices if columns is None else check_columns(case, columns, "slice", case.slices)
    sample = reference if reference is not None and reference.height else \
        _sample(case, baseline, sample_rows, [feature]).collect(engine="streaming")
    ref = _reference(sample, (feature,), BINS)
    e = ref.edges[feature]
    x = pl.col(feature).cast(pl.Float64)
    aggs = [pl.len().alias("rows"), x.null_count().alias("null"), x.sum().alias("s1")]
    aggs += [(x <= float(v)).sum().alias(f"c{k}") for k, v in enumerate(e)]
    cells = collect_sums(case, lambda rows: rows.group_by(PERIOD, *cols).agg(aggs), [PERIOD, *cols],
                         windows={"b": baseline, "i": incident}, scheduler=scheduler)
    cells = cells.rename({"rows": "n", PERIOD: "_p"})
    sums = ["n", "null", "s1"] + [f"c{k}" for k in range(len(e))]
    groups = [(c,) for c in cols] + (list(itertools.combinations(cols, 2)) if pairs else [])
    tot = {p: cells.filter(pl.col("_p") == p).select(pl.col(s).sum() for s in sums).row(0, named=True) for p in ("b", "i")}
    out = []
    for g in groups:
        agg = cells.group_by("_p", *g).agg(pl.col(s).sum() for s in sums)
        label = pl.concat_str([pl.lit(f"{c}=") + pl.col(c).fill_null("null") for c in g], separator=" & ")
        wide = agg.with_columns(label.alias("slice")).pivot(on="_p", index="slice", values=sums).fill_null(0)
        for r in wide.iter_rows(named=True):
            inside = {p: {s: float(r.get(f"{s}_{p}", 0) or 0) for s in sums} for p in ("b", "i")}
            rest = {p: {s: (tot[p][s] or 0) - inside[p][s] for s in sums} for p in ("b", "i")}
            # a value with nothing of its own before is compared with the traffic it joined (one column only: a pair
            # holding a new value would be compared with traffic of every value of its other column)
            new = len(g) == 1 and inside["b"]["n"] < NEW_BELOW <= inside["i"]["n"]
            before = {s: float(tot["b"][s] or 0) for s in sums} if new else inside["b"]
            cells_in = _cells(before, len(e)), _cells(inside["i"], len(e))
            js_in = _js_of(*cells_in)
            js_out = _js_of(_cells(rest["b"], len(e)), _cells(rest["i"], len(e)))
            n_i = tot["i"]["n"] or 1
            out.append({"slice": r["slice"], "level": len(g), "share": inside["i"]["n"] / n_i, "js": js_in, "js_rest": js_out,
                        "p": _changed_p(*cells_in),
                        "coverage_baseline": _cov(before), "coverage_incident": _cov(inside["i"]),
                        "mean_baseline": _mean(before), "mean_incident": _mean(inside["i"]), "score": js_in - js_out,
                        "new": new})
    table = pl.DataFrame(out, schema={"slice": pl.String, "level": pl.Int64, "share": pl.Float64, "js": pl.Float64,
                                      "js_rest": pl.Float64, "p": pl.Float64, "coverage_baseline": pl.Float64,
                                      "coverage_incident": pl.Float64, "mean_baseline": pl.Float64,
                                      "mean_incident": pl.Float64, "score": pl.Float64, "new": pl.Boolean})
    table = table.with_columns(pl.col(pl.Float64).fill_nan(None))
    # the smallest description that holds the break: among slices where the feature broke inside (js >= FLOOR, and
    # beyond sampling error: a slice of a few dozen rows reaches JS 0.4 by chance) and not outside (js_rest < FLOOR)
    # on a minority of the traffic, single values before pairs, then by score
    level = SLICE_ALPHA / max(table.height, 1)
    holds = ((pl.col("js").fill_null(0) >= FLOOR) & (pl.col("p").fill_null(1.0) <= level)
             & (pl.col("js_rest").fill_null(1) < FLOOR) & (pl.col("share") < MOST))
    table = table.with_columns(holds.alias("_holds")).sort(
        ["_holds", "level", "score"], descending=[True, False, True], nulls_last=True)
    concentrated = bool(table.height and table["_holds"][0])
    return FeatureSlices(feature=feature, table=table.drop("_holds"), baseline=baseline, incident=incident,
                         concentrated=concentrated)


def _cells(s: dict[str, float], k: int) -> np.ndarray:
    """One window's counts per cell: the null bin, then the ``k + 1`` bins the ``k`` edges cut."""
    nn = s["n"] - s["null"]
    cum = np.array([s[f"c{j}"] for j in range(k)])
    return np.r_[s["null"], np.diff(np.r_[0.0, cum, nn])] if k else np.array([s["null"], nn])


def _js_of(before: np.ndarray, after: np.ndarray) -> float:
    """JS distance of two windows' cell counts (:func:`_cells`); NaN when one holds no rows."""
    if before.sum() < 1 or after.sum() < 1:
        return math.nan
    return float(js_distance(before, after))


def _changed_p(before: np.ndarray, after: np.ndarray) -> float:
    """P-value of "the two windows draw their cells (:func:`_cells`) from one distribution" (the G test of
    homogeneity, chi-square with cells - 1 degrees of freedom; ``G = 2 N I``, ``I`` the mutual information between
    window and cell)."""
    counts = np.vstack([before, after])
    counts = counts[:, counts.sum(axis=0) > 0]
    total = counts.sum()
    if counts.shape[1] < 2 or counts.sum(axis=1).min() < 1:
        return math.nan
    expected = counts.sum(axis=1, keepdims=True) * counts.sum(axis=0, keepdims=True) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        g = 2.0 * float(np.where(counts > 0, counts * np.log(counts / expected), 0.0).sum())
    from scipy.special import chdtrc  # the chi-square survival function; scipy.stats would cost 2 s to import

    return float(chdtrc(counts.shape[1] - 1, g))


def _cov(s: dict[str, float]) -> float:
    return 1 - s["null"] / s["n"] if s["n"] else math.nan


def _mean(s: dict[str, float]) -> float:
    nn = s["n"] - s["null"]
    return s["s1"] / nn if nn else math.nan

