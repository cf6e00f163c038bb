"""Miniature N-CARS, Gen1 / 1 Mpx, NAV Gesture, HARDVS and ES-ImageNet files in their real layouts,
written with the project's own writers (DAT, EVT 3.0) and numpy (see
docs/datasets.md). Each builder returns the files (``{name: bytes}`` or a
folder) and what the dataset should yield."""
from __future__ import annotations

import io

import numpy as np

from neurodata.datasets.detection import BOX_DTYPE
from tests.datasets.builders import _bin, zip_bytes
from tests.helpers import random_events

# the two box layouts of the Prophesee toolbox: Gen1's original names and the 1 Mpx ones
GEN1_RAW_BOX = np.dtype([("ts", "<u8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"),
                         ("class_id", "u1"), ("confidence", "<f4"), ("track_id", "<u4")])
GEN4_RAW_BOX = np.dtype({"names": ["t", "x", "y", "w", "h", "class_id", "track_id", "class_confidence"],
                         "formats": ["<i8", "<f4", "<f4", "<f4", "<f4", "<u4", "<u4", "<f4"],
                         "offsets": [0, 8, 12, 16, 20, 24, 28, 32], "itemsize": 40})


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def ncars_archives(tmp_path, per_class=3, seed=0):
    """``n-cars_train.zip`` / ``n-cars_test.zip`` with ``<top>/{background,cars}/obj_<id>_td.dat``
    (DAT v2, no Height/Width lines, like the real crops) and the expected (member, events, label)."""
    rng = np.random.default_rng(seed)
    files, expected = {}, {}
    for split, top in (("train", "n-cars_train"), ("test", "test")):   # both top folder spellings
        members, exp = {}, []
        for label, folder in ((1, "cars"), (0, "background")):
            for k in range(per_class):
                ev = random_events(int(rng.integers(1, 80)), (120, 100, 2), duration_us=100_000,
                                   seed=int(rng.integers(1 << 30)))
                name = f"{top}/{folder}/obj_{k * 13 + label:06d}_td.dat"
                members[name] = _bin(ev, "dat", tmp_path)
                exp.append((name, ev, label))
        files[f"n-cars_{split}.zip"] = zip_bytes(members)
        expected[split] = sorted(exp, key=lambda e: e[0])
    return files, expected


def _boxes(raw_dtype, times, rng, n_classes):
    rows = []
    for tau in times:
        for _ in range(int(rng.integers(1, 3))):
            rows.append((tau, *rng.uniform(0, 200, 2), *rng.uniform(5, 50, 2), int(rng.integers(0, n_classes)),
                         float(rng.uniform(0.5, 1)), int(rng.integers(0, 100))))
    out = np.zeros(len(rows), raw_dtype)
    for k, (tau, x, y, w, h, c, conf, track) in enumerate(rows):
        out[k]["ts" if "ts" in raw_dtype.names else "t"] = tau
        out[k]["x"], out[k]["y"], out[k]["w"], out[k]["h"], out[k]["class_id"] = x, y, w, h, c
        out[k]["confidence" if "confidence" in raw_dtype.names else "class_confidence"] = conf
        out[k]["track_id"] = track
    return out


def automotive_folder(tmp_path, top="gen1", sensor=(304, 240, 2), n_classes=2, raw_dtype=GEN1_RAW_BOX,
                      raw_evt3=False, seed=0):
    """``<top>/{train,val,test}/<name>_td.dat`` + ``<name>_bbox.npy`` (and, with ``raw_evt3``, one
    ``<name>.raw`` EVT 3.0 recording in train/); returns the folder and, per split, the sorted
    (relative path, events, boxes as BOX_DTYPE) of every recording."""
    rng = np.random.default_rng(seed)
    root = tmp_path / top
    expected = {}
    for split, sub, count in (("train", "train", 2), ("valid", "val", 1), ("test", "test", 1)):
        (root / sub).mkdir(parents=True)
        exp = []
        for k in range(count):
            ev = random_events(9000 + 1000 * k, sensor, duration_us=2_000_000, seed=int(rng.integers(1 << 30)))
            ev["t"] += 250_000          # a recording cut from a longer drive: its clock does not start at 0
            taus = np.arange(300_000, 2_250_000, 250_000)
            raw = _boxes(raw_dtype, taus, rng, n_classes)
            use_raw = raw_evt3 and split == "train" and k == 1
            name = f"17-04-{k:02d}_10-00-00_{k * 60}_{k * 60 + 60}"
            rec = root / sub / (f"{name}.raw" if use_raw else f"{name}_td.dat")
            rec.write_bytes(_bin(ev, "evt3" if use_raw else "dat", tmp_path, sensor_size=sensor))
            (root / sub / f"{name}_bbox.npy").write_bytes(_npy(raw))
            boxes = np.zeros(len(raw), BOX_DTYPE)
            for f in BOX_DTYPE.names:
                boxes[f] = raw[{"t": "ts", "class_confidence": "confidence"}.get(f, f)
                               if f not in raw.dtype.names else f]
            exp.append((f"{sub}/{rec.name}", ev, boxes))
        expected[split] = sorted(exp, key=lambda e: e[0])
    return root, expected


def nav_archive(tmp_path, kind="walk", users=("user01", "user02"), per_class=2, seed=0):
    """``navgesture-<kind>.zip`` holding ``<user>.zip`` with ``<user>/<user>_<code>_<k>_td.dat``
    (DAT version 1, ATIS bottom-left y) and the raw events by member name (``<user>.zip!...``)."""
    from neurodata.datasets.navgesture import CODES

    rng = np.random.default_rng(seed)
    inner, raw = {}, {}
    for user in users:
        members = {}
        for code in CODES:
            for k in range(per_class):
                ev = random_events(int(rng.integers(1, 60)), (304, 240, 2), duration_us=1_500_000,
                                   seed=int(rng.integers(1 << 30)))
                ev["t"] += 3_000_000
                if k == 1 and len(ev) > 3:   # a timestamp that goes backwards (kept, sorted stably)
                    ev["t"][2] = ev["t"][0] - 5 if ev["t"][0] >= 5 else 0
                name = f"{user}/{user}_{code}_{k:02d}_td.dat"
                members[name] = _bin(ev, "dat", tmp_path, version=1)
                raw[f"{user}.zip!{name}"] = ev
        inner[f"{user}.zip"] = zip_bytes(members)
    return {f"navgesture-{kind}.zip": zip_bytes(inner)}, raw


def hardvs_files(tmp_path, actions=(1, 2, 300), per_action=3, seed=0):
    """``MINI_HARDVS_files.zip`` (``MINI_HARDVS_files/action_XXX.zip`` → ``<sample>.npz``) and the
    three label files; the expected (label, sample, t, x, y, p) per split."""
    rng = np.random.default_rng(seed)
    inner, lists, expected = {}, {"train": [], "valid": [], "test": []}, {"train": [], "valid": [], "test": []}
    for a in actions:
        members = {}
        for k in range(per_action):
            n = int(rng.integers(1, 50))
            sample = f"dvSave-2021_10_{a % 28 + 1:02d}_19_18_{k:02d}"
            t = np.sort(rng.integers(10**9, 10**9 + 3 * 10**6, n)).astype(np.int64)
            x, y = rng.integers(0, 346, n).astype(np.int16), rng.integers(0, 260, n).astype(np.int16)
            p = rng.integers(0, 2, n).astype(np.int8)
            members[f"{sample}.npz"] = _npz(t=t, x=x, y=y, p=p)
            split = ("train", "valid", "test")[k % 3]
            lists[split].append(f"action_{a:03d}/{sample} {a - 1}")
            expected[split].append((a - 1, sample, t, x, y, p))
        inner[f"MINI_HARDVS_files/action_{a:03d}.zip"] = zip_bytes(members)
    files = {"MINI_HARDVS_files.zip": zip_bytes(inner)}
    for split, name in (("train", "train_label.txt"), ("valid", "val_label.txt"), ("test", "test_label.txt")):
        files[name] = ("\n".join(lists[split][::-1]) + "\n\n").encode()
        expected[split].sort(key=lambda e: (e[0], e[1]))
    return files, expected


def esimagenet_folder(tmp_path, classes=(0, 7, 999), per_class=2, seed=0):
    """``ES-imagenet-0.18/`` as the authors' converters write it: ``train/class<k>/class<k>_<n>.npz``
    listed as ``class<k>/class<k>_<n>.npz <k> <a> <b>`` in ``trainlabel.txt``, ``val/<name>.npz``
    listed in ``vallabel.txt``; ``pos``/``neg`` uint8 (N, 3) of (row, column, step 1-8) within
    (16, 240) and inside the a × b converted image (+2 for the saccade). Returns the folder and,
    per split, the sorted (stem, label, pos, neg, a, b)."""
    rng = np.random.default_rng(seed)
    root = tmp_path / "ES-imagenet-0.18"
    expected = {"train": [], "test": []}
    lines = {"train": [], "test": []}
    for c in classes:
        for k in range(per_class):
            for split, sub in (("train", f"train/class{c}"), ("test", "val")):
                stem = f"class{c}_{k + 1}" if split == "train" else f"ILSVRC2012_val_{c * 10 + k:08d}"
                a, b = (254, int(rng.integers(120, 254))) if k % 2 else (int(rng.integers(120, 254)), 254)
                pos, neg = (np.stack([rng.integers(17, min(240, a + 2), n), rng.integers(17, min(240, b + 2), n),
                                      rng.integers(1, 9, n)], 1).astype(np.uint8) for n in (30, 20))
                (root / sub).mkdir(parents=True, exist_ok=True)
                (root / sub / f"{stem}.npz").write_bytes(_npz(pos=pos, neg=neg))
                listed = f"class{c}/{stem}.npz" if split == "train" else f"{stem}.npz"
                lines[split].append(f"{listed} {c} {a} {b}")
                expected[split].append((stem, c, pos, neg, a, b))
    (root / "trainlabel.txt").write_text("\n".join(lines["train"]) + "\n")
    (root / "vallabel.txt").write_text("\n".join(lines["test"]) + "\n")
    for split in expected:
        expected[split].sort(key=lambda e: e[0])
    return root, expected
