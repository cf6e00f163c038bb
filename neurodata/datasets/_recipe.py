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
    # Display only, never enforced: a published approximate size with its source, written as
    # "≈ <number> <unit> (source: <url>)". Shown when the exact size (sum of Resource.size) is unknown.
    approx_download_size: str | None = None

    @property
    def download_size(self) -> int | None:
        """Exact bytes to download (sum of every ``Resource.size``), or None if any size is unknown."""
        sizes = [r.size for r in self.resources]
        return None if not sizes or any(s is None for s in sizes) else sum(sizes)

    def size_text(self, *, source: bool = True) -> str:
        """The download size as shown by ``neurodata list``, ``available()`` and docs/datasets.md.

        In order of preference: the exact size (decimal units, e.g. ``"1.23 GB"``); ``"generated"`` for a
        dataset built locally; ``approx_download_size`` (with ``source=False``, without its
        ``" (source: ...)"`` part); ``"unknown"``.
        """
        exact = self.download_size
        if exact is not None:
            return format_bytes(exact)
        if self.download == "generated":
            return "generated"
        if self.approx_download_size:
            return self.approx_download_size if source else self.approx_download_size.split(" (source:")[0]
        return "unknown"


def format_bytes(n: int) -> str:
    """``n`` bytes in decimal units, about three significant digits: ``"512 B"``, ``"1.50 kB"``,
    ``"1.01 GB"``, ``"25.3 MB"``, ``"255 GB"`` (1 kB = 1000 B)."""
    if n < 1000:
        return f"{n} B"
    value, unit = float(n) / 1000, "kB"
    for bigger in ("MB", "GB", "TB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{value:.{2 if value < 10 else 1 if value < 100 else 0}f} {unit}"
