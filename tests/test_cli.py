"""The neurodata command line, through click's CliRunner (offline)."""
import numpy as np
import pytest
from click.testing import CliRunner

import neurodata
from neurodata.cli import main
from neurodata.datasets import REGISTRY
from tests.datasets.builders import nmnist_archives
from tests.helpers import random_events


@pytest.fixture
def run(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURODATA_HOME", str(tmp_path / "home"))
    runner = CliRunner()

    def invoke(*args, code=0):
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output
    return invoke


def test_help_and_list(run):
    assert "fetch" in run("--help")
    out = run("list")
    for name in REGISTRY:
        assert name in out
    assert "md5:20959b8e626244a1b502305a9e6e2031" in run("info", "nmnist")
    assert "unknown dataset" in run("info", "nope", code=2)


def test_inspect_and_convert(run, tmp_path):
    ev = random_events(500, (64, 48, 2))
    src = tmp_path / "a.raw"
    neurodata.write(src, ev, "evt2", sensor_size=(64, 48, 2))
    out = run("inspect", src)
    assert "evt2" in out and "events:      500" in out and "(64, 48, 2)" in out
    dst = tmp_path / "b.aedat4"
    assert "wrote 500 events" in run("convert", src, dst, "--format", "aedat4")
    assert np.array_equal(neurodata.read(dst), ev)
    garbage = tmp_path / "g.raw"
    garbage.write_bytes(b"% evt 3.0\n% end\n" + b"\x01")
    with pytest.warns(RuntimeWarning, match="trailing byte"):  # a documented recovery
        assert "events:      0" in run("inspect", garbage)
    unknown = tmp_path / "x.unknown"
    unknown.write_bytes(b"hello")
    assert "error:" in run("inspect", unknown, code=2)


def test_fetch_verify_cache_show(run, tmp_path):
    files, expected = nmnist_archives(tmp_path, per_class=1)
    downloads = tmp_path / "dl"
    downloads.mkdir()
    for name, data in files.items():
        (downloads / name).write_bytes(data)
    root = tmp_path / "root"
    out = run("fetch", "nmnist", "--root", root, "--from", downloads, "--no-verify", "--frames", "n_time_bins=4")
    assert "nmnist train: 10 samples ready" in out and "nmnist test: 10 samples ready" in out
    assert sorted(p.name.split("-")[0] for p in (root / "nmnist").glob("*.h5")) == ["events"] * 2 + ["frames"] * 2
    # the miniature archives are not the published files: verify says so, exit code 1
    out = run("verify", "nmnist", "--root", root, code=1)
    assert "CORRUPT" in out and "ok        events-" in out
    assert str(root) in run("cache", "path", "--root", root)
    assert "nmnist/" in run("cache", "ls", "--root", root)
    png = tmp_path / "s.png"
    pytest.importorskip("matplotlib")
    assert "wrote" in run("show", "nmnist:0", "--root", root, "--out", png)
    assert png.stat().st_size > 0
    gif = tmp_path / "s.gif"
    raw = tmp_path / "a.raw"
    neurodata.write(raw, expected["train"][0][1], "evt3", sensor_size=(34, 34, 2))
    run("show", raw, "--out", gif, "--bins", "3")
    assert gif.read_bytes()[:3] == b"GIF"
    assert "removed 4 cache file(s)" in run("cache", "rm", "nmnist", "--root", root)


def test_manual_dataset_says_what_to_do(run, tmp_path):
    out = run("fetch", "dvsgesture", "--root", tmp_path / "r", code=1)
    assert "DvsGesture.tar.gz" in out and "--from" in out


def test_python_dash_m_runs_the_cli():
    """``python -m neurodata`` is the ``neurodata`` command (e.g. where the venv's scripts are not on PATH)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "neurodata", "list"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "nmnist" in out.stdout and "dvsgesture" in out.stdout
    usage = subprocess.run([sys.executable, "-m", "neurodata", "--help"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 0 and usage.stdout.startswith("Usage: neurodata ")
