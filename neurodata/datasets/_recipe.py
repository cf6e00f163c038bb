"""A dataset recipe is data: hashed resources with mirrors, ordered classes, sensor size, splits,
orientation, time origin, licence and citation. The shared machinery (``_base.py``) does download,
verification, indexing and caching from it."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Resource:
    """One file a dataset needs, under the name its original host serves it.

    ``checksum`` is ``"md5:<hex>"`` or ``"sha256:<hex>"``; ``aliases`` are other names the same file
    is known by (accepted from ``--from``); ``splits`` lists the splits that need it (empty: all).
    """

    filename: str
    urls: tuple[str, ...]
    checksum: str | None
    size: int | None = None
    splits: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def needed_for(self, split: str) -> bool:
        return not self.splits or split == "all" or split in self.splits


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a dataset except the code that turns its files into samples."""

    name: str
    title: str
    resources: tuple[Resource, ...]
    classes: tuple[str, ...]
    sensor_size: tuple[int, int, int]
    splits: tuple[str, ...]
    licence: str
    citation: str
    orientation: str
    time_origin: str
    split_rule: str
    sample_counts: dict = field(default_factory=dict)
    download: str = "automatic"          # "automatic" | "manual" | "generated"
    manual_instructions: str = ""
    cache_version: int = 1
    homepage: str = ""

    @property
    def download_size(self) -> int | None:
        sizes = [r.size for r in self.resources]
        return None if not sizes or any(s is None for s in sizes) else sum(sizes)
