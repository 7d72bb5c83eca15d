"""What every view shares: kwargs checked with a spelling hint, a visible error pane, guarded callbacks.

A view is a :class:`panel.viewable.Viewer` whose state is typed ``param``
parameters; its layout is built once, in ``_build`` (returned by ``__panel__``).
Callbacks are wrapped by :func:`guarded`: an exception lands in the view's error
pane (type, message, ``Hint:`` lines) instead of only in the kernel log.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import html
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import panel as pn
import param

from workbench_widgets._style import STATUS_CSS

if TYPE_CHECKING:
    from workbench_widgets._results import Results
    from workbench_widgets.state import Investigation

__all__ = ["View", "Widget", "check_kwargs", "guarded", "live_session"]

F = TypeVar("F", bound=Callable[..., Any])



def live_session() -> bool:
    """True in a Jupyter kernel or a ``panel serve`` session: an event loop that keeps running.

    (A running loop alone is not enough: Playwright's sync API, for one, leaves a
    suspended loop registered, and a task scheduled there would never run.)
    """
    doc = pn.state.curdoc
    if doc is not None and getattr(doc, "session_context", None) is not None:
        return True
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def check_kwargs(cls: type[param.Parameterized], kwargs: dict[str, Any], extra: tuple[str, ...] = ()) -> None:
    """Raise a ``TypeError`` naming the unknown keyword, the known ones and the closest spelling."""
    known = sorted({*cls.param, *extra} - {"name"})
    for key in kwargs:
        if key not in cls.param and key not in extra:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"use one of {known}"
            raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {key!r}.\n"
                            f"Available: {known}\nHint: {hint}")


def error_html(exc: BaseException, action: str) -> str:
    """The error pane's text: what failed, the message (with its Hint: lines), the last frames folded."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-4))
    msg = html.escape(str(exc) or type(exc).__name__).replace("\n", "<br>")
    return (f"<b>{html.escape(action)} failed</b> — {html.escape(type(exc).__name__)}: {msg}"
            f"<details><summary>traceback</summary><pre style='font-size:11px;white-space:pre-wrap'>"
            f"{html.escape(tb)}</pre></details>")


def guarded(action: str) -> Callable[[F], F]:
    """Decorate a view method used as a callback: errors go to ``self.error`` (and are not re-raised)."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(self: Widget, *args: Any, **kwargs: Any) -> Any:
            try:
                out = fn(self, *args, **kwargs)
            except Exception as exc:
                self.show_error(exc, action)
                return None
            return out

        return wrapper  # type: ignore[return-value]

    return deco


class Widget(pn.viewable.Viewer):
    """Base of every widget of the library: keyword arguments checked with a spelling hint, a visible
    error pane, a progress line, long passes off the event loop, one layout built once, ``code()``."""

    def __init__(self, **params: Any):
        check_kwargs(type(self), params)
        super().__init__(**params)
        self.error = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width",
                                   css_classes=["wb-error"], margin=(4, 8))
        self.status = pn.pane.HTML("", visible=False, stylesheets=[STATUS_CSS], margin=(0, 8))
        self.last_render_ms = 0.0
        self.background: bool | None = None  # long passes in a thread: None = in live sessions only
        self._tasks: set[asyncio.Task] = set()
        self.passes_started = 0  # long passes run by run_long (the benchmark reports them)
        self._layout: pn.viewable.Viewable | None = None

    # ---------------------------------------------------------- errors and progress
    def show_error(self, exc: BaseException, action: str) -> None:
        self.error.object = error_html(exc, action)
        self.error.visible = True

    def clear_error(self) -> None:
        if self.error.visible:
            self.error.visible = False
            self.error.object = ""

    def say(self, message: str | None) -> None:
        """Show (or, with ``None``, hide) a progress line for long work."""
        self.status.object = "" if message is None else f"<span class='wb-spin'></span> {html.escape(message)}"
        self.status.visible = message is not None

    def run_long(self, message: str, compute: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run ``compute`` (a ``workbench`` pass) with a progress line, then ``done(result)``.

        In a live session (a Jupyter kernel or a ``panel serve`` session, whose event
        loop keeps running) the pass runs in a worker thread, so the page stays
        responsive and shows the progress line; elsewhere (scripts, tests) it runs
        inline. Errors go to the error pane either way.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self.say(message)
        self.passes_started += 1
        live = self.background if self.background is not None else live_session()
        if loop is None or not live:
            try:
                done(compute())
            except Exception as exc:
                self.show_error(exc, message)
            finally:
                self.say(None)
            return

        async def task() -> None:
            try:
                result = await asyncio.to_thread(compute)
                done(result)
            except Exception as exc:
                self.show_error(exc, message)
            finally:
                self.say(None)

        self._tasks.add(loop.create_task(task()))
        self._tasks = {t for t in self._tasks if not t.done()}

    def timed(self, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.last_render_ms = (time.perf_counter() - t0) * 1e3

    # ---------------------------------------------------------- layout
    def _build(self) -> pn.viewable.Viewable:
        raise NotImplementedError

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._layout = self._build()
        return self._layout

    def code(self) -> str:
        """The ``workbench`` calls that reproduce what this view shows (paste into a notebook)."""
        raise NotImplementedError


class View(Widget):
    """Base of the investigation's views: the shared :class:`Investigation` state and the cached results."""

    def __init__(self, state: Investigation, results: Results, **params: Any):
        super().__init__(**params)
        self.state = state
        self.results = results
