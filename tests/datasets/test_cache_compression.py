"""The ``cache_compression`` option of the datasets layer: one cache file and key per layout,
the same events from each, and a file of one layout never served for another."""
import h5py
import numpy as np
import pytest

import neurodata
from neurodata.cache import content_key
from neurodata.datasets import NMNIST
from tests.datasets.builders import mini_class, nmnist_archives


@pytest.fixture
def nmnist_cls(http_server, tmp_path):
    files, expected = nmnist_archives(tmp_path)
    for fname, data in files.items():
        http_server.add(f"nmnist/{fname}", data)
    return mini_class(NMNIST, files, http_server.url("nmnist").rstrip("/"), tmp_path), tmp_path / "root"


def test_each_layout_is_a_separate_file(nmnist_cls):
    cls, root = nmnist_cls
    default = cls(root=root, split="test")
    gz = cls(root=root, split="test", cache_compression="gzip")
    raw = cls(root=root, split="test", cache_compression=None)
    assert default.cache_key == content_key(default.recipe.name, default.recipe.cache_version, "test", {},
                                            [(r.filename, r.checksum) for r in default._resources()])
    assert len({default.cache_key, gz.cache_key, raw.cache_key}) == 3
    assert len({default.cache_path, gz.cache_path, raw.cache_path}) == 3
    assert raw.cache_path.name.startswith("events-test-raw-") and gz.cache_path.name.startswith("events-test-gzip-")
    assert default.cache_path.name.startswith("events-test-") and default.cache_path.name.count("-") == 2
    with h5py.File(default.cache_path) as f, h5py.File(gz.cache_path) as g, h5py.File(raw.cache_path) as r:
        assert f.attrs["compression"] == "huffman" and "events/code" in f and "events/dt" not in f
        assert g.attrs["compression"] == "gzip" and g["events/dt"].compression == "gzip"
        assert r.attrs["compression"] == "none" and r["events/dt"].chunks is None
    for other in (gz, raw):
        assert len(other) == len(default) and list(other.targets) == list(default.targets)
        for i in range(len(default)):
            assert np.array_equal(default[i][0], other[i][0]) and default[i][1] == other[i][1]
    # a file of another layout put where the uncompressed one belongs is stale (other key): rebuilt
    raw.store.close()
    raw.cache_path.write_bytes(default.cache_path.read_bytes())
    with pytest.warns(UserWarning, match="stale"):
        again = cls(root=root, split="test", cache_compression=None)
    with h5py.File(again.cache_path) as g:
        assert g.attrs["compression"] == "none"


def test_option_validated_and_passed_by_load(nmnist_cls, tmp_path):
    cls, root = nmnist_cls
    with pytest.raises(ValueError, match="cache_compression must be one of"):
        cls(root=root, split="test", cache_compression="lzf")
    with pytest.raises(ValueError, match="cache_compression must be one of"):
        cls(root=root, split="test", cache_compression="none")  # None, not the attribute's spelling
    (tmp_path / "src").mkdir()
    files, _ = nmnist_archives(tmp_path / "src")
    folder = tmp_path / "manual"
    folder.mkdir()
    for fname, data in files.items():
        (folder / fname).write_bytes(data)
    with pytest.warns(UserWarning):  # verify=False warns: the miniature archives have other checksums
        ds = neurodata.load("nmnist", split="test", root=tmp_path / "other", source=folder, download=False,
                            verify=False, cache_compression=None)
    assert ds.cache_compression is None and "-raw-" in ds.cache_path.name and len(ds) > 0
