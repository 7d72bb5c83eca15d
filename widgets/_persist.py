"""Keep the investigation's state inside the notebook, so a shared notebook reopens where it stood.

How it works, and why this way:

* ``investigate()`` displays one small output (a *record*) with a display id. Its
  mimebundle holds the state as JSON under :data:`MIME` next to a one-line text.
* Every state change re-publishes the record with ``update_display``. JupyterLab
  keeps an executed cell's kernel future open, so the update replaces that output
  in the notebook model even when it comes from a widget callback; saving the
  notebook therefore saves the latest state with the outputs.
* When the notebook is reopened (any machine, fresh kernel) and ``investigate()``
  runs again, it reads the notebook file from disk (the kernel knows its path from
  ``__session__`` / ``JPY_SESSION_NAME``), finds the last record for the same case,
  and restores it before the first render.

Panel and Bokeh outputs are not re-synced into saved outputs, and ipywidgets state
is saved only if a user turned that setting on; a plain display output is saved
by every Jupyter front end. Outside a kernel (``panel serve``, scripts) nothing is
displayed; use ``Investigator.save()`` / ``investigate(..., state=path)`` there.
"""

from __future__ import annotations

import html
import json
import os
import uuid
from pathlib import Path
from typing import Any

from workbench_widgets.state import Investigation

__all__ = ["MIME", "Record", "find_saved_state", "notebook_path"]

MIME = "application/vnd.workbench.investigation+json"


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # no IPython: not in a notebook
        return None
    shell = get_ipython()
    # Only a kernel has a front end to keep the record in (a terminal IPython does not).
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def notebook_path() -> Path | None:
    """The notebook this kernel runs, if the server told it (``__session__`` / ``JPY_SESSION_NAME``)."""
    shell = _shell()
    name = (shell.user_ns.get("__session__") if shell is not None else None) or os.environ.get("JPY_SESSION_NAME")
    if not name:
        return None
    for candidate in (Path(name), Path.cwd() / name, Path.cwd() / Path(name).name):
        if candidate.suffix == ".ipynb" and candidate.is_file():
            return candidate
    return None


def find_saved_state(case: str, notebook: Path | str | None = None) -> dict | None:
    """The last state saved in ``notebook``'s outputs for the case named ``case``, or ``None``."""
    path = Path(notebook) if notebook is not None else notebook_path()
    if path is None or not path.is_file():
        return None
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # an unreadable notebook only means there is nothing to restore
    found = None
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = output.get("data", {}).get(MIME)
            if isinstance(data, str):  # some writers store JSON mimetypes as text
                try:
                    data = json.loads(data)
                except ValueError:
                    data = None
            if isinstance(data, dict) and data.get("case") == case:
                found = data
    return found


def bundle(state: Investigation, note: str = "") -> dict[str, Any]:
    """The record's mimebundle: the state as JSON plus a one-line, human-readable text."""
    line = f"Investigation of {state.case}: {state.summary()} — saved with this notebook's outputs."
    return {
        MIME: state.to_dict(),
        "text/plain": line,
        "text/html": f"<div class='wb-record' style='font:11px system-ui,sans-serif;color:#9ca3af'>"
                     f"{html.escape(line)}{html.escape(note)}</div>",
    }


class Record:
    """The notebook output holding the state; a no-op outside a Jupyter kernel."""

    def __init__(self) -> None:
        self.display_id = f"workbench-{uuid.uuid4().hex[:12]}"
        self.live = _shell() is not None
        self._shown = False
        self.publishes = 0

    def _send(self, data: dict[str, Any]) -> None:
        if not self.live:
            return
        from IPython.display import display, update_display

        if self._shown:
            update_display(data, raw=True, display_id=self.display_id)
        else:
            display(data, raw=True, display_id=self.display_id)
            self._shown = True
        self.publishes += 1

    def progress(self, message: str) -> None:
        self._send({"text/plain": message, "text/html": "<div style='font:12px system-ui,sans-serif;color:#2563eb'>"
                                                        f"{html.escape(message)}</div>"})

    def publish(self, state: Investigation, note: str = "") -> None:
        self._send(bundle(state, note))
