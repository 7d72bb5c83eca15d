"""Errors of the regression lab: what failed, the fact, and the fix."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from workbench.errors import WorkbenchError, suggest

__all__ = ["LabError"]


class LabError(WorkbenchError):
    """A lab run that cannot go on: a bad revision, a failing workflow command, a bad setting."""

    @classmethod
    def not_a_repo(cls, path: Path | str, stderr: str) -> LabError:
        return cls(path, "not a git repository.", "pass --repo with the repository that holds the revisions.",
                   [stderr.strip().splitlines()[-1]] if stderr.strip() else [])

    @classmethod
    def bad_revision(cls, repo: Path | str, revision: str, refs: Iterable[str]) -> LabError:
        refs = sorted(refs)
        close = suggest(revision, refs)
        fact = f"revision '{revision}' not found."
        if close:
            fact += f" Did you mean '{close}'?"
        details = [f"branches and tags: {refs[:12]}"] if refs else []
        return cls(repo, fact, "list revisions with `git log --oneline --all`.", details)

    @classmethod
    def not_ancestor(cls, repo: Path | str, good: str, bad: str) -> LabError:
        return cls(repo, f"GOOD '{good}' is not an ancestor of BAD '{bad}': the range has no order to bisect.",
                   "pass an older revision as GOOD, e.g. `git merge-base GOOD BAD`.")

    @classmethod
    def empty_range(cls, repo: Path | str, good: str, bad: str) -> LabError:
        return cls(repo, f"no commits between '{good}' and '{bad}'.", "BAD must be a descendant of GOOD.")

    @classmethod
    def git_failed(cls, repo: Path | str, args: Sequence[str], stderr: str) -> LabError:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "(no message)"
        return cls(repo, f"`git {' '.join(args)}` failed: {last}", "check the repository state with `git status`.")

    @classmethod
    def command_not_found(cls, variant: str, command: Sequence[str]) -> LabError:
        return cls(f"variant {variant}", f"command not found: {command[0]!r}.",
                   "give the workflow after `--` as you would run it, e.g. `-- python train.py`; "
                   "use an absolute path if it is not on PATH.")

    @classmethod
    def runs_failed(cls, variant: str, failed: Sequence[str], attempted: int, needed: int) -> LabError:
        shown = list(dict.fromkeys(failed))[:3]  # distinct reasons, first ones first
        return cls(f"variant {variant}",
                   f"{len(failed)} of {attempted} runs failed; {needed} successful runs are needed.",
                   "run the command by hand in the variant's directory to see the error; "
                   "raise --timeout if runs time out.", shown)

    @classmethod
    def unknown_setting(cls, name: str, options: Iterable[str]) -> LabError:
        options = sorted(options)
        close = suggest(name, options)
        hint = f"did you mean '{close}'?" if close else f"use one of {options}."
        return cls("lab settings", f"unknown setting '{name}'.", hint)

    @classmethod
    def bad_setting(cls, name: str, value: object, expected: str) -> LabError:
        return cls("lab settings", f"{name}={value!r}: expected {expected}.", f"pass {name} as {expected}.")
