"""What checks share during one investigation: the case, the windows, a cache of results, and each node's evidence.

Checks never recompute what an earlier check computed: every analysis result is
cached here under a key, so the CLI, the report and the widgets stay consistent
and the expensive passes (feature drift, slice search, SHAP) run once. A check
that needs another check's verdict asks for its evidence (:meth:`Context.evidence_of`),
which runs that node now if it has not run yet: the answer never depends on the
order nodes are visited, and checks never write into the cache for each other.

A check that raises is a bug, not a skipped check: :meth:`Context.run` turns the
exception into ``error`` evidence, writes the traceback to the investigation's log
file (:attr:`Context.log_path`) and lets the rest of the tree run.
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from workbench.rca.evidence import Evidence
from workbench.rca.tree import REQUIREMENTS

if TYPE_CHECKING:
    from workbench.case.loader import Case
    from workbench.data.onset import Onset
    from workbench.data.scan import LogScan, WindowScan
    from workbench.rca.tree import Node, Tree
    from workbench.windows import Window

__all__ = ["Context"]

T = TypeVar("T")


class Context:
    """One investigation's shared state (mutable on purpose: it is the cache).

    ``tree`` is the decision tree whose nodes :meth:`evidence_of` may run (the default
    tree when not given); ``baseline``/``incident`` override the windows the onset implies.
    ``scheduler`` (a Dask scheduler address ``tcp://HOST:PORT`` or a ``distributed.Client``)
    runs the passes over the log (:attr:`log_scan`, :attr:`sampled`, :attr:`scan`) on that cluster.
    """

    def __init__(self, case: Case, progress: Callable[[str], None] | None = None,
                 baseline: Window | None = None, incident: Window | None = None, *, tree: Tree | None = None,
                 log_path: Path | None = None, strict: bool = False, scheduler: object = None):
        if tree is None:
            from workbench.rca.checks import default_tree

            tree = default_tree()
        self.case = case
        self.tree = tree
        self.say = progress or (lambda _m: None)
        self.evidence: dict[str, Evidence] = {}
        self.errors: list[dict[str, str]] = []
        self.log_path = log_path
        self.strict = strict  # re-raise a check's exception (tests)
        self._cache: dict[Any, Any] = {}
        self._running: set[str] = set()
        self._windows = (baseline, incident) if baseline and incident else None
        if baseline and incident:  # a window without a row would read "NE nan → nan" in every check: refuse it up front
            case.require_rows(incident, "incident window", "give a window inside the log (ISO times, START/END).")
            case.require_rows(baseline, "baseline window", "give --baseline START/END inside the log: alone, --incident "
                                                      "takes the span of equal length before it as the baseline.")
        self.scheduler = scheduler

    @property
    def results(self) -> dict[Any, Any]:
        """The cache itself (the diagnosis exposes it read-only)."""
        return self._cache

    def cached(self, key: Any, compute: Callable[[], T]) -> T:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def has(self, requirement: str) -> bool:
        case = self.case
        if requirement == "model":  # the model must also build and fit the snapshots (built once per case)
            from workbench.model.load import model_problem

            return case.model is not None and bool(case.snapshots) and model_problem(case) is None
        return {
            "snapshots": bool(case.snapshots),
            "snapshot_column": bool(case.columns.snapshot),
            "lineage": case.lineage is not None,
            "training": case.training is not None,
            "events": case.events is not None and case.events.height > 0,
            "features": bool(case.features),
            "slices": bool(case.slices),
        }[requirement]

    def missing(self, node: Node) -> str | None:
        """Why ``node`` cannot run on this case (the file that would enable it), or None."""
        absent = [r for r in node.requires if not self.has(r)]
        if absent and absent[0] == "model" and self.case.model is not None and self.case.snapshots:
            from workbench.model.load import model_problem

            return model_problem(self.case)  # model.py is there but cannot be used: say why, naming it
        if absent and absent[0] in ("snapshots", "model") and self.case.snapshot_problem:
            return f"snapshots/ set aside: {self.case.snapshot_problem}"
        return REQUIREMENTS[absent[0]] if absent else None

    # ------------------------------------------------------------ running checks
    def run(self, node: Node) -> Evidence:
        """Run ``node``'s check once (memoized); an exception becomes ``error`` evidence, never a skip."""
        if node.name in self.evidence:
            return self.evidence[node.name]
        if node.name in self._running:
            raise RuntimeError(f"checks '{node.name}' and one it reads depend on each other")
        self._running.add(node.name)
        self.say(f"{node.name}: {node.question}")
        t0 = time.perf_counter()
        try:
            ev = node.check(self)
        except Exception as exc:
            if self.strict:
                raise
            ev = self._error(node.name, exc)
        finally:
            self._running.discard(node.name)
        ev = ev.timed(time.perf_counter() - t0)
        self.evidence[node.name] = ev
        return ev

    def evidence_of(self, name: str) -> Evidence | None:
        """The evidence node ``name`` returned, running it now if needed; None when it cannot run here
        (not in the tree, or an input it requires is missing)."""
        if name in self.evidence:
            return self.evidence[name]
        node = self.tree.nodes.get(name)
        if node is None or self.missing(node) is not None:
            return None
        return self.run(node)

    def _error(self, check: str, exc: BaseException) -> Evidence:
        message = f"{type(exc).__name__}: {exc}".strip()
        log = self._log(check, traceback.format_exc())
        self.errors.append({"check": check, "error": message, "log": str(log)})
        self.say(f"{check}: ERROR {message.splitlines()[0][:200]} (traceback in {log})")
        return Evidence.failed(check, message, log)

    def _log(self, check: str, text: str) -> Path:
        """Append a traceback to the investigation's log file, creating it on first use."""
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="workbench-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        with self.log_path.open("a", encoding="utf-8") as out:
            out.write(f"=== {check} ({self.case.root})\n{text}\n")
        return self.log_path

    # ------------------------------------------------------------ the passes over the log
    @property
    def log_scan(self) -> LogScan:
        """Pass 1 over the whole log's narrow columns (:func:`workbench.data.scan.log_scan`): quality per period, from
        which the onset and windows come. Its row sample is drawn from those windows: :attr:`sampled`."""
        from workbench.data.scan import log_scan

        def compute() -> LogScan:
            self.say("reading the log once: quality per period")
            return log_scan(self.case, segments=False, sample_rows=0, scheduler=self.scheduler)

        return self.cached("log_scan", compute)

    @property
    def sampled(self) -> LogScan:
        """:attr:`log_scan` with a row sample of this investigation's windows (baseline, incident, placebo), every
        column (:func:`workbench.data.scan.sample_windows`): the rows of every model-side check and the bin edges."""
        from workbench.data.scan import analysis_windows, sample_windows

        def compute() -> LogScan:
            self.say("sampling the windows' rows")
            windows = analysis_windows(self.case, self.baseline, self.incident)
            return sample_windows(self.case, windows.values(), self.log_scan, scheduler=self.scheduler)

        return self.cached(("sampled", self.baseline, self.incident), compute)

    @property
    def segment_scan(self) -> LogScan:
        """Quality per period and slice value (:func:`workbench.data.scan.log_scan` without a sample): read only when the
        whole traffic shows no regression and the segments are searched."""
        from workbench.data.scan import log_scan

        def compute() -> LogScan:
            self.say("reading the log's quality per slice value")
            return log_scan(self.case, sample_rows=0, scheduler=self.scheduler)

        return self.cached("segment_scan", compute)

    @property
    def repeated(self) -> float | None:
        """The share of the windows' rows written more than once (:meth:`workbench.data.scan.LogScan.repeated`), once
        :attr:`sampled` has been read (None before: a diagnosis without a regression does not read it for this)."""
        sampled = self._cache.get(("sampled", self.baseline, self.incident))
        return sampled.repeated() if sampled is not None else None

    @property
    def scan(self) -> WindowScan:
        """Pass 2 over this investigation's windows (baseline, incident, placebo): slice cells, quality partials, feature
        profiles (:func:`workbench.data.scan.window_scan`). Checks pass it to the analyses as ``scan=``."""
        from workbench.data.scan import analysis_windows, window_scan

        def compute() -> WindowScan:
            self.say("reading the windows once: slice cells, calibration bins, feature profiles")
            windows = analysis_windows(self.case, self.baseline, self.incident)
            return window_scan(self.case, windows, self.sampled, scheduler=self.scheduler)

        return self.cached(("window_scan", self.baseline, self.incident), compute)

    # ------------------------------------------------------------ the onset and windows
    @property
    def onset(self) -> Onset:
        """The whole traffic's onset; when it shows none, a confirmed segment's (see :attr:`segment`)."""
        return self.cached("onset", self._detect)

    @property
    def segment(self) -> str | None:
        """``column=value`` when the regression was found in one segment only."""
        _ = self.onset
        return self._cache.get("segment")

    @property
    def located_in(self) -> str | None:
        """``column=value`` when the whole traffic regressed but that segment holds it alone, so the onset and end
        were read on its series (:func:`workbench.data.segments.locate_in_segment`)."""
        _ = self.onset
        found = self._cache.get("located_in")
        return found.segment if found is not None else None

    def _detect(self) -> Onset:
        from workbench.data.onset import detect_onset, measure_windows, retimed
        from workbench.data.segments import detect_segment_onset, locate_in_segment

        whole = detect_onset(self.case, scan=self.log_scan, scheduler=self.scheduler)
        if self._windows is not None:  # the user's windows apply to everything, the headline included
            return measure_windows(self.case, *self._windows, detected=whole)
        if whole.detected:  # one segment may hold it alone: its own series says when, undiluted by the rest
            located = locate_in_segment(self.case, whole)
            timed = retimed(self.case, whole, located.onset, located.segment) if located is not None else None
            if located is not None and timed is not None:
                self.say(f"the regression is confined to {located.segment}; its onset and end are read on its series")
                self._cache["located_in"] = located
                return timed
            return whole
        if not whole.testable or not self.case.slices:
            return whole
        self.say("no regression in the whole traffic; scanning segments")
        found = detect_segment_onset(self.case, scan=self.segment_scan)
        if found is None:
            return whole
        self._cache["segment"] = found.segment
        self._cache["segment_onset"] = found
        return found.onset

    @property
    def detected(self) -> bool:
        return bool(self.onset.detected)

    @property
    def onset_time(self) -> datetime | None:
        return self.onset.onset

    @property
    def baseline(self) -> Window:
        return self._windows[0] if self._windows else self.onset.baseline

    @property
    def incident(self) -> Window:
        return self._windows[1] if self._windows else self.onset.incident
