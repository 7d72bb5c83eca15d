"""Phase marks inside a measured training workflow, and the torch first-forward hook.

This module runs inside the *user's* process, so it imports only ``contextlib``, ``os``,
``sys`` and ``time``: ``from workbench.lab import mark`` costs microseconds and must not
move the measurement it takes part in.

Protocol with :mod:`workbench.lab.runner`
-----------------------------------------
The runner starts every run as a fresh process with

* ``WORKBENCH_LAB_MARKS``: a file; each mark appends one line
  ``name<TAB>perf_counter_ns<TAB>pid``. One ``os.write`` per line on an
  ``O_APPEND`` descriptor, so lines of concurrent processes never interleave.
* a generated ``sitecustomize.py`` on ``PYTHONPATH`` that calls
  :func:`install_child_hooks` at interpreter start: it writes the ``startup``
  mark and hooks the first forward call of any ``torch.nn.Module``.

Timestamps are ``time.perf_counter_ns()``: ``CLOCK_MONOTONIC`` on Linux,
``mach_absolute_time`` on macOS and ``QueryPerformanceCounter`` on Windows,
all system-wide, so the parent's launch time and the child's marks share one
clock. The runner rejects a run whose marks fall outside its launch and exit.

Without ``WORKBENCH_LAB_MARKS`` every function here is a no-op and the script
runs as usual.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

__all__ = ["FIRST_BATCH", "STARTUP", "install_child_hooks", "mark", "shrink"]

MARKS_ENV = "WORKBENCH_LAB_MARKS"
STOP_ENV = "WORKBENCH_LAB_STOP_AT_FIRST_BATCH"
TORCH_HOOK_ENV = "WORKBENCH_LAB_TORCH_HOOK"
SHRINK_PREFIX = "WORKBENCH_LAB_SHRINK_"

STARTUP = "startup"
"""Mark written by the lab when the interpreter is ready (before the script runs)."""
FIRST_BATCH = "first_batch"
"""Mark that ends the measurement: the first batch enters the model."""


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise ValueError(
            f"mark({name!r}): a phase name is letters, digits, '_', '-' or '.'.\n"
            "Hint: name the phase that just ended, e.g. mark('data_ready')."
        )


def _write(name: str, path: str) -> None:
    line = f"{name}\t{time.perf_counter_ns()}\t{os.getpid()}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _stop_if_asked() -> None:
    if os.environ.get(STOP_ENV) == "1":
        # The lab measures up to the first batch only; skipping the rest of the
        # training keeps a run short. os._exit skips atexit work on purpose.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed or broken stream must not fail the run
                stream.flush()
        os._exit(0)


def mark(name: str) -> None:
    """Close the current phase of a training workflow and name it ``name``.

    A phase runs from the previous mark (or from the launch of the command) to
    this call, so ``mark("data_ready")`` names the span spent loading data and
    computing features. Call :func:`mark` with :data:`FIRST_BATCH` when the
    first batch enters a model that is not a ``torch.nn.Module``; torch models
    are detected without a call. Only the first mark of each name counts.

    Outside the regression lab this is a no-op costing one dictionary lookup.

    Parameters
    ----------
    name
        The phase that just ended: letters, digits, ``_``, ``-`` or ``.``.

    Examples
    --------
    >>> from workbench.lab import mark
    >>> mark("config_ready")  # no-op: not running under the lab
    """
    _check_name(name)
    path = os.environ.get(MARKS_ENV)
    if not path:
        return
    _write(name, path)
    if name == FIRST_BATCH:
        _stop_if_asked()


def shrink(name: str, default: int | float | str | bool) -> int | float | str | bool:
    """A workflow knob the lab may shrink, e.g. the number of iterations or a layer width.

    Returns the value given to the lab with ``--shrink name=value`` (environment
    variable ``WORKBENCH_LAB_SHRINK_<NAME>``), converted to the type of
    ``default``; otherwise ``default``. A test then runs in minutes on a CPU while
    the script keeps its real defaults.

    Examples
    --------
    >>> from workbench.lab import shrink
    >>> shrink("iterations", 1000)  # not running under the lab
    1000
    """
    raw = os.environ.get(SHRINK_PREFIX + name.upper())
    if raw is None:
        return default
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    try:
        return type(default)(raw)
    except ValueError:
        raise ValueError(
            f"shrink({name!r}): {SHRINK_PREFIX + name.upper()}={raw!r} is not a {type(default).__name__}.\n"
            f"Hint: pass --shrink {name}=<{type(default).__name__}> to the lab."
        ) from None


class _TorchWatcher:
    """A ``sys.meta_path`` finder that waits for ``import torch`` without importing it.

    When torch is imported, the real loader runs first, then the hook is
    registered; the watcher removes itself so later imports cost nothing.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torch":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                real_exec = spec.loader.exec_module

                def exec_module(module, _real=real_exec):
                    _real(module)
                    _hook_torch()

                spec.loader.exec_module = exec_module
                return spec
        return None


def _hook_torch() -> None:
    """Mark :data:`FIRST_BATCH` at the first forward call of any ``torch.nn.Module``."""
    from torch.nn.modules.module import register_module_forward_pre_hook

    handle = None

    def first_forward(module, args):
        if handle is not None:
            handle.remove()  # a global hook slows every forward: keep it for one call only
        path = os.environ.get(MARKS_ENV)
        if path:
            _write(FIRST_BATCH, path)
            _stop_if_asked()

    handle = register_module_forward_pre_hook(first_forward)


def install_child_hooks() -> None:
    """Called by the lab's ``sitecustomize`` at interpreter start in every measured process."""
    path = os.environ.get(MARKS_ENV)
    if not path:
        return
    _write(STARTUP, path)
    if os.environ.get(TORCH_HOOK_ENV, "1") == "0":
        return
    if "torch" in sys.modules:
        _hook_torch()
    elif not any(isinstance(f, _TorchWatcher) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchWatcher())
