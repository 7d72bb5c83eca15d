"""Combine the candidates the checks raised into ranked root causes with a confidence.

The rules, in order (each is stated so its behaviour can be predicted):

1. **Merge.** Candidates with the same (kind, target) from several checks combine
   by noisy-OR: ``s = 1 - prod(1 - s_i)`` (independent pieces of evidence).
2. **Explain away.** A candidate that explains others (an upstream table explains
   the features it feeds) scales each of them by ``1 - s_explainer``.
3. **Fallback.** A fallback candidate (a traffic segment) stands only when nothing
   else explains the regression: it is scaled by ``1 - max(other s)``.
4. **Events.** An event in ``events.csv`` on the candidate's node within
   ``EVENT_HOURS`` of the onset multiplies its odds by ``EVENT_ODDS``, once. An
   event never creates a candidate: most changes are harmless.
5. **Confidence** ``= s * s / sum(s_j)``: the strength of the evidence times its
   share among the competing explanations, so one strong, unrivalled cause scores
   high and two equally strong ones each score at most one half.
6. **Calibrated.** That raw confidence goes through a monotone map fitted on the
   proving ground's development split (:mod:`workbench.rca._confidence`), with a term for
   the cause ranked first, so a stated confidence ``p`` means a cause stated so was a true
   cause about ``p`` of the time there.
7. **Share** (:func:`by_share`, once each cause's mitigations are simulated). Causes that
   are each more likely real than not (confidence at least ``LIKELY``) may be several
   causes at once. One whose own fix recovers at least half of the regression in
   simulation (``USEFUL``) comes before one whose fix recovers less: the cause behind most
   of the regression first. Shares are not compared more finely than that (two fixes
   predicted at 64% and 63% are the same within the simulation's noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from workbench.rca._confidence import calibrated
from workbench.rca.evidence import Candidate, Evidence

if TYPE_CHECKING:
    import polars as pl

    from workbench.case.loader import Case
    from workbench.rca.mitigations import Mitigation

__all__ = ["EVENT_HOURS", "EVENT_ODDS", "LIKELY", "REPORT_FLOOR", "RootCause", "by_share", "rank"]

EVENT_HOURS = 3.0
EVENT_ODDS = 1.5
REPORT_FLOOR = 0.15  # a merged strength below this is noise, not a root cause
LIKELY = 0.5  # a cause stated at this confidence or more is more likely real than not


@dataclass(frozen=True, slots=True)
class RootCause:
    """One ranked root cause, as the JSON contract prints it."""

    kind: str
    target: str
    confidence: float
    strength: float
    summary: str
    evidence: tuple[tuple[str, str], ...]
    path: tuple[str, ...]
    layer: str | None = None
    slice: str | None = None
    events: tuple[str, ...] = field(default=())
    change: str | None = None
    situation: str | None = None  # the strongest candidate's finer reading (Candidate.situation); not in the JSON
    mitigations: tuple[Mitigation, ...] = field(default=())  # best first; attached after ranking (rca/mitigations.py)

    def to_dict(self) -> dict:
        out: dict = {"kind": self.kind, "target": self.target, "confidence": round(self.confidence, 2),
                     "summary": self.summary,
                     "evidence": [{"check": c, "detail": d} for c, d in self.evidence], "path": list(self.path)}
        if self.layer:
            out["layer"] = self.layer
        if self.slice:
            out["slice"] = self.slice
        if self.change:
            out["change"] = self.change
        out["mitigations"] = [m.to_dict() for m in self.mitigations]
        return out


def _related_nodes(case: Case, kind: str, target: str) -> set[str]:
    """Event targets that would concern this candidate."""
    nodes = {target}
    lineage = case.lineage
    if kind == "feature":
        nodes.add(f"feature:{target}")
        if lineage is not None:
            nodes |= lineage.upstream_of_feature(target)
    elif kind == "upstream" and lineage is not None:
        nodes |= {n for n in lineage.descendants(target) if not n.startswith("feature:")}
    elif kind == "label":
        nodes |= {"label", "labels", "label_join", case.columns.label}
    return nodes


def _events_near(events: pl.DataFrame | None, onset: datetime | None, nodes: set[str]) -> list[str]:
    if events is None or onset is None or events.height == 0:
        return []
    out = []
    window = timedelta(hours=EVENT_HOURS)
    for row in events.iter_rows(named=True):  # events.csv is a short change log, not data
        if row["target"] in nodes and abs(row["ts"] - onset) <= window:
            out.append(f"{row['ts']:%Y-%m-%d %H:%M} {row['kind']} on {row['target']}: {row['description']}".rstrip(": "))
    return out


def rank(found: list[tuple[tuple[str, ...], Evidence]], case: Case, onset: datetime | None) -> list[RootCause]:
    """Ranked root causes from every (path, evidence) the tree produced."""
    merged: dict[tuple[str, str], dict] = {}
    for path, ev in found:
        for cand in ev.candidates:
            m = merged.setdefault(cand.key, {"miss": 1.0, "best": cand, "path": path, "evidence": [], "explains": set(),
                                             "fallback": True, "layer": None, "slice": None, "change": None})
            m["miss"] *= 1.0 - cand.strength
            if cand.strength > m["best"].strength:
                m["best"], m["path"] = cand, path
            m["evidence"].append((ev.check, cand.detail or cand.summary))
            m["explains"] |= set(cand.explains)
            m["fallback"] &= cand.fallback
            m["layer"] = m["layer"] or cand.layer
            m["slice"] = m["slice"] or cand.slice
            if cand.change and (m["change"] is None or cand.strength >= m["best"].strength):
                m["change"] = cand.change  # the strongest reading of how the feature changed
    strength = {k: 1.0 - m["miss"] for k, m in merged.items()}

    for key, m in sorted(merged.items(), key=lambda kv: -strength[kv[0]]):
        for other in m["explains"]:
            if other in strength and other != key:
                strength[other] *= 1.0 - strength[key]
    solid = [s for k, s in strength.items() if not merged[k]["fallback"]]
    top_solid = max(solid, default=0.0)
    for key, m in merged.items():
        if m["fallback"]:
            strength[key] *= 1.0 - top_solid

    notes: dict[tuple[str, str], list[str]] = {}
    for key in merged:
        near = _events_near(case.events, onset, _related_nodes(case, *key))
        if near and strength[key] > 0:
            odds = strength[key] / max(1.0 - strength[key], 1e-9) * EVENT_ODDS
            strength[key] = min(odds / (1.0 + odds), 0.99)
            notes[key] = near

    kept = {k: s for k, s in strength.items() if s >= REPORT_FLOOR}
    total = sum(kept.values())
    out = []
    for i, (key, s) in enumerate(sorted(kept.items(), key=lambda kv: -kv[1])):
        m = merged[key]
        best: Candidate = m["best"]
        evidence = list(dict.fromkeys(m["evidence"]))
        evidence += [("events", f"change near the onset: {e}") for e in notes.get(key, [])]
        out.append(RootCause(kind=key[0], target=key[1], confidence=calibrated(s * s / total, first=i == 0), strength=s,
                             summary=best.summary,
                             evidence=tuple(evidence), path=m["path"], layer=m["layer"], slice=m["slice"],
                             events=tuple(notes.get(key, [])), change=m["change"], situation=best.situation))
    return out


def explained_share(cause: RootCause) -> float | None:
    """The share of the regression the cause's own best fix recovers in simulation (None when none was simulated): a
    stop-gap (:func:`workbench.rca.mitigations.stop_gaps`: a recalibration, unless it is the cause's own fix) does not count."""
    from workbench.rca.mitigations import stop_gaps

    hides = stop_gaps(cause.kind)
    shares = [m.recovery for m in cause.mitigations if m.recovery is not None and m.action not in hides]
    return max(shares) if shares else None


def by_share(causes: list[RootCause]) -> list[RootCause]:
    """``causes`` (ranked by confidence, mitigations attached) with the likely ones whose own fix recovers at least
    half of the regression first (rule 7), when each likely cause has a simulated share; otherwise as they were."""
    from workbench.rca.mitigations import USEFUL

    likely = [c for c in causes if c.confidence >= LIKELY]
    shares = [explained_share(c) for c in likely]
    if len(likely) < 2 or any(s is None for s in shares):
        return causes
    major = [c for c, s in zip(likely, shares, strict=True) if (s or 0.0) >= USEFUL]
    return major + [c for c in causes if c not in major]
