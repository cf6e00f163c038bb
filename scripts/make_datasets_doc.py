#!/usr/bin/env python
"""Write docs/datasets.md from the recipes (the single source of truth for what it states).

    python scripts/make_datasets_doc.py          # rewrite docs/datasets.md
    python scripts/make_datasets_doc.py --check  # exit 1 if docs/datasets.md is out of date

Hand-written parts live in docs/_datasets_intro.md (top) and docs/_datasets_notes.md (bottom).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from neurodata.datasets import REGISTRY, get  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"


def render() -> str:
    out = [(DOCS / "_datasets_intro.md").read_text().rstrip(), ""]
    out += ["| name | dataset | download | size | classes | sensor (W, H, P) | splits | licence |",
            "|---|---|---|---|---|---|---|---|"]
    recipes = [get(name).recipe for name in REGISTRY]
    for r in recipes:
        out.append(f"| `{r.name}` | {r.title} | {r.download} | {r.size_text(source=False)} | {len(r.classes)} | "
                   f"{r.sensor_size} | {', '.join(r.splits)}, all | {r.licence} |")
    for r in recipes:
        out += ["", f"## {r.title} (`{r.name}`)", ""]
        if r.homepage:
            out.append(f"Homepage: {r.homepage}")
            out.append("")
        exact = r.download_size
        size = f"{r.size_text()} ({exact} bytes, pinned)" if exact is not None else r.size_text()
        out.append(f"Download size: {size}")
        out.append("")
        out.append("Files (names as the original host serves them):")
        out.append("")
        for res in r.resources:
            aliases = f" (also accepted as {', '.join(res.aliases)})" if res.aliases else ""
            where = ", ".join(res.urls) if res.urls else "manual download"
            split = f" [{', '.join(res.splits)}]" if res.splits else ""
            nbytes = f", {res.size} bytes" if res.size is not None else ""
            out.append(f"- `{res.filename}`{aliases}{split}: {res.checksum or 'no checksum (generated)'}{nbytes}; {where}")
        if r.manual_instructions:
            out += ["", f"Manual download: {r.manual_instructions} Then `neurodata fetch {r.name} --from <folder>`."]
        counts = ", ".join(f"{k}: {v}" for k, v in r.sample_counts.items()) or "unknown"
        out += [
            "",
            f"- Classes ({len(r.classes)}; label `i` is the `i`-th): {', '.join(r.classes)}",
            f"- Split rule: {r.split_rule}",
            f"- Sample counts: {counts}",
            f"- Orientation: {r.orientation}",
            f"- Time origin: {r.time_origin}",
            f"- Citation: {r.citation}",
            f"- Licence: {r.licence}",
        ]
    notes = DOCS / "_datasets_notes.md"
    if notes.exists():
        out += ["", notes.read_text().rstrip()]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    text = render()
    target = DOCS / "datasets.md"
    if args.check:
        if not target.exists() or target.read_text() != text:
            print("docs/datasets.md is out of date: run python scripts/make_datasets_doc.py")
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
