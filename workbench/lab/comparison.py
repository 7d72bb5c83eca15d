"""A/B comparison of two variants of a training workflow: verdict on TTFB, and the phase that moved.

Decision procedure (``alpha``, ``fpr``, ``runs`` and ``confirm`` come from
:class:`~workbench.lab.settings.LabSettings`):

1. **Screen.** ``runs`` interleaved runs per variant. TTFB has changed when both
   two-sided tests give ``p < alpha`` -- Welch's t-test on log seconds (timings
   are right-skewed and multiplicative, so it compares geometric means) and the
   Mann-Whitney U test on seconds -- *and* ``|median(B) / median(A) - 1|``
   exceeds the noise threshold: the ``1 - fpr`` quantile of that same statistic
   between A/A bootstrap arms drawn from the run-to-run noise of both variants
   (:func:`workbench.lab.stats.noise_threshold`).
2. **Confirm.** A screened change is re-measured with ``confirm`` fresh
   interleaved runs per variant; it is declared (``regression`` or
   ``improvement``) only if the confirmation runs alone pass both tests,
   one-sided in the screened direction (the direction is fixed before these
   runs are made), and exceed the threshold in that direction; else the
   verdict is ``not reproduced``. A false alarm must thus pass two independent
   stages: its rate is far below ``alpha`` and ``fpr``.
3. **Attribute.** Each phase is compared on all runs with the same criteria;
   the phase that moved is the one with the largest change, in the direction
   of the TTFB change, among phases that pass them.

The verdict is about TTFB only, so testing several phases adds no false alarms
to it; phases only explain a declared change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from workbench.lab.runner import TTFB, Progress, RunFailure, RunSet, Variant, run_interleaved
from workbench.lab.settings import LabSettings
from workbench.lab.stats import (
    Alternative,
    HypothesisTest,
    bootstrap_ci,
    mann_whitney_u,
    noise_threshold,
    relative_median_delta,
    residuals,
    welch_t_test,
)

__all__ = ["VERDICTS", "Comparison", "PhaseComparison", "assess", "compare", "compare_revisions"]

VERDICTS = ("regression", "improvement", "no change", "not reproduced", "pending")


@dataclass(frozen=True, slots=True)
class PhaseComparison:
    """A against B on one phase (or on TTFB), with both tests and the noise threshold.

    ``relative`` is ``median(B) / median(A) - 1`` with its bootstrap interval
    ``ci``; ``welch`` is Welch's t-test on log seconds and ``mann_whitney`` the
    U test on seconds, both of B against A; ``threshold`` is the relative
    change A/A noise exceeds with probability ``fpr`` at these run counts.
    """

    phase: str
    n_a: int
    n_b: int
    median_a: float
    median_b: float
    relative: float
    ci: tuple[float, float]
    threshold: float
    welch: HypothesisTest
    mann_whitney: HypothesisTest
    alpha: float

    @property
    def delta(self) -> float:
        """``median(B) - median(A)`` in seconds."""
        return self.median_b - self.median_a

    @property
    def significant(self) -> bool:
        return self.welch.pvalue < self.alpha and self.mann_whitney.pvalue < self.alpha

    @property
    def exceeds_threshold(self) -> bool:
        return abs(self.relative) > self.threshold

    @property
    def changed(self) -> bool:
        return self.significant and self.exceeds_threshold

    def to_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "n_a": self.n_a, "n_b": self.n_b, "median_a": self.median_a,
                "median_b": self.median_b, "delta": self.delta, "relative": self.relative,
                "ci": list(self.ci), "threshold": self.threshold, "welch": self.welch.to_dict(),
                "mann_whitney": self.mann_whitney.to_dict(), "significant": self.significant,
                "exceeds_threshold": self.exceeds_threshold, "changed": self.changed}

    def __str__(self) -> str:
        return self.line()

    def line(self, label: str | None = None) -> str:
        """One aligned text line: medians, change, interval, threshold, p-values; ``*`` when changed."""
        flag = "  *" if self.changed else ""
        return (f"{label or self.phase:<14} {self.median_a:8.3f} {self.median_b:8.3f} {self.relative:+8.1%} "
                f"[{self.ci[0]:+.1%}, {self.ci[1]:+.1%}]  thr {self.threshold:5.1%}  "
                f"welch p={self.welch.pvalue:.2g}  mwu p={self.mann_whitney.pvalue:.2g}{flag}")


@dataclass(frozen=True, slots=True)
class Comparison:
    """The result of an A/B test of two workflow variants.

    ``verdict`` is one of :data:`VERDICTS`. ``screen`` and ``confirmation`` are
    the TTFB comparisons of the two stages; ``phases`` compares every phase on
    all runs; ``moved_phase`` names the phase that explains a change.
    ``table`` holds every measurement (variant, stage, run, order, phase,
    seconds); failed runs are in ``failures``, never in ``table``.
    """

    verdict: str
    screen: PhaseComparison
    confirmation: PhaseComparison | None
    phases: tuple[PhaseComparison, ...]
    moved_phase: str | None
    settings: LabSettings
    table: pl.DataFrame
    failures: tuple[RunFailure, ...] = ()
    variants: Mapping[str, Variant] = field(default_factory=dict)

    @property
    def regression(self) -> bool:
        return self.verdict == "regression"

    @property
    def moved(self) -> PhaseComparison | None:
        return next((p for p in self.phases if p.phase == self.moved_phase), None)

    @property
    def total(self) -> PhaseComparison | None:
        """TTFB compared on all runs (both stages)."""
        return next((p for p in self.phases if p.phase == TTFB), None)

    def headline(self) -> str:
        """One sentence: the verdict, its size and the phase that moved."""
        ref = self.confirmation or self.screen
        if self.verdict in ("regression", "improvement"):
            word = "later" if self.verdict == "regression" else "earlier"
            text = (f"{self.verdict.upper()}: B reaches its first batch {abs(ref.relative):.1%} {word} "
                    f"({ref.delta:+.3f} s)")
            moved, total = self.moved, self.total
            if moved is not None and total is not None and total.delta:
                share = moved.delta / total.delta
                text += f"; the phase that moved is {moved.phase} ({moved.delta:+.3f} s, {share:.0%} of the change)"
            else:
                text += "; no single phase stands out"
            return text + "."
        if self.verdict == "not reproduced":
            return (f"NOT REPRODUCED: the screen saw {self.screen.relative:+.1%} but the confirmation runs "
                    f"did not ({ref.relative:+.1%}); no change is declared.")
        if self.verdict == "pending":
            return f"PENDING: the screen saw {self.screen.relative:+.1%}; confirmation runs are needed."
        return (f"NO CHANGE: TTFB {self.screen.relative:+.1%} is within noise "
                f"(threshold {self.screen.threshold:.1%}, welch p={self.screen.welch.pvalue:.2g}, "
                f"mwu p={self.screen.mann_whitney.pvalue:.2g}).")

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "headline": self.headline(), "moved_phase": self.moved_phase,
                "screen": self.screen.to_dict(),
                "confirmation": self.confirmation.to_dict() if self.confirmation else None,
                "phases": [p.to_dict() for p in self.phases], "settings": self.settings.to_dict(),
                "failures": [f.to_dict() for f in self.failures],
                "variants": {k: v.to_dict() for k, v in self.variants.items()}}

    def __str__(self) -> str:
        names = {k: v.name for k, v in self.variants.items()}
        lines = [f"A = {names.get('A', 'A')}   B = {names.get('B', 'B')}",
                 f"runs per variant: {self.screen.n_a}/{self.screen.n_b} screen"
                 + (f" + {self.confirmation.n_a}/{self.confirmation.n_b} confirmation" if self.confirmation else "")
                 + f"; {len(self.failures)} failed run(s) not counted",
                 "", f"{'':<14} {'A (s)':>8} {'B (s)':>8} {'change':>8}",
                 self.screen.line("TTFB screen")]
        if self.confirmation:
            lines.append(self.confirmation.line("TTFB confirm"))
        lines += ["", self.headline(), "", "phases (all runs):"]
        lines += [f"  {p}" for p in self.phases if p.phase != TTFB]
        lines += [f"  failed: {f}" for f in self.failures[:5]]
        return "\n".join(lines)


def _values(table: pl.DataFrame, variant: str, phase: str, stages: Sequence[str]) -> np.ndarray:
    rows = table.filter((pl.col("variant") == variant) & (pl.col("phase") == phase) & pl.col("stage").is_in(stages))
    return rows["seconds"].to_numpy()


def _noise(table: pl.DataFrame, phase: str) -> np.ndarray:
    """Pooled A/A residuals of a phase: each (variant, stage) group is repeats of one revision."""
    groups = table.filter(pl.col("phase") == phase).partition_by(["variant", "stage"])
    return np.concatenate([residuals(g["seconds"].to_numpy()) for g in groups if g.height >= 2])


def _phase(table: pl.DataFrame, phase: str, stages: Sequence[str], noise: np.ndarray,
           settings: LabSettings, alternative: Alternative = "two-sided") -> PhaseComparison:
    a, b = _values(table, "A", phase, stages), _values(table, "B", phase, stages)
    # floor: a phase of zero length (two marks in one clock tick) has no logarithm
    log_a, log_b = np.log(np.maximum(a, 1e-9)), np.log(np.maximum(b, 1e-9))
    return PhaseComparison(
        phase=phase, n_a=len(a), n_b=len(b), median_a=float(np.median(a)), median_b=float(np.median(b)),
        relative=relative_median_delta(a, b), ci=bootstrap_ci(a, b, seed=settings.seed),
        threshold=noise_threshold(noise, len(a), len(b), settings.fpr, seed=settings.seed),
        welch=welch_t_test(log_b, log_a, alternative), mann_whitney=mann_whitney_u(b, a, alternative),
        alpha=settings.alpha)


def assess(table: pl.DataFrame, settings: LabSettings | None = None, *,
           failures: Sequence[RunFailure] = (), variants: Mapping[str, Variant] | None = None) -> Comparison:
    """Decide an A/B comparison from its measurements (pure: no process is run).

    Parameters
    ----------
    table
        Rows of (variant, stage, run, phase, seconds) with variants ``"A"`` and
        ``"B"``, stages ``"screen"`` and optionally ``"confirm"``, and phase
        ``"ttfb"`` among the phases (as :func:`~workbench.lab.runner.run_interleaved` makes).
    settings
        ``alpha``, ``fpr`` and ``seed`` are used.
    """
    settings = settings or LabSettings()
    stages = set(table["stage"].unique())
    ttfb_noise = _noise(table, TTFB)
    screen = _phase(table, TTFB, ["screen"], ttfb_noise, settings)
    direction: Alternative = "greater" if screen.relative > 0 else "less"
    confirmation = _phase(table, TTFB, ["confirm"], ttfb_noise, settings, direction) if "confirm" in stages else None
    if not screen.changed:
        verdict = "no change"
    elif confirmation is None:
        verdict = "pending"
    elif confirmation.changed and np.sign(confirmation.relative) == np.sign(screen.relative):
        verdict = "regression" if screen.relative > 0 else "improvement"
    else:
        verdict = "not reproduced"
    both = table.group_by("phase", maintain_order=True).agg(pl.col("variant").n_unique().alias("sides"),
                                                           pl.len().alias("n"))
    names = [p for p, sides, n in both.iter_rows() if sides == 2 and n >= 4]
    all_stages = sorted(stages)
    phases = tuple(_phase(table, p, all_stages, _noise(table, p), settings) for p in names)
    moved = None
    if verdict in ("regression", "improvement", "pending"):
        sign = np.sign(screen.relative)
        candidates = [p for p in phases if p.phase != TTFB and p.changed and np.sign(p.delta) == sign]
        if candidates:
            moved = max(candidates, key=lambda p: abs(p.delta)).phase
    return Comparison(verdict, screen, confirmation, phases, moved, settings, table, tuple(failures),
                      dict(variants or {}))


def compare(a: Variant, b: Variant, settings: LabSettings | None = None, *, progress: Progress | None = None,
            **overrides: Any) -> Comparison:
    """A/B test two workflow variants: screen, confirm a change if one is seen, attribute it to a phase.

    Parameters
    ----------
    a, b
        The baseline and the candidate (:class:`~workbench.lab.runner.Variant`).
    settings, overrides
        :class:`~workbench.lab.settings.LabSettings`, or its fields as keywords.
    progress
        Called with one line per run (the CLI prints them on stderr).

    Examples
    --------
    >>> import sys
    >>> fast = Variant("fast", (sys.executable, "-c", "from workbench.lab import mark; mark('first_batch')"))
    >>> compare(fast, fast, runs=3, confirm=3, warmup=0).verdict
    'no change'
    """
    settings = LabSettings.make(settings, **overrides)
    say = progress or (lambda message: None)
    variants = {"A": a, "B": b}
    runs: RunSet = run_interleaved(variants, settings, stage="screen", progress=say)
    result = assess(runs.table, settings, failures=runs.failures, variants=variants)
    if result.verdict == "pending":
        say(f"screen: TTFB {result.screen.relative:+.1%} (threshold {result.screen.threshold:.1%}); "
            f"confirming with {settings.confirm} fresh runs per variant")
        more = run_interleaved(variants, settings, stage="confirm", runs=settings.confirm, warmup=0,
                               first_order=int(cast(int, runs.table["order"].max())) + 1, progress=say)  # an integer column's max
        runs = runs.concat(more)
        result = assess(runs.table, settings, failures=runs.failures, variants=variants)
    say(result.headline())
    return result


def revision_variant(worktrees: Any, revision: str, command: Sequence[str] | str) -> Variant:
    """A :class:`Variant` running ``command`` in a worktree of ``revision``."""
    from workbench.lab._git import resolve

    sha = resolve(worktrees.repo, revision)
    name = sha[:7] if sha.startswith(revision) else f"{revision} ({sha[:7]})"
    return Variant(name, command, cwd=str(worktrees.checkout(sha)), revision=sha, repo=str(worktrees.repo))


def compare_revisions(repo: str | Path, a: str, b: str, command: Sequence[str] | str,
                      settings: LabSettings | None = None, *, progress: Progress | None = None,
                      **overrides: Any) -> Comparison:
    """:func:`compare` two git revisions of ``repo``, each run from its own worktree.

    The same revision twice is an A/A test, run from one worktree.
    """
    from workbench.lab._git import Worktrees

    settings = LabSettings.make(settings, **overrides)
    with Worktrees(repo) as worktrees:
        variant_a = revision_variant(worktrees, a, command)
        variant_b = revision_variant(worktrees, b, command)
        return compare(variant_a, variant_b, settings, progress=progress)
