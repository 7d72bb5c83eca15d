"""How a lab comparison runs and decides: one frozen, validated settings object."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from workbench.lab.errors import LabError

__all__ = ["LabSettings"]


@dataclass(frozen=True, slots=True)
class LabSettings:
    """Settings of an A/B comparison (and of every comparison a bisect makes).

    Parameters
    ----------
    runs
        Measured runs per variant in the screening stage.
    confirm
        Runs per variant in the confirmation stage, made only when the screen
        finds a candidate change. A change is declared only if it reproduces there.
    warmup
        Unmeasured runs per variant before measuring: they fill the OS page
        cache and write ``__pycache__`` in a fresh worktree.
    timeout
        Seconds a single run may take; a run over it is killed and reported.
    alpha
        Significance level of both two-sided tests (Welch's t, Mann-Whitney U).
    fpr
        Target false-positive rate of the noise threshold (see
        :func:`workbench.lab.stats.noise_threshold`).
    min_runs
        Successful runs per variant and stage below which the lab stops with an error.
    stop_at_first_batch
        End each run right after the first batch enters the model.
    shrink
        ``(name, value)`` pairs read by :func:`workbench.lab.shrink` in the workflow.
    env
        Extra ``(name, value)`` environment variables for the workflow.
    seed
        Seed of the bootstrap resamples (threshold and confidence interval).
    """

    runs: int = 10
    confirm: int = 10
    warmup: int = 1
    timeout: float = 120.0
    alpha: float = 0.05
    fpr: float = 0.05
    min_runs: int = 3
    stop_at_first_batch: bool = False
    shrink: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("runs", "confirm", "warmup", "min_runs", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise LabError.bad_setting(name, value, "an integer >= 0")
        if self.min_runs < 3:
            raise LabError.bad_setting("min_runs", self.min_runs, "an integer >= 3 (a test needs 3 runs per side)")
        for name in ("runs", "confirm"):
            if getattr(self, name) < self.min_runs:
                raise LabError.bad_setting(name, getattr(self, name),
                                           f"an integer >= {self.min_runs} (the fewest successful runs per side a test needs)")
        if not self.timeout > 0:
            raise LabError.bad_setting("timeout", self.timeout, "seconds > 0")
        for name in ("alpha", "fpr"):
            if not 0 < getattr(self, name) < 0.5:
                raise LabError.bad_setting(name, getattr(self, name), "a probability in (0, 0.5)")
        for name in ("shrink", "env"):
            pairs = getattr(self, name)
            if isinstance(pairs, Mapping):
                pairs = tuple(pairs.items())
            pairs = tuple((str(k), str(v)) for k, v in pairs)
            object.__setattr__(self, name, pairs)

    @classmethod
    def make(cls, base: LabSettings | None = None, **overrides: Any) -> LabSettings:
        """``base`` (or the defaults) with ``overrides``; an unknown name gets a spelling hint."""
        known = {f.name for f in fields(cls)}
        for name in overrides:
            if name not in known:
                raise LabError.unknown_setting(name, known)
        return dataclasses.replace(base or cls(), **overrides)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["shrink"] = dict(self.shrink)
        out["env"] = dict(self.env)
        return out
