"""A small git repository to try the lab on: a training script with a known regression.

History (oldest first), each commit a real change to the workflow:

==========  =========  ====================================================
kind        phase      change
==========  =========  ====================================================
base        -          tiny click model trained on synthetic rows, marked
harmless    -          README documents the config keys
harmless    config     validate the learning rate (microseconds)
regression  data       wait for the shard manifest: a blocking 50 ms call
harmless    training   print the loss every 10 steps (after the first batch)
==========  =========  ====================================================

The phases are controlled: fixed sleeps stand for I/O, so TTFB is ~0.13 s
and barely varies; the blocking call adds ~40% to it. ``--torch``
swaps the pure-Python model for a ``torch.nn`` one whose first forward call the
lab detects by itself; ``--extra-data-seconds`` dials in a slowdown of data
loading for experiments. Dates and authors are fixed, so commit ids are stable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SampleCommit", "SampleRepo", "make_sample_repo"]

_TRAIN = '''\
"""Train a tiny click model on synthetic rows: the sample workflow of the regression lab."""

import argparse
import json
import math
import random
import time

try:
    from workbench.lab import mark, shrink
except ImportError:  # outside the workbench the script runs unmeasured

    def mark(name):
        pass

    def shrink(name, default):
        return default


import features

mark("imports_done")


def load_config(path):
    with open(path) as f:
        config = json.load(f)
    for key in ("rows", "features", "hidden", "iterations", "learning_rate"):
        if key not in config:
            raise SystemExit(f"{path}: missing key {key!r}")
    time.sleep(0.01)  # stands for checking the config against the feature registry
    return config


def load_data(config, extra_seconds=0.0):
    time.sleep(0.06)  # stands for reading the shards
    rng = random.Random(0)
    rows = [[rng.gauss(0.0, 1.0) for _ in range(config["features"])] for _ in range(config["rows"])]
    labels = [1.0 if r[0] + 0.5 * r[1] > 0 else 0.0 for r in rows]
    if extra_seconds:
        time.sleep(extra_seconds)  # a controlled slowdown, for lab experiments
    return features.standardize(rows), labels


class PythonModel:
    """Logistic regression on a hidden layer of fixed random features."""

    def __init__(self, n_in, hidden, learning_rate):
        rng = random.Random(1)
        self.proj = [[rng.gauss(0.0, 1.0 / math.sqrt(n_in)) for _ in range(n_in)] for _ in range(hidden)]
        self.w = [0.0] * hidden
        self.lr = learning_rate

    def train_step(self, xs, ys):
        loss = 0.0
        for x, y in zip(xs, ys):
            h = [max(0.0, sum(a * b for a, b in zip(row, x))) for row in self.proj]
            p = 1.0 / (1.0 + math.exp(-sum(w * v for w, v in zip(self.w, h))))
            loss -= math.log(max(p if y else 1.0 - p, 1e-9))
            self.w = [w - self.lr * (p - y) * v for w, v in zip(self.w, h)]
        return loss / len(xs)


def build_model(config, use_torch):
    time.sleep(0.02)  # stands for loading the embedding tables
    if not use_torch:
        return PythonModel(config["features"], config["hidden"], config["learning_rate"])
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(config["features"], config["hidden"]), torch.nn.ReLU(),
                              torch.nn.Linear(config["hidden"], 1))
    optimizer = torch.optim.SGD(net.parameters(), lr=config["learning_rate"])

    class TorchModel:
        def train_step(self, xs, ys):
            logits = net(torch.tensor(xs)).squeeze(1)  # the lab detects this first forward call
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor(ys))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss.item()

    return TorchModel()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config.json")
    parser.add_argument("--torch", action="store_true", help="train a torch.nn model")
    parser.add_argument("--extra-data-seconds", type=float, default=0.0)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    mark("config_ready")
    xs, ys = load_data(config, args.extra_data_seconds)
    mark("data_ready")
    model = build_model(config, args.torch)
    mark("model_ready")
    batch = shrink("batch", 32)
    for step in range(shrink("iterations", config["iterations"])):
        start = (step * batch) % len(xs)
        if not args.torch and step == 0:
            mark("first_batch")  # a torch model needs no mark: its first forward call is detected
        loss = model.train_step(xs[start:start + batch], ys[start:start + batch])
    print(f"loss {loss:.4f}")


if __name__ == "__main__":
    main()
'''

_FEATURES = '''\
"""Feature preprocessing: standardize every column."""

import math


def standardize(rows):
    n = len(rows)
    columns = list(zip(*rows))
    means = [sum(c) / n for c in columns]
    stds = [math.sqrt(sum((v - m) ** 2 for v in c) / n) or 1.0 for c, m in zip(columns, means)]
    return [[(v - m) / s for v, m, s in zip(row, means, stds)] for row in rows]
'''

_CONFIG = '{\n  "rows": 300,\n  "features": 8,\n  "hidden": 16,\n  "iterations": 20,\n  "learning_rate": 0.1\n}\n'

_README = "# click model\n\nTrain with `python train.py`; settings are in `config.json`.\n"

_README_KEYS = _README + """
## config keys

- `rows`, `features`: size of the synthetic training data
- `hidden`: width of the hidden layer
- `iterations`, `learning_rate`: the optimizer loop
"""

_LR_CHECK = ('            raise SystemExit(f"{path}: missing key {key!r}")\n',
             '            raise SystemExit(f"{path}: missing key {key!r}")\n'
             '    if not config["learning_rate"] > 0:\n'
             '        raise SystemExit(f"{path}: learning_rate must be positive")\n')

_MANIFEST = ('    time.sleep(0.06)  # stands for reading the shards\n',
             '    _wait_for_manifest()\n    time.sleep(0.06)  # stands for reading the shards\n')
_MANIFEST_FN = ('def load_data(config, extra_seconds=0.0):\n',
                'def _wait_for_manifest():\n'
                '    """Block until the exporter has published the shard manifest."""\n'
                '    time.sleep(0.05)  # a synchronous poll of the manifest service\n\n\n'
                'def load_data(config, extra_seconds=0.0):\n')

_LOG = ('        loss = model.train_step(xs[start:start + batch], ys[start:start + batch])\n',
        '        loss = model.train_step(xs[start:start + batch], ys[start:start + batch])\n'
        '        if step % 10 == 0:\n            print(f"step {step} loss {loss:.4f}")\n')


@dataclass(frozen=True, slots=True)
class SampleCommit:
    """One commit of the sample history and what it does to TTFB."""

    sha: str
    subject: str
    kind: str  # "base", "harmless" or "regression"

    def to_dict(self) -> dict[str, Any]:
        return {"sha": self.sha, "subject": self.subject, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class SampleRepo:
    """The generated repository and the truth the lab should find in it."""

    path: Path
    commits: tuple[SampleCommit, ...]
    slowed_phase: str = "data_ready"

    @property
    def good(self) -> str:
        return self.commits[0].sha

    @property
    def bad(self) -> str:
        return self.commits[-1].sha

    @property
    def culprit(self) -> SampleCommit:
        return next(c for c in self.commits if c.kind == "regression")

    def command(self, *args: str, python: str | None = None) -> tuple[str, ...]:
        """The workflow command, run from a checkout of the repository."""
        return (python or sys.executable, "train.py", *args)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "commits": [c.to_dict() for c in self.commits],
                "culprit": self.culprit.sha, "slowed_phase": self.slowed_phase}


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    base = ["git", "-c", "user.name=Lab Sample", "-c", "user.email=lab@example.invalid",
            "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", "-c", "init.defaultBranch=main"]
    done = subprocess.run([*base, *args], cwd=repo, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        from workbench.lab.errors import LabError

        raise LabError.git_failed(repo, args, done.stderr)
    return done.stdout.strip()


def make_sample_repo(path: str | Path) -> SampleRepo:
    """Create the sample repository at ``path`` (a new or empty directory).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     [c.kind for c in make_sample_repo(tmp).commits]
    ['base', 'harmless', 'harmless', 'regression', 'harmless']
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if any(path.iterdir()):
        from workbench.lab.errors import LabError

        raise LabError(path, "the directory is not empty.", "pass a new or empty directory.")
    files = {"train.py": _TRAIN, "features.py": _FEATURES, "config.json": _CONFIG, "README.md": _README}
    steps: list[tuple[str, str, dict[str, str | tuple[str, str]]]] = [  # a new text, or an (old, new) replacement
        ("base", "train: tiny click model with phase marks", {}),
        ("harmless", "docs: describe the config keys", {"README.md": _README_KEYS}),
        ("harmless", "config: check that the learning rate is positive", {"train.py": _LR_CHECK}),
        ("regression", "data: wait for the shard manifest before reading", {"train.py": _MANIFEST}),
        ("harmless", "train: print the loss every 10 steps", {"train.py": _LOG}),
    ]
    _git(path, "init", "-q")
    commits = []
    for i, (kind, subject, changes) in enumerate(steps):
        for name, change in changes.items():
            if isinstance(change, tuple):
                old, new = change
                if name == "train.py" and kind == "regression":
                    files[name] = files[name].replace(*_MANIFEST_FN)
                files[name] = files[name].replace(old, new)
            else:
                files[name] = change
        for name, text in files.items():
            (path / name).write_text(text)
        _git(path, "add", "-A")
        date = f"2026-01-0{i + 1}T12:00:00+00:00"
        env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        _git(path, "commit", "-q", "-m", subject, env=env)
        commits.append(SampleCommit(_git(path, "rev-parse", "HEAD"), subject, kind))
    return SampleRepo(path, tuple(commits))
