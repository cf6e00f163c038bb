"""scripts/train.py trains each dataset's reference model on miniature archives in the real
layouts (installed with --from; --no-verify since the miniatures are not the published files)."""
import importlib.util
import warnings
from pathlib import Path

import pytest

from tests.helpers import run_subprocess
from tests.datasets.builders import caltech_archive, cifar_archives, gesture_archive, nmnist_archives

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train.py"


def _train_module():
    spec = importlib.util.spec_from_file_location("train_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _files(name, tmp_path):
    if name == "nmnist":
        return nmnist_archives(tmp_path, per_class=1)[0]
    if name == "cifar10dvs":
        return cifar_archives(tmp_path, indices=(0, 950))[0]
    if name == "dvsgesture":
        return gesture_archive(tmp_path)[0]
    files = caltech_archive(tmp_path, per_class=3)[0]
    return {"N-Caltech101-archive.zip": files["Caltech101.zip"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nmnist", "cifar10dvs", "dvsgesture", "ncaltech101"])
def test_train_script_runs(name, tmp_path, capsys):
    args = ["--dataset", name, "--root", str(tmp_path / "root"), "--epochs", "1", "--channels", "4",
            "--batch-size", "4", "--workers", "0", "--time-bins", "4", "--limit", "8"]
    src = tmp_path / "downloads"
    src.mkdir()
    for fname, data in _files(name, tmp_path).items():
        (src / fname).write_bytes(data)
    args += ["--from", str(src), "--no-verify"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _train_module().main(args) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1: train loss" in out and "final test accuracy" in out


@pytest.mark.slow
def test_train_script_under_torchrun_ddp(tmp_path):
    import sys

    src = tmp_path / "downloads"
    src.mkdir()
    for fname, data in _files("nmnist", tmp_path).items():
        (src / fname).write_bytes(data)
    root = Path(__file__).resolve().parents[1]
    proc = run_subprocess(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--rdzv_backend=c10d",
         "--rdzv_endpoint=127.0.0.1:0", str(SCRIPT), "--dataset", "nmnist", "--ddp", "--root", str(tmp_path / "root"),
         "--from", str(src), "--no-verify", "--epochs", "1", "--channels", "4", "--batch-size", "4",
         "--workers", "0", "--time-bins", "4", "--limit", "8"],
        tmp_path, {"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}, attempts=3)
    # rank 0 alone logs: one header, one epoch line, one final line; the cache was built once
    assert proc.stdout.count("epoch 1/1: train loss") == 1 and proc.stdout.count("final test accuracy") == 1
    assert len(list((tmp_path / "root" / "nmnist").glob("events-train-*.h5"))) == 1


@pytest.mark.parametrize("option", ["--time-bins", "--limit", "--epochs", "--batch-size", "--channels"])
def test_train_script_refuses_non_positive_counts(option, capsys):
    """``--time-bins 0`` trained with the default T and ``--limit 0`` on everything (0 read as
    "not given"); ``--epochs 0`` ended in IndexError: each is refused by the argument parser."""
    with pytest.raises(SystemExit) as exit_:
        _train_module().parse(["--dataset", "nmnist", option, "0"])
    assert exit_.value.code == 2 and "must be a positive integer" in capsys.readouterr().err
