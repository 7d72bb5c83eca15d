"""The data-dependency audit as one self-contained HTML page (no JavaScript; opens offline).

It draws the same :class:`~workbench.model.audit.DependencyAudit` as ``workbench audit`` and
the audit widget. Every string that comes from data is escaped.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.report.html import CSS

if TYPE_CHECKING:
    from workbench.model.audit import DependencyAudit

__all__ = ["render_audit", "write_audit"]


def _bar(share: float) -> str:
    return f"<span style='display:inline-block;height:8px;width:{max(int(160 * share), 1)}px;background:#2563eb'></span>"


def _num(v: float | None, spec: str) -> str:
    return "" if v is None else format(v, spec)


def render_audit(audit: DependencyAudit) -> str:
    """The audit as HTML: summary, removal candidates, bundles, upstream dependencies, every feature's share."""
    a = audit
    cand = a.table.filter(a.table["candidate"])
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(a.case)} — data-dependency audit</title>",
           f"<style>{CSS}</style></head><body>", f"<h1>{escape(a.case)}: data-dependency audit</h1>",
           f"<p class='muted'>{escape(a.method)}{' ' + escape(a.snapshot) if a.snapshot else ''} on {a.rows:,} rows of "
           f"{escape(str(a.window))}; {a.labelled_rows:,} labelled rows for permutation importance.</p>",
           f"<p class='headline'>{a.table.height} features; <b>{cand.height}</b> removal candidate(s); "
           f"<b>{len(a.bundles)}</b> bundle(s) of near-copies.</p>"]
    out.append(f"<h2>Removal candidates</h2><p class='muted'>Rule: {escape(a.rule)}.</p>")
    out.append("<ul>" + "".join(f"<li><b>{escape(r['feature'])}</b>: {escape(r['reason'])}</li>"
                                for r in cand.iter_rows(named=True)) + "</ul>" if cand.height else "<p>None.</p>")
    out.append("<h2>Bundles</h2>")
    out.append("<ul>" + "".join(f"<li>{escape(', '.join(b.features))}: keep <b>{escape(b.signal)}</b> — {escape(b.why)} "
                                f"<span class='muted'>(min |ρ| {b.min_rho:.2f})</span></li>" for b in a.bundles) + "</ul>"
               if a.bundles else "<p>None.</p>")
    out.append("<h2>Upstream dependencies</h2>")
    if a.lineage.height:
        rows = "".join(f"<tr><td>{escape(r['node'])}</td><td>{escape(r['kind'])}</td><td>{_bar(r['share'])} {r['share']:.1%}</td>"
                       f"<td>{escape(', '.join(r['features']))}</td><td>{escape(', '.join(r['candidates']))}</td></tr>"
                       for r in a.lineage.iter_rows(named=True))
        out.append("<table class='data'><tr><th>node</th><th>kind</th><th>share of the attribution</th><th>features</th>"
                   f"<th>removable</th></tr>{rows}</table>")
    else:
        out.append("<p>No lineage.json: the upstream tables are unknown.</p>")
    out.append("<h2>Every feature</h2>")
    rows = "".join(f"<tr><td>{escape(r['feature'])}</td><td>{_bar(r['share'])} {r['share']:.2%}</td>"
                   f"<td>{_num(r['permutation_rise'], '+.4f')}</td><td>{_num(r['permutation_se'], '.4f')}</td>"
                   f"<td>{r['coverage']:.0%}</td><td>{escape(r['reason'])}</td></tr>" for r in a.table.iter_rows(named=True))
    out.append("<table class='data'><tr><th>feature</th><th>attribution share</th><th>permutation ΔNE</th><th>± SE</th>"
               f"<th>coverage</th><th>removal</th></tr>{rows}</table>")
    out += [f"<p class='muted'>note: {escape(n)}</p>" for n in a.notes]
    out.append("</body></html>")
    return "\n".join(out)


def write_audit(audit: DependencyAudit, path: Path) -> Path:
    """Write the audit page to ``path`` (parents created) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_audit(audit), encoding="utf-8")
    return path
