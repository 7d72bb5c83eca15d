"""The data-dependency audit: what the model depends on, what it could drop, and which tables its signal flows through.

It draws one :class:`workbench.DependencyAudit` (computed once by
``workbench.audit_dependencies``; nothing is computed here): a summary, the bundles of
near-copies, the upstream tables and pipelines with the share of the model's attribution
that flows through each, and a table of every feature with its attribution share,
permutation importance and removal reason. The table is searched and paged here, so a
model with a thousand features stays quick: only one page of rows is ever sent to the
browser.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import panel as pn
import param
import polars as pl

from workbench_widgets._base import Widget, check_kwargs, guarded
from workbench_widgets._style import CSS, kv

if TYPE_CHECKING:
    from workbench import Case, DependencyAudit

__all__ = ["AuditView", "audit"]

COLUMNS = {"feature": "feature", "share": "attribution share", "permutation_rise": "permutation ΔNE",
           "permutation_se": "± SE", "coverage": "coverage", "candidate": "removal candidate", "reason": "why"}


class AuditView(Widget):
    """Attribution shares, removal candidates, bundles and upstream dependencies of one audit, searchable and paged."""

    search = param.String(default="", doc="Show only features whose name contains this text (case-insensitive).")
    candidates_only = param.Boolean(default=False, doc="Show only the removal candidates.")
    page = param.Integer(default=1, bounds=(1, None), doc="The page of the feature table shown (1 = the largest shares).")
    page_size = param.Integer(default=25, bounds=(5, 200), doc="Features per page.")

    @classmethod
    def check(cls, params: dict[str, Any]) -> None:
        """Raise a ``TypeError`` with a spelling hint for an unknown keyword."""
        check_kwargs(cls, params)

    def __init__(self, audit: DependencyAudit, **params: Any):
        super().__init__(**params)
        self.audit = audit
        self.table = pn.widgets.Tabulator(self._page_frame().to_pandas(), show_index=False, disabled=True, pagination=None,
                                          sizing_mode="stretch_width", layout="fit_data_stretch", header_align="left",
                                          css_classes=["wb-audit-table"])
        self.search_input = pn.widgets.TextInput(label="search features", value=self.search, placeholder="feature name…",
                                                 width=240)
        self.only_box = pn.widgets.Checkbox(label="removal candidates only", value=self.candidates_only, width=200)
        self.prev_btn = pn.widgets.Button(label="◀ previous", width=100, css_classes=["wb-prev"])
        self.next_btn = pn.widgets.Button(label="next ▶", width=100, css_classes=["wb-next"])
        self.page_label = pn.pane.HTML("", stylesheets=[CSS], margin=(8, 6))
        self.search_input.param.watch(lambda e: self._set(search=e.new), "value_input")
        self.only_box.param.watch(lambda e: self._set(candidates_only=e.new), "value")
        self.prev_btn.on_click(lambda _e: self._set(page=max(1, self.page - 1)))
        self.next_btn.on_click(lambda _e: self._set(page=min(self.pages, self.page + 1)))
        self.param.watch(self._refresh, ["search", "candidates_only", "page", "page_size"])
        self._refresh()

    # ------------------------------------------------------------------ the rows shown
    def filtered(self) -> pl.DataFrame:
        """The feature table after the search and the candidates filter (every page)."""
        t = self.audit.table
        if self.candidates_only:
            t = t.filter(pl.col("candidate"))
        if self.search:
            t = t.filter(pl.col("feature").str.to_lowercase().str.contains(self.search.lower(), literal=True))
        return t

    @property
    def pages(self) -> int:
        return max(1, -(-self.filtered().height // self.page_size))

    def _page_frame(self) -> pl.DataFrame:
        start = (min(self.page, self.pages) - 1) * self.page_size
        t = self.filtered().slice(start, self.page_size)
        return t.select([c for c in COLUMNS if c in t.columns]).rename({k: v for k, v in COLUMNS.items() if k in t.columns})

    @guarded("filtering the features")
    def _set(self, **values: Any) -> None:
        if ("search" in values or "candidates_only" in values) and "page" not in values:
            values["page"] = 1  # a new filter starts on its first page
        self.param.update(**values)

    @guarded("showing the page")
    def _refresh(self, *_events: Any) -> None:
        self.timed(self._draw)

    def _draw(self) -> None:
        if self.page > self.pages:
            self.page = self.pages  # re-enters through the watcher with a valid page
            return
        self.table.value = self._page_frame().to_pandas()
        n = self.filtered().height
        self.page_label.object = f"<span class='wb-muted'>page {self.page} of {self.pages} · {n:,} feature(s)</span>"
        self.prev_btn.disabled = self.page <= 1
        self.next_btn.disabled = self.page >= self.pages
        if self.search_input.value != self.search:
            self.search_input.value = self.search
        if self.only_box.value != self.candidates_only:
            self.only_box.value = self.candidates_only

    # ------------------------------------------------------------------ layout
    def _summary(self) -> str:
        a = self.audit
        facts = {"method": a.method + (f" {a.snapshot}" if a.snapshot else ""), "rows explained": f"{a.rows:,}",
                 "labelled rows": f"{a.labelled_rows:,}", "window": str(a.window)}
        bundles = "".join(f"<li>{escape(', '.join(b.features))}: keep <b>{escape(b.signal)}</b> "
                          f"<span class='wb-muted'>{escape(b.why)}</span></li>" for b in a.bundles) or "<li>none</li>"
        lineage = "".join(f"<li><b>{escape(r['node'])}</b> ({escape(r['kind'])}): {r['share']:.1%} of the attribution through "
                          f"{len(r['features'])} feature(s)" + (f", {len(r['candidates'])} removable" if r["candidates"] else "")
                          + "</li>" for r in a.lineage.head(15).iter_rows(named=True)) or "<li>no lineage.json</li>"
        notes = "".join(f"<div class='wb-muted'>note: {escape(n)}</div>" for n in a.notes)
        return (f"<div class='wb-headline'><b>{a.table.height:,}</b> features · <b>{len(a.candidates):,}</b> removal candidate(s) "
                f"· <b>{len(a.bundles)}</b> bundle(s)<br>{kv(facts)}</div>"
                f"<div class='wb-muted'>rule: {escape(a.rule)}</div>{notes}"
                f"<div class='wb-h' style='font-size:13px'>Bundles of near-copies</div><ul style='margin:2px 0'>{bundles}</ul>"
                f"<div class='wb-h' style='font-size:13px'>Upstream dependencies</div><ul style='margin:2px 0'>{lineage}</ul>")

    def _build(self) -> pn.viewable.Viewable:
        controls = pn.Row(self.search_input, self.only_box, self.prev_btn, self.page_label, self.next_btn,
                          sizing_mode="stretch_width")
        return pn.Column(self.error, pn.pane.HTML(self._summary(), stylesheets=[CSS], sizing_mode="stretch_width"),
                         controls, self.table, sizing_mode="stretch_width")

    def code(self) -> str:
        lines = ["from workbench import audit_dependencies, open_case, Window", "",
                 f"audit = audit_dependencies(open_case(CASE), Window({self.audit.window.start.isoformat()!r}, "
                 f"{self.audit.window.end.isoformat()!r})" + (f", snapshot={self.audit.snapshot!r})" if self.audit.snapshot else ")"),
                 "print(audit)"]
        if self.search or self.candidates_only:
            cond = [*(["pl.col('candidate')"] if self.candidates_only else []),
                    *([f"pl.col('feature').str.contains({self.search!r})"] if self.search else [])]
            lines.append(f"audit.table.filter({' & '.join(cond)})")
        return "\n".join(lines)


def audit(case: Case | str | Path, **params: Any) -> AuditView:
    """Audit ``case``'s model (``workbench.audit_dependencies``) and show it: ``audit("sample_data/cases/control")``."""
    from workbench import Case, audit_dependencies, open_case

    AuditView.check(params)  # a misspelled keyword fails before the audit runs
    return AuditView(audit_dependencies(case if isinstance(case, Case) else open_case(case)), **params)
