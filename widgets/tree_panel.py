"""The guided investigation: the decision tree, a verdict per node, the recommended path, the evidence.

Left, the tree as the diagnosis walked it: one row per node with its verdict badge,
the rows on the recommended path (the top root cause's path) highlighted. Right,
the open node: its question, verdict, summary, plots (from the evidence's plot
specs), how to read it, the hypotheses it raised (accept / reject) and a note.
Above, the ranked root causes with their confidence and the plan: each cause's mitigations with
their simulated effect, and a button that downloads the plan as JSON for a team's automation. Everything a user does here
is written to the shared :class:`~workbench_widgets.state.Investigation`.

Nothing is computed here: the diagnosis is drawn; "Run check" calls the node's own
check with the windows the user selected (``workbench.rca.Context``).
"""

from __future__ import annotations

import io
import json
from html import escape
from typing import TYPE_CHECKING, Any, Literal

import panel as pn
import param

from workbench_widgets._base import View, guarded
from workbench_widgets._plots import render_specs
from workbench_widgets._style import CSS, ONPATH_BUTTON_CSS, TREE_BUTTON_CSS, badge, card, kv

if TYPE_CHECKING:
    from workbench import Diagnosis, Evidence

__all__ = ["TreePanel", "hypothesis_key"]

CHOICE_LABELS = {"undecided": None, "accept": "accepted", "reject": "rejected"}
LABEL_OF = {v: k for k, v in CHOICE_LABELS.items()}


def hypothesis_key(kind: str, target: str) -> str:
    """The key of a hypothesis in ``Investigation.choices``: ``'kind:target'``."""
    return f"{kind}:{target}"


def _value(v: float | None) -> str:
    """A metric's value for the headline, or a dash where the window had none to measure."""
    return "–" if v is None else f"{v:.3f}"


class TreePanel(View):
    """The decision tree with verdicts, the recommended path, and the open node's evidence."""

    max_causes = param.Integer(default=3, bounds=(1, 10), doc="How many ranked root causes to list above the tree.")
    show_skipped = param.Boolean(default=True, doc="List nodes that were skipped (with the reason) in the tree.")

    def __init__(self, state, results, **params):
        super().__init__(state, results, **params)
        self.diagnosis: Diagnosis = results.diagnosis()
        self._buttons: dict[str, pn.widgets.Button] = {}
        self._choice_widgets: dict[str, list[pn.widgets.RadioButtonGroup]] = {}
        self._choice_cache: dict[tuple[str, str], pn.widgets.RadioButtonGroup] = {}
        self._note_widgets: dict[str, pn.widgets.TextAreaInput] = {}
        self._plots: dict[tuple[str, int], list[pn.pane.HoloViews]] = {}
        self._reruns: dict[tuple, Evidence] = {}
        self._rerun_shown: set[str] = set()
        self._details: dict[str, pn.Column] = {}
        self.detail = pn.Column(sizing_mode="stretch_width", min_width=480, margin=(0, 0, 0, 12))
        self.state.param.watch(self._on_node, "node")
        self.state.param.watch(self._on_choices, "choices")
        self.state.param.watch(self._on_notes, "notes")

    # ------------------------------------------------------------------ layout
    def _build(self) -> pn.viewable.Viewable:
        d = self.diagnosis
        rows: list[pn.viewable.Viewable] = [
            pn.pane.HTML("<div class='wb-h'>Decision tree</div><div class='wb-muted'>click a node to open its evidence; "
                         "<span style='color:#2563eb'>&#9654;</span> marks the recommended path</div>",
                         stylesheets=[CSS], margin=(0, 4, 6, 4))]
        on_path = set(d.recommended_path)
        for path, ev in d.steps:
            name = path[-1]
            if ev.verdict == "skip" and not self.show_skipped:
                continue
            onp = name in on_path
            btn = pn.widgets.Button(label=("▶ " if onp else "") + name, button_type="light", height=30,
                                    sizing_mode="stretch_width", stylesheets=[ONPATH_BUTTON_CSS if onp else TREE_BUTTON_CSS],
                                    css_classes=["wb-node", f"wb-node-{name}"] + (["wb-onpath"] if onp else []),
                                    description=escape(ev.summary[:300]), margin=(1, 2))

            def click(_e: Any, n: str = name) -> None:  # a def: mypy cannot type a lambda with a default
                self._open(n)

            btn.on_click(click)
            self._buttons[name] = btn
            rows.append(pn.Row(pn.Spacer(width=18 * (len(path) - 1)), pn.pane.HTML(badge(ev.verdict), stylesheets=[CSS],
                                                                                  width=52, margin=(8, 2, 0, 2)),
                               btn, sizing_mode="stretch_width", margin=0))
        tree = pn.Column(*rows, width=390, margin=(0, 4))
        self._render_node(self.state.node or d.tree.root)
        return pn.Column(self.error, self.status, self._causes(), pn.Row(tree, self.detail, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")

    def _causes(self) -> pn.viewable.Viewable:
        d = self.diagnosis
        a = d.anomaly
        if a.get("detected"):
            head = (f"<b>{escape(str(a['metric']))}</b> rose from {a['baseline']:.3f} to {a['current']:.3f} "
                    f"from <b>{escape(str(a['onset']))}</b>")
        elif d.untested:  # too sparse at every grain: nothing was tested, so nothing is called healthy
            said, _, why = d.untested.partition(": ")
            head = f"<b>{escape(said)}</b>: {escape(why)}"
        else:
            head = (f"No regression: {escape(str(a.get('metric') or 'quality'))} stayed within its normal variation "
                    f"({_value(a.get('baseline'))} → {_value(a.get('current'))}).")
        items: list[Any] = [pn.pane.HTML(f"<div class='wb-headline'>{head}<br><span class='wb-muted'>baseline "
                                         f"{escape(str(d.baseline))} · incident {escape(str(d.incident))}</span></div>",
                                         stylesheets=[CSS], sizing_mode="stretch_width")]
        if not d.root_causes:
            kind = "none" if not a.get("detected") and not d.untested else "minor"  # green only when tested
            text = ("a regression was detected, but no check found its cause" if a.get("detected") else
                    "nothing was tested: the log is too sparse" if d.untested else "nothing regressed")
            items.append(pn.pane.HTML(card("No root cause", escape(text), kind=kind), stylesheets=[CSS], sizing_mode="stretch_width"))
        for i, c in enumerate(d.root_causes[: self.max_causes]):
            extra = "".join(f" <span class='wb-muted'>{k}={escape(v)}</span>" for k, v in (("layer", c.layer), ("slice", c.slice)) if v)
            bar = f"<span class='wb-conf' style='width:{max(int(80 * c.confidence), 2)}px'></span>"
            body = (f"{bar}confidence {c.confidence:.2f} — {escape(c.summary)}<br>"
                    f"<span class='wb-muted'>path: {escape(' → '.join(c.path))}</span>")
            key = hypothesis_key(c.kind, c.target)
            html = pn.pane.HTML(card(f"{i + 1}. {escape(c.kind)}: {escape(c.target)}{extra}", body, minor=bool(i)),
                                stylesheets=[CSS], sizing_mode="stretch_width", css_classes=["wb-cause"])
            go = pn.widgets.Button(label="open evidence", button_type="primary", button_style="outline", width=120, height=30,
                                   css_classes=["wb-open-cause"])

            def go_click(_e: Any, p: tuple[str, ...] = c.path) -> None:  # a def: mypy cannot type a lambda with a default
                self._open(p[-1])

            go.on_click(go_click)
            items.append(pn.Row(html, pn.Column(self._choice_widget(key), go, width=262, margin=(4, 0, 0, 6)),
                                sizing_mode="stretch_width"))
        if d.root_causes:
            steps = "".join(f"<li>{escape(s)}</li>" for s in d.next_steps())
            items.append(pn.pane.HTML(f"<div class='wb-muted'><b>Next steps</b><ul style='margin:2px 0'>{steps}</ul></div>",
                                      stylesheets=[CSS], sizing_mode="stretch_width"))
        if any(c.mitigations for c in d.root_causes):
            self.plan_pane = pn.pane.HTML(self._plan_html(), stylesheets=[CSS], sizing_mode="stretch_width", css_classes=["wb-plan"])
            self.export = pn.widgets.FileDownload(callback=self._plan_file, filename=self.plan_filename, label="Export plan (JSON)",
                                                  button_type="primary", button_style="outline", width=200,
                                                  css_classes=["wb-export-plan"])
            items += [self.plan_pane, self.export]
        return pn.Column(*items, sizing_mode="stretch_width", margin=(0, 4, 8, 4))

    # ------------------------------------------------------------------ the plan
    @property
    def plan_filename(self) -> str:
        slug = "".join(ch if ch.isalnum() else "-" for ch in self.results.case.root.name).strip("-") or "case"
        return f"{slug}-plan.json"

    def plan(self) -> dict[str, Any]:
        """The plan a team's automation reads: each cause's mitigations (the JSON contract's), best first."""
        d = self.diagnosis
        return {"case": d.case.name, "anomaly": d.anomaly,
                "plan": [{"kind": c.kind, "target": c.target, "confidence": round(c.confidence, 2),
                          "mitigations": [m.to_dict() for m in c.mitigations]} for c in d.root_causes]}

    def _plan_file(self) -> io.StringIO:
        return io.StringIO(json.dumps(self.plan(), indent=2, default=str))

    def _plan_html(self) -> str:
        rows = []
        for i, c in enumerate(self.diagnosis.root_causes[: self.max_causes], 1):
            for j, m in enumerate(c.mitigations, 1):
                p = m.predicted
                effect = (f"{escape(p.metric)} {p.incident:.3f} → <b>{p.value:.3f}</b>, <b>{p.recovery:.0%}</b> of the regression "
                          "<span class='wb-muted'>(predicted)</span>" if p is not None and p.recovery == p.recovery else
                          f"<span class='wb-muted'>not simulated{': ' + escape(m.reason) if m.reason else ''}</span>")
                rows.append(f"<li><b>{i}.{j} {escape(m.action)}</b> {escape(m.target)} — {effect}<br>"
                            f"<span style='font-size:12px'>{escape(m.how)}</span></li>")
        return ("<div class='wb-summary'><b>Plan</b> <span class='wb-muted'>each action simulated on the incident window; "
                f"every figure is a prediction</span><ul style='margin:2px 0'>{''.join(rows)}</ul></div>")

    # ------------------------------------------------------------------ widgets bound to the state
    def _choice_widget(self, key: str, slot: str = "causes") -> pn.widgets.RadioButtonGroup:
        """The accept/reject switch for ``key``; one per place it appears (``slot``), built once."""
        cached = self._choice_cache.get((slot, key))
        if cached is not None:
            return cached
        w = pn.widgets.RadioButtonGroup(options=list(CHOICE_LABELS), value=LABEL_OF[self.state.choices.get(key)],
                                        button_type="default", button_style="outline", width=250, height=30,
                                        css_classes=["wb-choice"])
        w.param.watch(lambda e, k=key: self._set_choice(k, e.new), "value")
        self._choice_widgets.setdefault(key, []).append(w)
        self._choice_cache[(slot, key)] = w
        return w

    def _note_widget(self, key: str) -> pn.widgets.TextAreaInput:
        if key not in self._note_widgets:
            w = pn.widgets.TextAreaInput(value=self.state.notes.get(key, ""), placeholder="Your notes on this step…",
                                         sizing_mode="stretch_width", height=70, css_classes=["wb-note"], max_length=20_000)
            w.param.watch(lambda e, k=key: self._set_note(k, e.new), "value")
            self._note_widgets[key] = w
        return self._note_widgets[key]

    @guarded("recording your choice")
    def _set_choice(self, key: str, label: str) -> None:
        self.state.choose(key, CHOICE_LABELS[label])

    @guarded("saving your note")
    def _set_note(self, key: str, text: str) -> None:
        self.state.note(key, text)

    @guarded("showing your choice")
    def _on_choices(self, event: param.parameterized.Event) -> None:
        for key, widgets in self._choice_widgets.items():
            for w in widgets:
                label = LABEL_OF[event.new.get(key)]
                if w.value != label:
                    w.value = label

    @guarded("showing your note")
    def _on_notes(self, event: param.parameterized.Event) -> None:
        for key, w in self._note_widgets.items():
            text = event.new.get(key, "")
            if w.value != text:
                w.value = text

    # ------------------------------------------------------------------ the open node
    @guarded("opening the node")
    def _open(self, name: str) -> None:
        self.state.open(name)

    def _on_node(self, event: param.parameterized.Event) -> None:
        self._render_node(event.new)

    @guarded("rendering the node")
    def _render_node(self, name: str | None) -> None:
        self.timed(lambda: self._draw_node(name))

    def _draw_node(self, name: str | None) -> None:
        """Show ``name``'s evidence: every node's detail is built once, opening one only toggles visibility."""
        d = self.diagnosis
        for n, btn in self._buttons.items():
            want: Literal["primary", "light"] = "primary" if n == name else "light"
            if btn.button_type != want:
                btn.button_type = want
        if not self._details:
            self._details = {n: self._node_detail(n) for n in d.tree.nodes if d.evidence(n) is not None}
            self._empty = pn.pane.HTML("<div class='wb-muted'>Open a node on the left.</div>", stylesheets=[CSS])
            self.detail.objects = [self._empty, *self._details.values()]
        windows = self.state.windows
        if name in self._details and windows and (name, *windows) in self._reruns and name not in self._rerun_shown:
            self._details[name] = self._node_detail(name)  # a re-run replaces that node's detail once
            self._rerun_shown.add(name)
            self.detail.objects = [self._empty, *self._details.values()]
        for n, col in self._details.items():
            visible = n == name
            if col.visible != visible:
                col.visible = visible
        self._empty.visible = name not in self._details

    def _node_detail(self, name: str) -> pn.Column:
        d = self.diagnosis
        node = d.tree.nodes[name]
        windows = self.state.windows
        rerun = self._reruns.get((name, *windows)) if windows else None
        ev = rerun or d.evidence(name)
        assert ev is not None  # details are built only for nodes with evidence
        facts = {"verdict score": f"{ev.score:.2f}", "ran in": f"{ev.seconds:.2f} s"}
        if rerun is not None:
            facts["windows"] = "yours (re-run)"
        head = (f"<div class='wb-h'>{badge(ev.verdict)} {escape(name)}</div>"
                f"<div class='wb-summary'><i>{escape(node.question)}</i></div>"
                f"<div class='wb-summary'><b>{escape(ev.summary)}</b></div>{kv(facts)}")
        parts: list[Any] = [pn.pane.HTML(head, stylesheets=[CSS], sizing_mode="stretch_width", css_classes=["wb-node-head"])]
        parts += self._plot_panes(name, ev, rerun is not None)
        more = []
        if ev.detail:
            more.append(f"<details><summary>details</summary><pre class='wb-pre'>{escape(ev.detail)}</pre></details>")
        if node.read:
            more.append(f"<div class='wb-muted'><b>How to read it:</b> {escape(node.read)}</div>")
        if more:
            parts.append(pn.pane.HTML("".join(more), stylesheets=[CSS], sizing_mode="stretch_width"))
        if ev.candidates:
            parts.append(pn.pane.HTML("<div class='wb-h' style='font-size:13px'>Hypotheses this check raised</div>",
                                      stylesheets=[CSS], margin=(8, 5, 0, 5)))
            for c in ev.candidates:
                key = hypothesis_key(c.kind, c.target)
                text = f"<b>{escape(c.kind)}: {escape(c.target)}</b> <span class='wb-muted'>strength {c.strength:.2f}</span><br>" \
                       f"<span style='font-size:12px'>{escape(c.summary)}</span>"
                parts.append(pn.Row(pn.pane.HTML(text, stylesheets=[CSS], sizing_mode="stretch_width"), self._choice_widget(key, name),
                                    sizing_mode="stretch_width"))
        run = pn.widgets.Button(label="Run check with the selected windows", button_type="default", width=270,
                                css_classes=["wb-run"])

        def run_click(_e: Any, n: str = name) -> None:  # a def: mypy cannot type a lambda with a default
            self._run_guarded(n)

        run.on_click(run_click)
        parts += [pn.pane.HTML("<div class='wb-h' style='font-size:13px'>Notes</div>", stylesheets=[CSS], margin=(8, 5, 0, 5)),
                  self._note_widget(name), run]
        return pn.Column(*parts, sizing_mode="stretch_width", visible=False, css_classes=["wb-detail", f"wb-detail-{name}"])

    def _plot_panes(self, name: str, ev: Evidence, rerun: bool) -> list[pn.pane.HoloViews]:
        key = (name, id(ev))
        if key not in self._plots:  # HoloViews objects are built once per evidence, then reused
            self._plots[key] = [pn.pane.HoloViews(obj, sizing_mode="stretch_width", margin=(4, 5), linked_axes=False)
                                for obj in render_specs(ev.data)]
        return self._plots[key]

    # ------------------------------------------------------------------ run a check
    @guarded("running the check")
    def _run_guarded(self, name: str) -> None:
        self.run_check(name)

    def run_check(self, name: str) -> Evidence:
        """Run ``name``'s check again with the user's windows (cached) and show the new evidence."""
        from workbench import Context

        windows = self.state.windows
        if windows is None:
            raise ValueError("no windows selected.\nHint: select a range on the quality timeline first.")
        key = (name, *windows)
        self._rerun_shown.discard(name)
        if key not in self._reruns:
            self.say(f"running {name} on baseline {windows[0]}, incident {windows[1]}…")
            try:
                # one context per window pair: a check that reads a sibling's verdict gets it computed on these
                # windows (Context.evidence_of), never the diagnosis' verdict for other windows
                ctx = self.results.cached(("context", *windows),
                                          lambda: Context(self.results.case, None, *windows, tree=self.diagnosis.tree))
                self._reruns[key] = ctx.run(self.diagnosis.tree.nodes[name])
            finally:
                self.say(None)
        self._render_node(name)
        ev = self._reruns[key]
        if ev.verdict == "error":  # the node shows ERROR; the pane says what raised and where the traceback is
            raise RuntimeError(f"{name} raised {ev.reason}\n(traceback in {ev.data.get('log')})")
        return ev

    def code(self) -> str:
        lines = ["from workbench import diagnose, open_case", "",
                 f"case = open_case({str(self.results.case.root)!r})", "diagnosis = diagnose(case)", "print(diagnosis)"]
        if self.state.node:
            lines.append(f"diagnosis.evidence({self.state.node!r})")
        return "\n".join(lines)
