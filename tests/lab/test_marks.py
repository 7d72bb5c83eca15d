"""The mark API inside a user's script, and the torch first-forward hook (one dedicated torch run)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from workbench.lab.marks import MARKS_ENV, SHRINK_PREFIX, mark, shrink
from workbench.lab.runner import RunFailure, Variant, run_once
from workbench.lab.settings import LabSettings


def test_mark_is_a_noop_outside_the_lab(monkeypatch, tmp_path):
    monkeypatch.delenv(MARKS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    mark("data_ready")
    assert list(tmp_path.iterdir()) == []


def test_mark_appends_name_time_and_pid(monkeypatch, tmp_path):
    path = tmp_path / "marks"
    monkeypatch.setenv(MARKS_ENV, str(path))
    mark("config_ready")
    mark("data_ready")
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    assert [name for name, _, _ in lines] == ["config_ready", "data_ready"]
    assert int(lines[0][1]) <= int(lines[1][1])


def test_mark_refuses_a_name_that_breaks_the_file_format():
    with pytest.raises(ValueError, match=r"Hint: name the phase that just ended"):
        mark("data\tready")


def test_shrink_returns_the_lab_value_typed_like_the_default(monkeypatch):
    monkeypatch.setenv(SHRINK_PREFIX + "ITERATIONS", "3")
    monkeypatch.setenv(SHRINK_PREFIX + "LR", "0.5")
    monkeypatch.setenv(SHRINK_PREFIX + "TINY", "yes")
    assert shrink("iterations", 1000) == 3
    assert shrink("lr", 0.1) == 0.5
    assert shrink("tiny", False) is True
    assert shrink("hidden", 256) == 256
    monkeypatch.setenv(SHRINK_PREFIX + "HIDDEN", "wide")
    with pytest.raises(ValueError, match=r"Hint: pass --shrink hidden=<int>"):
        shrink("hidden", 256)


def test_importing_mark_loads_nothing_heavy():
    code = ("import sys\nfrom workbench.lab import mark, shrink\n"
            "print(sorted(m for m in ('polars', 'torch', 'scipy', 'numpy', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_stop_at_first_batch_ends_the_run_there(tmp_path):
    after = tmp_path / "after"
    code = f"from workbench.lab import mark\nmark('first_batch')\nopen({str(after)!r}, 'w').write('x')\n"
    phases = run_once(Variant("stop", (sys.executable, "-c", code)), LabSettings(stop_at_first_batch=True))
    assert not isinstance(phases, RunFailure)
    assert not after.exists()


def test_first_torch_forward_is_detected_without_changing_the_script(tmp_path):
    """The script has no mark at all: the lab records startup and the first forward of a torch module."""
    report = tmp_path / "hooks.txt"
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import time
        import torch

        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        time.sleep(0.05)  # between the import and the first batch
        model(torch.zeros(2, 4))
        model(torch.zeros(2, 4))
        from torch.nn.modules import module
        open({str(report)!r}, "w").write(str(len(module._global_forward_pre_hooks)))
    """))
    phases = run_once(Variant("torch", (sys.executable, str(script)), cwd=str(tmp_path)))
    assert not isinstance(phases, RunFailure), phases
    assert list(phases) == ["startup", "first_batch", "ttfb"]
    assert phases["first_batch"] > 0.05  # import torch, build the model, sleep
    assert phases["ttfb"] == pytest.approx(phases["startup"] + phases["first_batch"])
    assert report.read_text() == "0"  # the global hook removed itself after the first call
