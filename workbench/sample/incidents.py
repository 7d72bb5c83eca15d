"""The injected incidents: what each one breaks, where, when and how much.

``plan(incident, seed)`` draws one concrete incident (target, onset, mode,
magnitude) from the seed; the ``apply_*`` functions inject it into a block of
simulated traffic. Magnitudes were chosen so that each incident raises the
hourly normalized entropy (log loss / entropy of the base rate) by roughly
5-35% after onset, several times the hour-to-hour noise of a ~500-row hour,
while served predictions stay valid probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench.sample import _lineage as lineage
from workbench.sample import _world as world

INCIDENTS: tuple[str, ...] = (
    "calibration_shift",
    "control",
    "feature_coverage_drop",
    "feature_scale_bug",
    "feature_slice_break",
    "feature_stale",
    "label_drift",
    "slice_shift",
    "snapshot_bad_data",
    "snapshot_corrupt",
    "upstream_break",
)

KIND = {
    "calibration_shift": "calibration",
    "control": "none",
    "feature_coverage_drop": "feature",
    "feature_scale_bug": "feature",
    "feature_slice_break": "feature",
    "feature_stale": "feature",
    "label_drift": "label",
    "slice_shift": "slice",
    "snapshot_bad_data": "snapshot",
    "snapshot_corrupt": "snapshot",
    "upstream_break": "upstream",
}

SNAPSHOT_EVERY_H = 6
# Onsets fall in the last third of the 72 h window and at least five fully
# labelled hours before its end (the last ~5 h wait for their labels).
ONSET_HOURS = tuple(range(49, 62))
SNAPSHOT_ONSET_HOURS = (48, 54, 60)

# Features whose loss moves NE clearly (the model leans on them).
_COVERAGE_TARGETS = ("f_ctr_7d", "f_user_ctr_30d", "f_ctx_relevance", "f_position")
_STALE_TARGETS = ("f_ctr_7d", "f_ctx_relevance")
_PERCENT_BUG = "divided by 100 a second time (a fraction treated as a percent)"
_SCALE_BUGS = (
    ("f_ctr_7d", 0.01, _PERCENT_BUG),
    ("f_user_ctr_30d", 0.01, _PERCENT_BUG),
)
_UPSTREAM = (
    ("table:ad_catalog", "null"),
    ("table:ad_catalog", "stale"),
    ("table:user_profiles", "null"),
    ("table:user_profiles", "stale"),
)
_SLICE_BREAKS = (
    ("f_ctr_7d", "null", 1.0),
    ("f_ctr_7d", "scale", 0.01),
    ("f_user_ctr_30d", "scale", 0.01),
    ("f_ctx_relevance", "stale", 1.0),
)
_CORRUPTIONS = (
    ("net.0.weight", "scale", 2.5),
    ("net.2.weight", "scale", 2.0),
    ("net.4.weight", "scale", 0.4),
    ("net.4.weight", "scale", 2.2),
)
_SLICE_SHIFTS = (("country", "BR"), ("country", "BR"), ("ad_type", "video"))


@dataclass(frozen=True, slots=True)
class Plan:
    """One concrete incident. Feature names are the internal ``f_*`` names."""

    incident: str
    kind: str
    onset_hour: int | None = None  # hours after the window start
    features: tuple[str, ...] = ()  # features whose served values break
    node: str | None = None  # upstream lineage node, if any
    slice: tuple[str, str] | None = None  # (column, value)
    layer: str | None = None
    mode: str = ""
    magnitude: float = 0.0
    note: str = ""  # what broke, in words
    implicated_event: bool = False  # a change-log entry on the culprit near onset
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def onset_us(self) -> int | None:
        if self.onset_hour is None:
            return None
        return world.START_US + self.onset_hour * world.HOUR_US

    @property
    def snapshot_index(self) -> int | None:
        """Index of the bad snapshot (snapshot 0 precedes the window)."""
        if self.kind != "snapshot" or self.onset_hour is None:
            return None
        return self.onset_hour // SNAPSHOT_EVERY_H


def plan(incident: str, seed: int) -> Plan:
    """Draw the incident's target, onset, mode and magnitude from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11, INCIDENTS.index(incident)]))
    onset = int(rng.choice(ONSET_HOURS))
    implicated = bool(rng.random() < 0.6)
    kind = KIND[incident]
    match incident:
        case "control":
            return Plan(incident, kind, note="no incident: organic drift only")
        case "feature_coverage_drop":
            f = str(rng.choice(_COVERAGE_TARGETS))
            share = float(rng.uniform(0.9, 0.98))
            return Plan(
                incident,
                kind,
                onset,
                (f,),
                mode="null",
                magnitude=share,
                note=f"{{{f}}} goes mostly null: {share:.0%} of rows lose the value (feature-store lookups fail)",
                implicated_event=implicated,
            )
        case "feature_scale_bug":
            f, factor, how = _SCALE_BUGS[rng.integers(len(_SCALE_BUGS))]
            return Plan(
                incident,
                kind,
                onset,
                (f,),
                mode="scale",
                magnitude=factor,
                note=f"{{{f}}} {how}",
                implicated_event=implicated,
            )
        case "feature_stale":
            f = str(rng.choice(_STALE_TARGETS))
            return Plan(
                incident,
                kind,
                onset,
                (f,),
                mode="stale",
                magnitude=1.0,
                note=f"{{{f}}} is frozen at its last value before the onset (a stuck cache)",
                implicated_event=implicated,
            )
        case "upstream_break":
            node, mode = _UPSTREAM[rng.integers(len(_UPSTREAM))]
            feats = lineage.downstream_features(node)
            how = "lose coverage" if mode == "null" else "go stale"
            return Plan(
                incident,
                kind,
                onset,
                feats,
                node=node,
                mode=mode,
                magnitude=float(rng.uniform(0.95, 1.0)),
                note=f"{node} breaks: its {len(feats)} downstream features ({{features}}) {how} at once",
                implicated_event=implicated,
            )
        case "feature_slice_break":
            f, mode, factor = _SLICE_BREAKS[rng.integers(len(_SLICE_BREAKS))]
            # Android carries 55% of traffic; a break confined to a smaller
            # platform would barely move the overall NE.
            value = "android"
            what = {"null": "goes null", "scale": f"is scaled x{factor:g}", "stale": "is frozen"}[mode]
            return Plan(
                incident,
                kind,
                onset,
                (f,),
                slice=("platform", value),
                mode=mode,
                magnitude=factor if mode == "scale" else 0.95,
                note=f"{{{f}}} {what} only on {{platform}}={value} (a client release logs it wrong)",
                implicated_event=implicated,
            )
        case "snapshot_corrupt":
            onset = int(rng.choice(SNAPSHOT_ONSET_HOURS))
            layer, mode, k = _CORRUPTIONS[rng.integers(len(_CORRUPTIONS))]
            how = f"scaled x{k:g}"
            return Plan(
                incident,
                kind,
                onset,
                layer=layer,
                mode=mode,
                magnitude=k,
                note=f"parameter {layer} of the snapshot published at the onset is {how} (export bug); "
                "later snapshots warm-start from it",
            )
        case "snapshot_bad_data":
            onset = int(rng.choice(SNAPSHOT_ONSET_HOURS))
            keep = float(rng.uniform(0.2, 0.3))
            if rng.random() < 0.5:
                return Plan(
                    incident,
                    kind,
                    onset,
                    mode="shuffled_labels",
                    note="the snapshot published at the onset was fine-tuned on a batch whose labels "
                    "were misaligned with its rows (shuffled join)",
                    implicated_event=implicated,
                )
            return Plan(
                incident,
                kind,
                onset,
                mode="downsampled_negatives",
                magnitude=keep,
                note=f"the snapshot published at the onset was fine-tuned on a batch whose negatives were "
                f"downsampled to {keep:.0%} without reweighting, so it over-predicts clicks",
                implicated_event=implicated,
            )
        case "label_drift":
            share = float(rng.uniform(0.35, 0.5))
            return Plan(
                incident,
                kind,
                onset,
                mode="drop_positives",
                magnitude=share,
                note=f"a click-logging bug records {share:.0%} of clicks as non-clicks; "
                "features and predictions are unchanged",
                implicated_event=implicated,
            )
        case "calibration_shift":
            variant = int(rng.integers(3))
            if variant == 0:
                b = float(rng.uniform(1.0, 1.25) * rng.choice((-1.0, 1.0)))
                return Plan(
                    incident,
                    kind,
                    onset,
                    mode="offset",
                    magnitude=b,
                    note=f"a serving calibration change adds {b:+.2f} to every logit",
                    implicated_event=implicated,
                )
            t = float(rng.uniform(1.6, 1.9)) if variant == 1 else float(rng.uniform(0.45, 0.55))
            return Plan(
                incident,
                kind,
                onset,
                mode="temperature",
                magnitude=t,
                note=f"a serving calibration change multiplies every logit by {t:.2f}",
                implicated_event=implicated,
            )
        case "slice_shift":
            col, value = _SLICE_SHIFTS[rng.integers(len(_SLICE_SHIFTS))]
            lam = float(rng.uniform(0.0, 0.1))
            drop = float(rng.uniform(-0.3, 0.0))
            return Plan(
                incident,
                kind,
                onset,
                slice=(col, value),
                mode="behaviour",
                magnitude=lam,
                extra={"logit_drop": drop},
                note=f"clicks on {{{col}}}={value} collapse and stop following the usual signals "
                f"(signal kept x{lam:.2f}); no feature, snapshot or label cause",
            )
    raise AssertionError(incident)  # pragma: no cover - INCIDENTS is exhaustive


def _slice_mask(traffic: world.Traffic, slc: tuple[str, str] | None) -> np.ndarray:
    if slc is None:
        return np.ones(len(traffic), dtype=bool)
    col, value = slc
    return traffic.slices[col] == world.SLICES[col].index(value)


def apply_truth(p: Plan, traffic: world.Traffic) -> None:
    """Change the true click process (slice_shift) before labels are drawn."""
    if p.incident != "slice_shift":
        return
    m = (traffic.ts >= p.onset_us) & _slice_mask(traffic, p.slice)
    if not m.any():
        return
    level = traffic.true_logit[m].mean()
    lam = p.magnitude
    traffic.true_logit[m] = level + lam * (traffic.true_logit[m] - level) - float(p.extra["logit_drop"])


def apply_labels(p: Plan, traffic: world.Traffic, rng: np.random.Generator) -> None:
    """Logging bugs on the label column (label_drift)."""
    if p.incident != "label_drift":
        return
    assert traffic.label is not None  # the labels are drawn before their logging bugs
    u = rng.random(len(traffic))
    flip = (traffic.ts >= p.onset_us) & (traffic.label == 1.0) & (u < p.magnitude)
    traffic.label[flip] = 0.0


def apply_features(p: Plan, traffic: world.Traffic, rng: np.random.Generator, last_values: dict[str, float]) -> None:
    """Break served feature values from the onset on.

    ``last_values`` carries, across time-ordered blocks, each target feature's
    last non-null value before the onset: a stale feature repeats it.
    """
    if not p.features:
        return
    after = traffic.ts >= p.onset_us
    in_slice = _slice_mask(traffic, p.slice)
    u = rng.random(len(traffic))
    for f in p.features:
        x = traffic.features[f]
        before = np.flatnonzero(~after & ~np.isnan(x))
        if len(before):
            last_values[f] = float(x[before[-1]])
        hit = after & in_slice
        if p.mode == "null":
            x[hit & (u < p.magnitude)] = np.nan
        elif p.mode == "scale":
            x[hit] = np.round(x[hit] * p.magnitude, world.SPEC[f].decimals + 2)
        elif p.mode == "stale":
            x[hit & ~np.isnan(x)] = last_values[f]
        else:  # pragma: no cover
            raise AssertionError(p.mode)


def apply_calibration(p: Plan, logit: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Serving-side logit transform (calibration_shift)."""
    if p.incident != "calibration_shift":
        return logit
    after = ts >= p.onset_us
    out = logit.copy()
    if p.mode == "offset":
        out[after] = logit[after] + np.float32(p.magnitude)
    else:
        out[after] = logit[after] * np.float32(p.magnitude)
    return out


def corrupt_tensor(p: Plan, t):  # torch.Tensor -> torch.Tensor, kept untyped to avoid a torch import here
    """The snapshot_corrupt transform; finite in, finite out."""
    if p.mode == "scale":
        return t * p.magnitude
    raise AssertionError(p.mode)  # pragma: no cover
