#!/usr/bin/env python
"""Benchmarks: ``python scripts/bench.py <area> [--quick] [--json FILE]``.

Areas: ``io`` (format readers), ``transforms`` (representations and filters), ``datasets``
(cache build and loading), ``neurons`` (snncore neurons and kernels). Each area lives in
``scripts/bench_<area>.py`` and exposes ``run(args) -> list[dict]``; a row has the keys
``case``, ``impl`` (``"neurodata"`` or the peer's name), ``median_s`` (None when the peer is
missing or failed), and optionally ``rate`` + ``rate_unit``, ``peak_rss_mib``, ``note``.
This script prints one table per area with each peer's ratio to ours in the same run.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time

AREAS = ("io", "transforms", "datasets", "neurons")
OURS = "neurodata"


def machine() -> dict:
    import numpy
    try:
        import torch
        torch_v = torch.__version__
    except ImportError:  # pragma: no cover
        torch_v = None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"date": time.strftime("%Y-%m-%d"), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": numpy.__version__, "torch": torch_v}


def format_table(rows) -> str:
    by_case: dict[str, list[dict]] = {}
    for r in rows:
        by_case.setdefault(r["case"], []).append(r)
    out = [f"{'case':<44} {'impl':<26} {'median':>10} {'rate':>16} {'RSS MiB':>8} {'ours is':>10}"]
    for case, rs in by_case.items():
        ours = next((r for r in rs if r["impl"] == OURS and r.get("median_s")), None)
        for r in rs:
            med = r.get("median_s")
            med_s = f"{med * 1e3:9.2f}ms" if med else "   missing"
            rate = f"{r['rate']:.1f} {r.get('rate_unit', '')}" if r.get("rate") else ""
            rss = f"{r['peak_rss_mib']:.0f}" if r.get("peak_rss_mib") else ""
            ratio = ""
            if ours and med and r is not ours:
                # rates when both have one (peers may run on a smaller input), else times
                if r.get("rate") and ours.get("rate"):
                    ratio = f"{ours['rate'] / r['rate']:.1f}x"
                else:
                    ratio = f"{med / ours['median_s']:.1f}x"
            line = f"{case:<44} {r['impl']:<26} {med_s:>10} {rate:>16} {rss:>8} {ratio:>10}"
            if r.get("note"):
                line += f"  ({r['note']})"
            out.append(line)
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("area", choices=AREAS)
    ap.add_argument("--quick", action="store_true", help="small sizes and few repeats (smoke test)")
    ap.add_argument("--repeats", type=int, default=None, help="repeats per measurement (median taken)")
    ap.add_argument("--json", metavar="FILE", help="also write rows and machine info as JSON")
    ap.add_argument("--workdir", default=None, help="where synthetic input files go (default: a temp dir)")
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    mod = importlib.import_module(f"bench_{args.area}")
    rows = mod.run(args)
    info = machine()
    print(f"# {args.area} — {info['date']} — {info['cpu']} ({info['cores']} cores), "
          f"python {info['python']}, numpy {info['numpy']}, torch {info['torch']}")
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"area": args.area, "machine": info, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
