"""Open a case directory (the case format, v1) into a lazy, validated :class:`Case`.

Nothing large is read at open: tables are polars LazyFrames. One small
aggregate pass over the timestamp, prediction and label columns validates their
values and yields the hourly volume profile (used for the label-delay warning
and by every later view). Feature null counts come from parquet footers.

The serving log is exposed with *canonical* role names, so analysis code never
deals with the user's naming: ``ts`` (Datetime UTC), ``prediction`` (Float64),
``label`` (Float64 0/1, null while not joined), ``snapshot_id`` (String), then
the feature and slice columns under their own names. ``Case.columns`` keeps the
user's names for messages and for the JSON contract.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import polars as pl

from workbench.case.columns import LABEL, PREDICTION, SNAPSHOT, TS, Columns
from workbench.case.config import Config, ModelConfig, read_config
from workbench.case.grain import GrainChoice, choose_grain, profile_at
from workbench.case.lineage import Lineage, read_lineage
from workbench.case.snapshots import Snapshot, inspect_snapshot_file, read_snapshot_index
from workbench.case.sources import Source, defaults, listed_parts, resolve
from workbench.errors import CaseError, SnapshotError, WorkbenchError, suggest
from workbench.metrics import labelled_prediction_sum_expr, reliable_end
from workbench.windows import Window, iso

__all__ = ["Case", "open_case", "refuse_case_file"]

EVENT_COLUMNS = ("ts", "kind", "target", "description")
UTC_US = pl.Datetime("us", "UTC")
# a row the serving path scored: a finite prediction (NaN, inf and null are rows it left unscored: Unscored)
SCORED = pl.col(PREDICTION).is_finite().fill_null(False)


@dataclass(frozen=True, slots=True)
class Unscored:
    """Served rows that carry no finite prediction (NaN, inf or null). A serving path that stops scoring some rows (a
    timeout, a model error) writes them so; refusing the log would hide that fault and every other (outside test 5:
    5 % NaN predictions beside a post-processing change). They are left out of every figure, and said."""

    rows: int
    share: float
    first: datetime
    last: datetime
    profile: pl.DataFrame  # period (15 minutes), unscored: the rows per period (``workbench guard`` compares their share)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "share": round(self.share, 6), "first": iso(self.first), "last": iso(self.last)}

    @property
    def headline(self) -> str:
        return (f"{self.rows:,} served row(s) ({self.share:.1%} of the log) carry no finite prediction (NaN, inf or null), "
                f"from {self.first:%Y-%m-%d %H:%M} to {self.last:%Y-%m-%d %H:%M} UTC, left out of every figure")

    def __str__(self) -> str:
        return (f"{self.headline}. A serving path that stopped scoring rows is a fault of its own: check the scoring "
                "service's errors and timeouts in those hours")


@dataclass(frozen=True)
class Case:
    """An opened case: lazy tables plus the small validated metadata around them."""

    root: Path
    name: str
    config: Config
    columns: Columns
    predictions: pl.LazyFrame
    training: pl.LazyFrame | None
    snapshots: tuple[Snapshot, ...]
    lineage: Lineage | None
    events: pl.DataFrame | None
    model: ModelConfig | None
    hourly: pl.DataFrame  # hour, rows, labeled: from the validation pass
    profile: pl.DataFrame  # period (15 minutes), rows, labeled, positives, pred_sum_labeled: every grain's counts are sums of it
    grain: GrainChoice  # the quality series' period (workbench.case.grain), or why none can be tested
    rows: int
    warnings: tuple[str, ...] = ()
    sources: dict[str, Path | str] = field(default_factory=dict)  # a local table's path, else its URI with secrets masked
    # The canonical rows of [start, end) read with the range pushed to the source (a WHERE, pruned files); None when
    # the source is local files, which workbench.data._frames reads by row range instead.
    window_scan: Callable[[datetime, datetime], pl.LazyFrame] | None = field(default=None, repr=False, compare=False)
    # why snapshots/ was set aside (a file missing, unreadable or unsafe: the first one met), or None
    snapshot_problem: str | None = None
    unscored: Unscored | None = None  # served rows without a finite prediction, left out of ``predictions``

    @property
    def features(self) -> tuple[str, ...]:
        return self.columns.features

    @property
    def slices(self) -> tuple[str, ...]:
        return self.columns.slices

    @property
    def start(self) -> datetime:
        """The first hour with scored traffic (every analysis reads scored rows)."""
        first = self.hourly["hour"].min()
        assert isinstance(first, datetime)  # a case has at least one scored row (the loader checks)
        return first

    @property
    def end(self) -> datetime:
        """The end (exclusive) of the last hour with scored traffic."""
        from datetime import timedelta

        last = self.hourly["hour"].max()
        assert isinstance(last, datetime)
        return last + timedelta(hours=1)

    @property
    def last_served(self) -> datetime:
        """The end (exclusive) of the last hour with traffic, scored or not: hours whose every row the serving path left
        without a prediction end the newest window ``workbench guard`` must see, and nothing else reads them."""
        from datetime import timedelta

        last = self.unscored.profile["period"].max() if self.unscored is not None else None
        if not isinstance(last, datetime):
            return self.end
        return max(self.end, last.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))

    def require_rows(self, window: Window, what: str, hint: str, *, unscored_too: bool = False) -> None:
        """Refuse ``window`` (``what`` names it: a flag, an argument) when no quarter hour of it holds a scored row (or
        with ``unscored_too``, any served row): every measure over it would be empty, a "nan → nan" where an answer
        belongs. Outside the log's span or in a gap inside it alike (the profile's periods with rows, not its span)."""
        from datetime import timedelta

        quarter = timedelta(minutes=15)
        periods = [self.profile.filter(pl.col("rows") > 0)["period"]]
        if unscored_too and self.unscored is not None:
            periods.append(self.unscored.profile.filter(pl.col("unscored") > 0)["period"].alias("period"))
        inside = pl.concat(periods).is_between(window.start - quarter, window.end, closed="none").any()
        if not inside:
            where = "a gap in the log" if window.overlaps(Window(self.start, self.end)) else "outside the log"
            raise WorkbenchError(what, f"{window} holds no {'served' if unscored_too else 'scored'} row ({where}): the log "
                                       f"runs {self.start:%Y-%m-%d %H:%M} to {self.last_served:%Y-%m-%d %H:%M} UTC.", hint)

    def snapshot(self, snapshot_id: str) -> Snapshot:
        for snap in self.snapshots:
            if snap.snapshot_id == snapshot_id:
                return snap
        if self.snapshot_problem:
            raise CaseError(self.root / "snapshots", f"the snapshots were set aside: {self.snapshot_problem}",
                            "fix or remove that file (and its row in snapshots/index.csv).")
        ids = [s.snapshot_id for s in self.snapshots]
        close = suggest(snapshot_id, ids)
        raise CaseError(self.root / "snapshots" / "index.csv", f"no snapshot '{snapshot_id}'.",
                        f"did you mean '{close}'?" if close else f"known snapshots: {ids}")

    def to_dict(self) -> dict:
        return {
            "root": str(self.root), "name": self.name, "rows": self.rows, "columns": self.columns.to_dict(),
            "start": iso(self.start), "end": iso(self.end),
            "snapshots": [s.to_dict() for s in self.snapshots],
            "lineage_nodes": len(self.lineage.kinds) if self.lineage else 0,
            "events": 0 if self.events is None else self.events.height,
            "training": self.training is not None, "model": self.model is not None,
            "warnings": list(self.warnings), "sources": {k: str(v) for k, v in self.sources.items()},
            "grain": self.grain.grain, "grain_reason": self.grain.reason,
            "unscored": self.unscored.to_dict() if self.unscored is not None else None,
        }

    def __str__(self) -> str:
        c = self.columns
        lines = [
            f"case: {self.name}  ({self.root})",
            f"  {self.rows:,} predictions from {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC",
            f"  columns: ts={c.timestamp!r} prediction={c.prediction!r} label={c.label!r} snapshot={c.snapshot!r}",
            f"  {len(c.features)} features, slices {list(c.slices)}",
            f"  snapshots: {len(self.snapshots)}; lineage nodes: {len(self.lineage.kinds) if self.lineage else 0}; "
            f"events: {0 if self.events is None else self.events.height}; "
            f"training sample: {'yes' if self.training is not None else 'no'}; model: {'yes' if self.model else 'no'}",
            f"  quality is tested per {self.grain.grain} ({self.grain.reason})" if self.grain.testable else
            "  quality cannot be tested: too sparse (see the warning)",
        ]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# ---------------------------------------------------------------- sources
def _time_expr(source: Source, schema: pl.Schema, column: str, lf: pl.LazyFrame) -> tuple[pl.Expr, pl.Expr | None]:
    """An expression giving ``column`` as Datetime(us, UTC), and one flagging unparseable values."""
    dtype = schema[column]
    col = pl.col(column)
    if dtype == UTC_US:
        return col, None  # untouched, so time filters push down to the parquet scan and prune row groups
    if isinstance(dtype, pl.Datetime):
        expr = col.dt.convert_time_zone("UTC") if dtype.time_zone else col.dt.replace_time_zone("UTC")
        return expr.cast(UTC_US), None
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"), None
    if dtype.is_integer():
        # Epoch numbers: the unit follows from the magnitude (seconds ~1e9 today, ns ~1e18).
        top = lf.select(col.abs().max()).collect().item() or 0
        units: tuple[tuple[float, Literal["us", "ns"], int], ...] = (
            (1e11, "us", 1_000_000), (1e14, "us", 1_000), (1e17, "us", 1), (float("inf"), "ns", 1))
        unit, scale = next((u, s) for limit, u, s in units if top < limit)
        return (col * scale).cast(pl.Datetime(unit)).dt.replace_time_zone("UTC").cast(UTC_US), None
    if dtype == pl.String:
        parsed = col.str.strip_chars().str.replace(r"Z$", "+00:00").str.to_datetime(
            strict=False, time_unit="us", time_zone="UTC")
        return parsed, parsed.is_null() & col.is_not_null()
    raise CaseError.wrong_type(source, column, "timestamp", dtype, "a timestamp",
                               "store it as a parquet timestamp, ISO 8601 text or epoch seconds.")


# ---------------------------------------------------------------- columns
# Words that usually appear in a column playing each role, to suggest a mapping.
ROLE_WORDS = {"timestamp": ("time", "ts", "date"), "prediction": ("pred", "prob", "score", "p_", "ctr"),
              "label": ("label", "click", "target", "outcome", "y"), "snapshot": ("snapshot", "model", "version")}


def _likely_column(role: str, schema: pl.Schema) -> str | None:
    """The column that most plausibly plays ``role``: right type, a telling name."""
    def fits(dtype: pl.DataType) -> bool:
        if role == "timestamp":
            return isinstance(dtype, pl.Datetime) or dtype in (pl.Date, pl.String)
        if role == "prediction":
            return dtype.is_float()
        return role == "snapshot" or dtype.is_integer() or dtype == pl.Boolean
    for word in ROLE_WORDS[role]:
        for name, dtype in schema.items():
            if word in name.lower() and fits(dtype):
                return name
    return None


def _resolve_column(source: Source, toml: Path, schema: pl.Schema, role: str, name: str, required: bool) -> str | None:
    if name in schema:
        return name
    if required:
        raise CaseError.missing_column(source, role, name, schema.names(), toml, _likely_column(role, schema))
    return None


def _required_column(source: Source, toml: Path, schema: pl.Schema, role: str, name: str) -> str:
    column = _resolve_column(source, toml, schema, role, name, True)
    assert column is not None  # required: a missing column raised
    return column


def _resolve_features(source: Source, toml: Path, names: list[str], patterns: tuple[str, ...], taken: set[str],
                      role: str = "features") -> tuple[str, ...]:
    """The columns a ``[columns] features`` (or ``slices``) list names, globs expanded; a name the log does not hold is
    an error that names the list it is in and suggests a column of the log no other role has taken."""
    out: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            out += [n for n in names if fnmatch.fnmatchcase(n, pattern) and n not in taken and n not in out]
        elif pattern in names:
            if pattern not in out:
                out.append(pattern)
        else:
            raise CaseError.missing_listed_column(source, role, pattern, (n for n in names if n not in taken), toml)
    return tuple(out)


def _is_categorical(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Categorical) or isinstance(dtype, (pl.Enum, pl.Categorical))


# ---------------------------------------------------------------- the serving log
def _prepare_predictions(root: Path, cfg: Config) -> tuple[pl.LazyFrame, Columns, Source, Callable[[datetime, datetime], pl.LazyFrame]]:
    source = resolve(root, "predictions", cfg.sources.get("predictions"), required=True)
    assert source is not None
    toml = root / "workbench.toml"
    lf = source.scan()
    schema = lf.collect_schema()
    ts = _required_column(source, toml, schema, "timestamp", cfg.timestamp)
    pred = _required_column(source, toml, schema, "prediction", cfg.prediction)
    label = _required_column(source, toml, schema, "label", cfg.label)
    # snapshot_id is optional, unless the user mapped it explicitly
    snap = _resolve_column(source, toml, schema, "snapshot", cfg.snapshot, "columns.snapshot" in cfg.explicit)
    for role, column in (("timestamp", ts), ("prediction", pred), ("label", label)):
        if column in source.lacking:  # a role every row needs (a missing snapshot id is filled from snapshots/)
            parts, total = source.lacking[column]
            null_ok = " (null where a label is not joined yet)" if role == "label" else ""
            raise source.error(f"column '{column}' ({role}) is missing from {len(parts)} of {total} parquet parts.",
                               f"write '{column}' into every part{null_ok}; only a feature, a slice or the snapshot id may "
                               "be missing from parts written before the log gained it.",
                               [f"missing in: {listed_parts(parts)}"])
    named = [("timestamp", ts), ("prediction", pred), ("label", label), *((("snapshot", snap),) if snap else ())]
    for i, (role, column) in enumerate(named):  # `prediction = "label"` scored the labels against themselves: NE 0
        twice = [other for other, c in named[i + 1:] if c == column]
        if twice:
            raise CaseError(toml, f"column '{column}' is mapped twice: as the {role} and as the {twice[0]}.",
                            "map each role to its own column under [columns].")
    roles: set[str] = {ts, pred, label} | ({snap} if snap else set())
    features = _resolve_features(source, toml, schema.names(), cfg.features, roles)
    if cfg.slices is None:
        slices = tuple(n for n in schema.names() if n not in roles and n not in features and _is_categorical(schema[n]))
    else:
        slices = _resolve_features(source, toml, schema.names(), cfg.slices, roles | set(features), "slices")

    for name in features:
        dtype = schema[name]
        if not (dtype.is_numeric() or dtype == pl.Boolean or dtype == pl.Null):
            raise CaseError.wrong_type(source, name, "feature", dtype, "a number",
                                       f"features are the model's dense inputs; list '{name}' under [columns] slices instead, "
                                       "or narrow [columns] features.")
    canonical = {TS, PREDICTION, LABEL, SNAPSHOT}
    for name in (*features, *slices):
        if name in roles or (name in features and name in slices):
            as_role = {ts: "timestamp", pred: "prediction", label: "label", snap: "snapshot"}.get(name, "feature")
            raise CaseError(toml, f"column '{name}' is mapped twice: as the {as_role} and as a {'slice' if name in slices else 'feature'}.",
                            "map each column to one role under [columns]; a slice is categorical, a feature numeric.")
        if name in canonical and name not in roles:
            raise CaseError(source, f"column '{name}' is mapped as a feature/slice but its name is reserved for a role.",
                            f"rename the column, or map the role to it in {toml}.")

    pdtype = schema[pred]
    if not pdtype.is_numeric():
        raise CaseError.wrong_type(source, pred, "prediction", pdtype, "a float probability",
                                   "store the served probability as a float column.")
    ldtype = schema[label]
    if not (ldtype.is_numeric() or ldtype in (pl.Boolean, pl.Null)):
        raise CaseError.wrong_type(source, label, "label", ldtype, "0/1 integers or booleans (null while not joined)",
                                   "store the joined outcome as 0/1 or true/false.")

    ts_expr, ts_bad = _time_expr(source, schema, ts, lf)
    if ts_bad is not None:  # text timestamps (CSV): find the unparseable ones before anything else
        bad = lf.filter(ts_bad).select(pl.col(ts)).head(3).collect()[ts].to_list()
        if bad:
            raise CaseError.bad_values(source, ts, "timestamps are not parseable.",
                                       "write ISO 8601 timestamps (2026-11-20T14:00:00Z) or a parquet timestamp column.", bad)
    columns = Columns(ts, pred, label, snap, features, slices)
    exprs = _canonical_exprs(ts_expr, schema, columns)

    def window(start: datetime, end: datetime) -> pl.LazyFrame:
        raw = source.scan_window(ts, start, end)  # None: the source cannot narrow a read on this column's type
        return (lf if raw is None else raw).select(exprs)

    return lf.select(exprs), columns, source, window


def _canonical_exprs(ts_expr: pl.Expr, schema: pl.Schema, c: Columns) -> list[pl.Expr]:
    """The select that turns a serving log's rows into the case's canonical columns, for the loader and for the Dask
    workers' reader alike (:func:`workbench.data._dask.reader`). A float NaN in a feature is a missing value, as a
    null is (writers differ: pandas writes null, Spark and numpy NaN), so every reading counts it as lost coverage,
    not as a value out of scale; so is an infinite one (an overflow or a division by zero upstream: no model reads it
    as a value, and in the drift statistics' sums it made every moment NaN)."""
    exprs = [ts_expr.alias(TS), pl.col(c.prediction).cast(pl.Float64).alias(PREDICTION),
             pl.col(c.label).cast(pl.Float64).alias(LABEL),
             pl.col(c.snapshot).cast(pl.String).alias(SNAPSHOT) if c.snapshot else pl.lit(None, pl.String).alias(SNAPSHOT)]
    exprs += [_finite(pl.col(f)) if schema[f].is_float() else pl.col(f).cast(pl.Float64) for f in c.features]
    exprs += [pl.col(s).cast(pl.String) for s in c.slices]
    return exprs


def _finite(x: pl.Expr) -> pl.Expr:
    """A float feature with its NaN and infinite values missing (:func:`_canonical_exprs`)."""
    return pl.when(x.is_finite()).then(x)


def _served_snapshot(snapshots: tuple[Snapshot, ...]) -> pl.Expr:
    """The snapshot serving each row: the latest published at or before ``ts`` (no sort, no join)."""
    expr: pl.Expr = pl.lit(None, pl.String)
    for snap in snapshots:  # ascending: each later snapshot overrides from its publish time on
        expr = pl.when(pl.col(TS) >= pl.lit(snap.published_at).cast(UTC_US)).then(pl.lit(snap.snapshot_id)).otherwise(expr)
    return expr


def _validate(lf: pl.LazyFrame, source: Source, cols: Columns) -> tuple[pl.DataFrame, list[str], Unscored | None]:
    """One aggregate pass: value errors raise, soft problems become warnings; returns the 15-minute profile
    (``period``, ``rows``, ``labeled``, ``positives``, ``pred_sum_labeled``) of the scored rows, from which every
    grain's counts are sums, and the rows without a finite prediction (None when every row has one)."""
    p, y, scored = pl.col(PREDICTION), pl.col(LABEL), SCORED
    checks = lf.select(
        pl.len().alias("rows"),
        pl.col(TS).is_null().sum().alias("ts_null"),
        (~scored).sum().alias("unscored"),
        pl.col(TS).filter(~scored).min().alias("unscored_first"),
        pl.col(TS).filter(~scored).max().alias("unscored_last"),
        (scored & ((p < 0) | (p > 1))).sum().alias("p_out"),
        (y.is_not_null() & ~y.is_in([0.0, 1.0])).sum().alias("y_bad"),
        (pl.col(TS).diff() < pl.duration(microseconds=0)).sum().alias("unsorted"),
    )
    profile = (lf.filter(scored).group_by(pl.col(TS).dt.truncate("15m").alias("period"))
               .agg(pl.len().alias("rows"), y.is_not_null().sum().alias("labeled"), (y == 1.0).sum().alias("positives"),
                    labelled_prediction_sum_expr())
               .drop_nulls("period").sort("period"))
    lost = (lf.filter(~scored).group_by(pl.col(TS).dt.truncate("15m").alias("period")).agg(pl.len().alias("unscored"))
            .drop_nulls("period").sort("period"))
    stats, profile_df, lost_df = pl.collect_all([checks, profile, lost], engine="streaming")
    s = stats.row(0, named=True)
    if s["rows"] == 0:
        raise CaseError(source, "the table is empty.", "the serving log needs at least one row per hour you want to analyse.")
    if s["ts_null"]:
        raise CaseError.bad_values(source, cols.timestamp, f"{s['ts_null']:,} timestamps are missing.",
                                   "every served row needs its serving time; drop rows without one.")
    if s["unscored"] == s["rows"]:
        raise CaseError.bad_values(source, cols.prediction, "no row carries a finite prediction (every one is NaN, inf or null).",
                                   "log the served probability in every row the model scored.")
    unscored = Unscored(s["unscored"], s["unscored"] / s["rows"], s["unscored_first"], s["unscored_last"], lost_df) \
        if s["unscored"] else None
    if s["p_out"]:
        raise CaseError.bad_values(source, cols.prediction, f"{s['p_out']:,} predictions are outside [0, 1].",
                                   "the prediction must be a probability; if you logged logits, store sigmoid(logit).")
    if s["y_bad"]:
        raise CaseError.bad_values(source, cols.label, f"{s['y_bad']:,} labels are not 0 or 1.",
                                   "labels must be 0/1 (or true/false), null while not yet joined.")
    warnings = []
    if s["unsorted"]:
        warnings.append(f"{source.name}: rows are not sorted by time ({s['unsorted']:,} steps back); that is fine, "
                        "but sorting by ts makes scans faster.")
    warnings += _label_delay(_hourly(profile_df))
    if unscored is not None:
        warnings.append(f"{source.name}: {unscored}.")
    return profile_df, warnings, unscored


def _hourly(profile: pl.DataFrame) -> pl.DataFrame:
    return profile_at(profile, "1h").select(pl.col("period").alias("hour"), "rows", "labeled")


def _label_delay(hourly: pl.DataFrame) -> list[str]:
    """Warn when the latest hours have far fewer labels than usual: delay, not an incident."""
    if hourly.height < 4:
        return []
    end = reliable_end((hourly["labeled"] / hourly["rows"]).to_numpy(), hourly["rows"].to_numpy())
    late = hourly.height - end
    if late == 0:
        return []
    first = hourly["hour"][end]
    return [f"labels are missing in the latest {late} hour(s) (from {first:%Y-%m-%d %H:%M} UTC): label delay. "
            "Label metrics there are estimated, not measured."]


def _all_null_features(source: Source, lf: pl.LazyFrame, features: tuple[str, ...], rows: int, every_row: bool = True
                       ) -> list[str]:
    """Features with no value at all, from the source's metadata where possible (parquet footers: no data read), which
    counts every row: when ``lf`` leaves rows out (``every_row`` false: unscored rows), only a scan of it can tell."""
    if not features:
        return []
    nulls = source.null_counts(features) if every_row else None
    if nulls is None:
        nulls = lf.select(pl.col(features).null_count()).collect().row(0, named=True)
    return [f"feature '{f}' is null in every row: its checks are skipped." for f in features if nulls[f] >= rows]


# ---------------------------------------------------------------- other files
def _prepare_training(root: Path, cfg: Config, cols: Columns) -> tuple[pl.LazyFrame | None, list[str], Source | None]:
    """The training sample, its label and timestamp under the serving log's mapped names or, when those are absent,
    the contract's own (``ts``, ``label``: the contract names the sample's columns so, and a sample written that way
    beside a log whose label is ``clicked`` was refused, with a hint to map the log's label to ``label``)."""
    source = resolve(root, "training", cfg.sources.get("training"), required=False)
    if source is None:
        return None, [], None
    lf = source.scan()
    schema = lf.collect_schema()
    named = cols.label if cols.label in schema or LABEL not in schema else LABEL
    label = _resolve_column(source, root / "workbench.toml", schema, "label", named, True)
    assert label is not None
    exprs = [pl.col(label).cast(pl.Float64).alias(LABEL)]
    stamp = cols.timestamp if cols.timestamp in schema else TS if TS in schema else None
    if stamp is not None:
        exprs.insert(0, _time_expr(source, schema, stamp, lf)[0].alias(TS))
    present = [f for f in cols.features if f in schema]
    missing = [f for f in cols.features if f not in schema]
    exprs += [_finite(pl.col(f).cast(pl.Float64)) for f in present]  # NaN and infinity are missing, as in the log
    exprs += [pl.col(s).cast(pl.String) for s in cols.slices if s in schema]
    warnings = [f"{source.name} lacks feature(s) {missing}: training-serving skew is skipped for them."] if missing else []
    return lf.select(exprs), warnings, source


def _read_events(path: Path) -> pl.DataFrame:
    try:
        raw = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise CaseError(path, f"unreadable: {str(exc).splitlines()[0][:200]}",
                        "write it as CSV with the header ts,kind,target,description.") from None
    missing = [c for c in EVENT_COLUMNS if c not in raw.columns]
    if missing:
        raise CaseError(path, f"missing column(s) {missing}; found {raw.columns}.", "the header must be: ts,kind,target,description")
    ts = raw["ts"].str.strip_chars().str.replace(r"Z$", "+00:00").str.to_datetime(strict=False, time_unit="us", time_zone="UTC")
    bad = raw.with_row_index("line", offset=2).filter(ts.is_null())  # line 1 is the header
    if bad.height:
        raise CaseError(path, f"{bad.height} event timestamp(s) not parseable, e.g. {bad['ts'][0]!r} (line {bad['line'][0]}).",
                        "use ISO 8601, e.g. 2026-11-20T14:00:00Z.")
    return raw.select(ts.alias("ts"), *(pl.col(c).fill_null("") for c in EVENT_COLUMNS[1:])).sort("ts")


def refuse_case_file(output: str | Path, case: str | Path, flag: str) -> None:
    """Refuse to write ``output`` (given by ``flag``) over a file or folder of the case at ``case``: nothing the user gave
    is modified, and `workbench report CASE -o CASE/predictions.parquet` replaced the serving log with a web page. A
    new file, or an existing HTML page (an earlier report), may be written inside the case."""
    given = Path(os.path.abspath(output))  # as named (a link inside the case is the case's, wherever it points)
    out, root, root_named = given.resolve(), Path(case).resolve(), Path(os.path.abspath(case))
    inside = any(p == r or r in p.parents for p in (given, out) for r in (root, root_named))
    if inside and (given.is_symlink() or out.exists()) and (out.is_dir() or given.is_symlink()
                                                           or out.suffix.lower() not in (".html", ".htm")):
        raise WorkbenchError(flag, f"{output} is a file of the case at {case}; nothing was written.",
                             "write the output elsewhere, or to a new .html file.")


def open_case(path: str | Path, *, progress: Callable[[str], None] | None = None) -> Case:
    """Open and validate the case directory ``path``.

    Raises :class:`~workbench.errors.CaseError` naming the file, the column and the
    fix when the case cannot be read as the case format says.

    >>> case = open_case("sample_data/cases/feature_coverage_drop")
    >>> case.predictions.collect_schema()["prediction"]
    Float64
    """
    root = Path(path).expanduser().resolve()
    if not root.exists():
        raise CaseError(root, "does not exist.", "check the path: a case is a directory holding predictions.parquet "
                        "(or a workbench.toml saying where the logs live).")
    if not root.is_dir():
        raise CaseError(root, "is a file, not a directory.", "point the workbench at the case directory that holds it.")
    say = progress or (lambda _msg: None)
    cfg = read_config(root)
    say("reading the serving log")
    lf, cols, source, window = _prepare_predictions(root, cfg)
    sources: dict[str, Path | str] = {"predictions": source.path or source.display}

    snapshots: tuple[Snapshot, ...] = ()
    snapshot_problem = None
    if (root / "snapshots" / "index.csv").exists():
        snapshots = read_snapshot_index(root, check_files=False)
        # a snapshot file that is missing, truncated or unsafe leaves the log's checks to run: the snapshots are set
        # aside (with one of them gone, the rows it served would be put down to its predecessor) and every check that
        # needs them says why it was skipped
        for snap in snapshots:
            try:
                inspect_snapshot_file(snap.path)
            except SnapshotError as exc:
                snapshot_problem, snapshots = f"{exc.source}: {exc.fact}" + (f" ({exc.hint})" if exc.hint else ""), ()
                break
    elif (root / "snapshots").is_dir():
        raise CaseError(root / "snapshots", "directory has no index.csv.",
                        "list the snapshots in snapshots/index.csv: snapshot_id,published_at,file[,stable]")
    say("validating timestamps, predictions and labels")
    profile, warnings, unscored = _validate(lf, source, cols)
    if unscored is not None:  # left out of every read, as the profile left them out
        lf = lf.filter(SCORED)
    hourly = _hourly(profile)
    grain = choose_grain(profile, cfg.grain)
    if not grain.testable:
        warnings.append(f"{grain.reason}. Prediction quality cannot be tested for a regression; "
                        "diagnose will say so instead of reporting 'no regression'.")
    if snapshots:
        lf = lf.with_columns(pl.coalesce(pl.col(SNAPSHOT), _served_snapshot(snapshots)).alias(SNAPSHOT))
    window_scan = None
    if source.pushes_windows:
        def window_scan(start: datetime, end: datetime) -> pl.LazyFrame:
            rows = window(start, end) if unscored is None else window(start, end).filter(SCORED)
            return rows.with_columns(pl.coalesce(pl.col(SNAPSHOT), _served_snapshot(snapshots)).alias(SNAPSHOT)) if snapshots else rows
    rows = int(hourly["rows"].sum())
    if snapshot_problem:
        warnings.append(f"snapshots/ set aside, the checks that need them are skipped: {snapshot_problem}")
    warnings += _all_null_features(source, lf, cols.features, rows, every_row=unscored is None)
    if not cols.features:
        warnings.append(f"no feature columns match {list(cfg.features)}: feature checks are skipped. "
                        "Map them in workbench.toml: [columns] features = [\"f_*\"]")

    training, more, tsource = _prepare_training(root, cfg, cols)
    warnings += more
    for stem in ("predictions", "training"):  # two default files of one table: say which was read
        found = defaults(root, stem) if stem not in cfg.sources else []
        if len(found) > 1:
            warnings.append(f"{', '.join(p.name for p in found)} are all in the case: {found[0].name} was read; remove "
                            f"the other or name one with [source.{stem}] uri in workbench.toml.")
    if tsource:
        sources["training"] = tsource.path or tsource.display
    lineage = read_lineage(root / "lineage.json") if (root / "lineage.json").exists() else None
    events = _read_events(root / "events.csv") if (root / "events.csv").exists() else None
    model_file = root / cfg.model.file
    model = cfg.model if model_file.exists() else None
    if model is None and "model.factory" in cfg.explicit:
        raise CaseError(cfg.source or root, f"[model] factory names '{cfg.model.file}', which does not exist in {root}.",
                        "add the file, or remove the [model] table to run model-free.")
    return Case(root=root, name=cfg.name or root.name, config=cfg, columns=cols, predictions=lf, training=training,
                snapshots=snapshots, lineage=lineage, events=events, model=model, hourly=hourly, profile=profile, grain=grain, rows=rows,
                warnings=tuple(warnings), sources=sources, window_scan=window_scan, snapshot_problem=snapshot_problem,
                unscored=unscored)
