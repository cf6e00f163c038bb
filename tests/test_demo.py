"""`neurodata demo` end to end on a small setting (the full run is the README's first command)."""
import pytest
from click.testing import CliRunner

from neurodata.cli import main


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo.png"
    result = CliRunner().invoke(main, ["demo", "--root", str(tmp_path / "root"), "--per-class", "12",
                                       "--epochs", "2", "--time-bins", "4", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for step in ("[1/5] generated saccade-digits (150 samples", "[2/5] installed through --from",
                 "[3/5] frames cache (T=4", "epoch 2/2: train loss", "[5/5] final test accuracy"):
        assert step in result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "root" / "downloads" / "train.zip").exists()


@pytest.mark.slow
def test_demo_without_root_removes_its_temporary_folder(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    result = CliRunner().invoke(main, ["demo", "--per-class", "3", "--epochs", "1", "--time-bins", "2",
                                       "--out", str(tmp_path / "demo.png")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "[5/5] final test accuracy" in result.output and "was removed" in result.output
    assert list(scratch.iterdir()) == []
