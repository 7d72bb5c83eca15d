"""One error hierarchy: every message names the source, the fact and the fix.

Messages are built by classmethod constructors so the wording stays uniform and
tests can pin the ``Hint:`` text. The CLI prints ``str(error)`` and exits 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

__all__ = ["CaseError", "NotEnoughData", "SnapshotError", "WorkbenchError", "suggest"]


def suggest(name: str, options: Iterable[str]) -> str | None:
    """The closest spelling of ``name`` among ``options``, if any is close."""
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return match[0] if match else None


def _preview(items: Iterable[str], limit: int = 12) -> str:
    items = list(items)
    shown = ", ".join(repr(i) for i in items[:limit])
    more = f", ... (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"[{shown}{more}]"


class WorkbenchError(ValueError):
    """Base of every error the workbench raises on purpose."""

    def __init__(self, source: object, fact: str, hint: str | None = None, details: Iterable[str] = ()):
        self.source = str(source)
        self.fact = fact
        self.hint = hint
        self.details = tuple(details)
        lines = [f"{self.source}: {fact}"]
        lines += [f"  - {d}" for d in self.details]
        if hint:
            lines.append(f"Hint: {hint}")
        super().__init__("\n".join(lines))


class CaseError(WorkbenchError):
    """A case directory that cannot be read as the case format says."""

    @classmethod
    def missing_file(cls, root: Path, name: str, found: Iterable[str]) -> CaseError:
        found = sorted(found)
        return cls(
            root,
            f"required file '{name}' not found (nor '{Path(name).stem}/' or '{Path(name).stem}.csv').",
            f"put the serving log at {root / name}: one row per served prediction "
            "with a timestamp, a prediction in [0, 1] and a 0/1 label.",
            [f"found: {_preview(found)}"] if found else ["the directory is empty"],
        )

    @classmethod
    def missing_column(cls, source: object, role: str, column: str, available: Iterable[str], toml: Path,
                       likely: str | None = None) -> CaseError:
        available = list(available)
        close = suggest(column, available) or likely
        fix = f'map it in {toml}: [columns] {role} = "{close or "<your column>"}"'
        fact = f"column '{column}' ({role}) not found."
        if close:
            fact += f" Did you mean '{close}'?"
        return cls(source, fact, fix, [f"available: {_preview(available)}"])

    @classmethod
    def missing_listed_column(cls, source: object, role: str, column: str, free: Iterable[str], toml: Path) -> CaseError:
        """A column a ``[columns]`` list (``features``, ``slices``) names and the log does not hold; ``free`` are the
        log's columns no other role has taken, the ones worth suggesting."""
        free = list(free)
        close = suggest(column, free)
        fix = (f"in {toml}, [columns] {role}: replace '{column}' with '{close}', or remove it" if close else
               f"in {toml}, [columns] {role}: remove '{column}', or add that column to the log")
        return cls(source, f"column '{column}' (listed in [columns] {role}) not found.", fix, [f"available: {_preview(free)}"])

    @classmethod
    def wrong_type(cls, source: object, column: str, role: str, found: object, expected: str, fix: str) -> CaseError:
        return cls(source, f"column '{column}' ({role}) has type {found}, expected {expected}.", fix)

    @classmethod
    def bad_values(cls, source: object, column: str, fact: str, fix: str, examples: Iterable[object] = ()) -> CaseError:
        details = [f"examples: {list(examples)[:5]}"] if examples else []
        return cls(source, f"column '{column}': {fact}", fix, details)



class NotEnoughData(CaseError):
    """The case reads fine but holds too few rows for one analysis (a holdout to validate on, say): the check that
    needs it is skipped with this reason; it did not fail."""

class SnapshotError(CaseError):
    """A snapshot file that is missing, unreadable, not a state_dict or unsafe."""
