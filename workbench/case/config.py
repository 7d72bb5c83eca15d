"""``workbench.toml``: the case's name and the mapping from roles to the user's columns.

Users never rename their columns; they map them here. Unknown keys are errors
with a spelling hint, because a misspelled key silently falling back to a
default is the worst kind of wrong answer.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from workbench.case.grain import GRAINS
from workbench.case.sources import SourceSpec, parse_spec
from workbench.errors import CaseError, suggest

__all__ = ["Config", "ModelConfig", "read_config"]

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
                        f'write grain = "{close}"' if close else 'write grain = "1h" (or "15m", "6h", "1d", "1w"), or leave it out '
                        "to let the workbench choose the finest period with enough labelled rows.")
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
    )
