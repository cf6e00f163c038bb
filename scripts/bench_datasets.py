"""Dataset benchmarks (``python scripts/bench.py datasets [--quick]``): the HDF5 cache against peers.

Every case is a function ``case_<name>(ctx) -> list[dict]`` listed in ``CASES``; rows follow
``scripts/bench.py`` (``case``, ``impl``, ``median_s``, optional ``rate``/``rate_unit``/``note``).
To add a case, write the function (use ``ctx`` for inputs shared between cases) and append it.
Every comparison starts both sides from the same files, built once per run in ``ctx.workdir``.

Inputs (all synthetic, structured, not uniform noise, so sizes mean something):
- ``saccade``: recordings from ``neurodata.saccade_digits`` (a 34×34 DVS emulator watching a digit
  through three 100 ms saccades), 200 (``--quick``) / 1000 renders of 300 ms;
- ``nmnist-sized``: 1000 / 10 000 samples of ≈ 4 000 events (a real N-MNIST sample's size): the
  first 160 ms of each render, and copies of them shifted by a random (dx, dy) ∈ [-3, 3]²
  (events pushed off the sensor dropped);
- ``gesture``: a DVS128-Gesture-sized ``DvsGesture.tar.gz`` (``_synth_gesture.py``: 6 / 122
  AEDAT 3.1 recordings of ≈ 1.3 M events of moving hands, 11 label windows each).
Peers' pipelines are in ``_dataset_peers.py``. The method of each case is in
``docs/benchmarks.md`` (section "Dataset benchmarks").
"""
from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from _benchutil import median_time

SENSOR = (34, 34, 2)
GESTURE_SENSOR = (128, 128, 2)


@dataclass
class Context:
    """Shared inputs, built lazily and kept for the whole run (``memo``)."""

    args: object
    workdir: Path
    quick: bool
    repeats: int
    _memo: dict = field(default_factory=dict)

    def memo(self, key, make):
        """``make()`` once per run, then its stored result."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def samples(self, name: str) -> list:
        """``[(events, label)]`` of sample set ``name`` (``"saccade"`` or ``"nmnist-sized"``)."""
        return self.memo(("samples", name), lambda: _make_samples(name, self))

    def events_cache(self, name: str, compression="huffman") -> tuple[Path, float]:
        """Our events cache of sample set ``name`` (``EventsWriter(compression=)``) and the
        seconds its build took."""
        from neurodata.cache import write_events_cache

        def make():
            path = self.workdir / f"{name}-{compression or 'raw'}.h5"
            samples = self.samples(name)
            t0 = time.perf_counter()
            write_events_cache(path, ((ev, label, {"source": f"{i}.bin", "t_offset": 0})
                                      for i, (ev, label) in enumerate(samples)),
                               key=name, sensor_size=SENSOR, class_names=[str(d) for d in range(10)],
                               compression=compression)
            return path, time.perf_counter() - t0
        return self.memo(("cache", name, compression), make)

    def npz_folder(self, name: str) -> tuple[Path, float]:
        """SpikingJelly's ``events_np`` layout of sample set ``name``: one ``np.savez_compressed``
        per sample with uint32 columns t, x, y, p (what its ``load_ATIS_bin`` + ``np_savez`` write)."""
        def make():
            folder = self.workdir / f"{name}-events_np"
            folder.mkdir()
            t0 = time.perf_counter()
            for i, (ev, label) in enumerate(self.samples(name)):
                (folder / str(label)).mkdir(exist_ok=True)
                np.savez_compressed(folder / str(label) / f"{i}.npz", **{c: ev[c].astype(np.uint32) for c in "txyp"})
            return folder, time.perf_counter() - t0
        return self.memo(("npz", name), make)

    def gesture(self) -> dict:
        """The synthetic ``DvsGesture.tar.gz`` (see ``_synth_gesture.write_gesture_archive``)."""
        from _synth_gesture import write_gesture_archive

        return self.memo("gesture", lambda: write_gesture_archive(self.workdir / "gesture",
                                                                  6 if self.quick else 122, rng=7))

    def gesture_class(self, kind: str):
        """``DVSGesture`` with its recipe's ``DvsGesture.tar.gz`` checksum and size replaced by those
        of our archive ``kind`` (``"gz"`` or ``"plain"``), so the real verification runs."""
        from neurodata.datasets import DVSGesture

        info = self.gesture()
        archive = info["archives"][kind]
        resources = tuple(dataclasses.replace(r, checksum=info["sha256"][kind], size=archive.stat().st_size)
                          if r.filename == archive.name else r for r in DVSGesture.recipe.resources)
        recipe = dataclasses.replace(DVSGesture.recipe, resources=resources)
        return type("BenchDVSGesture", (DVSGesture,), {"recipe": recipe})

    def nmnist(self) -> object:
        """Our ``NMNIST`` train split built from a ``train.zip`` of the ``nmnist-sized`` samples
        (``Train/<digit>/<i>.bin``, N-MNIST's ATIS format), recipe checksum replaced by its sha256."""
        def make():
            import neurodata
            from neurodata.datasets import NMNIST
            from neurodata.download import file_digest

            folder = self.workdir / "nmnist-src"
            folder.mkdir()
            tmp = folder / "member.bin"
            with zipfile.ZipFile(folder / "train.zip", "w") as zf:
                for i, (ev, label) in enumerate(self.samples("nmnist-sized")):
                    neurodata.write(tmp, ev, "nmnist")
                    zf.write(tmp, f"Train/{label}/{i:05d}.bin")
            tmp.unlink()
            zpath = folder / "train.zip"
            resources = tuple(dataclasses.replace(r, checksum="sha256:" + file_digest(zpath, "sha256"),
                                                  size=zpath.stat().st_size)
                              if r.filename == "train.zip" else r for r in NMNIST.recipe.resources)
            cls = type("BenchNMNIST", (NMNIST,), {"recipe": dataclasses.replace(NMNIST.recipe, resources=resources)})
            return cls(root=self.workdir / "nmnist-root", split="train", source=zpath)
        return self.memo("nmnist", make)


def _make_samples(name: str, ctx: Context) -> list:
    if name == "saccade":
        from neurodata.saccade_digits import render_sample

        n = 200 if ctx.quick else 1000
        return [(render_sample(i % 10, np.random.default_rng([0, i])), i % 10) for i in range(n)]
    if name != "nmnist-sized":
        raise KeyError(name)
    base = [(ev[ev["t"] < 160_000], label) for ev, label in ctx.samples("saccade")]
    out = []
    for k in range(1000 if ctx.quick else 10000):
        ev, label = base[k % len(base)]
        if k >= len(base):
            dx, dy = np.random.default_rng([1, k]).integers(-3, 4, 2)
            x, y = ev["x"].astype(np.int64) + dx, ev["y"].astype(np.int64) + dy
            keep = (x >= 0) & (x < SENSOR[0]) & (y >= 0) & (y < SENSOR[1])
            ev = ev[keep].copy()
            ev["x"], ev["y"] = x[keep], y[keep]
        out.append((ev, label))
    return out


def _fresh_median(build, repeats: int) -> tuple[float, object]:
    """Median seconds of ``build(k)`` for k = 0..repeats-1 (each into fresh state) and the last result."""
    times, result = [], None
    for k in range(repeats):
        t0 = time.perf_counter()
        result = build(k)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), result


def _disk_bytes(path: Path) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of a file or folder tree."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    stats = [p.stat() for p in files]
    return sum(s.st_size for s in stats), sum(s.st_blocks * 512 for s in stats)


def _events(samples) -> int:
    return sum(ev.shape[0] for ev, _ in samples)


LAYOUTS = ("huffman", "gzip", None)  # the events cache's layouts, the default first


def _variant(compression) -> str:
    return "" if compression == "huffman" else f", compression={compression!r}"


def case_cache_random_access(ctx: Context) -> list[dict]:
    """Samples/s reading samples one by one at uniform random indices in one process
    (``EventsStore.__getitem__``; target ≥ 20 000 samples/s for N-MNIST-sized samples), for each
    layout (the default ``huffman``, ``gzip``, uncompressed); each case has its own SpikingJelly row
    (measured once per sample set) so that the ratio column compares like with like."""
    from neurodata.cache import EventsStore

    rows = []
    reads = 5000 if ctx.quick else 20000
    for name in ("nmnist-sized", "saccade"):
        samples = ctx.samples(name)
        order = np.random.default_rng(1).integers(0, len(samples), reads)
        mean = _events(samples) / len(samples)
        ours_rows = []
        for compression in LAYOUTS:
            case = f"cache random access{_variant(compression)} ({mean:.0f} ev/sample)"
            store = EventsStore(ctx.events_cache(name, compression)[0])
            store[int(order[0])]  # the first read opens the file and loads the numba kernel

            def ours():
                for i in order:
                    store[i]

            t = median_time(ours, ctx.repeats)
            ours_rows.append(dict(case=case, impl="neurodata", median_s=t, rate=reads / t, rate_unit="samples/s",
                                  note=f"{reads} uniform random reads of {len(samples)} {name} samples"))
            if compression == "gzip":
                ours_rows.append(_inflate_floor(store, order, case))
            store.close()
        folder, _ = ctx.npz_folder(name)
        files = sorted(folder.rglob("*.npz"), key=lambda p: int(p.stem))

        def sj():
            for i in order:
                with np.load(files[i]) as z:
                    [z[c] for c in "txyp"]

        t = median_time(sj, max(1, ctx.repeats // 2))
        for row in ours_rows:
            rows.append(row)
            if row["impl"] == "neurodata":
                rows.append(dict(case=row["case"], impl="spikingjelly events_np", median_s=t, rate=reads / t,
                                 rate_unit="samples/s", note="np.load of one .npz per sample (its events_np folder)"))
    return rows


def _inflate_floor(store, order, case: str) -> dict:
    """A row timing only ``zlib.decompress`` of the stored chunks that reading the samples
    ``order`` touches (fetched beforehand with ``read_direct_chunk``): the least a read of the gzip
    layout costs, whatever the reader around it does."""
    import zlib

    store._file()
    offsets, (dt, xyp) = store.offsets, store._ds
    c = dt.chunks[0]
    chunks = [ds.id.read_direct_chunk((k * c,))[1] for i in order if offsets[i + 1] > offsets[i]
              for ds in (dt, xyp) for k in range(offsets[i] // c, (offsets[i + 1] - 1) // c + 1)]
    t = median_time(lambda: [zlib.decompress(b) for b in chunks], 3)
    return dict(case=case, impl="zlib inflate alone", median_s=t, rate=len(order) / t, rate_unit="samples/s",
                note=f"zlib.decompress of the {len(chunks) / len(order):.2f} chunks/read these reads touch "
                     "(prefetched raw bytes): what any gzip reader pays when HDF5's chunk cache misses")


def case_cache_disk_size(ctx: Context) -> list[dict]:
    """Bytes/event on disk (allocated) of the events cache vs SpikingJelly's ``events_np`` folder
    (target ≤ 0.5×); ``median_s`` is the time to write each (one run)."""
    rows = []
    for name in ("nmnist-sized", "saccade"):
        n_events = _events(ctx.samples(name))
        folder, npz_s = ctx.npz_folder(name)
        sj_app, sj = _disk_bytes(folder)
        for compression in LAYOUTS:
            path, build_s = ctx.events_cache(name, compression)
            ours_app, ours = _disk_bytes(path)
            case = f"events on disk{_variant(compression)} ({name})"
            rows.append(dict(case=case, impl="neurodata", median_s=build_s, rate=ours / n_events, rate_unit="B/event",
                             note=f"{ours / 2**20:.1f} MiB = {ours / sj:.3f}x SJ allocated, "
                                  f"{ours_app / sj_app:.3f}x apparent; time = cache build"))
            rows.append(dict(case=case, impl="spikingjelly events_np", median_s=npz_s, rate=sj / n_events,
                             rate_unit="B/event", note=f"{sj / 2**20:.1f} MiB allocated ({sj_app / n_events:.2f} "
                                                      "B/event apparent); time = np.savez_compressed per sample"))
    return rows


def _gesture_ours(ctx: Context, kind: str) -> tuple[float, list]:
    """Median seconds building our train + test events caches of the gesture archive ``kind``
    (a fresh root each time), and the last build's datasets."""
    cls = ctx.gesture_class(kind)
    archive = ctx.gesture()["archives"][kind]

    def build(k):
        root = ctx.workdir / f"ours-gesture-{kind}-{k}"
        if k:
            shutil.rmtree(ctx.workdir / f"ours-gesture-{kind}-{k - 1}")
        return [cls(root=root, split=s, source=archive) for s in ("train", "test")]
    return _fresh_median(build, min(ctx.repeats, 3))


def _gesture_sj(ctx: Context):
    """SpikingJelly's extract + split of the gzip archive: ``(events_np, s extract, s split)`` or None."""
    from _dataset_peers import sj_gesture_events, spikingjelly_datasets

    if spikingjelly_datasets() is None:
        return None
    return ctx.memo("sj-gesture", lambda: sj_gesture_events(ctx.gesture()["archives"]["gz"],
                                                            ctx.workdir / "sj-gesture"))


def case_gesture_events_cache(ctx: Context) -> list[dict]:
    """Events cache of the DVS128-Gesture-sized archive (train + test) vs SpikingJelly's own
    preprocessing of the same files (target ≥ 50×), with and without gzip; disk bytes of both
    (target ≤ 0.5× SpikingJelly's ``events_np``)."""
    info = ctx.gesture()
    n_ev = info["events"]
    size = f"{info['recordings']} rec, {n_ev / 1e6:.1f} M ev"
    t_gz, (train, test) = _gesture_ours(ctx, "gz")
    ctx._memo["gesture-datasets"] = (train, test)
    t_plain, _ = _gesture_ours(ctx, "plain")
    n_samples = len(train) + len(test)

    def gunzip():
        with gzip.open(info["archives"]["gz"], "rb") as f:
            while f.read(1 << 22):
                pass
    t_unzip = median_time(gunzip, min(ctx.repeats, 3))
    rate = dict(rate_unit="M ev/s")
    with_gz, no_gz = f"gesture events cache, .tar.gz ({size})", f"gesture events cache, no gzip ({size})"
    rows = [dict(case=with_gz, impl="neurodata", median_s=t_gz, rate=n_ev / t_gz / 1e6, **rate,
                 note=f"DVSGesture train+test from DvsGesture.tar.gz incl. sha256 check, {n_samples} samples"),
            dict(case=no_gz, impl="neurodata", median_s=t_plain, rate=n_ev / t_plain / 1e6, **rate,
                 note="same, from the uncompressed tar under the same name")]
    sj = _gesture_sj(ctx)
    if sj is None:
        return rows + [dict(case=c, impl="spikingjelly", median_s=None, note="not importable") for c in (with_gz, no_gz)]
    events_np, t_extract, t_split = sj
    rows += [dict(case=with_gz, impl="spikingjelly", median_s=t_extract + t_split, rate=n_ev / (t_extract + t_split) / 1e6,
                  **rate, note=f"tar.gz extraction {t_extract:.2f} s + create_raw_from_extracted {t_split:.2f} s (1 run)"),
             dict(case=with_gz, impl="gzip -d alone", median_s=t_unzip, rate=n_ev / t_unzip / 1e6, **rate,
                  note="one zlib pass over the archive: generic decompression, inside both rows above"),
             dict(case=no_gz, impl="spikingjelly", median_s=t_split, rate=n_ev / t_split / 1e6, **rate,
                  note="create_raw_from_extracted on the extracted folder (1 run)")]
    ours_app, ours = (sum(v) for v in zip(*(_disk_bytes(ds.cache_path) for ds in (train, test))))
    sj_app, sj_bytes = _disk_bytes(events_np)
    _, extracted = _disk_bytes(events_np.parent / "extract")
    case = f"gesture events on disk ({size})"
    rows += [dict(case=case, impl="neurodata", median_s=t_gz, rate=ours / n_ev, rate_unit="B/event",
                  note=f"{ours / 2**20:.1f} MiB = {ours / sj_bytes:.3f}x SJ allocated, {ours_app / sj_app:.3f}x apparent"),
             dict(case=case, impl="spikingjelly events_np", median_s=t_split, rate=sj_bytes / n_ev, rate_unit="B/event",
                  note=f"{sj_bytes / 2**20:.1f} MiB allocated; it also keeps the extracted copy "
                       f"({extracted / 2**20:.1f} MiB)")]
    return rows


def case_gesture_frames_cache(ctx: Context) -> list[dict]:
    """Frames cache (``frames_number=16, split_by='number'``) of the gesture train + test sets built
    from the events caches vs SpikingJelly's frames folder built from its ``events_np`` (target ≥ 20×)."""
    from neurodata.datasets.frames import FramesDataset

    if "gesture-datasets" not in ctx._memo:
        case_gesture_events_cache(ctx)
    datasets = ctx._memo["gesture-datasets"]
    n = sum(len(ds) for ds in datasets)
    params = dict(frames_number=16, split_by="number")

    def build(k):
        for ds in datasets:
            for old in ds.root.glob("frames-*.h5"):
                old.unlink()
        return [FramesDataset(ds, params) for ds in datasets]
    t, frames = _fresh_median(build, min(ctx.repeats, 3))
    case = f"gesture frames cache T=16 by number ({n} samples)"
    stored = frames[0].store._file()["frames"].dtype

    def read_events():
        for ds in datasets:
            for _ in ds.store.iter_samples():
                pass
    t_read = median_time(read_events, min(ctx.repeats, 3))
    rows = [dict(case=case, impl="neurodata", median_s=t, rate=n / t, rate_unit="samples/s",
                 note=f"FramesDataset(DVSGesture train/test, frames_number=16, split_by='number'), float32 "
                      f"stored as {stored}"),
            dict(case=case, impl="events cache read alone", median_s=t_read, rate=n / t_read, rate_unit="samples/s",
                 note="EventsStore.iter_samples() over both events caches: the read the build above does")]
    sj = _gesture_sj(ctx)
    if sj is None:
        return rows + [dict(case=case, impl="spikingjelly", median_s=None, note="not importable")]
    from _dataset_peers import sj_frames

    folder, t_sj = sj_frames(sj[0], ctx.workdir / "sj-gesture", 16, "number", 128, 128)
    same = _same_frames(frames[0], folder / "train")
    rows.append(dict(case=case, impl="spikingjelly", median_s=t_sj, rate=n / t_sj, rate_unit="samples/s",
                     note=f"FrameFixedNumberBuilder on its events_np (1 run); first train sample's frames {same}"))
    return rows


def _same_frames(ours, sj_train: Path) -> str:
    """Compare our first sample's frames with SpikingJelly's file for the same recording and label."""
    src = ours.events.metadata(0)["source"]
    label = int(ours.targets[0])
    path = sj_train / str(label) / f"{Path(src).stem}_0.npz"
    if not path.exists():
        return f"not compared ({path.name} missing)"
    with np.load(path) as z:
        ref = z["frames"]
    return "equal SJ's" if np.array_equal(ours[0][0].numpy(), ref) else "DIFFER from SJ's"


def case_frames_epoch(ctx: Context) -> list[dict]:
    """One shuffled epoch of N-MNIST-sized frames (T = 10) through ``DataLoader(num_workers=2)``:
    ``FramesDataset`` vs SpikingJelly's frames folder and tonic's ``DiskCachedDataset`` holding
    frames of the same samples (target ≥ 5× each). Ours twice: float32 frames (``ToFrame``'s
    default) and uint8 frames (``ToFrame(dtype="uint8")``, for a cast on the device; the same
    counts here, checked sample by sample); the peers run once, their rows are in both cases."""
    import torch

    from _dataset_peers import SJFramesFolder, spikingjelly_datasets, sj_frames, tonic_frames_cache
    from neurodata.datasets.frames import FramesDataset

    samples = ctx.samples("nmnist-sized")
    n, batch = len(samples), 64
    params = dict(frames_number=10, split_by="number")
    t0 = time.perf_counter()
    ours = {"float32": FramesDataset(ctx.nmnist(), params)}
    t_ours_build = time.perf_counter() - t0
    ours["uint8"] = FramesDataset(ctx.nmnist(), {**params, "dtype": "uint8"})
    exact = all(torch.equal(ours["uint8"][i][0].float(), ours["float32"][i][0]) for i in range(n))

    def epoch(ds):
        loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=2,
                                             generator=torch.Generator().manual_seed(0))
        for _ in loader:
            pass
    reps = min(ctx.repeats, 3)

    def row(impl, ds, note):
        t = median_time(lambda: epoch(ds), reps)
        return dict(impl=impl, median_s=t, rate=n / t, rate_unit="samples/s", note=note)
    peers = []
    if spikingjelly_datasets() is None:
        peers.append(dict(impl="spikingjelly", median_s=None, note="not importable"))
    else:
        folder, t_sj = sj_frames(ctx.npz_folder("nmnist-sized")[0], ctx.workdir / "sj-nmnist", 10, "number", 34, 34)
        peers.append(row("spikingjelly", SJFramesFolder(folder),
                         f"load_npz_frames per sample of its frames folder (built in {t_sj:.1f} s), float32"))
    tonic_ds, fill = tonic_frames_cache(samples, SENSOR, 10, ctx.workdir / "tonic-cache")
    if tonic_ds is None:
        peers.append(dict(impl="tonic", median_s=None, note=f"not installed ({fill})"))
    else:
        peers.append(row("tonic", tonic_ds, f"DiskCachedDataset of ToFrame(n_event_bins=10), int16 "
                                            f"(filled in {fill:.1f} s)"))
    shape = tuple(ours["float32"][0][0].shape)
    rows = []
    for dtype, ds in ours.items():
        name = "" if dtype == "float32" else f" {dtype}"
        case = f"frames epoch T=10{name}, DataLoader(2 workers, B={batch}) ({n} N-MNIST-sized)"
        note = (f"FramesDataset of NMNIST (events + frames caches built in {t_ours_build:.1f} s), float32"
                if dtype == "float32" else
                f"FramesDataset of NMNIST with ToFrame(dtype='uint8'): {'the same counts as float32 in every sample' if exact else 'counts SATURATED: differs from float32'}")
        rows += [dict(case=case, **row("neurodata", ds, note)),
                 dict(case=case, **row("DataLoader alone", _Zeros(n, shape, getattr(torch, dtype)),
                                       f"a dataset returning torch.zeros{shape} {dtype}: DataLoader's own cost "
                                       "(workers, collate, shared memory)"))]
        rows += [dict(p, case=case) if dtype == "float32" else
                 dict(p, case=case, note=p["note"] + "; the float32 case's measurement") for p in peers]
    return rows


class _Zeros:
    """``n`` samples ``(torch.zeros(shape, dtype), 0)``: a dataset that costs nothing to read."""

    def __init__(self, n: int, shape: tuple, dtype):
        self.n, self.shape, self.dtype = n, shape, dtype

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        import torch

        return torch.zeros(self.shape, dtype=self.dtype), 0


CASES = [case_cache_random_access, case_cache_disk_size, case_gesture_events_cache, case_gesture_frames_cache,
         case_frames_epoch]


def run(args) -> list[dict]:
    quick = bool(getattr(args, "quick", False))
    repeats = getattr(args, "repeats", None) or (3 if quick else 5)
    own = getattr(args, "workdir", None) is None
    workdir = Path(tempfile.mkdtemp(prefix="neurodata-bench-")) if own else Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(args=args, workdir=workdir, quick=quick, repeats=repeats)
    try:
        rows = []
        for case in CASES:
            rows.extend(case(ctx))
        return rows
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(os.system(f"{sys.executable} {Path(__file__).with_name('bench.py')} datasets {' '.join(sys.argv[1:])}"))
