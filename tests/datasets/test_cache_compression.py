"""The ``cache_compression`` option of the datasets layer: separate cache files and keys, the
default's file name and key unchanged, the same events either way."""
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


def test_uncompressed_cache_is_a_separate_file(nmnist_cls):
    cls, root = nmnist_cls
    gz = cls(root=root, split="test")
    raw = cls(root=root, split="test", cache_compression=None)
    # the default keeps the key (and so the file name) it had before the option existed
    assert gz.cache_key == content_key(gz.recipe.name, gz.recipe.cache_version, "test", {},
                                       [(r.filename, r.checksum) for r in gz._resources()])
    assert raw.cache_key != gz.cache_key and raw.cache_path != gz.cache_path
    assert raw.cache_path.name.startswith("events-test-raw-") and "-raw-" not in gz.cache_path.name
    with h5py.File(gz.cache_path) as f, h5py.File(raw.cache_path) as g:
        assert f.attrs["compression"] == "gzip" and f["events/dt"].compression == "gzip"
        assert g.attrs["compression"] == "none" and g["events/dt"].chunks is None
    assert len(raw) == len(gz) and list(raw.targets) == list(gz.targets)
    for i in range(len(gz)):
        assert np.array_equal(gz[i][0], raw[i][0]) and gz[i][1] == raw[i][1]
    # a gzip file put where the uncompressed one belongs is stale (other key): rebuilt, not served
    raw.store.close()
    raw.cache_path.write_bytes(gz.cache_path.read_bytes())
    with pytest.warns(UserWarning, match="stale"):
        again = cls(root=root, split="test", cache_compression=None)
    with h5py.File(again.cache_path) as g:
        assert g.attrs["compression"] == "none"


def test_option_validated_and_passed_by_load(nmnist_cls, tmp_path):
    cls, root = nmnist_cls
    with pytest.raises(ValueError, match="cache_compression must be one of"):
        cls(root=root, split="test", cache_compression="lzf")
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
