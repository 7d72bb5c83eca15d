"""A self-contained HTML report of one diagnosis: no JavaScript, no kernel, opens offline.

It draws the same :class:`~workbench.rca.diagnosis.Diagnosis` as the CLI and the
widgets. Plots are inline SVG (a few KB each), so even a 10M-row case gives a
report of well under a megabyte. Every string that comes from data is escaped.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from workbench._render import moved
from workbench.rca.plotspec import render_svg

if TYPE_CHECKING:
    from workbench.rca.diagnosis import Diagnosis

__all__ = ["render_report", "write_report"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:980px;margin:24px auto;padding:0 16px;color:#111827}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.muted{color:#6b7280} .verdict{display:inline-block;min-width:38px;text-align:center;border-radius:4px;padding:0 6px;
font-size:12px;font-weight:600;margin-right:6px} .fail{background:#fee2e2;color:#991b1b} .warn{background:#fef3c7;color:#92400e}
.pass{background:#dcfce7;color:#166534} .skip,.info{background:#f3f4f6;color:#4b5563}
.error{background:#111827;color:#fecaca}
details{margin:6px 0;border:1px solid #e5e7eb;border-radius:6px;padding:6px 10px} details.onpath{border-color:#2563eb}
summary{cursor:pointer} .cause{border-left:4px solid #dc2626;padding:6px 12px;margin:10px 0;background:#fef2f2}
.cause.minor{border-color:#9ca3af;background:#f9fafb} table.data{border-collapse:collapse;font-size:12px;margin:6px 0}
table.data td,table.data th{border:1px solid #e5e7eb;padding:2px 6px;text-align:left} caption{text-align:left;font-weight:600}
.headline{font-size:16px;padding:10px 14px;background:#eff6ff;border-radius:8px}
"""


def render_report(diagnosis: Diagnosis) -> str:
    d = diagnosis
    a = d.anomaly
    top = d.top
    if top:
        headline = (f"cause: <b>{escape(top.target)}</b> ({escape(top.kind)}, confidence {top.confidence:.2f}): "
                    f"{escape(top.summary)}")
    elif a["detected"]:
        headline = "A regression was detected, but no check found its cause."
    elif d.untested:  # too sparse at every grain: nothing was tested, so nothing is called healthy
        headline = escape(d.untested)
    else:
        headline = "No regression: prediction quality stayed within its normal variation."
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(d.case.name)} — workbench report</title>",
           f"<style>{CSS}</style></head><body>",
           f"<h1>{escape(d.case.name)}</h1>",
           f"<p class='muted'>{d.case.rows:,} predictions, {escape(str(d.case.start))} – {escape(str(d.case.end))}; "
           f"baseline {escape(str(d.baseline))}, incident {escape(str(d.incident))}</p>",
           f"<p class='headline'>{headline}</p>"]
    if a["detected"]:
        out.append(f"<p>{escape(a['metric'])} {moved(a['baseline'], a['current'])} from {a['baseline']:.4f} to "
                   f"{a['current']:.4f}; onset {escape(str(a['onset']))}.</p>")

    out.append("<h2>Root causes</h2>")
    for i, c in enumerate(d.root_causes):
        extra = "".join(f" <span class='muted'>{k}={escape(v)}</span>" for k, v in (("layer", c.layer), ("slice", c.slice)) if v)
        items = "".join(f"<li><b>{escape(chk)}</b>: {escape(det)}</li>" for chk, det in c.evidence)
        out.append(f"<div class='cause{' minor' if i else ''}'><b>{i + 1}. {escape(c.kind)}: {escape(c.target)}</b>{extra} "
                   f"— confidence {c.confidence:.2f}<br>{escape(c.summary)}<ul>{items}</ul>"
                   f"<span class='muted'>path: {escape(' → '.join(c.path))}</span></div>")
    if not d.root_causes:
        out.append("<p>None.</p>")
    if d.root_causes:
        out.append("<h2>Next steps</h2><ul>" + "".join(f"<li>{escape(s)}</li>" for s in d.next_steps()) + "</ul>")
        out.append(_plan(d))

    out.append("<h2>Investigation</h2>")
    on_path = set(d.recommended_path)
    for path, ev in d.steps:
        node = d.tree.nodes.get(path[-1])
        question = escape(node.question) if node else ""
        read = f"<p class='muted'>How to read it: {escape(node.read)}</p>" if node and node.read else ""
        cls = "onpath" if path[-1] in on_path else ""
        body = f"<p>{escape(ev.detail)}</p>" if ev.detail else ""
        out.append(f"<details class='{cls}' style='margin-left:{(len(path) - 1) * 18}px'{' open' if cls else ''}>"
                   f"<summary><span class='verdict {ev.verdict}'>{'ERROR' if ev.verdict == 'error' else ev.verdict}</span>"
                   f"<b>{escape(path[-1])}</b> — {question}"
                   f"<br><span>{escape(ev.summary)}</span></summary>{body}{render_svg(ev.data.get('plot'))}"
                   f"{''.join(render_svg(p) for p in ev.data.get('plots', []))}{read}</details>")
    if d.errors:
        out.append("<h2>Errors</h2><p>These checks raised: a bug in the workbench, not a verdict on the case"
                   + (f" (tracebacks in <code>{escape(str(d.log_path))}</code>)" if d.log_path else "") + ".</p><ul>" + "".join(
            f"<li><span class='verdict error'>ERROR</span><b>{escape(e['check'])}</b>: {escape(e['error'])}</li>"
            for e in d.errors) + "</ul>")
    if d.skipped:
        out.append("<h2>Skipped checks</h2><ul>" + "".join(
            f"<li><b>{escape(s['check'])}</b>: {escape(s['reason'])}</li>" for s in d.skipped) + "</ul>")
    if d.case.warnings:
        out.append("<h2>Case warnings</h2><ul>" + "".join(f"<li>{escape(w)}</li>" for w in d.case.warnings) + "</ul>")
    out.append(f"<p class='muted'>Generated by workbench in {d.seconds:.1f} s.</p></body></html>")
    return "\n".join(out)


def _plan(d: Diagnosis) -> str:
    """The mitigations of the top causes, best first, each with its simulated effect (labelled a prediction)."""
    rows = []
    for i, c in enumerate(d.root_causes[:3], 1):
        for j, m in enumerate(c.mitigations, 1):
            p = m.predicted
            effect = (f"{escape(p.metric)} {p.incident:.3f} → <b>{p.value:.3f}</b>, "
                      f"<b>{p.recovery:.0%}</b> of the regression <span class='muted'>(predicted, {p.rows:,} rows)</span>"
                      if p is not None and p.recovery == p.recovery else
                      f"<span class='muted'>not simulated{': ' + escape(m.reason) if m.reason else ''}</span>")
            rows.append(f"<tr><td>{i}.{j}</td><td>{escape(c.kind)}: {escape(c.target)}</td><td><b>{escape(m.action)}</b> "
                        f"{escape(m.target)}</td><td>{escape(m.how)}</td><td>{effect}</td></tr>")
    if not rows:
        return ""
    return ("<h2>Plan</h2><p class='muted'>Each action simulated on the incident window's labelled rows (re-scored with the "
            "model where there is one); every figure is a prediction.</p><table class='data'><tr><th>#</th><th>cause</th>"
            "<th>action</th><th>how</th><th>predicted effect</th></tr>" + "".join(rows) + "</table>")


def write_report(diagnosis: Diagnosis, path: Path) -> Path:
    """Write the report to ``path`` (parents created) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(diagnosis), encoding="utf-8")
    return path
