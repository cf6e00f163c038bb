"""Every ```python block in docs/*.md runs (offline, in a temporary folder and cache)."""
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks():
    for md in sorted(p for p in DOCS.glob("*.md") if not p.name.startswith("_")):
        for k, m in enumerate(BLOCK.finditer(md.read_text())):
            yield pytest.param(m.group(1), id=f"{md.name}-{k}")


@pytest.mark.parametrize("code", list(_blocks()))
def test_doc_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEURODATA_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("NEURODATA_OFFLINE", "1")
    exec(compile(code, "<doc example>", "exec"), {"__name__": "__doc_example__"})


def test_datasets_page_matches_the_recipes():
    import subprocess
    import sys

    script = DOCS.parent / "scripts" / "make_datasets_doc.py"
    proc = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
