import json
import os
from pathlib import Path

# Without a GPU, Triton's kernels run on CPU tensors through its interpreter, which must be
# switched on before triton is first imported (tests/snncore/test_triton_kernels.py).
if not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("NEURODATA_SAMPLES", ROOT.parent / "shared" / "samples"))


@pytest.fixture(scope="session")
def samples_dir():
    """The shared real recordings (``../shared/samples``); tests using it skip when it is absent."""
    if not (SAMPLES / "REFERENCE.json").exists():
        pytest.skip(f"real sample recordings not found at {SAMPLES} (set NEURODATA_SAMPLES)")
    return SAMPLES


@pytest.fixture(scope="session")
def reference(samples_dir):
    """``REFERENCE.json``: per sample file, event count and sha256 of each canonical column."""
    return json.loads((samples_dir / "REFERENCE.json").read_text())
