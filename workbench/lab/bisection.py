"""Bisect attribution: the first change of an ordered list that slowed time-to-first-batch.

Given GOOD and an ordered list of changes ``c_0 .. c_{n-1}`` after it (a git
range along first parents), every probe is a full A/B comparison of GOOD
against one change (:func:`workbench.lab.comparison.compare`: interleaved
runs, both tests, the noise threshold, confirmation). The last change is
probed first: if GOOD against BAD shows no regression there is nothing to
attribute. Otherwise a lower-bound binary search keeps ``lo`` (last change
known not to regress; GOOD is ``-1``) and ``hi`` (first change known to
regress) and probes their midpoint until they are adjacent; ``hi`` is the
culprit. That takes ``1 + ceil(log2(n))`` comparisons.

Every probe compares against GOOD, not against its neighbour, so a probe asks
"does this revision carry the regression?", which is monotone along the range
when a single change introduced it. A change that is ``not reproduced`` counts
as not regressed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from workbench.lab.comparison import Comparison, compare, revision_variant
from workbench.lab.runner import Progress, Variant
from workbench.lab.settings import LabSettings

__all__ = ["BisectResult", "BisectStep", "bisect", "bisect_variants", "first_true"]


def first_true(n: int, probe: Callable[[int], bool], *, check_last: bool = True) -> int | None:
    """Smallest ``i`` in ``0 .. n-1`` with ``probe(i)``, for a predicate false then true.

    Probes ``n - 1`` first (``None`` if it is false), then bisects: at most
    ``1 + ceil(log2(n))`` calls.

    Examples
    --------
    >>> calls = []
    >>> first_true(8, lambda i: calls.append(i) or i >= 5), calls
    (5, [7, 3, 5, 4])
    """
    if n <= 0:
        return None
    if check_last and not probe(n - 1):
        return None
    lo, hi = -1, n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if probe(mid):
            hi = mid
        else:
            lo = mid
    return hi


@dataclass(frozen=True, slots=True)
class BisectStep:
    """One probe of a bisect: GOOD against the change at ``index``."""

    index: int
    revision: str
    subject: str
    comparison: Comparison

    @property
    def regressed(self) -> bool:
        return self.comparison.regression

    def to_dict(self) -> dict[str, Any]:
        screen = self.comparison.confirmation or self.comparison.screen
        return {"index": self.index, "revision": self.revision, "subject": self.subject,
                "verdict": self.comparison.verdict, "relative": screen.relative,
                "moved_phase": self.comparison.moved_phase, "regressed": self.regressed}


@dataclass(frozen=True, slots=True)
class BisectResult:
    """The bisect trail and the change it names (``culprit`` indexes ``changes``; ``None``: no regression)."""

    good: str
    changes: tuple[tuple[str, str], ...]
    steps: tuple[BisectStep, ...]
    culprit: int | None
    settings: LabSettings

    @property
    def culprit_revision(self) -> str | None:
        return None if self.culprit is None else self.changes[self.culprit][0]

    @property
    def culprit_subject(self) -> str | None:
        return None if self.culprit is None else self.changes[self.culprit][1]

    @property
    def culprit_step(self) -> BisectStep | None:
        return next((s for s in self.steps if s.index == self.culprit), None)

    @property
    def phase(self) -> str | None:
        """The phase the culprit slowed."""
        step = self.culprit_step
        return step.comparison.moved_phase if step else None

    def trail(self) -> pl.DataFrame:
        """One row per probe, in the order they ran."""
        rows = [s.to_dict() for s in self.steps]
        schema = {"index": pl.Int64, "revision": pl.String, "subject": pl.String, "verdict": pl.String,
                  "relative": pl.Float64, "moved_phase": pl.String, "regressed": pl.Boolean}
        return pl.DataFrame(rows, schema=schema)

    def table(self) -> pl.DataFrame:
        """Every measurement of every probe, with the probe's ``step`` and ``revision``."""
        return pl.concat([s.comparison.table.with_columns(step=pl.lit(i), revision=pl.lit(s.revision))
                          for i, s in enumerate(self.steps)], how="vertical")

    def headline(self) -> str:
        if self.culprit is None:
            return (f"NO REGRESSION between GOOD and BAD ({self.steps[0].comparison.verdict}): "
                    "nothing to attribute.")
        step = self.culprit_step
        size = (step.comparison.confirmation or step.comparison.screen).relative if step else float("nan")
        phase = f", slowing phase {self.phase}" if self.phase else ""
        revision, subject = self.changes[self.culprit]  # what culprit_revision and culprit_subject return here
        return (f"FIRST REGRESSING CHANGE: {revision[:12]} {subject!r} "
                f"(TTFB {size:+.1%}{phase}); {len(self.steps)} comparisons over {len(self.changes)} changes.")

    def to_dict(self) -> dict[str, Any]:
        return {"good": self.good, "changes": [list(c) for c in self.changes],
                "steps": [s.to_dict() for s in self.steps], "culprit": self.culprit_revision,
                "culprit_subject": self.culprit_subject, "phase": self.phase, "headline": self.headline(),
                "settings": self.settings.to_dict()}

    def __str__(self) -> str:
        lines = [f"GOOD = {self.good[:12]}; {len(self.changes)} changes", "", "trail:"]
        for s in self.steps:
            d = s.to_dict()
            lines.append(f"  [{s.index:>3}] {s.revision[:12]} {d['verdict']:<14} {d['relative']:+7.1%}  "
                         f"{d['moved_phase'] or '-':<14} {s.subject}")
        return "\n".join([*lines, "", self.headline()])


def bisect_variants(good: Variant, changes: Sequence[Variant], settings: LabSettings | None = None, *,
                    progress: Progress | None = None, **overrides: Any) -> BisectResult:
    """Bisect an ordered list of variants (configs, commands or checkouts) against ``good``."""
    settings = LabSettings.make(settings, **overrides)
    say = progress or (lambda message: None)
    steps: list[BisectStep] = []

    def probe(i: int) -> bool:
        say(f"bisect: comparing GOOD with change {i + 1}/{len(changes)} ({changes[i].name})")
        result = compare(good, changes[i], settings, progress=say)
        steps.append(BisectStep(i, changes[i].revision or changes[i].name, changes[i].name, result))
        return result.regression

    culprit = first_true(len(changes), probe)
    listed = tuple((v.revision or v.name, v.name) for v in changes)
    return BisectResult(good.revision or good.name, listed, tuple(steps), culprit, settings)


def bisect(repo: str | Path, good: str, bad: str, command: Sequence[str] | str,
           settings: LabSettings | None = None, *, progress: Progress | None = None,
           **overrides: Any) -> BisectResult:
    """Find the first commit after ``good`` up to ``bad`` that regressed TTFB of ``command``.

    Each revision runs ``command`` from its own worktree of ``repo``.

    Examples
    --------
    About 20 s on the sample repository (``tests/test_lab_bisection.py`` runs it):

    >>> import tempfile
    >>> from workbench.lab import make_sample_repo
    >>> sample = make_sample_repo(tempfile.mkdtemp())  # doctest: +SKIP
    >>> found = bisect(sample.path, sample.good, sample.bad, sample.command(),
    ...                stop_at_first_batch=True)  # doctest: +SKIP
    >>> found.culprit_revision == sample.culprit.sha, found.phase  # doctest: +SKIP
    (True, 'data_ready')
    """
    from workbench.lab._git import Worktrees, first_parent_range

    settings = LabSettings.make(settings, **overrides)
    changes = first_parent_range(repo, good, bad)
    with Worktrees(repo) as worktrees:
        good_variant = revision_variant(worktrees, good, command)
        steps: list[BisectStep] = []
        say = progress or (lambda message: None)

        def probe(i: int) -> bool:
            sha, subject = changes[i]
            say(f"bisect: comparing GOOD with {sha[:7]} {subject!r} ({i + 1}/{len(changes)})")
            result = compare(good_variant, revision_variant(worktrees, sha, command), settings, progress=say)
            steps.append(BisectStep(i, sha, subject, result))
            return result.regression

        culprit = first_true(len(changes), probe)
    return BisectResult(good_variant.revision or good, tuple(changes), tuple(steps), culprit, settings)
