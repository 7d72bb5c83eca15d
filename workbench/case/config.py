"""``workbench.toml``: the case's name and the mapping from roles to the user's columns.

Users never rename their columns; they map them here. Unknown keys are errors
with a spelling hint, because a misspelled key silently falling back to a
default is the worst kind of wrong answer.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from workbench.case.grain import GRAINS
from workbench.case.sources import SourceSpec, parse_spec
from workbench.errors import CaseError, suggest

__all__ = ["Config", "GuardConfig", "ModelConfig", "read_config"]

TASKS = ("binary",)
OUTPUTS = ("logit", "probability")

# Every key the file may hold, with its default; the defaults are the contract's.
SCHEMA: dict[str, dict[str, object]] = {
    "case": {"name": None, "task": "binary", "grain": None},
    "columns": {
        "timestamp": "ts",
        "prediction": "prediction",
        "label": "label",
        "snapshot": "snapshot_id",
        "features": ["f_*"],
        "slices": None,  # None: every string/categorical column not named elsewhere
    },
    "model": {"factory": "model.py:build", "output": "logit"},
    # `workbench guard` thresholds (contract v2); the defaults and their measured false-alarm rate: workbench/guardrails/
    "guard": {"window": "1d", "coverage_drop": 0.1, "scale_factor": 2.0, "drift_severity": 0.25, "label_change": 0.1,
              "calibration_change": 0.1, "serving_change": 0.25, "ne_rise": 0.02, "auc_drop": 0.01, "unscored_rise": 0.01,
              "z": 4.0, "snapshot_gate": True},
}
# [source.NAME]: where a table lives when it is not the default file in the case directory (contract v2).
SOURCE_NAMES = ("predictions", "training")
SOURCE_KEYS = ("uri", "table", "query")


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Where the model factory lives and what its forward returns."""

    file: str = "model.py"
    function: str = "build"
    output: str = "logit"


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """``[guard]``: what trips each monitor of ``workbench guard`` (see :mod:`workbench.guardrails.monitors`)."""

    window: str = "1d"  # the newest window's length (and the baseline's, just before it)
    coverage_drop: float = 0.1  # a feature's share of non-null values fell by more than this (absolute)
    scale_factor: float = 2.0  # a feature's typical magnitude moved by more than this factor, either way
    drift_severity: float = 0.25  # a feature's JS distance beyond its usual drift (feature_drift severity)
    label_change: float = 0.1  # the label rate moved by more than this (relative)
    calibration_change: float = 0.1  # the calibration ratio moved by more than this (relative)
    serving_change: float = 0.25  # the odds of the predictions moved by more than this that no input explains
    ne_rise: float = 0.02  # NE rose by more than this (relative)
    auc_drop: float = 0.01  # AUC fell by more than this (relative)
    unscored_rise: float = 0.01  # the share of rows served without a finite prediction rose by more than this (absolute)
    z: float = 4.0  # a label-based monitor's change must also exceed this many standard errors
    snapshot_gate: bool = True  # validate the newest snapshot (needs model.py)


def _read_guard(path: Path, raw: dict) -> GuardConfig:
    """``[guard]`` checked value by value: positive numbers (shares at most 1, the scale factor above 1), a grain, a boolean."""
    out: dict[str, object] = {}
    for key, value in raw.items():
        default = SCHEMA["guard"][key]
        if key == "window":
            if value not in GRAINS:
                close = suggest(str(value), GRAINS)
                raise CaseError(path, f"[guard] window = {value!r} is not one of {list(GRAINS)}.",
                                f'write window = "{close}"' if close else 'write window = "1d" (the last day of data).')
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise CaseError(path, f"[guard] {key} must be true or false, found {value!r}.", f"write {key} = true")
        else:
            shares = ("coverage_drop", "drift_severity", "unscored_rise")  # at most 1
            low, high = (1.0, None) if key == "scale_factor" else (0.0, 1.0 if key in shares else None)
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not number or value <= low or (high and value > high):  # TOML's nan and inf are floats too
                bounds = f"above {low:g}" + (f" and at most {high:g}" if high else "")
                raise CaseError(path, f"[guard] {key} must be a number {bounds}, found {value!r}.",
                                f"write {key} = {default} (the default) or another number {bounds}.")
            value = float(value)
        out[key] = value
    return GuardConfig(**out)  # type: ignore[arg-type]  # each value was checked against its key's type above


@dataclass(frozen=True, slots=True)
class Config:
    """The parsed ``workbench.toml`` (or the defaults when there is none)."""

    name: str | None = None
    task: str = "binary"
    grain: str | None = None  # the quality series' period; None: the finest that holds enough labelled rows
    timestamp: str = "ts"
    prediction: str = "prediction"
    label: str = "label"
    snapshot: str = "snapshot_id"
    features: tuple[str, ...] = ("f_*",)
    slices: tuple[str, ...] | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    source: Path | None = None
    sources: dict[str, SourceSpec] = field(default_factory=dict)  # [source.predictions], [source.training]
    explicit: frozenset[str] = frozenset()  # "table.key" entries the file set, e.g. "columns.snapshot"
    guard: GuardConfig = field(default_factory=GuardConfig)  # [guard]: `workbench guard` thresholds


def _check_keys(path: Path, where: str, given: dict, allowed: dict | list) -> None:
    for key in given:
        if key not in allowed:
            close = suggest(key, allowed)
            hint = f"did you mean '{close}'? Rename it." if close else f"remove it; allowed keys: {sorted(allowed)}"
            raise CaseError(path, f"unknown key '{key}' in {where}.", hint)


def _string(path: Path, where: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise CaseError(path, f"{where} must be a non-empty string, found {value!r}.", f'write it as {where.split(".")[-1]} = "name"')
    return value


def _string_list(path: Path, where: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CaseError(path, f"{where} must be a list of column names or glob patterns, found {value!r}.",
                        f'write it as {where.split(".")[-1]} = ["f_*", "other_column"]')
    return tuple(value)


def _read_sources(path: Path, raw: object) -> dict[str, SourceSpec]:
    """``[source.predictions]`` / ``[source.training]``: known names and keys only, then the uri's own rules."""
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise CaseError(path, "'source' must hold tables such as [source.predictions].",
                        'write [source.predictions] followed by uri = "..." (and table = or query = for a database).')
    _check_keys(path, "[source]", raw, list(SOURCE_NAMES))
    out = {}
    for name, table in raw.items():
        _check_keys(path, f"[source.{name}]", table, list(SOURCE_KEYS))
        out[name] = parse_spec(path, name, table)
    return out


def read_config(root: Path) -> Config:
    """Read ``root/workbench.toml``; the contract's defaults where it is absent or silent."""
    path = root / "workbench.toml"
    if not path.exists():
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CaseError(path, f"not valid TOML: {exc}.", "fix the syntax; see the example in the README.") from None
    _check_keys(path, "workbench.toml", raw, [*SCHEMA, "source"])
    for table, keys in SCHEMA.items():
        if table in raw and not isinstance(raw[table], dict):
            raise CaseError(path, f"'{table}' must be a table.", f"write it as [{table}] followed by its keys.")
        _check_keys(path, f"[{table}]", raw.get(table, {}), keys)

    sources = _read_sources(path, raw.get("source", {}))
    case, cols, model = raw.get("case", {}), raw.get("columns", {}), raw.get("model", {})
    task = case.get("task", "binary")
    if task not in TASKS:
        raise CaseError(path, f"[case] task = {task!r} is not supported.", 'v1 supports task = "binary" only.')
    grain = case.get("grain")
    if grain is not None and grain not in GRAINS:
        close = suggest(str(grain), GRAINS)
        raise CaseError(path, f"[case] grain = {grain!r} is not one of {list(GRAINS)}.",
                        f'write grain = "{close}"' if close else "write grain = one of " + ", ".join(f'"{g}"' for g in GRAINS) + ", or "
                        "leave it out to let the workbench choose the finest period with enough labelled rows.")
    output = model.get("output", "logit")
    if output not in OUTPUTS:
        raise CaseError(path, f"[model] output = {output!r} is not one of {list(OUTPUTS)}.",
                        'write output = "logit" when forward returns logits, "probability" when it returns p.')
    factory = _string(path, "[model].factory", model.get("factory", "model.py:build"))
    file, sep, function = factory.rpartition(":")
    if not sep or not file or not function:
        raise CaseError(path, f"[model] factory = {factory!r} is not 'FILE:FUNCTION'.", 'write factory = "model.py:build"')

    roles = {role: _string(path, f"[columns].{role}", cols.get(role, SCHEMA["columns"][role]))
             for role in ("timestamp", "prediction", "label", "snapshot")}
    slices = cols.get("slices")
    return Config(
        name=_string(path, "[case].name", case["name"]) if "name" in case else None,
        task=task,
        grain=grain,
        **roles,
        features=_string_list(path, "[columns].features", cols.get("features", ["f_*"])),
        slices=None if slices is None else _string_list(path, "[columns].slices", slices),
        model=ModelConfig(file=file, function=function, output=output),
        source=path,
        sources=sources,
        explicit=frozenset(f"{t}.{k}" for t, keys in raw.items() for k in keys),
        guard=_read_guard(path, raw.get("guard", {})),
    )
