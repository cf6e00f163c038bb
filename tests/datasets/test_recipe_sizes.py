"""Download sizes: exact (pinned Resource.size) beats the display-only approximate size; shown by
``Recipe.size_text``, ``available()`` and ``neurodata list``."""
import re
from dataclasses import replace

import pytest
from click.testing import CliRunner

from neurodata.cli import main
from neurodata.datasets import REGISTRY, available, get
from neurodata.datasets._recipe import Recipe, Resource, format_bytes

APPROX = "≈ 1.1 GB (source: https://example.org/page: \"1.1 GB\")"


def _recipe(sizes, approx=None, download="automatic"):
    return Recipe(name="x", title="X", resources=tuple(Resource(f"f{i}", (), None, size=s) for i, s in enumerate(sizes)),
                  classes=("a",), sensor_size=(1, 1, 1), splits=("train",), licence="", citation="",
                  orientation="", time_origin="", split_rule="", download=download, approx_download_size=approx)


@pytest.mark.parametrize("n, text", [(0, "0 B"), (999, "999 B"), (1000, "1.00 kB"), (1500, "1.50 kB"),
                                     (25_300_000, "25.3 MB"), (1_011_893_601, "1.01 GB"),
                                     (255_000_000_000, "255 GB"), (12 * 10**12, "12.0 TB"), (5 * 10**15, "5000 TB")])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


def test_size_text_prefers_exact_then_generated_then_approx():
    assert _recipe([1000, 2000], APPROX).download_size == 3000
    assert _recipe([1000, 2000], APPROX).size_text() == "3.00 kB"          # exact sizes win
    assert _recipe([1000, None], APPROX).download_size is None             # one unknown size: not exact
    assert _recipe([1000, None], APPROX).size_text() == APPROX
    assert _recipe([1000, None], APPROX).size_text(source=False) == "≈ 1.1 GB"
    assert _recipe([None], None).size_text() == "unknown"
    assert _recipe([None], APPROX, download="generated").size_text() == "generated"
    assert _recipe([], None).size_text() == "unknown"


def test_every_registered_size_is_exact_sourced_or_unknown():
    for name in REGISTRY:
        r = get(name).recipe
        if r.approx_download_size is not None:
            assert re.fullmatch(r"≈ [\d.]+ [kMGT]?B \(source: https?://\S+.*\)", r.approx_download_size), name
        for res in r.resources:
            assert res.size is None or (isinstance(res.size, int) and res.size > 0), (name, res.filename)


def test_available_and_cli_list_show_sizes(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURODATA_HOME", str(tmp_path))
    rows = {row["name"]: row for row in available()}
    assert rows["saccade-digits"]["size"] == "generated"
    assert rows["dvsgesture"]["size"].startswith("≈ 3 GB (source: http")
    assert rows["dvsgesture"]["size_bytes"] is None
    out = CliRunner().invoke(main, ["list"], catch_exceptions=False).output
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.split()}
    assert "≈ 3 GB" in lines["dvsgesture"] and "source:" not in lines["dvsgesture"]
    assert "generated" in lines["saccade-digits"].split("generated", 1)[1]   # download mode and size
    for name in REGISTRY:
        expected = get(name).recipe.size_text(source=False)
        assert expected in lines[name]


def test_cli_list_shows_an_exact_size_when_every_file_is_pinned(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURODATA_HOME", str(tmp_path))
    cls = get("nmnist")
    pinned = replace(cls.recipe, resources=tuple(replace(r, size=500_000_000) for r in cls.recipe.resources),
                     approx_download_size=APPROX)
    monkeypatch.setattr(cls, "recipe", pinned)
    assert {row["name"]: row for row in available()}["nmnist"]["size_bytes"] == 1_000_000_000
    out = CliRunner().invoke(main, ["list"], catch_exceptions=False).output
    line = next(line for line in out.splitlines() if line.startswith("nmnist "))
    assert "1.00 GB" in line and "≈" not in line
