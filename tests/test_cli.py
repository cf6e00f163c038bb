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


def _downloads(tmp_path, files):
    """A folder holding ``files`` ({name: bytes}), as a manual download would."""
    folder = tmp_path / "dl"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


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
    # an existing output is kept (a typo replaced recordings), the input never replaced
    before = dst.read_bytes()
    assert "pass --force" in run("convert", src, dst, "--format", "evt3", code=2)
    assert "is the input file" in run("convert", src, src, "--format", "evt3", "--force", code=2)
    assert dst.read_bytes() == before and np.array_equal(neurodata.read(src, format="evt2"), ev)
    assert "wrote 500 events" in run("convert", src, dst, "--format", "evt3", "--force")
    assert neurodata.inspect(dst).format == "evt3" and np.array_equal(neurodata.read(dst), ev)
    garbage = tmp_path / "g.raw"
    garbage.write_bytes(b"% evt 3.0\n% end\n" + b"\x01")
    with pytest.warns(RuntimeWarning, match="trailing byte"):  # a documented recovery
        assert "events:      0" in run("inspect", garbage)
    unknown = tmp_path / "x.unknown"
    unknown.write_bytes(b"hello")
    assert "error:" in run("inspect", unknown, code=2)


def test_fetch_verify_cache_show(run, tmp_path):
    files, expected = nmnist_archives(tmp_path, per_class=1)
    downloads = _downloads(tmp_path, files)
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
    assert "wrote" in run("show", "nmnist:0", "--root", root, "--out", png, "--no-verify")
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


def test_cache_rm_only_removes_a_dataset_folder(run, tmp_path):
    """``cache rm`` takes a registered dataset name: ``..`` or an absolute path used to be joined to
    the root and deleted (``--downloads`` removed whole folders outside the cache)."""
    root, victim = tmp_path / "home", tmp_path / "victim"
    (root / "nmnist").mkdir(parents=True)
    victim.mkdir()
    (victim / "keep.h5").write_bytes(b"x")
    for name in ("..", str(victim), "../victim"):
        assert "unknown dataset" in run("cache", "rm", name, "--root", root, "--downloads", code=2)
        assert "unknown dataset" in run("cache", "rm", name, "--root", root, code=2)
    assert (victim / "keep.h5").exists() and (root / "nmnist").is_dir()
    assert "removed" in run("cache", "rm", "NMNIST", "--root", root, "--downloads")
    assert not (root / "nmnist").exists()


def test_user_mistakes_end_in_one_error_line(run, tmp_path):
    """What a person can get wrong ends in ``error: ...`` and a non-zero exit, never a traceback;
    ``--frames`` is checked before anything is downloaded or built."""
    ev = random_events(50, (16, 8, 2))
    src = tmp_path / "a.raw"
    neurodata.write(src, ev, "evt2", sensor_size=(16, 8, 2))
    root = tmp_path / "r"
    for args, code, says in [
        (("fetch", "nmnist", "--root", root, "--frames", "foo=3"), 2, "unexpected keyword"),
        (("fetch", "nmnist", "--root", root, "--frames", "n_time_bins=4", "--frames", "dtype=foo"), 2, "dtype must be"),
        (("fetch", "nmnist", "--root", root, "--frames", "n_time_bins=4", "--frames", "n_time_bins=5"), 2, "twice"),
        (("fetch", "nmnist", "--root", root, "--jobs", "0"), 2, "--jobs"),
        (("fetch", "nmnist", "--root", src, "--from", tmp_path), 1, "error:"),  # a file as the root
        (("inspect", src, "--format", "foo"), 1, "error:"),
        (("convert", src, tmp_path / "b.raw", "--format", "evt3", "--sensor-size", "10"), 2, "--sensor-size"),
        (("convert", src, tmp_path / "b.raw", "--format", "evt3", "--sensor-size", "1,2,3,4"), 2, "--sensor-size"),
        (("convert", src, tmp_path / "nodir" / "b.raw", "--format", "evt3"), 1, "error:"),
        (("show", "nmnist:abc", "--out", tmp_path / "s.png"), 2, "integer"),
        (("show", "nmnst:0", "--out", tmp_path / "s.png"), 1, "unknown dataset"),
        (("show", src, "--out", tmp_path / "s.gif", "--bins", "0"), 2, "--bins"),
        (("demo", "--dataset", "nope"), 1, "unknown dataset"),
        (("demo", "--epochs", "0"), 2, "--epochs"),
        (("demo", "--out", tmp_path / "nodir" / "d.png"), 2, "does not exist"),
    ]:
        out = run(*args, code=code)
        assert says in out and "Traceback" not in out, (args, out)
    assert not (root / "nmnist").exists()  # nothing fetched for the refused --frames


def test_show_and_verify_edge_cases(run, tmp_path):
    pytest.importorskip("matplotlib")
    downloads = _downloads(tmp_path, nmnist_archives(tmp_path, per_class=1)[0])
    root = tmp_path / "root"
    run("fetch", "nmnist", "--root", root, "--from", downloads, "--no-verify", "--split", "train")
    assert "out of range" in run("show", "nmnist:10", "--root", root, "--out", tmp_path / "s.png", "--no-verify",
                                 code=2)
    (root / "nmnist" / "test.zip").mkdir()  # a folder where a download belongs
    assert "error:" in run("verify", "nmnist", "--root", root, code=1)
    shd = tmp_path / "shd.raw"  # a one-row "sensor" (audio datasets): a GIF used to crash in matplotlib
    neurodata.write(shd, random_events(200, (700, 1, 2)), "evt2", sensor_size=(700, 1, 2))
    run("show", shd, "--out", tmp_path / "a.gif", "--bins", "2")
    assert (tmp_path / "a.gif").read_bytes()[:3] == b"GIF"


def test_fetch_reports_every_split_and_inspect_unsorted(run, tmp_path):
    """One failing dataset does not hide the others' results (with --jobs 2 the first error used
    to end the run); inspect shows the time range of unsorted events as min .. max and says so;
    --frames numbers written as 1e3 are ints."""
    downloads = _downloads(tmp_path, nmnist_archives(tmp_path, per_class=1)[0])
    root = tmp_path / "root"
    for jobs in ("1", "2"):
        out = run("fetch", "nmnist", "dvsgesture", "--root", root, "--from", downloads, "--no-verify",
                  "--split", "train", "--jobs", jobs, "--frames", "n_time_bins=1e1", code=1)
        assert "nmnist train: 10 samples ready" in out and "error: dvsgesture train:" in out
        assert "1 of 2 dataset splits could not be prepared" in out
    ev = random_events(20, (16, 8, 2))
    ev["t"] = np.arange(20)[::-1] * 10
    src = tmp_path / "u.dat"  # DAT keeps the order it is given (EVT writers refuse unsorted events)
    neurodata.write(src, ev, "dat", sensor_size=(16, 8, 2))
    assert "0 .. 190 µs" in run("inspect", src) and "NOT sorted" in run("inspect", src)
