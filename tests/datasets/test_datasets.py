"""The four datasets end to end, offline: miniature archives in the real layouts served from
127.0.0.1, fetched, verified, cached and loaded; labels, splits, orientation and time origin as
documented in docs/datasets.md."""
import math
import numpy as np
import pytest
import torch

from neurodata import ChecksumError, DownloadError
from neurodata.datasets import CIFAR10DVS, DVSGesture, NCaltech101, NMNIST
from neurodata.datasets.frames import FramesDataset
from neurodata.datasets.nmnist import stabilize
from neurodata.transforms import ToFrame
from tests.datasets.builders import (caltech_archive, cifar_archives, gesture_archive, mini_class,
                                     nmnist_archives, zip_bytes)


def _serve(server, name, files):
    for fname, data in files.items():
        server.add(f"{name}/{fname}", data)
    return server.url(name).rstrip("/")


def _same(a, b):
    return all(np.array_equal(a[f], b[f]) for f in ("t", "x", "y", "p"))


@pytest.fixture
def nmnist_setup(http_server, tmp_path):
    files, expected = nmnist_archives(tmp_path)
    cls = mini_class(NMNIST, files, _serve(http_server, "nmnist", files), tmp_path)
    return cls, expected, http_server, tmp_path / "root"


def test_nmnist_fetch_cache_load(nmnist_setup):
    cls, expected, server, root = nmnist_setup
    ds = cls(root=root, split="train")
    assert len(ds) == len(expected["train"]) == 20
    for i, (name, ev, digit) in enumerate(expected["train"]):
        got, label = ds[i]
        assert label == digit and _same(got, ev)
        assert ds.metadata(i) == {"source": name, "t_offset": 0}
    assert list(ds.targets) == [d for _, _, d in expected["train"]]
    assert ds.classes == tuple("0123456789") and ds.sensor_size == (34, 34, 2)
    n_requests = len(server.log)
    again = cls(root=root, split="train")          # served from the cache: no request at all
    assert len(again) == 20 and len(server.log) == n_requests
    both = cls(root=root, split="all")
    assert len(both) == 40 and list(both.targets[20:]) == [d for _, _, d in expected["test"]]


def test_frames_dataset_serves_toframe_without_computing_again(nmnist_setup, monkeypatch):
    cls, _, _, root = nmnist_setup
    events = cls(root=root, split="train")
    params = dict(frames_number=4, split_by="number")
    ds, ds8 = FramesDataset(events, params), FramesDataset(events, {**params, "dtype": "uint8"})
    to_frame = ToFrame(events.sensor_size, **params)
    for i in range(len(events)):
        frames, label = ds[i]
        assert frames.dtype == torch.float32 and label == events[i][1]
        assert np.array_equal(frames.numpy(), to_frame(events[i][0]))
        assert ds8[i][0].dtype == torch.uint8 and torch.equal(ds8[i][0].float(), frames)
    monkeypatch.setattr(ToFrame, "__call__", lambda self, ev: pytest.fail("frames computed again"))
    again = FramesDataset(events, params)  # served from the cache: ToFrame is not called, not even for its dtype
    assert again.store.path == ds.store.path and torch.equal(again[3][0], ds[3][0])
    for spelling in (np.uint8, np.dtype("u1"), "u1", torch.uint8):  # any spelling of a dtype: one cache
        same = FramesDataset(events, {**params, "dtype": spelling})
        assert same.store.path == ds8.store.path and same.store.params["dtype"] == "uint8"
    threads = FramesDataset(events, {**params, "num_threads": 2})  # how it is built is not what it holds
    assert threads.store.path == ds.store.path and "num_threads" not in threads.store.params
    own = FramesDataset(events, {**params, "sensor_size": [34, 34, 2]})  # the dataset's own sensor size: accepted
    assert own.store.path == ds.store.path
    with pytest.raises(ValueError, match=r"sensor_size \(32, 32, 2\) differs from the dataset's \(34, 34, 2\)"):
        FramesDataset(events, {**params, "sensor_size": (32, 32, 2)})
    with pytest.raises(ValueError, match="sensor_size 34 differs"):  # not a TypeError from tuple(34)
        FramesDataset(events, {**params, "sensor_size": 34})
    with pytest.raises(ValueError, match="transform"):  # it would not be applied to cached frames
        FramesDataset(cls(root=root, split="train", transform=lambda ev: ev[:1]), params)
    for bad in ("foo", None):  # np.dtype(None) is float64: None was accepted, "foo" failed in the key
        with pytest.raises(ValueError, match="dtype must be one of"):
            FramesDataset(events, {**params, "dtype": bad})


def test_nmnist_options_change_the_cache(nmnist_setup):
    cls, expected, _, root = nmnist_setup
    plain = cls(root=root, split="test")
    first = cls(root=root, split="test", first_saccade_only=True)
    stab = cls(root=root, split="test", stabilize=True)
    assert len({plain.cache_path, first.cache_path, stab.cache_path}) == 3
    for i, (_, ev, _) in enumerate(expected["test"]):
        assert _same(first[i][0], ev[ev["t"] < 100_000])
        assert _same(stab[i][0], stabilize(ev))


@pytest.mark.parametrize("kw, says", [(dict(train=False), "split='train' / 'test'"), (dict(save_to="d"), "root=")])
def test_peer_keywords_name_ours(tmp_path, kw, says):
    """SpikingJelly's and tonic's ``train=`` / ``save_to=`` said only 'unexpected options'."""
    with pytest.raises(TypeError, match=f"no {next(iter(kw))}= here; use {says}"):
        NMNIST(tmp_path, download=False, **kw)


def test_stabilize_rule():
    from neurodata.events import make_events

    ev = make_events([0, 52_500, 105_000, 157_500, 210_000, 262_500, 315_000], [10] * 7, [10] * 7, [1] * 7)
    out = stabilize(ev)
    # shifts (rint, half to even): x 0, 2 (1.75), 4 (3.5), 5 (5.25), 7, 4 (3.5), 0; y 0, 4 (3.5), 7, 4 (3.5), 0, 0, 0
    assert out["x"].tolist() == [10, 8, 6, 5, 3, 6, 10]
    assert out["y"].tolist() == [10, 6, 3, 6, 10, 10, 10]
    assert stabilize(make_events([105_000], [1], [2], [0]))[["x", "y"]].tolist() == [(0, 0)]  # clamped


def test_wrong_checksum_rejected_and_nothing_cached(nmnist_setup):
    cls, _, server, root = nmnist_setup
    server.serve_wrong("nmnist/train.zip", times=10)
    with pytest.raises(ChecksumError, match="train.zip"):
        cls(root=root, split="train")
    assert not list((root / "nmnist").glob("*.h5"))
    assert not (root / "nmnist" / "train.zip").exists()


def test_mirror_is_tried_first(nmnist_setup, monkeypatch):
    cls, expected, server, root = nmnist_setup
    server.fail("nmnist/test.zip", status=404, times=100)       # the original host is gone
    data = server.files["nmnist/test.zip"].data
    server.add("mirror/nmnist/test.zip", data)
    ds = cls(root=root, split="test", mirror=server.url("mirror"))
    assert len(ds) == len(expected["test"])
    assert server.requests_for("mirror/nmnist/test.zip")


def test_resume_after_dropped_connection(nmnist_setup):
    cls, expected, server, root = nmnist_setup
    server.drop_after("nmnist/train.zip", 500)
    ds = cls(root=root, split="train")
    assert len(ds) == 20
    assert any(r.range for r in server.requests_for("nmnist/train.zip"))


def test_offline_mode_names_the_missing_file(nmnist_setup, monkeypatch):
    cls, _, server, root = nmnist_setup
    monkeypatch.setenv("NEURODATA_OFFLINE", "1")
    with pytest.raises(DownloadError, match="train.zip"):
        cls(root=root, split="train")
    assert not server.log


def test_unverified_cache_is_not_served_to_a_verifying_dataset(nmnist_setup, tmp_path):
    """A cache built with verify=False from files that fail their checksums has its own key: a
    later verifying dataset builds from the right files (the unverified cache was served before)."""
    cls, expected, server, root = nmnist_setup
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (tmp_path / "other").mkdir()
    for name, data in nmnist_archives(tmp_path / "other", per_class=1)[0].items():
        (wrong / name).write_bytes(data)
    with pytest.raises(ChecksumError):
        cls(root=root, split="train", source=wrong)
    with pytest.warns(UserWarning, match="verification"):
        unverified = cls(root=root, split="train", source=wrong, verify=False)
    assert len(unverified) == 10
    verified = cls(root=root, split="train")
    assert len(verified) == len(expected["train"]) == 20 and verified.cache_path != unverified.cache_path
    assert len(cls(root=root, split="train", source=wrong, verify=False)) == 10  # its own cache, served


def test_manual_source_folder_accepts_aliases(nmnist_setup, tmp_path):
    cls, expected, server, root = nmnist_setup
    manual = tmp_path / "downloads"
    manual.mkdir()
    (manual / "Test.zip").write_bytes(server.files["nmnist/test.zip"].data)  # the authors' spelling
    ds = cls(root=root, split="test", source=manual)
    assert len(ds) == len(expected["test"]) and not server.log
    with pytest.raises(DownloadError, match="train.zip"):
        cls(root=root, split="train", source=manual)


def test_cifar10dvs_orientation_time_origin_and_splits(http_server, tmp_path):
    files, raw = cifar_archives(tmp_path)
    cls = mini_class(CIFAR10DVS, files, _serve(http_server, "cifar10dvs", files), tmp_path)
    root = tmp_path / "root"
    every = cls(root=root, split="all")
    assert len(every) == 50
    order = [(c, i) for c in every.classes for i in (0, 99, 100, 899)] + [(c, 900) for c in every.classes]
    for k, (cls_name, i) in enumerate(order):  # train (index < 900) then test
        ev, label = every[k]
        r = raw[(cls_name, i)]
        assert label == every.classes.index(cls_name)
        assert np.array_equal(ev["x"], 127 - r["y"]) and np.array_equal(ev["y"], 127 - r["x"])
        assert np.array_equal(ev["t"], r["t"] - r["t"][0]) and every.metadata(k)["t_offset"] == r["t"][0]
        assert np.array_equal(ev["p"], r["p"])

    def indices(ds):
        return sorted({int(ds.metadata(k)["source"].rsplit("_", 1)[1].split(".")[0]) for k in range(len(ds))})

    assert indices(cls(root=root, split="train")) == [0, 99, 100, 899]
    assert indices(cls(root=root, split="test")) == [900]
    assert indices(cls(root=root, split="train", split_scheme="tebn")) == [100, 899, 900]
    assert indices(cls(root=root, split="test", split_scheme="tebn")) == [0, 99]
    with pytest.raises(ValueError, match="split_scheme"):
        cls(root=root, split="train", split_scheme="random")


def test_cifar10dvs_spikingjelly_split(http_server, tmp_path):
    """SpikingJelly's split_to_train_test_set(0.9) on its CIFAR10DVS folder: per class the file
    names sorted as text, the first ceil(0.9 n) train, in that order (the '9:1' rule by index is
    not it: 91-99 sort after 909 as text)."""
    indices = (0, 1, 10, 91, 99, 100, 899, 900, 908, 909)
    files, _ = cifar_archives(tmp_path, indices=indices)
    cls = mini_class(CIFAR10DVS, files, _serve(http_server, "cifar10dvs", files), tmp_path)
    root = tmp_path / "root"
    text_order = sorted(indices, key=lambda i: f"cifar10_x_{i}.npz")  # what its DatasetFolder lists
    cut = math.ceil(len(indices) * 0.9)

    def sources(ds):
        return [(ds.classes[int(ds.targets[k])], int(ds.metadata(k)["source"].rsplit("_", 1)[1].split(".")[0]))
                for k in range(len(ds))]

    for split, part in (("train", text_order[:cut]), ("test", text_order[cut:])):
        ds = cls(root=root, split=split, split_scheme="spikingjelly")
        assert sources(ds) == [(c, i) for c in CIFAR10DVS.recipe.classes for i in part]
    assert [i for _, i in sources(cls(root=root, split="test", split_scheme="spikingjelly"))][:1] == [99]
    assert {i for _, i in sources(cls(root=root, split="test"))} == {900, 908, 909}  # '9:1' by index


def test_dvsgesture_windows_labels_and_repeats(http_server, tmp_path):
    files, recordings = gesture_archive(tmp_path)
    cls = mini_class(DVSGesture, files, _serve(http_server, "dvsgesture", files), tmp_path)
    root = tmp_path / "root"
    train = cls(root=root, split="train")
    ev_all, rows = recordings["user01_fluorescent.aedat"]
    assert len(train) == 4                     # class 8 occurs twice: two samples
    assert list(train.targets) == [0, 7, 10, 7]  # label = class - 1, never folder order
    for k, (c, a, b) in enumerate(rows):
        ev, label = train[k]
        want = ev_all[(ev_all["t"] >= a) & (ev_all["t"] < b)]
        assert label == c - 1 and np.array_equal(ev["t"], want["t"] - a) and np.array_equal(ev["x"], want["x"])
        assert train.metadata(k)["t_offset"] == a
    merged = cls(root=root, split="train", merge_repeats=True)
    assert sorted(merged.targets.tolist()) == [0, 7, 10]
    test = cls(root=root, split="test")
    assert len(test) == 4 and test.metadata(0)["source"].endswith("user24_led.aedat")


def test_dvsgesture_manual_download_instructions(tmp_path):
    with pytest.raises(DownloadError, match="DvsGesture.tar.gz") as err:
        DVSGesture(root=tmp_path, split="train")
    assert "8a5c71fb11e24e5ca5b11866ca6c00a1" in str(err.value) and "--from" in str(err.value)


@pytest.mark.parametrize("nested", [False, True])
def test_ncaltech101_background_and_seeded_split(http_server, tmp_path, nested):
    files, members = caltech_archive(tmp_path)
    if nested:  # the same zip inside another zip
        files = {"N-Caltech101-archive.zip": zip_bytes({"Caltech101.zip": files["Caltech101.zip"]})}
    else:
        files = {"N-Caltech101-archive.zip": files["Caltech101.zip"]}
    cls = mini_class(NCaltech101, files, _serve(http_server, "ncaltech101", files), tmp_path)
    root = tmp_path / "root"
    every = cls(root=root, split="all")
    assert len(every) == 10                       # background excluded by default
    assert set(every.targets.tolist()) == {every.classes.index("Faces_easy"), every.classes.index("accordion")}
    train, test = cls(root=root, split="train"), cls(root=root, split="test")
    src = lambda ds: {ds.metadata(i)["source"] for i in range(len(ds))}  # noqa: E731
    assert len(train) == 8 and len(test) == 2 and not src(train) & src(test)
    assert src(train) | src(test) == src(every)
    again = cls(root=tmp_path / "other", split="train")
    assert src(again) == src(train)               # deterministic
    other_seed = cls(root=root, split="train", seed=5)
    assert len(other_seed) == 8
    with_bg = cls(root=root, split="all", keep_background=True)
    assert len(with_bg) == 15 and with_bg.classes[-1] == "BACKGROUND_Google" and 100 in with_bg.targets


def test_dvsgesture_streams_the_archive_forward_only(tmp_path, monkeypatch):
    """Members in an adverse order (``.aedat`` first, CSVs next, trial lists last; the train list names
    the recordings against archive order, one has unsorted timestamps): the samples are each listed
    recording's CSV rows cut with a plain mask, in trial-list order, and the build opens the tar only
    in streaming mode (``r|`` over the inflated stream: strictly forward, a ``.tar.gz`` is never
    rewound), twice."""
    import tarfile

    from tests.datasets.builders import _bin, tar_gz_bytes
    from tests.helpers import random_events

    names = ["user01_lab", "user02_led", "user03_natural"]
    rows = [(3, 1_000_000, 2_000_000), (5, 1_500_000, 2_500_000), (3, 3_000_000, 3_000_007), (11, 4_000_000, 4_000_000)]
    recs, aedat, csv = {}, {}, {}
    for k, n in enumerate(names):
        ev = random_events(4000, duration_us=5_000_000, seed=k, sorted_t=(k != 1))
        recs[n], aedat[f"DvsGesture/{n}.aedat"] = ev, _bin(ev, "aedat31", tmp_path, sensor_size=(128, 128, 2))
        csv[f"DvsGesture/{n}_labels.csv"] = ("class,startTime_usec,endTime_usec\r\n" + "".join(
            f"{c},{a},{b}\r\n" for c, a, b in rows)).encode()
    lists = {"DvsGesture/trials_to_train.txt": b"user03_natural.aedat\nuser01_lab.aedat\n",
             "DvsGesture/trials_to_test.txt": b"user02_led.aedat\n"}
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "DvsGesture.tar.gz").write_bytes(tar_gz_bytes({**aedat, **csv, **lists}))
    cls = mini_class(DVSGesture, {"DvsGesture.tar.gz": (tmp_path / "src" / "DvsGesture.tar.gz").read_bytes()},
                     "http://127.0.0.1:9/unused", tmp_path)
    modes, real_open = [], tarfile.open
    monkeypatch.setattr(tarfile, "open", lambda *a, **kw: modes.append(kw.get("mode")) or real_open(*a, **kw))
    for split, order in (("train", ["user03_natural", "user01_lab"]), ("all", ["user03_natural", "user01_lab", "user02_led"])):
        modes.clear()
        ds = cls(root=tmp_path / "root", split=split, source=tmp_path / "src")
        assert modes == ["r|", "r|"]  # a forward-only stream of the ISA-L-inflated .tar.gz
        want = [(n, c, a, b) for n in order for c, a, b in rows]
        assert len(ds) == len(want)
        for i, (n, c, a, b) in enumerate(want):
            ev, label = ds[i]
            ref = recs[n][(recs[n]["t"] >= a) & (recs[n]["t"] < b)]
            assert label == c - 1 and ds.metadata(i) == {"source": f"DvsGesture/{n}.aedat", "t_offset": a}
            assert np.array_equal(ev["t"], ref["t"] - a) and all(np.array_equal(ev[f], ref[f]) for f in "xyp")
    merged = cls(root=tmp_path / "root", split="test", merge_repeats=True, source=tmp_path / "src")
    ref = recs["user02_led"]
    both = ref[((ref["t"] >= 1_000_000) & (ref["t"] < 2_000_000)) | ((ref["t"] >= 3_000_000) & (ref["t"] < 3_000_007))]
    ev, label = merged[0]
    assert label == 2 and np.array_equal(ev["t"], np.sort(both["t"]) - 1_000_000)


def _store_rows(ds):
    return [(ds[i][0].tobytes(), int(ds.targets[i]), ds.metadata(i)) for i in range(len(ds))]


def test_dvsgesture_train_and_test_built_in_one_pass(tmp_path, monkeypatch):
    """Building one split of the original release writes the other split's cache from the same two
    passes over the archive, equal to a build of that split alone; a split whose lock another
    process holds is left to it; an error mid-build publishes nothing and leaves no file behind."""
    import neurodata.datasets.dvsgesture as gesture_module
    from neurodata._filelock import FileLock

    files, _ = gesture_archive(tmp_path)
    (tmp_path / "src").mkdir()
    for name, data in files.items():
        (tmp_path / "src" / name).write_bytes(data)
    cls = mini_class(DVSGesture, files, "http://127.0.0.1:9/unused", tmp_path)
    passes, real_iter = [], gesture_module.iter_files
    monkeypatch.setattr(gesture_module, "iter_files", lambda *a, **k: passes.append(1) or real_iter(*a, **k))

    alone = {}
    for split, other in (("train", "test"), ("test", "train")):
        root = tmp_path / f"alone-{split}"
        probe = _gesture_probe(cls, root, other)
        probe.root.mkdir(parents=True)
        with FileLock(probe.cache_path.with_name(probe.cache_path.name + ".lock")):  # "another process"
            ds = cls(root=root, split=split, source=tmp_path / "src")
        assert not probe.cache_path.exists()
        alone[split] = _store_rows(ds)

    passes.clear()
    root = tmp_path / "joint"
    stale = root / "dvsgesture" / f".{_gesture_probe(cls, root, 'test').cache_path.name}.tmp-1-dead"  # killed build's
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"partial")
    train = cls(root=root, split="train", source=tmp_path / "src")
    assert not stale.exists()
    assert len(passes) == 2
    test = cls(root=root, split="test", source=tmp_path / "src")
    assert len(passes) == 2  # served from the cache written by the train build
    assert _store_rows(train) == alone["train"] and _store_rows(test) == alone["test"]
    assert sorted(p.name for p in (root / "dvsgesture").glob("*.h5")) == sorted(
        [train.cache_path.name, test.cache_path.name])

    calls = []

    def fails_in_pass_2(path, select=None, **kw):
        calls.append(1)
        items = real_iter(path, select, **kw)
        return _fail_second(items) if len(calls) == 2 else items
    monkeypatch.setattr(gesture_module, "iter_files", fails_in_pass_2)
    bad_root = tmp_path / "broken"
    with pytest.raises(OSError, match="disk on fire"):
        cls(root=bad_root, split="test", source=tmp_path / "src")
    assert len(calls) == 2
    assert [p.name for p in (bad_root / "dvsgesture").iterdir() if p.suffix != ".gz"] == []


def _gesture_probe(cls, root, split):
    """An unbuilt ``cls`` instance for ``split`` under ``root``: only to name its cache file and lock."""
    probe = cls.__new__(cls)
    probe.recipe, probe.root, probe.split = cls.recipe, root / cls.recipe.name, split
    probe.options, probe.cache_compression, probe._verify = {"release": "original"}, "huffman", True
    return probe


def _fail_second(items):
    """An ``iter_files`` stand-in that fails at the second member of its pass."""
    for k, item in enumerate(items):
        if k == 1:
            raise OSError("disk on fire")
        yield item


def test_iter_files_is_one_forward_pass_in_archive_order(tmp_path):
    import io

    from neurodata.archives import UnsafeMemberError, iter_files
    from tests.datasets.builders import tar_gz_bytes

    class ForwardOnly(io.RawIOBase):  # any seek or tell fails: the reader must not go back
        def __init__(self, data):
            self._f = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self._f.readinto(b)

    members = {"d/z.bin": b"1" * 70_000, "d/a.txt": b"ab", "d/m.csv": b""}
    data = tar_gz_bytes(members)
    assert list(iter_files(ForwardOnly(data))) == list(members.items())
    seen = []
    assert list(iter_files(ForwardOnly(data), lambda n: seen.append(n) or n.endswith(".txt"))) == [("d/a.txt", b"ab")]
    assert seen == list(members)
    with pytest.raises(UnsafeMemberError, match=r"\.\."):
        list(iter_files(ForwardOnly(tar_gz_bytes({"ok": b"x", "../evil": b"y"}))))


@pytest.mark.parametrize("damage", ["truncated", "flipped", "crc"])
def test_iter_files_damaged_tar_gz_file(tmp_path, damage):
    """A ``.tar.gz`` path is inflated by ISA-L: every member of an intact file comes out, and a
    truncated file, a damaged deflate stream or a wrong CRC ends in ``ArchiveError``."""
    from neurodata.archives import ArchiveError, iter_files
    from tests.datasets.builders import tar_gz_bytes

    rng = np.random.default_rng(0)
    members = {f"d/{i}.bin": rng.bytes(300_000) for i in range(4)}
    data = tar_gz_bytes(members)
    path = tmp_path / "a.tar.gz"
    path.write_bytes(data)
    assert list(iter_files(path)) == list(members.items())
    bad = {"truncated": data[: len(data) * 2 // 3], "flipped": data[:9000] + bytes(64) + data[9064:],
           "crc": data[:-8] + bytes(8)}[damage]
    path.write_bytes(bad)
    with pytest.raises(ArchiveError, match="a.tar.gz"):
        list(iter_files(path))
