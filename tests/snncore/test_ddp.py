"""DDP through torchrun on 2 CPU processes (gloo): replicas stay identical and match one process
trained on the equivalent global batch; validation firing rates are those of all ranks' samples."""
import json
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import run_subprocess

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _run(args, tmp_path, attempts=1):
    run_subprocess(args, tmp_path, {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}, attempts=attempts)


@pytest.mark.slow
def test_ddp_two_processes_match_single_process(tmp_path):
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=0",
          "--rdzv_backend=c10d", "--rdzv_endpoint=127.0.0.1:0", str(WORKER), str(tmp_path), "8"], tmp_path,
         attempts=3)
    _run([sys.executable, str(WORKER), str(tmp_path), "16"], tmp_path)
    r0 = torch.load(tmp_path / "weights-rank0-of-2.pt")
    r1 = torch.load(tmp_path / "weights-rank1-of-2.pt")
    single = torch.load(tmp_path / "weights-rank0-of-1.pt")
    initial = torch.load(tmp_path / "initial.pt")
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k                        # replicas identical
        torch.testing.assert_close(r0[k], single[k], rtol=1e-5, atol=1e-6)  # = one process, batch 16
    assert not torch.allclose(r0["0.weight"], initial["0.weight"])  # it trained
    rates = [json.loads((tmp_path / f"rates-rank{r}-of-{w}.json").read_text()) for r, w in ((0, 2), (1, 2), (0, 1))]
    assert rates[0] == rates[1] and set(rates[0]) == set(rates[2]) == {"1", "3"}  # summed over ranks, no "module."
    for name in rates[2]:  # the single process's rates over all samples (rank 0's shard alone before the fix)
        assert rates[0][name] == pytest.approx(rates[2][name], abs=1e-6), name
