#!/usr/bin/env python
"""Turn ``scripts/bench.py --json`` outputs into Markdown tables (for docs/benchmarks.md).

    python scripts/bench_report.py io.json transforms.json ... [--plot docs/img/speedups.png]
"""
from __future__ import annotations

import json
import sys

OURS = "neurodata"


def table(result: dict) -> str:
    m = result["machine"]
    lines = [f"`python scripts/bench.py {result['area']}` — {m['date']}, {m['cpu']} ({m['cores']} cores), "
             f"python {m['python']}, numpy {m['numpy']}, torch {m['torch']}", "",
             "| case | implementation | median | rate | peak RSS growth | ours is | note |",
             "|---|---|---|---|---|---|---|"]
    by_case: dict = {}
    for r in result["rows"]:
        by_case.setdefault(r["case"], []).append(r)
    for case, rows in by_case.items():
        ours = next((r for r in rows if r["impl"] == OURS and r.get("median_s")), None)
        for r in rows:
            med = f"{r['median_s'] * 1e3:.2f} ms" if r.get("median_s") else "missing"
            rate = f"{r['rate']:.1f} {r.get('rate_unit', '')}" if r.get("rate") else ""
            rss = f"{r['peak_rss_mib']:.0f} MiB" if r.get("peak_rss_mib") else ""
            ratio = ""
            if ours and r is not ours and r.get("median_s"):
                if r.get("rate") and ours.get("rate"):
                    ratio = f"{ours['rate'] / r['rate']:.1f}×"
                else:
                    ratio = f"{r['median_s'] / ours['median_s']:.1f}×"
            lines.append(f"| {case} | {r['impl']} | {med} | {rate} | {rss} | {ratio} | {r.get('note', '')} |")
    return "\n".join(lines)


def is_reference(impl: str) -> bool:
    """Rows that time a lower bound or a part of the work (``"gzip -d alone"``, ``"floor: ..."``),
    not a peer: listed in the tables, left out of the speed-up plot."""
    return "alone" in impl or "only" in impl or impl.startswith("floor")


def plot(results, out) -> None:
    """One horizontal bar per (case, peer): how many times faster ours is (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values = [], []
    for result in results:
        by_case: dict = {}
        for r in result["rows"]:
            by_case.setdefault(r["case"], []).append(r)
        for case, rows in by_case.items():
            ours = next((r for r in rows if r["impl"] == OURS and r.get("rate")), None)
            for r in rows:
                if ours and r is not ours and r.get("rate") and not is_reference(r["impl"]):
                    smaller = r.get("rate_unit") == "B/event"  # a size: fewer bytes is better
                    labels.append(f"{case[:60]} vs {r['impl']}{' (N× smaller)' if smaller else ''}")
                    values.append(r["rate"] / ours["rate"] if smaller else ours["rate"] / r["rate"])
    fig, ax = plt.subplots(figsize=(12, 0.28 * len(values) + 1))
    ax.barh(range(len(values)), values, color=["tab:green" if v >= 1 else "tab:red" for v in values])
    ax.set_yticks(range(len(values)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1, color="k", lw=0.8)
    ax.set_xlabel("ours is N× faster, or N× smaller on disk (same input, same run)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv=None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    out = None
    if "--plot" in args:
        i = args.index("--plot")
        out = args[i + 1]
        del args[i:i + 2]
    results = []
    for path in args:
        with open(path) as f:
            results.append(json.load(f))
        print(table(results[-1]))
        print()
    if out:
        plot(results, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
