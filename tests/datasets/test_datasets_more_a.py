"""SHD, SSC, N-TIDIGITS, ASL-DVS, POKER-DVS, ST-MNIST, DVS-Lip and Bullying10K end to end,
offline: miniature archives in the real layouts served from 127.0.0.1, fetched, verified, cached
and loaded; labels, splits, orientation, time origin and metadata as documented in
docs/datasets.md; manual downloads print exact instructions."""
import io
import pickle
import warnings
from urllib.parse import quote

import numpy as np
import pytest

from neurodata import ChecksumError, DownloadError, FormatError
from neurodata.datasets.asldvs import ASLDVS, content_manifest
from neurodata.datasets.bullying10k import Bullying10K
from neurodata.datasets.dvslip import DVSLip
from neurodata.datasets.heidelberg import SHD, SSC
from neurodata.datasets.ntidigits import NTIDIGITS
from neurodata.datasets.pokerdvs import POKERDVS
from neurodata.datasets.stmnist import STMNIST
from tests.datasets import builders_more_a as b
from tests.datasets.builders import mini_class, zip_bytes

pytest.importorskip("scipy.io")  # writes the .mat fixtures (the reader itself does not use scipy)


def _mini(cls, server, tmp_path, files):
    for name, data in files.items():  # requests sends a space in a file name as %20
        server.add(f"{cls.recipe.name}/{quote(name)}", data)
    return mini_class(cls, files, server.url(cls.recipe.name).rstrip("/"), tmp_path)


def _sources(ds):
    return [ds.metadata(i)["source"] for i in range(len(ds))]


def _audio_expect(times, units):
    t = np.rint(times.astype(np.float64) * 1e6).astype(np.int64)
    order = np.argsort(t, kind="stable")
    return t[order], units[order].astype(np.int64)


# --- SHD / SSC --------------------------------------------------------------------------------
def test_shd_fetch_cache_load_and_speakers(http_server, tmp_path):
    files, expected = b.heidelberg_files(tmp_path, "shd", ("train", "test"), 20)
    cls = _mini(SHD, http_server, tmp_path, files)
    root = tmp_path / "root"
    train = cls(root=root, split="train")
    assert len(train) == 6 and train.sensor_size == (700, 1, 1) and len(train.classes) == 20
    for i, (times, units, label, speaker) in enumerate(expected["train"]):
        ev, lab = train[i]
        t, x = _audio_expect(times, units)
        assert lab == label and np.array_equal(ev["t"], t) and np.array_equal(ev["x"], x)
        assert not ev["y"].any() and not ev["p"].any()
        assert train.metadata(i) == {"source": f"shd_train.h5[{i}]", "t_offset": 0, "speaker": speaker}
    assert len(train[0][0]) == 0                                          # an empty sample stays empty
    assert train.speakers.tolist() == [s[3] for s in expected["train"]]
    n = len(http_server.log)
    assert len(cls(root=root, split="train")) == 6 and len(http_server.log) == n   # cache hit, no request
    every = cls(root=root, split="all")
    assert every.targets.tolist() == [s[2] for s in expected["train"] + expected["test"]]


def test_shd_warns_when_file_keys_disagree(http_server, tmp_path):
    import h5py

    files, _ = b.heidelberg_files(tmp_path, "shd", ("test",), 20)
    h5 = tmp_path / "x.h5"
    h5.write_bytes(__import__("zipfile").ZipFile(io.BytesIO(files["shd_test.h5.zip"])).read("shd_test.h5"))
    with h5py.File(h5, "a") as f:
        del f["extra/keys"]
        f["extra/keys"] = np.array([k.encode() for k in reversed(SHD.recipe.classes)])
    files = {"shd_test.h5.zip": zip_bytes({"shd_test.h5": h5.read_bytes()})}
    cls = _mini(SHD, http_server, tmp_path, files)
    with pytest.warns(UserWarning, match="extra/keys"):
        cls(root=tmp_path / "root", split="test")


def test_shd_keys_as_published_do_not_warn(http_server, tmp_path):
    import h5py

    files, _ = b.heidelberg_files(tmp_path, "shd", ("test",), 20)
    h5 = tmp_path / "x.h5"
    h5.write_bytes(__import__("zipfile").ZipFile(io.BytesIO(files["shd_test.h5.zip"])).read("shd_test.h5"))
    with h5py.File(h5, "a") as f:  # German spelling with an umlaut, decomposed (u + U+0308), matches 'fuenf'
        del f["extra/keys"]
        f["extra/keys"] = np.array([k.replace("fuenf", "fu\u0308nf").encode() for k in SHD.recipe.classes])
    files = {"shd_test.h5.zip": zip_bytes({"shd_test.h5": h5.read_bytes()})}
    cls = _mini(SHD, http_server, tmp_path, files)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cls(root=tmp_path / "root", split="test")


def test_ssc_three_splits_and_bad_split(http_server, tmp_path):
    files, expected = b.heidelberg_files(tmp_path, "ssc", ("train", "valid", "test"), 35, per_split=4)
    cls = _mini(SSC, http_server, tmp_path, files)
    root = tmp_path / "root"
    for split in ("train", "valid", "test"):
        ds = cls(root=root, split=split)
        assert ds.targets.tolist() == [s[2] for s in expected[split]]
        assert _sources(ds) == [f"ssc_{split}.h5[{i}]" for i in range(4)]
        # only this split's archive was fetched
        assert {r.path for r in http_server.log} <= {f"ssc/ssc_{s}.h5.zip" for s in ("train", "valid", "test")}
    every = cls(root=root, split="all")
    assert len(every) == 12 and _sources(every)[4] == "ssc_valid.h5[0]"
    with pytest.raises(ValueError, match="split must be one of"):
        cls(root=root, split="validation")


def test_heidelberg_rejects_out_of_range_units(http_server, tmp_path):
    import h5py

    p = tmp_path / "bad.h5"
    with h5py.File(p, "w") as f:
        t = f.create_dataset("spikes/times", (1,), dtype=h5py.vlen_dtype(np.float32))
        u = f.create_dataset("spikes/units", (1,), dtype=h5py.vlen_dtype(np.uint16))
        t[0], u[0] = np.array([0.1], np.float32), np.array([700], np.uint16)
        f["labels"] = np.array([0], np.uint8)
    files = {"shd_test.h5.zip": zip_bytes({"shd_test.h5": p.read_bytes()})}
    cls = _mini(SHD, http_server, tmp_path, files)
    with pytest.raises(FormatError, match=r"x\[0\] = 700 lies outside"):
        cls(root=tmp_path / "root", split="test")
    assert not list((tmp_path / "root" / "shd").glob("*.h5"))


# --- N-TIDIGITS -------------------------------------------------------------------------------
def test_ntidigits_single_digits_and_sequences(http_server, tmp_path):
    files, expected = b.ntidigits_file(tmp_path)
    cls = _mini(NTIDIGITS, http_server, tmp_path, files)
    root = tmp_path / "root"
    train = cls(root=root, split="train")
    singles = [r for r in expected["train"] if len(r[0].split("-")[-1]) == 1]
    assert len(train) == 3 and train.sensor_size == (64, 1, 1)
    assert train.targets.tolist() == [train.classes.index(r[0].split("-")[-1]) for r in singles] == [7, 10, 0]
    for i, (key, ts, addr) in enumerate(singles):
        ev, _ = train[i]
        t, x = _audio_expect(ts, addr)
        assert np.array_equal(ev["t"], t) and np.array_equal(ev["x"], x) and not ev["p"].any()
    assert train.metadata(0) == {"source": "train/man-im-a-7", "t_offset": 0, "speaker_type": "man",
                                 "speaker": "im", "production": "a", "digits": "7"}
    everything = cls(root=root, split="all", single_digits=False)
    assert len(everything) == 6 and everything.cache_path != cls(root=root, split="all").cache_path
    assert everything.targets.tolist() == [7, 10, -1, 0, 9, -1]
    assert everything.metadata(2)["digits"] == "1z3"
    with pytest.raises(TypeError, match="single_digits"):
        cls(root=root, split="train", single_digits="no")


# --- ASL-DVS ----------------------------------------------------------------------------------
@pytest.fixture
def asl(http_server, tmp_path):
    files, raw = b.asldvs_file()
    cls = _mini(ASLDVS, http_server, tmp_path, files)
    cls.expected_count, cls.required_letters = len(raw), ("a", "i", "k", "y")
    return cls, raw, files, tmp_path / "root"


def test_asldvs_nested_mat_labels_orientation(asl):
    cls, raw, _, root = asl
    every = cls(root=root, split="all")
    assert len(every) == 20 and every.sensor_size == (240, 180, 2) and len(every.classes) == 24
    assert sorted(set(every.targets.tolist())) == [0, 8, 9, 23]           # a, i, k (after j), y
    stored = cls(root=root, split="all", orientation="stored")
    sj = cls(root=root, split="all", orientation="spikingjelly")
    for i in range(len(every)):
        src = every.metadata(i)["source"]
        name = src.split("!")[-1]
        cols = raw[name]
        assert every.classes[every.targets[i]] == name[0]
        ev, st, s2 = every[i][0], stored[i][0], sj[i][0]
        t0 = int(cols["ts"][0, 0])
        assert every.metadata(i)["t_offset"] == t0 and np.array_equal(ev["t"], cols["ts"][:, 0] - t0)
        assert np.array_equal(st["x"], cols["x"][:, 0]) and np.array_equal(st["y"], cols["y"][:, 0])
        assert np.array_equal(ev["x"], st["x"]) and np.array_equal(ev["y"], 179 - st["y"])    # tonic's flip
        assert np.array_equal(s2["x"], 239 - st["x"]) and np.array_equal(s2["y"], 179 - st["y"])
        assert np.array_equal(ev["p"], cols["pol"][:, 0] > 0)


def test_asldvs_seeded_split_is_deterministic_and_stratified(asl, tmp_path):
    cls, _, _, root = asl
    train, test = cls(root=root, split="train"), cls(root=root, split="test")
    assert len(train) == 16 and len(test) == 4                            # floor(0.8 * 5) = 4 per letter
    assert not set(_sources(train)) & set(_sources(test))
    assert sorted(test.targets.tolist()) == [0, 8, 9, 23]
    assert _sources(cls(root=tmp_path / "other", split="train")) == _sources(train)
    with pytest.raises(ValueError, match="orientation"):
        cls(root=root, split="train", orientation="flipped")


def test_asldvs_content_check_replaces_the_drifting_checksum(asl, tmp_path):
    import dataclasses

    cls, raw, files, root = asl
    cls.recipe = dataclasses.replace(  # no checksum, as in the real recipe: the content check is the verification
        cls.recipe, resources=tuple(dataclasses.replace(r, checksum=None) for r in cls.recipe.resources))
    cls.expected_count = len(raw) + 1
    with pytest.raises(ChecksumError, match="20 .mat members, expected 21"):
        cls(root=root, split="all")
    assert not list((root / "asldvs").glob("*.h5"))
    with pytest.warns(UserWarning, match="verification"):
        ds = cls(root=root, split="all", verify=False)
    assert len(ds) == 20
    with pytest.raises(ChecksumError, match="expected 21"):  # the unverified cache is not served to it
        cls(root=root, split="all")
    m = content_manifest(root / "asldvs" / "ICCV2019_DVS_dataset.zip")
    assert m["count"] == 20 and m["per_class"]["a"] == 5 and "j" not in m["per_class"] and not m["unlabelled"]
    cls.expected_count = 20
    cls.expected_manifest = "0" * 64
    with pytest.raises(ChecksumError, match="manifest sha256"):
        cls(root=tmp_path / "r2", split="all")
    cls.expected_manifest = m["sha256"]
    assert len(cls(root=tmp_path / "r3", split="all")) == 20


def test_asldvs_from_manual_folder_with_outer_zip(tmp_path):
    files, raw = b.asldvs_file(letters=("b",), per_letter=2)
    manual = tmp_path / "downloads"
    manual.mkdir()
    (manual / "ASLDVS.zip").write_bytes(zip_bytes(files))                   # Dropbox's outer zip
    cls = type("Small", (ASLDVS,), {"expected_count": 2})
    with pytest.raises(ChecksumError, match="no samples for letters"):   # only 'b' present
        cls(root=tmp_path / "root", split="all", source=manual)
    with pytest.warns(UserWarning):
        ds = cls(root=tmp_path / "root", split="all", source=manual, verify=False)
    assert len(ds) == 2 and _sources(ds)[0] == "ICCV2019_DVS_dataset.zip!b.zip!b/b_0001.mat"


# --- POKER-DVS --------------------------------------------------------------------------------
def test_pokerdvs_layout_labels_and_time_origin(http_server, tmp_path):
    files, raw = b.pokerdvs_files()
    cls = _mini(POKERDVS, http_server, tmp_path, files)
    test = cls(root=tmp_path / "root", split="test")
    assert len(test) == 12 and test.sensor_size == (35, 35, 2)
    for i in range(len(test)):
        name = test.metadata(i)["source"]
        arr = raw[name]
        ev, label = test[i]
        assert test.classes[label] == name.split("/")[1] and name.startswith("pips_test/")
        assert test.metadata(i)["t_offset"] == arr[0, 0] and np.array_equal(ev["t"], arr[:, 0] - arr[0, 0])
        assert np.array_equal(ev["x"], arr[:, 1]) and np.array_equal(ev["y"], arr[:, 2])
        assert np.array_equal(ev["p"], arr[:, 3])
    assert test.targets.tolist() == [0] * 3 + [2] * 3 + [1] * 3 + [3] * 3   # member order cl, di, he, sp


# --- ST-MNIST ---------------------------------------------------------------------------------
def _stmnist_reference(st):
    """Loop version of the documented rule: every non-zero taxel entry is an event."""
    rows = []
    for k in range(st.shape[1]):
        for a in range(100):
            if st[a, k] != 0:
                rows.append((int(np.rint(st[100, k] * 1e6)), a % 10, a // 10, int(st[a, k] > 0)))
    rows.sort(key=lambda r: r[0])  # stable: ties keep (column, address) order
    return rows


def test_stmnist_spiketrain_events_split_and_lut(http_server, tmp_path):
    files, raw = b.stmnist_file()
    cls = _mini(STMNIST, http_server, tmp_path, files)
    root = tmp_path / "root"
    every = cls(root=root, split="all")
    assert len(every) == 50 and every.sensor_size == (10, 10, 2)           # the LUT is not a sample
    for i in range(len(every)):
        name = every.metadata(i)["source"]
        ev, label = every[i]
        assert label == int(name.split("/")[-2])
        assert ev[["t", "x", "y", "p"]].tolist() == _stmnist_reference(raw[name])
    train, test = cls(root=root, split="train"), cls(root=root, split="test")
    assert len(train) == 40 and len(test) == 10 and not set(_sources(train)) & set(_sources(test))
    assert len(cls(root=root, split="train", seed=3)) == 40
    with pytest.raises(ValueError, match="train_fraction"):
        cls(root=root, split="train", train_fraction=1.5)


# --- DVS-Lip ----------------------------------------------------------------------------------
def test_dvslip_official_folders_and_labels(http_server, tmp_path):
    files, raw = b.dvslip_file()
    cls = _mini(DVSLip, http_server, tmp_path, files)
    root = tmp_path / "root"
    train, test = cls(root=root, split="train"), cls(root=root, split="test")
    assert len(train) == len(test) == 6 and train.sensor_size == (128, 128, 2)
    assert {s.split("/")[1] for s in _sources(train)} == {"train"}
    assert {s.split("/")[1] for s in _sources(test)} == {"test"}
    for ds in (train, test):
        for i in range(len(ds)):
            name = ds.metadata(i)["source"]
            ev, label = ds[i]
            arr = raw[name]
            assert ds.classes[label] == name.split("/")[2]
            assert np.array_equal(ev["t"], arr["t"]) and np.array_equal(ev["x"], arr["x"])
            assert np.array_equal(ev["y"], arr["y"]) and np.array_equal(ev["p"], arr["p"] > 0)
    assert DVSLip.recipe.classes.index("young") == 99 and len(DVSLip.recipe.classes) == 100


def test_dvslip_refuses_pickled_members(http_server, tmp_path):
    obj = np.empty(1, object)
    obj[0] = np.zeros(3, b.LIP_DTYPE)
    buf = io.BytesIO()
    np.save(buf, obj, allow_pickle=True)
    files = {"DVS-Lip.zip": zip_bytes({"DVS-Lip/train/accused/0.npy": buf.getvalue()})}
    cls = _mini(DVSLip, http_server, tmp_path, files)
    with pytest.raises(FormatError, match="pickled object array"):
        cls(root=tmp_path / "root", split="train")


# --- Bullying10K ------------------------------------------------------------------------------
def test_bullying10k_pickled_packets_labels_and_split(http_server, tmp_path):
    files, raw = b.bullying_files()
    cls = _mini(Bullying10K, http_server, tmp_path, files)
    root = tmp_path / "root"
    every = cls(root=root, split="all")
    assert len(every) == 12 and every.sensor_size == (346, 260, 2)
    order = sorted(_sources(every), key=lambda n: (every.classes.index(n.split("/")[0]), n))  # member order
    assert _sources(every) == [n for k, n in enumerate(order) if k % 5] + order[::5]  # train, then test
    assert set(every.targets.tolist()) == {0, 1, 9}                     # handshake, slapping, kicking
    for i, name in enumerate(_sources(every)):
        ev, label = every[i]
        r = raw[name]
        t0 = int(r["timestamp"][0])
        assert every.classes[label] == name.split("/")[0] and every.metadata(i)["t_offset"] == t0
        assert np.array_equal(ev["t"], r["timestamp"] - t0) and np.array_equal(ev["x"], r["x"])
        assert np.array_equal(ev["y"], r["y"]) and np.array_equal(ev["p"], r["polarity"] > 0)
    test = cls(root=root, split="test")
    assert _sources(test) == order[::5]
    assert _sources(cls(root=root, split="train")) == [n for k, n in enumerate(order) if k % 5]


class _Exec:
    """A pickle payload: unpickling it calls builtins.exec, which writes the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_bullying10k_malicious_pickle_is_refused_without_running(http_server, tmp_path):
    marker = tmp_path / "pwned"
    good = b.dv_object_npy([np.zeros(2, b.DV_DTYPE)])
    header = good[:good.index(b"\n") + 1]
    evil = header + pickle.dumps(_Exec(marker), protocol=3)
    files = {"handshake.zip": zip_bytes({"handshake/t/0.npy": evil})}
    cls = _mini(Bullying10K, http_server, tmp_path, files)
    with pytest.raises(FormatError, match="builtins.exec.*refusing"):
        cls(root=tmp_path / "root", split="all")
    assert not marker.exists()
    assert not list((tmp_path / "root" / "bullying10k").glob("*.h5"))


# --- manual downloads -------------------------------------------------------------------------
@pytest.mark.parametrize("cls, filename, checksum", [
    (ASLDVS, "ICCV2019_DVS_dataset.zip", "openi dataset download"),
    (POKERDVS, "pips_train.tar.gz", "412bcfb96826e4fcb290558e8c150aae"),
    (STMNIST, "STMNIST dataset NUS Tee Research Group.zip",
     "825bb5a64753fff4a2a2c32e3497fa8a951d9c94993e03ba25a057e17d83b884"),
    (DVSLip, "DVS-Lip.zip", "2dcb959255122d4cdeb6094ca282494b"),
])
def test_manual_datasets_print_exact_instructions(cls, filename, checksum, tmp_path):
    assert cls.recipe.download == "manual"
    with pytest.raises(DownloadError) as err:
        cls(root=tmp_path, split="train")
    msg = str(err.value)
    assert filename in msg and checksum in msg and "--from" in msg and str(tmp_path / cls.recipe.name) in msg


def test_recipes_are_complete():
    for cls in (SHD, SSC, NTIDIGITS, ASLDVS, POKERDVS, STMNIST, DVSLip, Bullying10K):
        r = cls.recipe
        assert r.citation and r.licence and r.orientation and r.time_origin and r.split_rule and r.homepage
        assert len(set(r.classes)) == len(r.classes)
        assert r.download == "manual" or all(res.urls and res.checksum for res in r.resources)
    assert len(SHD.recipe.classes) == 20 and len(SSC.recipe.classes) == 35 and len(ASLDVS.recipe.classes) == 24
    assert len(Bullying10K.recipe.classes) == 10 and len(NTIDIGITS.recipe.classes) == 11


def test_heidelberg_large_member_goes_through_an_anonymous_temp_file(http_server, tmp_path, monkeypatch):
    import neurodata.datasets.heidelberg as heidelberg

    monkeypatch.setattr(heidelberg, "IN_MEMORY", 0)                       # every member "large"
    files, expected = b.heidelberg_files(tmp_path, "ssc", ("valid",), 35, per_split=3)
    cls = _mini(SSC, http_server, tmp_path, files)
    ds = cls(root=tmp_path / "root", split="valid")
    assert ds.targets.tolist() == [s[2] for s in expected["valid"]]
    left = sorted(p.name for p in (tmp_path / "root" / "ssc").iterdir())
    assert left == sorted(["ssc_valid.h5.zip", ds.cache_path.name])      # no extracted copy stays
