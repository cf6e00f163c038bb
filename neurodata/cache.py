"""The HDF5 cache: one file per dataset/split/variant, built once under a lock, published atomically.

- ``cache_root(root)``: where caches live (``root`` > ``NEURODATA_HOME`` > platformdirs user cache).
- ``content_key(...)`` / ``frames_key(...)``: the hash that names what a file holds.
- ``get_or_build(path, key, build, kind=...)``: return ``path`` when it is a complete file of the
  right kind, schema and key; otherwise build it exactly once across processes (``fcntl`` lock on
  ``<path>.lock``), into ``.<name>.tmp-<pid>-<random>`` in the same folder, and rename it into place.
- ``EventsWriter`` / ``write_events_cache`` and ``EventsStore``: events in CSR layout.
- ``FramesWriter`` / ``write_frames_cache`` and ``FramesStore``: dense ``(T, P, H, W)`` frames in CSR
  layout over T.

The schema (readable with h5py alone) is documented in ``docs/cache.md``.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import operator
import os
import re
import secrets
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
from isal.isal_zlib import crc32
from numba import njit

from . import _huffman
from ._filelock import FileLock
from ._h5chunks import (ChunkAppender, StagedAppender, chunk_table, default_threads, filters_intact, inflate_chunk,
                        inflate_raw, read_chunks, shuffle_deflate_rows)
from ._timeindex import check_time_index, chunk_times, window_rows
from .errors import CacheError
from .events import EVENT_DTYPE, as_events, check_bounds, check_sensor_size

__all__ = ["SCHEMA_VERSION", "FRAMES_SCHEMA_VERSION", "COMPRESSIONS", "cache_root", "content_key", "frames_key",
           "check_cache", "get_or_build", "open_store", "temporary_path", "remove_stale_temporaries", "publish", "EventsWriter",
           "write_events_cache", "EventsStore", "FramesWriter", "write_frames_cache", "FramesStore"]

SCHEMA_VERSION = 2  # of events caches; 2: the "huffman" layout (default), the compression attribute
FRAMES_SCHEMA_VERSION = 2  # 2: frames stored in the narrowest exact dtype, served as the ``dtype`` attribute
FORMATS = {"events": "neurodata-events", "frames": "neurodata-frames"}
_SCHEMAS = {"events": SCHEMA_VERSION, "frames": FRAMES_SCHEMA_VERSION}
CHUNK_EVENTS = 4096  # chosen with scripts/bench_datasets.py (see docs/cache.md)
GZIP_LEVEL = 1
FILTERS = dict(compression="gzip", compression_opts=GZIP_LEVEL, shuffle=True)
_INDEX_FILTERS = dict(compression="gzip", compression_opts=6, shuffle=True)  # index tables read whole at open
COMPRESSIONS = ("huffman", "gzip", None)  # events: Huffman-coded segments | gzip-1 columns | raw columns
_FLUSH_EVENTS = 1 << 20  # events per block: the unit of the writer's threads and of the Huffman tables


def _identity(f) -> tuple:
    """What tells the open HDF5 file ``f`` from another put at its path later: device, inode, size,
    mtime (``fstat`` of its own descriptor, so not a file that replaced it meanwhile)."""
    st = os.fstat(f.id.get_vfd_handle())
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def cache_root(root=None) -> Path:
    """The cache folder: ``root`` if given, else ``$NEURODATA_HOME``, else the user cache dir.

    The user cache dir is ``platformdirs.user_cache_dir("neurodata")`` (``~/.cache/neurodata`` on
    Linux). The folder is not created here. The path is made absolute now, so that a later
    ``os.chdir`` (or a DataLoader worker started elsewhere) cannot point a dataset at other files.
    """
    if root is not None:
        return Path(root).expanduser().absolute()
    env = os.environ.get("NEURODATA_HOME")
    if env:
        return Path(env).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_cache_dir("neurodata")).absolute()


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (tuple, set, frozenset)):
        return sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else list(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return {"__class__": type(obj).__qualname__, **dataclasses.asdict(obj)}
    raise TypeError(f"cannot hash {type(obj).__name__} {obj!r} into a cache key: pass only numbers, strings, "
                    "bools, None, lists, tuples, dicts, numpy values or dataclasses of those")


def content_key(*parts, **named) -> str:
    """sha256 (hex) of the canonical JSON of ``parts`` and ``named`` (sorted keys, exact floats).

    Raises ``TypeError`` for values without a stable text form (functions, arbitrary objects), so
    a key can never silently depend on memory addresses.
    """
    text = json.dumps([list(parts), named], sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def frames_key(params: dict, semantics_version: str, source_key: str = "") -> str:
    """Key of a frames cache: every representation parameter, the semantics version of the code
    that computes frames, and the key of the events the frames come from."""
    if not isinstance(semantics_version, str) or not semantics_version:
        raise ValueError(f"semantics_version must be a non-empty string, got {semantics_version!r}")
    return content_key(kind="frames", params=dict(params), semantics=semantics_version, source=source_key)


def _open(path, mode="r"):
    # HDF5's default file locking is kept: h5py refuses to open one file twice in a process with
    # different locking flags, and users open these files with plain h5py.File next to a store.
    return h5py.File(path, mode)


def _attr_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_open_file(f, kind: str, key) -> str | None:
    a = f.attrs
    if _attr_str(a.get("format", "")) != FORMATS[kind]:
        return f"not a neurodata {kind} cache (format attribute {a.get('format')!r})"
    if int(a.get("schema_version", -1)) != _SCHEMAS[kind]:
        return f"schema version {a.get('schema_version')}, this neurodata reads {_SCHEMAS[kind]}"
    if int(a.get("complete", 0)) != 1:
        return "incomplete (its 'complete' attribute is missing)"
    if key is not None and _attr_str(a.get("key", "")) != key:
        return f"built for key {_attr_str(a.get('key', ''))[:16]}…, expected {key[:16]}… (stale)"
    n, rows = int(a["num_samples"]), int(a["num_rows"])
    layout = _attr_str(a.get("compression", "")) if kind == "events" else "frames"
    if layout == "huffman":
        columns = []
    elif layout in ("gzip", "none"):
        columns = [f["events/dt"], f["events/xyp"]]
    elif kind == "events":
        return f"unknown events layout (compression attribute {a.get('compression')!r})"
    else:
        columns = [f["frames"]]
    if f["offsets"].shape != (n + 1,) or f["labels"].shape != (n,) or any(c.shape[0] != rows for c in columns):
        return "dataset shapes disagree with num_samples/num_rows"
    if kind == "events" and (any(c.ndim != 1 for c in columns) or int(a.get("xyp_bits", 0)) not in (8, 16)):
        return "events columns are not 1-D or xyp_bits is not 8 or 16"
    if not all(filters_intact(c) for c in columns):
        return "a dataset declares no filters but holds compressed bytes (its header is damaged)"
    if kind == "frames" and _served_dtype(a, f["frames"].dtype) is None:
        return f"frames stored as {f['frames'].dtype} cannot be served as dtype attribute {a.get('dtype')!r}"
    if kind == "frames" and tuple(int(v) for v in a.get("frame_shape", ())) != f["frames"].shape[1:]:
        return f"frame_shape attribute {a.get('frame_shape')!r} disagrees with frames {f['frames'].shape[1:]}"
    offsets = f["offsets"][:]
    if int(offsets[-1]) != rows or int(offsets[0]) != 0 or (np.diff(offsets) < 0).any():
        return "offsets do not run from 0 to num_rows in order"
    if layout != "huffman" and "index_crc32" in a and int(a["index_crc32"]) != _index_crc(f, _tables(f)):
        return "its index is damaged (index_crc32 does not match)"
    if kind == "events":
        return (check_time_index(f, n, rows) or _check_annotations(f, n)
                or (_check_huffman(f, offsets, rows) if layout == "huffman" else None))
    return None


def _tables(f) -> list[str]:
    """The datasets of ``_TABLES_INDEX`` that the open file ``f`` has."""
    return [name for name in _TABLES_INDEX if name in f]


# what decides the events and labels a read of the ``huffman`` layout returns, besides the coded
# bytes (which carry their own CRC-32s): covered by the attribute ``events.attrs["index_crc32"]``
_HUFFMAN_INDEX = ("offsets", "labels", "events/segments", "events/segment_crc32", "events/block_lengths",
                  "events/block_p_bits", "time_index/chunk_t", "time_index/t_min", "time_index/t_max",
                  "time_index/sorted")


# the same for the gzip / None events layouts and for frames caches (root attribute ``index_crc32``,
# checked when present: files written before the eighth session lack it); time index if present
_TABLES_INDEX = ("offsets", "labels", "time_index/chunk_t", "time_index/t_min", "time_index/t_max",
                 "time_index/sorted")


def _index_crc(f, names=_HUFFMAN_INDEX) -> int:
    """Chained CRC-32 of the little-endian bytes of the datasets ``names`` of the open file ``f``."""
    value = 0
    for name in names:
        data = f[name][()]
        value = crc32(np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<")).tobytes(), value)
    return value


def _check_huffman(f, offsets: np.ndarray, rows: int) -> str | None:
    """Why the ``huffman`` layout's datasets are inconsistent (see docs/cache.md), or None: the
    decoder then reads only inside ``events/code``, with the tables, segments and sample bounds
    the writer wrote, and its tables are valid prefix codes."""
    try:
        stored = int(f["events"].attrs["index_crc32"])
        if _index_crc(f) != stored:
            return "its index is damaged (index_crc32 does not match)"
        code = f["events/code"]
        index = {name: f[f"events/{name}"][:] for name in ("segments", "segment_crc32", "block_lengths",
                                                           "block_p_bits")}
    except KeyError as e:
        return f"huffman layout is incomplete ({e})"
    segs, crc, lengths, p_bits = index.values()
    S, K = segs.shape[0] - 1, lengths.shape[0]
    if (code.ndim != 1 or segs.ndim != 2 or segs.shape[1] != 5 or S < 0 or crc.shape != (S,)
            or lengths.shape[1:] != (_huffman.TABLES, _huffman.SYMBOLS) or p_bits.shape != (K,)):
        return "huffman datasets have the wrong shapes"
    B = code.shape[0]
    if segs[S].tolist() != [rows, B, B, B, K] or (S and segs[0, :2].tolist() != [0, 0]):
        return "events/segments does not span events/code and num_rows"
    streams = segs[:, 1:4].ravel()
    blocks = segs[:S, 4]
    if (np.diff(segs[:, 0]) <= 0).any() or (np.diff(streams) < 0).any() or (np.diff(blocks) < 0).any() \
            or (S and (blocks[0] < 0 or blocks[-1] >= K)):
        return "events/segments is not ordered"
    starts = offsets[:-1][np.diff(offsets) > 0]
    R = int(f["time_index"].attrs.get("rows_per_entry", 0)) if "time_index" in f else 0
    if R <= 0 or not np.array_equal(segs[:S, 0], np.union1d(starts, np.arange(0, rows, R))):
        return "events/segments does not cut the rows at every sample start and every rows_per_entry rows"
    if (lengths > _huffman.MAX_BITS).any() or (p_bits > 8).any():
        return "events/block_lengths or events/block_p_bits out of range"
    kraft = (np.where(lengths > 0, 2.0 ** -lengths.astype(np.float64), 0.0)).sum(axis=2)
    if (kraft > 1.0).any():
        return "events/block_lengths is not a prefix code"
    return None


def _check_annotations(f, n: int) -> str | None:
    if "annotations" not in f:
        return None
    try:
        offsets, values = f["annotations/offsets"], f["annotations/values"]
        if offsets.shape != (n + 1,) or values.ndim != 1 or int(offsets[-1]) != values.shape[0]:
            return "annotations/offsets disagree with num_samples or annotations/values"
    except KeyError as e:
        return f"annotations group is incomplete ({e})"
    return None


def check_cache(path, key=None, kind: str = "events") -> str | None:
    """Why ``path`` must not be served (missing, unreadable, wrong kind/schema, incomplete,
    stale key, inconsistent shapes), or None when it is a complete cache file."""
    if kind not in FORMATS:
        raise ValueError(f"kind must be one of {tuple(FORMATS)}, got {kind!r}")
    with _checked_file(path, key, kind) as (_, reason):
        return reason


@contextlib.contextmanager
def _checked_file(path, key, kind: str):
    """``(open h5py file or None, reason or None)`` for ``check_cache``'s verdict on ``path``; the
    file stays open inside the ``with`` block, so a store reads what was checked without a second open."""
    if not os.path.exists(path):
        yield None, "missing"
        return
    try:
        f = _open(path)
    except Exception as e:  # h5py raises OSError/KeyError/ValueError on damaged files
        yield None, f"unreadable ({type(e).__name__}: {e})"
        return
    with f:
        try:
            reason = _check_open_file(f, kind, key)
        except Exception as e:
            reason = f"unreadable ({type(e).__name__}: {e})"
        yield f, reason


def get_or_build(path, key: str, build, *, kind: str = "events", lock_timeout: float | None = None) -> Path:
    """Return ``path`` once it holds a complete cache for ``key``, building it at most once.

    ``build(tmp_path)`` must write a complete cache file (``EventsWriter``/``FramesWriter``) at
    ``tmp_path``. Other processes asking for the same ``path`` wait on ``<path>.lock`` and then
    read the published file. A missing, unreadable, incomplete, stale or foreign file at ``path``
    is removed (with a warning) and rebuilt; temporary files of killed builds are removed.
    Exceptions from ``build`` propagate after its temporary file is deleted.
    """
    path = Path(path)
    if check_cache(path, key, kind) is None:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(path.name + ".lock"), timeout=lock_timeout,
                  waiting=f"waiting for another process building {path}"):
        reason = check_cache(path, key, kind)
        if reason is None:
            return path
        if reason != "missing":
            warnings.warn(f"cache {path} is {reason}; removing and rebuilding it", UserWarning, stacklevel=2)
            path.unlink(missing_ok=True)
        remove_stale_temporaries(path)
        tmp = temporary_path(path)
        try:
            build(tmp)
            publish(tmp, path, key, kind)
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            code = _out_of_space(e)
            if code is not None:
                raise OSError(code, f"{os.strerror(code)} while building a cache (free space there, or choose "
                                    "another root= / NEURODATA_HOME)", str(path)) from e
            raise
    return path


def _out_of_space(e: BaseException) -> int | None:
    """The errno when ``e`` is a full disk, a file-size limit or a quota: an ``OSError``, or the
    ``RuntimeError`` through which HDF5 reports its failed writes ("... errno = 27 ...")."""
    codes = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
    if isinstance(e, OSError):
        return e.errno if e.errno in codes else None
    if isinstance(e, RuntimeError):
        m = re.search(r"errno = (\d+)", str(e))
        return int(m.group(1)) if m and int(m.group(1)) in codes else None
    return None


def open_store(store_cls, path, key: str, build):
    """``store_cls(path, key)`` (``EventsStore`` or ``FramesStore``); when that file cannot be
    served, ``get_or_build(path, key, build)`` first. A servable file is opened and checked once."""
    try:
        return store_cls(path, key)
    except CacheError:
        get_or_build(path, key, build, kind=store_cls.kind)
        return store_cls(path, key)


def temporary_path(path) -> Path:
    """Where a build of ``path`` writes first: ``.<name>.tmp-<pid>-<random>`` in the same folder
    (``get_or_build`` removes such files left by killed builds)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def remove_stale_temporaries(path) -> None:
    """Delete the temporary files that killed builds of ``path`` left (the caller holds its lock)."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        stale.unlink(missing_ok=True)


def publish(tmp, path, key: str, kind: str = "events") -> None:
    """Check the finished file ``tmp`` like a served one, ``fsync`` it and rename it to ``path``
    (atomic on one filesystem). The caller holds ``path``'s lock. Raises ``CacheError`` for an
    unusable file (left in place for the caller to delete)."""
    reason = check_cache(tmp, key, kind)
    if reason is not None:
        raise CacheError(f"the builder of {path} wrote an unusable file: {reason}")
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _index_dataset(group, name: str, data: np.ndarray, dtype=None) -> None:
    """Write an index table that readers load whole: shuffle + gzip from 4 KiB on (offsets,
    labels, segment tables and time indexes compress to a fraction; uncompressed they were 1–2 %
    of a ``huffman`` file), contiguous below; ``dtype``: a fixed-length UTF-8 type for ``data``'s
    bytes (``_string_column``)."""
    data = np.asarray(data)
    packed = data.nbytes >= 4096 and data.dtype.kind in "biufS"
    if dtype is None:
        group.create_dataset(name, data=data, **(_INDEX_FILTERS if packed else {}))
        return
    # numpy's bytes are ASCII to HDF5, which converts none to UTF-8: write them as the file type
    ds = group.create_dataset(name, shape=data.shape, dtype=dtype, **(_INDEX_FILTERS if packed else {}))
    if data.size:
        ds.id.write(h5py.h5s.ALL, h5py.h5s.ALL, data, mtype=ds.id.get_type())


def _string_column(values: list) -> tuple:
    """``(data, dtype)`` of a metadata column of strings (no NUL; ``_add_meta`` checks):
    fixed-length UTF-8, which compresses and needs no heap object per string."""
    encoded = [v.encode() for v in values]
    size = max([1] + [len(e) for e in encoded])
    return np.array(encoded, dtype=f"S{size}"), h5py.string_dtype("utf-8", size)


class _Writer:
    """Shared part of the two writers: labels, per-sample metadata, root attributes, ``complete``."""

    kind = ""

    def __init__(self, path, *, key: str, class_names=(), source_checksums=None, attrs=None, threads=None):
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        self.path = Path(path)
        self.f = _open(self.path, "w")
        self.key = key
        self.labels: list[int] = []
        self.meta: dict[str, list] = {"source": [], "t_offset": []}
        self.rows = 0
        self.offsets = [0]
        self.threads = threads or default_threads()
        self.pool = ThreadPoolExecutor(self.threads)
        self.appenders: dict[str, ChunkAppender] = {}
        a = self.f.attrs
        a["format"] = FORMATS[self.kind]
        a["schema_version"] = _SCHEMAS[self.kind]
        from . import __version__

        a["library_version"] = __version__
        a["key"] = key
        a["class_names"] = np.array([str(c) for c in class_names], dtype=h5py.string_dtype())
        a["source_checksums"] = json.dumps(dict(source_checksums or {}), sort_keys=True)
        a["extra"] = json.dumps(dict(attrs or {}), sort_keys=True, default=_jsonable)

    def _dataset(self, name: str, shape, dtype, chunk_rows: int):
        """An empty resizable shuffle+gzip dataset chunked along axis 0, fed by a ChunkAppender."""
        ds = self.f.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                                   chunks=(int(chunk_rows), *shape), **FILTERS)
        self.appenders[name] = ChunkAppender(ds, self.pool, GZIP_LEVEL)
        return ds

    def _recreate(self, name: str, shape, dtype, chunk_rows: int) -> None:
        """Replace the compressed dataset ``name`` by one of ``dtype`` holding the rows written so
        far (a rare widening: every row is read back and compressed again)."""
        app = self.appenders[name]
        app.finish()
        data = app.ds[:]
        del self.f[name]
        self._dataset(name, shape, dtype, chunk_rows)
        self.appenders[name].append(data)

    def _staged(self, name: str, dtype, narrow=None) -> None:
        """An uncompressed contiguous 1-D dataset written at ``close`` (``StagedAppender``)."""
        stage = self.path.with_name(f"{self.path.name}.{name.replace('/', '-')}.stage")
        self.appenders[name] = StagedAppender(self.f, name, dtype, stage, narrow)

    def _add_meta(self, label, source, t_offset, meta) -> None:
        i = len(self.labels)
        names = set(self.meta) - {"source", "t_offset"}
        if i and set(meta) != names:
            raise ValueError(f"sample {i}: metadata keys {sorted(meta)} differ from the first sample's {sorted(names)}")
        label, t_offset = int(label), int(t_offset)
        for k, v in [("source", source), *meta.items()]:
            if isinstance(v, str) and "\0" in v:
                raise ValueError(f"sample {i}: metadata {k!r} holds a NUL character, which HDF5 strings cannot store")
        for k in meta if i == 0 else ():
            self.meta[k] = []
        self.labels.append(label)
        self.meta["source"].append(str(source))
        self.meta["t_offset"].append(t_offset)
        for k, v in meta.items():
            self.meta[k].append(v)

    def _finish_file(self, f) -> None:
        """Last writes before ``complete`` (every dataset is written)."""

    def close(self) -> None:
        """Write labels, offsets and metadata, then set ``complete = 1`` last and close the file."""
        f = self.f
        try:
            for app in self.appenders.values():
                app.finish()
            self.pool.shutdown()
            n = len(self.labels)
            _index_dataset(f, "labels", np.asarray(self.labels, np.int64).reshape(n))
            _index_dataset(f, "offsets", np.asarray(self.offsets, np.int64))
            for k, values in self.meta.items():
                dtype = None
                if all(isinstance(v, str) for v in values):
                    data, dtype = _string_column(values)
                    data = data.reshape(n)
                else:
                    data = np.asarray(values)
                    if data.dtype.kind not in "biuf":
                        raise TypeError(f"metadata {k!r} must be numbers or strings, got {data.dtype}")
                _index_dataset(f, f"meta/{k}", data, dtype)
            f.attrs["num_samples"] = n
            f.attrs["num_rows"] = self.rows
            self._finish_file(f)
            f.flush()
            f.attrs["complete"] = 1  # last: a file without it is never served
        finally:
            self.abandon()

    def __enter__(self):
        return self

    def abandon(self) -> None:
        """Release what the build holds: staging files deleted, threads stopped, the file closed.
        ``close`` ends with it; after an error it replaces ``close`` (``complete`` stays unset,
        so the file is never served)."""
        for app in self.appenders.values():
            app.abandon()
        self.pool.shutdown(cancel_futures=True)
        self.f.close()

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.abandon()
        return False


class EventsWriter(_Writer):
    """Write an events cache sample by sample (``append``), then ``close`` (or use ``with``).

    Parameters
    ----------
    path : path of the new file (overwritten).
    key : str
        Content key (``content_key`` of everything that determines the content).
    sensor_size : (W, H, P)
        Every event must satisfy ``x < W``, ``y < H`` (and ``p < P`` when P > 1).
    class_names : sequence of str, label ``i`` is ``class_names[i]``.
    source_checksums : dict file name -> ``"md5:<hex>"``/``"sha256:<hex>"``.
    attrs : dict of JSON-able extra attributes (stored as the JSON string attribute ``extra``).
    chunk_events : int
        Rows per segment (``"huffman"``) or per HDF5 chunk (``"gzip"``), and the row granularity
        of ``time_index``.
    compression : ``"huffman"`` (default), ``"gzip"`` or None, keyword-only
        ``"huffman"``: every ~1 M events (whole samples) get their own Huffman codes, and the coded
        bytes of each sample are read and decoded alone (smallest file and fast random reads; see
        ``neurodata._huffman`` and ``docs/cache.md``). ``"gzip"``: shuffle + gzip level 1 in
        ``chunk_events`` chunks, which any HDF5 reader inflates (a random read inflates every
        chunk the sample touches). None: contiguous, unfiltered columns (largest file). Stored as
        the root attribute ``compression`` (``"huffman"`` / ``"gzip"`` / ``"none"``); see
        ``docs/cache.md`` for measured sizes and speeds. ``"huffman"`` and None stage their data
        in ``<path>.events-*.stage`` files next to ``path`` while writing (removed on close or
        error).
    """

    kind = "events"

    def __init__(self, path, *, key, sensor_size, class_names=(), source_checksums=None, attrs=None,
                 chunk_events: int = CHUNK_EVENTS, threads=None, compression: str | None = "huffman"):
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        super().__init__(path, key=key, class_names=class_names, source_checksums=source_checksums, attrs=attrs,
                         threads=threads)
        self.compression = compression
        self.f.attrs["compression"] = compression or "none"
        self.sensor_size = check_sensor_size(sensor_size)
        W, H, _ = self.sensor_size
        self.f.attrs["sensor_size"] = np.array(self.sensor_size, np.int64)
        self.xyp_bits = 8 if max(W, H) <= 256 else 16
        self.f.attrs["xyp_bits"] = self.xyp_bits
        self.chunk_events = int(chunk_events)
        self.f.create_group("events")
        xyp = "<u4" if self.xyp_bits == 8 else "<u8"
        if compression == "huffman":
            self._staged("events/code", np.uint8)
            self._coded: list = []    # (first row, future of encode_block), in order
            self._blocks: list = []   # (first row, first byte, Block) written so far
            self._code_bytes = 0
        elif compression is None:  # dt staged as int64, stored as int32 when every delta fits
            self._staged("events/dt", np.int64, narrow=np.int32)
            self._staged("events/xyp", xyp)
        else:
            self._dataset("events/dt", (), np.int32, self.chunk_events)
            self._dataset("events/xyp", (), xyp, self.chunk_events)
        self._block = np.empty(_FLUSH_EVENTS, EVENT_DTYPE)  # appended samples, copied
        self._counts: list[int] = []
        self._buffered = 0
        self._flushed = 0
        self._chunk_t: list[np.ndarray] = []
        self._spans: list[tuple[int, int, bool]] = []
        self._annotations: list[np.ndarray] | None = None

    def append(self, events, label: int, source: str = "", t_offset: int = 0, annotations=None,
               **meta) -> None:
        """Add one sample: ``events`` (``EVENT_DTYPE``-compatible, t in µs from the sample's origin),
        its integer ``label``, the archive member it came from and the µs offset removed from t.

        ``annotations`` (optional, all samples or none): a 1-D structured array of per-sample
        records with an integer field ``t`` (µs, the sample's timebase), e.g. detection boxes;
        every sample's array must have the first sample's dtype (an empty array is fine).
        """
        ev = as_events(events)
        bad, t_min, t_max, ordered = _scan_sample(ev, *self.sensor_size)
        if bad >= 0:
            check_bounds(ev, self.sensor_size, name=f"sample {len(self.labels)}")  # raises, naming event `bad`
        self._add_annotations(annotations)
        self._add_meta(label, source, t_offset, meta)
        self._spans.append((t_min, t_max, ordered))
        n = ev.shape[0]
        if self._buffered + n > self._block.shape[0]:
            self._flush()
            if n > self._block.shape[0]:
                self._block = np.empty(n, EVENT_DTYPE)
        # a copy (the caller may reuse its array), as bytes: numpy copies packed records field by field
        size = EVENT_DTYPE.itemsize
        self._block.view(np.uint8)[self._buffered * size:(self._buffered + n) * size] = \
            np.ascontiguousarray(ev).view(np.uint8)
        self._buffered += n
        self._counts.append(n)
        self.rows += n
        self.offsets.append(self.rows)

    def _flush(self) -> None:
        """Hand the buffered samples (one block) to the encoder."""
        if not self._counts:
            return
        counts = np.array(self._counts, np.int64)
        ev = self._block[:self._buffered]
        self._block = np.empty(_FLUSH_EVENTS, EVENT_DTYPE)  # ev may still be read by a thread
        self._counts, self._buffered = [], 0
        if self.compression == "huffman":
            self._coded.append((self._flushed, self.pool.submit(_huffman.encode_block, ev, counts, self._flushed,
                                                                self.chunk_events)))
            if len(self._coded) > 2 * self.threads:  # bounds the memory of blocks in flight
                self._take_coded(len(self._coded) - self.threads)
        else:
            self._encode_columns(ev, counts)
        self._chunk_t.append(chunk_times(ev["t"], self._flushed, self.chunk_events))
        self._flushed += ev.shape[0]

    def _take_coded(self, count: int) -> None:
        """Write the first ``count`` coded blocks."""
        ready, self._coded = self._coded[:count], self._coded[count:]
        for first_row, fut in ready:
            block = fut.result()
            self.appenders["events/code"].append(block.data)
            # the index needs the tables and segments, not the coded bytes (staged now)
            self._blocks.append((first_row, self._code_bytes, block._replace(data=None)))
            self._code_bytes += block.data.shape[0]

    def _write_huffman_index(self) -> None:
        """``events/segments``, ``segment_crc32``, ``block_lengths`` and ``block_p_bits``."""
        self._take_coded(len(self._coded))
        K = len(self._blocks)
        parts = [np.column_stack([row + b.seg_rows, byte + b.seg_bytes, np.full(b.seg_rows.shape[0], k)])
                 for k, (row, byte, b) in enumerate(self._blocks)]
        B = self._code_bytes
        parts.append(np.array([[self.rows, B, B, B, K]], np.int64))
        g = self.f["events"]
        index = dict(segments=np.concatenate(parts).astype(np.int64),
                     segment_crc32=np.concatenate([np.zeros(0, np.uint32)] + [b.crc for _, _, b in self._blocks]),
                     block_lengths=np.stack([b.lengths for _, _, b in self._blocks]) if K else
                     np.zeros((0, _huffman.TABLES, _huffman.SYMBOLS), np.uint8),
                     block_p_bits=np.array([b.p_bits for _, _, b in self._blocks], np.uint8))
        for name, data in index.items():
            _index_dataset(g, name, data)

    def _encode_columns(self, ev: np.ndarray, counts: np.ndarray) -> None:
        """The ``gzip`` / None layouts: append the dt and xyp columns of a block."""
        dt = np.empty(ev.shape[0], np.int64)
        xyp = np.empty(ev.shape[0], "<u4" if self.xyp_bits == 8 else "<u8")
        lo, hi = _encode_kernel(ev, counts, self.xyp_bits, dt, xyp)
        narrow = self.compression and self.appenders["events/dt"].ds.dtype == np.int32  # None: staged as int64
        if narrow and (lo < -2**31 or hi >= 2**31):
            self._recreate("events/dt", (), np.int64, self.chunk_events)  # a delta beyond ±2**31 µs
        self.appenders["events/dt"].append(dt)
        self.appenders["events/xyp"].append(xyp)

    def _add_annotations(self, annotations) -> None:
        i = len(self.labels)
        if i == 0 and annotations is not None:
            self._annotations = []
        if (annotations is None) != (self._annotations is None):
            raise ValueError(f"sample {i}: annotations must be given for every sample or for none")
        if annotations is None:
            return
        a = np.asarray(annotations)
        if a.ndim != 1 or a.dtype.names is None or "t" not in a.dtype.names or a.dtype["t"].kind not in "iu":
            raise ValueError(f"sample {i}: annotations must be a 1-D structured array with an integer "
                             f"field 't', got dtype {a.dtype} and shape {a.shape}")
        if self._annotations and a.dtype != self._annotations[0].dtype:
            raise ValueError(f"sample {i}: annotations dtype {a.dtype} differs from the first sample's "
                             f"{self._annotations[0].dtype}")
        self._annotations.append(a)

    def _write_time_index(self) -> None:
        g = self.f.create_group("time_index")
        g.attrs["rows_per_entry"] = self.chunk_events
        spans = np.asarray(self._spans, dtype=np.int64).reshape(-1, 3)
        chunk_t = np.concatenate(self._chunk_t) if self._chunk_t else np.zeros(0, np.int64)
        _index_dataset(g, "chunk_t", chunk_t.astype(np.int64))
        _index_dataset(g, "t_min", spans[:, 0])
        _index_dataset(g, "t_max", spans[:, 1])
        _index_dataset(g, "sorted", spans[:, 2].astype(np.uint8))
        if self._annotations is not None:
            counts = [a.shape[0] for a in self._annotations]
            values = np.concatenate(self._annotations)
            self.f.create_dataset("annotations/values", data=values)
            self.f.create_dataset("annotations/offsets", data=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

    def close(self) -> None:
        try:
            self._flush()
            if self.compression == "huffman":
                self._write_huffman_index()
            self._write_time_index()
        except BaseException:  # e.g. a full disk while the last rows are staged: nothing left behind
            self.abandon()
            raise
        super().close()

    def _finish_file(self, f) -> None:
        if self.compression == "huffman":
            f["events"].attrs["index_crc32"] = _index_crc(f)
        else:
            f.attrs["index_crc32"] = _index_crc(f, _tables(f))


@njit(cache=True, nogil=True)
def _scan_sample(ev, W, H, P):
    """One pass over a sample (EVENT_DTYPE): ``(first index with x >= W, y >= H or, when P > 1,
    p >= P, else -1; t_min; t_max; t never decreases)``, ``(-1, 0, 0, True)`` when empty. The
    last three are the sample's ``time_index`` entries."""
    n = ev.shape[0]
    if n == 0:
        return -1, 0, 0, True
    bad = -1
    t_min = t_max = prev = ev[0]["t"]
    ordered = True
    for i in range(n):
        e = ev[i]
        t = e["t"]
        if bad < 0 and (e["x"] >= W or e["y"] >= H or (P > 1 and e["p"] >= P)):
            bad = i
        if t < prev:
            ordered = False
        prev = t
        t_min = min(t_min, t)
        t_max = max(t_max, t)
    return bad, t_min, t_max, ordered


@njit(cache=True, nogil=True)
def _encode_kernel(ev, counts, bits, dt, xyp):
    """The two columns of the samples joined in ``ev`` (EVENT_DTYPE; sample sizes ``counts``):
    ``dt[i]`` = ``t[i]`` minus the previous ``t`` of its sample (minus 0 for a sample's first row;
    int64, wrapping like numpy) and ``xyp[i]`` = ``x | y << bits | p << 2*bits``, whose
    little-endian ``bits``-wide words are ``(x, y, p, 0)``. Returns the smallest and largest delta
    (0 and 0 when there is none)."""
    lo = np.int64(0)
    hi = np.int64(0)
    i = 0
    shift_y = np.uint64(bits)
    shift_p = np.uint64(2 * bits)
    for c in counts:
        prev = np.int64(0)
        for _ in range(c):
            t = ev[i]["t"]
            d = t - prev
            prev = t
            dt[i] = d
            if d < lo:
                lo = d
            if d > hi:
                hi = d
            xyp[i] = (np.uint64(ev[i]["x"]) | (np.uint64(ev[i]["y"]) << shift_y)
                      | (np.uint64(ev[i]["p"]) << shift_p))
            i += 1
    return lo, hi


def write_events_cache(path, samples, **options) -> int:
    """Write ``samples`` (iterable of ``(events, label, meta)``; ``meta`` a dict with ``source``,
    ``t_offset`` and any further scalar fields) with ``EventsWriter(path, **options)``; return N."""
    with EventsWriter(path, **options) as w:
        for events, label, meta in samples:
            w.append(events, label, **dict(meta or {}))
        return len(w.labels)


class _Store:
    """Shared reader: validates on construction, opens the HDF5 file lazily once per process."""

    kind = ""

    def __init__(self, path, key: str | None = None):
        self.path = Path(path).absolute()
        self.key = key
        self._h5 = None
        self._pid = None
        self._meta, self._meta_names = {}, None
        with _checked_file(self.path, key, self.kind) as (f, reason):  # one open: checked, then read
            if reason is not None:
                raise CacheError(f"{self.path} cannot be served: {reason}. Delete it (`neurodata cache rm`) "
                                 "or let the dataset rebuild it")
            self._identity = _identity(f)  # the file checked here; _file() reopens only it
            try:
                self.offsets = f["offsets"][:]
                self.labels = f["labels"][:]
                a = f.attrs
                self.attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in a.items()}
                self.class_names = tuple(_attr_str(c) for c in a["class_names"])
                self.source_checksums = json.loads(_attr_str(a["source_checksums"]))
                self.extra = json.loads(_attr_str(a["extra"]))
                self._load(f)
            except (KeyError, ValueError, TypeError, OSError) as e:
                raise CacheError(f"{self.path} cannot be served: it is damaged ({e}). Delete it "
                                 "(`neurodata cache rm`) or let the dataset rebuild it") from None

    def _load(self, f) -> None:
        """Read what a subclass keeps in memory from the checked, open file ``f``."""

    @classmethod
    def open_or_build(cls, path, key: str, samples, **writer_options):
        """The store of ``path``, first built by ``get_or_build`` when it cannot be served as it is;
        ``samples`` is a zero-argument callable, called only for a build, whose samples go to
        ``write_events_cache`` / ``write_frames_cache`` (``cls.kind``) with ``writer_options``."""
        write = write_events_cache if cls.kind == "events" else write_frames_cache
        return open_store(cls, path, key, lambda tmp: write(tmp, samples(), key=key, **writer_options))

    def _file(self):
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = self._pid = None  # a handle inherited through fork is never used
            try:
                f = _open(self.path)
                try:
                    if _identity(f) != self._identity:  # replaced or rebuilt since it was checked
                        raise CacheError(f"{self.path} was replaced after this dataset was opened (another "
                                         "process rebuilt or removed it); open the dataset again")
                    self._bind(f)
                except BaseException:
                    f.close()
                    raise
            except FileNotFoundError:
                raise CacheError(f"{self.path} was removed after this dataset was opened (e.g. `neurodata "
                                 "cache rm`); open the dataset again to rebuild it") from None
            self._h5, self._pid = f, os.getpid()
        return self._h5

    def _bind(self, f) -> None:
        pass

    def meta_names(self) -> list[str]:
        """Names of the per-sample metadata columns (``source``, ``t_offset`` and any extras)."""
        if self._meta_names is None:
            self._meta_names = list(self._file()["meta"].keys())
        return list(self._meta_names)

    def meta(self, name: str) -> np.ndarray:
        """Per-sample metadata column ``name`` (``"source"``, ``"t_offset"``, ...), shape (N,); read
        once per process and kept (``metadata(i)`` of every sample read the whole column each
        time: 19 ms per call with 100 000 samples). Do not modify the returned array."""
        col = self._meta.get(name)
        if col is None:
            data = self._file()[f"meta/{name}"]
            col = self._meta[name] = data.asstr()[:] if h5py.check_string_dtype(data.dtype) else data[:]
        return col

    def __len__(self) -> int:
        return self.labels.shape[0]

    def _index(self, i) -> int:
        n = len(self)
        try:
            i = operator.index(i)  # ints, numpy ints, integer 0-d tensors; not 2.7 (int() truncated it)
        except TypeError:
            raise TypeError(f"a sample index is an integer, got {i!r}") from None
        if not -n <= i < n:
            raise IndexError(f"sample index {i} out of range for {n} samples in {self.path}")
        return i % n

    def close(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = self._pid = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_h5"] = state["_pid"] = None
        state["_meta"] = {}  # read again where needed, not sent to every worker
        for k in [k for k in state if k.startswith("_ds")]:
            del state[k]
        return state

    def __repr__(self):
        return f"{type(self).__name__}({str(self.path)!r}, samples={len(self)})"


@njit(cache=True, nogil=True)
def _assemble_kernel(dt, words, out):
    """``out[i]`` (EVENT_DTYPE) = (cumsum(dt)[i] (int64, wrapping like numpy), words[i, 0/1/2]);
    equal lengths. One record array instead of four field views: less call overhead per read."""
    acc = np.int64(0)
    for i in range(dt.shape[0]):
        acc += dt[i]
        out[i]["t"] = acc
        out[i]["x"] = words[i, 0]
        out[i]["y"] = words[i, 1]
        out[i]["p"] = words[i, 2]


class _PreadFile:
    """``fd``: the file at ``path`` opened read-only for ``os.pread``, closed by ``close()`` or, at
    the latest, when this object is garbage-collected (a store dropped without ``close()``)."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY)
        self.close = weakref.finalize(self, os.close, self.fd)  # runs once, however often called


def _pread_into(fd: int, buf: np.ndarray, offset: int) -> int:
    """Read ``len(buf)`` bytes at ``offset`` into the uint8 array ``buf``; return the count read."""
    if hasattr(os, "preadv"):  # Linux, BSDs: straight into buf
        return os.preadv(fd, [buf], offset)
    data = os.pread(fd, buf.shape[0], offset)  # e.g. macOS
    buf[:len(data)] = np.frombuffer(data, np.uint8)
    return len(data)


class _HuffmanReader:
    """One process's reader of a ``huffman`` events cache: the segment index, decoding tables and
    a plain file descriptor; ``events/code`` is contiguous and unfiltered, so its bytes are read
    with ``os.preadv`` at the dataset's file offset, without HDF5 (checked against h5py once)."""

    def __init__(self, f, path, offsets: np.ndarray, sensor_size):
        code = f["events/code"]
        self.segs = f["events/segments"][:]
        self.rows = np.ascontiguousarray(self.segs[:, 0])
        self.crc = f["events/segment_crc32"][:]
        self.p_bits = f["events/block_p_bits"][:]
        lengths = f["events/block_lengths"][:]
        self.tables = np.zeros((lengths.shape[0], _huffman.TABLES, _huffman.SYMBOLS), np.uint16)
        for k in range(lengths.shape[0]):
            self.tables[k] = _huffman.decoder(lengths[k])
        self.reset = np.isin(self.rows[:-1], offsets).astype(np.uint8)
        self.sample_segments = self.rows.searchsorted(offsets)  # sample i: segments [i] .. [i + 1] - 1
        self.sizes = sensor_size
        self.path = path
        self.file = _PreadFile(path)
        self.fd = self.file.fd
        self.base = code.id.get_offset() if code.shape[0] else 0
        head = min(64, code.shape[0])
        if head and os.pread(self.fd, head, self.base) != code[:head].tobytes():
            self.close()
            raise CacheError(f"{path}: events/code is not stored where HDF5 reports it")

    def read(self, a: int, b: int, t_first=None, what: str = "") -> np.ndarray:
        """Rows ``[a, b)`` (segment boundaries) as EVENT_DTYPE; ``t_first``: see ``EventsStore._rows``."""
        s0, s1 = int(self.rows.searchsorted(a)), int(self.rows.searchsorted(b))
        if self.rows[s0] != a or self.rows[s1] != b:
            raise CacheError(f"{self.path}: rows {a}..{b} do not start and end segments")
        return self.read_segments(s0, s1, b - a, t_first, what)

    def read_segments(self, s0: int, s1: int, rows: int, t_first=None, what: str = "") -> np.ndarray:
        """The ``rows`` events of segments ``s0..s1-1``."""
        if int(self.segs[s1, 0] - self.segs[s0, 0]) != rows:  # the decoder writes as many as they hold
            raise CacheError(f"{self.path}: {what}: segments {s0}..{s1 - 1} hold "
                             f"{int(self.segs[s1, 0] - self.segs[s0, 0])} events, the sample index says {rows}; "
                             "the file is damaged or was replaced: open the dataset again")
        b0, b1 = int(self.segs[s0, 1]), int(self.segs[s1, 1])
        words = np.zeros(((b1 - b0) >> 3) + 5, np.uint64)  # zero tail: the decoder reads ahead
        raw = words.view(np.uint8)[:b1 - b0]
        if b1 > b0 and _pread_into(self.fd, raw, self.base + b0) != b1 - b0:
            raise CacheError(f"{self.path}: {what} cannot be read (the file is truncated); delete it "
                             "(`neurodata cache rm`) to rebuild")
        ends = self.segs[s0:s1 + 1, 1] - b0
        for s in range(s0, s1):
            if crc32(raw[ends[s - s0]:ends[s - s0 + 1]]) != self.crc[s]:
                raise CacheError(f"{self.path}: {what} is damaged (CRC-32 of segment {s}); delete the file "
                                 "(`neurodata cache rm`) to rebuild")
        out = np.empty(rows, EVENT_DTYPE)
        status, s = _huffman.decode(words, b0 * 8, self.segs, self.reset, s0, s1, self.tables, self.p_bits,
                                    _huffman.DT_TABLE, 0 if t_first is None else int(t_first), t_first is not None,
                                    *self.sizes, out)
        if status != _huffman.OK:
            raise CacheError(f"{self.path}: {what} does not decode (segment {s}, status {status}); the file "
                             "is damaged: delete it (`neurodata cache rm`) to rebuild")
        return out

    def close(self) -> None:
        self.file.close()


def _chunk_rows(ds, a: int, b: int) -> np.ndarray:
    """Rows ``[a, b)`` of the shuffle + deflate dataset ``ds``: its chunks read by ``read_chunks``."""
    c = ds.chunks[0]
    k0 = a // c
    return read_chunks(ds, k0, -(-b // c))[a - k0 * c:b - k0 * c]


class EventsStore(_Store):
    """Read an events cache: ``store[i] -> (events ndarray[EVENT_DTYPE] (n_i,), label int)``.

    Attributes: ``labels`` (int64, (N,)), ``offsets`` (int64, (N+1,)), ``sensor_size``,
    ``class_names``, ``source_checksums``, ``extra``, ``attrs`` (all root attributes). Safe to pickle
    and to use from DataLoader workers (fork or spawn): each process opens its own handle.
    Raises ``CacheError`` when the file is incomplete, stale (``key`` given and different) or damaged.
    """

    kind = "events"

    def __init__(self, path, key: str | None = None):
        super().__init__(path, key)
        self.sensor_size = tuple(int(v) for v in self.attrs["sensor_size"])
        self._chunk_t = None
        self.layout = _attr_str(self.attrs["compression"])  # "huffman", "gzip" or "none"
        self._hf = self._hf_pid = None

    def _load(self, f) -> None:
        self.t_min = self.t_max = self.t_sorted = None
        if "time_index" in f:
            g = f["time_index"]
            self._rows_per_entry = int(g.attrs["rows_per_entry"])
            self.t_min, self.t_max = g["t_min"][:], g["t_max"][:]
            self.t_sorted = g["sorted"][:].astype(bool)
        self.has_annotations = "annotations" in f
        self._ann_offsets = f["annotations/offsets"][:] if self.has_annotations else None

    def __getstate__(self):
        state = super().__getstate__()
        state["_chunk_t"] = None  # reloaded on first use: keeps pickles (DataLoader workers) small
        state["_hf"] = state["_hf_pid"] = None  # per process, like the h5py handle
        return state

    @property
    def has_time_index(self) -> bool:
        """True when the file has a ``time_index`` (files written by neurodata before it lack one)."""
        return self.t_min is not None

    def _bind(self, f) -> None:
        if self.layout == "huffman":
            if self._hf is not None and self._hf_pid == os.getpid():
                self._hf.close()
            self._hf = _HuffmanReader(f, self.path, self.offsets, self.sensor_size)
            self._hf_pid = os.getpid()
            return
        self._ds = (f["events/dt"], f["events/xyp"])
        self._xyp_word = np.dtype("u1" if int(self.attrs["xyp_bits"]) == 8 else "<u2")
        # gzip layout: chunks read and inflated here (read_chunks), which checks each chunk's filter
        # mask and length; h5py's slicing returned fill zeros or undecoded bytes when a flipped byte
        # in the chunk index marked a chunk missing or its filters skipped
        self._direct = all(shuffle_deflate_rows(ds) for ds in self._ds)

    def close(self) -> None:
        if self._hf is not None and self._hf_pid == os.getpid():
            self._hf.close()
        self._hf = None
        super().close()

    def _rows(self, i, a: int, b: int, t_first=None) -> np.ndarray:
        """Decode rows ``[a, b)`` of sample ``i``; ``t_first`` is the absolute t of row ``a``
        (None: row ``a`` starts the sample, its delta counts from 0)."""
        if b == a:
            return np.empty(0, EVENT_DTYPE)
        if self._pid != os.getpid():  # the hot path only reuses this process's bound datasets
            self._file()
        if self.layout == "huffman":
            if t_first is None and a == self.offsets[i] and b == self.offsets[i + 1]:  # a whole sample
                ss = self._hf.sample_segments
                return self._hf.read_segments(int(ss[i]), int(ss[i + 1]), b - a, None, f"sample {i}")
            return self._hf.read(a, b, t_first, f"sample {i}")
        dt, xyp = self._ds
        try:
            if self._direct:
                deltas, xyp_rows = (_chunk_rows(ds, a, b) for ds in self._ds)
            else:
                deltas, xyp_rows = dt[a:b], xyp[a:b]
            words = xyp_rows.view(self._xyp_word).reshape(b - a, 4)  # little-endian (x, y, p, 0)
        except (OSError, RuntimeError) as e:  # RuntimeError: HDF5 on a damaged chunk index
            raise CacheError(f"{self.path}: sample {i} cannot be read ({e}); the file is damaged: "
                             "delete it (`neurodata cache rm`) to rebuild") from None
        if t_first is not None:
            deltas = deltas.astype(np.int64)
            deltas[0] = t_first
        out = np.empty(b - a, EVENT_DTYPE)
        _assemble_kernel(deltas, words, out)
        return out

    def __getitem__(self, i):
        i = self._index(i)
        return self._rows(i, int(self.offsets[i]), int(self.offsets[i + 1])), int(self.labels[i])

    def iter_samples(self, block_rows: int = 1 << 21, threads: int | None = None):
        """Yield ``(events, label)`` for every sample, in order: what ``store[i]`` returns for
        ``i = 0..N-1``, read faster for a whole pass (e.g. building a frames cache).

        Consecutive samples are read in blocks of at most ``block_rows`` rows (or one larger
        sample). ``threads`` threads (default ``NEURODATA_THREADS`` / usable CPUs) read and decode
        the next blocks (``huffman``: whole blocks, one per thread; ``gzip``: the chunks of one
        block) while the current block's samples are used. In the ``huffman`` layout the samples
        of a block are views of one array. Raises ``CacheError`` for a damaged block.
        """
        offsets, n = self.offsets, len(self)
        workers = threads or default_threads()
        huffman = self.layout == "huffman"
        step = max(1, int(block_rows) // (workers if huffman else 1))
        blocks, i = [], 0
        while i < n:
            j = int(np.searchsorted(offsets, offsets[i] + step, "right")) - 1
            blocks.append((i, min(n, max(i + 1, j))))
            i = blocks[-1][1]
        self._file()
        if huffman:
            yield from self._iter_huffman(blocks, workers)
            return
        chunked = self._ds[0].chunks is not None
        with ThreadPoolExecutor(workers) as pool:
            def submit(i, j):  # -> (first row the columns hold, one list of futures per column)
                a, b = int(offsets[i]), int(offsets[j])
                if not chunked or a == b:
                    return a, [[pool.submit(ds.__getitem__, slice(a, b))] for ds in self._ds]
                c = self._ds[0].chunks[0]
                cuts = np.linspace(a // c, -(-b // c), min(workers, -(-b // c) - a // c) + 1).astype(np.int64)
                return a // c * c, [[pool.submit(read_chunks, ds, int(u), int(v)) for u, v in zip(cuts, cuts[1:])]
                                    for ds in self._ds]
            pending = submit(*blocks[0]) if blocks else None
            for q, (i, j) in enumerate(blocks):
                base, columns = pending
                pending = submit(*blocks[q + 1]) if q + 1 < len(blocks) else None
                try:
                    dt, xyp = (np.concatenate([f.result() for f in futures]) for futures in columns)
                except (OSError, RuntimeError) as e:  # RuntimeError: HDF5 on a damaged chunk index
                    raise CacheError(f"{self.path}: samples {i}..{j - 1} cannot be read ({e}); the file is "
                                     "damaged: delete it (`neurodata cache rm`) to rebuild") from None
                words = xyp.view(self._xyp_word).reshape(-1, 4)
                for k in range(i, j):
                    a, b = int(offsets[k]) - base, int(offsets[k + 1]) - base
                    out = np.empty(b - a, EVENT_DTYPE)
                    _assemble_kernel(dt[a:b], words[a:b], out)
                    yield out, int(self.labels[k])

    def _iter_huffman(self, blocks, workers: int):
        offsets = self.offsets
        with ThreadPoolExecutor(workers) as pool:
            def submit(i, j):
                a, b = int(offsets[i]), int(offsets[j])
                return pool.submit(self._hf.read, a, b, None, f"samples {i}..{j - 1}")
            pending = [submit(*blk) for blk in blocks[:workers + 1]]
            for q, (i, j) in enumerate(blocks):
                ev = pending.pop(0).result()
                if q + workers + 1 < len(blocks):
                    pending.append(submit(*blocks[q + workers + 1]))
                base = int(offsets[i])
                for k in range(i, j):
                    yield ev[int(offsets[k]) - base:int(offsets[k + 1]) - base], int(self.labels[k])

    def window_rows(self, i, t_start: int, t_stop: int) -> tuple[int, int]:
        """The rows ``[lo, hi)`` that ``read_window(i, t_start, t_stop)`` decodes (see
        ``neurodata._timeindex``): all of sample ``i`` without a time index or when it is unsorted."""
        i = self._index(i)
        return self._window_plan(i, int(t_start), int(t_stop))[:2]

    def _window_plan(self, i: int, t_start: int, t_stop: int):
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        if not self.has_time_index or not self.t_sorted[i]:
            return a, b, None, False
        if t_stop <= t_start or b == a or t_start > self.t_max[i] or t_stop <= self.t_min[i]:
            return a, a, None, True
        if self._chunk_t is None:
            with _open(self.path) as f:
                self._chunk_t = f["time_index/chunk_t"][:]
        lo, hi, base = window_rows(a, b, self._chunk_t, self._rows_per_entry, t_start, t_stop)
        return lo, hi, base, True

    def read_window(self, i, t_start: int, t_stop: int) -> np.ndarray:
        """Events of sample ``i`` with ``t_start <= t < t_stop`` (µs, the sample's timebase), in
        stored order, t unchanged.

        With a time index and a sorted sample, only the chunks holding the window (plus at most
        one chunk on each side) are read, whatever the sample's length. Otherwise the whole
        sample is read and masked (same result).
        """
        i = self._index(i)
        t_start, t_stop = int(t_start), int(t_stop)
        lo, hi, base, indexed = self._window_plan(i, t_start, t_stop)
        ev = self._rows(i, lo, hi, base)
        t = ev["t"]
        if indexed:
            return ev[np.searchsorted(t, t_start, "left"):np.searchsorted(t, t_stop, "left")]
        return ev[(t >= t_start) & (t < t_stop)]

    def annotations(self, i) -> np.ndarray:
        """The structured per-sample records of sample ``i`` (``annotations/values``), e.g. boxes."""
        if not self.has_annotations:
            raise KeyError(f"{self.path} holds no annotations")
        i = self._index(i)
        a, b = int(self._ann_offsets[i]), int(self._ann_offsets[i + 1])
        return self._file()["annotations/values"][a:b]

    def annotation_times(self) -> tuple[np.ndarray, np.ndarray]:
        """``(t, offsets)``: the ``t`` field of every annotation (int64) and the per-sample offsets."""
        if not self.has_annotations:
            raise KeyError(f"{self.path} holds no annotations")
        values = self._file()["annotations/values"]
        t = values.fields("t")[:] if values.shape[0] else np.zeros(0, np.int64)
        return np.asarray(t, dtype=np.int64), self._ann_offsets


_NARROW = (np.dtype(np.uint8), np.dtype("<u2"))  # frames storage narrower than the served dtype


def _chunk_positions(table, frames) -> np.ndarray | None:
    """The ``frames_chunks`` table when it can be trusted for ``frames``: right shape, its CRC-32
    attribute matches, and its first and last chunks are where HDF5's chunk index puts them (a
    file rewritten by a tool such as h5repack moves chunks); else None (reads then ask HDF5)."""
    c = frames.chunks[0]
    K = -(-frames.shape[0] // c)
    data = table[()]
    if data.shape != (K, 2) or crc32(data.astype("<i8").tobytes()) != int(table.attrs.get("crc32", -1)):
        return None
    for k in {0, K - 1} if K else ():
        try:
            info = frames.id.get_chunk_info_by_coord((k * c, *(0,) * (frames.ndim - 1)))
        except AttributeError:  # an h5py built against HDF5 < 1.10.5
            return None
        if (info.byte_offset, info.size) != tuple(int(v) for v in data[k]) or info.filter_mask:
            return None
    return data


def _served_dtype(attrs, stored):
    """The dtype a frames file serves (attribute ``dtype``), or None when ``stored`` cannot hold it
    exactly (only itself or a narrower unsigned integer from ``_NARROW`` can)."""
    try:
        served = np.dtype(_attr_str(attrs["dtype"]))
    except (KeyError, TypeError):
        return None
    ok = stored == served or (stored in _NARROW and stored.itemsize < served.itemsize and served.kind in "uif")
    return served if ok else None


def _fits(frames: np.ndarray, dtype: np.dtype) -> bool:
    """True when every value of ``frames`` survives ``astype(dtype)`` and back unchanged, bit for
    bit (``dtype`` an unsigned integer type: no negatives, no -0.0, no fractions, NaN or inf)."""
    if frames.size == 0 or frames.dtype == dtype:
        return True
    if frames.min() < 0 or frames.max() > np.iinfo(dtype).max:
        return False
    if frames.dtype.kind == "f":
        return not np.signbit(frames).any() and np.array_equal(frames, np.trunc(frames))
    return True


class FramesWriter(_Writer):
    """Write a frames cache: ``append(frames (T, P, H, W), label, ...)`` with one shape (P, H, W)
    and dtype for the whole file; T may vary per sample. Options as ``EventsWriter`` plus ``params``
    and ``semantics_version`` (stored as attributes) and ``chunk_bytes`` (target raw chunk size).

    Frames are stored as the narrowest of uint8, uint16 and ``dtype`` that holds every value
    written exactly (counts usually fit uint8: a quarter of float32's bytes to deflate and inflate)
    and served as ``dtype`` (root attribute ``dtype``); the first sample that does not fit widens
    the stored dataset, rewriting what was written before.
    """

    kind = "frames"

    def __init__(self, path, *, key, frame_shape, dtype, params, semantics_version, class_names=(),
                 source_checksums=None, attrs=None, chunk_bytes: int = 1 << 18, threads=None):
        super().__init__(path, key=key, class_names=class_names, source_checksums=source_checksums, attrs=attrs,
                         threads=threads)
        self.frame_shape = tuple(int(v) for v in frame_shape)
        if len(self.frame_shape) != 3 or min(self.frame_shape) < 1:
            raise ValueError(f"frame_shape must be (P, H, W) of positive ints, got {frame_shape!r}")
        self.dtype = np.dtype(dtype)
        per_frame = self.dtype.itemsize * int(np.prod(self.frame_shape))
        self._chunk_rows = int(min(64, max(1, chunk_bytes // per_frame)))
        self._stored = [d for d in _NARROW if d.itemsize < self.dtype.itemsize and self.dtype.kind in "uif"]
        self._stored.append(self.dtype)
        self._dataset("frames", self.frame_shape, self._stored[0], self._chunk_rows)
        a = self.f.attrs
        a["frame_shape"] = np.array(self.frame_shape, np.int64)
        a["dtype"] = self.dtype.str
        a["params"] = json.dumps(dict(params), sort_keys=True, default=_jsonable)
        a["semantics_version"] = str(semantics_version)

    def append(self, frames, label: int, source: str = "", t_offset: int = 0, **meta) -> None:
        """Add one sample: ``frames`` ``(T, P, H, W)`` (``T`` may differ per sample; ``(P, H, W)``
        the writer's ``frame_shape``; values the served ``dtype`` holds exactly), its integer
        ``label``, the archive member it came from and the µs offset removed from its events' t."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[1:] != self.frame_shape:
            raise ValueError(f"sample {len(self.labels)}: frames must have shape (T, {', '.join(map(str, self.frame_shape))}), "
                             f"got {frames.shape}")
        if not np.can_cast(frames.dtype, self.dtype, casting="same_kind"):
            raise TypeError(f"sample {len(self.labels)}: frames dtype {frames.dtype} does not fit {self.dtype}")
        frames = frames.astype(self.dtype, copy=False)
        self._add_meta(label, source, t_offset, meta)
        while not _fits(frames, self._stored[0]):
            self._stored.pop(0)
            self._recreate("frames", self.frame_shape, self._stored[0], self._chunk_rows)
        self.appenders["frames"].append(frames)
        self.rows += frames.shape[0]
        self.offsets.append(self.rows)

    def _finish_file(self, f) -> None:
        """``frames_chunks``: the file offset and size of every chunk of ``frames``, so that
        ``FramesStore`` reads a chunk with one ``pread`` instead of a lookup in HDF5's chunk index."""
        table = chunk_table(f["frames"])
        if table is not None:
            _index_dataset(f, "frames_chunks", table)
            f["frames_chunks"].attrs["crc32"] = crc32(table.astype("<i8").tobytes())
        f.attrs["index_crc32"] = _index_crc(f, _tables(f))


def write_frames_cache(path, samples, **options) -> int:
    """Write ``samples`` (iterable of ``(frames, label, meta)``) with ``FramesWriter``; return N."""
    with FramesWriter(path, **options) as w:
        for frames, label, meta in samples:
            w.append(frames, label, **dict(meta or {}))
        return len(w.labels)


class FramesStore(_Store):
    """Read a frames cache: ``store[i] -> (frames ndarray (T_i, P, H, W), label int)``, frames in
    the file's served dtype (``dtype``, the writer's; stored narrower when exact).

    Also ``dtype``, ``frame_shape``, ``params`` (dict), ``semantics_version`` and the attributes of
    ``EventsStore``. ``key`` should be ``frames_key(params, semantics_version, source_key)``.
    """

    kind = "frames"

    def __init__(self, path, key: str | None = None):
        super().__init__(path, key)
        self.dtype = np.dtype(_attr_str(self.attrs["dtype"]))
        self.frame_shape = tuple(int(v) for v in self.attrs["frame_shape"])
        self.params = json.loads(_attr_str(self.attrs["params"]))
        self.semantics_version = _attr_str(self.attrs["semantics_version"])

    def _bind(self, f) -> None:
        ds = self._ds = f["frames"]
        # geometry for the direct path (h5py's properties cost microseconds per access)
        self._chunk = (ds.chunks[0], ds.dtype, int(np.prod(ds.chunks))) if shuffle_deflate_rows(ds) else None
        self._where = self._pread = None
        if self._chunk is not None and "frames_chunks" in f:
            self._where = _chunk_positions(f["frames_chunks"], ds)
            self._pread = _PreadFile(self.path) if self._where is not None else None

    def _rows(self, a: int, b: int) -> np.ndarray:
        """Frames rows ``[a, b)``: the chunks holding them inflated by ISA-L (``_inflate``; h5py's
        own read of a one-chunk N-MNIST sample took twice as long), else through h5py."""
        if self._chunk is None or a == b:
            return self._ds[a:b]
        c = self._chunk[0]
        k0, k1 = a // c, -(-b // c)
        if k1 - k0 == 1:
            rows = self._inflate(k0).reshape(-1, *self.frame_shape)
        else:  # a sample across chunk edges: each chunk inflated into its place
            rows = read_chunks(self._ds, k0, k1, self._inflate)
        return rows[a - k0 * c:b - k0 * c]

    def _inflate(self, k: int, out=None) -> np.ndarray:
        """Chunk ``k`` of ``frames``, inflated (1-D, the stored dtype; into ``out`` when given):
        its bytes read with one ``pread`` at the position ``frames_chunks`` gives, else with
        ``read_direct_chunk``."""
        c, dtype, items = self._chunk
        if self._where is None:
            return inflate_chunk(self._ds, (k * c, 0, 0, 0), dtype, items, out)
        offset, size = self._where[k]
        return inflate_raw(os.pread(self._pread.fd, int(size), int(offset)), dtype, items, f"chunk {k} of /frames",
                           out)

    def close(self) -> None:
        if getattr(self, "_pread", None) is not None and self._pid == os.getpid():
            self._pread.close()
        self._pread = self._where = None
        super().close()

    def __getstate__(self):
        state = super().__getstate__()
        state["_pread"] = state["_where"] = None  # per process, like the h5py handle
        return state

    def __getitem__(self, i):
        i = self._index(i)
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        self._file()
        try:
            frames = self._rows(a, b).astype(self.dtype, copy=False)
            if not frames.flags.writeable:  # a view of an inflated chunk's bytes (served as stored)
                frames = frames.copy()
            return frames, int(self.labels[i])
        except OSError as e:
            raise CacheError(f"{self.path}: sample {i} cannot be read ({e}); the file is damaged: "
                             "delete it (`neurodata cache rm`) to rebuild") from None
