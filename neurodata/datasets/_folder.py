"""Datasets read from an extracted folder tree (manual downloads too large, or in archive formats
this package does not decode, to read from the archive: Gen1/1 Mpx, ES-ImageNet's multi-part RAR).

A subclass of ``FolderDataset`` sets ``folder_names`` (the names the extracted top folder has) and
implements ``_is_dataset_folder(path)``; ``resource_paths()`` then returns ``{"folder": path}``
for the first match among: ``source`` itself, ``source/<folder name>``, ``root/<name>/<folder
name>`` and ``root/<name>``. Nothing is copied. The cache key still comes from the recipe (its
resources, when listed, are the original archives): a cache built from a folder is served without
looking at the folder again; delete it (``neurodata cache rm``) after changing the folder.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DownloadError
from ._base import EventDataset

__all__ = ["FolderDataset"]


class FolderDataset(EventDataset):
    folder_names: tuple = ()

    def _is_dataset_folder(self, path: Path) -> bool:
        raise NotImplementedError

    def _candidates(self):
        if self._source is not None:
            src = Path(self._source).expanduser()
            yield src
            yield from (src / name for name in self.folder_names)
        else:
            yield from (self.root / name for name in self.folder_names)
            yield self.root

    def resource_paths(self) -> dict:
        for path in self._candidates():
            if path.is_dir() and self._is_dataset_folder(path):
                return {"folder": path}
        where = self._source if self._source is not None else self.root / self.folder_names[0]
        raise DownloadError(
            f"{self.recipe.title}: no extracted dataset folder at {where} (looked for "
            f"{' or '.join(self.folder_names)}). {self.recipe.manual_instructions} Then pass "
            f"source=<that folder> (CLI: neurodata fetch {self.recipe.name} --from PATH).")
