"""Walk the tree over a case and keep everything it found in one immutable :class:`Diagnosis`.

The diagnosis is computed once and rendered many ways: ``to_dict()`` is the JSON
contract of ``workbench diagnose --json``, ``str()`` the terminal answer, and the
HTML report and the decision-tree widget draw the same object.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from workbench._render import moved
from workbench.case.loader import Case, open_case
from workbench.data.onset import Onset, PendingLabels
from workbench.rca.checks import default_tree
from workbench.rca.checks.quality import pending_command, pending_tail
from workbench.rca.context import Context
from workbench.rca.evidence import Evidence
from workbench.rca.mitigations import plan_mitigations
from workbench.rca.ranking import RootCause, by_share, rank
from workbench.rca.tree import Tree
from workbench.windows import Window, iso

__all__ = ["NEXT_STEPS", "Diagnosis", "diagnose"]

REPEATED_NOTE = 0.01  # rows written more than once: distinct impressions rarely repeat every column, so 1 % is worth a word

NEXT_STEPS = {
    "snapshot": "Roll serving back to the last good snapshot (the stable one), then gate new ones with "
                "`workbench validate CASE --snapshot ID` before publishing.",
    "feature": "Check the pipeline that produces {target}: compare its recent runs, backfill the broken hours, "
               "and add a coverage/scale monitor on it.",
    "upstream": "Open the incident with the owners of {target}: every feature below it is affected; "
                "backfill or fall back to the last good partition.",
    "label": "The labels changed, not the model: check the label join/logging job for the onset hour "
             "before retraining on these labels.",
    "calibration": "The served predictions changed while inputs and snapshot did not: check the serving-side "
                   "calibration, post-processing or fallback config pushed near the onset.",
    "slice": "The regression is confined to {target}: look for a product change, outage or partner issue in that "
             "segment; the model inputs look healthy.",
    "slice/joined": "New rows joined {target} (its traffic rose against the rest's, with values unlike its own): find "
                    "where they come from (bots, a new source, placement or partner); filter or reweight them rather "
                    "than backfill the features they moved.",
    "slice/new": "{target} is new in the incident, and the model does worse on it than on the traffic before it: the "
                 "model has not seen its traffic. Check that its rows carry the inputs the model expects; recalibrate it "
                 "on its own labelled rows until a snapshot trained on it is published.",
    "slice/apart": "{target} and {other} moved in opposite directions while the rest of the traffic held: check what "
                   "assigns rows to these segments (a lookup or join that swapped them) and any change made per segment.",
    "feature/decorrelated": "The values of {target} no longer belong to their rows (a join on the wrong key, a lag or a "
                            "shuffle): check its pipeline's join keys and timestamps; serving its default is safer than "
                            "its current values.",
    "feature/shift": "The population behind {target} moved; nothing broke: retrain on recent data or reweight toward the "
                     "new mix, and watch the inputs that moved with it. A backfill would not help.",
    "feature/skew": "{target} no longer matches what the model was trained on: check whether serving or training computes "
                    "it differently, then retrain or fix the serving side.",
}


def _step_key(cause: RootCause) -> str:
    """The most specific entry of ``NEXT_STEPS`` for a cause: by its situation, else its change, else its kind."""
    for key in (f"{cause.kind}/{cause.situation}", f"{cause.kind}/{cause.change}"):
        if key in NEXT_STEPS:
            return key
    return cause.kind


@dataclass(frozen=True)
class Diagnosis:
    """Everything one investigation found, ready to render."""

    case: Case
    tree: Tree
    anomaly: dict[str, Any]
    baseline: Window
    incident: Window
    steps: tuple[tuple[tuple[str, ...], Evidence], ...]  # (path, evidence) in visiting order
    root_causes: tuple[RootCause, ...]
    skipped: tuple[dict[str, str], ...]
    seconds: float
    errors: tuple[dict[str, str], ...] = ()
    """Checks that raised (``check``, ``error``): bugs, listed apart from skipped checks."""
    log_path: Path | None = None
    """The file holding the tracebacks of ``errors`` (None when nothing raised)."""
    results: Mapping[object, object] = field(default_factory=dict, repr=False)
    """Every analysis result the checks computed (read-only), by cache key: ``"onset"``,
    ``"feature_drift"``, ``"find_slices"``, ``"snapshot_timeline"``, ``"isolation"``, ... so a
    view drawing the same result never recomputes it."""
    repeated: float | None = None
    """The share of the windows' rows written more than once (:attr:`workbench.rca.context.Context.repeated`), when
    the investigation read their sample; a note from ``REPEATED_NOTE`` on."""

    @property
    def top(self) -> RootCause | None:
        return self.root_causes[0] if self.root_causes else None

    def evidence(self, node: str) -> Evidence | None:
        return next((ev for path, ev in self.steps if path[-1] == node), None)

    @property
    def untested(self) -> str | None:
        """Why prediction quality could not be tested (no grain holds enough labelled rows), or None when it was.

        Every rendering says this where it would otherwise say "no regression": a log too sparse to test is not
        healthy. The first check's summary says why (which grains were tried, how few rows they held)."""
        if self.anomaly["grain"] is not None:
            return None
        root = self.evidence(self.tree.root)
        return root.summary if root else "Prediction quality cannot be tested: too few labelled rows at any grain."

    @property
    def recommended_path(self) -> tuple[str, ...]:
        return self.top.path if self.top else (self.tree.root,)

    def next_steps(self) -> list[str]:
        causes = self.root_causes[:2]
        segments = [c.target for c in causes if c.kind == "slice"]
        if len(segments) == 2:  # the slice check names a second segment only when it moved the other way
            return [NEXT_STEPS["slice/apart"].format(target=segments[0], other=segments[1])]
        return [NEXT_STEPS[_step_key(c)].format(target=c.target) for c in causes]

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of ``workbench diagnose --json`` (keys exactly as specified)."""
        return {"case": self.case.name, "anomaly": self.anomaly,
                "root_causes": [c.to_dict() for c in self.root_causes], "skipped": list(self.skipped),
                "errors": [{"check": e["check"], "error": e["error"]} for e in self.errors]}

    def __str__(self) -> str:
        a = self.anomaly
        lines = [f"case: {self.case.name}"]
        if self.untested:
            lines.append(f"anomaly: cannot be tested — {self.untested}")
        elif a["detected"]:
            forced = getattr(self.results.get("onset"), "forced", False)  # --incident: the user's window, not a finding
            until = (f" in the window given, to {iso(self.incident.end)}" if forced else
                     f" until {a['end']} (recovered)" if a["end"] else " (still lasting)")
            where = f" in {a['segment']}" if a["segment"] else ""
            lines.append(f"anomaly: {a['metric']}{where} {moved(a['baseline'], a['current'])} from {a['baseline']:.3f} to "
                         f"{a['current']:.3f} from {a['onset']}{until}, per {a['grain']}")
            also = [m["metric"] for m in a["metrics"] if m["regressed"] and m["metric"] != a["metric"]]
            if also:
                lines.append(f"         also regressed: {', '.join(also)}")
        else:
            lines.append(f"anomaly: none — prediction quality stayed within its normal variation per {a['grain']} ("
                         + "; ".join(f"{m['metric']} {m['baseline']:.3f} → {m['current']:.3f}" for m in a["metrics"]
                                     if m["baseline"] is not None and m["current"] is not None) + ")")
            onset = self.results.get("onset")
            closest = onset.closest() if isinstance(onset, Onset) else None
            if closest:
                lines.append(f"         {closest}")
            mixed = onset.mixed() if isinstance(onset, Onset) else None
            if mixed:
                lines.append(f"         {mixed}")
        pending = self.results.get("pending_labels")
        if isinstance(pending, PendingLabels) and pending.moved and not self.untested:  # hours no check saw, predictions moved
            lines.append(f"         note: {pending.headline}; see prediction_quality")
        if self.repeated is not None and self.repeated >= REPEATED_NOTE:  # every count doubled, every error too small
            lines.append(f"         note: {self.repeated:.0%} of the windows' sampled rows repeat another row in every "
                         "column (time, prediction, label, features): a log written twice counts each impression more "
                         "than once and makes every difference look more certain than it is; deduplicate it, unless "
                         "the repeats are real impressions (coarse timestamps, rounded predictions, few columns)")
        if self.case.unscored is not None:  # rows no check saw: the serving path wrote no prediction for them
            lines.append(f"         note: {self.case.unscored.headline}; see prediction_quality")
        lines.append(f"windows: baseline {self.baseline}, incident {self.incident}")
        lines.append("")
        lines.append("investigation path:")
        on_path = set(self.recommended_path)
        for path, ev in self.steps:
            mark = "→" if path[-1] in on_path else " "
            verdict = "ERROR" if ev.verdict == "error" else ev.verdict
            lines.append(f" {mark} {'  ' * (len(path) - 1)}[{verdict:>4}] {path[-1]}: {ev.summary}")
        lines.append("")
        if self.root_causes:
            lines.append("root causes:")
            for i, c in enumerate(self.root_causes, 1):
                extra = "".join(f" {k}={v}" for k, v in (("layer", c.layer), ("slice", c.slice)) if v)
                lines.append(f" {i}. {c.kind}: {c.target}{extra} (confidence {c.confidence:.2f}): {c.summary}")
                lines += [f"      - {check}: {detail}" for check, detail in c.evidence[:4]]
            lines.append("")
            lines.append("next steps:")
            lines += [f" - {s}" for s in self.next_steps()]
            plans = [(i, c) for i, c in enumerate(self.root_causes, 1) if c.mitigations]
            if plans:
                lines.append("")
                lines.append("plan (simulated on the incident window; every figure is a prediction):")
                for i, c in plans[:3]:
                    lines.append(f" {i}. {c.kind}: {c.target}")
                    lines += [f"      {j}. {m}" for j, m in enumerate(c.mitigations, 1)]
        else:
            why = " found" if a["detected"] else " (not tested: too sparse)" if self.untested else " (no regression)"
            lines.append("root causes: none" + why)
        if self.errors:
            lines.append("")
            lines.append(f"ERRORS (checks that raised; a bug in the workbench, tracebacks in {self.log_path}):")
            lines += [f" - {e['check']}: {e['error'].splitlines()[0]}" for e in self.errors]
        if self.skipped:
            lines.append("")
            lines.append("skipped checks:")
            lines += [f" - {s['check']}: {s['reason']}" for s in self.skipped]
        lines.append("")
        lines.append(f"({self.seconds:.1f} s)")
        return "\n".join(lines)


def _number(value: float) -> float | None:
    return round(float(value), 4) if value is not None and math.isfinite(value) else None


def _anomaly(onset: Onset, segment: str | None) -> dict[str, Any]:
    """The ``anomaly`` object of the JSON contract (v2)."""
    return {"detected": bool(onset.detected), "metric": onset.metric,
            "onset": iso(onset.onset) if onset.detected and onset.onset else None,
            "end": iso(onset.end) if onset.detected and onset.end else None,
            "baseline": _number(onset.baseline_value), "current": _number(onset.current_value),
            "grain": onset.grain, "segment": segment if onset.detected else None,
            "metrics": [{"metric": v.metric, "baseline": _number(v.baseline), "current": _number(v.current),
                         "regressed": bool(v.regressed)} for v in onset.metrics]}


def diagnose(case: Case | str | Path, *, tree: Tree | None = None, progress: Callable[[str], None] | None = None,
             baseline: Window | None = None, incident: Window | None = None, strict: bool = False,
             scheduler: object = None) -> Diagnosis:
    """Walk the decision tree over ``case`` and rank the root causes.

    ``strict`` re-raises an exception from a check (tests); otherwise a check that
    raises is listed under ``errors`` (its traceback in a log file the message names)
    and the rest of the tree still runs. ``scheduler`` (a Dask scheduler address ``tcp://HOST:PORT`` or a
    ``distributed.Client``) runs the passes over the log on that cluster, one task per part
    (:mod:`workbench.data._dask`); the answer is the same as in process.

    >>> d = diagnose("sample_data/cases/upstream_break")
    >>> d.top.kind, d.top.target
    ('upstream', 'table:ad_catalog')
    """
    start = time.perf_counter()
    if not isinstance(case, Case):
        case = open_case(case, progress=progress)
    tree = tree or default_tree()
    ctx = Context(case, progress, baseline, incident, tree=tree, strict=strict, scheduler=scheduler)
    steps: list[tuple[tuple[str, ...], Evidence]] = []
    skipped: list[dict[str, str]] = []
    for node, path in tree.walk():
        reason = ctx.missing(node)
        if reason is not None:
            ev = Evidence.skipped(node.name, reason)
            skipped.append({"check": node.name, "reason": reason})
        elif node.name != tree.root and not ctx.onset.testable:
            ev = Evidence.skipped(node.name, "prediction quality could not be tested (too sparse)")
        elif node.name != tree.root and not ctx.detected:
            ev = Evidence.skipped(node.name, "no regression detected")
        else:
            ev = ctx.run(node)
            if ev.verdict == "skip" and node.name == tree.root:
                skipped.append({"check": node.name, "reason": ev.reason})
        steps.append((path, ev))

    onset = ctx.onset
    pending = pending_tail(ctx) if onset.testable else None
    if pending is not None and pending.moved:  # hours no check saw, where the served predictions moved: say so
        skipped.append({"check": tree.root, "reason": f"{pending}; test them with the labels they have: "
                                                      f"{pending_command(ctx, pending)}"})
    anomaly = _anomaly(onset, ctx.segment)
    causes = rank(steps, case, onset.onset) if onset.detected else []
    causes = plan_mitigations(ctx, causes)  # each cause's actions, simulated; a plan that raises is an `errors` entry
    causes = by_share(causes)  # several likely causes: the one behind most of the regression first
    return Diagnosis(case=case, tree=tree, anomaly=anomaly, baseline=ctx.baseline, incident=ctx.incident, steps=tuple(steps),
                     root_causes=tuple(causes), skipped=tuple(skipped), seconds=time.perf_counter() - start,
                     errors=tuple(ctx.errors), log_path=ctx.log_path,
                     results=MappingProxyType(ctx.results), repeated=ctx.repeated)
