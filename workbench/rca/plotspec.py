"""Plot specs: the data a check's plot needs, as plain JSON-safe dicts, and their SVG rendering.

A check puts one spec in ``Evidence.data["plot"]``. The HTML report draws it as
inline SVG (below: no JavaScript, opens offline, tiny), and the widget library
draws the same spec with HoloViews, so a user's own check gets a plot everywhere.

Kinds::

    {"kind": "timeseries", "x": [iso, ...], "series": {name: [float | None, ...]},
     "onset": iso | None, "shade": [[iso_start, iso_end, label], ...], "estimated_from": iso | None,
     "title": str, "y": str}
    {"kind": "bars", "labels": [str, ...], "values": [float, ...], "highlight": [str, ...], "title": str, "y": str}
    {"kind": "hist", "edges": [float, ...], "series": {name: [count, ...]}, "title": str}
    {"kind": "table", "columns": [str, ...], "rows": [[value, ...], ...], "title": str}
"""

from __future__ import annotations

import math
from datetime import datetime
from html import escape
from typing import Any

__all__ = ["bars", "render_svg", "table", "timeseries"]

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2")


def timeseries(x: list[str], series: dict[str, list], *, title: str, y: str = "", onset: str | None = None,
               shade: list | None = None, estimated_from: str | None = None) -> dict[str, Any]:
    return {"kind": "timeseries", "x": x, "series": series, "title": title, "y": y, "onset": onset,
            "shade": shade or [], "estimated_from": estimated_from}


def bars(labels: list[str], values: list[float], *, title: str, y: str = "", highlight: list[str] | None = None) -> dict[str, Any]:
    return {"kind": "bars", "labels": labels, "values": values, "title": title, "y": y, "highlight": highlight or []}


def table(columns: list[str], rows: list[list], *, title: str = "") -> dict[str, Any]:
    return {"kind": "table", "columns": columns, "rows": rows, "title": title}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else "–"
    return "–" if v is None else str(v)


def _t(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def _frame(w: int, h: int, title: str, body: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
            f'font-family="system-ui,sans-serif" font-size="11"><title>{escape(title)}</title>'
            f'<text x="8" y="14" font-weight="600" font-size="12">{escape(title)}</text>{body}</svg>')


def _timeseries_svg(spec: dict, w: int = 680, h: int = 230) -> str:
    left, right, top, bottom = 52, 12, 26, 34
    xs = [_t(s) for s in spec["x"]]
    values = [v for vals in spec["series"].values() for v in map(_num, vals) if v is not None]
    if not xs or not values:
        return _frame(w, 40, spec.get("title", ""), '<text x="8" y="32">no data</text>')
    x0, x1 = min(xs), max(xs) or 1
    y0, y1 = min(values), max(values)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.08
    y0, y1 = y0 - pad, y1 + pad

    def px(t: float) -> float:
        return left + (t - x0) / max(x1 - x0, 1e-9) * (w - left - right)

    def py(v: float) -> float:
        return top + (y1 - v) / (y1 - y0) * (h - top - bottom)

    parts = []
    for start, end, label in spec.get("shade", []):
        a, b = px(_t(start)), px(_t(end))
        parts.append(f'<rect x="{a:.1f}" y="{top}" width="{max(b - a, 1):.1f}" height="{h - top - bottom}" fill="#94a3b8" '
                     f'fill-opacity="0.15"/><text x="{a + 3:.1f}" y="{top + 11}" fill="#475569">{escape(label)}</text>')
    if spec.get("estimated_from"):
        a = px(_t(spec["estimated_from"]))
        parts.append(f'<rect x="{a:.1f}" y="{top}" width="{w - right - a:.1f}" height="{h - top - bottom}" fill="#fde68a" '
                     f'fill-opacity="0.35"/><text x="{a + 3:.1f}" y="{h - bottom - 4}" fill="#92400e">labels delayed</text>')
    for k in range(5):
        v = y0 + (y1 - y0) * k / 4
        parts.append(f'<line x1="{left}" x2="{w - right}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{left - 4}" y="{py(v) + 4:.1f}" text-anchor="end" fill="#6b7280">{v:.3g}</text>')
    for k in range(6):
        t = x0 + (x1 - x0) * k / 5
        parts.append(f'<text x="{px(t):.1f}" y="{h - bottom + 14}" text-anchor="middle" fill="#6b7280">'
                     f'{datetime.utcfromtimestamp(t):%m-%d %H:%M}</text>')
    for i, (name, vals) in enumerate(spec["series"].items()):
        color = PALETTE[i % len(PALETTE)]
        runs: list[list[str]] = []
        run: list[str] = []
        for x, val in zip(xs, map(_num, vals), strict=False):
            if val is None:
                if run:
                    runs.append(run)
                run = []
            else:
                run.append(f"{px(x):.1f},{py(val):.1f}")
        if run:
            runs.append(run)
        parts += [f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{" ".join(r)}"/>' for r in runs]
        parts.append(f'<text x="{left + 8 + 130 * i}" y="{h - 6}" fill="{color}">■ {escape(str(name))}</text>')
    if spec.get("onset"):
        a = px(_t(spec["onset"]))
        parts.append(f'<line x1="{a:.1f}" x2="{a:.1f}" y1="{top}" y2="{h - bottom}" stroke="#dc2626" stroke-dasharray="4 3"/>'
                     f'<text x="{a + 3:.1f}" y="{top + 22}" fill="#dc2626">onset</text>')
    if spec.get("y"):
        parts.append(f'<text x="10" y="{top + 4}" fill="#6b7280" transform="rotate(-90 10 {top + 4})" text-anchor="end">'
                     f'{escape(spec["y"])}</text>')
    return _frame(w, h, spec.get("title", ""), "".join(parts))


def _bars_svg(spec: dict, w: int = 680) -> str:
    labels, values = spec["labels"][:20], [_num(v) or 0.0 for v in spec["values"][:20]]
    row, left = 18, 200
    h = 30 + row * len(labels)
    top = max((abs(v) for v in values), default=1.0) or 1.0
    mid = left if min(values, default=0) >= 0 else left + (w - left - 60) / 2
    scale = (w - left - 60) / (top if mid == left else 2 * top)
    highlight = set(spec.get("highlight", []))
    parts = []
    for i, (label, v) in enumerate(zip(labels, values, strict=False)):
        y = 24 + i * row
        x = mid if v >= 0 else mid + v * scale
        color = "#dc2626" if label in highlight else "#2563eb"
        parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{escape(str(label)[:32])}</text>'
                     f'<rect x="{x:.1f}" y="{y + 2}" width="{max(abs(v) * scale, 1):.1f}" height="{row - 5}" fill="{color}"/>'
                     f'<text x="{(x + abs(v) * scale if v >= 0 else x) + 4:.1f}" y="{y + 12}" fill="#374151">{_fmt(v)}</text>')
    return _frame(w, h, spec.get("title", ""), "".join(parts))


def _hist_svg(spec: dict, w: int = 680, h: int = 200) -> str:
    edges = spec["edges"]
    series = {k: [float(c) for c in v] for k, v in spec["series"].items()}
    n = len(edges) - 1
    tops = [max(v, default=0) / (sum(v) or 1) for v in series.values()]
    top = max(tops, default=1) or 1
    bw = (w - 60) / max(n, 1)
    parts = []
    for i, (name, counts) in enumerate(series.items()):
        total = sum(counts) or 1
        color = PALETTE[i % len(PALETTE)]
        for j, c in enumerate(counts):
            bh = c / total / top * (h - 60)
            parts.append(f'<rect x="{40 + j * bw + i * bw / len(series):.1f}" y="{h - 30 - bh:.1f}" width="{bw / len(series):.1f}" '
                         f'height="{bh:.1f}" fill="{color}" fill-opacity="0.7"/>')
        parts.append(f'<text x="{48 + 120 * i}" y="{h - 8}" fill="{color}">■ {escape(str(name))}</text>')
    parts.append(f'<text x="40" y="{h - 18}" fill="#6b7280">{_fmt(edges[0])}</text>'
                 f'<text x="{w - 20}" y="{h - 18}" text-anchor="end" fill="#6b7280">{_fmt(edges[-1])}</text>')
    return _frame(w, h, spec.get("title", ""), "".join(parts))


def _table_html(spec: dict) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in spec["columns"])
    body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in spec["rows"][:30])
    title = f"<caption>{escape(spec.get('title', ''))}</caption>" if spec.get("title") else ""
    return f'<table class="data">{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_svg(spec: dict | None) -> str:
    """HTML for one plot spec (SVG, or a table); every string from data is escaped."""
    if not spec:
        return ""
    kind = spec.get("kind")
    if kind == "timeseries":
        return _timeseries_svg(spec)
    if kind == "bars":
        return _bars_svg(spec)
    if kind == "hist":
        return _hist_svg(spec)
    if kind == "table":
        return _table_html(spec)
    return f"<p>(no renderer for plot kind {escape(str(kind))})</p>"
