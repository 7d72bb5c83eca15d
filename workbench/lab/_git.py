"""The few git operations the lab needs: resolve revisions, list a range, check out worktrees."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from workbench.lab.errors import LabError

__all__ = ["Worktrees", "describe", "first_parent_range", "resolve"]


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise LabError(repo, "git is not installed.", "install git, or compare two commands instead "
                       "of two revisions (use {variant} in the command).") from None
    if check and done.returncode != 0:
        raise LabError.git_failed(repo, args, done.stderr)
    return done


def _toplevel(repo: Path) -> Path:
    if not Path(repo).is_dir():
        raise LabError(repo, "directory not found.", "pass --repo with the repository that holds the revisions.")
    done = _git(repo, "rev-parse", "--show-toplevel", check=False)
    if done.returncode != 0:
        raise LabError.not_a_repo(repo, done.stderr)
    return Path(done.stdout.strip())


def resolve(repo: Path | str, revision: str) -> str:
    """The full commit id of ``revision``; a :class:`LabError` with a spelling hint if there is none."""
    repo = _toplevel(Path(repo))
    done = _git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", check=False)
    if done.returncode != 0 or not done.stdout.strip():
        refs = ["HEAD", *_git(repo, "for-each-ref", "--format=%(refname:short)", check=False).stdout.split()]
        raise LabError.bad_revision(repo, revision, refs)
    return done.stdout.strip()


def describe(repo: Path | str, sha: str) -> str:
    """``"<short id> <subject>"`` of a commit."""
    return _git(Path(repo), "log", "-1", "--format=%h %s", sha).stdout.strip()


def first_parent_range(repo: Path | str, good: str, bad: str) -> list[tuple[str, str]]:
    """Commits after ``good`` up to ``bad`` along first parents, oldest first, as ``(sha, subject)``.

    First parents give a linear order even across merges: a merge counts as
    one change, the unit a bisect can name.
    """
    repo = _toplevel(Path(repo))
    good_sha, bad_sha = resolve(repo, good), resolve(repo, bad)
    if _git(repo, "merge-base", "--is-ancestor", good_sha, bad_sha, check=False).returncode != 0:
        raise LabError.not_ancestor(repo, good, bad)
    out = _git(repo, "log", "--first-parent", "--reverse", "--format=%H %s", f"{good_sha}..{bad_sha}").stdout
    changes = [(sha, subject) for sha, _, subject in (line.partition(" ") for line in out.splitlines() if line)]
    if not changes:
        raise LabError.empty_range(repo, good, bad)
    return changes


class Worktrees:
    """Detached worktrees of one repository in a temporary directory, removed on exit.

    ``checkout(sha)`` returns the same directory for the same commit, so an
    A/A test runs both sides in one checkout.
    """

    def __init__(self, repo: Path | str) -> None:
        self.repo = _toplevel(Path(repo))
        self._root: Path | None = None
        self._paths: dict[str, Path] = {}

    def __enter__(self) -> Worktrees:
        self._root = Path(tempfile.mkdtemp(prefix="workbench-lab-worktrees-"))
        return self

    def checkout(self, sha: str) -> Path:
        if self._root is None:
            raise RuntimeError("use Worktrees as a context manager")
        if sha not in self._paths:
            path = self._root / sha[:12]
            _git(self.repo, "worktree", "add", "--detach", "--force", str(path), sha)
            self._paths[sha] = path
        return self._paths[sha]

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for path in self._paths.values():
            _git(self.repo, "worktree", "remove", "--force", str(path), check=False)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        _git(self.repo, "worktree", "prune", check=False)
