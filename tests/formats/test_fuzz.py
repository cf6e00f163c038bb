"""Every reader survives mutated files: it returns events or raises FormatError — no other
exception, no crash, no hang. Each format runs in its own process with a time limit."""
import subprocess
import sys
from pathlib import Path

import pytest

from neurodata.formats import FORMATS

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fuzz.py"


@pytest.mark.parametrize("fmt", FORMATS)
def test_fuzz_reader(fmt):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--format", fmt, "--iterations", "300", "--seed", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert f"{fmt}: 300 mutants, 0 failures" in proc.stdout
