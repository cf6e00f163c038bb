"""Benchmark area ``io``: every format reader against the installed peers on the same files.

For each format a synthetic file of N uniformly random events (N = 20 M, ``--quick``: 1 M) is
written with our writer into ``--workdir`` (a temp dir by default), read once to warm the page
cache, then timed (median of repeats). Peak RSS is the growth of the peak resident set of a fresh
forked process reading the file once (ours only), shown beside the size of the returned array.
Peers: tonic ``read_mnist_file`` (N-MNIST), SpikingJelly ``load_aedat_v3`` (AEDAT 3.1, on a 1 M
event file: it decodes at ~1 M ev/s), expelliarmus (DAT, EVT 2.0, EVT 3.0), the ``aedat`` package
and dv-processing (AEDAT 4.0). For AEDAT 4.0 the time to LZ4-decompress every packet on the same
threads is its own row: no decoder can beat it.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from _benchutil import peak_rss_mib, spikingjelly_datasets_utils, synthetic_events, timed_row

import neurodata

OURS = "neurodata"
# format -> (sensor size, duration µs)
SPECS = {
    "nmnist": ((34, 34, 2), 8_000_000),
    "aedat2": ((128, 128, 2), 20_000_000),
    "aedat31": ((128, 128, 2), 20_000_000),
    "dat": ((640, 480, 2), 20_000_000),
    "evt2": ((640, 480, 2), 20_000_000),
    "evt3": ((640, 480, 2), 20_000_000),
    "aedat4": ((640, 480, 2), 20_000_000),
}


def _peers(fmt, path, small_path):
    """``[(name, callable or None, path it reads, note)]`` for the format."""
    out = []
    if fmt == "nmnist":
        try:
            from tonic.io import read_mnist_file

            dt = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
            out.append(("tonic", lambda: read_mnist_file(path, dt), path, None))
        except ImportError:
            out.append(("tonic", None, path, None))
    if fmt in ("dat", "evt2", "evt3"):
        try:
            from expelliarmus import Wizard

            w = Wizard(encoding=fmt, fpath=path)
            note = "timestamps wrong by multiples of 4096 µs" if fmt == "evt3" else None
            out.append(("expelliarmus", w.read, path, note))
        except ImportError:
            out.append(("expelliarmus", None, path, None))
    if fmt == "aedat31":
        out.append(("spikingjelly", _spikingjelly_aedat3(), small_path, "on the 1 M event file"))
    if fmt == "aedat4":
        try:
            import aedat

            def run_aedat():
                n = 0
                for packet in aedat.Decoder(path):
                    if "events" in packet:
                        n += packet["events"].shape[0]
                return n
            out.append(("aedat (Rust)", run_aedat, path, None))
        except ImportError:
            out.append(("aedat (Rust)", None, path, None))
        try:
            import dv_processing as dv

            def run_dv():
                rec = dv.io.MonoCameraRecording(path)
                n = 0
                while rec.isRunning():
                    batch = rec.getNextEventBatch()
                    if batch is not None:
                        n += len(batch.numpy())
                return n
            out.append(("dv-processing", run_dv, path, None))
        except ImportError:
            out.append(("dv-processing", None, path, None))
    return out


def _spikingjelly_aedat3():
    utils = spikingjelly_datasets_utils()
    return getattr(utils, "load_aedat_v3", None)


def _lz4_only(path):
    """Time budget of generic decompression: LZ4-decompress every packet of an AEDAT 4 file."""
    import struct
    from concurrent.futures import ThreadPoolExecutor

    import lz4.frame

    data = open(path, "rb").read()
    (hlen,) = struct.unpack_from("<I", data, 14)
    pos, payloads = 18 + hlen, []
    while pos + 8 <= len(data):
        _sid, size = struct.unpack_from("<iI", data, pos)
        payloads.append(data[pos + 8:pos + 8 + size])
        pos += 8 + size
    payloads = payloads[:-1] if payloads and not payloads[-1].startswith(b"\x04\x22\x4d\x18") else payloads

    def run():
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            return sum(len(b) for b in pool.map(lz4.frame.decompress, payloads))
    return run


def run(args) -> list[dict]:
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        return _run(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="bench-io-") as work:  # ~0.9 GB of files: removed after
        return _run(args, work)


def _run(args, work) -> list[dict]:
    n = 1_000_000 if args.quick else 20_000_000
    # 9 repeats: the VM shows rare 3-4x slow reads (cause unknown), which a median of 5 does not absorb
    reps = args.repeats or (3 if args.quick else 9)
    rows = []
    for fmt, (sensor, duration) in SPECS.items():
        suffix = {"nmnist": ".bin", "aedat2": ".aedat", "aedat31": ".aedat", "dat": ".dat",
                  "evt2": ".raw", "evt3": ".raw", "aedat4": ".aedat4"}[fmt]
        path = os.path.join(work, f"bench-{n}-{fmt}{suffix}")      # peers insist on the suffix
        small = os.path.join(work, f"bench-1000000-{fmt}{suffix}")
        ev = synthetic_events(n, sensor, duration, seed=1)
        if not os.path.exists(path):
            neurodata.write(path, ev, fmt, sensor_size=sensor)
        if fmt == "aedat31" and not os.path.exists(small):
            neurodata.write(small, ev[:1_000_000], fmt, sensor_size=sensor)
        assert np.array_equal(neurodata.read(path, format=fmt), ev), f"{fmt}: round trip failed"
        case = f"read {fmt} ({n / 1e6:.0f} M ev, {os.path.getsize(path) / 2**20:.0f} MiB)"
        r = timed_row(case, OURS, lambda: neurodata.read(path, format=fmt), n, reps)
        r["peak_rss_mib"] = peak_rss_mib(lambda: neurodata.read(path, format=fmt))
        r["note"] = f"output array {ev.nbytes / 2**20:.0f} MiB"
        rows.append(r)
        if fmt == "aedat4":
            rows.append(timed_row(case, "lz4 decompression only", _lz4_only(path), n, reps,
                                  note="generic decompression, same threads"))
        for name, fn, p, note in _peers(fmt, path, small):
            count = 1_000_000 if p == small else n
            rows.append(timed_row(case, name, (lambda fn=fn, p=p: fn(p)) if fn and name == "spikingjelly" else fn,
                                  count, max(1, min(reps, 3)), note=note))
    return rows
