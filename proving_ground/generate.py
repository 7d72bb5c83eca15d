"""From a scenario to a case directory: the pipeline.

1. **World** (``world.build_world``): features, bundles, tiers, slices, nonlinear terms,
   intercept solved for the base rate; nuisances (drift, traffic mix, holiday) set.
2. **Traffic** (``traffic``): served timestamps, then rows sampled from the world, the
   true click probability and labels ``y = u < p`` with one uniform ``u`` per row (so a
   changed world re-draws labels coupled to the clean ones), label joins and delay.
3. **Model** (``served``): fitted on a training pool from before the log, then a
   chain of published snapshots (mean-reverting perturbations and short fine-tunes).
4. **Targets**: which feature / source / slice / tensor the incident hits, chosen with
   the model's own feature importance so the incident matters to *this* model.
5. **Realization with escalation**: the incident is applied to the incident window
   only, in stages (world change -> logged features -> snapshot -> re-score ->
   serving transform -> label logging); its realized effect against the
   counterfactual (same rows, no incident) is measured. If it is not material or
   under 6 standard errors (the window's and its history's, in quadrature), severity is raised within the split's bands, then the
   strongest target is used, then the incident is made to last; the attempts are
   recorded.
6. **Files** (``writer``): the serving log and optional files, then ``truth.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from proving_ground import lineage as lin
from proving_ground import metrics, served, traffic, writer
from proving_ground.scenario import Scenario, onset_bounds, rng_for
from proving_ground.split import SPLITS, severity_top
from proving_ground.world import DAY_US, HOUR_US, build_world, feature_logit, sample_rows, sigmoid, transform

TRUTH_VERSION = 1
#: Bump whenever the same scenario would generate a different case (benchmark caches check it).
GENERATOR_VERSION = 10  # 10: truth.json adds counterfactual.ideal (the logs are version 9's);
#                         9: for a population shift that ramps in, the redraw's onset weighs the share of the step the
#                         window's clicks reached (8 moved a ramping shift to a later onset and lost its effect);
#                         cases with no redraw of a shift are version 8's;
#                         8: a redraw moves the onset to where the window and its history are best balanced
#                         (_balanced_onset), no longer to the earliest allowed time; cases that need no redraw are
#                         version 7's;
#                         7: detectability counts the error of the history before the onset (metrics.effect; a
#                         history without a click counts as none since the commit after ffbbf50, which writes the
#                         same case as ffbbf50 unless no click precedes the onset: none of the 90 segment and sparse
#                         incidents measured on dev seeds 0-5, 15-23 and held seeds 111-113, compared byte for byte);
#                         6: the first snapshot is calibrated like every refresh (5: multi/two_features never draws
#                         its two features from one pipeline; seeded MLP initialisation)

_SCALE_UP = [(2.0, "double counted"), (3.6, "m/s -> km/h"), (10.0, "x10"), (60.0, "minutes -> seconds"),
             (100.0, "ratio -> percent"), (1000.0, "seconds -> milliseconds")]
_SCALE_DOWN = [(0.5, "halved"), (0.1, "x0.1"), (1 / 60, "seconds -> minutes"), (0.01, "percent -> ratio"),
               (0.001, "milliseconds -> seconds")]

_CHANGE = {"coverage_null": "coverage", "coverage_default": "coverage", "scale": "scale", "stale_constant": "stale",
           "stale_block": "stale", "decorrelated_shuffle": "decorrelated", "decorrelated_lag_hours": "decorrelated",
           "decorrelated_lag_days": "decorrelated", "mixed": "coverage", "coverage": "coverage", "stale": "stale"}


def _us(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1_000_000)


def _segment(causes: list[dict]) -> tuple[int, str] | None:
    """The (slice column index, value) an incident is confined to, or None (one cause at most carries a segment)."""
    return next((c["segment"] for c in causes if c.get("segment") is not None), None)


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate(scenario: Scenario, out_dir: str | Path) -> Path:
    """Write the case for ``scenario`` into ``out_dir`` (created; must be empty or absent). Returns the path.

    Deterministic: the same scenario writes the same truth and the same prediction bytes.
    Torch runs on one thread while generating (restored afterwards).
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        redraws: list[dict] = []
        sc = scenario
        while True:
            try:
                _Gen(sc, out, original=scenario, redraws=redraws).run()
                break
            except _Redraw as r:
                redraws.append(r.overrides)
                sc = dataclasses.replace(sc, **r.overrides)
    finally:
        torch.set_num_threads(threads)
    return out


class _Redraw(Exception):
    """Not detectable even after escalation: regenerate with more traffic and a lasting incident at a balanced onset."""

    def __init__(self, overrides: dict) -> None:
        super().__init__(str(overrides))
        self.overrides = overrides


class _Gen:
    def __init__(self, sc: Scenario, out: Path, original: Scenario | None = None, redraws: list | None = None) -> None:
        self.sc = sc
        self.out = out
        self.original = original or sc
        self.redraws = list(redraws or [])

    def rng(self, tag: str) -> np.random.Generator:
        sc = self.sc
        return rng_for(sc.split, sc.family, sc.mode, sc.seed, tag)

    # ------------------------------------------------------------------ pipeline
    def run(self) -> None:
        sc = self.sc
        t0 = time.perf_counter()
        fam, mode = sc.family, sc.mode
        if fam == "sparse" and mode == "with_incident":
            self.fam, self.mode = sc.incident["inner"].split(":")
        else:
            self.fam, self.mode = fam, mode
        needs = {("shift", "latent"): frozenset({"hinge"}), ("shift", "boolean_share"): frozenset({"binary"})}.get((fam, mode), frozenset())
        w = build_world(sc.split, sc.n_features, sc.n_factors, sc.n_bundles, sc.n_slices, sc.signal_sd, sc.hidden_sd,
                        sc.base_rate, self.rng("world"), needs=needs, clock=sc.span_hours >= 336)
        self.w = w
        self.F = len(w.features)
        self.start = _us(sc.start)
        self.end = self.start + int(sc.span_hours * HOUR_US)
        self.onset = None if sc.onset_hours is None else self.start + int(sc.onset_hours * HOUR_US)
        self.inc_end = None if sc.end_hours is None else self.start + int(sc.end_hours * HOUR_US)
        self._nuisances()
        # traffic, rows, labels
        trng = self.rng("traffic")
        ts = traffic.timestamps(self.start, sc.span_hours, sc.rows_per_hour, sc.daily_amplitude, sc.weekly_amplitude,
                                trng, holiday=w.holiday)
        self.rows = sample_rows(w, ts, self.rng("log"), (self.start, self.end))
        self.n = len(ts)
        self.u = self.rng("labels").random(self.n).astype(np.float32)
        self.y_clean = (self.u < sigmoid(self.rows.logit)).astype(np.int8)
        self.joined = traffic.joined(ts, self.end, sc.label_delay_hours, sc.join_rate, self.rng("join"))
        # training pool and model
        # training examples from before the log; negatives downsampled (weights 1/keep), as CTR training does, so
        # even a 0.5 % base rate gives the model a few thousand positives without fitting on 600k rows
        prng = self.rng("train")
        self.train_days = float(prng.uniform(7, 28))
        n_full = int(min(300_000, max(40_000, 3000 / sc.base_rate)))
        ts_tr = np.sort(prng.integers(self.start - int(self.train_days * DAY_US), self.start - HOUR_US, n_full))
        full = sample_rows(w, ts_tr, prng, None)
        y_full = (prng.random(n_full) < sigmoid(full.logit)).astype(np.int8)
        k = min(sc.training_rows, n_full)
        tidx = np.sort(prng.permutation(n_full)[:k])
        self.training_sample = (full.ts[tidx], y_full[tidx], np.asfortranarray(full.X[tidx]))
        keep = min(1.0, 36_000 / max(1, int((y_full == 0).sum())))
        sel = np.flatnonzero((y_full == 1) | (prng.random(n_full) < keep))
        self.pool = full.take(sel)
        self.y_pool = y_full[sel]
        self.w_pool = np.where(self.y_pool == 1, 1.0, 1.0 / keep)
        self.neg_keep = keep
        self.train_base_rate = float(y_full.mean())
        del full
        frng = self.rng("format")
        toml = sc.files.get("workbench_toml", True)
        self.spec = served.ModelSpec(
            sc.model_kind, self.F, output=sc.model_output if toml else "logit",
            shape=sc.format.get("output_shape", "n"),
            factory=str(frng.choice(["build", "make_model", "create_model"])) if (sc.variety and toml) else "build",
            cls=str(frng.choice(["CtrModel", "Ranker", "ClickNet"])))
        mrng = self.rng("model")
        heavy = np.array([f.family in ("count", "lognormal") for f in w.features])
        self.state0 = served.fit(self.spec, self.pool.X, self.y_pool, mrng, heavy=heavy, sample_weight=self.w_pool)
        self.scorer = served.Scorer(self.spec)
        # read before _chain re-fits the first snapshot's output bias: a logit shift that leaves importance as it is
        self.imp = served.importance(self.scorer, self.state0, self.pool.X[:3000])
        self._chain(mrng)
        # names, lineage, targets
        slice_names = [s.name for s in w.slices]
        self.cols = writer.column_names(w.names, slice_names, sc.format.get("odd_names", False), toml, frng)
        self._targets()
        # realization with escalation; a redraw (more traffic, a balanced onset, lasting) as the last resort
        self._realize_with_escalation()
        if self.real is not None and not self.real["detectable"] and sc.family != "sparse" and len(self.redraws) < 2:
            over = self._redraw_overrides()
            if over:
                raise _Redraw(over)
        self._write(frng)
        self.seconds = time.perf_counter() - t0

    def _redraw_overrides(self) -> dict:
        sc = self.sc
        over: dict[str, Any] = {}
        onset = self._balanced_onset()
        if sc.onset_hours is not None and abs(sc.onset_hours - onset) > 1e-6:
            over["onset_hours"] = onset
        if sc.end_hours is not None:
            over["end_hours"] = None
        cap = sc.max_rows / sc.span_hours
        if sc.rows_per_hour < cap * 0.99:
            over["rows_per_hour"] = round(min(cap, sc.rows_per_hour * 3), 6)
        return over

    def _balanced_onset(self) -> float:
        """The allowed onset (hours from the start) that makes the window's comparison with its history most precise.

        The detectability z divides the effect by both windows' errors in quadrature (``metrics.effect``), and the
        error of a log click count goes as ``1 / sqrt(k)``: the onset minimising ``1/k_before + 1/k_after`` over the
        labelled clicks (the segment's, for a segment incident) balances the two. A population shift that ramps in
        over ``ramp_hours`` carries, in the window, only the mean share of its step its clicks reached, so for it the
        onset maximises that share over the same error.

        Up to version 7 a redrawn onset moved to the earliest allowed time, which maximised the window when only its
        error counted and starves the history now that it counts too (a fifth of the clicks before it, at best:
        variance 6.25/k against 4/k; 36 % in the test's case). Version 8 weighed the clicks alone, which moved a
        ramping shift to a later onset, where a shorter window holds less of its effect (dev
        ``shift/boolean_share/18``, the test's ``shift/latent/0``).
        """
        sc = self.sc
        lo, hi, _ = onset_bounds(sc.span_hours, sc.label_delay_hours)
        clicks = self.joined & (self.y_clean == 1)
        segment = _segment(self.causes)
        if segment is not None:
            clicks &= self.rows.slices[:, segment[0]] == segment[1]
        at = np.sort((self.rows.ts[clicks] - self.start) / HOUR_US)
        grid = np.linspace(lo, hi, 41)
        before = np.searchsorted(at, grid).astype(float)
        after = len(at) - before
        variance = 1.0 / np.maximum(before, 1.0) + 1.0 / np.maximum(after, 1.0)
        # the share of a step the window's clicks carry: 1, or less for a shift that ramps in after the onset. Summed
        # from prefix sums of the click times: clicks past the ramp carry 1, those on it (t - onset) / ramp
        ramp = float(sc.incident.get("ramp_hours") or 0.0) if sc.family == "shift" else 0.0
        carried = np.ones(len(grid))
        if ramp > 0 and len(at):
            on_ramp_end = np.searchsorted(at, grid + ramp)
            cum = np.concatenate([[0.0], np.cumsum(at)])
            start = before.astype(int)
            on_ramp = (cum[on_ramp_end] - cum[start] - grid * (on_ramp_end - start)) / ramp
            carried = (on_ramp + (len(at) - on_ramp_end)) / np.maximum(after, 1.0)
        return round(float(grid[int(np.argmax(carried / np.sqrt(variance)))]), 4)

    # ------------------------------------------------------------------ nuisances
    def _nuisances(self) -> None:
        sc, w = self.sc, self.w
        r = self.rng("nuisance")
        self.holiday = None
        if sc.mode == "organic_drift":
            w.drift = (r.choice([-1.0, 1.0], w.n_factors) * sc.incident["drift_sd"] * (r.random(w.n_factors) < 0.7)).astype(np.float32)
        elif sc.mode == "traffic_mix" and w.slices:
            k = len(w.slices[0].values)
            mix = np.zeros(k)
            top = int(np.argmax(w.slices[0].shares))
            other = int(r.choice([i for i in range(k) if i != top]))
            mix[other] = sc.incident["mix_logit"]
            mix[top] = -0.5 * sc.incident["mix_logit"]
            w.mix = mix
        elif sc.mode == "holiday":
            day = (self.onset // DAY_US) * DAY_US
            if day < self.start + DAY_US:
                day += DAY_US
            w.holiday = (int(day), int(day + DAY_US), sc.incident["volume_factor"], sc.incident["logit_offset"])
            self.holiday = w.holiday

    # ------------------------------------------------------------------ snapshots
    def _chain(self, mrng: np.random.Generator) -> None:
        """Regular refreshes: publish times and states (independent of the incident)."""
        sc = self.sc
        self.pub = served.schedule(self.start, self.end, sc.refresh_hours, mrng)
        cal_idx = mrng.permutation(len(self.pool))[:6000]
        cal_rows = (self.pool.X[cal_idx], self.y_pool[cal_idx], self.w_pool[cal_idx])

        def calibrated(state: dict) -> dict:
            # a training pipeline ships calibrated models: every routine snapshot's output bias is re-fit on the same
            # training rows, the first one's too (version 5 left it as fitted, and the first refresh stepped the
            # served predictions, by up to 16 %)
            return served.recalibrate(self.scorer, state, *cal_rows)

        self.state0 = calibrated(self.state0)
        states = [self.state0]
        for _ in self.pub[1:]:
            prev = states[-1]
            if mrng.random() < 0.25:
                idx = mrng.integers(0, len(self.pool), 4000)
                st = served.fine_tune(self.spec, prev, self.pool.X[idx], self.y_pool[idx], steps=10, lr=0.003,
                                      sample_weight=self.w_pool[idx])
            else:
                st = served.perturb(prev, self.state0, 0.01, mrng)
            states.append(calibrated(st))
        self.states = states
        if self.fam == "label" and self.onset is not None and len(self.pub) > 1:
            # a routine (benign) refresh published near the onset: a distractor
            k = int(np.argmin([abs(t - self.onset) for t in self.pub[1:]])) + 1
            t = self.onset + int(mrng.uniform(-3, 1) * HOUR_US)
            lo = self.pub[k - 1] + HOUR_US
            hi = self.pub[k + 1] - HOUR_US if k + 1 < len(self.pub) else self.end
            self.pub[k] = int(min(max(t, lo), hi))
        self.id_prefix = str(mrng.choice(SPLITS[sc.split].vocab.snapshot_prefixes))
        self.id_seed = int(mrng.integers(2 ** 31))
        self.next_good_state = calibrated(served.perturb(states[-1], self.state0, 0.01, mrng))

    def _snapshots(self, end: int | None, bad_state: dict | None, bad_note: str = "", fallback: float | None = None):
        """(final list served, counterfactual list) of Snapshot objects for an incident lasting until ``end``."""
        sc = self.sc
        entries = []  # (time, state, bad)
        if self.fam == "snapshot" and self.onset is not None:
            for t, s in zip(self.pub, self.states, strict=True):
                if t < self.onset or (end is not None and t >= end):
                    entries.append((t, s, False))
            entries.append((self.onset, bad_state, True))
            if end is not None:
                entries.append((end, self.next_good_state, False))
            entries.sort(key=lambda e: e[0])
        else:
            entries = [(t, s, False) for t, s in zip(self.pub, self.states, strict=True)]
        ids = served.snapshot_ids(sc.snapshot_style, [t for t, _, _ in entries], np.random.default_rng(self.id_seed), self.id_prefix)
        srng = np.random.default_rng(self.id_seed + 1)
        ref = self.onset if self.onset is not None else self.end
        snaps = []
        for (t, s, bad), sid in zip(entries, ids, strict=True):
            stable = (not bad) and t < ref - 2 * DAY_US and srng.random() < 0.3
            snaps.append(served.Snapshot(sid, int(t), s, stable=bool(stable), bad=bad,
                                         note=bad_note if bad else "refresh", fallback=fallback if bad else None))
        cf = [s for s in snaps if not s.bad]
        return snaps, cf

    def _serve(self, snaps: list[served.Snapshot], X: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and serving-snapshot index for rows (sorted by ts) under a snapshot list."""
        times = np.array([s.published_us for s in snaps], dtype=np.int64)
        idx = np.searchsorted(times, ts, side="right") - 1
        idx = np.maximum(idx, 0)
        p = np.empty(len(ts))
        bounds = np.searchsorted(idx, np.arange(len(snaps) + 1))
        for k, s in enumerate(snaps):
            a, b = bounds[k], bounds[k + 1]
            if b > a:
                p[a:b] = self.scorer.probs(s, X[a:b])
        return p, idx

    # ------------------------------------------------------------------ targets
    def _cand(self, allow_binary: bool = True) -> list[int]:
        return [j for j, f in enumerate(self.w.features) if f.family != "time" and (allow_binary or f.family != "binary")]

    def _pick_feature(self, r: np.random.Generator, allow_binary: bool = True, exclude: tuple[int, ...] = ()) -> int:
        cand = [j for j in self._cand(allow_binary) if j not in exclude]
        imp = self.imp[cand]
        order = np.argsort(-imp)
        top = [cand[i] for i in order[: max(1, (len(cand) + 1) // 2)]]
        weights = np.maximum(self.imp[top], 1e-9)
        return int(r.choice(top, p=weights / weights.sum()))

    def _strongest(self, allow_binary: bool = True, exclude: tuple[int, ...] = ()) -> int:
        cand = [j for j in self._cand(allow_binary) if j not in exclude]
        return int(cand[int(np.argmax(self.imp[cand]))])

    def _pick_segment(self, r: np.random.Generator, lo: float, hi: float) -> tuple[int, int]:
        opts, shares = [], []
        n = self.n
        for i, s in enumerate(self.w.slices):
            counts = np.bincount(self.rows.slices[:, i], minlength=len(s.values)) / max(n, 1)
            for v, c in enumerate(counts):
                opts.append((i, v))
                shares.append(c)
        shares = np.array(shares)
        ok = [k for k, c in enumerate(shares) if lo <= c <= hi]
        if not ok:  # the value closest to the band
            ok = [int(np.argmin(np.abs(shares - (lo + hi) / 2)))]
        return opts[int(r.choice(ok))]

    def _targets(self) -> None:
        """Choose what the incident hits (recorded in truth), and build the lineage around it."""
        sc, _w = self.sc, self.w
        r = self.rng("targets")
        fam, mode = self.fam, self.mode
        self.causes: list[dict] = []
        culprit = None
        if fam == "feature":
            inner = sc.incident["inner"] if mode == "slice_confined" else mode
            j = self._pick_feature(r, allow_binary=inner not in ("scale", "mixed"))
            c = {"family": "feature", "mode": mode, "change_mode": inner, "features": [j], "segment": None}
            if mode == "slice_confined":
                c["segment"] = self._pick_segment(r, 0.1, 0.6)
            self.causes.append(c)
        elif fam == "upstream":
            k = max(2, min(sc.incident["n_features"], self.F - 1))
            cand = self._cand(allow_binary=mode != "scale")
            order = [cand[i] for i in np.argsort(-self.imp[cand])]
            first = order[int(r.integers(0, min(2, len(order))))]
            rest = [j for j in cand if j != first]
            k = min(k, 1 + len(rest))
            culprit = [first] + [int(x) for x in r.choice(rest, size=k - 1, replace=False)]
            culprit.sort()
            self.causes.append({"family": "upstream", "mode": mode, "change_mode": mode, "features": culprit, "segment": None})
        elif fam == "snapshot":
            keys = [k for k in self.state0 if k.endswith("weight")]
            tensor = str(r.choice(keys)) if mode != "zeroed_rows" else "net.0.weight"
            self.causes.append({"family": "snapshot", "mode": mode, "tensor": tensor,
                                "direction": "up" if r.random() < 0.7 else "down"})
        elif fam in ("label", "calibration"):
            self.causes.append({"family": fam, "mode": mode, "direction": sc.incident.get("direction", "up")})
        elif fam == "slice":
            self.causes.append({"family": "slice", "mode": mode, "segment": self._pick_segment(r, 0.05, 0.35)})
        elif fam == "shift":
            self.causes.append(self._shift_cause(r))
        elif fam == "multi":
            a = self._pick_feature(r, allow_binary=False)
            if mode == "coverage_plus_calibration":
                self.causes.append({"family": "feature", "mode": "coverage_null", "change_mode": "coverage_null", "features": [a],
                                    "segment": None})
                self.causes.append({"family": "calibration", "mode": "offset", "direction": sc.incident["direction"]})
            else:
                self.causes.append({"family": "feature", "mode": sc.incident["changes"][0], "change_mode": sc.incident["changes"][0],
                                    "features": [a], "segment": None})
                self.causes.append({"family": "feature", "mode": sc.incident["changes"][1], "change_mode": sc.incident["changes"][1],
                                    "features": None, "segment": None})
        # lineage (built around an upstream culprit), then the second feature of a two-feature multi
        self.lineage = None
        if sc.files.get("lineage"):
            self.lineage = lin.build(self.cols["features"], self.rng("lineage"), sc.split, culprit=culprit)
        for c in self.causes:
            if c.get("features", "x") is None:
                a = self.causes[0]["features"][0]
                mates = {j for bd in self.w.bundles if a in bd["features"] for j in bd["features"]}
                # Two independent breaks: the second feature shares no upstream source with the first where the lineage
                # allows it, and never its pipeline (two features out of one pipeline breaking at once is one break there)
                same_pipe = [j for j in range(self.F) if self.lineage and self.lineage["pipeline_of"][j] == self.lineage["pipeline_of"][a]]
                ex = [j for j in range(self.F)
                      if j == a or j in mates or (self.lineage and not lin.sources_disjoint(self.lineage, a, j))]
                if len([j for j in self._cand(False) if j not in ex]) == 0:
                    ex = sorted({a, *mates, *same_pipe})
                if len([j for j in self._cand(False) if j not in ex]) == 0:
                    ex = [a]
                c["features"] = [self._pick_feature(r, allow_binary=False, exclude=tuple(ex))]

    def _shift_cause(self, r: np.random.Generator) -> dict:
        w = self.w
        if self.mode == "latent":
            h = w.hinge["feature"] if w.hinge else self._strongest(False)
            g = w.features[h].group
            affected = [j for j, f in enumerate(w.features) if f.group == g and f.loading >= 0.3 and f.family != "time"]
            return {"family": "shift", "mode": "latent", "group": g, "features": affected, "lead": h, "segment": None}
        b = w.interaction["binary"] if w.interaction else next(j for j, f in enumerate(w.features) if f.family == "binary")
        return {"family": "shift", "mode": "boolean_share", "features": [b], "lead": b, "segment": None}

    # ------------------------------------------------------------------ realization
    def _ladder(self) -> list[dict]:
        sc = self.sc
        top = severity_top(sc.split)
        if sc.family == "sparse":
            return [{"severity": top, "strongest": False, "end": self.inc_end}]
        sev = [sc.severity] + [s for s in (sc.severity + 0.4, sc.severity + 0.8) if s <= top] + [top]
        out = [{"severity": s, "strongest": False, "end": self.inc_end} for s in dict.fromkeys(round(x, 6) for x in sev)]
        if any(c.get("features") for c in self.causes) and self.fam in ("feature", "multi"):
            out.append({"severity": top, "strongest": True, "end": self.inc_end})
        if self.inc_end is not None:
            out.append({"severity": top, "strongest": True, "end": None})
        return out

    def _realize_with_escalation(self) -> None:
        self.attempts = []
        if not self.causes:  # control, sparse without incident
            snaps, _ = self._snapshots(None, None)
            self.snaps = snaps
            self.p, self.snap_idx = self._serve(snaps, self.rows.X, self.rows.ts)
            self.real = None
            self.eff = None
            self.window = None
            return
        base_causes = [dict(c) for c in self.causes]
        cache: dict = {}
        for att in self._ladder():
            causes = [dict(c) for c in base_causes]
            if att["strongest"]:
                for c in causes:
                    if c["family"] == "feature" and c.get("features"):
                        others = tuple(j for cc in causes if cc is not c for j in (cc.get("features") or []))
                        c["features"] = [self._strongest(allow_binary=c["change_mode"] not in ("scale", "mixed"), exclude=others)]
            real = self._realize(causes, att["severity"], att["end"], cache)
            self.attempts.append({"severity": att["severity"], "strongest": att["strongest"], "end": _iso(att["end"]),
                                  "ne_rel": round(real["effect"]["ne_rel"], 5),
                                  "calibration_log": round(real["effect"]["calibration_log"], 5),
                                  "z": round(real["effect"]["z"], 2), "detectable": real["detectable"]})
            if real["detectable"]:
                break
        self.causes = causes
        self.real = real
        self.inc_end = att["end"]
        self.eff = real["effect"]
        self.alone = None
        if len(causes) > 1:  # each cause alone, for its share of the regression (before the log is overwritten)
            self.alone = [self._realize([c], real["severity"], real["end"], {real["end"]: real["base"]})["effect"] for c in causes]

    def _window(self, end: int | None) -> tuple[int, int]:
        ts = self.rows.ts
        a = int(np.searchsorted(ts, self.onset, side="left"))
        b = int(np.searchsorted(ts, end, side="left")) if end is not None else self.n
        return a, b

    def _base(self, end: int | None, bad: dict | None, cache: dict) -> dict:
        """Serving under the counterfactual snapshot list (cached per end time; a bad snapshot changes only ids)."""
        key = end
        if key not in cache:
            _snaps, cf = self._snapshots(end, bad["state"] if bad else None)
            p, idx = self._serve(cf, self.rows.X, self.rows.ts)
            cache[key] = {"cf": cf, "p": p, "cf_idx": idx}
        return cache[key]

    def _realize(self, causes: list[dict], sev: float, end: int | None, cache: dict) -> dict:
        """Apply the causes to the incident window [onset, end) and measure the effect."""
        rows, w = self.rows, self.w
        rr = np.random.default_rng([self.sc.seed, int(sev * 1e6), 7])
        snap_cause = next((c for c in causes if c["family"] == "snapshot"), None)
        bad = self._bad_snapshot(snap_cause, sev, rr) if snap_cause else None
        base = self._base(end, bad, cache)
        a, b = self._window(end)
        m = b - a
        p_clean = base["p"][a:b]
        ycf = self.y_clean[a:b]
        yw = ycf.copy()
        cols: dict[int, np.ndarray] = {}
        seg = None
        dup = None
        params: dict[str, Any] = {}
        rescore = bad is not None
        # a segment's change is known exactly here: the served predictions corrected by it are the best any action
        # could serve in the window (the ceiling of a mitigation; none for other causes)
        best_p = None
        # stage A: the world changes (slice, shift)
        for c in causes:
            if c["family"] == "slice":
                col, val = c["segment"]
                seg = rows.slices[a:b, col] == val
                logit = rows.logit[a:b].copy()
                if c["mode"] == "collapse":
                    k = 0.3 + 1.9 * sev
                    logit[seg] -= k
                    params["logit_drop"] = round(k, 4)
                    best_p = p_clean.copy()
                    q_seg = np.clip(p_clean[seg], 1e-7, 1 - 1e-7)
                    best_p[seg] = sigmoid(np.log(q_seg / (1 - q_seg)) - k)
                else:
                    q = 0.4 + 0.6 * sev
                    pos = np.flatnonzero(seg & (rr.random(m) < q))
                    feat = rows.feat[a:b].copy()
                    feat[pos] = feat[rr.permutation(pos)] if len(pos) else feat[pos]
                    logit = rows.b0 + feat + rows.ctx[a:b] + rows.hidden[a:b]
                    params["share_decoupled"] = round(q, 4)
                    # a row does not show whether it was swapped: its click rate is about q parts the segment's mean
                    # and 1 - q its own (the swapped part keeps the row's context and hidden term: an approximation)
                    best_p = p_clean.copy()
                    if seg.any():
                        best_p[seg] = (1 - q) * p_clean[seg] + q * float(p_clean[seg].mean())
                yw = (self.u[a:b] < sigmoid(logit)).astype(np.int8)
            elif c["family"] == "shift":
                Rw = rows.R[a:b].copy()
                ramp = np.clip((rows.ts[a:b] - self.onset) / (self.sc.incident["ramp_hours"] * HOUR_US), 0, 1)
                if c["mode"] == "latent":
                    delta = 0.8 + 1.9 * sev  # towards the hinge, which sits at the far positive end
                    params["latent_shift_sd"] = round(delta, 4)
                    for j in c["features"]:
                        Rw[:, j] += (w.features[j].loading * delta * ramp).astype(np.float32)
                else:
                    j = c["features"][0]
                    f = w.features[j]
                    pre = rows.R[:a, j]
                    p0 = float((pre > f.params["thr"]).mean()) if len(pre) else f.params["share"]
                    up = p0 < 0.6
                    p1 = p0 + (0.2 + 0.55 * sev) * ((1 - p0) if up else -p0) * 0.95
                    delta = f.params["thr"] - float(np.quantile(pre, 1 - p1)) if len(pre) else 0.0
                    Rw[:, j] += (delta * ramp).astype(np.float32)
                    params.update(share_before=round(p0, 4), share_after=round(p1, 4))
                for j in c["features"]:
                    x = transform(w.features[j], Rw[:, j], rows.ts[a:b], w.tz_hours)
                    x[np.isnan(rows.X[a:b, j])] = np.nan
                    cols[j] = x
                feat = feature_logit(w, Rw, None)
                yw = (self.u[a:b] < sigmoid(rows.b0 + feat + rows.ctx[a:b] + rows.hidden[a:b])).astype(np.int8)
                rescore = True
        # stage B: logged features break
        for c in causes:
            if c["family"] in ("feature", "upstream"):
                mask = np.ones(m, dtype=bool)
                if c.get("segment") is not None:
                    col, val = c["segment"]
                    mask = rows.slices[a:b, col] == val
                    seg = mask
                shared = rr.random(m)  # an upstream break hits the same rows in every feature it feeds
                for j in c["features"]:
                    x = cols.get(j, rows.X[a:b, j].copy())
                    cols[j] = self._break(c["change_mode"], j, x, mask, sev, rr, a, b, params, shared, c)
                rescore = True
        # stage C/D: the model that served, re-scoring the window
        X_w = None
        if rescore:
            X_w = rows.X[a:b].copy(order="K")
            for j, x in cols.items():
                X_w[:, j] = x
            if bad is not None:
                pw = self.scorer.probs(bad["snapshot"], X_w)
            else:
                pw = np.empty(m)
                idx = base["cf_idx"][a:b]
                cf = base["cf"]
                bounds = np.searchsorted(idx, np.arange(len(cf) + 1))
                for k, s in enumerate(cf):
                    lo, hi = bounds[k], bounds[k + 1]
                    if hi > lo:
                        pw[lo:hi] = self.scorer.probs(s, X_w[lo:hi])
        else:
            pw = p_clean.copy()
        # stage E: serving-side transform
        lab = self.joined[a:b]
        for c in causes:
            if c["family"] == "calibration":
                pw = self._calibrate(c, pw, p_clean[lab], ycf[lab], sev, params)
        # stage F: label logging
        for c in causes:
            if c["family"] == "label":
                q = 0.15 + 0.6 * sev
                params["share"] = round(q, 4)
                if c["mode"] == "positives_lost":
                    yw[(yw == 1) & (rr.random(m) < q)] = 0
                elif c["mode"] == "spurious_positives":
                    rate = max(float(ycf.mean()), 1e-4)
                    yw[(yw == 0) & (rr.random(m) < q * rate / (1 - rate))] = 1
                else:
                    dup = (yw == 1) & lab & (rr.random(m) < q)
        if self.sc.format.get("prediction_dtype", "float32") == "float32":
            pw = pw.astype(np.float32).astype(np.float64)
            p_clean = p_clean.astype(np.float32).astype(np.float64)
        ps, ys = pw[lab], yw[lab].astype(np.float64)
        if dup is not None:
            ps = np.concatenate([ps, pw[dup]])
            ys = np.concatenate([ys, np.ones(int(dup.sum()))])
        # the labelled rows before the onset: the history a detector compares the window with (metrics.effect)
        lab_before = self.joined[:a]
        p_before, y_before = base["p"][:a][lab_before], self.y_clean[:a][lab_before].astype(np.float64)
        eff = metrics.effect(ps, ys, p_clean[lab], ycf[lab].astype(np.float64), before=(p_before, y_before))
        eff_seg = None
        if seg is not None:
            sl = seg[lab]
            ps2, ys2 = pw[lab][sl], yw[lab][sl].astype(np.float64)
            if dup is not None:
                ps2 = np.concatenate([ps2, pw[dup & seg]])
                ys2 = np.concatenate([ys2, np.ones(int((dup & seg).sum()))])
            col, val = _segment(causes)  # seg is set only by a segment cause
            seg_before = rows.slices[:a, col][lab_before] == val
            eff_seg = metrics.effect(ps2, ys2, p_clean[lab][sl], ycf[lab][sl].astype(np.float64),
                                     before=(p_before[seg_before], y_before[seg_before]))
        ok = metrics.detectable(eff) or (eff_seg is not None and metrics.detectable(eff_seg))
        ideal = metrics.quality(best_p[lab], yw[lab].astype(np.float64)) if best_p is not None and len(causes) == 1 else None
        return {"effect": eff, "ideal": ideal, "effect_segment": eff_seg, "detectable": ok, "window": (a, b), "p": pw, "y": yw,
                "dup": dup, "cols": cols, "bad": bad, "params": params, "base": base, "end": end, "seg": seg,
                "causes": causes, "severity": sev}

    # ------------------------------------------------------------------ the break itself
    def _break(self, change: str, j: int, x: np.ndarray, mask: np.ndarray, sev: float, rr: np.random.Generator,
               a: int, b: int, params: dict, shared: np.ndarray, cause: dict) -> np.ndarray:
        rows = self.rows
        self.w.features[j]
        name = self.cols["features"][j]
        m = len(x)
        direction = self.sc.incident.get("direction", "up")

        def scale_factor(s: float) -> tuple[float, str]:
            table = _SCALE_UP if direction == "up" else _SCALE_DOWN
            k = min(len(table) - 1, int(s * len(table)))
            return table[k]

        if change in ("coverage_null", "coverage", "coverage_default"):
            q = 0.2 + 0.8 * sev
            hit = mask & (shared < q)
            if change == "coverage_default":
                kind = self.sc.incident.get("default", "zero")
                if kind == "prior":
                    v = float(np.nanmean(self.training_sample[2][:, j]))
                    v = float(f"{v:.4g}")
                else:
                    v = 0.0 if kind == "zero" else -1.0
                x[hit] = v
                params.setdefault("default_value", {})[name] = v
            else:
                x[hit] = np.nan
            params["null_share" if change != "coverage_default" else "default_share"] = round(q, 4)
        elif change == "scale":
            k, label = scale_factor(sev)
            x[mask] = x[mask] * k
            params.setdefault("factor", {})[name] = k
            params["unit"] = label
        elif change == "mixed":
            q = 0.2 + 0.4 * sev
            k, label = scale_factor(sev)
            x[mask] = x[mask] * k
            x[mask & (shared < q)] = np.nan
            params.update(null_share=round(q, 4), unit=label)
            params.setdefault("factor", {})[name] = k
        elif change in ("stale_constant", "stale"):
            prev = rows.X[:a, j]
            ok = np.flatnonzero(~np.isnan(prev))
            v = float(prev[ok[-1]]) if len(ok) else 0.0
            share = 0.35 + 0.65 * sev
            x[mask & (shared < share)] = v
            params.setdefault("constant", {})[name] = v
            params["stale_share"] = round(share, 4)
        elif change == "stale_block":
            k = max(1, round(math.exp(math.log(50) * (1 - sev))))
            prev = rows.X[:a, j]
            ok = np.flatnonzero(~np.isnan(prev))
            block = prev[ok[-k:]] if len(ok) else np.zeros(1, dtype=np.float32)
            sel = np.flatnonzero(mask)
            x[sel] = block[rr.integers(0, len(block), len(sel))]
            params["distinct_values"] = len(np.unique(block))
        elif change == "decorrelated_shuffle":
            share = 0.3 + 0.7 * sev
            pos = np.flatnonzero(mask & (rr.random(m) < share))
            hours = rows.ts[a:b][pos] // HOUR_US
            perm = pos[np.lexsort((rr.random(len(pos)), hours))]
            x[pos] = x[perm]
            params["shuffled_share"] = round(share, 4)
        elif change in ("decorrelated_lag_hours", "decorrelated_lag_days"):
            share = 0.3 + 0.7 * sev
            lag_h = min(self.sc.incident["lag_hours"], max(1.0, (self.onset - self.start) / HOUR_US - 1))
            pos = np.flatnonzero(mask & (rr.random(m) < share))
            src = np.searchsorted(rows.ts, rows.ts[a:b][pos] - int(lag_h * HOUR_US))
            src = np.clip(src + rr.integers(-3, 4, len(pos)), 0, self.n - 1)
            x[pos] = rows.X[src, j]
            params.update(lag_hours=round(lag_h, 3), lagged_share=round(share, 4))
        else:
            raise ValueError(change)
        return x

    def _calibrate(self, c: dict, pw: np.ndarray, p_lab: np.ndarray, y_lab: np.ndarray, sev: float, params: dict) -> np.ndarray:
        """Serving-side logit offset (or temperature) solved so that Σp/Σy lands on the target ratio."""
        up = c.get("direction", "up") == "up"
        target = 1.3 + 0.3 * sev if up else 0.75 - 0.15 * sev
        z_lab = np.log(np.clip(p_lab, 1e-7, 1 - 1e-7)) - np.log1p(-np.clip(p_lab, 1e-7, 1 - 1e-7))
        ysum = max(float(y_lab.sum()), 1.0)
        z = np.log(np.clip(pw, 1e-7, 1 - 1e-7)) - np.log1p(-np.clip(pw, 1e-7, 1 - 1e-7))
        if c["mode"] == "temperature":
            grid = np.exp(np.linspace(math.log(0.25), math.log(8.0), 80))
            ratios = np.array([sigmoid(z_lab / t).sum() / ysum for t in grid])
            t = float(grid[int(np.argmin(np.abs(np.log(ratios / target))))])
            params.update(temperature=round(t, 4), target_ratio=round(target, 4))
            return sigmoid(z / t)
        lo, hi = -6.0, 6.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if sigmoid(z_lab + mid).sum() / ysum < target:
                lo = mid
            else:
                hi = mid
        off = 0.5 * (lo + hi)
        params.update(logit_offset=round(off, 5), target_ratio=round(target, 4))
        return sigmoid(z + off)

    def _bad_snapshot(self, c: dict, sev: float, rr: np.random.Generator) -> dict:
        """The bad snapshot's state, derived from the last good one before the onset."""
        k_good = max(i for i, t in enumerate(self.pub) if t < self.onset)
        good = self.states[k_good]
        st = {k: v.clone() for k, v in good.items()}
        mode = c["mode"]
        params: dict[str, Any] = {"tensor": c.get("tensor")}
        fallback = None
        note = "corrupt"
        key = c.get("tensor") or "net.0.weight"
        if mode == "scaled_tensor":
            k = math.exp(math.log(1.5) + sev * (math.log(20) - math.log(1.5)))
            k = k if c["direction"] == "up" else 1 / k
            st[key] = st[key] * k
            params["factor"] = round(k, 4)
        elif mode in ("zeroed_rows", "sign_flip"):
            t = st[key]
            q = 0.15 + 0.85 * sev
            if t.shape[0] == 1:  # a logistic regression: entries (input features) of the single row
                n = t.shape[1]
                pick = rr.permutation(n)[: max(1, round(q * n))]
                t[0, pick] = 0.0 if mode == "zeroed_rows" else -t[0, pick]
            else:
                n = t.shape[0]
                pick = rr.permutation(n)[: max(1, round(q * n))]
                t[pick] = 0.0 if mode == "zeroed_rows" else -t[pick]
            params.update(tensor=key, share=round(q, 4), entries=len(pick))
        elif mode == "nan_tensor":
            t = st[key]
            flat = t.view(-1)
            flat[int(rr.integers(flat.numel()))] = float("nan")
            fallback = round(self.train_base_rate, 4)
            params["fallback_prediction"] = fallback
        else:
            note = "trained on bad data"
            idx = rr.permutation(len(self.pool))[:15_000]
            X, y, sw = self.pool.X[idx], self.y_pool[idx].copy(), self.w_pool[idx].copy()
            if mode == "shuffled_labels":
                q = 0.3 + 0.7 * sev
                sel = np.flatnonzero(rr.random(len(y)) < q)
                y[sel] = y[rr.permutation(sel)]
                sw = np.where(y == 1, 1.0, 1.0 / self.neg_keep)
                params["shuffled_share"] = round(q, 4)
            else:  # negatives sampled at rate k and the weights that undo the sampling forgotten
                keep = math.exp(math.log(0.5) + sev * (math.log(0.05) - math.log(0.5)))
                kept = (y == 1) | (rr.random(len(y)) < keep)
                X, y, sw = X[kept], y[kept], np.ones(int(kept.sum()))
                params["negatives_kept"] = round(keep * self.neg_keep, 5)
            st = served.fine_tune(self.spec, good, X, y, steps=150, lr=0.02, sample_weight=sw)
        snap = served.Snapshot("bad", self.onset, st, bad=True, note=note, fallback=fallback)
        return {"state": st, "snapshot": snap, "params": params, "good_index": k_good, "note": note, "fallback": fallback}

    # ------------------------------------------------------------------ writing
    def _write(self, frng: np.random.Generator) -> None:
        sc, w, rows = self.sc, self.w, self.rows
        out = self.out
        real = self.real
        # final arrays: clean log with the incident window replaced
        p = None
        y = self.y_clean
        if real is None:
            p = self.p
            snaps = self.snaps
            snap_idx = self.snap_idx
            dup_rows = np.zeros(0, dtype=np.int64)
        else:
            a, b = real["window"]
            base = real["base"]
            p = base["p"].copy()
            p[a:b] = real["p"]
            y = self.y_clean.copy()
            y[a:b] = real["y"]
            for j, x in real["cols"].items():
                rows.X[a:b, j] = x
            bad = real["bad"]
            snaps, _ = self._snapshots(real["end"], bad["state"] if bad else None,
                                       bad["note"] if bad else "", bad["fallback"] if bad else None)
            times = np.array([s.published_us for s in snaps], dtype=np.int64)
            snap_idx = np.maximum(np.searchsorted(times, rows.ts, side="right") - 1, 0)
            dup_rows = (a + np.flatnonzero(real["dup"])) if real["dup"] is not None else np.zeros(0, dtype=np.int64)
        self.final_p, self.final_y = p, y
        order = np.arange(self.n, dtype=np.int64)
        if len(dup_rows):
            order = np.sort(np.concatenate([order, dup_rows]), kind="stable")
        if not sc.format.get("sorted", True):
            order = frng.permutation(order)
        fmt = dict(sc.format)
        fdt = writer.feature_dtypes([f.family for f in w.features], fmt.get("feature_dtype", "float32"), frng)
        with_snapcol = bool(sc.files.get("snapshot_column"))
        data = {"ts": rows.ts, "p": p, "y": y, "y_null": ~self.joined, "X": rows.X, "slices": rows.slices,
                "slice_values": [s.values for s in w.slices], "feature_dtypes": fdt,
                "snap": snap_idx if with_snapcol else None, "snap_ids": [s.id for s in snaps]}
        if sc.variety and frng.random() < 0.5:
            names = [self.cols["timestamp"], self.cols["prediction"], self.cols["label"]]
            names += ([self.cols["snapshot"]] if with_snapcol else []) + self.cols["features"] + self.cols["slices"]
            fmt["column_order"] = [names[i] for i in frng.permutation(len(names))]
        files_written = {"predictions": writer.write_log(out, self.cols, fmt, order, data)}
        if sc.files.get("training"):
            tts, ty, tX = self.training_sample
            tfmt = dict(fmt, predictions="csv" if fmt["predictions"] == "csv" else "parquet", sorted=True)
            tdata = {"ts": tts, "y": ty, "y_null": np.zeros(len(ty), dtype=bool), "X": tX, "feature_dtypes": fdt}
            files_written["training"] = writer.write_log(out, self.cols, tfmt, np.arange(len(ty)), tdata, training=True)
        model_info = None
        if sc.files.get("snapshots"):
            writer.write_snapshots(out, snaps, stable_column=frng.random() < 0.6, file_kind=fmt.get("snapshot_files", "mixed"), rng=frng)
            files_written["snapshots"] = "snapshots/index.csv"
            if sc.files.get("model"):
                (out / "model.py").write_text(self.spec.source(), encoding="utf-8")
                model_info = {"factory": self.spec.factory, "output": self.spec.output}
                files_written["model"] = "model.py"
        if self.lineage:
            (out / "lineage.json").write_text(json.dumps({"nodes": self.lineage["nodes"], "edges": self.lineage["edges"]},
                                                         indent=1, ensure_ascii=False), encoding="utf-8")
            files_written["lineage"] = "lineage.json"
        culprit_event = None
        if sc.files.get("events"):
            ev_rows, culprit_event = lin.events(self.rng("events"), sc.split, self.start, self.end, self.lineage,
                                                self.onset, self._culprit_event(snaps),
                                                [(s.id, s.published_us) for s in snaps if not s.bad])
            writer.write_events(out / "events.csv", ev_rows)
            files_written["events"] = "events.csv"
        case_name = f"{frng.choice(SPLITS[sc.split].vocab.case_words)}, {_iso(self.end)[:10]} ({sc.key()})"
        if sc.files.get("workbench_toml", True):
            writer.write_toml(out / "workbench.toml", case_name, self.cols, model_info, with_snapcol)
            files_written["workbench_toml"] = "workbench.toml"
        truth = self._truth(snaps, fmt, fdt, files_written, culprit_event, len(order))
        (out / "truth.json").write_text(json.dumps(truth, indent=1, ensure_ascii=False, sort_keys=False), encoding="utf-8")

    def _culprit_event(self, snaps: list) -> tuple[str, str, str] | None:
        if not self.causes:
            return None
        v = SPLITS[self.sc.split].vocab
        k = v.event_kinds
        c = self.causes[0]
        if c["family"] in ("feature",):
            col = self.cols["features"][c["features"][0]]
            target = self.lineage["pipeline_of"][c["features"][0]] if self.lineage else f"feature:{col}"
            return (k[2], target, f"{k[2].replace('_', ' ')} of {target}")
        if c["family"] == "upstream" and self.lineage:
            return (k[3], self.lineage["culprit"], f"{k[3].replace('_', ' ')} on {self.lineage['culprit']}")
        if c["family"] == "snapshot":
            bad = next(s for s in snaps if s.bad)
            return (k[0], bad.id, f"published model snapshot {bad.id}")
        if c["family"] == "calibration":
            return (k[1], "serving:calibration", "calibration config pushed to serving")
        if c["family"] == "label":
            return (k[0], "label-join", "deployed a change to click attribution")
        if c["family"] == "slice":
            col, val = c["segment"]
            return (k[0], f"{self.cols['slices'][col]}={self.w.slices[col].values[val]}", "rollout to one segment")
        if c["family"] == "shift":
            return (k[1], "growth:acquisition", "acquisition campaign launched")
        return None

    # ------------------------------------------------------------------ truth.json
    def _cause_truth(self, c: dict, share: float | None, eff: dict | None) -> dict:
        cols, w = self.cols, self.w
        seg = None
        if c.get("segment") is not None:
            col, val = c["segment"]
            seg = f"{cols['slices'][col]}={w.slices[col].values[val]}"
        fam = c["family"]
        out: dict[str, Any] = {"kind": fam, "target": None, "target_equivalents": [], "change": None,
                               "changes_accepted": [], "slice": seg, "share": share}
        feats = [cols["features"][j] for j in (c.get("features") or [])]
        if fam == "feature":
            out.update(target=feats[0], change=_CHANGE[c["change_mode"]], target_equivalents=[])
            out["changes_accepted"] = ["coverage", "scale"] if c["change_mode"] == "mixed" else [out["change"]]
        elif fam == "upstream":
            culprit = self.lineage["culprit"]
            out.update(target=culprit, change=_CHANGE[c["change_mode"]], changes_accepted=[_CHANGE[c["change_mode"]]],
                       target_equivalents=[n for n in lin.equivalents(self.lineage, feats) if n != culprit])
        elif fam == "snapshot":
            out.update(target=self._bad_id)
        elif fam == "label":
            out.update(target=cols["label"])
        elif fam == "calibration":
            out.update(target="calibration")
        elif fam == "slice":
            out.update(target=seg)
        elif fam == "shift":
            out.update(kind="feature", target=cols["features"][c["lead"]], change="shift", changes_accepted=["shift"],
                       target_equivalents=[x for x in feats if x != cols["features"][c["lead"]]])
        if eff is not None:
            out["effect"] = _round_effect(eff)
        out["features_affected"] = feats
        return out

    def _truth(self, snaps: list, fmt: dict, fdt: list[str], files_written: dict, culprit_event: bool | None,
               n_rows: int) -> dict:
        sc, w, cols = self.sc, self.w, self.cols
        bad = next((s for s in snaps if s.bad), None)
        self._bad_id = bad.id if bad else None
        good_id = None
        if bad:
            before = [s for s in snaps if not s.bad and s.published_us < bad.published_us]
            good_id = before[-1].id if before else None
        causes, effect, eff_seg, cf = [], None, None, None
        share_of = [None] * len(self.causes)
        if self.real is not None:
            effect, eff_seg = self.real["effect"], self.real["effect_segment"]
            if len(self.causes) > 1:  # each cause alone, for its share of the regression
                alone = self.alone
                size = [max(max(e["ne_rel"], 0.0) / metrics.NE_MIN, abs(e["calibration_log"]) / metrics.CAL_MIN) for e in alone]
                tot = sum(size) or 1.0
                share_of = [round(s / tot, 4) for s in size]
                causes = [self._cause_truth(c, sh, e) for c, sh, e in zip(self.causes, share_of, alone, strict=True)]
                order = np.argsort([-s for s in share_of], kind="stable")
                causes = [causes[i] for i in order]
            else:
                causes = [self._cause_truth(self.causes[0], 1.0, None)]
            _a, _b = self.real["window"]
            cf = {"window": {"from": _iso(self.onset), "to": _iso(self.real["end"] or self.end)},
                  "clean": effect["clean"], "served": effect["served"], "ideal": self.real.get("ideal")}
        head = causes[0] if causes else {"kind": "none", "target": None, "target_equivalents": [], "change": None,
                                         "changes_accepted": [], "slice": None}
        lab = self.joined
        pre_end = self.onset if self.onset is not None and self.real is not None else self.end
        k = int(np.searchsorted(self.rows.ts, pre_end))
        baseline = metrics.quality(self.final_p[:k][lab[:k]], self.final_y[:k][lab[:k]].astype(np.float64))
        affected = sorted({f for c in causes for f in c.get("features_affected", [])})
        upstream_nodes = []
        if self.lineage and affected:
            ds = lin.downstream(self.lineage)
            want = {f"feature:{f}" for f in affected}
            upstream_nodes = sorted(n for n, s in ds.items() if not n.startswith("feature:") and s & want)
        strength_eff = effect
        if eff_seg is not None and (effect is None or metrics.strength(eff_seg) > metrics.strength(effect)):
            strength_eff = eff_seg
        kind = head["kind"] if causes else "none"
        labelled_pos = int(self.final_y[lab].sum())
        return {
            "truth_version": TRUTH_VERSION, "generator_version": GENERATOR_VERSION,
            "family": sc.family, "mode": sc.mode, "split": sc.split, "seed": sc.seed,
            "kind": kind, "target": head["target"], "target_equivalents": head["target_equivalents"],
            "change": head["change"], "changes_accepted": head["changes_accepted"], "slice": head["slice"],
            "causes": [dict(c.items()) for c in causes],
            "onset": _iso(self.onset) if self.real is not None else None,
            "end": _iso(self.real["end"]) if self.real is not None else None,
            "start": sc.start, "log_end": _iso(self.end), "span_hours": sc.span_hours,
            "rows": int(n_rows), "rows_per_hour": round(n_rows / sc.span_hours, 3),
            "labelled_positives": labelled_pos,
            "label_delay_hours": sc.label_delay_hours, "join_rate": sc.join_rate, "base_rate": sc.base_rate,
            "too_sparse": bool(sc.too_sparse),
            "magnitude_bucket": metrics.bucket(strength_eff) if strength_eff is not None and self.real is not None else None,
            "severity": self.real["severity"] if self.real is not None else None,
            "detectable": bool(self.real["detectable"]) if self.real is not None else None,
            "attempts": self.attempts,
            "effect": _round_effect(effect) if effect is not None else None,
            "effect_segment": _round_effect(eff_seg) if eff_seg is not None else None,
            "counterfactual": _round_tree(cf),
            "baseline": _round_tree(baseline),
            "incident": {**sc.incident, **(self.real["params"] if self.real else {}),
                         **({"snapshot": self.real["bad"]["params"]} if self.real and self.real["bad"] else {})},
            "good_snapshot": good_id, "bad_snapshot": bad.id if bad else None,
            "zero_weight_features": [cols["features"][j] for j in w.zero_weight()],
            "bundles": [{"features": [cols["features"][j] for j in bd["features"]], "signal": cols["features"][bd["signal"]]}
                        for bd in w.bundles],
            "features_affected": affected,
            "upstream_nodes": upstream_nodes,
            "nuisance": self._nuisance_truth(),
            "events": {"culprit_event": culprit_event},
            "files": {**{k2: bool(v) for k2, v in sc.files.items()}, "written": files_written},
            "format": {**fmt, "columns": cols, "feature_dtypes": fdt,
                       "model": {"kind": self.spec.kind, "output": self.spec.output, "shape": self.spec.shape,
                                 "factory": self.spec.factory}},
            "world": {"features": [dict(f.to_dict(), column=cols["features"][j]) for j, f in enumerate(w.features)],
                      "slices": [{"column": cols["slices"][i], "values": list(s.values),
                                  "shares": [round(float(x), 4) for x in s.shares],
                                  "effects": [round(float(x), 4) for x in s.effects]} for i, s in enumerate(w.slices)],
                      "hinge": w.hinge, "interaction": w.interaction, "intercept": round(w.b0, 5),
                      "snapshots": [{"id": s.id, "published_at": _iso(s.published_us), "bad": s.bad, "note": s.note}
                                    for s in snaps]},
            "scenario": self.original.to_dict(), "scenario_key": self.original.key(),
            "redraws": self.redraws, "realized_scenario": sc.to_dict() if self.redraws else None,
        }

    def _nuisance_truth(self) -> dict:
        w = self.w
        out: dict[str, Any] = {}
        if w.drift is not None:
            out["factor_drift"] = [round(float(x), 4) for x in w.drift]
        if w.mix is not None:
            out["slice_mix_logit"] = {"column": self.cols["slices"][0],
                                      "change": {v: round(float(x), 4) for v, x in zip(w.slices[0].values, w.mix, strict=True)}}
        if w.holiday is not None:
            a, b, vol, off = w.holiday
            out["holiday"] = {"from": _iso(a), "to": _iso(b), "volume_factor": round(vol, 4), "logit_offset": round(off, 4)}
        return out


def _round_effect(e: dict) -> dict:
    return {k: round(float(e[k]), 5) for k in ("ne_rel", "calibration_log", "auc_delta", "z", "z_ne", "z_cal")}


def _round_tree(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _round_tree(v) for k, v in x.items()}
    if isinstance(x, float):
        return None if math.isnan(x) else round(x, 6)
    return x
