"""Sample cases: simulated ads click-through traffic with injected incidents.

``generate_case`` writes a complete case (see the case format) whose
``truth.json`` names the injected root cause, so diagnoses can be scored
against a known answer. ``python -m workbench.sample.build_all`` regenerates
the committed set under ``sample_data/cases/``.
"""

from workbench.sample.cli import add_cli
from workbench.sample.columns import Columns
from workbench.sample.generate import generate_case
from workbench.sample.incidents import INCIDENTS

__all__ = ["INCIDENTS", "Columns", "add_cli", "generate_case"]
