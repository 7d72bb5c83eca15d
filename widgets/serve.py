"""A served workbench: many users open cases in their browser, safely.

::

    panel serve widgets/serve.py --args --root /data/cases --model-root /data/trusted-cases
    python -m workbench_widgets.serve --root /data/cases --port 5006     # the same, without a checkout

Each browser session gets a path box, opens a case by its path below a configured
root (``/serve?case=cases/ctr-2026-11-20`` opens one directly) and then shows the
same investigation as ``investigate(case)`` in a notebook. What the operator decides:

* **Roots.** Only directories under ``--root`` (or ``--model-root``) open. A path is
  the root's name followed by a path inside it (``cases/ctr-2026-11-20``), or, with one
  root, a path inside it; an absolute path must lie under a root. A ``..`` component is
  refused outright, and the case directory and every file in it must *resolve* inside
  the root: a symlink out of it is refused, naming the link.
* **Model code.** ``model.py`` is code the case's author wrote. It runs only for cases
  under a ``--model-root``; elsewhere the model checks are skipped with that reason
  (:func:`workbench.model.load.forbid_model_code`) and every model-free check runs.
* **Other sources.** A ``[source.*]`` table in a case's ``workbench.toml`` would read a
  log from outside the case (a path, object storage, a database): refused unless
  ``--allow-sources``.
* **Isolation.** A session holds its own case, diagnosis and widgets; the configuration
  is immutable and nothing else is shared. A check that raises is shown as ERROR in
  that session's tree (its traceback in a log file), and never reaches another session.
  The diagnosis runs in a worker thread, so one user's long investigation does not
  freeze the others' pages.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import panel as pn
import param

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench import Case

__all__ = ["AccessError", "Root", "ServeConfig", "ServedWorkbench", "open_served_case", "resolve_case"]

ENV_ARGS = "WORKBENCH_SERVE_ARGS"  # the same options as --args, for deployments that set the environment instead


class AccessError(WorkbenchError):
    """A case path the served workbench refuses to open (outside the roots, ``..``, a symlink out, another source)."""


@dataclass(frozen=True, slots=True)
class Root:
    """A directory whose sub-directories users may open as cases; ``run_model`` lets their ``model.py`` run."""

    path: Path
    name: str
    run_model: bool = False

    def describe(self) -> str:
        return f"{self.name} ({'model.py runs' if self.run_model else 'model.py is not run'})"


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """What the operator allowed: the roots, and whether cases may read logs from elsewhere."""

    roots: tuple[Root, ...]
    allow_sources: bool = False

    @classmethod
    def from_args(cls, argv: Sequence[str]) -> ServeConfig:
        """From the arguments after ``panel serve widgets/serve.py --args``. One misspelt (``--model-roots``) is an
        error naming it: ignored, it would serve without the root the operator meant."""
        args, unknown = _options(argparse.ArgumentParser(prog="panel serve widgets/serve.py --args")).parse_known_args(
            list(argv))
        if unknown:
            raise AccessError("workbench_widgets.serve", f"unknown argument(s): {' '.join(unknown)}.",
                              "the options are --root DIR, --model-root DIR and --allow-sources.")
        return cls.from_options(args)

    @classmethod
    def from_options(cls, args: argparse.Namespace) -> ServeConfig:
        roots: list[Root] = []
        for text, run_model in [*((r, False) for r in args.root), *((r, True) for r in args.model_root)]:
            path = Path(text).expanduser().resolve()
            if not path.is_dir():
                raise AccessError(path, "is not a directory.", "pass --root (or --model-root) a directory that holds case directories.")
            name = path.name or "root"
            while name in {r.name for r in roots}:
                name += "_"
            roots.append(Root(path, name, run_model))
        if not roots:
            raise AccessError("workbench_widgets.serve", "no case roots configured.",
                              "pass --root DIR (model.py never runs) and/or --model-root DIR (it runs).")
        return cls(tuple(roots), args.allow_sources)

    @classmethod
    def from_environment(cls) -> ServeConfig:
        """From ``--args`` of ``panel serve`` (``sys.argv``), else from ``WORKBENCH_SERVE_ARGS``."""
        argv = sys.argv[1:] or os.environ.get(ENV_ARGS, "").split()
        return cls.from_args(argv)


def _options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser`` with the operator's options: the roots and whether cases may read logs from elsewhere."""
    parser.add_argument("--root", action="append", default=[], metavar="DIR", help="cases under DIR open; model.py is not run")
    parser.add_argument("--model-root", action="append", default=[], metavar="DIR",
                        help="cases under DIR open, and their model.py runs (only for cases you trust as code)")
    parser.add_argument("--allow-sources", action="store_true", help="let a case's workbench.toml read logs from elsewhere")
    return parser


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def resolve_case(config: ServeConfig, text: str) -> tuple[Path, Root]:
    """The case directory ``text`` names, and its root; :class:`AccessError` when it is not allowed."""
    text = text.strip()
    names = [r.name for r in config.roots]
    if not text:
        raise AccessError("case path", "is empty.", f"type a case path such as {names[0]}/<case directory>.")
    if ".." in PurePath(text).parts:
        raise AccessError(text, "'..' is not allowed in a case path.", f"give the path inside a root: {names}.")
    given = Path(text).expanduser()
    if given.is_absolute():
        matches = [r for r in config.roots if _inside(given, r.path)]
        if not matches:
            raise AccessError(text, "is outside the case roots.", f"open a case under {[str(r.path) for r in config.roots]}.")
        root, candidate = matches[0], given
    else:
        parts = PurePath(text).parts
        named = [r for r in config.roots if r.name == parts[0]]
        if named:
            root, candidate = named[0], named[0].path.joinpath(*parts[1:])
        elif len(config.roots) == 1:
            root, candidate = config.roots[0], config.roots[0].path / text
        else:
            raise AccessError(text, "does not start with a root name.", f"start it with one of {names}, e.g. {names[0]}/<case>.")
    real = candidate.resolve()
    if not _inside(real, root.path):
        raise AccessError(text, f"resolves outside the root '{root.name}' (a symlink leads out of it).",
                          "copy the case into the root instead of linking to it.")
    if not real.is_dir():
        raise AccessError(text, f"is not a case directory under the root '{root.name}'.", "check the spelling; a case is a directory.")
    for entry in real.rglob("*"):
        if entry.is_symlink() and not _inside(entry.resolve(), root.path):
            raise AccessError(text, f"'{entry.relative_to(real)}' is a symlink to a file outside the root '{root.name}'.",
                              "copy the file into the case instead of linking to it.")
    return real, root


def open_served_case(config: ServeConfig, text: str) -> Case:
    """Open the case ``text`` names under the operator's rules (see the module docstring)."""
    from workbench import open_case
    from workbench.case.config import read_config
    from workbench.model.load import forbid_model_code

    path, root = resolve_case(config, text)
    cfg = read_config(path)
    if cfg.sources and not config.allow_sources:
        raise AccessError(path / "workbench.toml", f"reads the {' and '.join(sorted(cfg.sources))} from another source ([source.*]).",
                          "this served workbench opens only logs inside the case directory; ask its operator for --allow-sources.")
    case = open_case(path)
    model_file = (path / cfg.model.file).resolve()
    if not root.run_model:
        forbid_model_code(case, f"model.py is not run here: the operator did not allow model code for the cases under {root.name}")
    elif not _inside(model_file, path):
        forbid_model_code(case, f"{cfg.model.file} is outside the case directory, so it is not run")
    return case


class ServedWorkbench(pn.viewable.Viewer):
    """One browser session: a case path box, the operator's rules in words, and the investigation of the opened case."""

    case_path = param.String(default="", doc="The case to open: a root name, then a path inside that root.")

    def __init__(self, config: ServeConfig, **params: Any):
        super().__init__(**params)
        self.config = config
        self.case: Case | None = None
        self.app: Any = None
        self._input = pn.widgets.TextInput(name="Case", placeholder=f"{config.roots[0].name}/<case directory>",
                                           value=self.case_path, width=520)
        self._open = pn.widgets.Button(name="Open", button_type="primary", width=90, align="end")
        self._open.on_click(lambda _event: self.open(self._typed()))
        self._input.param.watch(lambda _event: self.open(self._typed()), "enter_pressed")
        self._message = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        roots = ", ".join(html.escape(r.describe()) for r in config.roots)
        self._rules = pn.pane.HTML(f"<span class='wb-muted'>Cases open from: {roots}.</span>", margin=(0, 10))
        self._body = pn.Column(sizing_mode="stretch_width")
        self._layout = pn.Column(pn.Row(self._input, self._open), self._rules, self._message, self._body, sizing_mode="stretch_width")

    def _typed(self) -> str:
        return self._input.value_input or self._input.value or ""

    def open(self, text: str) -> None:
        """Open ``text`` in this session; a refusal or an unreadable case shows its message here, nothing else."""
        from workbench_widgets.app import investigate

        self._message.visible = False
        try:
            case = open_served_case(self.config, text)
        except WorkbenchError as exc:  # refused, or a CaseError naming the file, the column and the fix
            self._message.object = f"<b>Cannot open {html.escape(text.strip() or 'that')}</b><pre>{html.escape(str(exc))}</pre>"
            self._message.visible = True
            return
        self.case, self.case_path = case, text
        self.app = investigate(case)
        self._body.objects = [self.app]

    def __panel__(self) -> pn.Column:
        return self._layout


def session(config: ServeConfig | None = None) -> ServedWorkbench:
    """The page of one session (``panel serve`` runs this module once per session).

    Checks from plugins (``WORKBENCH_PLUGINS``, the ``workbench.checks`` entry points) join the
    tree as they do for the CLI; a plugin is code the operator installed, not a case's.
    """
    from workbench.rca.tree import load_plugins

    load_plugins()
    page = ServedWorkbench(config or ServeConfig.from_environment())
    asked = pn.state.session_args.get("case") if pn.state.curdoc is not None else None
    if asked:
        page._input.value = asked[0].decode("utf-8", "replace")
        page.open(page._input.value)
    return page


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m workbench_widgets.serve --root DIR [--model-root DIR] [--port N] [--address A]
    [--allow-websocket-origin HOST[:PORT]]``: the page at ``/serve``, as under ``panel serve widgets/serve.py``."""
    parser = _options(argparse.ArgumentParser(prog="python -m workbench_widgets.serve",
                                              description=(__doc__ or "").splitlines()[0]))
    parser.add_argument("--port", type=int, default=5006)
    parser.add_argument("--address", default="127.0.0.1", help="the interface to listen on (0.0.0.0: every one)")
    parser.add_argument("--allow-websocket-origin", action="append", default=[], metavar="HOST[:PORT]",
                        help="a host name users reach the server by, beyond the address and localhost (a proxy's)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    config = ServeConfig.from_options(args)
    from workbench_widgets.app import load_extensions

    load_extensions()
    origins = [f"{args.address}:{args.port}", f"localhost:{args.port}", *args.allow_websocket_origin]
    pn.serve({"serve": lambda: session(config)}, port=args.port, address=args.address, show=False, title="workbench",
             websocket_origin=origins)


if __name__ == "__main__":
    main()
elif __name__.startswith("bokeh_app"):  # panel serve widgets/serve.py --args ...
    session().servable(title="workbench")
