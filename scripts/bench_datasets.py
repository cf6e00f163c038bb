"""Dataset benchmarks (``python scripts/bench.py datasets [--quick]``): the HDF5 cache against peers.

Every case is a function ``case_<name>(ctx) -> list[dict]`` listed in ``CASES``; rows follow
``scripts/bench.py`` (``case``, ``impl``, ``median_s``, optional ``rate``/``rate_unit``/``note``).
To add a case, write the function (use ``ctx`` for inputs shared between cases) and append it.

Inputs are synthetic N-MNIST-like recordings from ``neurodata.saccade_digits`` (a 34×34 DVS
emulator watching a digit through three 100 ms saccades): structured events, not uniform noise,
so disk sizes mean something. Two sample sets: ``saccade`` (full 300 ms samples) and
``nmnist-sized`` (the first 160 ms, about as many events as a real N-MNIST sample, ≈ 4 000).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from _benchutil import median_time

SENSOR = (34, 34, 2)


@dataclass
class Context:
    """Shared inputs, built lazily and kept for the whole run."""

    args: object
    workdir: Path
    quick: bool
    repeats: int
    _samples: dict = field(default_factory=dict)

    def samples(self, name: str) -> list:
        """``[(events, label)]`` of sample set ``name`` (``"saccade"`` or ``"nmnist-sized"``)."""
        if name not in self._samples:
            from neurodata.saccade_digits import render_sample

            n = 200 if self.quick else 1000
            full = self._samples.get("saccade")
            if full is None:
                full = [(render_sample(i % 10, np.random.default_rng([0, i])), i % 10) for i in range(n)]
                self._samples["saccade"] = full
            if name == "nmnist-sized":
                self._samples[name] = [(ev[ev["t"] < 160_000], label) for ev, label in full]
        return self._samples[name]

    def events_cache(self, name: str) -> tuple[Path, float]:
        """Our events cache of sample set ``name`` and the seconds its build took."""
        from neurodata.cache import write_events_cache

        path = self.workdir / f"{name}.h5"
        key = ("cache", name)
        if key not in self._samples:
            samples = self.samples(name)
            t0 = time.perf_counter()
            write_events_cache(path, ((ev, label, {"source": f"{i}.bin", "t_offset": 0})
                                      for i, (ev, label) in enumerate(samples)),
                               key=name, sensor_size=SENSOR, class_names=[str(d) for d in range(10)])
            self._samples[key] = time.perf_counter() - t0
        return path, self._samples[key]

    def npz_folder(self, name: str) -> tuple[Path, float]:
        """SpikingJelly's ``events_np`` layout of sample set ``name``: one ``np.savez_compressed``
        per sample with uint32 columns t, x, y, p (what its ``load_ATIS_bin`` + ``np_savez`` write)."""
        folder = self.workdir / f"{name}-events_np"
        key = ("npz", name)
        if key not in self._samples:
            folder.mkdir()
            t0 = time.perf_counter()
            for i, (ev, label) in enumerate(self.samples(name)):
                (folder / str(label)).mkdir(exist_ok=True)
                np.savez_compressed(folder / str(label) / f"{i}.npz", **{c: ev[c].astype(np.uint32) for c in "txyp"})
            self._samples[key] = time.perf_counter() - t0
        return folder, self._samples[key]


def _disk_bytes(path: Path) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of a file or folder tree."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    stats = [p.stat() for p in files]
    return sum(s.st_size for s in stats), sum(s.st_blocks * 512 for s in stats)


def _events(samples) -> int:
    return sum(ev.shape[0] for ev, _ in samples)


def case_cache_random_access(ctx: Context) -> list[dict]:
    """Samples/s reading random samples one by one in one process (target ≥ 20 000 samples/s)."""
    from neurodata.cache import EventsStore

    rows = []
    reads = 2000 if ctx.quick else 10000
    for name in ("nmnist-sized", "saccade"):
        samples = ctx.samples(name)
        order = np.random.default_rng(1).integers(0, len(samples), reads)
        mean = _events(samples) / len(samples)
        case = f"cache random access ({mean:.0f} ev/sample)"
        store = EventsStore(ctx.events_cache(name)[0])

        def ours():
            for i in order:
                store[i]

        t = median_time(ours, ctx.repeats)
        rows.append(dict(case=case, impl="neurodata", median_s=t, rate=reads / t, rate_unit="samples/s",
                         note=f"{reads} random reads, {name} samples"))
        folder, _ = ctx.npz_folder(name)
        files = sorted(folder.rglob("*.npz"), key=lambda p: int(p.stem))

        def sj():
            for i in order:
                with np.load(files[i]) as z:
                    [z[c] for c in "txyp"]

        t = median_time(sj, max(1, ctx.repeats // 2))
        rows.append(dict(case=case, impl="spikingjelly events_np", median_s=t, rate=reads / t,
                         rate_unit="samples/s", note="np.load of one .npz per sample (its events_np folder)"))
    return rows


def case_cache_disk_size(ctx: Context) -> list[dict]:
    """Bytes/event on disk (allocated) of the events cache vs SpikingJelly's ``events_np`` folder
    (target ≤ 0.5×); ``median_s`` is the time to write each (one run)."""
    rows = []
    for name in ("nmnist-sized", "saccade"):
        n_events = _events(ctx.samples(name))
        path, build_s = ctx.events_cache(name)
        folder, npz_s = ctx.npz_folder(name)
        ours_app, ours = _disk_bytes(path)
        sj_app, sj = _disk_bytes(folder)
        case = f"events on disk ({name})"
        rows.append(dict(case=case, impl="neurodata", median_s=build_s, rate=ours / n_events, rate_unit="B/event",
                         note=f"{ours / 2**20:.1f} MiB = {ours / sj:.3f}x SJ allocated, "
                              f"{ours_app / sj_app:.3f}x apparent; time = cache build"))
        rows.append(dict(case=case, impl="spikingjelly events_np", median_s=npz_s, rate=sj / n_events,
                         rate_unit="B/event", note=f"{sj / 2**20:.1f} MiB allocated ({sj_app / n_events:.2f} B/event "
                                                  "apparent); time = np.savez_compressed per sample"))
    return rows


CASES = [case_cache_random_access, case_cache_disk_size]


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
