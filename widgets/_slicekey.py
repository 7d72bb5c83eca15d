"""Slice labels: ``'country=BR'`` or ``'country=BR & platform=ios'`` <-> ``{column: value}``.

The same spelling as the JSON contract's ``slice`` field; parsing also accepts
``,`` and `` and `` between conditions, as people type them.
"""

from __future__ import annotations

import re

__all__ = ["format_slice", "parse_slice"]

_SEP = re.compile(r"\s*(?:&|,|\band\b)\s*")


def parse_slice(text: str | None) -> dict[str, str]:
    """``{column: value}`` for a slice label (empty for ``None``).

    >>> parse_slice("country=BR & platform=ios")
    {'country': 'BR', 'platform': 'ios'}
    """
    if not text:
        return {}
    out = {}
    for part in filter(None, _SEP.split(text.strip())):
        column, sep, value = part.partition("=")
        if not sep or not column.strip():
            raise ValueError(f"slice {text!r}: {part!r} is not 'column=value'.\n"
                             "Hint: write e.g. 'country=BR' or 'country=BR & platform=ios'.")
        out[column.strip()] = value.strip()
    return out


def format_slice(values: dict[str, object]) -> str:
    """The label of a slice (columns in the given order)."""
    return " & ".join(f"{k}={v}" for k, v in values.items())
