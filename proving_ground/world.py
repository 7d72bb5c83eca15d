"""The generated world: features, slices, the true click probability, and rows sampled from it.

Every feature ``j`` has a latent standard-normal value ``r_j`` per row:

    r_j = loading_j * Z[group_j] + sqrt(1 - loading_j²) * e_j        (latent factors Z)
    r_m = sqrt(1 - ε²) * r_bundle + ε * e_m                          (bundle members, ε ≈ 0.1)

and a logged value ``x_j = transform_j(r_j)`` (gaussian, lognormal, integer count,
rate in [0, 1], binary, bounded score, or a clock feature such as ``hour_of_week``),
with natural nulls. The *true* logit is a function of the latent values, not the
logged ones: a logging bug changes what the model sees, not what the user does.

    logit = b0 + Σ_signal w_j r_j                        (strong and weak tiers; a binary acts via its latent)
               + hinge: -a·softplus(k(r_h - c))/k       (one strong feature saturates and turns far out)
               + interaction: d·(b - share_b)·r_m       (a binary feature changes another's slope)
               + slice effects + daily/weekly cycles + holiday + hidden N(0, σ²)

Zero-weight features appear in none of these terms: they are pure removal
candidates (they still correlate with signal features through the latent factors).
The hinge and the interaction are rarely active on the normal population, which is
what makes a population *shift* hurt a model fitted before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from proving_ground.split import SPLITS

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
MONDAY_US = 4 * DAY_US  # 1970-01-05 was a Monday


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


@dataclass
class Feature:
    """One numeric feature column: how its values are made and how much it matters."""

    name: str
    family: str                 # gauss | lognormal | count | rate | binary | score | time
    group: int                  # latent factor (-1: none)
    loading: float
    tier: str                   # strong | weak | zero | clock
    weight: float = 0.0         # on r_j (binary: on x - share) in the true logit
    bundle: int = -1            # bundle id, -1 when not in a bundle
    bundle_eps: float = 0.0
    null_rate: float = 0.0
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "family": self.family, "group": self.group, "loading": round(self.loading, 4),
                "tier": self.tier, "weight": round(self.weight, 6), "bundle": self.bundle,
                "null_rate": round(self.null_rate, 4), "params": self.params}


@dataclass
class SliceCol:
    name: str
    values: tuple[str, ...]
    shares: np.ndarray          # base shares
    effects: np.ndarray         # logit effect per value
    factor_shift: np.ndarray    # shift of latent factor 0 per value


@dataclass
class World:
    features: list[Feature]
    slices: list[SliceCol]
    n_factors: int
    b0: float
    hidden_sd: float
    daily_amp: float
    daily_phase: float
    weekly_amp: float
    weekly_phase: float
    factor_daily_amp: float
    hinge: dict | None          # {"feature": j, "c": .., "a": .., "k": ..}
    interaction: dict | None    # {"binary": j, "partner": m, "d": .., "share": ..}
    bundles: list[dict]         # {"features": [j...], "signal": j, "base": bundle id}
    tz_hours: int
    # nuisances (set by the scenario): slow drift of factor means, traffic mix drift, holiday
    drift: np.ndarray | None = None          # per-factor mean change over the whole log
    mix: np.ndarray | None = None            # logit change of slice 0 shares over the whole log
    holiday: tuple[int, int, float, float] | None = None   # (from_us, to_us, volume_factor, logit_offset)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def zero_weight(self) -> list[int]:
        return [j for j, f in enumerate(self.features) if f.tier == "zero"]


# --------------------------------------------------------------------------- building a world
def _feature_names(rng: np.random.Generator, split: str, n: int, n_bundles: int,
                   clock: bool = True) -> tuple[list[tuple[str, str]], list[list[int]]]:
    """(name, family) for n features, of which the first members form bundles of 2-4 related names."""
    v = SPLITS[split].vocab
    used: set[str] = set()
    out: list[tuple[str, str]] = []
    bundles: list[list[int]] = []
    quantities = list(v.quantities)
    windowed = {q for q, fam in v.quantities.items() if fam in ("count", "rate", "lognormal")}
    n_clock = 1 if (n >= 6 and rng.random() < 0.5 and clock) else 0
    budget = n - n_clock
    for _ in range(n_bundles):
        size = int(rng.integers(2, 5))
        if budget - size < 2:
            break
        for _try in range(50):
            ent = str(rng.choice(v.entities))
            q = str(rng.choice([q for q in quantities if v.quantities[q] != "binary"]))
            if q in windowed:
                wins = rng.choice(v.windows, size=min(size, len(v.windows)), replace=False)
                names = [f"{ent}_{q}_{w}" for w in wins]
            else:
                names = [f"{ent}_{q}"] + [f"{ent}_{q}_{s}" for s in v.bundle_suffixes[: size - 1]]
            if not used & set(names):
                break
        else:
            continue
        idx = []
        for nm in names:
            used.add(nm)
            idx.append(len(out))
            out.append((nm, v.quantities[q]))
        bundles.append(idx)
        budget -= len(names)
    standalone = [k for k, fam in v.standalone.items() if fam != "time"]
    clocks = [k for k, fam in v.standalone.items() if fam == "time"]
    tries = 0
    while len(out) < n - n_clock and tries < 10_000:
        tries += 1
        if rng.random() < 0.1 and standalone:
            nm = str(rng.choice(standalone))
            fam = v.standalone[nm]
        else:
            ent = str(rng.choice(v.entities))
            q = str(rng.choice(quantities))
            fam = v.quantities[q]
            nm = f"{ent}_{q}_{rng.choice(v.windows)}" if q in windowed else f"{ent}_{q}"
        if nm not in used:
            used.add(nm)
            out.append((nm, fam))
    if n_clock:
        out.append((str(rng.choice(clocks)), "time"))
    return out, bundles


def _transform_params(fam: str, name: str, rng: np.random.Generator) -> dict:
    p: dict = {}
    if fam == "gauss":
        p = {"mu": float(rng.uniform(-1, 1)), "sd": float(rng.uniform(0.3, 2.0))}
    elif fam == "lognormal":
        p = {"mu": float(rng.uniform(-1, 4)), "s": float(rng.uniform(0.4, 1.2))}
    elif fam == "count":
        mu = float(rng.uniform(0.3, 4.5))
        for w, add in (("1h", -1.5), ("30m", -2.0), ("1d", -0.5), ("24h", -0.5), ("28d", 1.2), ("90d", 1.6), ("14d", 0.9)):
            if name.endswith("_" + w):
                mu += add
        p = {"mu": mu, "s": float(rng.uniform(0.5, 1.1))}
    elif fam == "rate":
        p = {"a": float(rng.uniform(-4, -0.5)), "b": float(rng.uniform(0.3, 0.9))}
    elif fam == "binary":
        share = float(rng.uniform(0.08, 0.75))
        p = {"share": share, "thr": float(_probit(1 - share))}
    elif fam == "score":
        p = {"hi": float(rng.choice([1.0, 5.0, 10.0, 100.0])), "k": float(rng.uniform(0.6, 1.4)), "c": float(rng.uniform(-0.8, 0.8))}
    if fam in ("gauss", "lognormal", "rate", "score") and rng.random() < 0.5:
        p["decimals"] = int(rng.integers(1, 5))
    return p


def _probit(q: float) -> float:
    # inverse of the logistic approximation to the normal CDF used below (Φ(x) ≈ σ(1.702 x))
    q = min(max(q, 1e-6), 1 - 1e-6)
    return math.log(q / (1 - q)) / 1.702


def build_world(split: str, n_features: int, n_factors: int, n_bundles: int, n_slices: int, signal_sd: float,
                hidden_sd: float, base_rate: float, rng: np.random.Generator, needs: frozenset[str] = frozenset(),
                clock: bool = True) -> World:
    """Draw the feature set, weights, nonlinear terms and slices, then solve the intercept for the base rate.

    ``needs`` asks for structure an incident relies on: ``"hinge"`` (a saturating strong
    feature that loads on a latent factor) or ``"binary"`` (a binary feature with an
    interaction), so a population-shift scenario always has something to shift into.
    """
    named, bundle_idx = _feature_names(rng, split, n_features, n_bundles, clock)
    in_bundle = {j for idx in bundle_idx for j in idx}
    if "binary" in needs and not any(fam == "binary" for _, fam in named):
        v = SPLITS[split].vocab
        free = [j for j, (_, fam) in enumerate(named) if j not in in_bundle and fam != "time"]
        bq = [q for q, fam in v.quantities.items() if fam == "binary"]
        taken = {nm for nm, _ in named}
        for _ in range(100):
            nm = f"{rng.choice(v.entities)}_{rng.choice(bq)}"
            if nm not in taken:
                named[free[-1]] = (nm, "binary")
                break
    feats: list[Feature] = []
    for nm, fam in named:
        if fam == "time":
            feats.append(Feature(nm, fam, -1, 0.0, "clock"))
            continue
        group = int(rng.integers(n_factors))
        loading = float(rng.uniform(0.3, 0.85)) if rng.random() < 0.85 else 0.0
        null_rate = 0.0 if rng.random() < 0.4 else float(rng.uniform(0.0, 0.1))
        feats.append(Feature(nm, fam, group, loading, "weak", null_rate=null_rate,
                             params=_transform_params(fam, nm, rng)))
    bundles = []
    for b, idx in enumerate(bundle_idx):
        group, loading = feats[idx[0]].group, feats[idx[0]].loading
        sig = int(rng.choice(idx))
        for j in idx:
            f = feats[j]
            f.group, f.loading, f.bundle, f.bundle_eps = group, loading, b, float(rng.uniform(0.06, 0.12))
            f.tier = "zero" if j != sig else ("strong" if rng.random() < 0.5 else "weak")
            if j != idx[0] and f.family == feats[idx[0]].family:  # a sibling of the same quantity: similar scale
                f.params = dict(feats[idx[0]].params, **({"mu": feats[idx[0]].params["mu"] + float(rng.uniform(-0.7, 0.7))}
                                                         if "mu" in f.params and f.family != "gauss" else {}))
        bundles.append({"features": idx, "signal": sig, "base": b})
    # tiers of the features outside bundles: a few strong ones carry most of the signal, many weak ones,
    # about a quarter with exactly zero weight (at least one when there are 4+ free features)
    free = [j for j, f in enumerate(feats) if f.bundle < 0 and f.tier != "clock"]
    order = list(rng.permutation(free))
    n_strong = int(np.clip(round(len(feats) * rng.uniform(0.08, 0.25)), 1, 6))
    for i, j in enumerate(order):
        if i < n_strong:
            feats[j].tier = "strong"
        elif i == n_strong and len(free) >= 4:
            feats[j].tier = "zero"
        else:
            feats[j].tier = str(rng.choice(["weak", "zero"], p=[0.65, 0.35]))
    if "hinge" in needs and not any(f.tier == "strong" and f.family not in ("binary", "time") and f.loading > 0.4 for f in feats):
        pick = [j for j in free if feats[j].family not in ("binary", "time")] or list(free)
        j = int(rng.choice(pick))
        feats[j].tier, feats[j].loading = "strong", max(feats[j].loading, 0.6)
        if feats[j].family in ("binary", "time"):
            feats[j].family, feats[j].params = "gauss", _transform_params("gauss", feats[j].name, rng)
    if "binary" in needs:
        for f in feats:
            if f.family == "binary" and f.tier == "zero" and f.bundle < 0:
                f.tier = "strong"
        if not any(f.tier in ("strong", "weak") and f.family not in ("binary", "time") for f in feats):
            j = next(j for j in free if feats[j].family not in ("binary", "time"))
            feats[j].tier = "strong"
    for f in feats:
        if f.tier == "strong":
            f.weight = float(rng.choice([-1, 1]) * rng.uniform(0.6, 1.0))
        elif f.tier == "weak":
            f.weight = float(rng.choice([-1, 1]) * rng.uniform(0.03, 0.15))
    # a hinge on a strong feature that loads on a factor (population shifts move it), an interaction with a binary
    cand = [j for j, f in enumerate(feats) if f.tier == "strong" and f.family not in ("binary", "time") and f.loading > 0.4]
    hinge = None
    if cand:
        h = int(rng.choice(cand))
        hinge = {"feature": h, "c": float(rng.uniform(1.4, 2.0)), "a": float(rng.uniform(1.2, 2.0)) * feats[h].weight, "k": 3.0}
    bins = [j for j, f in enumerate(feats) if f.family == "binary" and f.tier != "zero"]
    partners = [j for j, f in enumerate(feats) if f.tier in ("strong", "weak") and f.family not in ("binary", "time")]
    interaction = None
    if bins and partners:
        b, m = int(rng.choice(bins)), int(rng.choice(partners))
        lo, hi = (0.9, 1.5) if "binary" in needs else (0.3, 0.9)
        interaction = {"binary": b, "partner": m, "d": float(rng.choice([-1, 1]) * rng.uniform(lo, hi)),
                       "share": feats[b].params["share"]}
    slices = _slices(split, n_slices, rng)
    w = World(features=feats, slices=slices, n_factors=n_factors, b0=0.0, hidden_sd=hidden_sd,
              daily_amp=float(rng.uniform(0.0, 0.2)), daily_phase=float(rng.uniform(0, 24)),
              weekly_amp=float(rng.uniform(0.0, 0.12)), weekly_phase=float(rng.uniform(0, 7)),
              factor_daily_amp=float(rng.uniform(0.0, 0.25)), hinge=hinge, interaction=interaction, bundles=bundles,
              tz_hours=int(rng.integers(-8, 10)))
    # scale the weights so the feature part of the logit has the drawn sd, then solve the intercept
    probe_ts = np.sort(rng.integers(0, 14 * DAY_US, 20_000)) + 1_735_689_600 * 1_000_000
    rows = sample_rows(w, probe_ts, rng)
    sd = float(np.std(rows.feat))
    if sd > 0:
        s = signal_sd / sd
        for f in feats:
            f.weight *= s
        if hinge:
            hinge["a"] *= s
        if interaction:
            interaction["d"] *= s
        rows = sample_rows(w, probe_ts, rng)
    other = rows.ctx + rows.hidden
    lo, hi = -15.0, 5.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if sigmoid(mid + rows.feat + other).mean() < base_rate:
            lo = mid
        else:
            hi = mid
    w.b0 = 0.5 * (lo + hi)
    return w


def _slices(split: str, n: int, rng: np.random.Generator) -> list[SliceCol]:
    v = SPLITS[split].vocab
    names = list(rng.choice(list(v.slices), size=min(n, len(v.slices)), replace=False))
    out = []
    for i, nm in enumerate(names):
        pool = v.slices[nm]
        k = int(rng.integers(2, min(12, len(pool)) + 1))
        values = tuple(str(x) for x in rng.choice(pool, size=k, replace=False))
        shares = rng.dirichlet(np.full(k, 1.2))
        if rng.random() < 0.5:  # one value dominates
            top = float(rng.uniform(0.6, 0.9))
            rest = shares[1:] / shares[1:].sum() * (1 - top) if k > 1 else np.array([])
            shares = np.concatenate([[top], rest])
        shares = np.maximum(shares, 0.01)
        shares /= shares.sum()
        sd = float(rng.uniform(0.05, 0.35))
        out.append(SliceCol(str(nm), values, shares, rng.normal(0, sd, k),
                            rng.normal(0, 0.3, k) if i == 0 else np.zeros(k)))
    return out


# --------------------------------------------------------------------------- sampling rows
@dataclass
class Rows:
    """Rows sampled from a world (columns as arrays; R and X are [n, n_features] float32)."""

    ts: np.ndarray        # int64 microseconds since the epoch, sorted
    slices: np.ndarray    # [n, n_slices] int16 codes
    R: np.ndarray         # latent values
    X: np.ndarray         # logged values, NaN = null
    feat: np.ndarray      # feature part of the true logit (float64)
    ctx: np.ndarray       # slice + cycles + holiday part
    hidden: np.ndarray    # unobserved part
    b0: float

    @property
    def logit(self) -> np.ndarray:
        return self.b0 + self.feat + self.ctx + self.hidden

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, idx: np.ndarray) -> Rows:
        return Rows(ts=self.ts[idx], slices=self.slices[idx], R=np.asfortranarray(self.R[idx]), X=np.asfortranarray(self.X[idx]),
                    feat=self.feat[idx], ctx=self.ctx[idx], hidden=self.hidden[idx], b0=self.b0)


def _frac(ts: np.ndarray, t0: int, t1: int) -> np.ndarray:
    return np.clip((ts - t0) / max(t1 - t0, 1), 0.0, 1.0)


def sample_rows(w: World, ts: np.ndarray, rng: np.random.Generator, t_range: tuple[int, int] | None = None) -> Rows:
    """Rows at the given (sorted) times: slices, latent factors, features with nulls, the true logit parts.

    ``t_range`` is the log's (start, end) in microseconds; slow nuisances (drift, traffic
    mix) move linearly across it. Training rows pass None and see the world as at the start.
    """
    n = len(ts)
    F = len(w.features)
    frac = _frac(ts, *t_range) if t_range else np.zeros(n)
    hour = ((ts // HOUR_US) % 24).astype(np.float64) + (ts % HOUR_US) / HOUR_US
    dow = ((ts - MONDAY_US) // DAY_US) % 7
    # slices (Gumbel-max sampling with time-varying shares for slice 0 under a traffic-mix drift)
    codes = np.zeros((n, len(w.slices)), dtype=np.int16)
    ctx = np.zeros(n)
    z0_shift = np.zeros(n)
    for i, s in enumerate(w.slices):
        logits = np.log(s.shares)
        if i == 0 and w.mix is not None:
            g = -np.log(-np.log(rng.random((n, len(s.values)))))
            c = np.argmax(logits[None, :] + frac[:, None] * w.mix[None, :] + g, axis=1)
        else:
            c = rng.choice(len(s.values), size=n, p=s.shares)
        codes[:, i] = c
        ctx += s.effects[c]
        z0_shift += s.factor_shift[c]
    ctx += w.daily_amp * np.sin(2 * np.pi * (hour - w.daily_phase) / 24)
    ctx += w.weekly_amp * np.sin(2 * np.pi * (dow + hour / 24 - w.weekly_phase) / 7)
    if w.holiday is not None:
        a, b, _, off = w.holiday
        ctx += np.where((ts >= a) & (ts < b), off, 0.0)
    Z = rng.standard_normal((n, w.n_factors), dtype=np.float32)
    Z[:, 0] += (z0_shift + w.factor_daily_amp * np.sin(2 * np.pi * hour / 24)).astype(np.float32)
    if w.drift is not None:
        Z += (frac[:, None] * w.drift[None, :]).astype(np.float32)
    # column-major: every step below works on one feature's column, which must be contiguous
    R = rng.standard_normal((F, n), dtype=np.float32).T  # idiosyncratic parts, overwritten in place below
    bundle_base: dict[int, np.ndarray] = {}
    for j, f in enumerate(w.features):
        if f.family == "time":
            R[:, j] = 0.0
            continue
        if f.bundle >= 0:
            if f.bundle not in bundle_base:
                e = rng.standard_normal(n, dtype=np.float32)
                bundle_base[f.bundle] = f.loading * Z[:, f.group] + np.float32(math.sqrt(1 - f.loading ** 2)) * e
            R[:, j] *= np.float32(f.bundle_eps)
            R[:, j] += np.float32(math.sqrt(1 - f.bundle_eps ** 2)) * bundle_base[f.bundle]
        elif f.loading:
            R[:, j] *= np.float32(math.sqrt(1 - f.loading ** 2))
            R[:, j] += np.float32(f.loading) * Z[:, f.group]
    X = np.empty((n, F), dtype=np.float32, order="F")
    nulls = np.array([f.null_rate for f in w.features], dtype=np.float32)
    for j, f in enumerate(w.features):
        X[:, j] = transform(f, R[:, j], ts, w.tz_hours)
    if nulls.any():
        for j in np.flatnonzero(nulls):
            X[rng.random(n, dtype=np.float32) < nulls[j], j] = np.nan
    feat = feature_logit(w, R, X)
    hidden = rng.standard_normal(n) * w.hidden_sd
    return Rows(ts=ts, slices=codes, R=R, X=X, feat=feat, ctx=ctx, hidden=hidden, b0=w.b0)


def transform(f: Feature, r: np.ndarray, ts: np.ndarray, tz_hours: int = 0) -> np.ndarray:
    """Latent value -> logged value for one feature's distribution family (float32)."""
    p = f.params
    r = r.astype(np.float64)
    if f.family == "time":
        if f.name == "hour_of_week":
            x = ((ts - MONDAY_US) // HOUR_US) % 168
        elif f.name == "day_of_week":
            x = ((ts - MONDAY_US) // DAY_US) % 7
        else:
            x = ((ts // HOUR_US) + tz_hours) % 24
        return x.astype(np.float32)
    if f.family == "gauss":
        x = p["mu"] + p["sd"] * r
    elif f.family == "lognormal":
        x = np.exp(p["mu"] + p["s"] * r)
    elif f.family == "count":
        x = np.floor(np.exp(p["mu"] + p["s"] * r))
    elif f.family == "rate":
        x = sigmoid(p["a"] + p["b"] * r)
    elif f.family == "binary":
        x = (r > p["thr"]).astype(np.float64)
    elif f.family == "score":
        x = p["hi"] * sigmoid(1.702 * p["k"] * r + p["c"])
    else:
        raise ValueError(f.family)
    if "decimals" in p:
        x = np.round(x, p["decimals"])
    return x.astype(np.float32)


def feature_logit(w: World, R: np.ndarray, X: np.ndarray | None = None) -> np.ndarray:
    """The feature part of the true logit from latent values (binary features enter as their 0/1 value).

    Only latent values are read (``X`` is accepted for symmetry and ignored), so the truth
    never depends on what was *logged*: a logging bug cannot change the user's behaviour.
    """
    out = np.zeros(len(R))
    for j, f in enumerate(w.features):
        if f.weight == 0.0 or f.tier == "zero":
            continue
        # a binary feature is a thresholded proxy of a latent propensity, and the user acts on the propensity:
        # the model sees only the indicator, so a population shift in the propensity moves its calibration
        out += f.weight * R[:, j]
    if w.hinge:
        h = w.hinge
        out -= h["a"] * softplus(h["k"] * (R[:, h["feature"]] - h["c"])) / h["k"]
    if w.interaction:
        it = w.interaction
        b = w.features[it["binary"]]
        out += it["d"] * ((R[:, it["binary"]] > b.params["thr"]) - it["share"]) * R[:, it["partner"]]
    return out
