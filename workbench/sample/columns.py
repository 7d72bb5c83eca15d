"""How a generated case is written: its column names (the user's names, mapped by workbench.toml) and file layout."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from workbench.sample import _world as world

DEFAULT_ROWS = 36_000
PARTITION_ROWS = 2_000_000  # more served rows than this -> hive-partitioned by date
SNAPSHOT_FORMATS = ("safetensors", "pt")


@dataclass(frozen=True, slots=True)
class ColumnNames:
    """How a case names its columns; the defaults are the case format's.

    Examples
    --------
    >>> ColumnNames().feature("f_ctr_7d")
    'f_ctr_7d'
    >>> ColumnNames.renamed().feature("f_ctr_7d")
    'feat_ctr_7d'
    """

    timestamp: str = "ts"
    prediction: str = "prediction"
    label: str = "label"
    snapshot: str = "snapshot_id"
    feature_prefix: str = "f_"
    slices: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({k: k for k in world.SLICES}))

    @classmethod
    def renamed(cls) -> ColumnNames:
        """Non-default names, to exercise a loader's ``[columns]`` mapping."""
        return cls(
            timestamp="event_time",
            prediction="p_click",
            label="clicked",
            snapshot="model_version",
            feature_prefix="feat_",
            slices=MappingProxyType({"country": "geo_country", "platform": "device_os", "ad_type": "ad_format"}),
        )

    @property
    def is_default(self) -> bool:
        return self == ColumnNames()

    def feature(self, name: str) -> str:
        """Output name of the internal feature ``f_<rest>``."""
        return self.feature_prefix + name.removeprefix("f_")

    def slice(self, name: str) -> str:
        return self.slices[name]

    def features(self) -> list[str]:
        return [self.feature(f) for f in world.FEATURE_NAMES]

    def rename_text(self, text: str) -> str:
        """Fill ``{f_x}`` / ``{country}`` / ``{features}`` placeholders with output names."""

        def sub(m: re.Match[str]) -> str:
            key = m.group(1)
            if key in world.SPEC:
                return self.feature(key)
            if key in world.SLICES:
                return self.slice(key)
            return m.group(0)

        return re.sub(r"\{(\w+)\}", sub, text)
