"""The widget library (imported as ``workbench_widgets``): panel + holoviews views over workbench results.

It holds no analysis logic: every number it shows comes from a ``workbench`` call.
"""

from __future__ import annotations

__all__: list[str] = []
