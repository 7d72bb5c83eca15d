"""The lab view: per-phase distributions of A and B, the verdict, and the bisect trail.

It draws :class:`workbench.lab.Comparison` and :class:`workbench.lab.BisectResult`
objects and computes nothing itself; :meth:`LabView.code` gives the
``workbench`` call that reproduces what it shows.

Examples
--------
>>> from workbench_widgets.lab_view import lab_view
>>> view = lab_view(result)  # doctest: +SKIP
>>> view.servable()  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # registers the Bokeh backend, so .opts() works before hv.extension()
import panel as pn
import param

from workbench.lab.bisection import BisectResult
from workbench.lab.comparison import Comparison
from workbench.lab.runner import TTFB
from workbench.lab.settings import LabSettings
from workbench_widgets._base import Widget

__all__ = ["LabView", "lab_view"]

_COLORS = {"A": "#4c72b0", "B": "#dd8452"}


class LabView(Widget):
    """A comparison or a bisect, drawn: verdict, trail, and A/B distributions per phase."""

    result = param.ClassSelector(class_=(Comparison, BisectResult), allow_None=False,
                                 doc="The lab result to show (a Comparison or a BisectResult).")
    step = param.Integer(default=None, allow_None=True, bounds=(0, None),
                         doc="For a bisect: the probe whose distributions are shown; None is the "
                             "culprit's probe, or the last one.")
    phases = param.List(default=[], item_type=str,
                        doc="Phases to plot, in order; empty plots every phase and TTFB.")
    columns = param.Integer(default=4, bounds=(1, 8), doc="Plots per row.")

    def __init__(self, result: Comparison | BisectResult, **params: Any) -> None:
        super().__init__(result=result, **params)

    # --- what is shown ----------------------------------------------------------------------------
    @property
    def comparison(self) -> Comparison:
        """The comparison whose distributions are drawn."""
        if isinstance(self.result, Comparison):
            return self.result
        return self.result.steps[self._probe()].comparison

    def _probe(self) -> int:
        steps = self.result.steps
        if self.step is not None:
            if self.step >= len(steps):
                raise ValueError(f"step={self.step}: the bisect made {len(steps)} comparisons (0..{len(steps) - 1}).")
            return self.step
        culprit = self.result.culprit_step
        return steps.index(culprit) if culprit is not None else len(steps) - 1

    def verdict(self) -> str:
        """Markdown: the headline(s) and the TTFB numbers behind them."""
        comparison = self.comparison
        names = {k: v.name for k, v in comparison.variants.items()}
        lines = []
        if isinstance(self.result, BisectResult):
            lines += [f"**{self.result.headline()}**", ""]
        lines += [f"**{comparison.headline()}**", "",
                  f"A = `{names.get('A', 'A')}`, B = `{names.get('B', 'B')}`", "",
                  "| stage | A (s) | B (s) | change | threshold | Welch p | Mann-Whitney p |",
                  "|---|---|---|---|---|---|---|"]
        for label, pc in (("screen", comparison.screen), ("confirm", comparison.confirmation)):
            if pc is not None:
                lines.append(f"| {label} | {pc.median_a:.3f} | {pc.median_b:.3f} | {pc.relative:+.1%} | "
                             f"{pc.threshold:.1%} | {pc.welch.pvalue:.2g} | {pc.mann_whitney.pvalue:.2g} |")
        if comparison.failures:
            lines += ["", f"{len(comparison.failures)} failed run(s), not counted: "
                      + "; ".join(str(f) for f in comparison.failures[:3])]
        return "\n".join(lines)

    def distributions(self) -> hv.Layout:
        """One box-and-dots plot per phase: A and B seconds, titled with the change."""
        comparison = self.comparison
        by_phase = {p.phase: p for p in comparison.phases}
        wanted = self.phases or list(by_phase)
        unknown = [p for p in wanted if p not in by_phase]
        if unknown:
            raise ValueError(f"phases {unknown} not measured; measured: {list(by_phase)}")
        table = comparison.table
        plots = []
        for phase in wanted:
            rows = table.filter(table["phase"] == phase).sort("variant")
            data = {"variant": rows["variant"].to_list(), "seconds": rows["seconds"].to_list()}
            pc = by_phase[phase]
            mark = " *" if pc.changed else ""
            title = f"{'TTFB' if phase == TTFB else phase}: {pc.relative:+.1%}{mark}"
            box = hv.BoxWhisker(data, kdims=["variant"], vdims=["seconds"], label=phase).opts(
                title=title, box_fill_color="white", box_line_color="gray", whisker_color="gray",
                outlier_alpha=0, width=260, height=240, tools=["hover"])
            dots = hv.Scatter(data, kdims=["variant"], vdims=["seconds"]).opts(
                jitter=0.3, size=5, alpha=0.7, color=hv.dim("variant").categorize(_COLORS))
            plots.append((box * dots).relabel(phase))
        return hv.Layout(plots).cols(self.columns).opts(shared_axes=False)

    def trail(self) -> hv.Table | None:
        """The bisect trail, one row per probe in the order run (``None`` for a comparison)."""
        if not isinstance(self.result, BisectResult):
            return None
        trail = self.result.trail()
        data = {"change": trail["index"].to_list(),
                "revision": [r[:12] for r in trail["revision"]], "verdict": trail["verdict"].to_list(),
                "TTFB": [f"{r:+.1%}" for r in trail["relative"]],
                "moved phase": [p or "-" for p in trail["moved_phase"]], "subject": trail["subject"].to_list()}
        return hv.Table(data, kdims=["change", "revision"], vdims=["verdict", "TTFB", "moved phase", "subject"]).opts(
            width=1100, height=40 + 28 * trail.height)

    def code(self) -> str:
        """Python that reproduces this result with ``workbench``."""
        defaults = LabSettings().to_dict()
        changed = {k: v for k, v in self.result.settings.to_dict().items() if v != defaults[k]}
        extra = "".join(f",\n    {k}={v!r}" for k, v in changed.items())
        first = self.comparison.variants
        a, b = first.get("A"), first.get("B")
        if isinstance(self.result, BisectResult) and b is not None and b.repo:
            bad = self.result.changes[-1][0]
            return (f"from workbench.lab import bisect\n\n"
                    f"result = bisect(\n    {b.repo!r},\n    {self.result.good!r},\n    {bad!r},\n"
                    f"    {list(b.command)!r}{extra},\n)")
        if a is not None and b is not None and a.repo and b.repo:
            return (f"from workbench.lab import compare_revisions\n\n"
                    f"result = compare_revisions(\n    {a.repo!r},\n    {a.revision!r},\n    {b.revision!r},\n"
                    f"    {list(a.command)!r}{extra},\n)")
        if a is not None and b is not None:
            return (f"from workbench.lab import Variant, compare\n\n"
                    f"result = compare(\n    Variant({a.name!r}, {list(a.command)!r}, cwd={a.cwd!r}),\n"
                    f"    Variant({b.name!r}, {list(b.command)!r}, cwd={b.cwd!r}){extra},\n)")
        return "# built from a table: workbench.lab.assess(table, settings)"

    # --- layout -----------------------------------------------------------------------------------
    def _safe(self, render: Any) -> Any:
        def wrapped(*_: Any) -> Any:
            try:
                out = render()
            except Exception as exc:  # shown on the widget, not only in the kernel log
                self.show_error(exc, "drawing the lab view")
                return pn.pane.Markdown("")
            self.clear_error()
            return out
        return wrapped

    def _build(self) -> pn.viewable.Viewable:
        deps = (self.param.result, self.param.step, self.param.phases, self.param.columns)
        parts: list[Any] = [self.error,
                            pn.bind(self._safe(lambda: pn.pane.Markdown(self.verdict())), *deps)]
        if isinstance(self.result, BisectResult) and self.result.steps:
            culprit = self.result.culprit_step
            options = {f"probe {i}: {s.revision[:7]} {s.comparison.verdict}"
                       + (" (culprit)" if s is culprit else ""): i for i, s in enumerate(self.result.steps)}
            choose = pn.widgets.Select(label="distributions of", options=options, value=self._probe(), width=360)
            choose.param.watch(lambda event: setattr(self, "step", event.new), "value")
            parts += [pn.pane.HoloViews(self.trail(), backend="bokeh"), choose]
        parts += [pn.bind(self._safe(lambda: pn.pane.HoloViews(self.distributions(), backend="bokeh")), *deps),
                  pn.pane.Markdown(f"```python\n{self.code()}\n```")]
        return pn.Column(*parts, sizing_mode="stretch_width")


def lab_view(result: Comparison | BisectResult, **params: Any) -> LabView:
    """The lab view of a comparison or a bisect (see :class:`LabView` for ``params``)."""
    return LabView(result, **params)
