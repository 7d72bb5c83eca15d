"""Read a case: open and validate the directory, its config, lineage, events and snapshot files.

See ``README.md`` beside this file for the loading pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench._lazy import lazy_namespace

__all__ = [
    "LABEL",
    "PREDICTION",
    "SNAPSHOT",
    "TS",
    "Case",
    "Columns",
    "Config",
    "GrainChoice",
    "Lineage",
    "ModelConfig",
    "Snapshot",
    "choose_grain",
    "inspect_snapshot_file",
    "load_state_dict",
    "open_case",
    "read_config",
    "read_lineage",
    "read_snapshot_index",
]

_EXPORTS = {
    "Case": "workbench.case.loader",
    "open_case": "workbench.case.loader",
    "Columns": "workbench.case.columns",
    "TS": "workbench.case.columns",
    "PREDICTION": "workbench.case.columns",
    "LABEL": "workbench.case.columns",
    "SNAPSHOT": "workbench.case.columns",
    "Config": "workbench.case.config",
    "ModelConfig": "workbench.case.config",
    "read_config": "workbench.case.config",
    "GrainChoice": "workbench.case.grain",
    "choose_grain": "workbench.case.grain",
    "Lineage": "workbench.case.lineage",
    "read_lineage": "workbench.case.lineage",
    "Snapshot": "workbench.case.snapshots",
    "inspect_snapshot_file": "workbench.case.snapshots",
    "load_state_dict": "workbench.case.snapshots",
    "read_snapshot_index": "workbench.case.snapshots",
}

if TYPE_CHECKING:
    from workbench.case.columns import LABEL, PREDICTION, SNAPSHOT, TS, Columns
    from workbench.case.config import Config, ModelConfig, read_config
    from workbench.case.grain import GrainChoice, choose_grain
    from workbench.case.lineage import Lineage, read_lineage
    from workbench.case.loader import Case, open_case
    from workbench.case.snapshots import Snapshot, inspect_snapshot_file, load_state_dict, read_snapshot_index

__getattr__, __dir__ = lazy_namespace("workbench.case", _EXPORTS, __all__)
