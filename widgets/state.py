"""The investigation's state: everything a user chose, typed, validated, and serializable.

Every view reads and writes one :class:`Investigation`. Selecting a range on the
quality timeline sets ``baseline``/``incident``; clicking a slice sets ``slice``;
opening a node appends to ``path``; accepting a hypothesis writes ``choices``.
``to_json()`` / ``from_json()`` round-trip it, which is how a shared notebook
reopens where the investigation stood (see :mod:`workbench_widgets._persist`).
"""

from __future__ import annotations

import difflib
import json
from datetime import UTC, datetime
from typing import Any

import param

__all__ = ["CHOICES", "SCHEMA", "VIEWS", "Investigation"]

SCHEMA = "workbench.investigation/1"
CHOICES = ("accepted", "rejected")
VIEWS = ("tree", "timeline", "slices", "features", "snapshots", "lineage")


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


class Investigation(param.Parameterized):
    """One investigation of one case, as the user left it.

    >>> s = Investigation(case="upstream_break", slice="country=BR")
    >>> s.choose("upstream:table:ad_clicks", "accepted")
    >>> Investigation.from_json(s.to_json()).choices
    {'upstream:table:ad_clicks': 'accepted'}
    """

    case = param.String(default="", doc="The case's name (a state is only restored onto the same case).")
    baseline = param.Tuple(default=None, length=2, allow_None=True,
                           doc="The baseline window (start, end) in UTC; every comparison is baseline vs incident.")
    incident = param.Tuple(default=None, length=2, allow_None=True, doc="The incident window (start, end) in UTC.")
    slice = param.String(default=None, allow_None=True,
                         doc="The selected traffic segment, 'column=value' (two columns: 'a=x & b=y'); filters the views.")
    node = param.String(default=None, allow_None=True, doc="The decision-tree node whose evidence is open.")
    path = param.List(default=[], item_type=str, doc="The nodes the user opened, in order: the investigation path.")
    choices = param.Dict(default={}, doc="Hypothesis ('kind:target') -> 'accepted' or 'rejected'.")
    notes = param.Dict(default={}, doc="Node name (or hypothesis) -> the user's note.")
    feature = param.String(default=None, allow_None=True, doc="The feature shown in the feature view.")
    snapshot = param.String(default=None, allow_None=True, doc="The snapshot shown in the snapshot view.")
    parameter = param.String(default=None, allow_None=True, doc="The model parameter whose histogram is shown.")
    view: param.Selector[str] = param.Selector(default="tree", objects=list(VIEWS), doc="The tab in front.")

    _FIELDS = ("case", "baseline", "incident", "slice", "node", "path", "choices", "notes", "feature", "snapshot",
               "parameter", "view")

    @param.depends("baseline", "incident", watch=True, on_init=True)
    def _check_windows(self) -> None:
        for name in ("baseline", "incident"):
            w = getattr(self, name)
            if w is None:
                continue
            start, end = _utc(w[0]), _utc(w[1])
            if end <= start:
                raise ValueError(f"Investigation.{name}: end {end:%Y-%m-%d %H:%M} is not after start {start:%Y-%m-%d %H:%M}.\n"
                                 "Hint: select the range from left to right, or give (start, end).")
            if (start, end) != tuple(w):  # store UTC-aware datetimes only, whatever was given
                with param.parameterized.discard_events(self):
                    setattr(self, name, (start, end))

    @param.depends("choices", watch=True, on_init=True)
    def _check_choices(self) -> None:
        bad = {k: v for k, v in self.choices.items() if v not in CHOICES}
        if bad:
            raise ValueError(f"Investigation.choices: {bad} — a choice is one of {list(CHOICES)}.\n"
                             "Hint: use state.choose(hypothesis, 'accepted') or 'rejected' (None clears it).")

    # ------------------------------------------------------------------ verbs
    def open(self, node: str) -> None:
        """Open ``node``: it becomes the current node and joins the path (once)."""
        with param.parameterized.batch_call_watchers(self):
            if node not in self.path:
                self.path = [*self.path, node]
            self.node = node

    def choose(self, hypothesis: str, choice: str | None) -> None:
        """Accept or reject a hypothesis (``None`` clears the choice)."""
        if choice is not None and choice not in CHOICES:
            raise ValueError(f"choice {choice!r} for {hypothesis!r} is not one of {list(CHOICES)}.\n"
                             "Hint: 'accepted' or 'rejected'; None clears the choice.")
        choices = dict(self.choices)
        if choice is None:
            choices.pop(hypothesis, None)
        else:
            choices[hypothesis] = choice
        self.choices = choices

    def note(self, key: str, text: str) -> None:
        """Set the note on a node or hypothesis (empty text removes it)."""
        notes = dict(self.notes)
        if text.strip():
            notes[key] = text
        else:
            notes.pop(key, None)
        self.notes = notes

    @property
    def windows(self) -> tuple[Any, Any] | None:
        """(baseline, incident) as ``workbench.Window`` objects, or ``None`` until both are set."""
        if self.baseline is None or self.incident is None:
            return None
        from workbench import Window

        return Window(*self.baseline), Window(*self.incident)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA}
        for name in self._FIELDS:
            value = getattr(self, name)
            if name in ("baseline", "incident"):
                value = None if value is None else [_iso(value[0]), _iso(value[1])]
            elif isinstance(value, (list, dict)):
                value = json.loads(json.dumps(value))  # a copy, and proof it is JSON
            out[name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Investigation:
        if not isinstance(data, dict):
            raise ValueError(f"Investigation state must be a JSON object, got {type(data).__name__}.")
        schema = data.get("schema", SCHEMA)
        if schema != SCHEMA:
            raise ValueError(f"Investigation state has schema {schema!r}; this version reads {SCHEMA!r}.\n"
                             "Hint: start a fresh investigation, or upgrade ml-workbench to read newer states.")
        unknown = [k for k in data if k not in cls._FIELDS and k != "schema"]
        if unknown:
            close = difflib.get_close_matches(unknown[0], cls._FIELDS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {list(cls._FIELDS)}"
            raise ValueError(f"Investigation state has unknown key {unknown[0]!r}.\nHint: {hint}")
        kwargs = {k: v for k, v in data.items() if k in cls._FIELDS}
        for name in ("baseline", "incident"):
            if kwargs.get(name) is not None:
                kwargs[name] = (_utc(kwargs[name][0]), _utc(kwargs[name][1]))
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> Investigation:
        return cls.from_dict(json.loads(text))

    def update_from(self, other: Investigation) -> None:
        """Take every field of ``other`` at once (views see one batch of changes)."""
        self.param.update(**{name: getattr(other, name) for name in self._FIELDS})

    def summary(self) -> str:
        """One line for the notebook: what the saved state holds."""
        acc = sum(v == "accepted" for v in self.choices.values())
        rej = sum(v == "rejected" for v in self.choices.values())
        parts = [f"{len(self.path)} node(s) opened", f"{acc} accepted, {rej} rejected", f"{len(self.notes)} note(s)"]
        if self.slice:
            parts.append(f"slice {self.slice}")
        return "; ".join(parts)
