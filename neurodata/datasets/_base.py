"""The shared dataset machinery: resources → verified files → events cache → PyTorch dataset.

A dataset class sets ``recipe`` (a ``Recipe``) and implements ``_samples(files, split)``, a
generator of ``(events, label, meta)`` in a stable order (``files`` maps resource file names to
verified local paths). Everything else lives here:

1. ``split`` and options are validated; the cache file name and content key follow from the
   recipe (checksums, cache version), the split and every option that changes the content.
2. A complete cache with that key is served as is: the archives are not even looked at.
3. Otherwise the resources are made available (``source=`` folder/file, else download with
   mirrors, else an error that says exactly what to fetch and where to put it), verified, and
   the cache is built once across processes (``neurodata.cache.get_or_build``).
"""
from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import numpy as np
import torch

from .._filelock import FileLock
from ..cache import (COMPRESSIONS, EventsStore, EventsWriter, cache_root, check_cache, content_key, open_store,
                     publish, remove_stale_temporaries, temporary_path)
from ..download import env_mirrors, fetch_resource
from ..errors import DownloadError
from ._recipe import Recipe, Resource

__all__ = ["EventDataset", "find_source"]


def find_source(source, resource: Resource) -> Path | None:
    """The file for ``resource`` inside ``source`` (a folder, or one file with an accepted name)."""
    source = Path(source).expanduser()
    names = (resource.filename, *resource.aliases)
    if source.is_file():
        return source if source.name in names else None
    for name in names:
        for candidate in (source / name, *source.glob(f"*/{name}")):
            if candidate.is_file():
                return candidate
    return None


class EventDataset(torch.utils.data.Dataset):
    """A map-style dataset of event samples backed by the HDF5 events cache.

    ``ds[i]`` returns ``(events, label)``: ``events`` a ``neurodata.EVENT_DTYPE`` array (t in µs from
    the sample's time origin, the dataset's documented orientation applied), ``label`` an int
    (after ``transform`` / ``target_transform`` when given). ``ds.targets`` holds all labels
    without reading events; ``ds.classes`` the class names (label i is ``classes[i]``);
    ``ds.sensor_size`` is ``(W, H, P)``; ``ds.metadata(i)`` the sample's source member and time offset.

    Parameters
    ----------
    root : path, optional
        Cache folder (default ``$NEURODATA_HOME`` or the user cache dir); files go to ``root/<name>/``.
    split : ``"train"``, ``"test"`` (``"valid"`` where the dataset has one) or ``"all"``.
    transform, target_transform : callables applied to events / label.
    download : bool
        Fetch missing resources (False: they must already be in ``root/<name>/`` or ``source``).
    mirror : str, optional
        A mirror base URL or folder tried first as ``<mirror>/<name>/<file name>``.
    source : path, optional
        A folder holding the resource files (or one such file), e.g. a manual download.
    verify : bool
        Check checksums (False only on explicit request; warns).
    cache_compression : ``"huffman"`` (default), ``"gzip"`` or None, keyword-only
        How the events cache stores events (``neurodata.cache.EventsWriter(compression=)``).
        ``"huffman"``: Huffman-coded samples, the smallest file and fast random reads.
        ``"gzip"``: shuffle + gzip-1 columns that any HDF5 reader inflates, slower to read.
        None: uncompressed contiguous columns, the fastest random reads for the largest file
        (8 B/event with 8-bit coordinates, 12 B/event with 16-bit). Measured numbers in
        ``docs/cache.md``. Each is its own cache file: ``"gzip"`` adds ``-gzip`` to the file name
        and ``cache_compression="gzip"`` to the key, None ``-raw`` and ``"none"``, so one layout
        is never served for another.
    """

    recipe: Recipe
    all_by_splits: bool = False
    """True where ``_samples(files, "all")`` would not list every split's samples in the recipe's
    split order (a split rule applied within each class or file): the ``"all"`` cache is then built
    from ``_samples(files, s)`` for each split ``s`` in turn, so it is the splits concatenated."""

    def __init__(self, root=None, split: str = "train", transform=None, target_transform=None,
                 download: bool = True, mirror=None, source=None, verify: bool = True, *,
                 cache_compression: str | None = "huffman", **options):
        if cache_compression not in COMPRESSIONS:
            raise ValueError(f"{type(self).__name__}: cache_compression must be one of {COMPRESSIONS}, "
                             f"got {cache_compression!r}")
        self.cache_compression = cache_compression
        splits = (*self.recipe.splits, "all")
        if split not in splits:
            raise ValueError(f"{type(self).__name__}: split must be one of {splits}, got {split!r}")
        self.split = split
        for old, new in (("train", "split='train' / 'test'"), ("save_to", "root=")):
            if old in options:  # SpikingJelly's and tonic's keywords
                raise TypeError(f"{type(self).__name__}: there is no {old}= here; use {new} (docs/migration.md)")
        self.options = self._check_options(**options)
        self.transform = transform
        self.target_transform = target_transform
        self.root = cache_root(root) / self.recipe.name
        self._mirror, self._source, self._download, self._verify = mirror, source, download, verify
        self.store = open_store(EventsStore, self.cache_path, self.cache_key, self._build)

    # -- what subclasses provide -----------------------------------------------------------
    def _check_options(self, **options) -> dict:
        """Validate dataset-specific options; return those that change the cached content."""
        if options:
            raise TypeError(f"{type(self).__name__} got unexpected options {sorted(options)}")
        return {}

    def _samples(self, files: dict, split: str):
        raise NotImplementedError

    def _joint_splits(self) -> tuple:
        """Other splits whose caches can be written in the same pass over the resources as this
        one's (default: none); ``_joint_samples`` then yields them together."""
        return ()

    def _joint_samples(self, files: dict, splits: tuple):
        """``(split, (events, label, meta))`` for every sample of each of ``splits``, each split's
        samples in the order ``_samples`` gives them."""
        raise NotImplementedError

    # -- cache identity --------------------------------------------------------------------
    def _resources(self):
        return [r for r in self.recipe.resources if r.needed_for(self.split)]

    @property
    def variant(self) -> str:
        opts = "-".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.split}{'-' + opts if opts else ''}"

    @property
    def cache_key(self) -> str:
        """The key of this split's events cache: recipe, version, split, options, the resources'
        checksums, the layout, and whether their checks were skipped (``verify=False``): a cache
        built from unverified files is never served to a verifying dataset, which builds its own."""
        resources = self._resources()
        storage = {} if self.cache_compression == "huffman" else {"cache_compression": self.cache_compression or "none"}
        if not self._verify and resources:  # checksums, or a dataset's own content check (ASL-DVS)
            storage["unverified"] = True
        return content_key(self.recipe.name, self.recipe.cache_version, self.split, self.options,
                           [(r.filename, r.checksum) for r in resources], **storage)

    @property
    def cache_path(self) -> Path:
        layout = {"huffman": "", "gzip": "-gzip", None: "-raw"}[self.cache_compression]
        return self.root / f"events-{self.variant}{layout}-{self.cache_key[:12]}.h5"

    # -- resources -------------------------------------------------------------------------
    def resource_paths(self) -> dict:
        """Make every resource this split needs available and verified; return ``{file name: path}``."""
        files = {}
        mirrored = self._download and self._source is None and bool(self._mirror or env_mirrors())
        for res in self._resources():
            dest = self.root / res.filename
            urls: list = list(res.urls)
            if self._source is not None:
                found = find_source(self._source, res)
                if found is None:
                    raise DownloadError(
                        f"{res.filename} (also known as {', '.join(res.aliases) or 'no other name'}) is not in "
                        f"{self._source}; put the file there or pass its path")
                urls = [str(found)]
            elif not self._download or not res.urls:  # no URL: a manual download (or a lab mirror)
                alias = find_source(self.root, res) if self.root.is_dir() else None
                if dest.exists() or (alias is None and mirrored):
                    urls = []
                elif alias is not None:          # dropped in under another accepted name
                    urls = [str(alias)]
                else:
                    raise DownloadError(self._missing_message(res, dest))
            try:
                files[res.filename] = fetch_resource(
                    urls, dest, checksum=res.checksum, size=res.size, dataset=self.recipe.name,
                    mirrors=[self._mirror] if self._mirror and self._source is None else [],
                    offline=True if not urls and not mirrored else None, verify=self._verify)
            except DownloadError as e:
                if urls or dest.exists():
                    raise
                raise DownloadError(f"{self._missing_message(res, dest)}\n{e}") from None
        return files

    def _missing_message(self, res: Resource, dest: Path) -> str:
        how = self.recipe.manual_instructions or "download it, or pass download=True"
        checksum = f"checksum {res.checksum}" if res.checksum else "no pinned checksum"
        return (f"{self.recipe.title}: {res.filename} is missing (expected at {dest}, "
                f"{checksum}). {how} Then pass source=<folder or file> "
                f"(CLI: neurodata fetch {self.recipe.name} --from PATH).")

    def _writer(self, path) -> EventsWriter:
        return EventsWriter(path, key=self.cache_key, sensor_size=self.recipe.sensor_size, class_names=self.classes,
                            source_checksums={r.filename: r.checksum for r in self._resources() if r.checksum},
                            attrs={"dataset": self.recipe.name, "split": self.split, "options": self.options},
                            compression=self.cache_compression)

    def _build(self, tmp) -> None:
        """Write this split's events cache at ``tmp`` (``get_or_build`` publishes it). In the same
        pass, write the cache of each joint split that is missing and whose lock is free, and
        publish it under that lock; a joint split another process is building is left to it."""
        with contextlib.ExitStack() as stack:
            others = {}
            for split in self._joint_splits():
                other = copy.copy(self)
                other.split = split
                lock = FileLock(other.cache_path.with_name(other.cache_path.name + ".lock"), timeout=0)
                try:
                    lock.acquire()
                except TimeoutError:
                    continue
                stack.callback(lock.release)
                if check_cache(other.cache_path, other.cache_key) is not None:
                    remove_stale_temporaries(other.cache_path)
                    other_tmp = temporary_path(other.cache_path)
                    stack.callback(other_tmp.unlink, missing_ok=True)
                    others[split] = (other, other_tmp)
            files = self.resource_paths()
            with contextlib.ExitStack() as writing:  # closes (completes) every file, or abandons them on an error
                writers = {self.split: writing.enter_context(self._writer(tmp))}
                writers.update({s: writing.enter_context(o._writer(t)) for s, (o, t) in others.items()})
                if others:
                    samples = self._joint_samples(files, tuple(writers))
                elif self.split == "all" and self.all_by_splits:
                    samples = (("all", sample) for s in self.recipe.splits for sample in self._samples(files, s))
                else:
                    samples = ((self.split, sample) for sample in self._samples(files, self.split))
                for split, (events, label, meta) in samples:
                    writers[split].append(events, label, **dict(meta or {}))
            for other, other_tmp in others.values():
                publish(other_tmp, other.cache_path, other.cache_key)

    # -- Dataset protocol ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i):
        events, label = self.store[i]
        if self.transform is not None:
            events = self.transform(events)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return events, label

    @property
    def classes(self) -> tuple:
        return self.recipe.classes

    @property
    def sensor_size(self) -> tuple:
        return self.recipe.sensor_size

    @property
    def targets(self) -> np.ndarray:
        return np.asarray(self.store.labels)

    def metadata(self, i: int) -> dict:
        """Per-sample metadata: ``source`` (archive member), ``t_offset`` (µs removed from t) and
        any dataset-specific columns (e.g. SHD's ``speaker``)."""
        i = self.store._index(i)
        return {name: _scalar(self.store.meta(name)[i]) for name in self.store.meta_names()}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, samples={len(self)}, "
                f"sensor_size={self.sensor_size}, classes={len(self.classes)}, cache={str(self.cache_path)!r})")


def _scalar(v):
    if isinstance(v, bytes):
        return v.decode()
    return v.item() if hasattr(v, "item") else v
