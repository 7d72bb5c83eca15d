"""The proving ground: random, realistic incident cases with known answers, and a scorer.

A scenario generator independent of the workbench (it imports nothing from it) that
writes case-format-v2 directories with a ``truth.json`` the workbench never reads,
split into a development set (to tune on) and a held-back set (to check on). See
``README.md`` beside this file for the pipeline, the families and modes, and the split.

    >>> import proving_ground as pg
    >>> sc = pg.draw("feature", "dev", seed=3, mode="scale", max_rows=50_000)
    >>> case = pg.generate(sc, "/tmp/pg_case")                            # doctest: +SKIP
    >>> pg.score(case, diagnosis_json)                                    # doctest: +SKIP
"""

from proving_ground.generate import generate
from proving_ground.scenario import DEFAULT_MAX_ROWS, Scenario, draw, suite
from proving_ground.score import score
from proving_ground.split import FAMILIES, HELD_ONLY, MODES, SPLITS, modes_for

__all__ = ["DEFAULT_MAX_ROWS", "FAMILIES", "HELD_ONLY", "MODES", "SPLITS", "Scenario", "draw", "generate", "modes_for",
           "score", "suite"]
