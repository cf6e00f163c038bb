"""N-CARS, Gen1, 1 Mpx (Gen4), NAV Gesture walk/sit, HARDVS and ES-ImageNet end to end, offline:
miniature files in the real layouts (served from 127.0.0.1 where the dataset is a set of files,
an extracted folder where it is one), cached and loaded; labels, splits, orientation, time origin,
boxes and metadata as documented in docs/datasets.md."""
import numpy as np
import pytest
import torch

import neurodata
from neurodata import DownloadError, FormatError
from neurodata.datasets.automotive import Gen1, Gen4
from neurodata.datasets.detection import BOX_DTYPE, detection_collate, read_boxes
from neurodata.datasets.esimagenet import ESImageNet
from neurodata.datasets.hardvs import HARDVS
from neurodata.datasets.navgesture import CODES, NavGestureSit, NavGestureWalk
from neurodata.datasets.ncars import NCARS
from neurodata.datasets.windows import WindowedDataset
from neurodata.datasets._split_rules import seeded_split
from tests.datasets import builders_more_b as b
from tests.datasets.builders import mini_class


def _mini(cls, server, tmp_path, files):
    for name, data in files.items():
        server.add(f"{cls.recipe.name}/{name}", data)
    return mini_class(cls, files, server.url(cls.recipe.name).rstrip("/"), tmp_path)


def _same(a, b):
    return all(np.array_equal(a[k], b[k]) for k in ("t", "x", "y", "p"))


# --- N-CARS ------------------------------------------------------------------------------------
def test_ncars_fetch_cache_load(http_server, tmp_path):
    files, expected = b.ncars_archives(tmp_path)
    cls = _mini(NCARS, http_server, tmp_path, files)
    root = tmp_path / "root"
    for split in ("train", "test"):
        ds = cls(root=root, split=split)
        assert len(ds) == 6 and ds.sensor_size == (120, 100, 2) and ds.classes == ("background", "car")
        for i, (name, ev, label) in enumerate(expected[split]):
            got, lab = ds[i]
            assert lab == label and _same(got, ev)                       # as stored: no flip, t from 0
            assert ds.metadata(i) == {"source": name, "t_offset": 0}
        assert ds.targets.tolist() == [e[2] for e in expected[split]]
    assert len(cls(root=root, split="all")) == 12


def test_ncars_damaged_member_named(http_server, tmp_path):
    """A member that does not decode stops the build with a FormatError naming that member (not
    the in-memory file it went through); nothing is cached."""
    files, expected = b.ncars_archives(tmp_path)
    bad = expected["train"][1][0]
    members = {name: ev for name, ev, _ in expected["train"]}
    raw = {name: b._bin(ev, "dat", tmp_path) for name, ev in members.items()}
    raw[bad] = b"% Data file containing CD events.\n% Version 2\n\x0c"  # ends inside an event
    files["n-cars_train.zip"] = b.zip_bytes(raw)
    cls = _mini(NCARS, http_server, tmp_path, files)
    with pytest.raises(FormatError, match=rf"^{bad} at byte 46: DAT file ends inside"):
        cls(root=tmp_path / "root", split="train")
    assert not list((tmp_path / "root").rglob("*.h5"))


def test_ncars_manual_instructions_and_source(tmp_path):
    with pytest.raises(DownloadError) as e:
        NCARS(root=tmp_path / "root", split="train")
    msg = str(e.value)
    assert "https://www.prophesee.ai/2018/03/13/dataset-n-cars/" in msg and "Prophesee_Dataset_n_cars.zip" in msg
    assert "976d126a651b95d81800b05a3093337b" in msg and "--from" in msg
    files, expected = b.ncars_archives(tmp_path)
    folder = tmp_path / "Prophesee_Dataset_n_cars"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    # the real checksum cannot match miniature bytes: verification is what must refuse them
    from neurodata import ChecksumError
    with pytest.raises(ChecksumError):
        NCARS(root=tmp_path / "root", split="train", source=tmp_path)
    with pytest.warns(UserWarning, match="verification"):
        ds = NCARS(root=tmp_path / "root", split="train", source=tmp_path, verify=False)
    assert len(ds) == 6 and _same(ds[0][0], expected["train"][0][1])


# --- Gen1 / Gen4 and the detection windows ------------------------------------------------------
def test_gen1_recordings_boxes_and_splits(tmp_path):
    folder, expected = b.automotive_folder(tmp_path)
    root = tmp_path / "root"
    for split, n in (("train", 2), ("valid", 1), ("test", 1)):
        ds = Gen1(root=root, split=split, source=folder)
        assert len(ds) == n and ds.sensor_size == (304, 240, 2)
        for i, (rel, ev, boxes) in enumerate(expected[split]):
            got, got_boxes = ds[i]
            assert _same(got, ev)                                        # timestamps as stored (t_offset 0)
            assert got_boxes.dtype == BOX_DTYPE and np.array_equal(got_boxes, boxes)
            assert np.array_equal(ds.boxes(i), boxes)
            assert ds.metadata(i) == {"source": rel, "t_offset": 0}
        assert (ds.targets == -1).all()
    # served from the cache without the folder
    assert len(Gen1(root=root, split="train")) == 2
    with pytest.raises(DownloadError, match="prophesee-gen1-automotive-detection-dataset"):
        Gen1(root=tmp_path / "other", split="train")


def test_gen1_detection_windows_end_at_each_box_time(tmp_path):
    folder, expected = b.automotive_folder(tmp_path)
    ds = Gen1(root=tmp_path / "root", split="train", source=folder)
    w = 50_000
    win = WindowedDataset(ds, w, around_labels=True)
    taus = [np.unique(boxes["t"]) for _, _, boxes in expected["train"]]
    assert len(win) == sum(len(t) for t in taus)
    j = 0
    for i, (_, ev, boxes) in enumerate(expected["train"]):
        for tau in taus[i]:
            events, target = win[j]
            want = ev[(ev["t"] >= tau - w) & (ev["t"] < tau)].copy()
            want["t"] -= tau - w
            assert _same(events, want) and (events["t"] < w).all()
            assert np.array_equal(target["class_id"], boxes[boxes["t"] == tau]["class_id"])
            assert (target["t"] == w).all()
            assert win.metadata(j)["sample"] == i and win.metadata(j)["t_stop"] == tau
            j += 1
    batch = detection_collate([win[0], win[1], win[2]])
    k = [len(win[q][1]) for q in range(3)]
    assert batch["boxes"].shape == (sum(k), 4) and batch["boxes"].dtype == torch.float32
    assert batch["box_offsets"].tolist() == [0, k[0], k[0] + k[1], sum(k)]
    assert batch["box_batch"].tolist() == [0] * k[0] + [1] * k[1] + [2] * k[2]
    assert batch["offsets"][-1] == batch["t"].shape[0] == sum(len(win[q][0]) for q in range(3))
    loader = torch.utils.data.DataLoader(win, batch_size=4, collate_fn=detection_collate, num_workers=0)
    assert sum(int(bt["box_offsets"][-1]) for bt in loader) == sum(len(e[2]) for e in expected["train"])
    one = neurodata.load("gen1", root=tmp_path / "root", windows=dict(window_us=w, around_labels=True))
    assert len(one) == len(win) and _same(one[3][0], win[3][0])
    assert np.array_equal(one[3][1], win[3][1])
    with pytest.raises(ValueError, match="not both"):
        neurodata.load("gen1", root=tmp_path / "root", windows=dict(window_us=w), frames=dict(n_time_bins=2))


def test_gen4_reads_dat_and_evt3_recordings(tmp_path):
    folder, expected = b.automotive_folder(tmp_path, top="gen4", sensor=(1280, 720, 2), n_classes=7,
                                           raw_dtype=b.GEN4_RAW_BOX, raw_evt3=True)
    ds = Gen4(root=tmp_path / "root", split="train", source=tmp_path)   # the parent folder works too
    assert len(ds) == 2 and ds.sensor_size == (1280, 720, 2) and len(ds.classes) == 7
    assert ds.metadata(1)["source"].endswith(".raw")
    for i, (_, ev, boxes) in enumerate(expected["train"]):
        got, got_boxes = ds[i]
        assert _same(got, ev) and np.array_equal(got_boxes, boxes)


def test_box_files_are_validated(tmp_path):
    good = np.zeros(2, b.GEN1_RAW_BOX)
    good["ts"] = [20, 10]
    good["class_id"] = [1, 0]
    got = read_boxes(b._npy(good), "x_bbox.npy", 2)
    assert got["t"].tolist() == [10, 20] and got["class_id"].tolist() == [0, 1]       # sorted by t
    with pytest.raises(FormatError, match="class_id 1, expected 0"):
        read_boxes(b._npy(good), "x_bbox.npy", 1)
    with pytest.raises(FormatError, match="missing"):
        read_boxes(b._npy(np.zeros(2, [("t", "<i8"), ("x", "<f4")])), "x_bbox.npy", 2)
    import io
    buf = io.BytesIO()
    np.save(buf, np.array([{"t": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match="pickled"):
        read_boxes(buf.getvalue(), "x_bbox.npy", 2)


# --- NAV Gesture -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,kind", [(NavGestureWalk, "walk"), (NavGestureSit, "sit")])
def test_navgesture_labels_orientation_and_seeded_split(http_server, tmp_path, cls, kind):
    files, raw = b.nav_archive(tmp_path, kind)
    mini = _mini(cls, http_server, tmp_path, files)
    root = tmp_path / "root"
    every = mini(root=root, split="all")
    assert len(every) == len(raw) == 24 and every.sensor_size == (304, 240, 2)
    by_label = {}
    for i in range(len(every)):
        src = every.metadata(i)["source"]
        ev, label = every[i]
        code = src.rsplit("/", 1)[-1].split("_")[1]
        assert label == CODES.index(code)
        r = raw[src]
        order = np.argsort(r["t"], kind="stable")
        want_t = r["t"][order]
        assert every.metadata(i)["t_offset"] == want_t[0]
        assert np.array_equal(ev["t"], want_t - want_t[0])
        assert np.array_equal(ev["x"], r["x"][order]) and np.array_equal(ev["y"], 239 - r["y"][order].astype(int))
        assert np.array_equal(ev["p"], r["p"][order])
        by_label.setdefault(label, []).append(src)
    train, test = mini(root=root, split="train"), mini(root=root, split="test")
    names = lambda d: {d.metadata(i)["source"] for i in range(len(d))}     # noqa: E731
    assert names(train) == seeded_split(by_label, "train", 0, 0.8)
    assert names(train) | names(test) == names(every) and not names(train) & names(test)
    assert len(train) == 6 * 3 and len(test) == 6 * 1                        # floor(0.8 · 4) = 3 per class
    assert names(mini(root=root, split="train", seed=1)) == seeded_split(by_label, "train", 1, 0.8)


def test_navgesture_manual_instructions(tmp_path):
    with pytest.raises(DownloadError) as e:
        NavGestureSit(root=tmp_path, split="train")
    assert "navgesture-sit.zip" in str(e.value) and "1571753ace4d9e0946e6503313712c22" in str(e.value)
    assert "expired" in str(e.value) and "--from" in str(e.value)


# --- HARDVS ------------------------------------------------------------------------------------
def test_hardvs_label_files_define_splits(http_server, tmp_path):
    files, expected = b.hardvs_files(tmp_path)
    cls = _mini(HARDVS, http_server, tmp_path, files)
    root = tmp_path / "root"
    for split in ("train", "valid", "test"):
        ds = cls(root=root, split=split)
        assert len(ds) == len(expected[split]) == 3 and ds.sensor_size == (346, 260, 2)
        for i, (label, sample, t, x, y, p) in enumerate(expected[split]):
            ev, lab = ds[i]
            assert lab == label and ds.classes[lab] == f"action_{label + 1:03d}"
            assert np.array_equal(ev["t"], t - t[0]) and ds.metadata(i) == {
                "source": f"action_{label + 1:03d}/{sample}", "t_offset": int(t[0])}
            assert np.array_equal(ev["x"], x) and np.array_equal(ev["y"], y) and np.array_equal(ev["p"], p)
    assert sorted(cls(root=root, split="train").targets.tolist()) == [0, 1, 299]


def test_hardvs_rejects_a_bad_label_line(http_server, tmp_path):
    files, _ = b.hardvs_files(tmp_path)
    files["train_label.txt"] = b"action_301/dvSave-x 300\n"
    cls = _mini(HARDVS, http_server, tmp_path, files)
    with pytest.raises(FormatError, match="line 1"):
        cls(root=tmp_path / "root", split="train")


# --- ES-ImageNet -------------------------------------------------------------------------------
def test_esimagenet_extracted_folder(tmp_path):
    folder, expected = b.esimagenet_folder(tmp_path)
    root = tmp_path / "root"
    for split, center in (("train", False), ("test", False), ("train", True)):
        ds = ESImageNet(root=root, split=split, source=folder, center=center)
        assert len(ds) == 6 and ds.sensor_size == (256, 256, 2) and len(ds.classes) == 1000
        for i, (stem, label, pos, neg, a, c) in enumerate(expected[split]):
            ev, lab = ds[i]
            assert lab == label and ds.metadata(i)["source"].endswith(f"{stem}.npz")
            both = np.concatenate([pos, neg]).astype(int)
            if center:
                both[:, 0] += (254 - a) // 2
                both[:, 1] += (254 - c) // 2
            order = np.argsort(both[:, 2], kind="stable")
            assert np.array_equal(ev["t"], both[order, 2])                  # steps 1-8, as stored
            assert np.array_equal(ev["x"], both[order, 1]) and np.array_equal(ev["y"], both[order, 0])
            assert np.array_equal(ev["p"], np.r_[np.ones(len(pos)), np.zeros(len(neg))][order])
    with pytest.raises(DownloadError) as e:
        ESImageNet(root=tmp_path / "empty", split="train")
    assert "ES-imagenet-0.18.part01.rar" in str(e.value) and "unrar x" in str(e.value)
    assert ESImageNet.recipe.resources[24].checksum == "md5:0802ccdeb0cff29237faf55164524101"
    (folder / "vallabel.txt").write_text("ILSVRC2012_val_00000001.npz 1000 200 254\n")
    with pytest.raises(FormatError, match="line 1"):
        ESImageNet(root=tmp_path / "root2", split="test", source=folder)


def test_seeded_split_fraction_is_exact():
    """floor(train_fraction * n) with the fraction as written: 0.7 of 90 is 63 (float arithmetic gave
    62 for 4 676 class sizes up to 200 000 at 0.7)."""
    names = {0: [f"s{i:03d}" for i in range(90)], 1: [f"t{i:03d}" for i in range(700)]}
    train = seeded_split(names, "train", 0, 0.7)
    assert sum(n.startswith("s") for n in train) == 63 and sum(n.startswith("t") for n in train) == 490
    assert len(seeded_split(names, "test", 0, 0.7)) == 90 - 63 + 700 - 490
