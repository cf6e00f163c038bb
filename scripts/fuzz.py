#!/usr/bin/env python
"""Mutation fuzzing of every format reader.

For each format, a valid file is written with the project's own writer from random events, then
mutated (truncation, bit flips, random bytes overwritten, bytes inserted or deleted, a header byte
changed) and read back. A reader passes when every mutant either decodes to an ``EVENT_DTYPE``
array or raises ``neurodata.FormatError``; any other exception, a crash or a hang (the caller's
timeout) is a failure. Warnings are allowed (documented recoveries).

    python scripts/fuzz.py [--format NAME ...] [--iterations N] [--seed S]

The test suite runs a short budget of this (tests/formats/test_fuzz.py); run a long one by hand.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import neurodata  # noqa: E402
from neurodata.events import EVENT_DTYPE  # noqa: E402
from neurodata.formats import FORMATS  # noqa: E402

SENSOR = (128, 128, 2)


def seed_file(fmt: str, path: str, rng: np.random.Generator) -> None:
    n = int(rng.integers(0, 400))
    ev = np.empty(n, EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 2_000_000, n))
    ev["x"] = rng.integers(0, SENSOR[0], n)
    ev["y"] = rng.integers(0, SENSOR[1], n)
    ev["p"] = rng.integers(0, 2, n)
    neurodata.write(path, ev, fmt, sensor_size=SENSOR)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 6))
        n = len(buf)
        if kind == 0 and n:                       # truncate
            del buf[int(rng.integers(0, n)):]
        elif kind == 1 and n:                     # flip bits
            for _ in range(int(rng.integers(1, 9))):
                i = int(rng.integers(0, n))
                buf[i] ^= 1 << int(rng.integers(0, 8))
        elif kind == 2 and n:                     # overwrite a run with random bytes
            i = int(rng.integers(0, n))
            k = int(rng.integers(1, 17))
            buf[i:i + k] = rng.integers(0, 256, min(k, n - i), dtype=np.uint8).tobytes()
        elif kind == 3:                           # insert random bytes
            i = int(rng.integers(0, n + 1))
            buf[i:i] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        elif kind == 4 and n:                     # delete a run
            i = int(rng.integers(0, n))
            del buf[i:i + int(rng.integers(1, 9))]
        elif kind == 5 and n:                     # extreme values in a 4-byte word
            i = int(rng.integers(0, max(n - 4, 1)))
            buf[i:i + 4] = bytes(rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xff\xff\xff\xff",
                                             b"\x00\x00\x00\x00"]))[: max(0, min(4, n - i))]
    return bytes(buf)


def fuzz_format(fmt: str, iterations: int, seed: int) -> list[str]:
    """Return a list of failure descriptions (empty when the reader behaved)."""
    rng = np.random.default_rng([seed, FORMATS.index(fmt)])
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        valid = os.path.join(tmp, "valid")
        mutant = os.path.join(tmp, "mutant")
        for i in range(iterations):
            if i % 25 == 0:
                seed_file(fmt, valid, rng)
                with open(valid, "rb") as f:
                    original = f.read()
            data = mutate(original, rng)
            with open(mutant, "wb") as f:
                f.write(data)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = neurodata.read(mutant, format=fmt)
                if isinstance(out, tuple):
                    out = out[0]
                if not (isinstance(out, np.ndarray) and out.dtype == EVENT_DTYPE and out.ndim == 1):
                    failures.append(f"{fmt} iteration {i}: returned {type(out)} {getattr(out, 'dtype', '')}")
            except neurodata.FormatError:
                pass
            except Exception:  # noqa: BLE001 - any other exception is what we hunt for
                keep = os.path.join(tempfile.gettempdir(), f"fuzz-{fmt}-{seed}-{i}.bin")
                with open(keep, "wb") as f:
                    f.write(data)
                failures.append(f"{fmt} iteration {i} (input kept at {keep}):\n{traceback.format_exc()}")
    return failures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--format", action="append", choices=FORMATS, help="formats to fuzz (default all)")
    ap.add_argument("--iterations", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    bad = 0
    for fmt in args.format or FORMATS:
        failures = fuzz_format(fmt, args.iterations, args.seed)
        print(f"{fmt}: {args.iterations} mutants, {len(failures)} failures")
        for f in failures[:5]:
            print(f)
        bad += len(failures)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
