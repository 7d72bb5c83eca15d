"""``investigate(case)``: the whole investigation in one notebook cell, or one ``panel serve`` app.

The pipeline: open the case → diagnose once (progress shown) → prefetch the few
extra passes the views draw (quality per slice column, drift, slices, snapshot
timeline) → build the views over one shared :class:`Investigation` state. After
that no interaction rescans the data, except changing the windows, which reruns
the windowed passes once per window pair (with a progress line).

In JupyterLab the state is kept in the notebook's outputs (see ``_persist``), so a
shared notebook reopens where the investigation stood. Under ``panel serve`` the
same app is served with ``investigate(path).servable()``; there the expensive work
runs after the page has loaded, behind a progress bar.
"""

from __future__ import annotations

import contextlib
import html
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import holoviews as hv
import panel as pn
import param

from workbench_widgets._base import Widget, check_kwargs, error_html
from workbench_widgets._persist import Record, find_saved_state
from workbench_widgets._results import Results
from workbench_widgets._style import CSS, STATUS_CSS
from workbench_widgets.features_view import FeaturesView
from workbench_widgets.lineage_view import LineageView
from workbench_widgets.slices_view import SlicesView
from workbench_widgets.snapshots_view import SnapshotsView
from workbench_widgets.state import VIEWS, Investigation
from workbench_widgets.timeline import QualityTimeline
from workbench_widgets.tree_panel import TreePanel

if TYPE_CHECKING:
    from workbench import Case, Diagnosis

__all__ = ["Investigator", "investigate"]

TITLES = {"tree": "Decision tree", "timeline": "Quality timeline", "slices": "Slices", "features": "Features",
          "snapshots": "Snapshots", "lineage": "Lineage"}
VIEW_CLASSES = {"tree": TreePanel, "timeline": QualityTimeline, "slices": SlicesView, "features": FeaturesView,
                "snapshots": SnapshotsView, "lineage": LineageView}
_EXTENSIONS_LOADED = False


class _InlineColumn(pn.Column):
    """A Column that inlines its stylesheets in one batch when rendered in a notebook.

    With ``inline=True`` Panel swaps every model's CDN stylesheet for an inline copy
    one model at a time, after the models joined the document; each swap makes Bokeh
    recompute the document's model graph, so a page of ~150 components took over a
    minute to display. Doing the same swaps inside ``Document.models.freeze()`` (one
    recompute at the end) leaves Panel's own pass nothing to change.
    """

    def _render_model(self, doc: Any = None, comm: Any = None) -> Any:
        model = super()._render_model(doc, comm)
        if pn.config.inline and model.document is not None:
            from bokeh.models.ui import UIElement  # bokeh.models re-exports it, but not visibly to a type checker
            from panel.io.notebook import patch_inline_stylesheets

            with model.document.models.freeze():
                for sub in model.select({"type": UIElement}):
                    patch_inline_stylesheets(sub)
        return model


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _in_server() -> bool:
    doc = pn.state.curdoc
    return doc is not None and getattr(doc, "session_context", None) is not None


def load_extensions() -> None:
    """Load Bokeh/Panel JS *inline*, once per kernel: offline, a CDN link would leave every plot blank."""
    global _EXTENSIONS_LOADED
    if _EXTENSIONS_LOADED:
        return
    # HoloViews first: its extension() reloads panel's notebook JS with its own inline default.
    hv.extension("bokeh", inline=True, logo=False)
    pn.extension("tabulator", inline=True, notifications=False)
    _EXTENSIONS_LOADED = True


def _restore(case: Case, state: Investigation | dict | str | Path | None, notebook: str | Path | None) -> tuple[Investigation, str]:
    if isinstance(state, Investigation):
        return state, "given"
    if isinstance(state, dict):
        return Investigation.from_dict(state), "given"
    if isinstance(state, (str, Path)):
        text = str(state)
        if text.lstrip().startswith("{"):
            return Investigation.from_json(text), "given"
        return Investigation.from_json(Path(text).read_text(encoding="utf-8")), f"restored from {text}"
    saved = find_saved_state(case.name, notebook)
    if saved is not None:
        return Investigation.from_dict(saved), "restored from this notebook"
    return Investigation(case=case.name), "new"


class Investigator(Widget):
    """The investigation app: decision tree, quality timeline, slices, features, snapshots, lineage.

    Build it with :func:`investigate`. ``state`` is the shared
    :class:`~workbench_widgets.state.Investigation`; ``views`` maps a view name to
    its view; ``results`` holds every computed result.
    """

    prefetch = param.Boolean(default=True, doc="Compute what every view draws at load, so no interaction waits on a scan.")
    height = param.Integer(default=None, allow_None=True, bounds=(300, None), doc="Fixed height in pixels (None: natural).")

    def __init__(self, case: Case, *, diagnosis: Diagnosis | None = None, state: Investigation | None = None,
                 record: Record | None = None, origin: str = "new", defer: bool = False, **params: Any):
        super().__init__(**params)
        self.results = Results(case, diagnosis)
        self.state = state or Investigation(case=case.name)
        self.state.case = case.name
        self.record = record or Record()
        self.origin = origin
        self.views: dict[str, Any] = {}
        self.load_seconds = 0.0
        self._header = pn.pane.HTML(self._header_html(), stylesheets=[CSS], sizing_mode="stretch_width", margin=(4, 8))
        self._progress = pn.indicators.Progress(active=True, width=260, visible=False, margin=(4, 8))
        self._status = pn.pane.HTML("", stylesheets=[STATUS_CSS], margin=(4, 8))
        # Not dynamic: every tab is drawn once and stays in the document. With dynamic tabs a hidden tab's
        # models leave the document, and Bokeh (3.9) then fails to read back the Line glyphs the views
        # update in place ("failed to validate Line.line_color") when the tab is shown again.
        self.tabs = pn.Tabs(sizing_mode="stretch_width", dynamic=False, css_classes=["wb-tabs"])
        self._body = pn.Column(self.error, pn.Row(self._progress, self._status), sizing_mode="stretch_width")
        self._layout = _InlineColumn(self._header, self._body, sizing_mode="stretch_width", css_classes=["wb-app"],
                                 styles={"border": "1px solid #e5e7eb", "border-radius": "8px", "background": "white"},
                                 height=self.height)
        if defer:
            self._say("waiting for the page to load…")
            pn.state.onload(self._load_later)
        else:
            self.load()

    # ------------------------------------------------------------------ loading
    def _say(self, message: str | None) -> None:
        self._progress.visible = message is not None
        self._status.object = "" if message is None else html.escape(message)
        if message is not None and not self.results.ready:
            self.record.progress(f"workbench: {message}")

    def load(self, progress: Callable[[str], None] | None = None) -> Investigator:
        """Diagnose (once), prefetch, build the views. Safe to call again (it does nothing then)."""
        if self.views:
            return self
        say = progress or self._say
        t0 = time.perf_counter()
        try:
            say("diagnosing…")
            d = self.results.diagnosis(progress=lambda m: say(f"diagnosing: {m.splitlines()[0][:120]}"))
            if self.state.baseline is None or self.state.incident is None:
                self.state.param.update(baseline=(d.baseline.start, d.baseline.end), incident=(d.incident.start, d.incident.end))
            if self.prefetch:
                for name, cls in VIEW_CLASSES.items():
                    prefetch = getattr(cls, "prefetch", None)
                    if prefetch is not None:
                        say(f"preparing the {TITLES[name].lower()}…")
                        # a failure here is shown by the view itself when it is built
                        with contextlib.suppress(Exception):
                            prefetch(self.results, self.state)
            say("drawing…")
            self._build_views()
        except Exception as exc:
            self.show_error(exc, "loading the investigation")
            self._say(None)
            raise
        self.load_seconds = time.perf_counter() - t0
        self._say(None)
        self._header.object = self._header_html()
        self.state.param.watch(self._publish, list(Investigation._FIELDS))
        self.record.publish(self.state, note=f" ({self.origin})" if self.origin != "new" else "")
        return self

    async def _load_later(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()

        def say(message: str) -> None:  # progress from the worker thread, shown by the event loop
            loop.call_soon_threadsafe(self._say, message)

        try:
            await asyncio.to_thread(self._compute, say)
            self.load()
        except Exception as exc:
            self.show_error(exc, "loading the investigation")
            self._say(None)

    def _compute(self, say: Callable[[str], None]) -> None:
        """The expensive part of :meth:`load`, safe to run off the event loop (no widget is touched)."""
        say("diagnosing…")
        d = self.results.diagnosis(progress=lambda m: say(f"diagnosing: {m.splitlines()[0][:120]}"))
        state = self.state if self.state.baseline else Investigation(case=self.state.case, baseline=(d.baseline.start, d.baseline.end),
                                                                     incident=(d.incident.start, d.incident.end))
        for name, cls in VIEW_CLASSES.items():
            prefetch = getattr(cls, "prefetch", None)
            if prefetch is not None and self.prefetch:
                say(f"preparing the {TITLES[name].lower()}…")
                try:
                    prefetch(self.results, state)
                except Exception:
                    traceback.print_exc()

    def _build_views(self) -> None:
        for name, cls in VIEW_CLASSES.items():
            try:
                self.views[name] = cls(self.state, self.results)
                content = self.views[name].__panel__()
            except Exception as exc:  # one broken view must not take the others down
                content = pn.pane.Alert(error_html(exc, f"building the {TITLES[name].lower()}"), alert_type="danger",
                                        sizing_mode="stretch_width")
            self.tabs.append((TITLES[name], content))
        self.tabs.active = VIEWS.index(self.state.view)
        self.tabs.param.watch(self._on_tab, "active")
        self.state.param.watch(self._on_view, "view")
        self._body.objects = [self.error, pn.Row(self._progress, self._status), self.tabs]

    # ------------------------------------------------------------------ state
    def _on_tab(self, event: param.parameterized.Event) -> None:
        self.state.view = VIEWS[event.new]

    def _on_view(self, event: param.parameterized.Event) -> None:
        self.tabs.active = VIEWS.index(event.new)

    def _publish(self, *_events: param.parameterized.Event) -> None:
        self.record.publish(self.state)

    def _header_html(self) -> str:
        case = self.results.case
        d = self.results._diagnosis
        top = d.top if d is not None else None
        if top is not None:
            verdict = (f"root cause: <b>{html.escape(top.kind)}: {html.escape(top.target)}</b> "
                       f"(confidence {top.confidence:.2f})")
        elif d is not None:
            if d.anomaly.get("detected"):
                verdict = "regression detected; no cause found"
            elif d.untested:  # no grain holds enough labelled rows: nothing was tested
                verdict = "cannot be tested: too few labelled rows at any grain (see the decision tree's first row)"
            else:
                verdict = "no regression detected"
        else:
            verdict = "diagnosing…"
        return (f"<div style='display:flex;align-items:baseline;gap:14px;flex-wrap:wrap'>"
                f"<span style='font-size:17px;font-weight:650'>{html.escape(case.name)}</span>"
                f"<span class='wb-muted'>{case.rows:,} predictions · {case.start:%Y-%m-%d %H:%M} – {case.end:%Y-%m-%d %H:%M} UTC</span>"
                f"<span style='font-size:13px'>{verdict}</span></div>")

    # ------------------------------------------------------------------ public
    def save(self, path: str | Path) -> Path:
        """Write the state as JSON (reopen with ``investigate(case, state=path)``)."""
        path = Path(path)
        path.write_text(json.dumps(self.state.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
        return path

    def code(self) -> str:
        """The ``workbench`` calls behind every view, in one snippet to paste into a notebook."""
        parts = [f"# {TITLES[name]}\n{view.code()}" for name, view in self.views.items()]
        return "\n\n".join(parts)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        load_extensions()
        return self.__panel__()._repr_mimebundle_(include, exclude)


def investigate(case: Case | str | Path, *, diagnosis: Diagnosis | None = None,
                state: Investigation | dict | str | Path | None = None, notebook: str | Path | None = None,
                scheduler: object = None, **params: Any) -> Investigator:
    """Open the guided investigation of ``case`` (a case directory or an opened :class:`~workbench.Case`).

    Parameters
    ----------
    case
        The case directory, or a case from :func:`workbench.open_case`.
    diagnosis
        A diagnosis already computed (``workbench.rca.diagnose``); computed once here otherwise.
    state
        Where the investigation stood: an :class:`Investigation`, its JSON (text or dict) or
        a JSON file from :meth:`Investigator.save`. By default, in a notebook, the state saved
        in the notebook's own outputs for this case is restored.
    notebook
        The notebook to restore from (default: the one this kernel runs).
    scheduler
        A Dask scheduler address (``tcp://HOST:PORT``) or ``distributed.Client``: the diagnosis reads
        the log there, one task per part (``workbench.diagnose(case, scheduler=...)``).
    **params
        :class:`Investigator` parameters (``prefetch``, ``height``).

    Examples
    --------
    >>> from workbench_widgets import investigate
    >>> app = investigate("sample_data/cases/upstream_break")  # doctest: +SKIP
    >>> app.state.view  # doctest: +SKIP
    'tree'
    """
    check_kwargs(Investigator, params, extra=("diagnosis", "state", "notebook"))
    from workbench import Case, open_case

    kernel = _in_kernel()
    if kernel:
        load_extensions()
    record = Record()
    if not isinstance(case, Case):
        record.progress(f"workbench: opening {case}…")
        case = open_case(case)
    restored, origin = _restore(case, state, notebook)
    if scheduler is not None and diagnosis is None:
        from workbench.rca.diagnosis import diagnose

        diagnosis = diagnose(case, progress=record.progress, scheduler=scheduler)
    defer = diagnosis is None and _in_server() and not kernel
    return Investigator(case, diagnosis=diagnosis, state=restored, record=record, origin=origin, defer=defer, **params)
